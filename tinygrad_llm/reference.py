r"""The same math from primitives, to read: each fast path's readable twin.

The fast paths in tinygrad_llm/ops (softmax, cross-entropy, layer norm, GELU, attention, the
word2vec losses, the recurrent cells) are single Functions: one forward that fuses several
steps, working in place, and a backward derived by hand. They are quick but take some reading.
Each function here computes the same thing the plain way, as a short composition of Tensor
primitives (exp, log, sum, max, mean, matmul, sqrt, tanh, indexing, where), so autograd derives
the backward from the forward alone. Read these to learn what an op computes; read the
Function beside it to see how it is made fast. The Adam step, which has no graph, is written on
plain arrays.

The fast paths must equal these, and the tests hold them equal (tests/test_reference.py, and
the recurrent cells' own test modules): outputs and gradients against a random upstream
gradient, in float64 (to about 1e-10) and in float32. Each fast path's docstring ends with
"Reference: tinygrad_llm.reference.<name>". Speed is not a goal here: no
in-place updates, no saved state, every temporary kept.

Dimension letters: N rows, C classes or channels, B batch, nh heads, Tq query and T key positions,
hs head size, D embedding size, K noise words per pair, W window, P = B + 2W positions.
"""

import math

from tinygrad_llm import backend
from tinygrad_llm.tensor import Tensor, where

__all__ = ["softmax", "log_softmax", "cross_entropy", "layer_norm", "normal_cdf", "gelu",
           "attention", "adam_update", "sgns_loss", "skipgram_loss",
           "rnn_cell", "lstm_cell", "gru_cell"]


def _constant(a, like):
    """A Tensor outside the graph (a mask, a target) on the device of ``like``."""
    if isinstance(a, Tensor):
        return a.detach()
    return Tensor(a, device=like.device)


# ================================================================================================
# Softmax and the losses on it
# ================================================================================================
def softmax(x, axis=-1):
    r"""y_i = e^{x_i} / sum_j e^{x_j}   along ``axis``.

    Softmax does not change when a constant is added to every x_i, so x's maximum m is
    subtracted first (then no exponent is above 0 and none overflows). m is detached: it is a
    shift, not a function the gradient must pass through. Autograd then gives, with the Jacobian
    ∂y_j/∂x_i = y_j (delta_ij - y_i),

        dx_i = sum_j dy_j ∂y_j/∂x_i = y_i (dy_i - sum_j dy_j y_j)

    Fast path: tinygrad_llm.ops.nn.Softmax.
    """
    m = x.max(axis=axis, keepdims=True).detach()                            # (..., 1, ...)
    e = (x - m).exp()                                                       # same as x
    return e / e.sum(axis=axis, keepdims=True)                              # same as x


def log_softmax(x, axis=-1):
    r"""y_i = x_i - log sum_j e^{x_j}   along ``axis`` (the log of ``softmax``, without its log 0).

    With the shift m = max x (detached, as in ``softmax``):  y_i = (x_i - m) - log sum_j e^{x_j-m}.
    Jacobian ∂y_j/∂x_i = delta_ij - softmax(x)_i, so  dx_i = dy_i - e^{y_i} sum_j dy_j.

    Fast path: tinygrad_llm.ops.nn.LogSoftmax.
    """
    shifted = x - x.max(axis=axis, keepdims=True).detach()                  # same as x
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()      # same as x


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    r"""Softmax cross-entropy of ``logits`` (N, C) against integer class ``targets`` (N,), as
    torch.nn.functional.cross_entropy. With eps = ``label_smoothing`` the target distribution
    is q[n, c] = (1 - eps) [c == t_n] + eps / C, and

        loss_n = -sum_c q[n, c] log p[n, c]
               = -(1 - eps) log p[n, t_n] - (eps / C) sum_c log p[n, c]   (p = softmax(logits))
        (0 where t_n == ignore_index; eps = 0 gives loss_n = -log p[n, t_n])
        'mean': sum_n loss_n / M  (M the rows whose target is not ignored),  'sum': sum_n loss_n,
        'none': the (N,) losses

    Autograd gives  dlogits[n, c] = dloss_n (p[n, c] - q[n, c]).

    Fast path: tinygrad_llm.ops.nn.CrossEntropy.
    """
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got shape {logits.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], "
                         f"got {label_smoothing!r}")
    eps = float(label_smoothing)
    xp = backend.get_xp(logits.data)
    t = targets.data if isinstance(targets, Tensor) else xp.asarray(targets)   # (N,)
    valid = t != ignore_index                                               # (N,)
    safe = xp.where(valid, t, 0)               # (N,) any class for an ignored row: masked below
    logp = log_softmax(logits, axis=1)                                      # (N, C)
    picked = logp[xp.arange(logits.shape[0]), safe]                         # (N,) log p[n, t_n]
    loss = -picked                                                          # (N,)
    if eps:  # the smoothed part: -(eps / C) sum_c log p[n, c]
        loss = (1.0 - eps) * loss - (eps / logits.shape[1]) * logp.sum(axis=1)   # (N,)
    loss = where(valid, loss, 0.0)                                          # (N,)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()                                                   # ()
    if reduction == "mean":
        return loss.sum() / valid.sum().astype(logits.dtype)                # () over M rows
    raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                     f"got {reduction!r}")


