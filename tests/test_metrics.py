"""The text and language-model metrics (tinygrad_llm/metrics.py): BLEU against sacrebleu, ROUGE
against Google's rouge-score, perplexity against a direct computation, hand-computed cases and
the error messages.

The comparison tests skip on their own when a reference package is missing; the rest always run.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_llm import metrics
from tinygrad_llm.models import GPT, GPTConfig

# Words that exercise the tokenizers: case, punctuation, numbers with . , -, HTML entities,
# accented and non-Latin letters, and whitespace that is not a plain space.
WORDS = ["the", "The", "THE", "cat", "Cat", "sat", "on", "mat", "a", "dog", "ran", ".", ",", "!",
         "?", "'s", "don't", "3.5", "1,000", "10-20", "e-mail", "U.S.", "(", ")", '"', "&amp;",
         "&quot;", "<skipped>", "café", "naïve", "Straße", "İstanbul", "日本語", "Привет", "—",
         "€5", "x\ty", "end-\nline", "ﬁne", "Ⅻ", "²", "über"]


def _sentence(rng, max_words=12):
    words = rng.choice(WORDS, size=rng.integers(0, max_words + 1))
    text = " ".join(words)
    return text + " " * int(rng.integers(0, 2))            # a trailing space now and then


def _corpus(seed, n_sentences=20, max_refs=3, max_words=12):
    """Hypotheses and, for each, 1..max_refs references; some share words with the hypothesis."""
    rng = np.random.default_rng(seed)
    hypotheses, references = [], []
    for _ in range(n_sentences):
        hypothesis = _sentence(rng, max_words)
        refs = []
        for _ in range(rng.integers(1, max_refs + 1)):
            if rng.random() < 0.5:                          # an edit of the hypothesis
                words = hypothesis.split()
                keep = [w for w in words if rng.random() < 0.8]
                refs.append(" ".join(keep + list(rng.choice(WORDS, size=rng.integers(0, 3)))))
            else:
                refs.append(_sentence(rng, max_words))
        hypotheses.append(hypothesis)
        references.append(refs if len(refs) > 1 or rng.random() < 0.5 else refs[0])
    return hypotheses, references


def _streams(references):
    """sacrebleu's layout: one stream per reference, None where a sentence has fewer."""
    lists = [[r] if isinstance(r, str) else list(r) for r in references]
    width = max(len(refs) for refs in lists)
    return [[refs[k] if k < len(refs) else None for refs in lists] for k in range(width)]


# ---- BLEU against sacrebleu --------------------------------------------------------------------
@pytest.fixture
def sacrebleu():
    return pytest.importorskip("sacrebleu")


def _assert_same_bleu(sacrebleu, hypotheses, references, smooth="exp"):
    expected = sacrebleu.corpus_bleu(hypotheses, _streams(references), smooth_method=smooth)
    stats = metrics.bleu_stats(hypotheses, references, smooth=smooth)
    assert stats.matches == list(expected.counts)
    assert stats.totals == list(expected.totals)
    assert stats.hypothesis_length == expected.sys_len
    assert stats.reference_length == expected.ref_len
    assert stats.brevity_penalty == pytest.approx(expected.bp, abs=1e-12)
    np.testing.assert_allclose(stats.precisions, expected.precisions, rtol=0, atol=1e-9)
    assert abs(stats.score - expected.score) <= 1e-9
    assert metrics.bleu(hypotheses, references, smooth=smooth) == stats.score


@pytest.mark.parametrize("seed", range(12))
def test_bleu_equals_sacrebleu_on_random_corpora(sacrebleu, seed):
    hypotheses, references = _corpus(seed)
    _assert_same_bleu(sacrebleu, hypotheses, references)


@pytest.mark.parametrize("smooth", ["exp", "none"])
@pytest.mark.parametrize("seed", range(6))
def test_bleu_equals_sacrebleu_on_short_sentences_without_4grams(sacrebleu, seed, smooth):
    hypotheses, references = _corpus(100 + seed, max_words=3)
    _assert_same_bleu(sacrebleu, hypotheses, references, smooth)


