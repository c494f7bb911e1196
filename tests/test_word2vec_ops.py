"""The negative-sampling Functions (gradchecked in float64 against a random upstream gradient),
their match with the composition of primitives and with each other (the trainer's whole-window
losses against the per-pair ones), and row-sparse embedding gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_llm import Tensor
from tinygrad_llm.kernels.cpu import scatter_add
from tinygrad_llm.nn.functional import embedding
from tinygrad_llm.nn.layers import Embedding
from tinygrad_llm.ops.sparse import RowSparseGrad
from tinygrad_llm.ops.word2vec import (
    cbow_loss,
    centre_mask,
    centre_word_loss,
    context_mean,
    log_sigmoid,
    sgns_loss,
    skipgram_loss,
    window_offsets,
    window_spread,
    window_sum,
)
from tinygrad_llm.optim import SGD, Adam
from tinygrad_llm.testing import gradcheck


def _t(rng, *shape, scale=1.0):
    return Tensor(scale * rng.standard_normal(shape), requires_grad=True, dtype="float64")


@given(B=st.integers(1, 4), K=st.integers(1, 4), D=st.integers(1, 5), seed=st.integers(0, 99))
def test_sgns_gradcheck(B, K, D, seed):
    rng = np.random.default_rng(seed)
    v, u_pos, u_neg = _t(rng, B, D), _t(rng, B, D), _t(rng, B, K, D)
    mask = (rng.random((B, K)) < 0.7).astype(np.float64)
    gradcheck(lambda a, b, c: sgns_loss(a, b, c, mask), [v, u_pos, u_neg], seed=seed)
    gradcheck(lambda a, b, c: sgns_loss(a, b, c), [v, u_pos, u_neg], seed=seed)


@given(B=st.integers(1, 4), C=st.integers(1, 4), K=st.integers(1, 3), D=st.integers(1, 4),
       seed=st.integers(0, 99))
def test_cbow_gradcheck(B, C, K, D, seed):
    rng = np.random.default_rng(seed)
    v_ctx, u_pos, u_neg = _t(rng, B, C, D), _t(rng, B, D), _t(rng, B, K, D)
    ctx_mask = (rng.random((B, C)) < 0.6).astype(np.float64)
    ctx_mask[:, 0] = 1                                       # every row has a context word
    neg_mask = (rng.random((B, K)) < 0.8).astype(np.float64)
    gradcheck(lambda a, b, c: cbow_loss(a, b, c, ctx_mask, neg_mask), [v_ctx, u_pos, u_neg],
              seed=seed)


def test_sgns_matches_primitives():
    rng = np.random.default_rng(0)
    v, u_pos, u_neg = _t(rng, 3, 4, scale=3), _t(rng, 3, 4), _t(rng, 3, 2, 4)
    fused = sgns_loss(v, u_pos, u_neg)
    s_pos = (v * u_pos).sum(axis=-1)
    s_neg = (u_neg * v.expand_dims(1)).sum(axis=-1)
    composed = -s_pos.sigmoid().log() - (-s_neg).sigmoid().log().sum(axis=-1)
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-12)
    g = Tensor(rng.standard_normal(3))
    fused.backward(g)
    grads = [t.grad.numpy().copy() for t in (v, u_pos, u_neg)]
    for t in (v, u_pos, u_neg):
        t.grad = None
    composed.backward(g)
    for a, t in zip(grads, (v, u_pos, u_neg)):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_log_sigmoid_is_stable():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    expected = np.array([-1000.0, -30.0 - np.log1p(np.exp(-30.0)), -np.log(2.0),
                         -np.log1p(np.exp(-30.0)), 0.0])
    np.testing.assert_allclose(log_sigmoid(x), expected, rtol=1e-12, atol=1e-300)


def test_cbow_rejects_empty_context():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no context word"):
        cbow_loss(_t(rng, 2, 3, 4), _t(rng, 2, 4), _t(rng, 2, 1, 4), np.array([[1.0, 0, 0],
                                                                              [0, 0, 0]]))


# ---- whole windows: the trainer's Functions ---------------------------------------------------
def _window_batch(rng, B, W, K, D, dtype="float64"):
    """v_pos (B + 2W, D), u_out (B, K+1, D) tensors; ctx_mask (B, 2W), neg_mask (B, K) arrays."""
    def t(*shape):
        return Tensor(rng.standard_normal(shape), requires_grad=True, dtype=dtype)
    ctx_mask = (rng.random((B, 2 * W)) < 0.6).astype(dtype)
    ctx_mask[0] = 0                                          # a centre word with no context
    neg_mask = (rng.random((B, K)) < 0.8).astype(dtype)
    return t(B + 2 * W, D), t(B, K + 1, D), ctx_mask, neg_mask


@given(B=st.integers(1, 4), W=st.integers(1, 3), K=st.integers(1, 3), D=st.integers(1, 4),
       seed=st.integers(0, 99))
def test_skipgram_loss_gradcheck(B, W, K, D, seed):
    v_pos, u_out, ctx_mask, neg_mask = _window_batch(np.random.default_rng(seed), B, W, K, D)
    gradcheck(lambda v, u: skipgram_loss(v, u, ctx_mask, neg_mask), [v_pos, u_out], seed=seed)
    gradcheck(lambda v, u: skipgram_loss(v, u, ctx_mask), [v_pos, u_out], seed=seed)


def _pairs_of_windows(v_pos, u_out, ctx_mask, neg_mask):
    """The per-pair SGNS losses of every real (centre t, slot c) pair, summed per centre word
    with a one-hot matrix (so that backward spreads each centre's upstream gradient back)."""
    B, C = ctx_mask.shape
    K1, D = u_out.shape[1:]
    t, c = np.nonzero(ctx_mask)                                      # every real pair
    positions = t + C // 2 + window_offsets(C // 2, np)[c]           # the context words
    u_rows = u_out.reshape(B * K1, D)
    v = embedding(positions, v_pos)                                  # (pairs, D)
    u_pos = embedding(t * K1, u_rows)                                # (pairs, D)
    u_neg = embedding(t[:, None] * K1 + np.arange(1, K1), u_rows)    # (pairs, K, D)
    per_pair = sgns_loss(v, u_pos, u_neg, neg_mask[t])               # (pairs,)
    one_hot = Tensor((np.arange(B)[:, None] == t[None, :]).astype(v_pos.dtype))   # (B, pairs)
    return one_hot @ per_pair                                        # (B,)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 2e-5)])
def test_skipgram_loss_equals_its_pairs(dtype, rtol):
    rng = np.random.default_rng(4)
    v_pos, u_out, ctx_mask, neg_mask = _window_batch(rng, 6, 3, 4, 5, dtype)
    upstream = rng.standard_normal(6).astype(dtype)
    results = []
    for fn in (skipgram_loss, _pairs_of_windows):
        v_pos.grad = u_out.grad = None
        loss = fn(v_pos, u_out, ctx_mask, neg_mask)                  # (B,)
        loss.backward(Tensor(upstream))
        results.append([loss.numpy(), v_pos.grad.numpy(), u_out.grad.numpy()])
    for fused, pairs in zip(*results):
        np.testing.assert_allclose(fused, pairs, rtol=rtol, atol=rtol)
    assert results[0][0][0] == 0                                     # no context, no loss


def test_window_losses_are_finite_for_large_scores():
    # scores of +-400: e^{400} overflows float32 and float64, e^{-|s|} does not
    v_pos = Tensor(np.full((4, 2), 20.0, np.float32), requires_grad=True)
    u_out = Tensor(np.array([[[-10.0, -10.0], [10.0, 10.0]], [[10.0, 10.0], [-10.0, -10.0]]],
                            np.float32), requires_grad=True)
    ctx_mask = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    loss = skipgram_loss(v_pos, u_out, ctx_mask)                     # (2,)
    np.testing.assert_allclose(loss.numpy(), [800.0, 0.0], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(v_pos.grad.numpy()).all() and np.isfinite(u_out.grad.numpy()).all()
    h = Tensor(np.full((2, 2), 20.0, np.float32), requires_grad=True)
    np.testing.assert_allclose(centre_word_loss(h, u_out).numpy(), [800.0, 0.0], rtol=1e-6)


@given(B=st.integers(1, 4), W=st.integers(1, 3), K=st.integers(1, 3), D=st.integers(1, 4),
       seed=st.integers(0, 99))
def test_context_mean_and_centre_word_loss_gradcheck(B, W, K, D, seed):
    rng = np.random.default_rng(seed)
    v_pos, u_out, ctx_mask, neg_mask = _window_batch(rng, B, W, K, D)
    gradcheck(lambda v: context_mean(v, ctx_mask), [v_pos], seed=seed)
    h = Tensor(rng.standard_normal((B, D)), requires_grad=True, dtype="float64")
    mask = centre_mask(ctx_mask, neg_mask)
    gradcheck(lambda a, u: centre_word_loss(a, u, mask), [h, u_out], seed=seed)
    gradcheck(lambda a, u: centre_word_loss(a, u), [h, u_out], seed=seed)


def test_centre_word_loss_equals_sgns_loss():
    rng = np.random.default_rng(9)
    h = rng.standard_normal((5, 4))
    u_out = rng.standard_normal((5, 3, 4))
    mask = np.ones((5, 3))
    mask[1, 2] = 0                                          # a dropped noise word
    expected = sgns_loss(Tensor(h), Tensor(u_out[:, 0]), Tensor(u_out[:, 1:]), mask[:, 1:])
    np.testing.assert_allclose(centre_word_loss(Tensor(h), Tensor(u_out), mask).numpy(),
                               expected.numpy(), rtol=1e-12)


def test_window_spread_is_the_adjoint_of_window_sum():
    # <window_sum(v, w), g> = <v, window_spread(g, w)> for every v and g
    rng = np.random.default_rng(6)
    B, W, D = 7, 3, 4
    v, g = rng.standard_normal((B + 2 * W, D)), rng.standard_normal((B, D))
    weight = rng.random((B, 2 * W))
    lhs = np.sum(window_sum(v, weight) * g)
    rhs = np.sum(v * window_spread(g, weight))
    assert lhs == pytest.approx(rhs, rel=1e-12)
    offsets = window_offsets(W, np)
    expected = np.einsum("tc,tcd->td", weight, v[np.arange(B)[:, None] + W + offsets])
    np.testing.assert_allclose(window_sum(v, weight), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 2e-5)])