# ================================================================================================
# Layer norm and GELU
# ================================================================================================
def layer_norm(x, weight=None, bias=None, eps=1e-5):
    r"""Layer normalisation over the last axis (size C), as torch.nn.functional.layer_norm:

        mu = mean(x),  var = mean((x - mu)^2)  (the biased variance),
        xhat = (x - mu) / sqrt(var + eps),   y = xhat * weight + bias

    Autograd differentiates through mu and var too; the closed form it arrives at is
    dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat * xhat)), rstd = 1 / sqrt(var + eps),
    dxhat = dy * weight (derivation: docs/gpt.md).

    Fast path: tinygrad_llm.ops.nn.LayerNorm.
    """
    mu = x.mean(axis=-1, keepdims=True)                                     # (..., 1)
    centred = x - mu                                                        # (..., C)
    var = (centred * centred).mean(axis=-1, keepdims=True)                  # (..., 1)
    xhat = centred / (var + eps).sqrt()                                     # (..., C)
    y = xhat * weight if weight is not None else xhat                       # (..., C)
    return y + bias if bias is not None else y                              # (..., C)


_ERF_TERMS = 100         # enough for |z| <= 6: the series' error is then below float64 rounding
_ERF_CLIP = 6.0          # erf(6) = 1 - 2e-17, which is 1 in float64


def normal_cdf(x):
    r"""Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF, from primitives.

    There is no erf primitive, so erf is summed from a series whose terms are all positive
    (no digits cancel as they add up; Abramowitz and Stegun 7.1.6):

        erf(z) = 2/sqrt(pi) e^{-z^2} sum_{n >= 0} (2 z^2)^n z / (1 * 3 * 5 * ... * (2n + 1))

    by Horner's rule from the inside out, for n = 0 .. N, N = ``_ERF_TERMS``, with z clipped to
    [-6, 6] (beyond, erf is +-1 to float64 rounding, and its slope, below e^{-36}, rounds away).
    The ratio of one term to the one before, 2 z^2 / (2n + 1), falls below 1 once n > z^2, so
    N = 100 reaches float64 rounding: erf is within 1.2e-15 of the exact value on [-6, 6] (a
    few units in the last place). Autograd differentiates the series, giving
    Phi'(x) = phi(x) = e^{-x^2/2} / sqrt(2 pi) to within 1e-14.

    The series runs in float64 whatever x's dtype, and Phi is rounded once to x's dtype: a
    reference aims at the exact value, and in float32 the series' few units of rounding near
    |z| = 6 would be 1e-7 of Phi, as large as the error of the fast float32 path it checks.
    """
    z = (x.astype("float64") * (1 / math.sqrt(2))).clip(-_ERF_CLIP, _ERF_CLIP)  # same as x
    two_z2 = 2 * z * z                                                      # same as x
    acc = 1 + two_z2 * (1 / (2 * _ERF_TERMS + 1))        # 1 + 2z^2/(2N+1): the innermost bracket
    for n in range(_ERF_TERMS - 1, 0, -1):               # 1 + 2z^2/(2n+1) (1 + 2z^2/(2n+3) (...))
        acc = 1 + two_z2 * (1 / (2 * n + 1)) * acc
    erf = (2 / math.sqrt(math.pi)) * (-z * z).exp() * z * acc               # same as x
    return (0.5 * (1 + erf)).astype(x.dtype)                                # same as x


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu(x, approximate="none"):
    r"""Gaussian error linear unit, as torch.nn.functional.gelu:

        approximate='none':  y = x Phi(x)                       (Phi: ``normal_cdf``)
        approximate='tanh':  y = x (1 + tanh u) / 2,   u = sqrt(2/pi) (x + 0.044715 x^3)

    Autograd gives dy/dx = Phi(x) + x phi(x) for the first, and for the second, with t = tanh u,
    dy/dx = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2.

    Fast path: tinygrad_llm.ops.nn.GELU (which runs another algorithm for Phi in float32).
    """
    if approximate == "none":
        return x * normal_cdf(x)
    if approximate == "tanh":
        u = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)                    # same as x
        return 0.5 * x * (1 + u.tanh())
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


