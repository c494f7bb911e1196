r"""Word2Vec's negative-sampling losses, as fused Functions with hand-derived backwards.

Dimension letters: B pairs (or centre words) in a batch, D embedding size, K negatives per pair,
W window, C = 2W context slots per centre word (some may be masked out), P = B + C positions
a batch of B consecutive centre words touches.

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

CBOW replaces ``v`` by the average of the context words' input vectors, ``h``.

The Functions:

* ``SGNSLoss`` and ``CBOWLoss``: one loss per pair (per centre word for CBOW), on gathered
  vectors; the ``SkipGram`` and ``CBOW`` modules' forward.
* ``SkipGramLoss``: the skip-gram loss of B consecutive centre words and all their windows at
  once, on the B + 2W input vectors of the positions they touch, each centre's K noise words
  shared by its pairs: a few batched matrix products per batch instead of one small product
  per pair. The trainer (models/word2vec_trainer.py) runs it.
* ``ContextMean`` then ``CentreWordLoss``: CBOW on the same batch, the context averaged with
  2W shifted slices (``window_sum``, whose adjoint is ``window_spread``) and the centre word
  predicted from the average.
"""

from tinygrad_llm import backend
from tinygrad_llm.autograd import Function, TensorBase
from tinygrad_llm.ops.unary import stable_sigmoid

__all__ = ["SGNSLoss", "CBOWLoss", "SkipGramLoss", "ContextMean", "CentreWordLoss", "sgns_loss",
           "cbow_loss", "skipgram_loss", "context_mean", "centre_word_loss", "log_sigmoid",
           "window_offsets", "window_sum", "window_spread", "centre_mask"]


def log_sigmoid(x):
    r"""log sigma(x) = -log(1 + e^{-x}) = -(max(-x, 0) + log(1 + e^{-|x|})), without overflow."""
    xp = backend.get_xp(x)
    return -(xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x))))


def window_offsets(window, xp):
    r"""The C = 2W context offsets (-W, ..., -1, 1, ..., W): slot c of the centre word at
    position i is position i + offsets[c]."""
    return xp.concatenate([xp.arange(-window, 0), xp.arange(1, window + 1)])      # (C,)


def _raw(x):
    """The array of a tensor (masks are constants: no gradient flows into them)."""
    return x.data if isinstance(x, TensorBase) else x


def _check_shapes(op, v, u_pos, u_neg):
    B, D = v.shape[0], v.shape[-1]
    if u_pos.shape != (B, D) or u_neg.ndim != 3 or u_neg.shape[0] != B or u_neg.shape[2] != D:
        raise ValueError(f"{op}: expected u_pos (B, D) = {(B, D)} and u_neg (B, K, D), got "
                         f"u_pos {u_pos.shape} and u_neg {u_neg.shape}")


# ================================================================================================
# One loss per pair (the modules' forward)
# ================================================================================================
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

    (gensim and word2vec.c add the whole dh to every context word, without the 1/count: that
    is their update rule, not this gradient; docs/word2vec.md compares the two.)
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


# ================================================================================================
# Whole windows of B consecutive centre words (the trainer's batch)
# ================================================================================================
def _window_shapes(op, v_pos, u_out, ctx_mask, neg_mask):
    """(B, C, W) of a window batch, after checking that the four arrays fit together."""
    B, K1, D = u_out.shape if u_out.ndim == 3 else (None, None, None)
    C = ctx_mask.shape[1] if ctx_mask.ndim == 2 else None
    if (B is None or C is None or C % 2 or ctx_mask.shape[0] != B
            or v_pos.shape != (B + C, D)
            or (neg_mask is not None and neg_mask.shape != (B, K1 - 1))):
        raise ValueError(f"{op}: expected v_pos (B + C, D), u_out (B, K+1, D), ctx_mask (B, C) "
                         f"with C = 2W even and neg_mask (B, K); got v_pos {v_pos.shape}, "
                         f"u_out {u_out.shape}, ctx_mask {ctx_mask.shape}, neg_mask "
                         f"{None if neg_mask is None else neg_mask.shape}")
    return B, C, C // 2


def _keep(u_out, neg_mask):
    """(1, neg_mask[t]) per centre: which of the K+1 output words count, (B, K+1)."""
    xp = backend.get_xp(u_out)
    B, K1 = u_out.shape[:2]
    if neg_mask is None:
        return xp.ones((B, K1), u_out.dtype)                               # (B, K+1)
    ones = xp.ones((B, 1), u_out.dtype)
    return xp.concatenate([ones, neg_mask.astype(u_out.dtype, copy=False)], axis=1)  # (B, K+1)


