r"""Judging word vectors: nearest neighbours, word-pair similarity, analogies, and the statistics
they need (ranks, Pearson's r and its p-value through the incomplete beta function).

Dimension letters: V words, D vector size, n query words, k neighbours, R the ``restrict_vocab``
most frequent words.

* ``knn`` / ``knn_overlap``: the k nearest neighbours by cosine, and how many two sets of vectors
  share (the agreement metric of benchmarks/bench_word2vec.py).
* ``evaluate_word_pairs``: Pearson's and Spearman's correlation of our cosines with human
  similarity scores, with p-values (gensim's ``wordsim353.tsv`` format and result).
* ``evaluate_word_analogies``: accuracy on "a is to b as c is to d" (word2vec's
  ``questions-words.txt`` format, gensim's result).

Every function takes the vectors as a ``KeyedVectors`` (models/keyed_vectors.py), whose methods
of the same names call these. The formulas: docs/word2vec.md.
"""

import math
from pathlib import Path

import numpy as np

__all__ = ["knn", "knn_overlap", "neighbours_by_key", "unit_rows", "evaluate_word_pairs",
           "evaluate_word_analogies", "ranks", "pearson", "betainc"]


# ---- nearest neighbours ----------------------------------------------------------------------
def unit_rows(vectors):
    """Each row divided by its length (rows of length 0 stay 0)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)                   # (V, 1)
    return vectors / np.maximum(norms, 1e-12)                                # (V, D)


def knn(vectors, rows, k=10):
    """The k nearest neighbours (cosine, excluding itself) of each of ``rows``: (n, k)."""
    unit = unit_rows(vectors)                                                # (V, D)
    sims = unit[rows] @ unit.T                                               # (n, V)
    sims[np.arange(len(rows)), rows] = -np.inf
    return np.argsort(-sims, axis=1)[:, :k]                                  # (n, k)


def knn_overlap(a, b):
    """Mean fraction of shared neighbours between two neighbour lists (n lists of k each)."""
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b)]))


def neighbours_by_key(kv, top_keys, k=10):
    """The k nearest neighbours of each word of ``top_keys``, as words (n lists of k)."""
    rows = np.array([kv.key_to_index[w] for w in top_keys])                  # (n,)
    return [[kv.index_to_key[j] for j in row] for row in knn(kv.vectors, rows, k)]


# ---- similarity of word pairs ----------------------------------------------------------------
def _lookup_table(kv, restrict_vocab, case_insensitive):
    """{word (upper-cased if case_insensitive): row} over the ``restrict_vocab`` most frequent
    words; when two words fold to one key, the more frequent one wins."""
    table = {}
    for i, key in enumerate(kv.index_to_key[:restrict_vocab]):
        table.setdefault(key.upper() if case_insensitive else key, i)
    return table


def evaluate_word_pairs(kv, pairs, delimiter="\t", restrict_vocab=300000, case_insensitive=True,
                        dummy4unknown=False):
    r"""Correlation of our cosines with human similarity scores (gensim's format and result).

    ``pairs`` is a file of lines ``word1<delimiter>word2<delimiter>score``; lines starting
    with '#' are comments (wordsim353.tsv, SimLex-999 as gensim ships them). Pairs with a
    word outside the ``restrict_vocab`` most frequent are skipped (or scored 0 with
    dummy4unknown). Returns ``((pearson_r, p_value), (spearman_rho, p_value), oov_percent)``;
    Spearman's rho is Pearson's r of the ranks; p-values from Student's t with n - 2 degrees
    of freedom, as scipy.
    """
    table = _lookup_table(kv, restrict_vocab, case_insensitive)
    normed = kv.get_normed_vectors()                                         # (V, D)
    ours, theirs, oov, total = [], [], 0, 0
    path = Path(pairs)
    if not path.is_file():
        raise FileNotFoundError(f"evaluate_word_pairs: no file {str(path)!r}")
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(delimiter)
        if len(fields) != 3:
            raise ValueError(f"evaluate_word_pairs: {path}:{line_no}: expected "
                             f"'word1{delimiter}word2{delimiter}score', got {line!r}")
        a, b, score = fields
        total += 1
        if case_insensitive:
            a, b = a.upper(), b.upper()
        if a not in table or b not in table:
            oov += 1
            if dummy4unknown:
                ours.append(0.0)
                theirs.append(float(score))
            continue
        ours.append(float(normed[table[a]] @ normed[table[b]]))
        theirs.append(float(score))
    if len(ours) < 3:
        raise ValueError(f"evaluate_word_pairs: only {len(ours)} of {total} pairs are in "
                         "the vocabulary; need at least 3 for a correlation")
    ours, theirs = np.array(ours), np.array(theirs)                          # (n,) each
    return (pearson(ours, theirs), pearson(ranks(ours), ranks(theirs)),
            100.0 * oov / max(total, 1))


# ---- analogies -------------------------------------------------------------------------------
def evaluate_word_analogies(kv, analogies, restrict_vocab=300000, case_insensitive=True,
                            dummy4unknown=False):
    r"""Accuracy on "a is to b as c is to d" questions (gensim's format and result).

    ``analogies`` is a file in word2vec's questions-words.txt format: ``: section`` lines,
    then ``a b c d`` lines. The answer is the word closest to b - a + c, by cosine with the
    unit vectors (most_similar with positive=[b, c], negative=[a]), among the
    ``restrict_vocab`` most frequent, leaving out a, b and c:

        query = unit(v_b) - unit(v_a) + unit(v_c);  answer = argmax_w unit(v_w) . unit(query)

    Questions with an unknown word are skipped (or count as wrong with dummy4unknown).
    Returns ``(accuracy, sections)``; each section is a dict with 'section', 'correct' and
    'incorrect' (lists of (a, b, c, d), upper-cased when case_insensitive, as gensim), and
    the last is 'Total accuracy'.
    """
    path = Path(analogies)
    if not path.is_file():
        raise FileNotFoundError(f"evaluate_word_analogies: no file {str(path)!r}")
    table = _lookup_table(kv, restrict_vocab, case_insensitive)
    limit = min(restrict_vocab, len(kv))
    normed = kv.get_normed_vectors()[:limit]                                 # (R, D)
    sections, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            current = {"section": line.lstrip(":").strip(), "correct": [], "incorrect": []}
            sections.append(current)
            continue
        words = line.split()
        if not words:
            continue
        if current is None or len(words) != 4:
            raise ValueError(f"evaluate_word_analogies: {path}: expected a ': section' "
                             f"line before questions of four words, got {line!r}")
        key = [w.upper() for w in words] if case_insensitive else words
        if not all(w in table for w in key):
            if dummy4unknown:
                current["incorrect"].append(tuple(key))
            continue
        a, b, c, _ = (table[w] for w in key)
        query = normed[b] - normed[a] + normed[c]                             # (D,)
        sims = normed @ (query / max(float(np.linalg.norm(query)), 1e-12))    # (R,)
        sims[[a, b, c]] = -np.inf
        predicted = kv.index_to_key[int(np.argmax(sims))]
        predicted = predicted.upper() if case_insensitive else predicted
        current["correct" if predicted == key[3] else "incorrect"].append(tuple(key))
    total = {"section": "Total accuracy",
             "correct": [q for s in sections for q in s["correct"]],
             "incorrect": [q for s in sections for q in s["incorrect"]]}
    n = len(total["correct"]) + len(total["incorrect"])
    return (len(total["correct"]) / n if n else 0.0), sections + [total]


# ---- statistics ------------------------------------------------------------------------------
def ranks(x):
    """Ranks 1..n with ties given their average rank (scipy.stats.rankdata's 'average')."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))                                                     # (n,)
    r[order] = np.arange(1, len(x) + 1)
    _, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=r)                                   # (distinct,)
    return (sums / np.bincount(inverse))[inverse]                            # (n,)


def pearson(x, y):
    r"""Pearson's r and its two-sided p-value:

        r = sum (x - mean x)(y - mean y) / sqrt(sum (x - mean x)^2 sum (y - mean y)^2)
        t = r sqrt((n - 2) / (1 - r^2)) ~ Student t(n - 2)
        p = I_{(n-2)/(n-2+t^2)}((n - 2) / 2, 1/2)      (the regularised incomplete beta)
    """
    x, y = x - x.mean(), y - y.mean()                                        # (n,) each
    denom = math.sqrt(float(x @ x) * float(y @ y))
    r = float(x @ y) / denom if denom > 0 else float("nan")
    n = len(x)
    if not math.isfinite(r) or n < 3:
        return r, float("nan")
    r = max(-1.0, min(1.0, r))
    if abs(r) == 1.0:
        return r, 0.0
    df = n - 2
    t2 = r * r * df / (1 - r * r)
    return r, betainc(df / 2, 0.5, df / (df + t2))


def betainc(a, b, x):
    r"""The regularised incomplete beta function

        I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) * 1 / (1 + d_1 / (1 + d_2 / (1 + ...)))

    by Lentz's continued fraction (Numerical Recipes, betai/betacf), with
    d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)) and
    d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m)). It converges fast for
    x < (a + 1) / (a + b + 2); beyond, I_x(a, b) = 1 - I_{1-x}(b, a).
    """
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):                     # converges faster on the other side
        return 1.0 - betainc(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f / a