@pytest.mark.parametrize("smooth", ["exp", "none"])
def test_bleu_equals_sacrebleu_on_edge_corpora(sacrebleu, smooth):
    corpora = [
        (["", ""], ["a b c", ["d e", "f"]]),                        # empty hypotheses
        ([""], [""]),                                               # nothing at all
        (["a b c"], ["a b c"]),                                     # perfect but no 4-gram
        (["x y z w v"], ["a b c d e"]),                             # no match
        (["The cat sat on the mat ."], ["the cat sat on the mat."]),  # case, a split period
        (["Hello,world!It's 3.5 km"], [["hello , world ! It 's 3.5 km", "Hello world"]]),
        (["café naïve Straße 日本語"], ["café naive Strasse 日本語"]),
        (["a a a a a a a"], [["a a", "a a a a a a a a a a"]]),      # clipping, length tie
        (["one two three four five"], [["one two", "one two three four five six seven"]]),
    ]
    for hypotheses, references in corpora:
        _assert_same_bleu(sacrebleu, hypotheses, references, smooth)


@pytest.mark.parametrize("seed", range(3))
def test_identical_corpora_score_100_and_1(seed):
    hypotheses, _ = _corpus(200 + seed)
    hypotheses = [h + " padding words here" for h in hypotheses]   # every line has 4-grams
    assert metrics.bleu(hypotheses, hypotheses) == pytest.approx(100.0, abs=1e-9)
    for score in (metrics.rouge_n(hypotheses, hypotheses, n=2), metrics.rouge_l(hypotheses,
                                                                                  hypotheses)):
        assert (score.precision, score.recall, score.fmeasure) == pytest.approx((1, 1, 1))


@pytest.mark.parametrize("seed", range(3))
def test_bleu_of_identical_corpora_equals_sacrebleu(sacrebleu, seed):
    hypotheses, _ = _corpus(200 + seed)
    _assert_same_bleu(sacrebleu, hypotheses, hypotheses)


@given(st.text(max_size=40))
def test_bleu_tokenize_equals_sacrebleu_13a(text):
    tokenizer_13a = pytest.importorskip("sacrebleu.tokenizers.tokenizer_13a")
    assert metrics.bleu_tokenize(text) == tokenizer_13a.Tokenizer13a()(text.rstrip()).split()


def test_bleu_pads_variable_references_with_none_not_empty_strings(sacrebleu):
    # An empty-string reference is a reference of length 0: it can become the nearest length.
    long = "a b c d e f g h i j"
    with_empty = sacrebleu.corpus_bleu(["a b c d"], [[long], [""]])
    assert with_empty.ref_len == 0 and with_empty.score == pytest.approx(100.0)
    assert metrics.bleu(["a b c d"], [[long, ""]]) == pytest.approx(with_empty.score)
    stats = metrics.bleu_stats(["a b c d"], [[long]])
    assert stats.reference_length == 10
    assert stats.score == pytest.approx(100 * math.exp(1 - 10 / 4))


# ---- BLEU by hand ------------------------------------------------------------------------------
def test_bleu_by_hand():
    # p = 4/5, 3/4, 2/3, 1/2 and BP = 1:  BLEU = 100 (4/5 3/4 2/3 1/2)^(1/4) = 100 * 0.2^(1/4)
    assert metrics.bleu(["a b c d e"], ["a b c d f"]) == pytest.approx(100 * 0.2 ** 0.25)
    # Hypothesis of 2 tokens against a reference of 4: BP = exp(1 - 4/2); p1 = 1, p2 = 1 and
    # the missing orders 3 and 4 (no n-grams at all) make the score 0.
    stats = metrics.bleu_stats(["a b"], ["a b c d"])
    assert stats.brevity_penalty == pytest.approx(math.exp(-1))
    assert stats.totals == [2, 1, 0, 0] and stats.score == 0.0
    # A perfect 3-token match has no 4-gram: 0 with or without smoothing.
    assert metrics.bleu(["a b c"], ["a b c"]) == 0.0
    # Four tokens, a perfect match: 100.
    assert metrics.bleu(["a b c d"], ["a b c d"]) == pytest.approx(100.0)