# ================================================================================================
# Attention
# ================================================================================================
def attention(q, k, v, causal=True, dropout_p=0.0, scale=None, mask=None):
    r"""Scaled dot-product attention, q (..., Tq, hs), k and v (..., T, hs) -> y (..., Tq, hs):

        S = q k^T * scale                       scores (..., Tq, T); scale = 1 / sqrt(hs)
        S[i, j] = -inf  for j > T - Tq + i      causal: query i sits at key position T - Tq + i
        S = S + mask                            optional additive mask (a constant array)
        P = softmax(S) along j                  the attention weights; each row sums to 1
        Pd = P * M / (1 - dropout_p)            dropout, M[i, j] ~ Bernoulli(1 - dropout_p)
        y = Pd v                                (..., Tq, T)(..., T, hs)

    The dropout mask M is drawn exactly as ops.nn.Dropout and the fused Function draw it (one
    uniform number per weight from the device's generator, kept where >= dropout_p), so after
    the same ``backend.manual_seed`` they drop the same weights. A masked score's weight is 0,
    so it passes no gradient. nn.CausalSelfAttention's ``fused=False`` branch runs this.

    Fast path: tinygrad_llm.ops.attention.Attention (and QKVAttention).
    """
    xp = backend.get_xp(q.data)
    tq, tk, hs = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1 / math.sqrt(hs) if scale is None else scale
    s = (q @ k.swapaxes(-1, -2)) * scale                                    # (..., Tq, T)
    if causal:
        future = xp.triu(xp.ones((tq, tk), dtype=bool), k=tk - tq + 1)     # (Tq, T) j > T-Tq+i
        s = where(future, -math.inf, s)                                     # (..., Tq, T)
    if mask is not None:
        s = s + Tensor(mask)                                                # (..., Tq, T)
    p = softmax(s, axis=-1)                                                 # P (..., Tq, T)
    if dropout_p > 0:
        rng = backend.device_rng(backend.device_of(p.data))
        keep = rng.random(p.shape, dtype=p.dtype) >= dropout_p             # M (..., Tq, T)
        p = p * Tensor(keep * p.dtype.type(1 / (1 - dropout_p)))           # Pd (..., Tq, T)
    return p @ v                                                            # (..., Tq, hs)


