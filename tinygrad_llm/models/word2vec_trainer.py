r"""The Word2Vec trainer: gensim's recipe (vocabulary, subsampling, noise words, shrinking
windows, a falling learning rate) around the engine's loss.backward() and SGD.step().

Dimension letters: V vocabulary, D vector size, K negatives, W window, C = 2W context slots,
N corpus positions, M positions kept after subsampling, B centre words per mini-batch
(``batch_size``), P = B + 2W positions a batch touches.

One training step (``train_step``), for B consecutive centre words of the subsampled corpus:

    loss = module.window_loss(pos_ids, out_ids, ctx_mask, neg_keep).sum()   # SkipGramLoss
    loss.backward()              # row-sparse gradients of W_in (P rows) and W_out (B(K+1) rows)
    optimizer.step()             # SGD: W[rows] -= lr * d, touched rows only
    optimizer.zero_grad()

Skip-gram trains on the gradient of its loss. CBOW trains with gensim's update, which is not a
gradient: the engine differentiates the loss down to the context mean h, and every context word
then takes the whole dh, where the gradient would give it dh / count (``cbow_gensim_backward``).

Everything else here decides *which* pairs a step sees (``epoch_plan``: subsampling, window
shrinking, noise words, in chunks of whole sentences) and at what learning rate
(``learning_rate``). The math, the sampling rules and why the batch is summed, not averaged:
docs/word2vec.md.
"""

import json
import math
import time
from collections import Counter

import numpy as np

from tinygrad_llm.checkpoint import atomic_write
from tinygrad_llm.models.keyed_vectors import KeyedVectors, npz_path
from tinygrad_llm.models.word2vec import CBOW, SkipGram
from tinygrad_llm.ops.sparse import RowSparseGrad
from tinygrad_llm.ops.word2vec import (
    centre_mask,
    centre_word_loss,
    window_offsets,
    window_spread,
    window_sum,
)
from tinygrad_llm.optim import SGD
from tinygrad_llm.tensor import Tensor
from tinygrad_llm.tokenizer.sentences import MAX_SENTENCE_LEN, LineSentence

__all__ = ["Word2Vec", "train_step", "cbow_gensim_backward", "epoch_plan", "learning_rate",
           "subsample_keep_prob", "noise_cdf", "draw_negatives", "CHUNK_WORDS"]

CHUNK_WORDS = 1 << 18       # an epoch's random choices are drawn for this many words at a time


class Word2Vec:
    r"""Train word vectors with gensim's recipe and (most of) its API.

    ``Word2Vec(sentences=None, corpus_file=None, vector_size=100, window=5, min_count=5, sg=1,
    negative=5, ns_exponent=0.75, sample=1e-3, alpha=0.025, min_alpha=1e-4, epochs=5,
    batch_size=256, seed=1, progress=True)``

    ``sentences`` is an iterable of lists of tokens (iterated twice: vocabulary, then training);
    ``corpus_file`` a text file with one sentence of whitespace-separated tokens per line.
    Given either, the model builds its vocabulary and trains at once, as gensim does. sg=1 is
    skip-gram, sg=0 CBOW (mean of the context, with gensim's update rule: ``train_step``).
    ``batch_size`` is the number of centre words whose gradients are computed from the same
    weights and applied together (see docs/word2vec.md for why that keeps gensim's quality).
    After training: ``model.wv`` (KeyedVectors), ``model.syn1neg`` (the output vectors),
    ``model.module`` (the SkipGram or CBOW module that holds both tables as Parameters) and
    ``model.train_stats`` (time, words/s, each epoch's mean loss per centre word).
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
        ``batch_size``, each one ``train_step`` (forward, backward, SGD), with SGD's learning
        rate falling linearly from alpha to min_alpha over all epochs (docs/word2vec.md).
        ``train_stats`` then holds the time, the words/s and each epoch's mean loss per centre
        word.
        """
        if self.module is None:
            raise RuntimeError("Word2Vec.train: call build_vocab first (or pass the corpus to "
                               "the constructor)")
        epochs = self.epochs if epochs is None else epochs
        progress = self.progress if progress is None else progress
        ids, sentence_of, raw_words = self._encode(_corpus(sentences, corpus_file))
        rng = np.random.default_rng(self.seed + 1)
        # plain SGD on both tables: row-sparse gradients allow no momentum or weight decay
        optimizer = SGD(self.module.parameters(), lr=self.alpha)
        W, K, B = self.window, self.negative, self.batch_size
        bar = _progress_bar(epochs * raw_words) if progress else None
        effective, start, N = 0, time.perf_counter(), max(len(ids), 1)
        chunks = _chunk_bounds(sentence_of, CHUNK_WORDS)
        epoch_loss = []
        for epoch in range(epochs):
            total_loss, centres = 0.0, 0
            for lo, hi in chunks:     # whole sentences, about CHUNK_WORDS words at a time
                # subsample, shrink windows, draw noise words: the chunk's randomness
                pad_ids, ctx_mask, out_ids, neg_keep = epoch_plan(
                    ids[lo:hi], sentence_of[lo:hi], self.keep_prob, self.noise_cdf, W, K, rng)
                M = len(out_ids)                                           # centre words
                centres += M
                # mini-batches of centre words, in corpus order, lr falling linearly
                for a in range(0, M, B):
                    b = min(a + B, M)
                    done = (lo + (hi - lo) * a / M) / N              # of this epoch's words
                    optimizer.param_groups[0]["lr"] = learning_rate(
                        self.alpha, self.min_alpha, (epoch + done) / epochs)
                    total_loss += train_step(self.module, optimizer, pad_ids[a:b + 2 * W],
                                             out_ids[a:b], ctx_mask[a:b], neg_keep[a:b])
                if bar is not None:
                    bar.update(round(raw_words * (hi - lo) / N))
            effective += centres
            epoch_loss.append(total_loss / max(centres, 1))
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        self.train_stats = {"epochs": epochs, "raw_words": epochs * raw_words,
                            "effective_words": effective, "seconds": seconds,
                            "raw_words_per_second": epochs * raw_words / max(seconds, 1e-9),
                            "epoch_loss": epoch_loss}
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
        with atomic_write(npz_path(path)) as f:
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