def test_bleu_exp_smoothing_by_hand():
    # a b c d vs a b c e: p = 3/4, 2/3, 1/2, and 0 matches of 1 four-gram.
    # exp smoothing: p4 = 1 / (2 * 1), so BLEU = 100 (3/4 2/3 1/2 1/2)^(1/4); without it, 0.
    expected = 100 * (0.75 * (2 / 3) * 0.5 * 0.5) ** 0.25
    assert metrics.bleu(["a b c d"], ["a b c e"]) == pytest.approx(expected)
    assert metrics.bleu(["a b c d"], ["a b c e"], smooth="none") == 0.0


def test_corpus_bleu_is_not_the_mean_of_sentence_bleus():
    hypotheses = ["a b c d e f g h", "x y"]
    references = ["a b c d e f g h", "x z"]
    corpus = metrics.bleu(hypotheses, references)
    sentences = [metrics.bleu([h], [r]) for h, r in zip(hypotheses, references)]
    assert sentences[0] == pytest.approx(100.0) and sentences[1] == 0.0
    # Pooled counts: m = (9, 7, 6, 5) of t = (10, 8, 6, 5):  (9/10 7/8 1 1)^(1/4).
    assert corpus == pytest.approx(100 * (0.9 * 0.875) ** 0.25)
    assert corpus != pytest.approx(np.mean(sentences))


# ---- ROUGE against rouge-score -----------------------------------------------------------------
@pytest.fixture
def rouge_scorer():
    return pytest.importorskip("rouge_score.rouge_scorer")


def _expected_rouge(rouge_scorer, rouge_type, hypotheses, references):
    scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=False)
    rows = []
    for hypothesis, refs in zip(hypotheses, references):
        if isinstance(refs, str):
            score = scorer.score(refs, hypothesis)[rouge_type]              # target first
        else:
            score = scorer.score_multi(refs, hypothesis)[rouge_type]
        rows.append((score.precision, score.recall, score.fmeasure))
    return np.mean(rows, axis=0)


def _assert_same_rouge(rouge_scorer, hypotheses, references):
    for rouge_type, ours in [("rouge1", metrics.rouge_n(hypotheses, references, n=1)),
                             ("rouge2", metrics.rouge_n(hypotheses, references, n=2)),
                             ("rouge3", metrics.rouge_n(hypotheses, references, n=3)),
                             ("rougeL", metrics.rouge_l(hypotheses, references))]:
        expected = _expected_rouge(rouge_scorer, rouge_type, hypotheses, references)
        np.testing.assert_allclose([ours.precision, ours.recall, ours.fmeasure], expected,
                                   rtol=0, atol=1e-9, err_msg=rouge_type)


@pytest.mark.parametrize("seed", range(12))
def test_rouge_equals_rouge_score_on_random_corpora(rouge_scorer, seed):
    hypotheses, references = _corpus(300 + seed)
    _assert_same_rouge(rouge_scorer, hypotheses, references)


@pytest.mark.parametrize("seed", range(4))
def test_rouge_equals_rouge_score_on_single_references(rouge_scorer, seed):
    hypotheses, references = _corpus(400 + seed, max_refs=1)
    references = [r if isinstance(r, str) else r[0] for r in references]
    _assert_same_rouge(rouge_scorer, hypotheses, references)


