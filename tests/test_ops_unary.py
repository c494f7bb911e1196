"""tinygrad_llm/ops/unary.py: exp, log, sqrt, tanh, sigmoid, relu, abs, clip.

Forward against NumPy, float64 gradcheck over hypothesis shapes (kept away from the kinks of
relu, abs and clip), torch parity, on "cpu" and the CuPy stand-in "cuda".
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_llm import Tensor
from tinygrad_llm.testing import gradcheck
from tinygrad_llm.testing import strategies as tst

# name: (our op, NumPy formula, the element range that keeps the op differentiable)
UNARY = {
    "exp": (Tensor.exp, np.exp, {}),
    "log": (Tensor.log, np.log, {"positive": True}),
    "sqrt": (Tensor.sqrt, np.sqrt, {"positive": True}),
    "tanh": (Tensor.tanh, np.tanh, {}),
    "sigmoid": (Tensor.sigmoid, lambda a: 1 / (1 + np.exp(-a)), {}),
    "relu": (Tensor.relu, lambda a: np.maximum(a, 0), {"min_magnitude": 0.01}),
    "abs": (Tensor.abs, np.abs, {"min_magnitude": 0.01}),
    "clip": (lambda x: x.clip(-0.5, 1.0), lambda a: np.clip(a, -0.5, 1.0),
             {"min_magnitude": 0.01}),
}


@pytest.mark.parametrize("op", list(UNARY))
@given(shape=tst.shapes(), data=st.data())
def test_unary_forward_and_gradcheck(device, op, shape, data):
    f, ref, ranges = UNARY[op]
    a = data.draw(tst.float_arrays(shape, **ranges))
    if op == "clip":  # keep away from the clip points too
        a = np.where(np.abs(a + 0.5) < 0.01, a + 0.02, a)
        a = np.where(np.abs(a - 1.0) < 0.01, a + 0.02, a)
    x = Tensor(a, requires_grad=True, device=device)
    y = f(x)
    assert y.device == device and y.shape == a.shape and y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), ref(a), rtol=1e-12, atol=1e-15)
    assert gradcheck(f, [x])


@pytest.mark.parametrize("op", list(UNARY))
def test_unary_against_torch(op):
    torch = pytest.importorskip("torch")
    f, _, _ = UNARY[op]
    a = np.random.default_rng(1).uniform(0.1, 3, (4, 5)) * np.array([1, -1, 1, -1, 1])
    if op in ("log", "sqrt"):
        a = np.abs(a)
    g = np.random.default_rng(2).standard_normal(a.shape)
    x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    tf = {"clip": lambda t: t.clamp(-0.5, 1.0)}.get(op, getattr(torch.Tensor, op))
    y, ty = f(x), tf(tx)
    y.backward(Tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_sigmoid_is_stable_for_large_inputs(device):
    x = Tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float32),
               requires_grad=True, device=device)
    with np.errstate(over="raise"):
        y = x.sigmoid()
    np.testing.assert_allclose(y.numpy(), [0.0, 1.9287e-22, 0.5, 1.0, 1.0], rtol=1e-4)
    assert np.isfinite(y.numpy()).all()
    y.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_relu_and_abs_gradient_at_zero_is_zero(device):
    x = Tensor(np.zeros(3), requires_grad=True, device=device)
    (x.relu() + x.abs()).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)


def test_clip_with_one_side_and_without_bounds(device):
    x = Tensor(np.array([-2.0, 0.5, 2.0]), requires_grad=True, device=device)
    np.testing.assert_array_equal(x.clip(min=0).numpy(), [0, 0.5, 2])
    np.testing.assert_array_equal(x.clip(max=1).numpy(), [-2, 0.5, 1])
    x.clip(max=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1, 0])
    with pytest.raises(ValueError, match="clip: give at least one of min and max"):
        x.clip()
