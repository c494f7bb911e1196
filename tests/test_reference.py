r"""tinygrad_llm/reference.py: every fast path equals its readable twin.

Each fused Function (tinygrad_llm/ops) is run beside the reference built from Tensor primitives,
on the same inputs, and both are pulled back with the same *random* upstream gradient; outputs
and every input's gradient must agree. In float64 the two differ only by rounding (1e-10); in
float32 the tolerances are stated at each test, and the float32 GELU, which runs another
algorithm than float64 (the fitted Mills-ratio formula of ops/special.py), is compared in float32.
The Adam step is compared with optim.py's in-place update and with the Adam and AdamW optimizers
over several steps. float64 tests run on "cpu" and on the CuPy stand-in "cuda".
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_llm
from tinygrad_llm import Tensor, reference
from tinygrad_llm.nn import CausalSelfAttention, Parameter
from tinygrad_llm.nn import functional as F
from tinygrad_llm.ops import word2vec
from tinygrad_llm.ops.attention import qkv_attention, scaled_dot_product_attention
from tinygrad_llm.optim import Adam, AdamW, adam_update_
from tinygrad_llm.testing import strategies as tst

F64 = dict(rtol=1e-10, atol=1e-12)
F32 = dict(rtol=1e-5, atol=1e-6)      # float32: the measured gaps are below 2e-7 absolute


def _run(fn, arrays, dtype, device, upstream_seed, seed=None):
    """fn on leaves made from ``arrays`` (None passes through), pulled back with a random
    upstream gradient; returns the output and every leaf's gradient as NumPy arrays. ``seed``
    reseeds the generators first (dropout then draws the same mask for each fn)."""
    leaves = [None if a is None else Tensor(np.asarray(a, dtype), requires_grad=True,
                                            device=device) for a in arrays]
    if seed is not None:
        tinygrad_llm.manual_seed(seed)
    y = fn(*leaves)
    g = np.random.default_rng(upstream_seed).standard_normal(y.shape).astype(dtype)
    y.backward(Tensor(g, device=device))
    assert y.dtype == dtype
    return y.numpy(), [leaf.grad.numpy() for leaf in leaves if leaf is not None]


def _same(fast, ref, arrays, dtype="float64", device="cpu", rtol=1e-10, atol=1e-12, seed=None,
          grad_tol=None):
    """fast(*xs) == ref(*xs), outputs and gradients (one random upstream gradient for both);
    ``grad_tol`` (rtol, atol) for the gradients where they differ from the outputs'."""
    dtype = np.dtype(dtype)
    y1, g1 = _run(fast, arrays, dtype, device, upstream_seed=11, seed=seed)
    y2, g2 = _run(ref, arrays, dtype, device, upstream_seed=11, seed=seed)
    np.testing.assert_allclose(y1, y2, rtol=rtol, atol=atol, err_msg="output")
    grad_rtol, grad_atol = grad_tol or (rtol, atol)
    assert len(g1) == len(g2)
    for i, (a, b) in enumerate(zip(g1, g2)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=grad_rtol, atol=grad_atol,
                                   err_msg=f"gradient of input {i}")


def _axis_and_array(data, max_dims=3):
    shape = data.draw(tst.shapes(min_dims=1, max_dims=max_dims))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    return data.draw(tst.float_arrays(shape, low=-6, high=6)), axis


# ---- softmax and log_softmax -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data())
def test_softmax_float64(device, name, data):
    a, axis = _axis_and_array(data)
    _same(lambda x: getattr(F, name)(x, axis), lambda x: getattr(reference, name)(x, axis),
          [a], device=device, **F64)


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_float32(name, axis):
    a = np.random.default_rng(0).uniform(-8, 8, (5, 7, 9))
    # float32 rounding of exp, sum and log: a few units of 6e-8
    _same(lambda x: getattr(F, name)(x, axis), lambda x: getattr(reference, name)(x, axis),
          [a], "float32", **F32)


# ---- cross-entropy -----------------------------------------------------------------------------
def _targets(rng, n, c, ignore_index=-100):
    t = rng.integers(0, c, n)
    t[rng.random(n) < 0.3] = ignore_index
    t[0] = 0                                       # at least one row counts ('mean' over M > 0)
    return t


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(n=st.integers(1, 6), c=st.integers(1, 6), data=st.data())
def test_cross_entropy_float64(device, reduction, n, c, data):
    a = data.draw(tst.float_arrays((n, c), low=-6, high=6))
    t = _targets(np.random.default_rng(n * 10 + c), n, c)
    targets = Tensor(t, device=device)
    _same(lambda x: F.cross_entropy(x, targets, reduction=reduction),
          lambda x: reference.cross_entropy(x, targets, reduction=reduction),
          [a], device=device, **F64)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_float32_custom_ignore_index_and_list_targets(reduction):
    rng = np.random.default_rng(1)
    a = rng.uniform(-8, 8, (9, 6))
    t = _targets(rng, 9, 6, ignore_index=4).tolist()         # a plain list, 4 ignored
    _same(lambda x: F.cross_entropy(x, t, ignore_index=4, reduction=reduction),
          lambda x: reference.cross_entropy(x, t, ignore_index=4, reduction=reduction),
          [a], "float32", **F32)