# ================================================================================================
# Optimizers
# ================================================================================================
def adam_update(p, g, m, v, *, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    r"""One Adam (``decoupled=False``) or AdamW (``decoupled=True``) step on arrays, as
    torch.optim.Adam and AdamW; returns the new (p, m, v) and changes none of its inputs.

        AdamW:  p <- p (1 - lr weight_decay)        the decay acts on the weights directly
        Adam:   g <- g + weight_decay p             the decay is an L2 penalty in the gradient
        m <- beta1 m + (1 - beta1) g                the first moment (torch's exp_avg)
        v <- beta2 v + (1 - beta2) g^2              the second moment (exp_avg_sq)
        m_hat = m / (1 - beta1^step),  v_hat = v / (1 - beta2^step)     bias corrections
        p <- p - lr m_hat / (sqrt(v_hat) + eps)

    m and v start at zero, so early on they are too small by the factors 1 - beta^step; the
    bias corrections undo that. ``step`` counts from 1. The arrays p, g, m, v share a shape.

    Fast path: tinygrad_llm.optim.adam_update_ (in place; kernels/adamw.cu on a GPU).
    """
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    p = p - lr * m_hat / (backend.get_xp(p).sqrt(v_hat) + eps)
    return p, m, v


# ================================================================================================
# Word2vec
# ================================================================================================
def _log_sigmoid(s):
    r"""log sigma(s) = -log(1 + e^{-s}) = -(max(-s, 0) + log(1 + e^{-|s|})): e^{-|s|} <= 1, so
    nothing overflows for any s."""
    return -((-s).relu() + (1 + (-s.abs()).exp()).log())


def sgns_loss(v, u_pos, u_neg, neg_mask=None):
    r"""Skip-gram negative-sampling loss, one value per pair: v (B, D) the input vectors,
    u_pos (B, D) the true words' output vectors, u_neg (B, K, D) the noise words' output
    vectors, neg_mask (B, K) optional 0/1 (0 drops a noise word):

        s_pos = v . u_pos,   s_neg[b, k] = u_neg[b, k] . v[b]
        loss = -log sigma(s_pos) - sum_k neg_mask * log sigma(-s_neg)              (B,)

    Autograd gives the "predicted minus label" scores' gradients, sigma(s_pos) - 1 and
    neg_mask * sigma(s_neg), times the vector on the other side of each dot product.

    Fast path: tinygrad_llm.ops.word2vec.SGNSLoss.
    """
    s_pos = (v * u_pos).sum(axis=-1)                                        # (B,)
    s_neg = (u_neg * v.expand_dims(1)).sum(axis=-1)                         # (B, K)
    neg_terms = _log_sigmoid(-s_neg)                                        # (B, K)
    if neg_mask is not None:
        neg_terms = neg_terms * _constant(neg_mask, v)
    return -_log_sigmoid(s_pos) - neg_terms.sum(axis=-1)                    # (B,)


def skipgram_loss(v_pos, u_out, ctx_mask, neg_mask=None):
    r"""Skip-gram loss of B consecutive centre words with all their windows, one value per
    centre word: the ``sgns_loss`` of every real (context, centre) pair, summed per centre.

    v_pos (P, D): the input vectors of the P = B + 2W positions; u_out (B, K+1, D): each centre
    word's output vector (j = 0) then its K noise words'; ctx_mask (B, C = 2W) 0/1, 1 for a real
    context word; neg_mask (B, K) optional 0/1. Slot c of centre t is position
    t + W + offsets[c], offsets = (-W, ..., -1, 1, ..., W). Each pair feeds its context word's
    input vector and predicts the centre word against the centre's K noise words:

        V[t, c] = v_pos[t + W + offsets[c]]                                        (B, C, D)
        loss[t] = sum_c ctx_mask[t, c] sgns_loss(V[t, c], u_out[t, 0], u_out[t, 1:])   (B,)

    Fast path: tinygrad_llm.ops.word2vec.SkipGramLoss.
    """
    xp = backend.get_xp(v_pos.data)
    mask = _constant(ctx_mask, v_pos).astype(v_pos.dtype)                   # (B, C)
    b, c = mask.shape
    w = c // 2
    offsets = xp.concatenate([xp.arange(-w, 0), xp.arange(1, w + 1)])       # (C,)
    slots = xp.arange(b)[:, None] + w + offsets[None, :]                    # (B, C)
    centre = xp.repeat(xp.arange(b), c)                                     # (B*C,) t of each pair
    v = v_pos[slots.reshape(-1)]                                            # (B*C, D)
    u = u_out[centre]                                                       # (B*C, K+1, D)
    pair_neg_mask = None
    if neg_mask is not None:
        pair_neg_mask = _constant(neg_mask, v_pos)[centre]                  # (B*C, K)
    per_pair = sgns_loss(v, u[:, 0], u[:, 1:], pair_neg_mask).reshape(b, c)     # (B, C)
    return (per_pair * mask).sum(axis=1)                                    # (B,)


# ================================================================================================
# Recurrent cells (B batch, I input features, H hidden units; torch's gate order and formulas)
# ================================================================================================
def _linear(x, w, b=None):
    """x W^T (+ b): every row of x (B, I) through a stacked weight W (G, I) -> (B, G)."""
    y = x @ w.T                                                             # (B, G)
    return y if b is None else y + b


def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    r"""One Elman RNN step, as torch.nn.RNNCell: x (B, I), h (B, H) -> h_new (B, H):

        a = x W_ih^T + b_ih + h W_hh^T + b_hh,      h_new = f(a),   f = tanh or relu

    W_ih (H, I), W_hh (H, H), b_ih, b_hh (H,) or None. Autograd gives da = dh_new f'(a)
    (tanh' = 1 - h_new^2, relu' = [a > 0]), then dx = da W_ih, dh = da W_hh, dW_ih = da^T x,
    dW_hh = da^T h, db_ih = db_hh = sum over rows of da. nn.RNN and nn.RNNCell run this with
    ``fused=False`` (the layer step by step, autograd doing the backward through time).

    Fast path: tinygrad_llm.ops.rnn.RNNCell, and RNNLayer for a whole sequence.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_cell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    a = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)                    # (B, H)
    return a.tanh() if nonlinearity == "tanh" else a.relu()                 # (B, H)


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    r"""One LSTM step, as torch.nn.LSTMCell: x (B, I), h, c (B, H) -> (h_new, c_new), (B, H)
    each. The four gates come from one stacked matrix, in torch's order i, f, g, o; a_i a_f a_g
    a_o are their pre-activations:

        [a_i a_f a_g a_o] = x W_ih^T + b_ih + h W_hh^T + b_hh        (B, 4H)
        i = sigma(a_i)       input gate: how much of the candidate to write
        f = sigma(a_f)       forget gate: how much of the old cell to keep
        g = tanh(a_g)        the candidate
        o = sigma(a_o)       output gate: how much of the cell to show
        c_new = f * c + i * g,      h_new = o * tanh(c_new)

    W_ih (4H, I), W_hh (4H, H), b_ih, b_hh (4H,) or None. Autograd gives, among the rest, the
    carry of the cell state one step back,

        dc = f (dc_new + dh_new o (1 - tanh^2 c_new))

    which in a sequence reads dc_{t-1} = f_t (dc_t + dh_t o_t (1 - tanh^2 c_t)) (docs/rnn.md
    derives the whole backward). nn.LSTM and nn.LSTMCell run this with ``fused=False``.

    Fast path: tinygrad_llm.ops.rnn.LSTMCell, and LSTMLayer for a whole sequence.
    """
    H = h.shape[-1]
    a = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)                    # (B, 4H)
    a_i, a_f, a_g, a_o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]  # (B, H) each
    i, f, g, o = a_i.sigmoid(), a_f.sigmoid(), a_g.tanh(), a_o.sigmoid()    # (B, H) each
    c_new = f * c + i * g                                                   # (B, H)
    h_new = o * c_new.tanh()                                                # (B, H)
    return h_new, c_new


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    r"""One GRU step, as torch.nn.GRUCell: x (B, I), h (B, H) -> h_new (B, H). Torch's gate
    order r, z, n and its formula, in which r scales the whole h-side of n, its bias included:

        [gx_r gx_z gx_n] = x W_ih^T + b_ih,   [gh_r gh_z gh_n] = h W_hh^T + b_hh   (B, 3H)
        r = sigma(gx_r + gh_r)          reset gate: how much of h the candidate sees
        z = sigma(gx_z + gh_z)          update gate: how much of h to keep
        n = tanh(gx_n + r * gh_n)       the candidate
        h_new = (1 - z) * n + z * h

    W_ih (3H, I), W_hh (3H, H), b_ih, b_hh (3H,) or None. Because r multiplies gh_n, the
    h-side's gradient differs from the x-side's in the n block (dgh_n = r dgx_n), so b_hh's
    gradient is not b_ih's. nn.GRU and nn.GRUCell run this with ``fused=False``.

    Fast path: tinygrad_llm.ops.rnn.GRUCell, and GRULayer for a whole sequence.
    """
    H = h.shape[-1]
    gx = _linear(x, w_ih, b_ih)                                             # (B, 3H)
    gh = _linear(h, w_hh, b_hh)                                             # (B, 3H)
    r = (gx[:, :H] + gh[:, :H]).sigmoid()                                   # (B, H)
    z = (gx[:, H:2 * H] + gh[:, H:2 * H]).sigmoid()                         # (B, H)
    n = (gx[:, 2 * H:] + r * gh[:, 2 * H:]).tanh()                          # (B, H)
    return (1 - z) * n + z * h                                              # (B, H)
