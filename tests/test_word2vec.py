"""Word2Vec: the modules (gradcheck), the trainer's batched step (equal to the modules' autograd
step), the sampling rules against their formulas, a planted-cluster training run, the vectors' API,
file formats and bad input. With gensim installed: its reader on our files, and (RUN_SLOW=1) the
agreement metric of benchmarks/bench_word2vec.py."""

import os

import numpy as np
import pytest

from tinygrad_llm import Tensor
from tinygrad_llm.models.word2vec import (
    CBOW,
    KeyedVectors,
    SkipGram,
    Word2Vec,
    _cbow_batch_grads,
    _chunk_bounds,
    _pearson,
    _ranks,
    _skipgram_batch_grads,
    draw_negatives,
    epoch_plan,
    learning_rate,
    noise_cdf,
    subsample_keep_prob,
    text_to_sentences,
    tokenize,
)
from tinygrad_llm.optim import SGD
from tinygrad_llm.testing import gradcheck

try:
    import gensim  # noqa: F401
    HAVE_GENSIM = True
except ImportError:
    HAVE_GENSIM = False


# ---- the modules -----------------------------------------------------------------------------
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


# ---- the trainer's batched step equals the modules' autograd step ----------------------------
def _random_batch(rng, V=7, D=4, B=5, W=2, K=3):
    w_in = rng.standard_normal((V, D)).astype(np.float32)
    w_out = rng.standard_normal((V, D)).astype(np.float32)
    pad_ids = rng.integers(0, V, B + 2 * W)
    out_ids = np.concatenate([pad_ids[W:W + B, None], rng.integers(0, V, (B, K))], axis=1)
    ctx_mask = (rng.random((B, 2 * W)) < 0.7).astype(np.float32)
    ctx_mask[0] = 0                                             # a centre with no context
    neg_keep = (out_ids[:, 1:] != out_ids[:, :1]).astype(np.float32)
    offsets = np.array([o for o in range(-W, W + 1) if o != 0])
    return w_in, w_out, pad_ids, out_ids, ctx_mask, neg_keep, W, offsets


def _sgd_step(module, loss, lr):
    opt = SGD(module.parameters(), lr=lr)
    loss.sum().backward()
    opt.step()
    return module.in_embed.weight.numpy(), module.out_embed.weight.numpy()


def _fused_step(grads_fn, batch, lr):
    w_in, w_out = batch[0].copy(), batch[1].copy()
    in_rows, d_in, out_rows, d_out = grads_fn(w_in, w_out, *batch[2:])
    np.add.at(w_in, in_rows, -lr * d_in)
    np.add.at(w_out, out_rows, -lr * d_out)
    return w_in, w_out


def test_skipgram_batch_step_equals_module_step():
    batch = _random_batch(np.random.default_rng(0))
    w_in, w_out, pad_ids, out_ids, ctx_mask, neg_keep, W, offsets = batch
    t, k = np.nonzero(ctx_mask)                                 # every real pair
    inputs = pad_ids[t + W + offsets[k]]                        # the context word feeds v
    model = SkipGram(*w_in.shape)
    model.in_embed.weight.data, model.out_embed.weight.data = w_in.copy(), w_out.copy()
    loss = model(Tensor(inputs), Tensor(out_ids[t, 0]), Tensor(out_ids[t, 1:]), neg_keep[t])
    expected = _sgd_step(model, loss, lr=0.1)
    got = _fused_step(_skipgram_batch_grads, batch, lr=0.1)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cbow_batch_step_equals_module_step():
    batch = _random_batch(np.random.default_rng(1))
    w_in, w_out, pad_ids, out_ids, ctx_mask, neg_keep, W, offsets = batch
    rows = np.flatnonzero(ctx_mask.sum(axis=1) > 0)             # centres with a context
    slots = np.arange(len(out_ids))[:, None] + W + offsets[None, :]
    model = CBOW(*w_in.shape)
    model.in_embed.weight.data, model.out_embed.weight.data = w_in.copy(), w_out.copy()
    # gensim adds the whole dh to each context row: count times the true gradient of the
    # average. Reproduce it with autograd by scaling each context vector's gradient.
    count = ctx_mask[rows].sum(axis=1)
    v_ctx = model.in_embed(Tensor(pad_ids[slots[rows]]))
    from tinygrad_llm.ops.word2vec import cbow_loss
    scaled = v_ctx * Tensor(count[:, None, None]) - Tensor(
        v_ctx.data * (count[:, None, None] - 1))               # value v, gradient count * dv
    loss = cbow_loss(scaled, model.out_embed(Tensor(out_ids[rows, 0])),
                     model.out_embed(Tensor(out_ids[rows, 1:])), ctx_mask[rows], neg_keep[rows])
    expected = _sgd_step(model, loss, lr=0.1)
    got = _fused_step(_cbow_batch_grads, batch, lr=0.1)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


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


