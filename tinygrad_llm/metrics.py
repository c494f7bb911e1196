r"""Evaluation metrics for generated text and language models: BLEU, ROUGE-N, ROUGE-L, perplexity.

The scores are defined to agree with the tools papers report: ``bleu`` with sacrebleu's
``corpus_bleu`` at its defaults, ``rouge_n`` and ``rouge_l`` with Google's rouge-score package
(no stemmer). The formulas and the traps (corpus BLEU is not a mean of sentence BLEUs; short
sentences without 4-grams; rouge-score takes the target first): docs/metrics.md.

Symbols: for hypothesis (candidate) i, ``c_i`` its length in tokens and ``r_i`` the length of
the reference chosen for it; ``m_n`` and ``t_n`` the matched and total n-gram counts of order n
summed over the corpus; ``p_n = m_n / t_n``.

    BLEU   = 100 BP exp( (1/N) sum_{n=1..N} log p_n ),   N = 4
    BP     = 1 if c >= r else exp(1 - r / c),  c = sum_i c_i,  r = sum_i r_i
    ROUGE-N: P = overlap / #hypothesis n-grams,  R = overlap / #reference n-grams,
             F = 2 P R / (P + R)
    ROUGE-L: the same with overlap = LCS(reference, hypothesis) and unigram counts
    perplexity = exp(mean negative log-likelihood per token)
"""

import math
from dataclasses import dataclass

import numpy as np
import regex

from tinygrad_llm.tensor import no_grad

__all__ = ["BLEUStats", "bleu", "bleu_stats", "bleu_tokenize", "rouge_tokenize", "rouge_n",
           "rouge_l", "lcs_length", "RougeScore", "perplexity", "language_model_perplexity"]

MAX_ORDER = 4   # BLEU's largest n-gram order