def test_cbow_window_path_equals_cbow_loss(dtype, rtol):
    # ContextMean then CentreWordLoss on the positions = CBOWLoss on gathered context vectors
    rng = np.random.default_rng(7)
    B, W, K, D = 6, 2, 3, 4
    v_pos, u_out, ctx_mask, neg_mask = _window_batch(rng, B, W, K, D, dtype)
    rows = np.flatnonzero(ctx_mask.sum(axis=1) > 0)                  # centres with context
    slots = rows[:, None] + W + window_offsets(W, np)[None, :]       # (rows, C)
    upstream = rng.standard_normal(B).astype(dtype)
    v_pos.grad = u_out.grad = None
    window = centre_word_loss(context_mean(v_pos, ctx_mask), u_out,
                              centre_mask(ctx_mask, neg_mask))       # (B,)
    window.backward(Tensor(upstream))
    grads = v_pos.grad.numpy(), u_out.grad.numpy()
    v_pos.grad = u_out.grad = None
    u_rows = u_out.reshape(B * (K + 1), D)
    gathered = cbow_loss(embedding(slots, v_pos), embedding(rows * (K + 1), u_rows),
                         embedding(rows[:, None] * (K + 1) + np.arange(1, K + 1), u_rows),
                         ctx_mask[rows], neg_mask[rows])             # (rows,)
    gathered.backward(Tensor(upstream[rows]))
    np.testing.assert_allclose(window.numpy()[rows], gathered.numpy(), rtol=rtol)
    np.testing.assert_array_equal(np.delete(window.numpy(), rows), 0)
    np.testing.assert_allclose(grads[0], v_pos.grad.numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(grads[1], u_out.grad.numpy(), rtol=rtol, atol=rtol)


def test_window_losses_reject_shapes_that_do_not_fit():
    rng = np.random.default_rng(8)
    v_pos, u_out, ctx_mask, neg_mask = _window_batch(rng, 3, 2, 2, 4)
    with pytest.raises(ValueError, match="v_pos"):
        skipgram_loss(v_pos, u_out, ctx_mask[:, :3], neg_mask)
    with pytest.raises(ValueError, match="neg_mask"):
        skipgram_loss(v_pos, u_out, ctx_mask, neg_mask[:, :1])
    with pytest.raises(ValueError, match="ctx_mask"):
        context_mean(v_pos, ctx_mask[:2])


# ---- row-sparse embedding gradients ----------------------------------------------------------
def _embedding_grads(sparse, ids_list, upstreams):
    emb = Embedding(7, 3, sparse=sparse)
    emb.weight.data = np.arange(21, dtype=np.float64).reshape(7, 3) / 10
    for ids, g in zip(ids_list, upstreams):       # two uses of the table: grads accumulate
        emb(Tensor(ids)).backward(Tensor(g))
    return emb.weight.grad


def test_sparse_gradient_equals_dense():
    rng = np.random.default_rng(1)
    ids_list = [np.array([[1, 3, 3], [6, 1, 0]]), np.array([3, 3, 5])]
    ups = [rng.standard_normal((2, 3, 3)), rng.standard_normal((3, 3))]
    sparse, dense = _embedding_grads(True, ids_list, ups), _embedding_grads(False, ids_list, ups)
    assert isinstance(sparse, RowSparseGrad) and len(sparse.indices) == 9
    np.testing.assert_allclose(sparse.to_dense(), dense.numpy(), rtol=1e-12)
    c = sparse.coalesce()
    assert list(c.indices) == [0, 1, 3, 5, 6]
    np.testing.assert_allclose(c.to_dense(), dense.numpy(), rtol=1e-12)


def test_sparse_embedding_gradcheck():
    emb = Embedding(5, 2, sparse=True)
    ids = Tensor(np.array([[0, 4, 4], [2, 0, 1]]))
    gradcheck(lambda w: embedding(ids, w, sparse=True), [emb.weight], seed=0)


def test_sparse_plus_dense_accumulates():
    emb = Embedding(4, 2, sparse=True)
    w = emb.weight
    emb(Tensor(np.array([1, 1, 2]))).backward(Tensor(np.ones((3, 2), np.float32)))
    (w * 2.0).sum().backward()                                  # a dense use of the same table
    expected = np.full((4, 2), 2.0)
    expected[1] += 2
    expected[2] += 1
    np.testing.assert_allclose(w.grad.numpy(), expected)


def test_sgd_sparse_step_equals_dense_step():
    ids = np.array([0, 2, 2, 5])
    up = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    weights = []
    for sparse in (True, False):
        emb = Embedding(6, 3, sparse=sparse)
        emb.weight.data = np.ones((6, 3), np.float32)
        opt = SGD(emb.parameters(), lr=0.1)
        emb(Tensor(ids)).backward(Tensor(up))
        opt.step()
        weights.append(emb.weight.numpy().copy())
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-6)
    untouched = [1, 3, 4]
    np.testing.assert_array_equal(weights[0][untouched], 1.0)