def test_window_shrinking_frequencies():
    W, N = 5, 40_000
    ids = np.zeros(N, np.int64)
    _, ctx_mask, _, _ = epoch_plan(ids, np.zeros(N, np.int64), np.ones(1), np.ones(1), W, 1,
                                   np.random.default_rng(0))
    offsets = np.array([o for o in range(-W, W + 1) if o != 0])
    freq = ctx_mask[W:-W].mean(axis=0)           # away from the ends of the one sentence
    expected = (W - np.abs(offsets) + 1) / W     # P(reach >= |o|), reach uniform on 1..W
    assert np.all(np.abs(freq - expected) < 4 * np.sqrt(expected * (1 - expected) / N) + 1e-9)


def test_window_stays_inside_sentences():
    ids = np.arange(6) % 3
    sentence_of = np.array([0, 0, 0, 1, 1, 1])
    pad_ids, ctx_mask, out_ids, _ = epoch_plan(ids, sentence_of, np.ones(3), noise_cdf([1, 1, 1]),
                                               5, 2, np.random.default_rng(0))
    offsets = np.array([o for o in range(-5, 6) if o != 0])
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


def test_training_in_chunks(monkeypatch):
    import tinygrad_llm.models.word2vec as w2v
    monkeypatch.setattr(w2v, "CHUNK_WORDS", 500)        # many chunks of whole sentences
    vocab, corpus = _planted_corpus(sentences=300)
    model = Word2Vec(corpus, vector_size=16, window=3, min_count=1, sample=0, epochs=5,
                     batch_size=64, progress=False)
    near = [w for w, _ in model.wv.most_similar(vocab[1][0], topn=5)]
    assert all(w in vocab[1] for w in near)
    assert model.train_stats["effective_words"] == 5 * 300 * 12


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


# ---- the vectors' API and files --------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model():
    vocab, corpus = _planted_corpus(seed=1, sentences=200)
    return Word2Vec(corpus, vector_size=8, window=2, min_count=1, epochs=2, progress=False)


def test_vectors_api(small_model):
    wv = small_model.wv
    assert wv.vectors.shape == (24, 8) and len(wv) == 24
    assert all(wv.key_to_index[k] == i for i, k in enumerate(wv.index_to_key))
    np.testing.assert_array_equal(wv["c0w1"], wv.vectors[wv.key_to_index["c0w1"]])
    assert wv[["c0w1", "c2w0"]].shape == (2, 8)
    counts = wv.counts
    assert np.all(np.diff(counts) <= 0) and counts.sum() == small_model.corpus_total_words
    near = wv.most_similar(positive=["c0w1", "c0w2"], negative=["c1w0"], topn=4)
    assert len(near) == 4 and not {"c0w1", "c0w2", "c1w0"} & {w for w, _ in near}
    assert [s for _, s in near] == sorted((s for _, s in near), reverse=True)
    assert wv.most_similar("c0w1", topn=3) == wv.most_similar(positive=["c0w1"], topn=3)
    assert wv.similarity("c0w1", "c0w1") == pytest.approx(1.0, abs=1e-6)


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


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trip(small_model, tmp_path, binary):
    path = tmp_path / "vectors.txt"
    small_model.wv.save_word2vec_format(path, binary=binary)
    kv = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert kv.index_to_key == small_model.wv.index_to_key
    np.testing.assert_array_equal(kv.vectors, small_model.wv.vectors)
    if not binary:
        assert path.read_text().splitlines()[0] == "24 8"