def test_cross_entropy_reference_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    a, t = rng.standard_normal((6, 5)), np.array([0, 4, -100, 2, 2, 1])
    for reduction in ("mean", "sum", "none"):
        ours = reference.cross_entropy(Tensor(a), t, reduction=reduction).numpy()
        theirs = torch.nn.functional.cross_entropy(torch.tensor(a), torch.tensor(t),
                                                   reduction=reduction).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(n=st.integers(1, 6), c=st.integers(1, 6), eps=st.floats(0, 1), data=st.data())
def test_cross_entropy_label_smoothing_float64(device, reduction, n, c, eps, data):
    a = data.draw(tst.float_arrays((n, c), low=-6, high=6))
    t = _targets(np.random.default_rng(n * 10 + c), n, c)
    targets = Tensor(t, device=device)
    _same(lambda x: F.cross_entropy(x, targets, reduction=reduction, label_smoothing=eps),
          lambda x: reference.cross_entropy(x, targets, reduction=reduction,
                                            label_smoothing=eps),
          [a], device=device, **F64)


@pytest.mark.parametrize("eps", [0.1, 0.6, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_label_smoothing_float32(device, reduction, eps):
    rng = np.random.default_rng(3)
    a = rng.uniform(-8, 8, (9, 6))
    t = _targets(rng, 9, 6, ignore_index=4)
    _same(lambda x: F.cross_entropy(x, t, ignore_index=4, reduction=reduction,
                                    label_smoothing=eps),
          lambda x: reference.cross_entropy(x, t, ignore_index=4, reduction=reduction,
                                            label_smoothing=eps),
          [a], "float32", device=device, **F32)


def test_cross_entropy_reference_label_smoothing_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    a, t = rng.standard_normal((6, 5)), np.array([0, 4, -100, 2, 2, 1])
    for eps in (0.05, 0.3, 1.0):
        for reduction in ("mean", "sum", "none"):
            ours = reference.cross_entropy(Tensor(a), t, reduction=reduction,
                                           label_smoothing=eps).numpy()
            theirs = torch.nn.functional.cross_entropy(torch.tensor(a), torch.tensor(t),
                                                       reduction=reduction,
                                                       label_smoothing=eps).numpy()
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14,
                                       err_msg=f"{eps} {reduction}")


@pytest.mark.parametrize("eps", [-0.5, 1.01])
def test_cross_entropy_reference_label_smoothing_out_of_range(eps):
    with pytest.raises(ValueError, match=rf"cross_entropy: label_smoothing must be in \[0, 1\], "
                                         rf"got {eps}"):
        reference.cross_entropy(Tensor(np.zeros((2, 3))), [0, 1], label_smoothing=eps)


# ---- layer norm --------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [True, False])
@given(shape=tst.shapes(min_dims=1, max_dims=3, min_side=2), data=st.data())
def test_layer_norm_float64(device, affine, shape, data):
    c = shape[-1]
    arrays = [data.draw(tst.float_arrays(shape))]
    if affine:
        arrays += [data.draw(tst.float_arrays((c,))), data.draw(tst.float_arrays((c,)))]
    # the fast path's means are BLAS dot products, the reference's NumPy sums: rounding apart
    _same(lambda *xs: F.layer_norm(*xs), lambda *xs: reference.layer_norm(*xs), arrays,
          device=device, **F64)


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_float32(affine):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((4, 6, 32)) * 3 + 1]
    if affine:
        arrays += [rng.standard_normal(32), rng.standard_normal(32)]
    _same(lambda *xs: F.layer_norm(*xs), lambda *xs: reference.layer_norm(*xs), arrays,
          "float32", **F32)


# ---- GELU and the normal CDF -------------------------------------------------------------------
def _gelu_inputs(rng, n=3000):
    """Both tails, the middle and the points where the fast paths change formula."""
    edges = [0.0, -0.0, 0.46875 * math.sqrt(2), -0.46875 * math.sqrt(2), 4 * math.sqrt(2),
             -4 * math.sqrt(2), 6 * math.sqrt(2), -6 * math.sqrt(2)]
    return np.concatenate([np.linspace(-12, 12, n), rng.standard_normal(n) * 3, edges])


