"""tinygrad_llm/ops/shape.py: reshape, transpose, swapaxes, .T, expand_dims, squeeze,
broadcast_to, indexing, concatenate, stack and where.

Forward against NumPy, float64 gradcheck over hypothesis shapes, torch parity, bad shapes and axes,
on "cpu" and the CuPy stand-in "cuda".
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_llm as tg
from tinygrad_llm import Tensor
from tinygrad_llm.testing import gradcheck
from tinygrad_llm.testing import strategies as tst


def _check(device, a, f, ref):
    """f(Tensor) matches ref(array) forward, and passes gradcheck."""
    x = Tensor(a, requires_grad=True, device=device)
    y = f(x)
    assert y.device == device
    expected = ref(a)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.numpy(), expected)
    assert gradcheck(f, [x])


@given(shape=tst.shapes(max_dims=4), data=st.data())
def test_reshape(device, shape, data):
    a = data.draw(tst.float_arrays(shape))
    _check(device, a, lambda x: x.reshape(-1), lambda a: a.reshape(-1))
    _check(device, a, lambda x: x.reshape(1, *shape, 1), lambda a: a.reshape(1, *shape, 1))
    _check(device, a, lambda x: x.reshape((a.size,)), lambda a: a.reshape(a.size))
    assert Tensor(a, device=device).flatten().shape == (a.size,)


@given(shape=tst.shapes(max_dims=4), data=st.data())
def test_transpose_swapaxes_and_T(device, shape, data):
    a = data.draw(tst.float_arrays(shape))
    perm = tuple(data.draw(st.permutations(range(a.ndim))))
    negative = tuple(p - a.ndim for p in perm)
    _check(device, a, lambda x: x.transpose(*perm), lambda a: a.transpose(perm))
    _check(device, a, lambda x: x.transpose(negative), lambda a: a.transpose(negative))
    _check(device, a, lambda x: x.T, lambda a: a.T)
    if a.ndim >= 2:
        _check(device, a, lambda x: x.swapaxes(0, -1), lambda a: a.swapaxes(0, -1))


@given(shape=tst.shapes(max_dims=3), data=st.data())
def test_expand_dims_and_squeeze(device, shape, data):
    a = data.draw(tst.float_arrays(shape))
    axis = data.draw(st.integers(-a.ndim - 1, a.ndim))
    _check(device, a, lambda x: x.expand_dims(axis), lambda a: np.expand_dims(a, axis))
    b = np.expand_dims(a, axis)
    _check(device, b, lambda x: x.squeeze(axis), lambda b: b.squeeze(axis))
    _check(device, b, lambda x: x.squeeze(), lambda b: b.squeeze())


@given(shapes=tst.broadcast_pairs(), data=st.data())
def test_broadcast_to(device, shapes, data):
    target = np.broadcast_shapes(*shapes)
    a = data.draw(tst.float_arrays(shapes[0]))
    _check(device, a, lambda x: x.broadcast_to(target), lambda a: np.broadcast_to(a, target))


@given(shape=tst.shapes(min_dims=1, max_dims=3), data=st.data())
def test_getitem_basic_indices(device, shape, data):
    a = data.draw(tst.float_arrays(shape))
    i = data.draw(st.integers(-shape[0], shape[0] - 1))
    start = data.draw(st.integers(0, shape[0]))
    step = data.draw(st.integers(1, 3))
    for index in (i, slice(start, None, step), (None, Ellipsis, 0), (Ellipsis, None),
                  (slice(None, None, -1),)):
        _check(device, a, lambda x, index=index: x[index], lambda a, index=index: a[index])


@given(shape=tst.shapes(min_dims=1, max_dims=3), data=st.data())
def test_getitem_integer_arrays_add_up_repeated_gradients(device, shape, data):
    a = data.draw(tst.float_arrays(shape))
    idx = data.draw(tst.index_arrays(shape[0], (5,), negative=True))
    _check(device, a, lambda x: x[idx], lambda a: a[idx])
    idx_tensor = Tensor(idx, device=device)  # an index held on the device
    _check(device, a, lambda x: x[idx_tensor], lambda a: a[idx])
    if a.ndim >= 2:
        cols = data.draw(tst.index_arrays(shape[1], (5,)))
        _check(device, a, lambda x: x[idx, cols], lambda a: a[idx, cols])
        _check(device, a, lambda x: x[:, cols], lambda a: a[:, cols])


def test_repeated_index_gradient_counts_each_use(device):
    x = Tensor(np.arange(4.0), requires_grad=True, device=device)
    x[np.array([0, 0, 3, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 0, 0, 1])


@given(shape=tst.shapes(min_dims=1, max_dims=3), data=st.data())
def test_getitem_boolean_mask(device, shape, data):
    a = data.draw(tst.float_arrays(shape))
    mask = a > 0
    mask_tensor = Tensor(a, device=device) > 0  # a device bool tensor
    _check(device, a, lambda x: x[mask_tensor], lambda a: a[mask])
    row_mask = np.arange(shape[0]) % 2 == 0
    _check(device, a, lambda x: x[row_mask], lambda a: a[row_mask])


def test_getitem_out_of_range_names_index_and_shape(device):
    x = Tensor(np.ones((2, 3)), device=device)
    with pytest.raises(IndexError, match=r"getitem: index 5 is invalid for shape \(2, 3\)"):
        x[5]


@given(shape=tst.shapes(min_dims=1, max_dims=3), n=st.integers(1, 3), data=st.data())
def test_concatenate_and_stack(device, shape, n, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    arrays = []
    for _ in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        arrays.append(data.draw(tst.float_arrays(tuple(s))))
    xs = [Tensor(a, requires_grad=True, device=device) for a in arrays]
    y = tg.concatenate(xs, axis=axis)
    np.testing.assert_array_equal(y.numpy(), np.concatenate(arrays, axis=axis))
    assert gradcheck(lambda *xs: tg.concatenate(xs, axis=axis), xs)

    same = [data.draw(tst.float_arrays(shape)) for _ in range(n)]
    new_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    ts = [Tensor(a, requires_grad=True, device=device) for a in same]
    np.testing.assert_array_equal(tg.stack(ts, axis=new_axis).numpy(),
                                  np.stack(same, axis=new_axis))
    assert gradcheck(lambda *ts: tg.stack(ts, axis=new_axis), ts)


@given(shapes=tst.broadcast_triples(), data=st.data())
def test_where(device, shapes, data):
    cond = data.draw(tst.float_arrays(shapes[0])) > 0
    a = data.draw(tst.float_arrays(shapes[1]))
    b = data.draw(tst.float_arrays(shapes[2]))
    c = Tensor(cond, device=device)
    x = Tensor(a, requires_grad=True, device=device)
    z = Tensor(b, requires_grad=True, device=device)
    y = tg.where(c, x, z)
    np.testing.assert_array_equal(y.numpy(), np.where(cond, a, b))
    assert gradcheck(lambda x, z: tg.where(c, x, z), [x, z])
    assert gradcheck(lambda x: tg.where(c, x, 0.0), [x])


def test_shape_ops_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 4))
    idx = np.array([2, 0, 2])
    cases = [
        (lambda x: x.transpose(2, 0, 1), lambda t: t.permute(2, 0, 1)),
        (lambda x: x.reshape(4, 6), lambda t: t.reshape(4, 6)),
        (lambda x: x[:, idx], lambda t: t[:, torch.tensor(idx)]),
        (lambda x: x[x > 0], lambda t: t[t > 0]),
        (lambda x: tg.concatenate([x, x * 2], axis=1), lambda t: torch.cat([t, t * 2], 1)),
        (lambda x: tg.stack([x, x * 2], axis=-1), lambda t: torch.stack([t, t * 2], -1)),
        (lambda x: tg.where(x > 0, x, x * 3), lambda t: torch.where(t > 0, t, t * 3)),
        (lambda x: x.expand_dims(1).broadcast_to((2, 5, 3, 4)),
         lambda t: t.unsqueeze(1).expand(2, 5, 3, 4)),
    ]
    for f, tf in cases:
        x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        y, ty = f(x), tf(tx)
        g = rng.standard_normal(y.shape)
        y.backward(Tensor(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy())
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_bad_shapes_and_axes_raise_value_error(device):
    x = Tensor(np.ones((2, 3)), device=device)
    with pytest.raises(ValueError, match=r"reshape: .*shape \(2, 3\) \(6 elements\) .*\(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"transpose: axes \(0, 0\) .* shape \(2, 3\)"):
        x.transpose(0, 0)
    with pytest.raises(ValueError, match=r"transpose: axes \(0,\)"):
        x.transpose(0)
    with pytest.raises(ValueError, match=r"swapaxes: axes \(0, 2\) out of range .*\(2, 3\)"):
        x.swapaxes(0, 2)
    with pytest.raises(ValueError, match=r"expand_dims: axis 3 is out of range .*\(2, 3\)"):
        x.expand_dims(3)
    with pytest.raises(ValueError, match=r"squeeze: axis 0 of shape \(2, 3\) has size 2"):
        x.squeeze(0)
    with pytest.raises(ValueError, match=r"broadcast_to: shape \(2, 3\) .* \(4, 3\)"):
        x.broadcast_to((4, 3))
    with pytest.raises(ValueError, match=r"concatenate: shapes \[\(2, 3\), \(3, 2\)\]"):
        tg.concatenate([x, Tensor(np.ones((3, 2)), device=device)], axis=0)
    with pytest.raises(ValueError, match=r"stack: all shapes must be equal"):
        tg.stack([x, Tensor(np.ones((3, 2)), device=device)])
    with pytest.raises(ValueError, match=r"stack: axis 3 is out of range"):
        tg.stack([x, x], axis=3)
    with pytest.raises(ValueError, match=r"where: shapes \(2, 3\), \(4,\) and \(\)"):
        tg.where(x > 0, Tensor(np.ones(4), device=device), 0.0)
    with pytest.raises(ValueError, match="concatenate: needs at least one tensor"):
        tg.concatenate([])
