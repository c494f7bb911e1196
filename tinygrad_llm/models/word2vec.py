r"""Word2Vec: skip-gram and CBOW with negative sampling, trained like gensim, read like a textbook.

Dimension letters: V vocabulary, D vector size, K negatives, W window, N corpus positions,
B centre words per mini-batch (``batch_size``), P = B + 2W positions a batch touches,
C = 2W context slots around a centre word.

Two tables of vectors: the input vectors W_in (V, D) (``wv.vectors``, gensim's ``syn0``) and the
output vectors W_out (V, D) (gensim's ``syn1neg``). For a centre word c at position i and a
context word x at position i + o (1 <= |o| <= window), gensim's skip-gram feeds the *context*
word's input vector and predicts the centre word against K noise words n_1..n_K drawn from
counts^0.75 (both directions appear over a corpus, so this is the textbook pair read backwards):

    v = W_in[x],  u_pos = W_out[c],  u_neg[k] = W_out[n_k]
    loss = -log sigma(u_pos . v) - sum_k log sigma(-u_neg[k] . v)        (SGNSLoss)

CBOW averages the input vectors of all the context words into h and predicts c from h
(CBOWLoss). The modules ``SkipGram`` and ``CBOW`` are those equations on two sparse
``Embedding`` tables, differentiable with autograd. The trainer ``Word2Vec`` computes the same
gradients for a whole mini-batch at once with a few batched matrix products and applies them
with ``SGD`` on row-sparse gradients; tests/test_word2vec.py checks that its step equals the
modules' autograd step. The math, subsampling, the noise table, window shrinking, the learning
rate and the mini-batch semantics: docs/word2vec.md.
"""

import json
import math
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from tinygrad_llm.checkpoint import atomic_write
from tinygrad_llm.nn.layers import Embedding
from tinygrad_llm.nn.module import Module, Parameter
from tinygrad_llm.ops.word2vec import cbow_loss, sgns_loss
from tinygrad_llm.optim import SGD
from tinygrad_llm.sparse import RowSparseGrad

__all__ = ["SkipGram", "CBOW", "Word2Vec", "KeyedVectors", "tokenize", "text_to_sentences",
           "LineSentence", "MAX_SENTENCE_LEN"]

MAX_SENTENCE_LEN = 10000    # longer sentences are cut into pieces of this length (gensim's cap)
CHUNK_WORDS = 1 << 18       # an epoch's random choices are drawn for this many words at a time
TOKEN_PATTERN = re.compile(r"[a-z]+(?:'[a-z]+)*")


def tokenize(text):
    """Lowercase letter runs with internal apostrophes kept: "Don't stop!" -> ["don't", "stop"]."""
    return TOKEN_PATTERN.findall(text.lower())


def text_to_sentences(text, max_len=MAX_SENTENCE_LEN):
    """``tokenize(text)`` as one stream, cut into sentences of ``max_len`` tokens (the benchmark's
    and the example's corpus: lines of verse are too short to be sentences)."""
    tokens = tokenize(text)
    return [tokens[i:i + max_len] for i in range(0, len(tokens), max_len)]


class LineSentence:
    """Sentences from a text file, one per line, tokens separated by whitespace (gensim's format
    for ``corpus_file``). Iterating twice reads the file twice."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Word2Vec: corpus file {str(self.path)!r} does not exist")

    def __iter__(self):
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                yield line.split()


# ================================================================================================
# The modules: the loss on two embedding tables, for autograd
# ================================================================================================
def _init_tables(module, vocab_size, vector_size, sparse, rng):
    """gensim's initialisation: W_in ~ U(-0.5, 0.5) / D, W_out = 0."""
    module.vocab_size, module.vector_size = vocab_size, vector_size
    module.in_embed = Embedding(vocab_size, vector_size, sparse=sparse)
    module.out_embed = Embedding(vocab_size, vector_size, sparse=sparse)
    rng = rng if rng is not None else np.random.default_rng(1)
    w_in = (rng.random((vocab_size, vector_size), dtype=np.float32) - 0.5) / vector_size
    module.in_embed.weight = Parameter(w_in)                                  # (V, D)
    module.out_embed.weight = Parameter(np.zeros((vocab_size, vector_size), np.float32))


