"""The Word2Vec trainer: one training step through the engine equals the hand-batched update it
replaced (float64, skip-gram and CBOW), CBOW's update is gensim's (count times the gradient), the
sampling rules against their formulas, training separates planted clusters and its loss falls,
saving and loading, and bad input. With gensim installed and RUN_SLOW=1: the agreement metric of
benchmarks/bench_word2vec.py."""

import os

import numpy as np
import pytest

from tinygrad_llm import Tensor
from tinygrad_llm.models import CBOW, KeyedVectors, SkipGram, Word2Vec
from tinygrad_llm.models.word2vec_trainer import (
    _chunk_bounds,
    cbow_gensim_backward,
    draw_negatives,
    epoch_plan,
    learning_rate,
    noise_cdf,
    subsample_keep_prob,
    train_step,
)
from tinygrad_llm.ops.word2vec import window_offsets
from tinygrad_llm.optim import SGD
from tinygrad_llm.tokenizer.sentences import text_to_sentences

try:
    import gensim  # noqa: F401
    HAVE_GENSIM = True
except ImportError:
    HAVE_GENSIM = False


# ---- one step through the engine equals the previous hand-batched update ---------------------
def _previous_skipgram_grads(w_in, w_out, pos_ids, out_ids, ctx_mask, neg_keep, W):
    """The trainer's update before it ran through the engine: the batch's gradients by hand,
    as row-sparse (rows, values) pairs for W_in and W_out."""
    B, K1 = out_ids.shape
    offsets = window_offsets(W, np)
    V = w_in[pos_ids][np.arange(B)[:, None] + W + offsets[None, :]]       # (B, C, D)
    U = w_out[out_ids]                                                    # (B, K+1, D)
    G = 1 / (1 + np.exp(-(V @ U.transpose(0, 2, 1))))                     # (B, C, K+1)
    G[:, :, 0] -= 1                                                       # minus the label
    G *= ctx_mask[:, :, None] * np.concatenate([np.ones((B, 1)), neg_keep], 1)[:, None, :]
    dV, dU = G @ U, G.transpose(0, 2, 1) @ V                              # (B, C, D), (B, K+1, D)
    d_in = np.zeros((B + 2 * W, w_in.shape[1]))                           # (P, D)
    for c, o in enumerate(offsets):
        d_in[W + o:W + o + B] += dV[:, c]
    return (pos_ids, d_in), (out_ids.reshape(-1), dU.reshape(B * K1, -1))


def _previous_cbow_grads(w_in, w_out, pos_ids, out_ids, ctx_mask, neg_keep, W):
    """The same for CBOW: gensim's update, every context word taking the whole dh."""
    B, K1 = out_ids.shape
    offsets = window_offsets(W, np)
    v_pos = w_in[pos_ids]                                                 # (P, D)
    count = ctx_mask.sum(axis=1)                                          # (B,)
    h = sum(ctx_mask[:, c, None] * v_pos[W + o:W + o + B] for c, o in enumerate(offsets))
    h /= np.maximum(count, 1)[:, None]                                    # (B, D)
    U = w_out[out_ids]                                                    # (B, K+1, D)
    G = 1 / (1 + np.exp(-(U @ h[:, :, None])[:, :, 0]))                   # (B, K+1)
    G[:, 0] -= 1
    G *= np.concatenate([np.ones((B, 1)), neg_keep], axis=1) * (count > 0)[:, None]
    dh, dU = (G[:, None, :] @ U)[:, 0], G[:, :, None] * h[:, None, :]     # (B, D), (B, K+1, D)
    d_in = np.zeros_like(v_pos)                                           # (P, D)
    for c, o in enumerate(offsets):
        d_in[W + o:W + o + B] += ctx_mask[:, c, None] * dh
    return (pos_ids, d_in), (out_ids.reshape(-1), dU.reshape(B * K1, -1))


def _batch(rng, V=7, D=4, B=5, W=2, K=3):
    """float64 tables and one batch: pos_ids (P,), out_ids (B, K+1), ctx_mask (B, C),
    neg_keep (B, K), with repeated words, a centre with no context and a dropped noise word."""
    w_in, w_out = rng.standard_normal((V, D)), rng.standard_normal((V, D))
    pos_ids = rng.integers(0, V, B + 2 * W)
    out_ids = np.concatenate([pos_ids[W:W + B, None], rng.integers(0, V, (B, K))], axis=1)
    out_ids[-1, 1] = out_ids[-1, 0]                             # a noise word equal to the centre
    ctx_mask = (rng.random((B, 2 * W)) < 0.7).astype(np.float32)
    ctx_mask[0] = 0                                             # a centre with no context
    neg_keep = (out_ids[:, 1:] != out_ids[:, :1]).astype(np.float32)
    return w_in, w_out, (pos_ids, out_ids, ctx_mask, neg_keep), W