def _scores_to_loss(s, keep):
    r"""The losses and dloss/ds of scores s (B, K+1, ...) whose label is 1 at j = 0 and 0 after:

        terms = softplus(-s) = -log sigma(s) at j = 0,  softplus(s) = -log sigma(-s) for j >= 1
        G = keep * (sigma(s) - label)

    Both from one th = tanh(s / 2), which never overflows: sigma(s) = (1 + th) / 2, and
    softplus(s) = log(1 + e^s) = max(s, 0) - log sigma(|s|) with sigma(|s|) = (1 + |th|) / 2
    in [1/2, 1], where the log is well conditioned; softplus(-s) = softplus(s) - s. (tanh is
    also cheaper than exp on the CPU.) Returns (terms, G); the caller sums keep * terms.
    """
    xp = backend.get_xp(s)
    th = xp.tanh(s * 0.5)                                                  # (B, K+1, ...)
    terms = (s + xp.abs(s)) * 0.5                                          # max(s, 0)
    terms -= xp.log((1 + xp.abs(th)) * 0.5)                                # softplus(s)
    terms[:, 0] -= s[:, 0]                                # softplus(-s) = softplus(s) - s
    G = (th + 1) * 0.5                                                     # sigma(s)
    G[:, 0] -= 1                                                           # minus the label
    G *= keep
    return terms, G


class SkipGramLoss(Function):
    r"""Skip-gram negative-sampling loss of B consecutive centre words with all their windows,
    one value per centre word (the sum over its pairs).

    The batch: centre words t = 0..B-1 and the W positions either side, P = B + C positions in
    all. Slot c of centre t is position t + W + offsets[c], offsets = (-W..-1, 1..W). Each real
    pair (ctx_mask[t, c] = 1) feeds its context word's input vector and predicts the centre
    word against the centre's K noise words, which all its pairs share (docs/word2vec.md).

    Inputs: ``v_pos`` (P, D) the positions' input vectors (rows of W_in); ``u_out`` (B, K+1, D)
    the output vectors (rows of W_out) of each centre word (j = 0) then its K noise words;
    ``ctx_mask`` (B, C) 0/1 floats; ``neg_mask`` (B, K) optional 0/1 floats (0 drops a noise
    word equal to the centre word, as gensim does).

    Forward, with label = (1, 0, ..., 0) over j and softplus(x) = log(1 + e^x)::

        V[t, c] = v_pos[t + W + offsets[c]]                          (B, C, D)
        s = u_out @ V^T,  s[t, j, c] = u_out[t, j] . V[t, c]         (B, K+1, C)
        mask[t, j, c] = (1, neg_mask[t])[j] * ctx_mask[t, c]         (B, K+1, C)
        loss[t] = sum_{j, c} mask[t, j, c] softplus((1 - 2 label[j]) s[t, j, c])     (B,)

    that is -log sigma(s) for the centre word and -log sigma(-s) for each noise word: the SGNS
    loss of every pair, summed per centre word. Backward, with dloss (B,) the upstream
    gradient::

        G = dloss[:, None, None] * mask * (sigma(s) - label)         (B, K+1, C)
        du_out = G @ V                                               (B, K+1, D)
        dV = G^T @ u_out                                             (B, C, D)
        dv_pos[p] = sum of dV[t, c] over the (t, c) with t + W + offsets[c] = p     (P, D)

    (The scores are laid out (B, K+1, C), not (B, C, K+1): NumPy's stacked products of these
    small matrices run faster that way round.)

    Reference: tinygrad_llm.reference.skipgram_loss
    """

    def forward(self, v_pos, u_out, ctx_mask, neg_mask=None):
        B, C, W = _window_shapes("skipgram_loss", v_pos, u_out, ctx_mask, neg_mask)
        xp = backend.get_xp(v_pos)
        offsets = window_offsets(W, xp)                                    # (C,)
        slots = xp.arange(B)[:, None] + W + offsets[None, :]               # (B, C)
        V = xp.take(v_pos, slots, axis=0)                                  # (B, C, D)
        s = u_out @ V.transpose(0, 2, 1)                                   # (B, K+1, C)
        mask = (_keep(u_out, neg_mask)[:, :, None]
                * ctx_mask.astype(v_pos.dtype, copy=False)[:, None, :])    # (B, K+1, C)
        terms, G = _scores_to_loss(s, mask)                                # (B, K+1, C) each
        # saved: the two sides of every dot product, and dloss/ds before the upstream factor
        self.V, self.u_out, self.G, self.offsets = V, u_out, G, offsets
        return xp.einsum("tjc,tjc->t", terms, mask)                        # (B,)

    def backward(self, dloss):
        xp = backend.get_xp(dloss)
        B, _, C = self.G.shape
        W = C // 2
        G = self.G * dloss[:, None, None]                                  # (B, K+1, C)
        # s = u_out @ V^T  =>  du_out = G @ V,  dV = G^T @ u_out
        du_out = G @ self.V                                                # (B, K+1, D)
        dV = G.transpose(0, 2, 1) @ self.u_out                             # (B, C, D)
        # V[t, c] = v_pos[t + W + offsets[c]]  =>  each slot's gradient back onto its position
        dv_pos = xp.zeros((B + C, dV.shape[2]), dV.dtype)                  # (P, D)
        for c, o in enumerate(self.offsets.tolist()):
            dv_pos[W + o:W + o + B] += dV[:, c]
        return dv_pos, du_out, None


