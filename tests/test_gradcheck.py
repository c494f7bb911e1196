"""tinygrad_llm/testing/gradcheck.py: it passes correct backwards and catches wrong ones,
including wrong backwards that a check against an all-ones upstream gradient would miss."""

import numpy as np
import pytest

import tinygrad_llm.nn.functional as F
from tinygrad_llm import Function, Tensor, no_grad
from tinygrad_llm.testing import GradcheckError, gradcheck, numerical_grad


class ZeroSoftmax(Function):
    """Softmax with a zero backward: every row of softmax sums to 1, so d sum(y) / dx = 0 and a
    check that backpropagates ones (a .sum() of the output) cannot tell this from the truth."""

    def forward(self, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self.y = e / e.sum(axis=-1, keepdims=True)
        return self.y

    def backward(self, dy):
        return (np.zeros_like(dy),)


class CutSoftmax(ZeroSoftmax):
    """Softmax whose second term is cut short: sum_j dy_j y_j replaced by mean_j dy_j. Right
    whenever dy is constant along the row (as it is for all-ones), wrong otherwise."""

    def backward(self, dy):
        return (self.y * (dy - dy.mean(axis=-1, keepdims=True)),)


class HalfSquare(Function):
    """y = x^2 with the factor 2 dropped from the derivative: wrong for any upstream."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, dy):
        return (dy * self.x,)


class WrongSecondInput(Function):
    """y = x * z with dz = dy (should be dy * x): only input 1 is wrong."""

    def forward(self, x, z):
        self.x, self.z = x, z
        return x * z

    def backward(self, dy):
        return dy * self.z, dy


def _all_ones_check(fn, x):
    """The weak check that gradcheck improves on: backpropagate ones, compare with finite
    differences of sum(fn(x))."""
    x.grad = None
    y = fn(x)
    y.backward(Tensor(np.ones(y.shape)))
    ones = np.ones(y.shape)
    return np.allclose(x.grad.numpy(), numerical_grad(fn, [x], 0, ones, 1e-6), atol=1e-6)


def _x():
    return Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)


def test_gradcheck_passes_a_correct_backward():
    assert gradcheck(lambda x: F.softmax(x), [_x()]) is True
    assert _all_ones_check(F.softmax, _x())


@pytest.mark.parametrize("planted", [ZeroSoftmax, CutSoftmax])
def test_gradcheck_catches_a_wrong_softmax_that_all_ones_would_miss(planted):
    assert _all_ones_check(planted.apply, _x())    # the weak check is fooled...
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3, 4\)\): at index \(\d, \d\) "
                                             r"autograd gives .*, finite differences"):
        gradcheck(planted.apply, [_x()])           # ...the random projection is not


def test_gradcheck_catches_a_missing_factor():
    with pytest.raises(GradcheckError, match="gradcheck failed"):
        gradcheck(HalfSquare.apply, [_x()])


def test_gradcheck_names_the_bad_input_only():
    x, z = _x(), _x()
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongSecondInput.apply, [x, z])
    assert "input 1 (shape (3, 4))" in str(info.value) and "input 0" not in str(info.value)
    z.requires_grad = False                        # inputs without requires_grad are not checked
    assert gradcheck(WrongSecondInput.apply, [x, z])


def test_gradcheck_runs_in_float64_and_leaves_integer_inputs_alone():
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32),
               requires_grad=True)
    seen = []

    def f(x, ids):
        seen.append((x.dtype, ids.dtype))
        return F.embedding(ids, x)
    assert gradcheck(f, [x, Tensor(np.array([0, 2, 2]))])
    assert set(seen) == {(np.dtype(np.float64), np.dtype(np.int64))}


def test_gradcheck_handles_non_contiguous_inputs():
    a = np.random.default_rng(0).standard_normal((3, 4))
    assert gradcheck(lambda x: x.tanh() * 2, [Tensor(a.T, requires_grad=True)])


def test_gradcheck_misuse():
    x = _x()
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        gradcheck(lambda x: x * 2, [Tensor(np.ones(2))])
    with pytest.raises(TypeError, match="a Tensor or a tuple of Tensors, got ndarray"):
        gradcheck(lambda x: x.data, [x])
    with pytest.raises(GradcheckError, match="fn returned float32 for float64 inputs"):
        gradcheck(lambda x: x.astype("float32"), [x])
    with pytest.raises(GradcheckError, match="the output does not require grad"):
        gradcheck(no_grad()(lambda x: x * 2), [x])


def test_a_wrong_backward_is_caught_on_the_device_too(device):
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True,
               device=device)
    assert gradcheck(lambda x: x * x, [x])
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: HalfSquare.apply(x), [x])
