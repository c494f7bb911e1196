"""The fused attention Functions (tinygrad_llm/ops/attention.py) and CausalSelfAttention:
finite-difference gradchecks with random upstream gradients, agreement with the composition of
primitives they replace (tinygrad_llm.reference.attention; tests/test_reference.py checks it in
float64 and float32, with and without dropout), causality, dropout, what backward keeps, and
parity with torch."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_llm
from tinygrad_llm import Function, Tensor, reference
from tinygrad_llm.nn import CausalSelfAttention
from tinygrad_llm.ops import attention
from tinygrad_llm.ops.attention import qkv_attention, scaled_dot_product_attention
from tinygrad_llm.testing import gradcheck, module_gradcheck


def _t(rng, shape, dtype="float64", requires_grad=True):
    return Tensor(rng.standard_normal(shape), requires_grad=requires_grad, dtype=dtype)


@given(b=st.integers(1, 2), nh=st.integers(1, 3), t=st.integers(1, 6), hs=st.integers(1, 4),
       causal=st.booleans())
def test_attention_gradcheck(b, nh, t, hs, causal):
    rng = np.random.default_rng(b * 100 + nh * 10 + t + hs)
    q, k, v = (_t(rng, (b, nh, t, hs)) for _ in range(3))
    gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=causal), [q, k, v],
              seed=0)


def test_attention_gradcheck_fewer_queries_than_keys():
    rng = np.random.default_rng(1)
    q, k, v = _t(rng, (2, 2, 3)), _t(rng, (2, 5, 3)), _t(rng, (2, 5, 4))
    gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, scale=0.7), [q, k, v],
              seed=1)


def test_attention_more_queries_than_keys_without_the_causal_mask():
    rng = np.random.default_rng(12)             # cross-attention: L target rows over S < L keys
    q, k, v = _t(rng, (2, 2, 5, 3)), _t(rng, (2, 2, 3, 3)), _t(rng, (2, 2, 3, 3))
    gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=False), [q, k, v],
              seed=13)
    y = scaled_dot_product_attention(q, k, v, causal=False)
    assert np.allclose(y.numpy(), reference.attention(q, k, v, causal=False).numpy())


@given(b=st.integers(1, 2), nh=st.integers(1, 3), t=st.integers(1, 5), hs=st.integers(1, 3))
def test_qkv_attention_gradcheck(b, nh, t, hs):
    rng = np.random.default_rng(b * 100 + nh * 10 + t + hs)
    qkv = _t(rng, (b, t, 3 * nh * hs))
    gradcheck(lambda x: qkv_attention(x, nh), [qkv], seed=2)


def test_gradcheck_with_dropout():
    """Dropout redraws its mask on every call, so reseed inside fn: the mask is then fixed."""
    rng = np.random.default_rng(3)
    qkv = _t(rng, (2, 4, 12))

    def fn(x):
        tinygrad_llm.manual_seed(7)
        return qkv_attention(x, 2, dropout_p=0.3)

    gradcheck(fn, [qkv], seed=3)
    q, k, v = (_t(rng, (1, 2, 4, 3)) for _ in range(3))

    def fn2(q, k, v):
        tinygrad_llm.manual_seed(8)
        return scaled_dot_product_attention(q, k, v, dropout_p=0.5)

    gradcheck(fn2, [q, k, v], seed=4)


@pytest.mark.parametrize("causal", [True, False])
def test_fused_matches_primitives(causal):
    rng = np.random.default_rng(4)
    ins = [_t(rng, (2, 3, 7, 5), dtype="float32") for _ in range(3)]
    ref = [Tensor(x.numpy().copy(), requires_grad=True) for x in ins]
    y = scaled_dot_product_attention(*ins, causal=causal)
    y_ref = reference.attention(*ref, causal=causal)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(g))
    y_ref.backward(Tensor(g))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-5, atol=1e-6)
    for a, r in zip(ins, ref):
        assert a.grad.dtype == np.float32
        np.testing.assert_allclose(a.grad.numpy(), r.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_qkv_attention_matches_split_heads():
    rng = np.random.default_rng(5)
    b, t, nh, hs = 2, 6, 3, 4
    c = nh * hs
    qkv = _t(rng, (b, t, 3 * c))
    y = qkv_attention(qkv, nh)
    heads = qkv.numpy().reshape(b, t, 3, nh, hs).transpose(2, 0, 3, 1, 4)   # (3, B, nh, T, hs)
    ref = reference.attention(*(Tensor(h) for h in heads))                  # (B, nh, T, hs)
    np.testing.assert_allclose(y.numpy(), ref.numpy().transpose(0, 2, 1, 3).reshape(b, t, c),
                               rtol=1e-12)


def test_causal_future_does_not_leak():
    rng = np.random.default_rng(6)
    qkv = rng.standard_normal((1, 6, 24))
    y1 = qkv_attention(Tensor(qkv), 2).numpy()
    qkv[:, 4:] += rng.standard_normal((1, 2, 24))                          # change the future
    y2 = qkv_attention(Tensor(qkv), 2).numpy()
    np.testing.assert_array_equal(y1[:, :4], y2[:, :4])
    assert not np.allclose(y1[:, 4:], y2[:, 4:])


class _KeepsNothing(Function):
    """A Function that saves nothing: what is left on it is what the engine itself keeps."""

    def forward(self, x):
        return x.copy()

    def backward(self, dy):
        return (dy,)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
@pytest.mark.parametrize("packed", [True, False])
def test_attention_saves_only_what_backward_needs(packed, dropout_p):
    """Exactly q, k, v, P, y, the dropout mask (None without dropout) and two scalars: no (T, T)
    scores, Pd or dP. q, k, v of the packed Function are views of its input, not copies."""
    rng = np.random.default_rng(7)
    b, t, nh, hs = 2, 4, 2, 3
    if packed:
        x = _t(rng, (b, t, 3 * nh * hs), dtype="float32")
        y = qkv_attention(x, nh, dropout_p=dropout_p)
    else:
        x = _t(rng, (b, nh, t, hs), dtype="float32")
        y = scaled_dot_product_attention(x, x, x, dropout_p=dropout_p)
    fn = y._ctx
    engine = set(vars(_KeepsNothing.apply(Tensor(np.zeros(1), requires_grad=True))._ctx))
    assert set(vars(fn)) - engine == {"q", "k", "v", "p", "keep", "y", "dropout_p", "scale"}
    arrays = {name for name, value in vars(fn).items() if hasattr(value, "shape")} - engine
    assert arrays == {"q", "k", "v", "p", "y"} | ({"keep"} if dropout_p else set())
    assert fn.p.shape == (b, nh, t, t) and fn.dropout_p == dropout_p
    if dropout_p:
        assert fn.keep.shape == (b, nh, t, t) and fn.keep.dtype == bool     # M
    else:
        assert fn.keep is None
    if packed:
        assert all(np.shares_memory(a, x.data) for a in (fn.q, fn.k, fn.v))


def test_attention_errors():
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="head size"):
        scaled_dot_product_attention(_t(rng, (2, 3)), _t(rng, (2, 4)), _t(rng, (2, 3)))
    with pytest.raises(ValueError, match="more queries"):
        scaled_dot_product_attention(_t(rng, (5, 3)), _t(rng, (2, 3)), _t(rng, (2, 3)))
    with pytest.raises(ValueError, match="divisible"):
        qkv_attention(_t(rng, (1, 2, 10)), 3)
    with pytest.raises(ValueError, match="dropout_p"):
        qkv_attention(_t(rng, (1, 2, 6)), 1, dropout_p=1.0)
    with pytest.raises(ValueError, match="not divisible"):
        CausalSelfAttention(10, 3)


@pytest.mark.parametrize("fused", [True, False])
def test_causal_self_attention_gradcheck(fused):
    att = CausalSelfAttention(6, 2, fused=fused)
    x = _t(np.random.default_rng(9), (2, 3, 6))
    module_gradcheck(att, att, [x], seed=5)


def test_fused_and_unfused_modules_agree_with_dropout():
    rng = np.random.default_rng(10)
    att = CausalSelfAttention(8, 2, dropout=0.25)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    g = rng.standard_normal((2, 5, 8)).astype(np.float32)                   # upstream dL/dy
    results = []
    for fused in (True, False):
        att.fused = fused
        att.zero_grad()
        tinygrad_llm.manual_seed(3)
        xt = Tensor(x, requires_grad=True)
        y = att(xt)
        y.backward(Tensor(g))
        results.append((y.numpy(), xt.grad.numpy(), att.c_attn.weight.grad.numpy()))
    # Both draw the same masks from the same seed in the same order, so they agree.
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_matches_torch_scaled_dot_product_attention():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal((2, 3, 8, 4)).astype(np.float32) for _ in range(3)]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = scaled_dot_product_attention(*ours)
    ty = torch.nn.functional.scaled_dot_product_attention(*theirs, is_causal=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_fused_attention_on_each_device(device):
    """The same numbers on "cpu" and on the CuPy stand-in "cuda", forward and backward, with no
    host reads in between; dropout draws on the device."""
    import fake_cupy
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 5, 24)).astype(np.float32)
    g = rng.standard_normal((2, 5, 8)).astype(np.float32)
    results = {}
    for dev in ("cpu", device):
        qkv = Tensor(x, requires_grad=True, device=dev)
        with fake_cupy.counting() as counts:
            y = qkv_attention(qkv, 2)
            y.backward(Tensor(g, device=dev))
        assert counts["sync"] == 0 and y.dtype == np.float32 and y.device == dev
        results[dev] = (y.numpy(), qkv.grad.numpy())
    for a, b in zip(results["cpu"], results[device]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    qkv = Tensor(x, requires_grad=True, device=device)
    y = qkv_attention(qkv, 2, dropout_p=0.5)
    y.backward(Tensor(g, device=device))
    assert np.isfinite(qkv.grad.numpy()).all()


def _padding_mask(rng, b, t, dtype):
    """An additive (B, 1, 1, T) padding mask as BERT builds it: 0 for tokens, finfo.min for
    padding, with at least the first key of each row kept."""
    keep = rng.random((b, t)) < 0.6
    keep[:, 0] = True
    return np.where(keep, 0.0, np.finfo(dtype).min).astype(dtype)[:, None, None, :]


@given(b=st.integers(1, 2), nh=st.integers(1, 3), t=st.integers(1, 6), hs=st.integers(1, 3))
def test_attention_with_an_additive_mask_gradcheck(b, nh, t, hs):
    rng = np.random.default_rng(b * 100 + nh * 10 + t + hs)
    q, k, v = (_t(rng, (b, nh, t, hs)) for _ in range(3))
    mask = _padding_mask(rng, b, t, np.float64)
    gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=False, mask=mask),
              [q, k, v], seed=5)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_masked_attention_equals_the_reference_and_ignores_padding(dtype, tol):
    rng = np.random.default_rng(9)
    ins = [_t(rng, (2, 3, 6, 4), dtype=dtype) for _ in range(3)]
    ref = [Tensor(x.numpy().copy(), requires_grad=True) for x in ins]
    mask = _padding_mask(rng, 2, 6, np.dtype(dtype))
    y = scaled_dot_product_attention(*ins, causal=False, mask=mask)
    y_ref = reference.attention(*ref, causal=False, mask=mask)
    g = rng.standard_normal(y.shape).astype(dtype)
    y.backward(Tensor(g))
    y_ref.backward(Tensor(g))
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=tol, atol=tol)
    for a, r in zip(ins, ref):
        np.testing.assert_allclose(a.grad.numpy(), r.grad.numpy(), rtol=10 * tol, atol=10 * tol)
    padded = mask[:, 0, 0, :] < 0                                           # (B, T)
    assert np.all(ins[1].grad.numpy().transpose(0, 2, 1, 3)[padded] == 0)  # no gradient to k
    # Dropping the padded keys altogether gives the same outputs (row 0, in NumPy).
    keep = ~padded[0]
    q0, k0, v0 = ins[0].numpy()[0], ins[1].numpy()[0][:, keep], ins[2].numpy()[0][:, keep]
    s = q0 @ k0.swapaxes(-1, -2) / np.sqrt(4)                               # (nh, T, T')
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    y0 = (p / p.sum(axis=-1, keepdims=True)) @ v0                           # (nh, T, hs)
    np.testing.assert_allclose(y.numpy()[0], y0, rtol=10 * tol, atol=10 * tol)


def test_a_mask_that_does_not_fit_is_an_error():
    rng = np.random.default_rng(10)
    q, k, v = (_t(rng, (2, 3, 4, 5)) for _ in range(3))
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, causal=False, mask=np.zeros((3, 1, 1, 4)))
    with pytest.raises(ValueError, match="dtype"):
        scaled_dot_product_attention(q, k, v, causal=False,
                                     mask=np.zeros((2, 1, 1, 4), dtype=np.float32))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_blocks_give_the_same_bits(monkeypatch, dtype):
    """Scores larger than BLOCK run a block of heads at a time (on the CPU): forward, dropout
    mask and every gradient are the same bits as in one block, whether the blocks cut the batch
    axis or the heads; and a blocked run passes its gradcheck."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((3, 7, 3 * 4 * 2))                              # (B, T, 3C), nh = 4
    dy = rng.standard_normal((3, 7, 8))                                     # (B, T, C)
    mask = np.where(rng.random((3, 1, 1, 7)) < 0.3, -1e4, 0).astype(dtype)  # (B, 1, 1, T)
    results = []
    for block in (attention.BLOCK, 49, 98, 200):    # one block; one head; two heads; one row
        monkeypatch.setattr(attention, "BLOCK", block)
        qkv = Tensor(x, requires_grad=True, dtype=dtype)
        tinygrad_llm.manual_seed(5)
        y = qkv_attention(qkv, 4, dropout_p=0.3)
        y.backward(Tensor(dy, dtype=dtype))
        q, k, v = (Tensor(a, requires_grad=True, dtype=dtype) for a in x.reshape(3, 7, 3, 4, 2)
                   .transpose(2, 0, 3, 1, 4))                               # (B, nh, T, hs) each
        y2 = scaled_dot_product_attention(q, k, v, mask=mask)
        y2.backward(Tensor(dy.reshape(3, 7, 4, 2).transpose(0, 2, 1, 3), dtype=dtype))
        results.append([a.numpy() for a in (y, qkv.grad, y2, q.grad, k.grad, v.grad)])
    for blocked in results[1:]:
        for a, b in zip(blocked, results[0]):
            np.testing.assert_array_equal(a, b)
    if dtype == "float64":
        monkeypatch.setattr(attention, "BLOCK", 25)                         # a head a block
        q, k, v = (_t(rng, (2, 3, 5, 2)) for _ in range(3))
        gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v), [q, k, v], seed=15)
