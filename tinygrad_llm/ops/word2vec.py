r"""Word2Vec's negative-sampling losses, as fused Functions with hand-derived backwards.

Dimension letters: B pairs (or centre words) in a batch, D embedding size, K negatives per pair,
C context slots per centre word (CBOW; some may be masked out).

Skip-gram with negative sampling (SGNS, Mikolov et al. 2013). For one pair, the input vector
``v`` (a row of the input table, W_in) should score high against the output vector ``u_pos`` of
the word that really appears with it (a row of W_out), and low against the output vectors
``u_neg[k]`` of K words drawn from the noise distribution. With ``s_pos = u_pos . v`` and
``s_neg[k] = u_neg[k] . v``:

    loss = -log sigma(s_pos) - sum_k log sigma(-s_neg[k])

Using d/dx log sigma(x) = 1 - sigma(x) = sigma(-x), the loss's derivatives with respect to the
scores are ``g_pos = sigma(s_pos) - 1`` and ``g_neg[k] = sigma(s_neg[k])``: "predicted minus
label", with label 1 for the true word and 0 for the noise words. The chain rule through the
dot products then gives every gradient (the full derivation: docs/word2vec.md).

CBOW replaces ``v`` by the average of the context words' input vectors, ``h``. The trainer in
tinygrad_llm/models/word2vec.py computes the same gradients for many pairs at once; its tests
check it against these Functions.
"""

from tinygrad_llm import backend
from tinygrad_llm.ops.unary import stable_sigmoid
from tinygrad_llm.tensor import Function, Tensor

__all__ = ["SGNSLoss", "CBOWLoss", "sgns_loss", "cbow_loss", "log_sigmoid"]


def log_sigmoid(x):
    r"""log sigma(x) = -log(1 + e^{-x}) = -(max(-x, 0) + log(1 + e^{-|x|})), without overflow."""
    xp = backend.get_xp(x)
    return -(xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x))))


def _check_shapes(op, v, u_pos, u_neg):
    B, D = v.shape[0], v.shape[-1]
    if u_pos.shape != (B, D) or u_neg.ndim != 3 or u_neg.shape[0] != B or u_neg.shape[2] != D:
        raise ValueError(f"{op}: expected u_pos (B, D) = {(B, D)} and u_neg (B, K, D), got "
                         f"u_pos {u_pos.shape} and u_neg {u_neg.shape}")


class SGNSLoss(Function):
    r"""Skip-gram negative-sampling loss, one value per pair.

    Inputs: ``v`` (B, D) input vectors, ``u_pos`` (B, D) output vectors of the true words,
    ``u_neg`` (B, K, D) output vectors of the noise words; ``neg_mask`` (B, K) optional 0/1
    floats (0 drops a noise word, as gensim drops a noise word equal to the true word).

    Forward::

        s_pos = sum_d v * u_pos                                    (B,)
        s_neg[b, k] = sum_d u_neg[b, k] * v[b]                     (B, K)
        loss = -log sigma(s_pos) - sum_k neg_mask * log sigma(-s_neg)   (B,)

    Backward, with dloss the upstream gradient (B,)::

        g_pos = dloss * (sigma(s_pos) - 1)                         (B,)
        g_neg = dloss[:, None] * neg_mask * sigma(s_neg)           (B, K)
        dv = g_pos[:, None] * u_pos + sum_k g_neg[:, k, None] * u_neg[:, k]   (B, D)
        du_pos = g_pos[:, None] * v                                (B, D)
        du_neg = g_neg[:, :, None] * v[:, None, :]                 (B, K, D)
    """

    def forward(self, v, u_pos, u_neg, neg_mask=None):
        _check_shapes("sgns_loss", v, u_pos, u_neg)
        xp = backend.get_xp(v)
        s_pos = (v * u_pos).sum(axis=-1)                                   # (B,)
        s_neg = xp.einsum("bkd,bd->bk", u_neg, v)                          # (B, K)
        neg_terms = log_sigmoid(-s_neg)                                    # (B, K)
        if neg_mask is not None:
            neg_terms = neg_terms * neg_mask
        # saved: the inputs (the gradients are outer products with them), the two sigmoids
        self.v, self.u_pos, self.u_neg, self.neg_mask = v, u_pos, u_neg, neg_mask
        self.sig_pos, self.sig_neg = stable_sigmoid(s_pos), stable_sigmoid(s_neg)
        return -log_sigmoid(s_pos) - neg_terms.sum(axis=-1)               # (B,)

    def backward(self, dloss):
        xp = backend.get_xp(dloss)
        v, u_pos, u_neg = self.v, self.u_pos, self.u_neg
        # loss = -log sigma(s_pos) - sum_k log sigma(-s_neg)  =>  dloss/ds = sigma(s) - label
        g_pos = dloss * (self.sig_pos - 1)                                 # (B,)
        g_neg = dloss[:, None] * self.sig_neg                              # (B, K)
        if self.neg_mask is not None:
            g_neg = g_neg * self.neg_mask
        # s_pos = v . u_pos, s_neg = u_neg . v  =>  each side gets g times the other side
        dv = g_pos[:, None] * u_pos + xp.einsum("bk,bkd->bd", g_neg, u_neg)    # (B, D)
        du_pos = g_pos[:, None] * v                                            # (B, D)
        du_neg = g_neg[:, :, None] * v[:, None, :]                             # (B, K, D)
        return dv, du_pos, du_neg


