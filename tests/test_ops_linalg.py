"""tinygrad_llm/ops/linalg.py: matmul, 1-D, 2-D and batched N-D with broadcasting.

Forward against np.matmul, float64 gradcheck over every shape pair np.matmul accepts, torch
parity, and the inner-dimension error, on "cpu" and the CuPy stand-in "cuda".
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_llm import Tensor
from tinygrad_llm.testing import gradcheck
from tinygrad_llm.testing import strategies as tst


@given(shapes=tst.matmul_shapes(), data=st.data())
def test_matmul_forward_and_gradcheck(device, shapes, data):
    a = data.draw(tst.float_arrays(shapes[0]))
    b = data.draw(tst.float_arrays(shapes[1]))
    x = Tensor(a, requires_grad=True, device=device)
    w = Tensor(b, requires_grad=True, device=device)
    y = x @ w
    expected = np.matmul(a, b)
    assert y.shape == expected.shape and y.device == device
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x, w: x @ w, [x, w])


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)),
                                    ((4, 2, 3), (3, 5)), ((2, 3), (4, 3, 5)),
                                    ((2, 1, 2, 3), (4, 3, 2)), ((5, 3), (2, 1, 3, 4))])
def test_matmul_against_torch(shapes):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    x, w = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    tx, tw = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    y, ty = x @ w, tx @ tw
    g = rng.standard_normal(y.shape)
    y.backward(Tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_matmul_with_an_array_on_either_side(device):
    a = np.arange(6.0).reshape(2, 3)
    x = Tensor(a, requires_grad=True, device=device)
    np.testing.assert_array_equal((x @ np.eye(3)).numpy(), a)
    np.testing.assert_array_equal((np.eye(2) @ x).numpy(), a)


@pytest.mark.parametrize("shapes", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (2,)),
                                    ((5, 2, 3), (5, 4, 1))])
def test_matmul_inner_dimension_mismatch_names_op_and_shapes(device, shapes):
    x = Tensor(np.ones(shapes[0]), device=device)
    w = Tensor(np.ones(shapes[1]), device=device)
    pattern = rf"matmul: inner dimensions differ: {shapes[0]} @ {shapes[1]}".replace(
        "(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=pattern):
        x @ w


def test_matmul_batch_mismatch_and_scalars(device):
    with pytest.raises(ValueError, match=r"matmul: batch dimensions of \(2, 2, 3\) and "
                                         r"\(3, 3, 4\) do not broadcast"):
        Tensor(np.ones((2, 2, 3)), device=device) @ Tensor(np.ones((3, 3, 4)), device=device)
    with pytest.raises(ValueError, match=r"matmul: operands must have at least 1 dimension"):
        Tensor(np.ones(()), device=device) @ Tensor(np.ones((3,)), device=device)