def test_normal_cdf_from_primitives_is_exact_to_float64_rounding():
    a = np.concatenate([np.linspace(-12, 12, 6001), [0.0, 0.5, -0.5]])
    expected = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in a])
    got = reference.normal_cdf(Tensor(a)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)     # erf to within 1.2e-15
    x = Tensor(a, requires_grad=True)
    reference.normal_cdf(x).sum().backward()                          # Phi'(x) = phi(x)
    phi = np.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    # absolute: for |x| near 8 the derivative's terms, each about 12, cancel to below 1e-15
    np.testing.assert_allclose(x.grad.numpy(), phi, rtol=0, atol=1e-14)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float64(device, approximate):
    a = _gelu_inputs(np.random.default_rng(4))
    _same(lambda x: F.gelu(x, approximate), lambda x: reference.gelu(x, approximate), [a],
          device=device, rtol=1e-10, atol=1e-13)


def test_gelu_float32_path_that_trains():
    """float32 runs the fitted Mills-ratio Phi of ops/special.py, not erf; the reference's Phi
    is the erf series rounded once to float32. y: rtol 1e-6 and atol 1e-12 over [-12, 12], so
    relative even in the negative tail (measured 7e-7). dx = dy (Phi + x phi): rtol 2e-5 and
    atol 1e-7 (float32 rounding of the sum; for x << 0 its two terms cancel)."""
    a = _gelu_inputs(np.random.default_rng(5))
    _same(F.gelu, reference.gelu, [a], "float32", rtol=1e-6, atol=1e-12, grad_tol=(2e-5, 1e-7))


def test_gelu_tanh_float32():
    """Same formula in float32: y to the bit here; dx in another order, rtol 1e-5, atol 1e-6."""
    a = _gelu_inputs(np.random.default_rng(6))
    _same(lambda x: F.gelu(x, "tanh"), lambda x: reference.gelu(x, "tanh"), [a], "float32",
          rtol=1e-6, atol=1e-12, grad_tol=(1e-5, 1e-6))


# ---- attention ---------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [True, False])
@given(b=st.integers(1, 2), nh=st.integers(1, 3), t=st.integers(1, 6), hs=st.integers(1, 4),
       seed=st.integers(0, 99))
def test_attention_float64(device, causal, b, nh, t, hs, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((b, nh, t, hs)) for _ in range(3)]
    _same(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=causal),
          lambda q, k, v: reference.attention(q, k, v, causal=causal), arrays, device=device,
          **F64)


@pytest.mark.parametrize("causal", [True, False])
def test_attention_fewer_queries_than_keys_and_a_scale(causal):
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 5, 3)),
              rng.standard_normal((2, 5, 4))]                      # q (2, 3, 3), k, v (2, 5, .)
    _same(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=causal, scale=0.7),
          lambda q, k, v: reference.attention(q, k, v, causal=causal, scale=0.7), arrays, **F64)


@pytest.mark.parametrize("dtype,tol", [("float64", F64), ("float32", F32)])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_attention_with_and_without_dropout(device, dtype, tol, dropout_p):
    """The same seed draws the same dropout mask in both: the numbers must agree."""
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((2, 3, 7, 5)) for _ in range(3)]
    _same(lambda q, k, v: scaled_dot_product_attention(q, k, v, dropout_p=dropout_p),
          lambda q, k, v: reference.attention(q, k, v, dropout_p=dropout_p), arrays, dtype,
          device, seed=3, **tol)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_packed_qkv_attention_equals_the_reference_on_split_heads(dropout_p):
    b, t, nh, hs = 2, 6, 3, 4
    c = nh * hs

    def split_then_reference(qkv):
        heads = qkv.reshape(b, t, 3, nh, hs).transpose(2, 0, 3, 1, 4)         # (3, B, nh, T, hs)
        y = reference.attention(heads[0], heads[1], heads[2], dropout_p=dropout_p)
        return y.transpose(0, 2, 1, 3).reshape(b, t, c)                        # (B, T, C)

    qkv = np.random.default_rng(9).standard_normal((b, t, 3 * c))
    _same(lambda x: qkv_attention(x, nh, dropout_p=dropout_p), split_then_reference, [qkv],
          seed=4, **F64)


def test_reference_attention_matches_torch():
    torch = pytest.importorskip("torch")
    arrays = [np.random.default_rng(10).standard_normal((2, 3, 8, 4)) for _ in range(3)]
    ours = reference.attention(*(Tensor(a) for a in arrays)).numpy()
    theirs = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a) for a in arrays), is_causal=True).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


