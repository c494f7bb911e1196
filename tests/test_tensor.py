"""tinygrad_llm/tensor.py's Tensor API: construction and dtype rules, attributes, methods,
operators, comparisons, repr, and the module-level creation functions. On "cpu" and the CuPy
stand-in "cuda".
"""

import numpy as np
import pytest

import tinygrad_llm as tg
import tinygrad_llm.nn as nn
from tinygrad_llm import Tensor


def test_dtype_rules():
    assert Tensor(np.zeros(2)).dtype == np.float64          # a NumPy array keeps its dtype
    assert Tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert Tensor(np.float64(1.5)).dtype == np.float64       # so does a NumPy scalar
    assert Tensor(1.5).dtype == np.float32                   # Python floats become float32
    assert Tensor([1.0, 2.5]).dtype == np.float32
    assert Tensor(3).dtype == np.int64                       # Python ints become int64
    assert Tensor([1, 2]).dtype == np.int64
    assert Tensor([True]).dtype == bool
    assert Tensor([1, 2], dtype="float64").dtype == np.float64
    assert Tensor(1.5, dtype=np.float16).dtype == np.float16


def test_construction_on_a_device(device):
    for data in (1.5, [1.0, 2.0], np.arange(3.0), Tensor(np.ones(2))):
        t = Tensor(data, device=device)
        assert t.device == device
        assert tg.backend.device_of(t.data) == device
    t = Tensor(np.arange(6.0).reshape(2, 3), device=device)
    assert Tensor(t).data is t.data                          # a Tensor shares its array
    assert Tensor(t.data).device == device                   # so does a device array


def test_attributes(device):
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, device=device)
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert t.dtype == np.float64 and t.device == device and t.requires_grad
    assert t.grad is None and t.is_leaf
    assert tg.backend.device_of(t.data) == device


def test_requires_grad_on_an_integer_tensor_raises():
    with pytest.raises(TypeError, match="requires_grad=True needs a floating dtype, got int64"):
        Tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="bool"):
        Tensor([True], requires_grad=True)


def test_numpy_item_tolist(device):
    t = Tensor(np.array([[1.5, 2.0]]), device=device)
    a = t.numpy()
    assert isinstance(a, np.ndarray)
    np.testing.assert_array_equal(a, [[1.5, 2.0]])
    assert t.tolist() == [[1.5, 2.0]]
    assert t.sum().item() == 3.5 and isinstance(t.sum().item(), float)
    assert float(t.sum()) == 3.5
    assert Tensor([7], device=device).item() == 7
    with pytest.raises(ValueError, match=r"item: only a one-element tensor .* shape \(1, 2\)"):
        t.item()


def test_numpy_conversion_is_explicit_on_cuda(device):
    t = Tensor(np.array([[1.0, 2.0]]), requires_grad=True, device=device)
    if device == "cpu":
        a = np.asarray(t)
        assert a.dtype == np.float64 and a.shape == (1, 2) and a is t.data
        assert np.array(t, dtype=np.float32).dtype == np.float32
        assert np.array(t, copy=True) is not t.data
        np.testing.assert_array_equal(t, [[1.0, 2.0]])
    else:
        with pytest.raises(TypeError, match=r"tensor on 'cuda' .* call \.numpy\(\)"):
            np.asarray(t)
    np.testing.assert_array_equal((np.ones(2) + t).numpy(), [[2.0, 3.0]])  # still a Tensor op


def test_bool_of_a_tensor(device):
    assert bool(Tensor([1.0], device=device) > 0)
    assert not bool(Tensor(0.0, device=device))
    with pytest.raises(ValueError, match="truth value of a tensor with 3 elements is ambiguous"):
        bool(Tensor([1.0, 2.0, 3.0], device=device) > 0)


def test_repr(device):
    t = Tensor(np.array([1.0, 2.0]), requires_grad=True, device=device)
    assert repr(t) == f"Tensor([1., 2.], dtype=float64, device='{device}', requires_grad=True)"
    assert repr(t * 2).endswith("grad_fn=Mul)")
    assert "..." in repr(Tensor(np.zeros(1000), device=device))  # long tensors are summarised


