"""Judging word vectors: nearest-neighbour overlap, word-pair correlations and analogies on
small hand-made cases and against gensim's evaluations (when installed), and the statistics
(ranks with ties, Pearson's p-value against a closed form, the incomplete beta function)."""

import math

import numpy as np
import pytest

from tinygrad_llm.models import KeyedVectors
from tinygrad_llm.models.word2vec_eval import (
    betainc,
    knn,
    knn_overlap,
    neighbours_by_key,
    pearson,
    ranks,
)

try:
    import gensim  # noqa: F401
    HAVE_GENSIM = True
except ImportError:
    HAVE_GENSIM = False


def _toy_vectors():
    words = ["man", "woman", "king", "queen", "apple", "pear"]
    vectors = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1],
                        [0, 0.2, 0, 1]], np.float32)
    return KeyedVectors(vectors, words)


# ---- nearest neighbours ----------------------------------------------------------------------
def test_knn_and_overlap():
    kv = _toy_vectors()
    near = knn(kv.vectors, np.array([4, 0]), k=2)                  # (2, 2)
    assert near[0, 0] == 5 and 0 not in near[1] and 4 not in near[0]
    assert neighbours_by_key(kv, ["apple"], k=1) == [["pear"]]
    assert knn_overlap([[1, 2, 3], [4, 5, 6]], [[3, 2, 9], [7, 8, 9]]) == pytest.approx(1 / 3)


# ---- analogies and word pairs ----------------------------------------------------------------
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
    path.write_text("man woman king queen\n")
    with pytest.raises(ValueError, match="section"):
        _toy_vectors().evaluate_word_analogies(path)


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
    assert rho == pytest.approx(np.corrcoef(ranks(ours), ranks(human))[0, 1], abs=1e-6)
    assert oov == pytest.approx(100 / 6)
    assert 0 <= p <= 1 and 0 <= p_rho <= 1
    path.write_text("man\twoman\n")
    with pytest.raises(ValueError, match="word1"):
        kv.evaluate_word_pairs(path)
    with pytest.raises(FileNotFoundError, match="nope"):
        kv.evaluate_word_pairs(tmp_path / "nope.tsv")


@pytest.mark.skipif(not HAVE_GENSIM, reason="gensim is not installed")
def test_evaluations_match_gensim(tmp_path):
    from gensim.models import KeyedVectors as GensimKeyedVectors
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(24)]
    kv = KeyedVectors(rng.standard_normal((24, 8)), words)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{words[a]}\t{words[b]}\t{rng.uniform(0, 10):.2f}\n"
                             for a, b in rng.integers(0, len(words), (40, 2)))
                     + "zebra\tw1\t5.0\n")
    questions = tmp_path / "questions.txt"
    lines = [" ".join(words[i] for i in rng.integers(0, len(words), 4)) for _ in range(60)]
    questions.write_text(": one\n" + "\n".join(lines[:30]) + "\n: two\n"
                         + "\n".join(lines[30:]) + "\nzebra w1 w2 w3\n")
    path = tmp_path / "vectors.txt"
    kv.save_word2vec_format(path)
    theirs = GensimKeyedVectors.load_word2vec_format(str(path))
    (r, p), (rho, p_rho), oov = kv.evaluate_word_pairs(pairs)
    g_pearson, g_spearman, g_oov = theirs.evaluate_word_pairs(str(pairs))
    np.testing.assert_allclose([r, p, rho, p_rho, oov],
                               [g_pearson[0], g_pearson[1], g_spearman[0], g_spearman[1], g_oov],
                               rtol=1e-4, atol=1e-6)
    score, sections = kv.evaluate_word_analogies(questions)
    g_score, g_sections = theirs.evaluate_word_analogies(str(questions))
    assert score == pytest.approx(g_score)
    for ours, gs in zip(sections, g_sections):
        assert ours["section"] == gs["section"]
        assert ours["correct"] == [tuple(q) for q in gs["correct"]]
        assert ours["incorrect"] == [tuple(q) for q in gs["incorrect"]]


# ---- statistics ------------------------------------------------------------------------------
def test_ranks_average_ties():
    np.testing.assert_array_equal(ranks(np.array([3.0, 1, 3, 2])), [3.5, 1, 3.5, 2])
    np.testing.assert_array_equal(ranks(np.array([5.0, 5, 5])), [2, 2, 2])


def test_pearson_p_value_matches_closed_form():
    # with n = 4 (two degrees of freedom) Student's t has a closed form:
    # two-sided p = 1 - |t| / sqrt(2 + t^2)
    x, y = np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 5])
    r, p = pearson(x, y)
    t = r * np.sqrt(2 / (1 - r * r))
    assert p == pytest.approx(1 - abs(t) / np.sqrt(2 + t * t), rel=1e-10)
    assert pearson(x, 2 * x + 1) == (1.0, 0.0)
    assert math.isnan(pearson(x, np.ones(4))[0])


@pytest.mark.parametrize("a, b, x", [(0.5, 0.5, 0.3), (2.0, 3.0, 0.7), (10.0, 0.5, 0.95),
                                     (1.0, 1.0, 0.25)])
def test_betainc_against_closed_forms(a, b, x):
    # I_x(1, 1) = x;  I_x(1/2, 1/2) = (2 / pi) asin(sqrt x);  integer a, b: a binomial tail,
    # I_x(a, b) = sum_{j=a}^{a+b-1} C(a+b-1, j) x^j (1-x)^(a+b-1-j); otherwise a midpoint sum
    if (a, b) == (1.0, 1.0):
        expected = x
    elif (a, b) == (0.5, 0.5):
        expected = 2 / math.pi * math.asin(math.sqrt(x))
    elif a == int(a) and b == int(b):
        n = int(a + b - 1)
        expected = sum(math.comb(n, j) * x ** j * (1 - x) ** (n - j) for j in range(int(a), n + 1))
    else:
        u = (np.arange(200_000) + 0.5) / 200_000 * x
        log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        expected = float(np.sum(u ** (a - 1) * (1 - u) ** (b - 1)) * x / 200_000
                         / math.exp(log_beta))
    assert betainc(a, b, x) == pytest.approx(expected, rel=1e-6)
    assert betainc(a, b, 0.0) == 0.0 and betainc(a, b, 1.0) == 1.0