# ---- input checks ------------------------------------------------------------------------------
def _check_corpus(function, hypotheses, references):
    r"""Check that ``hypotheses`` is a list of str and ``references`` a list of the same length
    whose items are a str or a non-empty list of str; return the references as lists of str."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError(f"{function}: hypotheses and references must be lists (one item per "
                        f"sentence), not a single string")
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{function}: hypotheses and references must have the same length, got "
                         f"{len(hypotheses)} hypotheses and {len(references)} references")
    if not hypotheses:
        raise ValueError(f"{function}: hypotheses and references are empty (0 sentences)")
    for i, hypothesis in enumerate(hypotheses):
        if not isinstance(hypothesis, str):
            raise TypeError(f"{function}: hypotheses[{i}] must be a str, got "
                            f"{type(hypothesis).__name__}")
    lists = []
    for i, refs in enumerate(references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError(f"{function}: references[{i}] is an empty list; each hypothesis "
                             f"needs at least one reference")
        for j, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise TypeError(f"{function}: references[{i}][{j}] must be a str, got "
                                f"{type(ref).__name__}")
        lists.append(refs)
    return hypotheses, lists


# ---- BLEU --------------------------------------------------------------------------------------
# The "13a" tokenizer of mteval-v13a.pl (the WMT scorer), as sacrebleu applies it: split off
# punctuation and symbols; split "." and "," unless they sit between digits; split "-" after
# a digit. The rules run in this order, each over the output of the one before.
_BLEU_RULES = [
    (regex.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),   # symbols and punctuation
    (regex.compile(r"([^0-9])([\.,])"), r"\1 \2 "),                 # . , not after a digit
    (regex.compile(r"([\.,])([^0-9])"), r" \1 \2"),                 # . , not before a digit
    (regex.compile(r"([0-9])(-)"), r"\1 \2 "),                      # - after a digit
]
_ENTITIES = [("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")]


def bleu_tokenize(text):
    r"""Split ``text`` into BLEU's tokens with the 13a rules (case is kept).

    Trailing whitespace is dropped, ``<skipped>`` markers and hyphens at a line end are removed,
    newlines become spaces and four HTML entities are decoded before the rules run.
    """
    line = text.rstrip()
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in _ENTITIES:
            line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in _BLEU_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _ngram_counts(tokens, max_order):
    r"""Counts of every n-gram of ``tokens`` with 1 <= n <= max_order, keyed by the tuple."""
    counts = {}
    for n in range(1, max_order + 1):
        for start in range(len(tokens) - n + 1):
            gram = tuple(tokens[start:start + n])
            counts[gram] = counts.get(gram, 0) + 1
    return counts


def _closest_length(hypothesis_length, reference_lengths):
    r"""The reference length nearest the hypothesis length; the shorter one on a tie."""
    return min(reference_lengths, key=lambda r: (abs(r - hypothesis_length), r))


@dataclass
class BLEUStats:
    r"""BLEU's sufficient statistics over a corpus, and the score they give.

    ``matches[n-1]`` m_n: clipped n-gram matches, ``totals[n-1]`` t_n: hypothesis n-grams,
    ``precisions[n-1]``: 100 p_n after smoothing (0 where t_n = 0), ``brevity_penalty`` BP,
    ``hypothesis_length`` c and ``reference_length`` r in tokens, ``score`` BLEU in [0, 100].
    """

    matches: list
    totals: list
    precisions: list
    brevity_penalty: float
    hypothesis_length: int
    reference_length: int
    score: float


def bleu_stats(hypotheses, references, smooth="exp"):
    r"""Corpus BLEU with every intermediate count.

    Each sentence adds its clipped matches: an n-gram g of hypothesis i counts
    min(count_i(g), max over i's references of count_ref(g)) times, and the reference length
    r_i nearest c_i (the shorter on a tie). The sums over the corpus give

        p_n = m_n / t_n,   BLEU = 100 BP exp( (1/4) sum_{n=1..4} log p_n ),
        BP  = 1 if c >= r else exp(1 - r / c)   (0 when c = 0).

    With ``smooth="exp"`` (sacrebleu's default, mteval's smoothing) the k-th order, counting
    from the lowest, that has no match but has n-grams gets p_n = 1 / (2^k t_n) instead of 0.
    With ``smooth="none"`` a zero p_n makes the score 0. Orders with t_n = 0 (every sentence
    shorter than n) end the loop with p_n = 0, which also gives 0. No match at all gives 0.

    Parameters
    ----------
    hypotheses : list of str, one per sentence.
    references : list, the same length; item i is a str or a non-empty list of str, the
        references for hypothesis i. Lists may differ in length. (sacrebleu takes references
        transposed, one stream per reference; a hypothesis with fewer references there has
        its stream entries set to None, which gives the same score as here.)
    smooth : "exp" or "none".

    Returns
    -------
    BLEUStats
    """
    return _bleu_stats("bleu_stats", hypotheses, references, smooth)


def _bleu_stats(function, hypotheses, references, smooth):
    if smooth not in ("exp", "none"):
        raise ValueError(f"{function}: smooth must be 'exp' or 'none', got {smooth!r}")
    hypotheses, references = _check_corpus(function, hypotheses, references)
    matches, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
    hypothesis_length = reference_length = 0
    for hypothesis, refs in zip(hypotheses, references):
        tokens = bleu_tokenize(hypothesis)
        ref_tokens = [bleu_tokenize(ref) for ref in refs]
        # Clip with the largest count of each n-gram in any one reference.
        ceiling = {}
        for ref in ref_tokens:
            for gram, count in _ngram_counts(ref, MAX_ORDER).items():
                ceiling[gram] = max(ceiling.get(gram, 0), count)
        for gram, count in _ngram_counts(tokens, MAX_ORDER).items():
            totals[len(gram) - 1] += count
            matches[len(gram) - 1] += min(count, ceiling.get(gram, 0))
        hypothesis_length += len(tokens)
        reference_length += _closest_length(len(tokens), [len(ref) for ref in ref_tokens])

    c, r = hypothesis_length, reference_length
    brevity_penalty = 1.0 if c >= r else (math.exp(1 - r / c) if c > 0 else 0.0)
    precisions = [0.0] * MAX_ORDER
    if not any(matches):
        return BLEUStats(matches, totals, precisions, brevity_penalty, c, r, 0.0)
    halvings = 1.0
    for n in range(MAX_ORDER):
        if totals[n] == 0:
            break
        if matches[n] > 0:
            precisions[n] = 100.0 * matches[n] / totals[n]
        elif smooth == "exp":
            halvings *= 2
            precisions[n] = 100.0 / (halvings * totals[n])
    if min(precisions) == 0.0:
        score = 0.0
    else:
        score = brevity_penalty * math.exp(sum(math.log(p) for p in precisions) / MAX_ORDER)
    return BLEUStats(matches, totals, precisions, brevity_penalty, c, r, score)


def bleu(hypotheses, references, smooth="exp"):
    r"""Corpus BLEU in [0, 100]: ``bleu_stats(hypotheses, references, smooth).score``.

    Equal to ``sacrebleu.corpus_bleu(hypotheses, streams).score`` with its defaults (13a
    tokenizer, case kept, exp smoothing, n-grams up to 4, nearest reference length), where
    ``streams[k][i]`` is the k-th reference of hypothesis i (None past the end of its list).
    """
    return _bleu_stats("bleu", hypotheses, references, smooth).score


# ---- ROUGE -------------------------------------------------------------------------------------
_ROUGE_TOKEN = regex.compile(r"[a-z0-9]+")


def rouge_tokenize(text):
    r"""ROUGE's tokens: lowercase ``text``, then keep the runs of ASCII letters and digits.

    Everything else (punctuation, accented and non-Latin letters) separates tokens.
    """
    return _ROUGE_TOKEN.findall(text.lower())


@dataclass
class RougeScore:
    r"""Precision P, recall R and F = 2 P R / (P + R), each averaged over the sentences."""

    precision: float
    recall: float
    fmeasure: float


def _f_measure(precision, recall):
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _rouge_n_pair(reference, hypothesis, n):
    r"""(P, R, F) of the n-gram overlap of two token lists."""
    ref_grams = _ngrams(reference, n)
    hyp_grams = _ngrams(hypothesis, n)
    overlap = sum(min(count, hyp_grams.get(gram, 0)) for gram, count in ref_grams.items())
    precision = overlap / max(sum(hyp_grams.values()), 1)
    recall = overlap / max(sum(ref_grams.values()), 1)
    return precision, recall, _f_measure(precision, recall)


def _ngrams(tokens, n):
    counts = {}
    for start in range(len(tokens) - n + 1):
        gram = tuple(tokens[start:start + n])
        counts[gram] = counts.get(gram, 0) + 1
    return counts


def lcs_length(a, b):
    r"""The length of the longest common subsequence of the sequences ``a`` and ``b``.

    The dynamic programme ``L[i][j] = L[i-1][j-1] + 1 if a[i-1] == b[j-1] else
    max(L[i-1][j], L[i][j-1])``, kept one row at a time: O(len(a) len(b)) time, O(len(b)) memory.
    """
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def _rouge_l_pair(reference, hypothesis, n=None):
    r"""(P, R, F) with the LCS as the overlap; all 0 when either side has no tokens."""
    if not reference or not hypothesis:
        return 0.0, 0.0, 0.0
    common = lcs_length(reference, hypothesis)
    precision, recall = common / len(hypothesis), common / len(reference)
    return precision, recall, _f_measure(precision, recall)


def _rouge(function, pair_score, hypotheses, references, n=None):
    hypotheses, references = _check_corpus(function, hypotheses, references)
    scores = np.zeros((len(hypotheses), 3))                                  # (sentences, P R F)
    for i, (hypothesis, refs) in enumerate(zip(hypotheses, references)):
        hyp_tokens = rouge_tokenize(hypothesis)
        candidates = [pair_score(rouge_tokenize(ref), hyp_tokens, n) for ref in refs]
        # Several references: the one with the largest F (the first on a tie) scores the pair.
        scores[i] = max(candidates, key=lambda score: score[2])
    precision, recall, fmeasure = scores.mean(axis=0)                        # (3,)
    return RougeScore(float(precision), float(recall), float(fmeasure))


def rouge_n(hypotheses, references, n=1):
    r"""ROUGE-N: n-gram overlap between each hypothesis and its reference, averaged over pairs.

    For one pair, with count_h(g) and count_r(g) the n-gram counts of hypothesis and reference
    (tokens from ``rouge_tokenize``),

        overlap = sum_g min(count_h(g), count_r(g))
        P = overlap / max(sum_g count_h(g), 1),   R = overlap / max(sum_g count_r(g), 1)
        F = 2 P R / (P + R)   (0 when P + R = 0)

    and the result is the mean of P, R and F over the pairs. Equal to rouge-score's
    ``RougeScorer([f"rouge{n}"]).score(reference, hypothesis)`` (note its order: target
    first) averaged over the corpus. Where references[i] is a list, the reference with the
    largest F scores pair i, as rouge-score's ``score_multi`` does.

    Parameters
    ----------
    hypotheses : list of str.
    references : list of the same length, each item a str or a non-empty list of str.
    n : int >= 1, the n-gram order (1 and 2 are the usual ROUGE-1 and ROUGE-2).

    Returns
    -------
    RougeScore with the mean precision, recall and fmeasure.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"rouge_n: n must be a positive integer, got {n!r}")
    return _rouge("rouge_n", _rouge_n_pair, hypotheses, references, int(n))