# ---- one step ----------------------------------------------------------------------------------
def train_step(module, optimizer, pos_ids, out_ids, ctx_mask, neg_keep):
    r"""One mini-batch of B consecutive centre words: forward, backward, SGD step.

    ``pos_ids`` (P,) the word ids of the batch's positions, ``out_ids`` (B, K+1) each centre
    word then its noise words, ``ctx_mask`` (B, C), ``neg_keep`` (B, K) (``epoch_plan``)::

        loss = module.window_loss(pos_ids, out_ids, ctx_mask, neg_keep).sum()   (SkipGram)
        loss.backward()            # row-sparse gradients: P rows of W_in, B (K+1) of W_out
        optimizer.step()           # W[rows] -= lr * d, the touched rows only
        optimizer.zero_grad()

    A CBOW module takes gensim's update instead of its gradient (``cbow_gensim_backward``).
    Returns the batch's summed loss, a float.
    """
    if isinstance(module, CBOW):
        loss = cbow_gensim_backward(module, pos_ids, out_ids, ctx_mask, neg_keep)
    else:
        loss = module.window_loss(pos_ids, out_ids, ctx_mask, neg_keep).sum()  # SkipGramLoss
        loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return float(loss.data)


# ---- CBOW's update rule ----------------------------------------------------------------------
def cbow_gensim_backward(module, pos_ids, out_ids, ctx_mask, neg_keep):
    r"""CBOW's summed loss on one mini-batch, with gensim's update (not its gradient) in ``.grad``.

    gensim and word2vec.c average the context into h, differentiate the loss down to h, and then
    add the whole dh to every context word's input vector. The engine does the differentiating
    here, with h a leaf; the last line is gensim's rule::

        h = window_sum(W_in[pos_ids], ctx_mask / count)              (B, D), a leaf
        loss = sum_t centre_word_loss(h, W_out[out_ids], mask)[t]     scalar
        loss.backward()                      # h.grad = dh (B, D); W_out's row-sparse gradient
        W_in.grad = window_spread(dh, ctx_mask) on rows pos_ids      (P, D)

    The gradient of the loss would be ``window_spread(dh, ctx_mask / count)``, each context word
    taking dh / count (``CBOW.window_loss`` computes it): gensim's step for a context word is
    count times that, and no single loss has it as its gradient. Trained on the true gradient,
    even with W_in's learning rate scaled by a constant, CBOW's vectors agree far less with
    gensim's (docs/word2vec.md), so the trainer keeps gensim's rule. ``pos_ids`` (P,),
    ``out_ids`` (B, K+1), ``ctx_mask`` (B, C), ``neg_keep`` (B, K). Returns the loss, a scalar
    Tensor; the tables' ``.grad`` are set (the trainer zeroes them after every step).
    """
    w_in = module.in_embed.weight
    v_pos = w_in.data[pos_ids]                                                # (P, D)
    ctx_mask = ctx_mask.astype(v_pos.dtype, copy=False)                       # (B, C)
    count = np.maximum(ctx_mask.sum(axis=1), 1)                               # (B,)
    h = Tensor(window_sum(v_pos, ctx_mask / count[:, None]), requires_grad=True)  # (B, D)
    u_out = module.out_embed(out_ids)                                         # (B, K+1, D)
    loss = centre_word_loss(h, u_out, centre_mask(ctx_mask, neg_keep)).sum()
    loss.backward()
    # gensim's rule: every context word takes the whole dh (the gradient would be dh / count)
    d_in = window_spread(h.grad.data, ctx_mask)                               # (P, D)
    w_in.grad = RowSparseGrad(pos_ids, d_in, w_in.shape)
    return loss


# ---- the sampling rules, as functions (tested against their formulas) -------------------------
def epoch_plan(ids, sentence_of, keep_prob, cdf, window, negative, rng):
    r"""One epoch's random choices for a stretch of the corpus, at once (N positions, M kept).

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
    offsets = window_offsets(W, np)                                          # (C,)
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
    r"""Word ids ~ the noise distribution: the first w with cdf[w] > u, for u ~ U[0, 1).

    That is ``searchsorted(cdf, u, side="right")``, found faster with a guide table (Chen and
    Asau's indexed search): guide[b] is the answer for u = b / T, so for u in bucket
    b = floor(u T) the answer is at least guide[b - 1] (one bucket back, so that rounding in
    u T cannot overshoot), and a few steps forward reach it. T = 4V buckets: under one step on
    average, where a binary search takes log2 V.
    """
    u = rng.random(shape).reshape(-1)                                        # (n,)
    T = 4 * len(cdf)
    guide = np.searchsorted(cdf, np.arange(T) / T, side="right")             # (T,)
    ids = guide[np.maximum((u * T).astype(np.int64) - 1, 0)]                 # (n,) <= answer
    last = len(cdf) - 1                                  # u beyond a rounded cdf[-1]: last
    ids = np.minimum(ids, last)
    todo = np.flatnonzero((ids < last) & (cdf[ids] <= u))                    # not there yet
    while len(todo):
        ids[todo] += 1
        todo = todo[(ids[todo] < last) & (cdf[ids[todo]] <= u[todo])]
    return ids.reshape(shape)


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