class SkipGram(Module):
    r"""Skip-gram with negative sampling: one loss per (input word, target word) pair.

    Parameters: ``in_embed.weight`` W_in (V, D), the word vectors (gensim's ``wv.vectors``),
    and ``out_embed.weight`` W_out (V, D) (gensim's ``syn1neg``). With sparse=True (the
    default) both give row-sparse gradients, which plain SGD applies to the touched rows only.

    ``forward(inputs (B,), targets (B,), negatives (B, K), neg_mask=None)`` returns (B,)::

        v = W_in[inputs], u_pos = W_out[targets], u_neg = W_out[negatives]
        loss = -log sigma(u_pos . v) - sum_k neg_mask[:, k] log sigma(-u_neg[:, k] . v)
    """

    def __init__(self, vocab_size, vector_size, sparse=True, rng=None):
        super().__init__()
        _init_tables(self, vocab_size, vector_size, sparse, rng)

    def forward(self, inputs, targets, negatives, neg_mask=None):
        v = self.in_embed(inputs)                                  # (B, D)
        u_pos = self.out_embed(targets)                            # (B, D)
        u_neg = self.out_embed(negatives)                          # (B, K, D)
        return sgns_loss(v, u_pos, u_neg, neg_mask)                # (B,)

    def extra_repr(self):
        return f"vocab_size={self.vocab_size}, vector_size={self.vector_size}"


class CBOW(Module):
    r"""Continuous bag of words with negative sampling: one loss per centre word.

    Same parameters as ``SkipGram``. ``forward(context (B, C), ctx_mask (B, C), targets (B,),
    negatives (B, K), neg_mask=None)`` returns (B,)::

        h = sum_c ctx_mask[:, c] W_in[context[:, c]] / sum_c ctx_mask[:, c]      (B, D)
        loss = -log sigma(W_out[targets] . h) - sum_k log sigma(-W_out[negatives[:, k]] . h)

    Masked context slots may hold any valid id; they get zero gradient.
    """

    def __init__(self, vocab_size, vector_size, sparse=True, rng=None):
        super().__init__()
        _init_tables(self, vocab_size, vector_size, sparse, rng)

    def forward(self, context, ctx_mask, targets, negatives, neg_mask=None):
        v_ctx = self.in_embed(context)                             # (B, C, D)
        u_pos = self.out_embed(targets)                            # (B, D)
        u_neg = self.out_embed(negatives)                          # (B, K, D)
        return cbow_loss(v_ctx, u_pos, u_neg, ctx_mask, neg_mask)  # (B,)

    def extra_repr(self):
        return f"vocab_size={self.vocab_size}, vector_size={self.vector_size}"


# ================================================================================================
# The trainer's batched gradients (the same math as SGNSLoss / CBOWLoss, many pairs at once)
# ================================================================================================
def _band_sum(d_slots, offsets, window):
    r"""Sum per-slot gradients back onto positions: d_slots (B, C, D) -> d_pos (P, D).

    Slot k of centre t is position t + window + offsets[k] of the batch's P = B + 2W positions.
    """
    B = d_slots.shape[0]
    d_pos = np.zeros((B + 2 * window, d_slots.shape[2]), d_slots.dtype)     # (P, D)
    for k, o in enumerate(offsets):
        d_pos[window + o:window + o + B] += d_slots[:, k]
    return d_pos


def _skipgram_batch_grads(w_in, w_out, pos_ids, out_ids, ctx_mask, neg_keep, window, offsets):
    r"""Gradients of the summed SGNS loss of one mini-batch of B centre words, gensim-style.

    ``pos_ids`` (P,) the word ids of the positions the batch touches (B centres with W positions
    either side); ``out_ids`` (B, K+1) each centre's id then its K noise words, shared by the
    centre's context pairs; ``ctx_mask`` (B, C) which of the C = 2W context slots form a pair
    (inside the shrunk window and the sentence); ``neg_keep`` (B, K) 0 where a noise word equals
    the centre (gensim skips those).

    For pair (centre t, slot k), with v = W_in[context word] and u_j = W_out[out_ids[t, j]]:

        s[t, k, j] = v . u_j                       score, (B, C, K+1)
        G = (sigma(s) - label) * mask              dL/ds: label 1 for j = 0, 0 for the noise
        dv = sum_j G[t, k, j] u_j                  -> dV (B, C, D)  = G @ U
        du_j = sum_k G[t, k, j] v                  -> dU (B, K+1, D) = G^T @ V

    Returns (pos_ids, d_in (P, D), out_ids (B*(K+1),), d_out (B*(K+1), D)): row-sparse
    gradients of W_in and W_out.
    """
    B, K1 = out_ids.shape
    v_pos = w_in[pos_ids]                                                 # (P, D)
    slots = np.arange(B)[:, None] + window + offsets[None, :]             # (B, C)
    V = v_pos[slots]                                                      # (B, C, D)
    U = w_out[out_ids]                                                    # (B, K+1, D)
    s = V @ U.transpose(0, 2, 1)                                          # (B, C, K+1)
    sig = 1 / (1 + np.exp(-s))                                            # sigma(s)
    sig[:, :, 0] -= 1                                                     # minus the label
    mask = ctx_mask[:, :, None] * np.concatenate(                         # (B, C, K+1)
        [np.ones((B, 1), np.float32), neg_keep], axis=1)[:, None, :]
    G = sig * mask                                                        # (B, C, K+1)
    dV = G @ U                                                            # (B, C, D)
    dU = G.transpose(0, 2, 1) @ V                                         # (B, K+1, D)
    d_in = _band_sum(dV, offsets, window)                                 # (P, D)
    return pos_ids, d_in, out_ids.reshape(-1), dU.reshape(B * K1, -1)