@pytest.mark.parametrize("module_cls, previous", [(SkipGram, _previous_skipgram_grads),
                                                  (CBOW, _previous_cbow_grads)])
def test_train_step_equals_previous_batched_update(module_cls, previous):
    w_in, w_out, batch, W = _batch(np.random.default_rng(0))
    module = module_cls(*w_in.shape)
    module.in_embed.weight.data, module.out_embed.weight.data = w_in.copy(), w_out.copy()
    optimizer = SGD(module.parameters(), lr=0.1)
    loss = train_step(module, optimizer, *batch)
    expected = [w_in.copy(), w_out.copy()]
    for table, (rows, d) in zip(expected, previous(w_in, w_out, *batch, W)):
        np.add.at(table, rows, -0.1 * d)
    np.testing.assert_allclose(module.in_embed.weight.numpy(), expected[0], rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(module.out_embed.weight.numpy(), expected[1], rtol=1e-12,
                               atol=1e-14)
    assert module.in_embed.weight.grad is None and loss > 0      # zeroed after the step


def test_cbow_update_is_count_times_the_gradient_for_the_context():
    # one centre word with n context words: gensim's step for W_in is n times the gradient's,
    # for W_out it is the gradient
    w_in, w_out, (pos_ids, out_ids, ctx_mask, neg_keep), W = _batch(np.random.default_rng(1),
                                                                     B=1, W=3)
    ctx_mask[:] = [[1, 0, 1, 1, 0, 1]]
    n = ctx_mask.sum()
    grads = []
    for rule in ("gensim", "gradient"):
        module = CBOW(*w_in.shape)
        module.in_embed.weight.data, module.out_embed.weight.data = w_in.copy(), w_out.copy()
        if rule == "gensim":
            cbow_gensim_backward(module, pos_ids, out_ids, ctx_mask, neg_keep)
        else:
            module.window_loss(Tensor(pos_ids), out_ids, ctx_mask, neg_keep).sum().backward()
        grads.append([p.grad.numpy() for p in (module.in_embed.weight, module.out_embed.weight)])
    np.testing.assert_allclose(grads[0][0], n * grads[1][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-12, atol=1e-14)


# ---- the sampling rules against their formulas -----------------------------------------------
def test_subsampling_formula_and_frequencies():
    counts = np.array([5000, 1000, 200, 50, 5])
    p = subsample_keep_prob(counts, 1e-3)
    t = 1e-3 * counts.sum()
    np.testing.assert_allclose(p, np.minimum(1, (np.sqrt(counts / t) + 1) * t / counts))
    assert p[-1] == 1.0 and p[0] < 0.1
    np.testing.assert_array_equal(subsample_keep_prob(counts, 0), 1.0)
    # what the epoch really keeps, per word: within 4 binomial standard deviations
    ids = np.repeat(np.arange(5), counts * 20)
    pad_ids, *_ = epoch_plan(ids, np.zeros_like(ids), p, noise_cdf(counts), 2, 1,
                             np.random.default_rng(0))
    kept = np.bincount(pad_ids[2:-2], minlength=5)
    n = counts * 20
    assert np.all(np.abs(kept - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1e-9)


def test_noise_distribution_is_unigram_to_the_075():
    counts = np.array([900, 300, 100, 30, 10, 1])
    cdf = noise_cdf(counts, 0.75)
    q = counts ** 0.75 / (counts ** 0.75).sum()
    np.testing.assert_allclose(np.diff(np.r_[0, cdf]), q)
    draws = draw_negatives(cdf, 200_000, np.random.default_rng(0))
    observed = np.bincount(draws, minlength=len(counts))
    chi2 = ((observed - 200_000 * q) ** 2 / (200_000 * q)).sum()
    assert chi2 < 20.5                      # the 0.999 quantile of chi-square with 5 dof
    uniform = np.full(len(counts), 200_000 / len(counts))
    assert ((observed - uniform) ** 2 / uniform).sum() > 1000


@pytest.mark.parametrize("V", [1, 2, 7, 3000])
def test_draw_negatives_is_a_search_of_the_cdf(V):
    # the guide table finds exactly searchsorted's answer for the same uniform draws
    counts = np.sort(np.random.default_rng(V).zipf(1.3, V))[::-1]
    cdf = noise_cdf(counts)
    cdf_short = cdf * (1 - 1e-9)                 # a last entry rounded below 1 is clamped
    for table in (cdf, cdf_short):
        u = np.random.default_rng(1).random((500, 5))
        expected = np.minimum(np.searchsorted(table, u, side="right"), V - 1)
        np.testing.assert_array_equal(
            draw_negatives(table, (500, 5), np.random.default_rng(1)), expected)


def test_window_shrinking_frequencies():
    W, N = 5, 40_000
    ids = np.zeros(N, np.int64)
    _, ctx_mask, _, _ = epoch_plan(ids, np.zeros(N, np.int64), np.ones(1), np.ones(1), W, 1,
                                   np.random.default_rng(0))
    offsets = window_offsets(W, np)
    freq = ctx_mask[W:-W].mean(axis=0)           # away from the ends of the one sentence
    expected = (W - np.abs(offsets) + 1) / W     # P(reach >= |o|), reach uniform on 1..W
    assert np.all(np.abs(freq - expected) < 4 * np.sqrt(expected * (1 - expected) / N) + 1e-9)


def test_window_stays_inside_sentences():
    ids = np.arange(6) % 3
    sentence_of = np.array([0, 0, 0, 1, 1, 1])
    pad_ids, ctx_mask, out_ids, _ = epoch_plan(ids, sentence_of, np.ones(3), noise_cdf([1, 1, 1]),
                                               5, 2, np.random.default_rng(0))
    offsets = window_offsets(5, np)
    for t in range(6):
        for k in np.flatnonzero(ctx_mask[t]):
            assert 0 <= t + offsets[k] < 6 and sentence_of[t + offsets[k]] == sentence_of[t]


def test_chunks_cover_the_corpus_and_cut_at_sentence_starts():
    sentence_of = np.repeat(np.arange(40), np.random.default_rng(0).integers(1, 9, 40))
    bounds = _chunk_bounds(sentence_of, 25)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(sentence_of) and len(bounds) > 3
    for (_, hi), (lo2, _) in zip(bounds, bounds[1:]):
        assert hi == lo2 and sentence_of[hi] != sentence_of[hi - 1]
    assert _chunk_bounds(np.zeros(5, np.int64), 2) == [(0, 5)]
    assert _chunk_bounds(np.zeros(0, np.int64), 2) == [(0, 0)]


def test_learning_rate_decays_linearly():
    assert learning_rate(0.025, 1e-4, 0.0) == 0.025
    assert learning_rate(0.025, 1e-4, 0.5) == pytest.approx((0.025 + 1e-4) / 2)
    assert learning_rate(0.025, 1e-4, 1.0) == pytest.approx(1e-4)


# ---- training separates planted clusters -----------------------------------------------------
def _planted_corpus(seed=0, clusters=3, words=8, sentences=600, length=12):
    rng = np.random.default_rng(seed)
    vocab = [[f"c{c}w{i}" for i in range(words)] for c in range(clusters)]
    corpus = [list(rng.choice(vocab[rng.integers(clusters)], length)) for _ in range(sentences)]
    return vocab, corpus


@pytest.mark.parametrize("sg", [1, 0])
def test_training_separates_planted_clusters(sg):
    vocab, corpus = _planted_corpus()
    model = Word2Vec(corpus, vector_size=16, window=3, min_count=1, sg=sg, negative=5,
                     sample=0, epochs=5, batch_size=64, progress=False)
    hits = []
    for cluster in vocab:
        for word in cluster:
            near = [w for w, _ in model.wv.most_similar(word, topn=5)]
            hits += [w in cluster for w in near]
    assert np.mean(hits) > 0.9
    a, b = vocab[0][0], vocab[0][1]
    assert model.wv.similarity(a, b) > model.wv.similarity(a, vocab[1][0]) + 0.3
    loss = model.train_stats["epoch_loss"]
    assert len(loss) == 5 and loss[-1] < 0.9 * loss[0]          # the loss falls


def test_training_in_chunks(monkeypatch):
    import tinygrad_llm.models.word2vec_trainer as trainer
    monkeypatch.setattr(trainer, "CHUNK_WORDS", 500)    # many chunks of whole sentences
    vocab, corpus = _planted_corpus(sentences=300)
    model = Word2Vec(corpus, vector_size=16, window=3, min_count=1, sample=0, epochs=5,
                     batch_size=64, progress=False)
    near = [w for w, _ in model.wv.most_similar(vocab[1][0], topn=5)]
    assert all(w in vocab[1] for w in near)
    assert model.train_stats["effective_words"] == 5 * 300 * 12


# ---- vocabulary, saving and loading ----------------------------------------------------------
@pytest.fixture(scope="module")
def small_model():
    vocab, corpus = _planted_corpus(seed=1, sentences=200)
    return Word2Vec(corpus, vector_size=8, window=2, min_count=1, epochs=2, progress=False)


def test_vocabulary(small_model):
    wv = small_model.wv
    assert wv.vectors.shape == (24, 8) and len(wv) == 24
    counts = wv.counts
    assert np.all(np.diff(counts) <= 0) and counts.sum() == small_model.corpus_total_words
    assert wv.vectors is small_model.module.in_embed.weight.data       # training updates wv
    assert small_model.syn1neg is small_model.module.out_embed.weight.data


def test_model_save_load_round_trip(small_model, tmp_path):
    path = tmp_path / "model.npz"
    small_model.save(path)
    with np.load(path, allow_pickle=False) as z:            # no pickle anywhere in the file
        assert set(z.files) >= {"vectors", "syn1neg", "keys"}
    loaded = Word2Vec.load(path)
    np.testing.assert_array_equal(loaded.wv.vectors, small_model.wv.vectors)
    np.testing.assert_array_equal(loaded.syn1neg, small_model.syn1neg)
    assert loaded.wv.index_to_key == small_model.wv.index_to_key
    assert loaded.window == small_model.window and loaded.sg == small_model.sg
    loaded.train(_planted_corpus(seed=1, sentences=50)[1], epochs=1, progress=False)
    kv_path = tmp_path / "kv.npz"
    small_model.wv.save(kv_path)
    kv = KeyedVectors.load(kv_path)
    np.testing.assert_array_equal(kv.vectors, small_model.wv.vectors)


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("corpus", [[], [[], []]])
def test_empty_corpus(corpus):
    with pytest.raises(ValueError, match="empty"):
        Word2Vec(corpus, progress=False)


def test_min_count_leaves_nothing():
    with pytest.raises(ValueError, match=r"min_count=50 leaves no words.*'b'.*3 times"):
        Word2Vec([["a", "b", "b", "b"]], min_count=50, progress=False)


def test_missing_corpus_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        Word2Vec(corpus_file=missing, progress=False)


def test_corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("c a b c a b\nb c a b\n" * 20)
    model = Word2Vec(corpus_file=path, min_count=1, vector_size=4, epochs=1, progress=False)
    assert model.wv.index_to_key == ["b", "c", "a"]      # by count (80, 60, 60), ties in order


def test_sentences_must_be_token_lists():
    with pytest.raises(TypeError, match="list of tokens"):
        Word2Vec(["a whole sentence as one string"], progress=False)
    with pytest.raises(TypeError, match="re-iterable"):
        Word2Vec((s for s in [["a", "b"]]), progress=False)
    with pytest.raises(ValueError, match="window"):
        Word2Vec(window=0)
    with pytest.raises(RuntimeError, match="build_vocab"):
        Word2Vec(progress=False).train([["a", "b"]])


# ---- agreement with gensim (slow; RUN_SLOW=1 to run) ------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not HAVE_GENSIM or os.environ.get("RUN_SLOW") != "1",
                    reason="needs gensim and RUN_SLOW=1 (trains three models on Shakespeare)")
def test_agreement_with_gensim():
    from gensim.models import Word2Vec as GensimWord2Vec

    from tinygrad_llm.data import dataset_path
    from tinygrad_llm.models.word2vec_eval import knn_overlap, neighbours_by_key
    sentences = text_to_sentences(dataset_path("tinyshakespeare.txt").read_text())
    gs = [GensimWord2Vec(sentences, sg=1, epochs=5, workers=1, seed=s).wv for s in (1, 2)]
    ours = Word2Vec(sentences, sg=1, epochs=5, progress=False).wv
    top = gs[0].index_to_key[:1000]
    n = [neighbours_by_key(w, top) for w in gs + [ours]]
    ceiling = knn_overlap(n[0], n[1])
    assert (knn_overlap(n[2], n[0]) + knn_overlap(n[2], n[1])) / 2 >= 0.85 * ceiling
