"""tinygrad_llm/ops/basic.py: + - * / ** and negation with broadcasting, casts, device moves.

Each op: forward against its NumPy formula, a float64 gradcheck with a random upstream gradient
over hypothesis shapes (broadcasting included), and values and gradients against torch. Every
test that takes ``device`` runs on "cpu" and on the CuPy stand-in "cuda" (tests/conftest.py).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_llm import Tensor
from tinygrad_llm.ops.basic import unbroadcast
from tinygrad_llm.testing import gradcheck
from tinygrad_llm.testing import strategies as tst

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a ** b, np.power),
}


def _pair(data, shapes, op):
    # Division and pow need a base (or divisor) away from 0; pow keeps exponents moderate.
    a = data.draw(tst.float_arrays(shapes[0], positive=op == "pow"))
    b = data.draw(tst.float_arrays(shapes[1], positive=op in ("div", "pow")))
    return a, b


@pytest.mark.parametrize("op", list(BINARY))
@given(shapes=tst.broadcast_pairs(), data=st.data())
def test_binary_forward_and_gradcheck(device, op, shapes, data):
    f, ref = BINARY[op]
    a, b = _pair(data, shapes, op)
    x = Tensor(a, requires_grad=True, device=device)
    z = Tensor(b, requires_grad=True, device=device)
    y = f(x, z)
    assert y.device == device and y.shape == np.broadcast_shapes(a.shape, b.shape)
    np.testing.assert_allclose(y.numpy(), ref(a, b), rtol=1e-12)
    assert gradcheck(f, [x, z], seed=0)


@pytest.mark.parametrize("op", list(BINARY))
def test_binary_with_python_scalar_on_either_side(device, op):
    f, ref = BINARY[op]
    a = np.array([0.5, 1.5, 2.0], dtype=np.float32)
    x = Tensor(a, requires_grad=True, device=device)
    for y, expected in ((f(x, 2.0), ref(a, np.float32(2))), (f(3, x), ref(np.float32(3), a))):
        assert y.dtype == np.float32  # a Python scalar never promotes float32 to float64
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    xd = Tensor(a.astype(np.float64), requires_grad=True, device=device)
    assert gradcheck(lambda x: f(x, 2.0) + f(3, x), [xd])
    f(x, 2.0).sum().backward()
    assert x.grad.dtype == np.float32


def test_scalar_base_pow_gradient_stays_float32(device):
    x = Tensor(np.array([0.5, 1.0], dtype=np.float32), requires_grad=True, device=device)
    y = 2 ** x
    y.backward(Tensor(np.ones(2, dtype=np.float32), device=device))
    np.testing.assert_allclose(x.grad.numpy(), np.log(2) * 2 ** np.array([0.5, 1.0]), rtol=1e-6)
    assert x.grad.dtype == np.float32


@given(data=st.data(), shape=tst.shapes())
def test_neg(device, data, shape):
    a = data.draw(tst.float_arrays(shape))
    x = Tensor(a, requires_grad=True, device=device)
    np.testing.assert_array_equal((-x).numpy(), -a)
    assert gradcheck(lambda x: -x, [x])


def test_binary_ops_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 2, (3, 1, 4)), rng.uniform(0.5, 2, (5, 1))
    g = rng.standard_normal((3, 5, 4))
    for op, (f, _) in BINARY.items():
        x, z = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
        tx = torch.tensor(a, requires_grad=True)
        tz = torch.tensor(b, requires_grad=True)
        y, ty = f(x, z), f(tx, tz)
        y.backward(Tensor(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, err_msg=op)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, err_msg=op)
        np.testing.assert_allclose(z.grad.numpy(), tz.grad.numpy(), rtol=1e-10, err_msg=op)


@pytest.mark.parametrize("op", list(BINARY))
def test_shapes_that_do_not_broadcast_name_op_and_shapes(device, op):
    x = Tensor(np.ones((2, 3)), device=device)
    z = Tensor(np.ones((4,)), device=device)
    with pytest.raises(ValueError, match=rf"{op}: shapes \(2, 3\) and \(4,\) do not broadcast"):
        BINARY[op][0](x, z)


@given(shapes=tst.broadcast_pairs())
def test_unbroadcast_is_the_adjoint_of_broadcasting(shapes):
    small, other = shapes
    big = np.broadcast_shapes(small, other)
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal(small), rng.standard_normal(big)
    # <broadcast(u), v> == <u, unbroadcast(v)>
    lhs = (np.broadcast_to(u, big) * v).sum()
    rhs = (u * unbroadcast(v, small)).sum()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-12)
    assert unbroadcast(v, small).shape == small


def test_cast_forward_and_gradient(device):
    x = Tensor(np.array([1.25, -2.5]), requires_grad=True, device=device)
    y = x.astype("float32")
    assert y.dtype == np.float32 and y.device == device
    y.backward(Tensor(np.array([1.0, 2.0], dtype=np.float32), device=device))
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0])
    assert x.astype("float64") is x
    i = Tensor(np.array([1, 2]), device=device).astype("float32")
    assert i.dtype == np.float32 and not i.requires_grad


def test_to_device_moves_data_and_gradient(fake_cuda):
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and isinstance(y.data, fake_cuda.ndarray)
    z = (y * y).sum()
    z.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0, 6.0])
    assert y.to("cuda") is y
    back = y.to("cpu")
    assert back.device == "cpu" and isinstance(back.data, np.ndarray)
