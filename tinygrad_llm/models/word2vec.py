r"""Word2Vec's two models, skip-gram and CBOW with negative sampling, as modules on two tables.

Dimension letters: V vocabulary, D vector size, K negatives, W window, C = 2W context slots
around a centre word, B pairs (or centre words) in a batch, P = B + C positions a batch of B
consecutive centre words touches.

Two tables of vectors: the input vectors W_in (V, D) (``in_embed.weight``, gensim's
``wv.vectors``) and the output vectors W_out (V, D) (``out_embed.weight``, gensim's
``syn1neg``). For a centre word c at position i and a context word x at position i + o
(1 <= |o| <= window), gensim's skip-gram feeds the *context* word's input vector and predicts
the centre word against K noise words n_1..n_K drawn from counts^0.75 (both directions appear
over a corpus, so this is the textbook pair read backwards):

    v = W_in[x],  u_pos = W_out[c],  u_neg[k] = W_out[n_k]
    loss = -log sigma(u_pos . v) - sum_k log sigma(-u_neg[k] . v)        (SGNSLoss)

CBOW averages the input vectors of all the context words into h and predicts c from h
(CBOWLoss). Each module has two forwards: ``forward`` on explicit pairs (or centre words), and
``window_loss`` on B consecutive centre words with their whole windows, the trainer's batch
(``SkipGramLoss``; ``ContextMean`` then ``CentreWordLoss``). Both run through autograd on
sparse ``Embedding`` tables, so ``loss.sum().backward()`` gives row-sparse gradients that
``SGD`` applies to the touched rows only. The trainer is ``Word2Vec``
(models/word2vec_trainer.py); the math, the sampling and the batching: docs/word2vec.md.
"""

import numpy as np

from tinygrad_llm.nn.layers import Embedding
from tinygrad_llm.nn.module import Module, Parameter
from tinygrad_llm.ops.word2vec import (
    cbow_loss,
    centre_mask,
    centre_word_loss,
    context_mean,
    sgns_loss,
    skipgram_loss,
)

__all__ = ["SkipGram", "CBOW"]


def _init_tables(module, vocab_size, vector_size, sparse, rng):
    """gensim's initialisation: W_in ~ U(-0.5, 0.5) / D, W_out = 0."""
    module.vocab_size, module.vector_size = vocab_size, vector_size
    module.in_embed = Embedding(vocab_size, vector_size, sparse=sparse)
    module.out_embed = Embedding(vocab_size, vector_size, sparse=sparse)
    rng = rng if rng is not None else np.random.default_rng(1)
    w_in = (rng.random((vocab_size, vector_size), dtype=np.float32) - 0.5) / vector_size
    module.in_embed.weight = Parameter(w_in)                                  # (V, D)
    module.out_embed.weight = Parameter(np.zeros((vocab_size, vector_size), np.float32))


class _Word2VecModule(Module):
    """The two tables, shared by both models."""

    def __init__(self, vocab_size, vector_size, sparse=True, rng=None):
        super().__init__()
        _init_tables(self, vocab_size, vector_size, sparse, rng)

    def extra_repr(self):
        return f"vocab_size={self.vocab_size}, vector_size={self.vector_size}"


class SkipGram(_Word2VecModule):
    r"""Skip-gram with negative sampling: one loss per (input word, target word) pair.

    Parameters: ``in_embed.weight`` W_in (V, D), the word vectors (gensim's ``wv.vectors``),
    and ``out_embed.weight`` W_out (V, D) (gensim's ``syn1neg``). With sparse=True (the
    default) both give row-sparse gradients, which plain SGD applies to the touched rows only.

    ``forward(inputs (B,), targets (B,), negatives (B, K), neg_mask=None)`` returns (B,)::

        v = W_in[inputs], u_pos = W_out[targets], u_neg = W_out[negatives]
        loss = -log sigma(u_pos . v) - sum_k neg_mask[:, k] log sigma(-u_neg[:, k] . v)

    ``window_loss(pos_ids (P,), out_ids (B, K+1), ctx_mask (B, C), neg_mask=None)`` returns
    (B,): for B consecutive centre words t, the same loss summed over every pair (context slot
    c of centre t, where ctx_mask[t, c] = 1), with v = W_in[pos_ids[t + W + offsets[c]]] and
    the centre's own u_pos = W_out[out_ids[t, 0]], u_neg = W_out[out_ids[t, 1:]]
    (``SkipGramLoss``).
    """

    def forward(self, inputs, targets, negatives, neg_mask=None):
        v = self.in_embed(inputs)                                  # (B, D)
        u_pos = self.out_embed(targets)                            # (B, D)
        u_neg = self.out_embed(negatives)                          # (B, K, D)
        return sgns_loss(v, u_pos, u_neg, neg_mask)                # (B,)

    def window_loss(self, pos_ids, out_ids, ctx_mask, neg_mask=None):
        v_pos = self.in_embed(pos_ids)                             # (P, D)
        u_out = self.out_embed(out_ids)                            # (B, K+1, D)
        return skipgram_loss(v_pos, u_out, ctx_mask, neg_mask)     # (B,)


class CBOW(_Word2VecModule):
    r"""Continuous bag of words with negative sampling: one loss per centre word.

    Same parameters as ``SkipGram``. ``forward(context (B, C), ctx_mask (B, C), targets (B,),
    negatives (B, K), neg_mask=None)`` returns (B,)::

        h = sum_c ctx_mask[:, c] W_in[context[:, c]] / sum_c ctx_mask[:, c]      (B, D)
        loss = -log sigma(W_out[targets] . h) - sum_k log sigma(-W_out[negatives[:, k]] . h)

    Masked context slots may hold any valid id; they get zero gradient.

    ``window_loss(pos_ids (P,), out_ids (B, K+1), ctx_mask (B, C), neg_mask (B, K))`` returns
    (B,): the same loss for B consecutive centre words, the context of centre t being the
    positions t + W + offsets[c] with ctx_mask[t, c] = 1, its target out_ids[t, 0] and its
    noise words out_ids[t, 1:] (``ContextMean`` then ``CentreWordLoss``; a centre word with no
    context gives 0). Its gradient is the true one, dh / count for each context word; the
    trainer applies gensim's update instead (``cbow_gensim_step``, docs/word2vec.md).
    """

    def forward(self, context, ctx_mask, targets, negatives, neg_mask=None):
        v_ctx = self.in_embed(context)                             # (B, C, D)
        u_pos = self.out_embed(targets)                            # (B, D)
        u_neg = self.out_embed(negatives)                          # (B, K, D)
        return cbow_loss(v_ctx, u_pos, u_neg, ctx_mask, neg_mask)  # (B,)

    def window_loss(self, pos_ids, out_ids, ctx_mask, neg_mask):
        h = context_mean(self.in_embed(pos_ids), ctx_mask)         # (B, D)
        u_out = self.out_embed(out_ids)                            # (B, K+1, D)
        mask = centre_mask(ctx_mask, neg_mask)                     # (B, K+1)
        return centre_word_loss(h, u_out, mask)                    # (B,)