def test_rouge_equals_rouge_score_on_edge_corpora(rouge_scorer):
    corpora = [
        (["", "a b"], ["a b", ""]),                                 # empty either side
        (["...", "!!"], ["?", "a"]),                                # punctuation only
        (["The CAT, sat."], ["the cat sat"]),                       # case and punctuation
        (["café naïve 日本語 Straße"], ["cafe naive strasse"]),      # non-ASCII splits words
        (["a"], ["a"]),                                             # shorter than a bigram
        (["a b c d"], ["a b c d"]),                                 # identical
        (["a b a b a"], [["b a b", "a a a a a a", "a b a b a"]]),   # several references
        (["x y"], [["p q", "r s"]]),                                # a tie at F = 0
    ]
    for hypotheses, references in corpora:
        _assert_same_rouge(rouge_scorer, hypotheses, references)


@given(st.text(max_size=40))
def test_rouge_tokenize_equals_rouge_score(text):
    tokenize = pytest.importorskip("rouge_score.tokenize")
    assert metrics.rouge_tokenize(text) == tokenize.tokenize(text, None)


# ---- ROUGE by hand -----------------------------------------------------------------------------
def test_rouge_by_hand():
    # the cat sat / the cat ate: unigrams 2 of 3 both ways, bigrams 1 of 2, LCS "the cat".
    one = metrics.rouge_n(["the cat sat"], ["The cat ate."], n=1)
    two = metrics.rouge_n(["the cat sat"], ["The cat ate."], n=2)
    lcs = metrics.rouge_l(["the cat sat"], ["The cat ate."])
    assert (one.precision, one.recall, one.fmeasure) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert (two.precision, two.recall, two.fmeasure) == pytest.approx((0.5, 0.5, 0.5))
    assert (lcs.precision, lcs.recall) == pytest.approx((2 / 3, 2 / 3))
    # Precision is over the hypothesis, recall over the reference: swapping them swaps P and R.
    short = metrics.rouge_n(["cat"], ["the cat sat"], n=1)
    assert (short.precision, short.recall) == pytest.approx((1.0, 1 / 3))
    assert short.fmeasure == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))


def test_rouge_averages_over_pairs():
    score = metrics.rouge_n(["a b", "c"], ["a b", "d"], n=1)
    assert (score.precision, score.recall, score.fmeasure) == pytest.approx((0.5, 0.5, 0.5))


def test_rouge_l_takes_the_best_reference():
    score = metrics.rouge_l(["a b c d"], [["d c b a", "a b c d"]])
    assert score.fmeasure == pytest.approx(1.0)


def test_lcs_length():
    assert metrics.lcs_length("ABCBDAB", "BDCABA") == 4
    assert metrics.lcs_length([], [1, 2]) == 0
    assert metrics.lcs_length([1, 2, 3], [3, 2, 1]) == 1


# ---- perplexity --------------------------------------------------------------------------------
def test_perplexity_is_exp_of_the_mean_nll():
    assert metrics.perplexity(0.0) == 1.0
    assert metrics.perplexity(math.log(50)) == pytest.approx(50)
    assert metrics.perplexity(np.float32(1.5)) == pytest.approx(math.exp(1.5))
    assert metrics.perplexity(1e4) == math.inf
    with pytest.raises(ValueError, match="perplexity: mean_nll is NaN"):
        metrics.perplexity(float("nan"))


def _direct_perplexity(model, ids, block_size):
    """Each block through the model alone, log-softmax in float64, NLL summed over tokens."""
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, block_size):
        idx = ids[start:start + block_size][None, :]                     # (1, T)
        idx = idx[:, :len(ids) - 1 - start]
        targets = ids[start + 1:start + 1 + idx.shape[1]]                  # (T,)
        logits = model(idx)[0].numpy()[0].astype(np.float64)              # (T, V)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        total -= log_probs[np.arange(len(targets)), targets].sum()
        count += len(targets)
    assert count == len(ids) - 1
    return math.exp(total / count)