@pytest.mark.skipif(not HAVE_GENSIM, reason="gensim is not installed")
@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_our_word2vec_format(small_model, tmp_path, binary):
    from gensim.models import KeyedVectors as GensimKeyedVectors
    path = tmp_path / "vectors.bin"
    small_model.wv.save_word2vec_format(path, binary=binary)
    theirs = GensimKeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert theirs.index_to_key == small_model.wv.index_to_key
    np.testing.assert_array_equal(theirs.vectors, small_model.wv.vectors)
    assert theirs.most_similar("c0w1", topn=3)[0][0] == small_model.wv.most_similar(
        "c0w1", topn=3)[0][0]


@pytest.mark.skipif(not HAVE_GENSIM, reason="gensim is not installed")
def test_evaluations_match_gensim(small_model, tmp_path):
    from gensim.models import KeyedVectors as GensimKeyedVectors
    words = small_model.wv.index_to_key
    rng = np.random.default_rng(0)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{words[a]}\t{words[b]}\t{rng.uniform(0, 10):.2f}\n"
                             for a, b in rng.integers(0, len(words), (40, 2)))
                     + "zebra\tc0w1\t5.0\n")
    questions = tmp_path / "questions.txt"
    lines = [" ".join(words[i] for i in rng.integers(0, len(words), 4)) for _ in range(60)]
    questions.write_text(": one\n" + "\n".join(lines[:30]) + "\n: two\n"
                         + "\n".join(lines[30:]) + "\nzebra c0w1 c0w2 c0w3\n")
    path = tmp_path / "vectors.txt"
    small_model.wv.save_word2vec_format(path)
    theirs = GensimKeyedVectors.load_word2vec_format(str(path))
    (r, p), (rho, p_rho), oov = small_model.wv.evaluate_word_pairs(pairs)
    g_pearson, g_spearman, g_oov = theirs.evaluate_word_pairs(str(pairs))
    np.testing.assert_allclose([r, p, rho, p_rho, oov],
                               [g_pearson[0], g_pearson[1], g_spearman[0], g_spearman[1], g_oov],
                               rtol=1e-4, atol=1e-6)
    score, sections = small_model.wv.evaluate_word_analogies(questions)
    g_score, g_sections = theirs.evaluate_word_analogies(str(questions))
    assert score == pytest.approx(g_score)
    for ours, gs in zip(sections, g_sections):
        assert ours["section"] == gs["section"]
        assert ours["correct"] == [tuple(q) for q in gs["correct"]]
        assert ours["incorrect"] == [tuple(q) for q in gs["incorrect"]]


def _toy_vectors():
    words = ["man", "woman", "king", "queen", "apple", "pear"]
    vectors = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1],
                        [0, 0.2, 0, 1]], np.float32)
    return KeyedVectors(vectors, words)


def test_evaluate_word_analogies(tmp_path):
    path = tmp_path / "questions-words.txt"
    path.write_text(": family\nman woman king queen\nMAN KING woman queen\nman woman king pear\n"
                    ": fruit\napple pear man woman\napple pear unknown thing\n")
    score, sections = _toy_vectors().evaluate_word_analogies(path)
    assert [s["section"] for s in sections] == ["family", "fruit", "Total accuracy"]
    assert sections[0]["correct"] == [("MAN", "WOMAN", "KING", "QUEEN"),
                                      ("MAN", "KING", "WOMAN", "QUEEN")]
    assert sections[0]["incorrect"] == [("MAN", "WOMAN", "KING", "PEAR")]
    assert score == pytest.approx(3 / 4)         # the question with an unknown word is skipped
    score, _ = _toy_vectors().evaluate_word_analogies(path, dummy4unknown=True)
    assert score == pytest.approx(3 / 5)