def test_to_and_astype(fake_cuda):
    t = Tensor(np.arange(3.0))
    assert t.to("cpu") is t
    c = t.to("cuda:0")
    assert c.device == "cuda" and c.to("cuda") is c
    np.testing.assert_array_equal(c.to("cpu").numpy(), [0, 1, 2])
    assert c.astype("float32").dtype == np.float32 and c.astype("float32").device == "cuda"
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; expected one of "
                                         r"\('cpu', 'cuda'\)"):
        t.to("tpu")


def test_operators_with_scalars_arrays_and_tensors(device):
    a = np.array([1.0, 2.0, 4.0])
    x = Tensor(a, device=device)
    cases = [
        (x + 1, a + 1), (1 + x, 1 + a), (x - 1, a - 1), (1 - x, 1 - a), (x * 3, a * 3),
        (3 * x, 3 * a), (x / 2, a / 2), (2 / x, 2 / a), (x ** 2, a ** 2), (2 ** x, 2 ** a),
        (-x, -a), (x + x, a + a), (x + np.float64(1), a + 1),
    ]
    for got, expected in cases:
        assert got.device == device
        np.testing.assert_allclose(got.numpy(), expected)
    # NumPy arrays on either side become constants on the tensor's device
    np.testing.assert_allclose((x * np.array([1.0, 0.0, 2.0])).numpy(), [1, 0, 8])
    np.testing.assert_allclose((np.array([1.0, 0.0, 2.0]) * x).numpy(), [1, 0, 8])
    np.testing.assert_allclose((np.ones(3) - x).numpy(), 1 - a)


def test_comparisons_give_bool_tensors_outside_the_graph(device):
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True, device=device)
    y = Tensor(np.array([3.0, 2.0, 1.0]), device=device)
    for got, expected in ((x == y, [0, 1, 0]), (x != y, [1, 0, 1]), (x < y, [1, 0, 0]),
                          (x <= y, [1, 1, 0]), (x > 2, [0, 0, 1]), (x >= 2, [0, 1, 1])):
        assert got.dtype == bool and not got.requires_grad and got._ctx is None
        assert got.device == device
        np.testing.assert_array_equal(got.numpy(), np.array(expected, dtype=bool))
    assert len({x, y}) == 2                                  # hashed by identity


def test_argmax(device):
    x = Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]]), device=device)
    np.testing.assert_array_equal(x.argmax(axis=1).numpy(), [1, 0])
    assert x.argmax().item() == 3


def test_creation_functions(device):
    assert tg.zeros(2, 3, device=device).shape == (2, 3)
    assert tg.zeros((2, 3), device=device).dtype == np.float32
    np.testing.assert_array_equal(tg.ones(2, dtype="float64", device=device).numpy(), [1, 1])
    np.testing.assert_array_equal(tg.full((2,), 7.0, device=device).numpy(), [7, 7])
    a = tg.arange(5, device=device)
    assert a.dtype == np.int64 and a.device == device
    np.testing.assert_array_equal(tg.arange(1, 7, 2, dtype="float32").numpy(), [1, 3, 5])
    r = tg.randn(3, 4, device=device, requires_grad=True)
    assert r.shape == (3, 4) and r.dtype == np.float32 and r.requires_grad
    u = tg.rand(1000, dtype="float64", device=device).numpy()
    assert u.dtype == np.float64 and 0 <= u.min() and u.max() < 1


def test_one_seed_gives_the_same_numbers_on_every_device(fake_cuda):
    tg.manual_seed(42)
    cpu = tg.randn(4, 3).numpy()
    tg.manual_seed(42)
    cuda = tg.randn(4, 3, device="cuda").numpy()
    np.testing.assert_array_equal(cpu, cuda)
    tg.manual_seed(42)
    layer_cpu = nn.Linear(3, 2)
    tg.manual_seed(42)
    layer_cuda = nn.Linear(3, 2, device="cuda")
    np.testing.assert_array_equal(layer_cpu.weight.numpy(), layer_cuda.weight.numpy())


def test_numpy_returns_a_copy(device):
    t = Tensor(np.array([1.0, 2.0], np.float32), device=device)
    a = t.numpy()
    a[0] = 99.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])   # the tensor is unchanged
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
