"""tinygrad_llm/ops/nn.py and ops/special.py: the fused ops and erf.

Each fused op (softmax, log_softmax, cross_entropy, layer_norm, gelu, linear, embedding, dropout,
binary_cross_entropy_with_logits) gets: forward against a NumPy formula; a float64 gradcheck with
a random upstream gradient over hypothesis shapes; a check against the composition of primitives
it replaces (values and gradients); and torch parity. On "cpu" and the CuPy stand-in "cuda".
For softmax, log_softmax, cross_entropy, layer_norm and gelu that composition is their reference
in tinygrad_llm/reference.py, checked in tests/test_reference.py (float64 and float32); the short
ones (linear, embedding, dropout, binary cross-entropy) are composed here.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_llm as tg
import tinygrad_llm.nn.functional as F
from tinygrad_llm import Tensor
from tinygrad_llm.ops.special import erf, normal_cdf
from tinygrad_llm.testing import gradcheck
from tinygrad_llm.testing import strategies as tst


def _np_softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _same_values_and_grads(device, fused, composed, arrays, rtol=1e-10, atol=1e-12):
    """fused(*xs) == composed(*xs) in value and in gradient (random upstream), float64."""
    results = []
    for f in (fused, composed):
        xs = [Tensor(a, requires_grad=True, device=device) for a in arrays]
        y = f(*xs)
        g = np.random.default_rng(7).standard_normal(y.shape)
        y.backward(Tensor(g, device=device))
        results.append((y.numpy(), [x.grad.numpy() for x in xs]))
    (y1, g1), (y2, g2) = results
    np.testing.assert_allclose(y1, y2, rtol=rtol, atol=atol)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _axis_and_array(data, max_dims=3):
    shape = data.draw(tst.shapes(min_dims=1, max_dims=max_dims))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    return data.draw(tst.float_arrays(shape, low=-4, high=4)), axis


# ---- softmax and log_softmax -------------------------------------------------------------------
@given(data=st.data())
def test_softmax(device, data):
    a, axis = _axis_and_array(data)
    x = Tensor(a, requires_grad=True, device=device)
    np.testing.assert_allclose(F.softmax(x, axis).numpy(), _np_softmax(a, axis), rtol=1e-12)
    assert gradcheck(lambda x: F.softmax(x, axis), [x])


@given(data=st.data())
def test_log_softmax(device, data):
    a, axis = _axis_and_array(data)
    x = Tensor(a, requires_grad=True, device=device)
    np.testing.assert_allclose(F.log_softmax(x, axis).numpy(), np.log(_np_softmax(a, axis)),
                               rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda x: F.log_softmax(x, axis), [x])


def test_softmax_is_stable_for_large_logits(device):
    x = Tensor(np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32), device=device)
    np.testing.assert_allclose(F.softmax(x).numpy(), [[1, 0, 0]])
    np.testing.assert_allclose(F.log_softmax(x).numpy(), [[0, -1000, -2000]])


# ---- cross-entropy -----------------------------------------------------------------------------
def _draw_logits_and_targets(data, n, c):
    """Logits (n, c) and targets (n,), some rows ignored (-100) but never all of them."""
    a = data.draw(tst.float_arrays((n, c), low=-4, high=4))
    t = data.draw(tst.index_arrays(c, (n,)))
    ignored = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if all(ignored):
        ignored[0] = False  # 'mean' over no rows is 0/0
    return a, np.where(ignored, -100, t)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(n=st.integers(1, 5), c=st.integers(1, 5), data=st.data())
def test_cross_entropy(device, reduction, n, c, data):
    a, t = _draw_logits_and_targets(data, n, c)
    x = Tensor(a, requires_grad=True, device=device)
    targets = Tensor(t, device=device)
    logp = np.log(_np_softmax(a, 1))
    valid = t != -100
    per_row = np.where(valid, -logp[np.arange(n), np.where(valid, t, 0)], 0.0)
    expected = {"mean": per_row.sum() / valid.sum(), "sum": per_row.sum(), "none": per_row}
    y = F.cross_entropy(x, targets, reduction=reduction)
    np.testing.assert_allclose(y.numpy(), expected[reduction], rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda x: F.cross_entropy(x, targets, reduction=reduction), [x])


def test_cross_entropy_custom_ignore_index_and_list_targets(device):
    x = Tensor(np.zeros((3, 4)), requires_grad=True, device=device)
    y = F.cross_entropy(x, [1, 2, 3], ignore_index=2)
    np.testing.assert_allclose(y.numpy(), math.log(4))
    y.backward()
    np.testing.assert_allclose(x.grad.numpy()[1], 0)


def test_cross_entropy_bad_input(device):
    x = Tensor(np.zeros((2, 3)), requires_grad=True, device=device)
    with pytest.raises(ValueError, match=r"cross_entropy: logits must be \(N, C\), got shape"):
        F.cross_entropy(Tensor(np.zeros(3), device=device), [0, 1, 2])
    with pytest.raises(ValueError, match=r"cross_entropy: targets must have shape \(2,\)"):
        F.cross_entropy(x, Tensor(np.zeros(3, int), device=device))
    with pytest.raises(TypeError, match="cross_entropy: targets must be integers"):
        F.cross_entropy(x, Tensor(np.zeros(2), device=device))
    with pytest.raises(ValueError, match="cross_entropy: reduction must be"):
        F.cross_entropy(x, Tensor(np.zeros(2, int), device=device), reduction="avg")


def test_cross_entropy_target_out_of_range_raises_on_cpu():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match="cross_entropy: target 3 is out of range for 3 classes"):
        F.cross_entropy(x, [0, 3])


def _np_smoothed_cross_entropy(a, t, eps, reduction, ignore_index=-100):
    """-(1 - eps) log p[n, t_n] - (eps / C) sum_c log p[n, c], 0 on ignored rows."""
    n, c = a.shape
    logp = np.log(_np_softmax(a, 1))
    valid = t != ignore_index
    picked = logp[np.arange(n), np.where(valid, t, 0)]
    per_row = np.where(valid, -(1 - eps) * picked - eps / c * logp.sum(axis=1), 0.0)
    return {"mean": per_row.sum() / valid.sum(), "sum": per_row.sum(), "none": per_row}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(n=st.integers(1, 5), c=st.integers(1, 5), eps=st.floats(0, 1), data=st.data())
def test_cross_entropy_label_smoothing(device, reduction, n, c, eps, data):
    a, t = _draw_logits_and_targets(data, n, c)
    x = Tensor(a, requires_grad=True, device=device)
    targets = Tensor(t, device=device)
    y = F.cross_entropy(x, targets, reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(y.numpy(), _np_smoothed_cross_entropy(a, t, eps, reduction),
                               rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda x: F.cross_entropy(x, targets, reduction=reduction,
                                               label_smoothing=eps), [x])


def test_cross_entropy_label_smoothing_gradient_is_p_minus_q_and_zero_on_ignored_rows(device):
    a = np.random.default_rng(3).standard_normal((4, 5))
    t, eps = np.array([1, -100, 4, 0]), 0.2
    x = Tensor(a, requires_grad=True, device=device)
    g = np.array([0.5, -1.0, 2.0, 1.5])
    F.cross_entropy(x, t, reduction="none", label_smoothing=eps).backward(Tensor(g, device=device))
    q = np.full((4, 5), eps / 5)                                          # (N, C)
    q[[0, 2, 3], [1, 4, 0]] += 1 - eps
    expected = g[:, None] * (_np_softmax(a, 1) - q)
    expected[1] = 0                                                       # the ignored row
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_cross_entropy_label_smoothing_keeps_float32(device):
    x = Tensor(np.zeros((3, 4), np.float32), requires_grad=True, device=device)
    y = F.cross_entropy(x, [0, 1, 2], label_smoothing=np.float64(0.1))   # a float64 scalar eps
    y.backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), math.log(4), rtol=1e-6)       # uniform p: any q


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan")])
def test_cross_entropy_label_smoothing_out_of_range(device, eps):
    x = Tensor(np.zeros((2, 3)), requires_grad=True, device=device)
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be in \[0, 1\], "
                                         rf"got {eps}"):
        F.cross_entropy(x, [0, 1], label_smoothing=eps)


# ---- layer norm --------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [True, False])
@given(shape=tst.shapes(min_dims=1, max_dims=3, min_side=2), data=st.data())
def test_layer_norm(device, affine, shape, data):
    a = data.draw(tst.float_arrays(shape))
    c = shape[-1]
    w = data.draw(tst.float_arrays((c,))) if affine else None
    b = data.draw(tst.float_arrays((c,))) if affine else None
    eps = 1e-5
    xhat = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + eps)
    expected = xhat * w + b if affine else xhat
    arrays = [a, w, b] if affine else [a]
    xs = [Tensor(v, requires_grad=True, device=device) for v in arrays]
    fused = (lambda x, w, b: F.layer_norm(x, w, b, eps)) if affine else (
        lambda x: F.layer_norm(x, eps=eps))
    np.testing.assert_allclose(fused(*xs).numpy(), expected, rtol=1e-9, atol=1e-9)
    assert gradcheck(fused, xs, atol=1e-4)


def test_layer_norm_bad_weight_shape(device):
    x = Tensor(np.zeros((2, 3)), device=device)
    with pytest.raises(ValueError, match=r"layer_norm: weight must have shape \(3,\) for input "
                                         r"\(2, 3\), got \(4,\)"):
        F.layer_norm(x, Tensor(np.ones(4), device=device))


# ---- GELU and erf ------------------------------------------------------------------------------
def test_erf_against_math_erf_to_float64_precision(device):
    a = np.concatenate([np.linspace(-7, 7, 4001), [0.0, 0.46875, -0.46875, 4.0, -4.0, 30.0]])
    expected = np.array([math.erf(v) for v in a])
    x = Tensor(a, device=device)
    got = erf(x.data)
    assert tg.backend.device_of(got) == device
    np.testing.assert_allclose(Tensor(got).numpy(), expected, rtol=0, atol=4e-16)
    got32 = Tensor(erf(x.astype("float32").data)).numpy()
    assert got32.dtype == np.float32  # computed in float32: no float64 on the device
    np.testing.assert_allclose(got32, expected, rtol=0, atol=3e-7)


def test_normal_cdf_float64_exact_and_float32_accurate_in_the_tails(device):
    a = np.concatenate([np.linspace(-12, 12, 4801), [0.0, -0.5, 0.5]])
    expected = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in a])
    x = Tensor(a, device=device)
    np.testing.assert_allclose(Tensor(normal_cdf(x.data)).numpy(), expected, rtol=1e-14,
                               atol=4e-16)
    got32 = Tensor(normal_cdf(x.astype("float32").data)).numpy()
    assert got32.dtype == np.float32
    a32 = a.astype(np.float32).astype(np.float64)   # compare at the float32 inputs
    expected32 = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in a32])
    np.testing.assert_allclose(got32, expected32, rtol=2e-5, atol=2e-7)  # relative in the tail
    half = Tensor(normal_cdf(x.astype("float16").data)).numpy()
    assert half.dtype == np.float16


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(2001,), (300, 257)])  # (300, 257): computed in blocks
def test_gelu_float32_against_torch(approximate, shape):
    torch = pytest.importorskip("torch")
    a = np.linspace(-10, 10, int(np.prod(shape))).astype(np.float32)
    a = np.random.default_rng(0).permutation(a).reshape(shape)
    g = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = F.gelu(x, approximate), torch.nn.functional.gelu(tx, approximate=approximate)
    y.backward(Tensor(g))
    ty.backward(torch.tensor(g))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    # tanh form, x << 0: 1 + tanh(u) cancels in float32, differently in each ordering
    atol = 1e-6 if approximate == "none" else 1e-5
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=2e-6, atol=atol)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=2e-6, atol=atol)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@given(shape=tst.shapes(), data=st.data())
def test_gelu(device, approximate, shape, data):
    a = data.draw(tst.float_arrays(shape, low=-5, high=5))
    x = Tensor(a, requires_grad=True, device=device)
    if approximate == "none":
        expected = a * 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in a.ravel()])
                              .reshape(a.shape))
    else:
        expected = 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))
    np.testing.assert_allclose(F.gelu(x, approximate).numpy(), expected, rtol=1e-13, atol=1e-15)
    assert gradcheck(lambda x: F.gelu(x, approximate), [x])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_against_torch_in_float64(approximate):
    torch = pytest.importorskip("torch")
    a = np.linspace(-8, 8, 1001)
    g = np.random.default_rng(0).standard_normal(a.shape)
    x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y = F.gelu(x, approximate)
    ty = torch.nn.functional.gelu(tx, approximate=approximate)
    y.backward(Tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-14, atol=1e-15)
    # tanh form, x << 0: 1 + tanh(u) cancels; the two orderings differ by ~1e-14 absolute there
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-13,
                               atol=1e-15 if approximate == "none" else 1e-13)


def test_gelu_bad_approximate(device):
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        F.gelu(Tensor(np.zeros(2), device=device), "erf")


# ---- linear, embedding -------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@given(lead=tst.shapes(min_dims=0, max_dims=2), i=st.integers(1, 4), o=st.integers(1, 4),
       data=st.data())
def test_linear(device, bias, lead, i, o, data):
    a = data.draw(tst.float_arrays(lead + (i,)))
    w = data.draw(tst.float_arrays((o, i)))
    b = data.draw(tst.float_arrays((o,)))
    arrays = [a, w, b] if bias else [a, w]
    xs = [Tensor(v, requires_grad=True, device=device) for v in arrays]
    expected = a @ w.T + b if bias else a @ w.T
    y = F.linear(*xs)
    assert y.shape == lead + (o,)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(F.linear, xs)

    def composed(x, w, b=None):
        return x @ w.T + b if b is not None else x @ w.T
    _same_values_and_grads(device, F.linear, composed, arrays)


def test_linear_feature_mismatch(device):
    with pytest.raises(ValueError, match=r"linear: input has 3 features \(shape \(2, 3\)\) but "
                                         r"the weight expects 4 \(weight shape \(5, 4\)\)"):
        F.linear(Tensor(np.ones((2, 3)), device=device), Tensor(np.ones((5, 4)), device=device))


@given(v=st.integers(1, 6), d=st.integers(1, 3), ids_shape=tst.shapes(min_dims=1, max_dims=2),
       data=st.data())
def test_embedding(device, v, d, ids_shape, data):
    w = data.draw(tst.float_arrays((v, d)))
    ids = data.draw(tst.index_arrays(v, ids_shape))
    weight = Tensor(w, requires_grad=True, device=device)
    ids_t = Tensor(ids, device=device)
    y = F.embedding(ids_t, weight)
    assert y.shape == ids_shape + (d,)
    np.testing.assert_array_equal(y.numpy(), w[ids])
    assert gradcheck(lambda w: F.embedding(ids_t, w), [weight])
    _same_values_and_grads(device, lambda w: F.embedding(ids_t, w), lambda w: w[ids_t], [w])


def test_embedding_backward_with_many_repeated_ids(device):
    # More than 64 ids: the CPU takes the sort-and-reduceat path of cpu.scatter_add.
    ids = np.random.default_rng(0).integers(0, 5, size=(10, 30))
    w = Tensor(np.zeros((5, 2)), requires_grad=True, device=device)
    F.embedding(Tensor(ids, device=device), w).sum().backward()
    counts = np.bincount(ids.ravel(), minlength=5)
    np.testing.assert_array_equal(w.grad.numpy(), np.repeat(counts[:, None], 2, 1))


def test_embedding_bad_ids(device):
    w = Tensor(np.zeros((5, 2)), requires_grad=True, device=device)
    with pytest.raises(TypeError, match="embedding: ids must be integers"):
        F.embedding(Tensor(np.zeros(3), device=device), w)


def test_embedding_out_of_range_raises_on_cpu():
    w = Tensor(np.zeros((5, 2)), requires_grad=True)
    with pytest.raises(IndexError, match="embedding: id 5 is out of range for a table of 5 rows"):
        F.embedding([0, 5], w)
    with pytest.raises(IndexError, match="embedding: id -1 is out of range"):
        F.embedding([-1, 2], w)


# ---- dropout -----------------------------------------------------------------------------------
def _seeded_dropout(p):
    def f(x):
        tg.manual_seed(3)  # the same mask on every call, for finite differences
        return F.dropout(x, p)
    return f


@given(shape=tst.shapes(min_dims=1), p=st.sampled_from([0.1, 0.5, 0.9]), data=st.data())
def test_dropout(device, shape, p, data):
    a = data.draw(tst.float_arrays(shape, min_magnitude=0.1))
    x = Tensor(a, requires_grad=True, device=device)
    y = _seeded_dropout(p)(x).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], a[kept] / (1 - p), rtol=1e-12)
    assert gradcheck(_seeded_dropout(p), [x])
    mask = Tensor(kept / (1 - p), device=device)
    _same_values_and_grads(device, _seeded_dropout(p), lambda x: x * mask, [a])


def test_dropout_rate_eval_and_bad_p(device):
    x = Tensor(np.ones((200, 100), dtype=np.float32), requires_grad=True, device=device)
    y = F.dropout(x, 0.3).numpy()
    assert abs((y == 0).mean() - 0.3) < 0.02 and y.dtype == np.float32
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    assert F.dropout(x, 0.3, training=False) is x
    assert F.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got 1"):
        F.dropout(x, 1)


def test_dropout_is_reproducible_from_the_seed(device):
    x = Tensor(np.ones(50), device=device)
    tg.manual_seed(5)
    a = F.dropout(x, 0.5).numpy()
    tg.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)


# ---- binary cross-entropy with logits ----------------------------------------------------------
@given(shape=tst.shapes(), data=st.data())
def test_bce_with_logits(device, shape, data):
    a = data.draw(tst.float_arrays(shape, low=-6, high=6))
    t = data.draw(tst.float_arrays(shape, low=0, high=1))
    x = Tensor(a, requires_grad=True, device=device)
    target = Tensor(t, device=device)
    s = 1 / (1 + np.exp(-a))
    expected = -(t * np.log(s) + (1 - t) * np.log(1 - s))
    y = F.binary_cross_entropy_with_logits(x, target, reduction="none")
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-9, atol=1e-12)
    for reduction in ("mean", "sum", "none"):
        assert gradcheck(
            lambda x, r=reduction: F.binary_cross_entropy_with_logits(x, target, reduction=r), [x])
    _same_values_and_grads(
        device, lambda x: F.binary_cross_entropy_with_logits(x, target),
        lambda x: F.binary_cross_entropy(x.sigmoid(), target), [a], rtol=1e-9, atol=1e-12)


def test_bce_with_logits_is_stable_and_checks_shapes(device):
    x = Tensor(np.array([-1000.0, 1000.0], dtype=np.float32), requires_grad=True, device=device)
    y = F.binary_cross_entropy_with_logits(x, Tensor(np.array([1.0, 0.0]), device=device),
                                           reduction="none")
    np.testing.assert_allclose(y.numpy(), [1000, 1000])
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: input \(2,\) and "
                                         r"target \(3,\)"):
        F.binary_cross_entropy_with_logits(x, Tensor(np.zeros(3, np.float32), device=device))


# ---- torch parity for every fused op -----------------------------------------------------------
def test_fused_ops_against_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 5))
    w, b = rng.standard_normal(5), rng.standard_normal(5)
    lw = rng.standard_normal((3, 5))
    t = np.array([0, 4, -100, 2, 2, 1])
    bt = rng.uniform(0, 1, (6, 5))
    ids = np.array([[0, 2, 2], [5, 0, 1]])
    cases = {
        "softmax": (lambda x: F.softmax(x, 0), lambda x: tf.softmax(x, 0)),
        "log_softmax": (F.log_softmax, lambda x: tf.log_softmax(x, -1)),
        "cross_entropy": (lambda x: F.cross_entropy(x, t),
                          lambda x: tf.cross_entropy(x, torch.tensor(t))),
        "cross_entropy_sum": (lambda x: F.cross_entropy(x, t, reduction="sum"),
                              lambda x: tf.cross_entropy(x, torch.tensor(t), reduction="sum")),
        "cross_entropy_none": (lambda x: F.cross_entropy(x, t, reduction="none"),
                               lambda x: tf.cross_entropy(x, torch.tensor(t), reduction="none")),
        "layer_norm": (lambda x: F.layer_norm(x, Tensor(w), Tensor(b)),
                       lambda x: tf.layer_norm(x, (5,), torch.tensor(w), torch.tensor(b))),
        "linear": (lambda x: F.linear(x, Tensor(lw)), lambda x: tf.linear(x, torch.tensor(lw))),
        "embedding": (lambda x: F.embedding(ids, x), lambda x: tf.embedding(torch.tensor(ids), x)),
        "bce_with_logits": (
            lambda x: F.binary_cross_entropy_with_logits(x, bt),
            lambda x: tf.binary_cross_entropy_with_logits(x, torch.tensor(bt))),
    }
    for name, (ours, theirs) in cases.items():
        x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        y, ty = ours(x), theirs(tx)
        g = rng.standard_normal(y.shape)
        y.backward(Tensor(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("dtype, tol", [("float64", dict(rtol=1e-10, atol=1e-12)),
                                        ("float32", dict(rtol=1e-5, atol=1e-6))])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
def test_cross_entropy_label_smoothing_against_torch(eps, reduction, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    a = (rng.standard_normal((7, 6)) * 3).astype(dtype)
    t = np.array([0, 5, -100, 2, 2, -100, 1])
    x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y = F.cross_entropy(x, t, reduction=reduction, label_smoothing=eps)
    ty = torch.nn.functional.cross_entropy(tx, torch.tensor(t), reduction=reduction,
                                           label_smoothing=eps)
    g = rng.standard_normal(y.shape).astype(dtype)
    y.backward(Tensor(g))
    ty.backward(torch.tensor(g))
    assert y.dtype == dtype and x.grad.dtype == dtype
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_bad_axis(device, op):
    with pytest.raises(ValueError, match=rf"{op}: axis 2 is out of range for shape \(2, 3\)"):
        getattr(F, op)(Tensor(np.zeros((2, 3)), device=device), axis=2)