def test_evaluate_word_pairs(tmp_path):
    kv = _toy_vectors()
    lines = ["# word1\tword2\tscore", "man\twoman\t8.0", "king\tqueen\t7.5",
             "apple\tman\t0.5", "pear\tapple\t9.0", "king\tunknown\t3.0", "QUEEN\twoman\t6.0"]
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    (r, p), (rho, p_rho), oov = kv.evaluate_word_pairs(path)
    pairs = [("man", "woman"), ("king", "queen"), ("apple", "man"), ("pear", "apple"),
             ("queen", "woman")]
    ours = np.array([kv.similarity(a, b) for a, b in pairs])
    human = np.array([8.0, 7.5, 0.5, 9.0, 6.0])
    assert r == pytest.approx(np.corrcoef(ours, human)[0, 1], abs=1e-6)
    assert rho == pytest.approx(np.corrcoef(_ranks(ours), _ranks(human))[0, 1], abs=1e-6)
    assert oov == pytest.approx(100 / 6)
    assert 0 <= p <= 1 and 0 <= p_rho <= 1


def test_pearson_p_value_matches_closed_form():
    # with n = 4 (two degrees of freedom) Student's t has a closed form:
    # two-sided p = 1 - |t| / sqrt(2 + t^2)
    x, y = np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 5])
    r, p = _pearson(x, y)
    t = r * np.sqrt(2 / (1 - r * r))
    assert p == pytest.approx(1 - abs(t) / np.sqrt(2 + t * t), rel=1e-10)
    np.testing.assert_array_equal(_ranks(np.array([3.0, 1, 3, 2])), [3.5, 1, 3.5, 2])


# ---- tokenisation ----------------------------------------------------------------------------
def test_tokenize():
    assert tokenize("Don't STOP, o'er the hills-and far'") == ["don't", "stop", "o'er", "the",
                                                                 "hills", "and", "far"]
    assert [len(s) for s in text_to_sentences("a " * 25, max_len=10)] == [10, 10, 5]


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


def test_unknown_word_raises_key_error_naming_it(small_model):
    with pytest.raises(KeyError, match="zebra"):
        small_model.wv["zebra"]
    with pytest.raises(KeyError, match="zebra"):
        small_model.wv.most_similar("zebra")
    with pytest.raises(KeyError, match="zebra"):
        small_model.wv.similarity("c0w1", "zebra")


def test_most_similar_with_no_words(small_model):
    with pytest.raises(ValueError, match="no input"):
        small_model.wv.most_similar(positive=[])


def test_sentences_must_be_token_lists():
    with pytest.raises(TypeError, match="list of tokens"):
        Word2Vec(["a whole sentence as one string"], progress=False)
    with pytest.raises(TypeError, match="re-iterable"):
        Word2Vec((s for s in [["a", "b"]]), progress=False)
    with pytest.raises(ValueError, match="window"):
        Word2Vec(window=0)


# ---- agreement with gensim (slow; RUN_SLOW=1 to run) ------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not HAVE_GENSIM or os.environ.get("RUN_SLOW") != "1",
                    reason="needs gensim and RUN_SLOW=1 (trains three models on Shakespeare)")
def test_agreement_with_gensim():
    from gensim.models import Word2Vec as GensimWord2Vec

    from benchmarks.bench_word2vec import neighbours_by_key, overlap
    from tinygrad_llm.data import dataset_path
    sentences = text_to_sentences(dataset_path("tinyshakespeare.txt").read_text())
    gs = [GensimWord2Vec(sentences, sg=1, epochs=5, workers=1, seed=s).wv for s in (1, 2)]
    ours = Word2Vec(sentences, sg=1, epochs=5, progress=False).wv
    top = gs[0].index_to_key[:1000]
    n = [neighbours_by_key(w.index_to_key, w.vectors, w.key_to_index, top) for w in gs + [ours]]
    ceiling = overlap(n[0], n[1])
    assert (overlap(n[2], n[0]) + overlap(n[2], n[1])) / 2 >= 0.85 * ceiling