def window_sum(v_pos, weight):
    r"""Weighted sums of each centre word's context: h (B, D) from v_pos (P, D), weight (B, C).

        h[t] = sum_c weight[t, c] v_pos[t + W + offsets[c]]

    2W shifted slices of ``v_pos``: no (B, C, D) block is gathered. Its adjoint is
    ``window_spread``.
    """
    xp = backend.get_xp(v_pos)
    B, C = weight.shape
    W = C // 2
    h = xp.zeros((B, v_pos.shape[1]), v_pos.dtype)                         # (B, D)
    for c, o in enumerate(window_offsets(W, xp).tolist()):
        h += weight[:, c, None] * v_pos[W + o:W + o + B]
    return h


def window_spread(dh, weight):
    r"""The adjoint of ``window_sum``: each centre's dh (B, D) back onto the P = B + C positions.

        dv_pos[t + W + offsets[c]] += weight[t, c] dh[t]                   (P, D)
    """
    xp = backend.get_xp(dh)
    B, C = weight.shape
    W = C // 2
    dv_pos = xp.zeros((B + C, dh.shape[1]), dh.dtype)                      # (P, D)
    for c, o in enumerate(window_offsets(W, xp).tolist()):
        dv_pos[W + o:W + o + B] += weight[:, c, None] * dh
    return dv_pos


class ContextMean(Function):
    r"""The mean of each centre word's context vectors: CBOW's hidden vector h.

    Inputs: ``v_pos`` (P, D) the input vectors of the batch's P = B + C positions, ``ctx_mask``
    (B, C) 0/1 floats (slot c of centre t is position t + W + offsets[c]). A centre word with
    no context gets h = 0. Forward and backward (``window_sum`` and its adjoint)::

        count = max(sum_c ctx_mask, 1)                                     (B,)
        h[t] = sum_c ctx_mask[t, c] v_pos[t + W + offsets[c]] / count[t]    (B, D)
        dv_pos[t + W + offsets[c]] += ctx_mask[t, c] dh[t] / count[t]       (P, D)

    Then ``CentreWordLoss`` on h is CBOW's loss. Reference: ``CBOWLoss`` on the gathered context
    vectors (a test holds the two equal, values and gradients, in float64 and float32).
    """

    def forward(self, v_pos, ctx_mask):
        if ctx_mask.ndim != 2 or ctx_mask.shape[1] % 2 or (
                v_pos.ndim != 2 or len(v_pos) != sum(ctx_mask.shape)):
            raise ValueError(f"context_mean: expected v_pos (B + C, D) and ctx_mask (B, C) with "
                             f"C = 2W even, got {v_pos.shape} and {ctx_mask.shape}")
        xp = backend.get_xp(v_pos)
        ctx_mask = ctx_mask.astype(v_pos.dtype, copy=False)
        count = xp.maximum(ctx_mask.sum(axis=1), 1)                        # (B,)
        self.weight = ctx_mask / count[:, None]                            # (B, C) saved
        return window_sum(v_pos, self.weight)                              # (B, D)

    def backward(self, dh):
        # h = sum_c weight[:, c] V_c  =>  dV_c = weight[:, c] dh, each slot onto its position
        return window_spread(dh, self.weight), None                        # (P, D)


