"""The SkipGram and CBOW modules: gradchecks of both forwards over both tables (float64, random
upstream gradient), and the whole-window forward equal to the per-pair forward on the same pairs.
The trainer: tests/test_word2vec_trainer.py; the vectors: tests/test_keyed_vectors.py."""

import numpy as np
import pytest

from tinygrad_llm import Tensor
from tinygrad_llm.models import CBOW, SkipGram
from tinygrad_llm.ops.word2vec import window_offsets
from tinygrad_llm.testing import gradcheck


def _f64(module):
    for emb in (module.in_embed, module.out_embed):
        emb.weight.data = np.random.default_rng(3).standard_normal(emb.weight.shape) * 0.5
    return module.in_embed.weight, module.out_embed.weight


def test_skipgram_module_gradcheck():
    model = SkipGram(6, 3)
    w_in, w_out = _f64(model)
    inputs, targets = Tensor(np.array([0, 2, 2, 5])), Tensor(np.array([1, 1, 3, 0]))
    negatives = Tensor(np.array([[4, 1], [0, 0], [5, 2], [3, 3]]))
    mask = np.array([[1, 0], [1, 1], [1, 1], [0, 1]], np.float64)

    def fn(wi, wo):
        model.in_embed.weight, model.out_embed.weight = wi, wo
        return model(inputs, targets, negatives, mask)
    gradcheck(fn, [w_in, w_out], seed=1)


def test_cbow_module_gradcheck():
    model = CBOW(6, 3)
    w_in, w_out = _f64(model)
    context = Tensor(np.array([[0, 2, 4], [1, 1, 5], [3, 0, 0]]))
    ctx_mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]], np.float64)
    targets, negatives = Tensor(np.array([1, 3, 2])), Tensor(np.array([[5, 0], [2, 2], [4, 1]]))

    def fn(wi, wo):
        model.in_embed.weight, model.out_embed.weight = wi, wo
        return model(context, ctx_mask, targets, negatives)
    gradcheck(fn, [w_in, w_out], seed=2)


def _window_batch(rng, V=7, B=5, W=2, K=3):
    """A trainer's batch: pos_ids (P,), out_ids (B, K+1), ctx_mask (B, C), neg_keep (B, K)."""
    pos_ids = rng.integers(0, V, B + 2 * W)
    out_ids = np.concatenate([pos_ids[W:W + B, None], rng.integers(0, V, (B, K))], axis=1)
    ctx_mask = (rng.random((B, 2 * W)) < 0.7).astype(np.float64)
    ctx_mask[0] = 0                                             # a centre with no context
    neg_keep = (out_ids[:, 1:] != out_ids[:, :1]).astype(np.float64)
    return pos_ids, out_ids, ctx_mask, neg_keep


@pytest.mark.parametrize("module_cls", [SkipGram, CBOW])
def test_window_loss_gradcheck(module_cls):
    model = module_cls(7, 3)
    w_in, w_out = _f64(model)
    batch = _window_batch(np.random.default_rng(4))

    def fn(wi, wo):
        model.in_embed.weight, model.out_embed.weight = wi, wo
        return model.window_loss(*batch)
    gradcheck(fn, [w_in, w_out], seed=3)


@pytest.mark.parametrize("module_cls", [SkipGram, CBOW])
def test_window_loss_equals_forward_on_the_same_pairs(module_cls):
    rng = np.random.default_rng(5)
    pos_ids, out_ids, ctx_mask, neg_keep = _window_batch(rng)
    W = ctx_mask.shape[1] // 2
    model = module_cls(7, 3)
    _f64(model)
    window = model.window_loss(pos_ids, out_ids, ctx_mask, neg_keep).numpy()     # (B,)
    slots = np.arange(len(out_ids))[:, None] + W + window_offsets(W, np)[None, :]
    if module_cls is SkipGram:
        t, c = np.nonzero(ctx_mask)                             # every real pair
        per_pair = model(Tensor(pos_ids[slots[t, c]]), Tensor(out_ids[t, 0]),
                         Tensor(out_ids[t, 1:]), neg_keep[t]).numpy()
        expected = np.bincount(t, weights=per_pair, minlength=len(out_ids))
    else:
        rows = np.flatnonzero(ctx_mask.sum(axis=1) > 0)         # centres with a context
        expected = np.zeros(len(out_ids))
        expected[rows] = model(Tensor(pos_ids[slots[rows]]), ctx_mask[rows],
                               Tensor(out_ids[rows, 0]), Tensor(out_ids[rows, 1:]),
                               neg_keep[rows]).numpy()
    np.testing.assert_allclose(window, expected, rtol=1e-12)
    assert window[0] == 0                                       # no context, no loss


def test_modules_repr_and_parameters():
    model = SkipGram(10, 4)
    assert "vocab_size=10, vector_size=4" in repr(model)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["in_embed.weight", "out_embed.weight"]
    np.testing.assert_array_equal(model.out_embed.weight.numpy(), 0)    # gensim's W_out = 0
    w_in = model.in_embed.weight.numpy()
    assert w_in.dtype == np.float32 and np.abs(w_in).max() <= 0.5 / 4