class CBOWLoss(Function):
    r"""Continuous-bag-of-words negative-sampling loss, one value per centre word.

    Inputs: ``v_ctx`` (B, C, D) the context words' input vectors, ``ctx_mask`` (B, C) 0/1 floats
    (1 for a real context word, every row needs at least one), ``u_pos`` (B, D) the centre
    word's output vector, ``u_neg`` (B, K, D) the noise words' output vectors, ``neg_mask``
    (B, K) optional 0/1 floats.

    Forward: average the context, then the SGNS loss of that average::

        count = sum_c ctx_mask                                     (B,)
        h = sum_c ctx_mask[:, c, None] * v_ctx[:, c] / count       (B, D)
        loss = SGNSLoss(h, u_pos, u_neg, neg_mask)                 (B,)

    Backward: dh, du_pos, du_neg are SGNSLoss's (with h in place of v); the average spreads dh
    back over the real context words::

        dv_ctx = ctx_mask[:, :, None] * dh[:, None, :] / count[:, None, None]   (B, C, D)

    (gensim and word2vec.c add the whole dh to every context word, without the 1/count; their
    trainer, and ours, follow that convention: see docs/word2vec.md.)
    """

    def forward(self, v_ctx, u_pos, u_neg, ctx_mask, neg_mask=None):
        if v_ctx.ndim != 3 or ctx_mask.shape != v_ctx.shape[:2]:
            raise ValueError(f"cbow_loss: expected v_ctx (B, C, D) and ctx_mask (B, C), got "
                             f"{v_ctx.shape} and {ctx_mask.shape}")
        count = ctx_mask.sum(axis=1)                                       # (B,)
        if (count <= 0).any():
            raise ValueError("cbow_loss: a row of ctx_mask has no context word")
        self.weight = ctx_mask / count[:, None]                            # (B, C) saved
        h = (self.weight[:, :, None] * v_ctx).sum(axis=1)                  # (B, D)
        self.sgns = SGNSLoss()
        return self.sgns.forward(h, u_pos, u_neg, neg_mask)               # (B,)

    def backward(self, dloss):
        dh, du_pos, du_neg = self.sgns.backward(dloss)                     # (B, D) ...
        # h = sum_c weight[:, c] v_ctx[:, c]  =>  dv_ctx[:, c] = weight[:, c] dh
        dv_ctx = self.weight[:, :, None] * dh[:, None, :]                  # (B, C, D)
        return dv_ctx, du_pos, du_neg, None


def sgns_loss(v, u_pos, u_neg, neg_mask=None):
    """Per-pair skip-gram negative-sampling loss (B,): see ``SGNSLoss``."""
    mask = neg_mask.data if isinstance(neg_mask, Tensor) else neg_mask
    return SGNSLoss.apply(v, u_pos, u_neg, neg_mask=mask)


def cbow_loss(v_ctx, u_pos, u_neg, ctx_mask, neg_mask=None):
    """Per-centre CBOW negative-sampling loss (B,): see ``CBOWLoss``."""
    ctx = ctx_mask.data if isinstance(ctx_mask, Tensor) else ctx_mask
    mask = neg_mask.data if isinstance(neg_mask, Tensor) else neg_mask
    return CBOWLoss.apply(v_ctx, u_pos, u_neg, ctx, neg_mask=mask)