def _cbow_batch_grads(w_in, w_out, pos_ids, out_ids, ctx_mask, neg_keep, window, offsets):
    r"""Gradients of one CBOW mini-batch, gensim-style (same arguments as the skip-gram one).

        count = sum_k ctx_mask[t, k];  h = sum_k ctx_mask[t, k] W_in[slot k] / count   (B, D)
        s[t, j] = h . u_j                        (B, K+1)
        G = (sigma(s) - label) * neg_keep        dL/ds
        dh = G @ U                               (B, D);   dU = G^T h   (B, K+1, D)
        dV[t, k] = ctx_mask[t, k] * dh[t]        (no 1/count: gensim's and word2vec.c's update)

    The context sums are 2W shifted slices of the batch's positions, so no (B, C, D) block is
    gathered.
    """
    B, K1 = out_ids.shape
    v_pos = w_in[pos_ids]                                                 # (P, D)
    count = ctx_mask.sum(axis=1)                                          # (B,)
    h = np.zeros((B, v_pos.shape[1]), v_pos.dtype)                        # (B, D)
    for k, o in enumerate(offsets):                                       # h = sum_k mask V_k
        h += ctx_mask[:, k, None] * v_pos[window + o:window + o + B]
    h /= np.maximum(count, 1)[:, None]
    U = w_out[out_ids]                                                    # (B, K+1, D)
    s = (U @ h[:, :, None])[:, :, 0]                                      # (B, K+1)
    sig = 1 / (1 + np.exp(-s))
    sig[:, 0] -= 1                                                        # minus the label
    G = sig * np.concatenate([np.ones((B, 1), np.float32), neg_keep], axis=1)
    G *= (count > 0)[:, None]                                             # (B, K+1)
    dh = (G[:, None, :] @ U)[:, 0]                                        # (B, D)
    dU = G[:, :, None] * h[:, None, :]                                    # (B, K+1, D)
    d_in = np.zeros_like(v_pos)                                           # (P, D)
    for k, o in enumerate(offsets):                                       # dV_k = mask_k dh
        d_in[window + o:window + o + B] += ctx_mask[:, k, None] * dh
    return pos_ids, d_in, out_ids.reshape(-1), dU.reshape(B * K1, -1)