# ---- Adam and AdamW ----------------------------------------------------------------------------
HYPER = dict(lr=3e-2, beta1=0.9, beta2=0.99, eps=1e-8)
DECAYS = [(0.0, False), (0.1, False), (0.0, True), (0.1, True)]   # Adam, Adam+L2, AdamW


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("weight_decay,decoupled", DECAYS)
def test_adam_update_equals_the_in_place_step(dtype, rtol, weight_decay, decoupled):
    """Eight steps of optim.adam_update_ (in place) and reference.adam_update (new arrays);
    float32: the in-place step rounds the same terms in another order (rtol 1e-5)."""
    rng = np.random.default_rng(11)
    p = rng.standard_normal((4, 5)).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rp, rm, rv = p.copy(), m.copy(), v.copy()
    for step in range(1, 9):
        g = rng.standard_normal(p.shape).astype(dtype)
        kwargs = dict(HYPER, weight_decay=weight_decay, step=step, decoupled=decoupled)
        g_before, rp_before = g.copy(), rp.copy()
        adam_update_(p, g, m, v, **kwargs)
        rp, rm, rv = reference.adam_update(rp, g, rm, rv, **kwargs)
        np.testing.assert_array_equal(g, g_before)          # neither changes the gradient
        assert not np.array_equal(rp, rp_before) and rp.dtype == dtype
        for fast, ref in ((p, rp), (m, rm), (v, rv)):
            np.testing.assert_allclose(fast, ref, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("weight_decay,decoupled", DECAYS)
def test_adam_and_adamw_optimizers_follow_the_reference(flat, weight_decay, decoupled):
    rng = np.random.default_rng(12)
    shapes = [(3, 4), (5,)]
    params = [Parameter(rng.standard_normal(s)) for s in shapes]
    kind = AdamW if decoupled else Adam
    opt = kind(params, lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"],
               weight_decay=weight_decay, flat=flat)
    state = [(p.numpy(), np.zeros(p.shape), np.zeros(p.shape)) for p in params]
    for step in range(1, 6):
        grads = [rng.standard_normal(s) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = Tensor(g)
        opt.step()
        state = [reference.adam_update(rp, g, rm, rv, **HYPER, weight_decay=weight_decay,
                                       step=step, decoupled=decoupled)
                 for (rp, rm, rv), g in zip(state, grads)]
        for p, (rp, _, _) in zip(params, state):
            np.testing.assert_allclose(p.numpy(), rp, rtol=1e-12, atol=1e-15)


# ---- word2vec ----------------------------------------------------------------------------------
def _sgns_arrays(rng, b=5, k=3, d=4):
    return [rng.standard_normal((b, d)), rng.standard_normal((b, d)),
            rng.standard_normal((b, k, d))]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype,tol", [("float64", F64), ("float32", F32)])
def test_sgns_loss(device, masked, dtype, tol):
    rng = np.random.default_rng(13)
    arrays = _sgns_arrays(rng)
    mask = Tensor((rng.random((5, 3)) < 0.7).astype(dtype), device=device) if masked else None
    _same(lambda *xs: word2vec.sgns_loss(*xs, neg_mask=mask),
          lambda *xs: reference.sgns_loss(*xs, neg_mask=mask), arrays, dtype, device, **tol)


def test_sgns_loss_for_large_scores():
    """Scores of +-400: e^{400} overflows, e^{-|s|} does not; both stay finite and agree."""
    v, u_pos = np.full((2, 2), 20.0), np.array([[-10.0, -10.0], [10.0, 10.0]])
    u_neg = np.array([[[10.0, 10.0]], [[-10.0, -10.0]]])
    _same(word2vec.sgns_loss, reference.sgns_loss, [v, u_pos, u_neg], **F64)
    np.testing.assert_allclose(reference.sgns_loss(*map(Tensor, (v, u_pos, u_neg))).numpy(),
                               [800.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype,tol", [("float64", F64), ("float32", F32)])
def test_skipgram_loss_of_whole_windows(masked, dtype, tol):
    rng = np.random.default_rng(14)
    b, w, k, d = 5, 2, 3, 4
    c = 2 * w
    arrays = [rng.standard_normal((b + c, d)), rng.standard_normal((b, k + 1, d))]
    ctx_mask = (rng.random((b, c)) < 0.7).astype(dtype)
    ctx_mask[0] = 0                                               # a centre with no context
    neg_mask = (rng.random((b, k)) < 0.7).astype(dtype) if masked else None
    _same(lambda *xs: word2vec.skipgram_loss(*xs, ctx_mask, neg_mask),
          lambda *xs: reference.skipgram_loss(*xs, ctx_mask, neg_mask), arrays, dtype, **tol)


# ---- the unfused module branch runs the reference ----------------------------------------------
def test_unfused_causal_self_attention_runs_the_reference(monkeypatch):
    calls, original = [], reference.attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(reference, "attention", spy)
    att = CausalSelfAttention(8, 2, fused=False)
    att(Tensor(np.random.default_rng(15).standard_normal((2, 3, 8))))
    assert calls == [dict(causal=True, dropout_p=0.0)]