@pytest.mark.parametrize("n_ids,batch_size", [(30, 2), (33, 8), (2, 1), (9, 3)])
def test_language_model_perplexity_equals_a_direct_computation(n_ids, batch_size):
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.3)
    model = GPT(config)
    ids = np.random.default_rng(n_ids).integers(0, config.vocab_size, size=n_ids)
    model.train()
    got = metrics.language_model_perplexity(model, ids, block_size=8, batch_size=batch_size)
    assert model.training                                   # the mode is restored
    model.eval()
    assert got == pytest.approx(_direct_perplexity(model, ids, 8), rel=1e-5)
    # Smaller blocks see less context but score the same tokens.
    small = metrics.language_model_perplexity(model, ids, block_size=3, batch_size=batch_size)
    assert small == pytest.approx(_direct_perplexity(model, ids, 3), rel=1e-5)


def test_language_model_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    vocab = 17
    calls = []

    def uniform(idx, targets):
        calls.append(idx.shape)
        return None, math.log(vocab)                          # the mean NLL of 1 / V everywhere

    got = metrics.language_model_perplexity(uniform, np.arange(24) % vocab, block_size=5,
                                            batch_size=2)
    assert got == pytest.approx(vocab)
    assert calls == [(2, 5), (2, 5), (1, 3)]                  # 23 predictions: 4 blocks and 3


def test_language_model_perplexity_weights_by_tokens():
    # Blocks of 4, 4 and 1 predictions with mean NLLs 1, 1 and 10: (4 + 4 + 10) / 9 = 2.
    def model(idx, targets):
        return None, 10.0 if idx.shape[1] == 1 else 1.0

    got = metrics.language_model_perplexity(model, np.zeros(10, dtype=np.int64), block_size=4)
    assert got == pytest.approx(math.exp(2.0))


# ---- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("function", [metrics.bleu, metrics.bleu_stats, metrics.rouge_l,
                                      lambda h, r: metrics.rouge_n(h, r, n=2)])
def test_different_lengths_are_an_error_naming_both(function):
    with pytest.raises(ValueError, match=r"same length, got 3 hypotheses and 2 references"):
        function(["a", "b", "c"], ["a", "b"])


def test_bad_corpus_errors_name_the_function_and_the_argument():
    with pytest.raises(ValueError, match=r"^bleu: .*empty"):
        metrics.bleu([], [])
    with pytest.raises(TypeError, match=r"^rouge_l: .*not a single string"):
        metrics.rouge_l("a b", "a b")
    with pytest.raises(TypeError, match=r"^bleu: hypotheses\[1\] must be a str, got int"):
        metrics.bleu(["a", 3], ["a", "b"])
    with pytest.raises(TypeError, match=r"^rouge_n: references\[0\]\[1\] must be a str"):
        metrics.rouge_n(["a"], [["a", None]])
    with pytest.raises(ValueError, match=r"^bleu: references\[0\] is an empty list"):
        metrics.bleu(["a"], [[]])
    with pytest.raises(ValueError, match=r"^rouge_n: n must be a positive integer, got 0"):
        metrics.rouge_n(["a"], ["a"], n=0)
    with pytest.raises(ValueError, match=r"^bleu: smooth must be"):
        metrics.bleu(["a"], ["a"], smooth="floor")


def test_language_model_perplexity_errors():
    def model(idx, targets):
        return None, 1.0

    with pytest.raises(ValueError, match=r"ids must be a 1-D array .* shape \(2, 3\)"):
        metrics.language_model_perplexity(model, np.zeros((2, 3), dtype=np.int64), 4)
    with pytest.raises(ValueError, match=r"ids must be a 1-D array .* float64"):
        metrics.language_model_perplexity(model, np.zeros(5), 4)
    with pytest.raises(ValueError, match=r"at least 2 tokens .* got 1"):
        metrics.language_model_perplexity(model, np.zeros(1, dtype=np.int64), 4)
    with pytest.raises(ValueError, match=r"block_size must be a positive integer, got 0"):
        metrics.language_model_perplexity(model, np.zeros(5, dtype=np.int64), 0)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 2.5"):
        metrics.language_model_perplexity(model, np.zeros(5, dtype=np.int64), 2, batch_size=2.5)