# ================================================================================================
# The vectors
# ================================================================================================
class KeyedVectors:
    r"""Word vectors with gensim's lookup API.

    ``vectors`` (V, D) float32, ``index_to_key`` (list of V words, most frequent first),
    ``key_to_index`` (dict), ``counts`` (V,) corpus counts. ``kv[word]`` is a vector,
    ``kv[[w1, w2]]`` a (2, D) array; an unknown word raises KeyError naming it.
    """

    def __init__(self, vectors, index_to_key, counts=None):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(index_to_key):
            raise ValueError(f"KeyedVectors: vectors {vectors.shape} do not match "
                             f"{len(index_to_key)} keys")
        self.vectors = vectors                                                # (V, D)
        self.index_to_key = list(index_to_key)
        self.key_to_index = {k: i for i, k in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            raise ValueError("KeyedVectors: the keys are not unique")
        self.counts = (np.zeros(len(vectors), np.int64) if counts is None
                       else np.asarray(counts, dtype=np.int64))
        self._normed = None   # cache of unit vectors, keyed by the vectors array's state

    vector_size = property(lambda self: self.vectors.shape[1])

    def __len__(self):
        return len(self.index_to_key)

    def __contains__(self, key):
        return key in self.key_to_index

    def get_index(self, key):
        """The row of ``key``; KeyError naming it if it is not in the vocabulary."""
        try:
            return self.key_to_index[key]
        except (KeyError, TypeError):
            raise KeyError(f"Key {key!r} not present in vocabulary") from None

    def get_vector(self, key, norm=False):
        v = self.vectors[self.get_index(key)]
        return v / max(float(np.linalg.norm(v)), 1e-12) if norm else v

    def __getitem__(self, keys):
        if isinstance(keys, str):
            return self.get_vector(keys)
        return np.stack([self.get_vector(k) for k in keys])                  # (n, D)

    def get_normed_vectors(self):
        """Each vector divided by its length (V, D); recomputed after training changes them."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)          # (V, 1)
        return self.vectors / np.maximum(norms, 1e-12)

    def similarity(self, w1, w2):
        """Cosine similarity of two words."""
        return float(np.dot(self.get_vector(w1, norm=True), self.get_vector(w2, norm=True)))

    def most_similar(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        r"""The ``topn`` words closest (by cosine) to mean(unit(positive)) - mean(unit(negative)).

        As gensim: ``query = unit(sum_p unit(v_p) - sum_n unit(v_n))`` (gensim takes the mean,
        which has the same direction), scores are cosines with every word, the input words are
        left out. ``positive`` / ``negative`` are words (or vectors), or lists of them. Returns
        a list of (word, cosine), best first.
        """
        positive = [positive] if isinstance(positive, (str, np.ndarray)) else list(positive or [])
        negative = [negative] if isinstance(negative, (str, np.ndarray)) else list(negative or [])
        if not positive and not negative:
            raise ValueError("most_similar: cannot compute similarity with no input: give at "
                             "least one word in positive (or negative)")
        parts, exclude = [], set()
        for weight, items in ((1.0, positive), (-1.0, negative)):
            for item in items:
                if isinstance(item, np.ndarray):
                    parts.append(weight * item / max(float(np.linalg.norm(item)), 1e-12))
                else:
                    parts.append(weight * self.get_vector(item, norm=True))
                    exclude.add(self.key_to_index[item])
        query = np.mean(parts, axis=0)                                        # (D,)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        limit = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        sims = self.get_normed_vectors()[:limit] @ query                      # (V,)
        if topn is None:
            return sims
        order = np.argsort(-sims, kind="stable")[:topn + len(exclude)]
        return [(self.index_to_key[i], float(sims[i])) for i in order
                if i not in exclude][:topn]

    def similar_by_vector(self, vector, topn=10):
        return self.most_similar(positive=[np.asarray(vector, dtype=np.float32)], topn=topn)

    # ---- evaluation in gensim's file formats ---------------------------------------------
    def _lookup_table(self, restrict_vocab, case_insensitive):
        """{word (upper-cased if case_insensitive): row} over the ``restrict_vocab`` most
        frequent words; when two words fold to one key, the more frequent one wins."""
        table = {}
        for i, key in enumerate(self.index_to_key[:restrict_vocab]):
            table.setdefault(key.upper() if case_insensitive else key, i)
        return table

    def evaluate_word_pairs(self, pairs, delimiter="\t", restrict_vocab=300000,
                            case_insensitive=True, dummy4unknown=False):
        r"""Correlation of our cosines with human similarity scores (gensim's format and result).

        ``pairs`` is a file of lines ``word1<delimiter>word2<delimiter>score``; lines starting
        with '#' are comments (wordsim353.tsv, SimLex-999 as gensim ships them). Pairs with a
        word outside the ``restrict_vocab`` most frequent are skipped (or scored 0 with
        dummy4unknown). Returns ``((pearson_r, p_value), (spearman_rho, p_value),
        oov_percent)``; p-values from Student's t with n - 2 degrees of freedom, as scipy.
        """
        table = self._lookup_table(restrict_vocab, case_insensitive)
        normed = self.get_normed_vectors()
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
        ours, theirs = np.array(ours), np.array(theirs)
        pearson = _pearson(ours, theirs)
        spearman = _pearson(_ranks(ours), _ranks(theirs))
        return pearson, spearman, 100.0 * oov / max(total, 1)

    def evaluate_word_analogies(self, analogies, restrict_vocab=300000, case_insensitive=True,
                                dummy4unknown=False):
        r"""Accuracy on "a is to b as c is to d" questions (gensim's format and result).

        ``analogies`` is a file in word2vec's questions-words.txt format: ``: section`` lines,
        then ``a b c d`` lines. The answer is the word closest to b - a + c (most_similar with
        positive=[b, c], negative=[a]) among the ``restrict_vocab`` most frequent, leaving out
        a, b and c. Questions with an unknown word are skipped (or count as wrong with
        dummy4unknown). Returns ``(accuracy, sections)``; each section is a dict with
        'section', 'correct' and 'incorrect' (lists of (a, b, c, d), upper-cased when
        case_insensitive, as gensim), and the last is 'Total accuracy'.
        """
        path = Path(analogies)
        if not path.is_file():
            raise FileNotFoundError(f"evaluate_word_analogies: no file {str(path)!r}")
        table = self._lookup_table(restrict_vocab, case_insensitive)
        limit = min(restrict_vocab, len(self))
        normed = self.get_normed_vectors()[:limit]                            # (R, D)
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
            query = normed[b] - normed[a] + normed[c]                         # (D,)
            sims = normed @ (query / max(float(np.linalg.norm(query)), 1e-12))
            sims[[a, b, c]] = -np.inf
            predicted = self.index_to_key[int(np.argmax(sims))]
            predicted = predicted.upper() if case_insensitive else predicted
            current["correct" if predicted == key[3] else "incorrect"].append(tuple(key))
        total = {"section": "Total accuracy",
                 "correct": [q for s in sections for q in s["correct"]],
                 "incorrect": [q for s in sections for q in s["incorrect"]]}
        n = len(total["correct"]) + len(total["incorrect"])
        return (len(total["correct"]) / n if n else 0.0), sections + [total]

    # ---- files ---------------------------------------------------------------------------
    def save_word2vec_format(self, path, binary=False):
        """word2vec's format: a header line 'V D', then per word 'word v1 v2 ...' (text) or
        'word ' followed by D little-endian float32s and a newline (binary). gensim's
        ``KeyedVectors.load_word2vec_format`` reads both."""
        V, D = self.vectors.shape
        with open(path, "wb") as f:
            f.write(f"{V} {D}\n".encode())
            for key, row in zip(self.index_to_key, self.vectors):
                if binary:
                    f.write(key.encode() + b" " + row.astype("<f4").tobytes() + b"\n")
                else:
                    f.write((key + " " + " ".join(f"{x:.9g}" for x in row.tolist())
                             + "\n").encode())

    @classmethod
    def load_word2vec_format(cls, path, binary=False):
        """Read a file written by ``save_word2vec_format`` (or by gensim / word2vec.c)."""
        with open(path, "rb") as f:
            V, D = (int(x) for x in f.readline().split())
            keys, vectors = [], np.empty((V, D), np.float32)
            for i in range(V):
                if binary:
                    word = b""
                    while (ch := f.read(1)) != b" ":
                        if not ch:
                            raise ValueError(f"load_word2vec_format: {path} ends early")
                        word += ch
                    keys.append(word.decode().lstrip("\n"))
                    vectors[i] = np.frombuffer(f.read(4 * D), dtype="<f4")
                else:
                    parts = f.readline().decode().rstrip("\n").split(" ")
                    if len(parts) != D + 1:
                        raise ValueError(f"load_word2vec_format: line {i + 2} of {path} has "
                                         f"{len(parts) - 1} numbers, expected {D}")
                    keys.append(parts[0])
                    vectors[i] = np.array(parts[1:], dtype=np.float32)
        return cls(vectors, keys)

    def save(self, path):
        """Save to a .npz file (no pickle, written atomically): vectors, keys and counts."""
        with atomic_write(_npz_path(path)) as f:
            np.savez(f, vectors=self.vectors, keys=np.array(self.index_to_key, dtype=str),
                     counts=self.counts)

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as z:
            return cls(z["vectors"], z["keys"].tolist(), z["counts"])

    def __repr__(self):
        return f"KeyedVectors({len(self)} words, vector_size={self.vector_size})"


def _npz_path(path):
    """``path`` with ``.npz`` appended unless it has it, as ``np.savez`` names its files."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def _ranks(x):
    """Ranks 1..n with ties given their average rank (scipy.stats.rankdata's 'average')."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / np.bincount(inverse))[inverse]


def _pearson(x, y):
    r"""Pearson's r and its two-sided p-value: t = r sqrt((n-2)/(1-r^2)) ~ Student t(n-2), so
    p = I_{(n-2)/(n-2+t^2)}((n-2)/2, 1/2), the regularised incomplete beta function."""
    x, y = x - x.mean(), y - y.mean()
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
    return r, _betainc(df / 2, 0.5, df / (df + t2))


def _betainc(a, b, x):
    """The regularised incomplete beta function I_x(a, b), by Lentz's continued fraction
    (Numerical Recipes, betai/betacf)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):                     # converges faster on the other side
        return 1.0 - _betainc(b, a, 1 - x)
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


# ================================================================================================
# The trainer
# ================================================================================================
class Word2Vec:
    r"""Train word vectors with gensim's recipe and (most of) its API.

    ``Word2Vec(sentences=None, corpus_file=None, vector_size=100, window=5, min_count=5, sg=1,
    negative=5, ns_exponent=0.75, sample=1e-3, alpha=0.025, min_alpha=1e-4, epochs=5,
    batch_size=256, seed=1, progress=True)``

    ``sentences`` is an iterable of lists of tokens (iterated twice: vocabulary, then training);
    ``corpus_file`` a text file with one sentence of whitespace-separated tokens per line.
    Given either, the model builds its vocabulary and trains at once, as gensim does. sg=1 is
    skip-gram, sg=0 CBOW (mean of the context). ``batch_size`` is the number of centre words
    whose gradients are computed from the same weights and applied together (see
    docs/word2vec.md for why that keeps gensim's quality). After training: ``model.wv``
    (KeyedVectors), ``model.syn1neg`` (the output vectors), ``model.module`` (the SkipGram or
    CBOW module that holds both tables as Parameters).
    """

    def __init__(self, sentences=None, corpus_file=None, vector_size=100, window=5, min_count=5,
                 sg=1, negative=5, ns_exponent=0.75, sample=1e-3, alpha=0.025, min_alpha=1e-4,
                 epochs=5, batch_size=256, seed=1, progress=True):
        checks = [(vector_size >= 1, "vector_size must be >= 1"),
                  (window >= 1, "window must be >= 1"), (min_count >= 1, "min_count must be >= 1"),
                  (sg in (0, 1), "sg must be 0 (CBOW) or 1 (skip-gram)"),
                  (negative >= 1, "negative must be >= 1"), (sample >= 0, "sample must be >= 0"),
                  (alpha > 0 and min_alpha >= 0, "alpha must be > 0 and min_alpha >= 0"),
                  (epochs >= 1, "epochs must be >= 1"),
                  (batch_size >= 1, "batch_size must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Word2Vec: {message}")
        if sentences is not None and corpus_file is not None:
            raise ValueError("Word2Vec: give sentences or corpus_file, not both")
        self.vector_size, self.window, self.min_count, self.sg = vector_size, window, min_count, sg
        self.negative, self.ns_exponent, self.sample = negative, ns_exponent, sample
        self.alpha, self.min_alpha, self.epochs = alpha, min_alpha, epochs
        self.batch_size, self.seed, self.progress = batch_size, seed, progress
        self.wv, self.module, self.corpus_total_words = None, None, 0
        self.train_stats = {}
        if sentences is not None or corpus_file is not None:
            corpus = _corpus(sentences, corpus_file)
            self.build_vocab(corpus)
            self.train(corpus)

    syn1neg = property(lambda self: self.module.out_embed.weight.data)

    # ---- vocabulary ------------------------------------------------------------------------
    def build_vocab(self, sentences=None, corpus_file=None):
        """Count the words, keep those seen at least ``min_count`` times (most frequent first),
        and set up the subsampling probabilities, the noise distribution and the weights."""
        counts, total = Counter(), 0
        for sentence in _corpus(sentences, corpus_file):
            counts.update(sentence)
            total += len(sentence)
        if total == 0:
            raise ValueError("Word2Vec: the corpus is empty (no tokens in any sentence)")
        kept = [(w, c) for w, c in counts.most_common() if c >= self.min_count]  # stable ties
        if not kept:
            top, top_count = counts.most_common(1)[0]
            raise ValueError(f"Word2Vec: min_count={self.min_count} leaves no words; the most "
                             f"frequent word, {top!r}, occurs {top_count} times")
        words = [w for w, _ in kept]
        self._set_vocab(words, np.array([c for _, c in kept], dtype=np.int64), total)
        return self

    def _set_vocab(self, words, word_counts, total_words):
        """The vocabulary (most frequent first), its sampling tables and fresh weights."""
        self.corpus_total_words = int(total_words)
        self.wv = KeyedVectors(np.zeros((len(words), self.vector_size), np.float32), words,
                               word_counts)
        self.keep_prob = subsample_keep_prob(word_counts, self.sample)        # (V,)
        self.noise_cdf = noise_cdf(word_counts, self.ns_exponent)             # (V,)
        rng = np.random.default_rng(self.seed)
        module_cls = SkipGram if self.sg else CBOW
        self.module = module_cls(len(words), self.vector_size, sparse=True, rng=rng)
        self.wv.vectors = self.module.in_embed.weight.data    # shared: training updates wv

    # ---- training ----------------------------------------------------------------------------
    def train(self, sentences=None, corpus_file=None, epochs=None, progress=None):
        r"""Train on the corpus for ``epochs`` passes; returns (effective words, raw words).

        Each epoch: subsample the corpus, shrink each centre word's window at random, draw
        every centre's K noise words, then walk the centre words in order in mini-batches of
        ``batch_size``, with the learning rate falling linearly from alpha to min_alpha over
        all epochs (docs/word2vec.md).
        """
        if self.module is None:
            raise RuntimeError("Word2Vec.train: call build_vocab first (or pass the corpus to "
                               "the constructor)")
        import time  # noqa: PLC0415 - timing is only needed here

        epochs = self.epochs if epochs is None else epochs
        progress = self.progress if progress is None else progress
        ids, sentence_of, raw_words = self._encode(_corpus(sentences, corpus_file))
        rng = np.random.default_rng(self.seed + 1)
        w_in, w_out = self.module.in_embed.weight, self.module.out_embed.weight
        optimizer = SGD([w_in, w_out], lr=self.alpha)
        batch_grads = _skipgram_batch_grads if self.sg else _cbow_batch_grads
        W, K, B = self.window, self.negative, self.batch_size
        offsets = np.array([o for o in range(-W, W + 1) if o != 0])           # (C,)
        bar = _progress_bar(epochs * raw_words) if progress else None
        effective, start, N = 0, time.perf_counter(), max(len(ids), 1)
        chunks = _chunk_bounds(sentence_of, CHUNK_WORDS)
        with np.errstate(over="ignore"):   # exp(-s) may overflow to inf: sigma is then 0
            for epoch in range(epochs):
                for lo, hi in chunks:     # whole sentences, about CHUNK_WORDS words at a time
                    # subsample, shrink windows, draw noise words: the chunk's randomness
                    pad_ids, ctx_mask, out_ids, neg_keep = epoch_plan(
                        ids[lo:hi], sentence_of[lo:hi], self.keep_prob, self.noise_cdf, W, K,
                        rng)
                    M = len(out_ids)                                           # centre words
                    effective += M
                    # mini-batches of centre words, in corpus order, lr falling linearly
                    for a in range(0, M, B):
                        b = min(a + B, M)
                        done = (lo + (hi - lo) * a / M) / N          # of this epoch's words
                        optimizer.param_groups[0]["lr"] = learning_rate(
                            self.alpha, self.min_alpha, (epoch + done) / epochs)
                        in_rows, d_in, out_rows, d_out = batch_grads(
                            w_in.data, w_out.data, pad_ids[a:b + 2 * W], out_ids[a:b],
                            ctx_mask[a:b], neg_keep[a:b], W, offsets)
                        w_in.grad = RowSparseGrad(in_rows, d_in, w_in.shape)
                        w_out.grad = RowSparseGrad(out_rows, d_out, w_out.shape)
                        optimizer.step()              # W[rows] -= lr * d, touched rows only
                    if bar is not None:
                        bar.update(round(raw_words * (hi - lo) / N))
                w_in.grad = w_out.grad = None
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        self.train_stats = {"epochs": epochs, "raw_words": epochs * raw_words,
                            "effective_words": effective, "seconds": seconds,
                            "raw_words_per_second": epochs * raw_words / max(seconds, 1e-9)}
        return effective, epochs * raw_words

    def _encode(self, sentences):
        """The corpus as word ids (N,) with each position's sentence number (N,), dropping
        out-of-vocabulary words (which widens the window over them, as in gensim). Sentences
        longer than MAX_SENTENCE_LEN are cut into pieces. Also returns the raw word count."""
        index = self.wv.key_to_index
        ids, sentence_of, raw, n_sentences = [], [], 0, 0
        for sentence in sentences:
            raw += len(sentence)
            for start in range(0, len(sentence), MAX_SENTENCE_LEN):
                piece = [index[w] for w in sentence[start:start + MAX_SENTENCE_LEN]
                         if w in index]
                ids.extend(piece)
                sentence_of.extend([n_sentences] * len(piece))
                n_sentences += 1
        if raw == 0:
            raise ValueError("Word2Vec.train: the corpus is empty (no tokens in any sentence)")
        return np.array(ids, dtype=np.int64), np.array(sentence_of, dtype=np.int64), raw

    # ---- saving ------------------------------------------------------------------------------
    _CONFIG = ("vector_size", "window", "min_count", "sg", "negative", "ns_exponent", "sample",
               "alpha", "min_alpha", "epochs", "batch_size", "seed", "corpus_total_words")

    def save(self, path):
        """Save the model to a .npz file (no pickle): both tables, the vocabulary, the settings."""
        if self.module is None:
            raise RuntimeError("Word2Vec.save: the model has no vocabulary yet")
        config = {k: getattr(self, k) for k in self._CONFIG}
        with atomic_write(_npz_path(path)) as f:
            np.savez(f, vectors=self.wv.vectors, syn1neg=self.syn1neg,
                     keys=np.array(self.wv.index_to_key, dtype=str), counts=self.wv.counts,
                     config=np.array(json.dumps(config)))

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as z:
            config = json.loads(str(z["config"]))
            total = config.pop("corpus_total_words")
            model = cls(progress=False, **config)
            model._set_vocab(z["keys"].tolist(), z["counts"], total)
            model.module.in_embed.weight.data[...] = z["vectors"]
            model.module.out_embed.weight.data[...] = z["syn1neg"]
        return model

    def __repr__(self):
        words = len(self.wv) if self.wv is not None else 0
        return (f"Word2Vec(vocab={words}, vector_size={self.vector_size}, "
                f"{'skip-gram' if self.sg else 'CBOW'}, window={self.window}, "
                f"negative={self.negative})")


# ---- the sampling rules, as functions (tested against their formulas) -------------------------
def epoch_plan(ids, sentence_of, keep_prob, cdf, window, negative, rng):
    r"""One epoch's random choices, for the whole corpus at once (N positions, M kept).

    1. Subsample: keep each occurrence of word w with probability keep_prob[w].
    2. Shrink each centre word's window to reach = window - b, b ~ U{0..window-1}, so reach is
       uniform on 1..window (near words are context more often: weight (W - |o| + 1) / W).
    3. Draw each centre word's K noise words from ``cdf``; gensim skips a noise word that
       equals the centre word, so ``neg_keep`` is 0 there.

    Returns ``pad_ids`` (M + 2W,) the kept ids with W dummy positions at each end,
    ``ctx_mask`` (M, C) 1 where slot k (offset offsets[k]) of centre t is a real pair (inside
    the reach and the same sentence), ``out_ids`` (M, K+1) each centre's id then its noise
    words, ``neg_keep`` (M, K).
    """
    W = window
    offsets = np.array([o for o in range(-W, W + 1) if o != 0])              # (C,)
    keep = rng.random(len(ids)) < keep_prob[ids]                              # (N,)
    e_ids, e_sent = ids[keep], sentence_of[keep]                              # (M,)
    M = len(e_ids)
    reach = W - rng.integers(0, W, M)                                         # (M,) in 1..W
    pad_ids = np.concatenate([np.zeros(W, np.int64), e_ids, np.zeros(W, np.int64)])
    pad_sent = np.concatenate([np.full(W, -1), e_sent, np.full(W, -2)])       # (M + 2W,)
    pos = np.arange(M)[:, None] + W + offsets[None, :]                        # (M, C)
    ctx_mask = ((np.abs(offsets)[None, :] <= reach[:, None])
                & (pad_sent[pos] == e_sent[:, None])).astype(np.float32)      # (M, C)
    out_ids = np.empty((M, negative + 1), np.int64)                           # (M, K+1)
    out_ids[:, 0] = e_ids
    out_ids[:, 1:] = draw_negatives(cdf, (M, negative), rng)
    neg_keep = (out_ids[:, 1:] != e_ids[:, None]).astype(np.float32)          # (M, K)
    return pad_ids, ctx_mask, out_ids, neg_keep


def _chunk_bounds(sentence_of, chunk_words):
    """(lo, hi) ranges of positions that cover the corpus, each about ``chunk_words`` long and
    cut only where a sentence starts (so no window spans two chunks). Bounds the memory of
    ``epoch_plan`` (about 120 bytes per word) on large corpora."""
    n = len(sentence_of)
    starts = np.flatnonzero(np.diff(sentence_of)) + 1                         # sentence starts
    targets = np.arange(chunk_words, n, chunk_words)
    cuts = np.unique(starts[np.minimum(np.searchsorted(starts, targets), len(starts) - 1)]
                     ) if len(starts) and len(targets) else np.array([], np.int64)
    bounds = [0] + [int(c) for c in cuts if 0 < c < n] + [n]
    return list(zip(bounds[:-1], bounds[1:]))


def learning_rate(alpha, min_alpha, progress):
    r"""lr = alpha - (alpha - min_alpha) * progress, progress in [0, 1] over all epochs (gensim)."""
    return max(min_alpha, alpha - (alpha - min_alpha) * progress)


def subsample_keep_prob(counts, sample):
    r"""gensim's probability of keeping one occurrence of each word (Mikolov et al.'s rule,
    as word2vec.c implements it): with t = sample * total count,

        keep[w] = min(1, (sqrt(count[w] / t) + 1) * t / count[w])

    sample = 0 keeps everything; sample >= 1 means t = sample * (3 + sqrt(5)) / 2 (gensim)."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample == 0:
        return np.ones(len(counts))
    t = sample * counts.sum() if sample < 1 else float(int(sample * (3 + math.sqrt(5)) / 2))
    return np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts)


def noise_cdf(counts, ns_exponent=0.75):
    r"""The cumulative noise distribution: P(w) = count[w]^ns_exponent / sum_v count[v]^ns_exponent,
    as a running sum ending at 1 (gensim's cum_table, as floats)."""
    weights = np.asarray(counts, dtype=np.float64) ** ns_exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def draw_negatives(cdf, shape, rng):
    """Word ids ~ the noise distribution: the first w with cdf[w] > u, for u ~ U[0, 1)."""
    u = rng.random(shape)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _corpus(sentences, corpus_file):
    """Validate and return an iterable of token lists from either source."""
    if corpus_file is not None:
        return LineSentence(corpus_file)
    if sentences is None:
        raise ValueError("Word2Vec: give sentences (an iterable of token lists) or corpus_file")
    if isinstance(sentences, str):
        raise TypeError("Word2Vec: sentences must be an iterable of lists of tokens, got a str "
                        "(tokenize it first, e.g. with text_to_sentences)")
    if iter(sentences) is sentences:
        raise TypeError("Word2Vec: sentences must be re-iterable (a list, or LineSentence): it "
                        "is read once for the vocabulary and once per training call, and a "
                        "generator would be empty the second time")
    return _CheckedSentences(sentences)


class _CheckedSentences:
    """Iterates the user's sentences, refusing a bare string (it would train on characters)."""

    def __init__(self, sentences):
        self.sentences = sentences

    def __iter__(self):
        for sentence in self.sentences:
            if isinstance(sentence, str):
                raise TypeError("Word2Vec: each sentence must be a list of tokens, got the "
                                f"string {sentence[:40]!r}; split it into words first")
            yield sentence


def _progress_bar(total):
    from tqdm import tqdm  # noqa: PLC0415 - imported where used, never at package import
    return tqdm(total=total, unit="word", unit_scale=True, desc="word2vec", smoothing=0.1)