def test_sparse_gradient_refuses_other_optimizers():
    for make in (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p)):
        emb = Embedding(3, 2, sparse=True)
        opt = make(emb.parameters())
        emb(Tensor(np.array([0, 1]))).sum().backward()
        with pytest.raises((ValueError, TypeError), match="row-sparse"):
            opt.step()


@pytest.mark.parametrize("n", [10, 300, 3000])
def test_scatter_add_matches_add_at(n):
    rng = np.random.default_rng(n)
    ids = np.minimum(rng.zipf(1.3, n) - 1, 49)                  # a few ids repeat many times
    values = rng.standard_normal((n, 4)).astype(np.float32)
    table = rng.standard_normal((50, 4)).astype(np.float32)
    expected = table.copy()
    np.add.at(expected, ids, -0.5 * values)
    scatter_add(table, ids, values, scale=-0.5)
    np.testing.assert_allclose(table, expected, rtol=1e-5, atol=1e-5)


# ---- on both devices: "cuda" is the strict CuPy stand-in of tests/fake_cupy.py ----------------
def test_losses_gradcheck_on_device(device):
    rng = np.random.default_rng(5)

    def t(*shape):
        return Tensor(rng.standard_normal(shape), requires_grad=True, dtype="float64",
                      device=device)
    neg_mask = Tensor((rng.random((3, 2)) < 0.7).astype(np.float64), device=device)
    ctx_mask = Tensor(np.array([[1.0, 1, 0], [1, 0, 0], [0, 1, 1]]), device=device)
    gradcheck(lambda a, b, c: sgns_loss(a, b, c, neg_mask), [t(3, 4), t(3, 4), t(3, 2, 4)],
              seed=0)
    gradcheck(lambda a, b, c: cbow_loss(a, b, c, ctx_mask, neg_mask),
              [t(3, 3, 4), t(3, 4), t(3, 2, 4)], seed=0)
    window_mask = Tensor(np.array([[1.0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 1]]), device=device)
    gradcheck(lambda a, b: skipgram_loss(a, b, window_mask, neg_mask), [t(7, 4), t(3, 3, 4)],
              seed=0)
    gradcheck(lambda a: context_mean(a, window_mask), [t(7, 4)], seed=0)
    keep = Tensor(np.array([[1.0, 1, 0], [0, 0, 0], [1, 0, 1]]), device=device)
    gradcheck(lambda a, b: centre_word_loss(a, b, keep), [t(3, 4), t(3, 3, 4)], seed=0)


def test_sparse_embedding_and_sgd_on_device(device):
    ids = np.random.default_rng(6).integers(0, 6, size=(10, 9))   # > 64 ids, many repeats
    up = np.random.default_rng(7).standard_normal((10, 9, 3)).astype(np.float32)
    weights, grads = [], []
    for sparse in (True, False):
        emb = Embedding(6, 3, sparse=sparse)
        emb.weight.data = np.ones((6, 3), np.float32)
        emb.to(device)
        opt = SGD(emb.parameters(), lr=0.1)
        emb(Tensor(ids, device=device)).backward(Tensor(up, device=device))
        grads.append(emb.weight.grad.numpy())
        opt.step()
        weights.append(emb.weight.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5)
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-5)
