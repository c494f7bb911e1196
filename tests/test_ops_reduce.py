"""tinygrad_llm/ops/reduce.py: sum, mean, max, min, var with axis=None|int|tuple and keepdims.

Forward against NumPy, float64 gradcheck over hypothesis shapes and axes, torch parity, bad axes,
on "cpu" and the CuPy stand-in "cuda" (where reductions return 0-d arrays, never scalars).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_llm import Tensor
from tinygrad_llm.testing import gradcheck
from tinygrad_llm.testing import strategies as tst

REDUCE = {
    "sum": lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims),
    "mean": lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims),
    "max": lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims),
    "min": lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims),
    "var": lambda x, axis, keepdims: x.var(axis=axis, keepdims=keepdims),
}


@pytest.mark.parametrize("op", list(REDUCE))
@given(shape=tst.shapes(min_dims=0, max_dims=3), keepdims=st.booleans(), data=st.data())
def test_reduce_forward_and_gradcheck(device, op, shape, keepdims, data):
    # max and min: distinct elements, so no tie sits within finite differences' reach
    if op in ("max", "min"):
        a = data.draw(tst.distinct_float_arrays(shape))
    else:
        a = data.draw(tst.float_arrays(shape))
    axis = data.draw(tst.reduction_axes(len(shape)))
    x = Tensor(a, requires_grad=True, device=device)
    y = REDUCE[op](x, axis, keepdims)
    expected = getattr(np, op)(a, axis=axis, keepdims=keepdims)
    assert y.shape == np.shape(expected) and y.device == device
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert gradcheck(lambda x: REDUCE[op](x, axis, keepdims), [x])


@pytest.mark.parametrize("op", list(REDUCE))
def test_reduce_against_torch(op):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).permutation(24).reshape(2, 3, 4) * 0.1
    g = np.random.default_rng(1).standard_normal((2, 4))
    x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y = REDUCE[op](x, 1, False)
    ty = {"sum": lambda: tx.sum(1), "mean": lambda: tx.mean(1), "max": lambda: tx.amax(1),
          "min": lambda: tx.amin(1), "var": lambda: tx.var(1, unbiased=False)}[op]()
    y.backward(Tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_max_ties_share_the_gradient_like_torch_amax(device):
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True, device=device)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


@given(shape=tst.shapes(min_dims=1), data=st.data())
def test_var_with_ddof(device, shape, data):
    a = data.draw(tst.float_arrays(shape))
    if a.size < 2:
        a = np.concatenate([a.ravel(), [0.5]])
    x = Tensor(a, requires_grad=True, device=device)
    np.testing.assert_allclose(x.var(ddof=1).numpy(), np.var(a, ddof=1), rtol=1e-12)
    assert gradcheck(lambda x: x.var(ddof=1), [x])
    with pytest.raises(ValueError, match="var: .* no degrees of freedom"):
        x.var(axis=0, ddof=a.shape[0])


def test_full_reduction_gives_a_0d_tensor(device):
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, device=device)
    for op in REDUCE:
        y = REDUCE[op](x, None, False)
        assert y.shape == () and y.ndim == 0 and y.device == device
        assert isinstance(y.item(), float)


@pytest.mark.parametrize("op", list(REDUCE))
@pytest.mark.parametrize("axis", [2, -3, (0, 0)])
def test_bad_axes_raise_value_error_naming_op_and_shape(device, op, axis):
    x = Tensor(np.ones((2, 3)), device=device)
    with pytest.raises(ValueError, match=op):
        REDUCE[op](x, axis, False)
    with pytest.raises(ValueError, match=r"\(2, 3\)|repeated"):
        REDUCE[op](x, axis, False)


def test_max_of_empty_tensor_raises(device):
    with pytest.raises(ValueError, match=r"max: cannot reduce an empty tensor of shape \(0,\)"):
        Tensor(np.zeros(0), device=device).max()