class CentreWordLoss(Function):
    r"""Negative-sampling loss of predicting each centre word from one vector h: CBOW's loss once
    the context is averaged into h.

    Inputs: ``h`` (B, D); ``u_out`` (B, K+1, D) the output vectors of each centre word (j = 0)
    then its K noise words; ``mask`` (B, K+1) optional 0/1 floats (0 drops an output word; a
    row of zeros drops the centre word). Forward, label = (1, 0, ..., 0) over j::

        s[t, j] = u_out[t, j] . h[t]                                       (B, K+1)
        loss[t] = sum_j mask[t, j] softplus((1 - 2 label[j]) s[t, j])       (B,)

    Backward, dloss (B,) the upstream gradient::

        G = dloss[:, None] * mask * (sigma(s) - label)                     (B, K+1)
        dh[t] = sum_j G[t, j] u_out[t, j]                                  (B, D)
        du_out = G[:, :, None] * h[:, None, :]                             (B, K+1, D)

    Reference: ``SGNSLoss`` with v = h, u_pos = u_out[:, 0] and u_neg = u_out[:, 1:].
    """

    def forward(self, h, u_out, mask=None):
        if h.ndim != 2 or u_out.ndim != 3 or u_out.shape[::2] != h.shape or (
                mask is not None and mask.shape != u_out.shape[:2]):
            raise ValueError(f"centre_word_loss: expected h (B, D), u_out (B, K+1, D) and mask "
                             f"(B, K+1), got {h.shape}, {u_out.shape} and "
                             f"{None if mask is None else mask.shape}")
        xp = backend.get_xp(h)
        keep = (xp.ones(u_out.shape[:2], h.dtype) if mask is None
                else mask.astype(h.dtype, copy=False))                     # (B, K+1)
        s = (u_out @ h[:, :, None])[:, :, 0]                               # (B, K+1)
        terms, G = _scores_to_loss(s, keep)                                # (B, K+1) each
        # saved: the two sides of each score, and dloss/ds before the upstream factor
        self.h, self.u_out, self.G = h, u_out, G
        return xp.einsum("tj,tj->t", terms, keep)                          # (B,)

    def backward(self, dloss):
        G = self.G * dloss[:, None]                                        # (B, K+1)
        # s[t, j] = u_out[t, j] . h[t]  =>  dh = sum_j G u_out,  du_out = G h
        dh = (G[:, None, :] @ self.u_out)[:, 0]                            # (B, D)
        du_out = G[:, :, None] * self.h[:, None, :]                        # (B, K+1, D)
        return dh, du_out


def centre_mask(ctx_mask, neg_mask):
    r"""Which output words count, (B, K+1): 1 for the centre word (j = 0) and its kept noise
    words (``neg_mask`` (B, K)), all 0 for a centre word with no context (``ctx_mask`` (B, C))."""
    ctx_mask, neg_mask = _raw(ctx_mask), _raw(neg_mask)
    xp = backend.get_xp(ctx_mask)
    has_context = (ctx_mask.sum(axis=1) > 0).astype(neg_mask.dtype)[:, None]    # (B, 1)
    return xp.concatenate([has_context, neg_mask * has_context], axis=1)        # (B, K+1)


# ================================================================================================
# The wrappers
# ================================================================================================
def sgns_loss(v, u_pos, u_neg, neg_mask=None):
    """Per-pair skip-gram negative-sampling loss (B,): see ``SGNSLoss``."""
    return SGNSLoss.apply(v, u_pos, u_neg, neg_mask=_raw(neg_mask))


def cbow_loss(v_ctx, u_pos, u_neg, ctx_mask, neg_mask=None):
    """Per-centre CBOW negative-sampling loss (B,): see ``CBOWLoss``."""
    return CBOWLoss.apply(v_ctx, u_pos, u_neg, _raw(ctx_mask), neg_mask=_raw(neg_mask))


def skipgram_loss(v_pos, u_out, ctx_mask, neg_mask=None):
    """Skip-gram loss of B centre words' whole windows, one value per centre (B,): see
    ``SkipGramLoss``."""
    return SkipGramLoss.apply(v_pos, u_out, _raw(ctx_mask), neg_mask=_raw(neg_mask))


def context_mean(v_pos, ctx_mask):
    """Mean of each centre word's context vectors (B, D): see ``ContextMean``."""
    return ContextMean.apply(v_pos, _raw(ctx_mask))


def centre_word_loss(h, u_out, mask=None):
    """Loss of predicting each centre word from h, one value per centre (B,): see
    ``CentreWordLoss``."""
    return CentreWordLoss.apply(h, u_out, mask=_raw(mask))