def rouge_l(hypotheses, references):
    r"""ROUGE-L: the longest common subsequence (LCS) of each pair, averaged over pairs.

    For one pair of token lists h (hypothesis) and r (reference),

        P = LCS(r, h) / len(h),   R = LCS(r, h) / len(r),   F = 2 P R / (P + R)

    (all 0 when either list is empty). The whole text is one sequence: newlines are not
    sentence breaks (that is rouge-score's "rougeLsum", not computed here). Equal to
    rouge-score's ``rougeL``; several references per hypothesis as in ``rouge_n``.
    """
    return _rouge("rouge_l", _rouge_l_pair, hypotheses, references)


# ---- perplexity --------------------------------------------------------------------------------
def perplexity(mean_nll):
    r"""Perplexity from the mean negative log-likelihood per token (in nats): exp(mean_nll).

    A model that spreads its probability evenly over k tokens has perplexity k.
    """
    mean_nll = float(mean_nll)
    if math.isnan(mean_nll):
        raise ValueError("perplexity: mean_nll is NaN")
    try:
        return math.exp(mean_nll)
    except OverflowError:                       # above about 709.78, past float64's largest
        return math.inf


def language_model_perplexity(model, ids, block_size, batch_size=8):
    r"""The perplexity of a causal language model over a 1-D array of token ids.

    The N ids give N - 1 predictions: position t predicts ids[t + 1]. They are cut into
    non-overlapping blocks of ``block_size`` inputs (the last one may be shorter), each block
    read from its own start, so its first tokens see little context (a sliding window would
    give a lower perplexity, at more cost). ``model(idx, targets)`` returns (logits, loss)
    with loss the mean NLL over the B T positions of the batch, as ``models.GPT`` does; the
    NLLs are weighted by their token counts so every prediction counts once:

        mean_nll = sum_blocks loss_b B_b T_b / (N - 1),   perplexity = exp(mean_nll)

    Runs under ``no_grad`` and in eval mode (dropout off) when the model has ``eval``; the
    previous mode is restored.

    Parameters
    ----------
    model : callable (idx (B, T) int64, targets (B, T) int64) -> (logits, loss).
    ids : 1-D array of int, at least 2 ids.
    block_size : int >= 1, inputs per block (at most the model's context length).
    batch_size : int >= 1, full blocks per forward call.

    Returns
    -------
    float, the perplexity.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"language_model_perplexity: ids must be a 1-D array of integer ids, "
                         f"got shape {ids.shape} and dtype {ids.dtype}")
    if len(ids) < 2:
        raise ValueError(f"language_model_perplexity: ids needs at least 2 tokens (one "
                         f"prediction), got {len(ids)}")
    for name, value in (("block_size", block_size), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"language_model_perplexity: {name} must be a positive integer, "
                             f"got {value!r}")
    ids = ids.astype(np.int64)
    n_predictions = len(ids) - 1
    n_full = n_predictions // block_size
    batches = []
    inputs = ids[:n_full * block_size].reshape(n_full, block_size)              # (blocks, T)
    targets = ids[1:n_full * block_size + 1].reshape(n_full, block_size)        # (blocks, T)
    for start in range(0, n_full, batch_size):
        batches.append((inputs[start:start + batch_size], targets[start:start + batch_size]))
    rest = n_predictions - n_full * block_size
    if rest:
        batches.append((ids[None, n_full * block_size:-1], ids[None, n_full * block_size + 1:]))

    was_training = getattr(model, "training", None)
    if was_training is not None:
        model.eval()
    total_nll = 0.0
    try:
        with no_grad():
            for idx, tgt in batches:                                            # (B, T) each
                _, loss = model(idx, tgt)
                loss = loss.item() if hasattr(loss, "item") else float(loss)
                total_nll += float(loss) * tgt.size
    finally:
        if was_training is not None:
            model.train(was_training)
    return perplexity(total_nll / n_predictions)
