r"""Fused scaled dot-product attention, one Function with a hand-derived backward.

Dimension letters: B batch, nh heads, T time (query and key positions), hs head size,
C = nh * hs channels.

Forward, for one batch element and one head (q, k, v are (T, hs); the code batches over B, nh):

    S = (q k^T) * scale                      scores, (T, T); scale = 1 / sqrt(hs)
    S[i, j] = -inf  for j > i                causal mask: position i sees only j <= i
    S = S + mask                             an optional additive mask (0 or a large negative
                                             number per key, e.g. BERT's padding), a constant
    P = softmax(S) along j                   attention weights; each row sums to 1
    Pd = P * M / (1 - p)                     dropout on the weights, p = dropout_p (M = 1 if p = 0)
    y = Pd v                                 (T, T)(T, hs) -> (T, hs)

Backward (each line restates the forward line it differentiates; derivation in docs/gpt.md):

    y = Pd v        =>  dv = Pd^T dy,  dPd = dy v^T
    Pd = P M / (1-p) =>  dP = dPd M / (1 - p)
    P = softmax(S)  =>  dS = P * (dP - D),  D_i = sum_j dP_ij P_ij = dy_i . y_i
    S = q k^T scale =>  dq = dS k scale,  dk = dS^T q scale

The softmax line uses the Jacobian ∂P_ij/∂S_ik = P_ij (delta_jk - P_ik) of row i, so
dS_ik = sum_j dP_ij ∂P_ij/∂S_ik = P_ik (dP_ik - D_i) with D_i = sum_j dP_ij P_ij.
The additive mask is a constant: dS flows through it to q and k unchanged, and it gets none.
``D_i = dy_i . y_i`` (FlashAttention's trick) is a sum over hs numbers instead of T: it holds
because sum_j dP_ij P_ij = sum_j dPd_ij Pd_ij (dP_ij P_ij = dPd_ij M_ij P_ij / (1 - p) =
dPd_ij Pd_ij) = dy_i . sum_j Pd_ij v_j = dy_i . y_i. Masked scores get P = 0, so they pass no
gradient: the mask needs no backward.

Saved for backward: q and k (dk needs q, dq needs k), v (for dPd = dy v^T), P (for the
softmax's gradient, and to rebuild Pd = P M / (1 - p) for dv), the dropout keep-mask M (only
when p > 0), and y (for D). The (T, T) scores S, Pd and the gradients dPd, dP, dS are
temporaries: S becomes P in place, and one buffer turns dPd into dP, then dS. On the CPU, scores
larger than ``BLOCK`` go through every line above a block of heads at a time (``_blocks``), so
the softmax's passes over a block stay in cache; the results are the same bits.

``Attention`` takes q, k, v of shape (..., T, hs). ``QKVAttention`` takes the packed output of a
fused qkv projection (B, T, 3C) and returns heads merged back to (B, T, C): it replaces the split,
the two transposes and the merge (five ops and their backward copies) with views.

Reference: tinygrad_llm.reference.attention (the same math from primitives; nn's
CausalSelfAttention runs it with ``fused=False``).
"""

import math

from tinygrad_llm import backend
from tinygrad_llm.autograd import Function

__all__ = ["Attention", "QKVAttention", "scaled_dot_product_attention", "qkv_attention",
           "causal_mask"]

_MASKS = {}  # (dtype, xp) -> the largest additive causal mask built so far (a constant)


def causal_mask(t, dtype, xp):
    r"""The additive causal mask (T, T): 0 where j <= i, -inf where j > i (a future position).

    The top-left (t, t) corner of a larger causal mask is the causal mask of size t, so one mask
    per dtype and device serves every length (a view, no copy).
    """
    key = (str(dtype), xp)
    mask = _MASKS.get(key)
    if mask is None or mask.shape[0] < t:
        mask = xp.triu(xp.full((t, t), -xp.inf, dtype=dtype), k=1)          # (T, T)
        _MASKS[key] = mask
    return mask[:t, :t]                                                     # (T, T) view


def _row_sums(s):
    r"""s.sum(axis=-1) for a C-contiguous s (..., T), as one matrix-vector product with a vector
    of ones: BLAS's gemv is several times faster than NumPy's sum over short rows."""
    xp = backend.get_xp(s)
    ones = xp.ones(s.shape[-1], dtype=s.dtype)                              # (T,)
    return (s.reshape(-1, s.shape[-1]) @ ones).reshape(s.shape[:-1])        # (...)


BLOCK = 1 << 18  # scores per block on the CPU: 1 MiB of float32, a block's passes stay in cache


def _blocks(lead, matrix, cpu):
    r"""Index tuples that cut the scores (*lead, Tq, T) into blocks of whole (Tq, T) matrices,
    ``matrix`` = Tq * T scores each, about ``BLOCK`` scores a block, in C order.

    At T = 256 and B = 64 the scores of one layer are 100 MiB: each of the softmax's passes over
    all of them would go out to main memory (and every fresh 100 MiB temporary costs page faults).
    Block by block, a block's scores stay in cache from the matmul that makes them to the matmul
    that consumes them. Small scores are one block, and on a GPU everything is one block (there
    each pass is a kernel launch). Reference: the whole array as one block, ``()``.
    """
    total = matrix
    for n in lead:
        total *= n
    if not cpu or total <= BLOCK:
        yield ()
        return
    inner = total // lead[0]                                  # scores under one index of axis 0
    if inner > BLOCK:                                         # cut finer, inside each index
        for i in range(lead[0]):
            for rest in _blocks(lead[1:], matrix, cpu):
                yield (i,) + rest
        return
    step = BLOCK // inner
    for i in range(0, lead[0], step):
        yield (slice(i, i + step),)


def _broadcast_shape(*shapes):
    r"""The shape that ``shapes`` broadcast to (NumPy's rule: aligned at the right, 1 stretches)."""
    n = max(len(shape) for shape in shapes)
    padded = [(1,) * (n - len(shape)) + tuple(shape) for shape in shapes]
    return tuple(max(sizes) if min(sizes) else 0 for sizes in zip(*padded))


def _forward(fn, q, k, v, causal, dropout_p, scale, out=None, mask=None):
    r"""The shared forward on (..., T, hs) views; saves what backward needs on ``fn``."""
    xp = backend.get_xp(q)
    tq, tk = q.shape[-2], k.shape[-2]
    lead = _broadcast_shape(q.shape[:-2], k.shape[:-2], v.shape[:-2])       # (...)
    q, k, v = (a if a.shape[:-2] == lead else xp.broadcast_to(a, lead + a.shape[-2:])
               for a in (q, k, v))                                # views, no copy
    p = xp.empty(lead + (tq, tk), dtype=q.dtype)                            # P (..., Tq, T)
    y = xp.empty(lead + (tq, v.shape[-1]), dtype=q.dtype) if out is None else out  # (..., Tq, hs)
    keep = xp.empty(p.shape, dtype=bool) if dropout_p > 0 else None         # M (..., Tq, T)
    rng = backend.device_rng(backend.device_of(q)) if dropout_p > 0 else None
    # Query i is position (tk - tq + i) of the key sequence; for tq == tk this is the plain
    # triangle. It lets a decoder feed fewer queries than keys.
    triangle = causal_mask(tk, p.dtype, xp)[tk - tq:] if causal else None   # (Tq, T)
    mask = None if mask is None else xp.broadcast_to(mask, p.shape)         # a view, no copy
    for i in _blocks(lead, tq * tk, backend.is_cpu(p)):
        s = p[i]                 # this block's scores, turned into P = softmax(S) in place:
        xp.matmul(q[i], k[i].swapaxes(-1, -2), out=s)                       #   q k^T
        s *= scale                                                          #   S = q k^T scale
        if causal:
            s += triangle                                                   #   (Tq, T) broadcast
        if mask is not None:
            s += mask[i]                                                    #   S + mask
        s -= s.max(axis=-1, keepdims=True)                                  #   S - max_j S
        xp.exp(s, out=s)                                                    #   e^{S - max}
        s /= _row_sums(s)[..., None]                                        #   P
        pd = s
        if dropout_p > 0:        # one uniform number per weight, in C order over the blocks:
            # the same draws as one call over the whole (..., Tq, T), as reference.attention makes
            xp.greater_equal(rng.random(s.shape, dtype=s.dtype), dropout_p, out=keep[i])  # M
            pd = s * keep[i]
            pd *= 1 / (1 - dropout_p)                                       # Pd = P M / (1-p)
        xp.matmul(pd, v[i], out=y[i])                                       # y = Pd v
    # saved: q and k (dk = dS^T q scale, dq = dS k scale), v (dPd = dy v^T), P (dS = P (dP - D),
    # and Pd = P M / (1-p) for dv), M (None without dropout), and the two scalars. The caller
    # saves y (for D). Pd is not saved: backward rebuilds it from P and M, block by block.
    fn.q, fn.k, fn.v, fn.p, fn.keep = q, k, v, p, keep
    fn.dropout_p, fn.scale = dropout_p, scale
    return y


def _backward(fn, dy, y, dq=None, dk=None, dv=None):
    r"""The shared backward: fills (or returns) dq, dk, dv of shape (..., T, hs), in the same
    blocks as the forward (each block's (Tq, T) temporaries stay in cache)."""
    xp = backend.get_xp(dy)
    q, k, v, p, keep, dropout_p = fn.q, fn.k, fn.v, fn.p, fn.keep, fn.dropout_p
    lead, (tq, tk) = p.shape[:-2], p.shape[-2:]
    dq = xp.empty(q.shape, dtype=dy.dtype) if dq is None else dq            # (..., Tq, hs)
    dk = xp.empty(k.shape, dtype=dy.dtype) if dk is None else dk            # (..., T, hs)
    dv = xp.empty(v.shape, dtype=dy.dtype) if dv is None else dv            # (..., T, hs)
    for i in _blocks(lead, tq * tk, backend.is_cpu(p)):
        pd = p[i] if keep is None else p[i] * keep[i]                       # Pd (..., Tq, T)
        if keep is not None:
            pd *= 1 / (1 - dropout_p)
        xp.matmul(pd.swapaxes(-1, -2), dy[i], out=dv[i])                    # y = Pd v => dv
        dp = dy[i] @ v[i].swapaxes(-1, -2)                                  # dPd = dy v^T
        # the same buffer from here on, turned in place into dP, then dS
        if keep is not None:
            dp *= keep[i]                                                   # dP = dPd M / (1-p)
            dp *= 1 / (1 - dropout_p)
        d = xp.einsum("...i,...i->...", dy[i], y[i])[..., None]             # D_i = dy_i . y_i
        ds = dp                                                             # P = softmax(S):
        ds -= d                                                             #   dP - D
        ds *= p[i]                                                          #   dS = P (dP - D)
        ds *= fn.scale                              # S = q k^T scale: now it holds dS scale
        xp.matmul(ds, k[i], out=dq[i])                                      # dq = dS k scale
        xp.matmul(ds.swapaxes(-1, -2), q[i], out=dk[i])                     # dk = dS^T q scale
    return dq, dk, dv


def _check_mask(mask, q, k):
    r"""The additive mask must broadcast to the scores (..., Tq, T) without growing them."""
    shape = q.shape[:-1] + (k.shape[-2],)                                   # (..., Tq, T)
    fits = mask.ndim <= len(shape) and all(
        m in (1, n) for m, n in zip(mask.shape[::-1], shape[::-1]))
    if not fits:
        raise ValueError(f"attention: the additive mask of shape {mask.shape} does not "
                         f"broadcast to the scores' shape {shape}")
    if mask.dtype != q.dtype:
        raise ValueError(f"attention: the additive mask must have the scores' dtype {q.dtype}, "
                         f"got {mask.dtype}")


def _check(q, k, v, causal):
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"attention: q, k, v must have the same number (>= 2) of dimensions "
                         f"(..., T, hs), got shapes {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: q and k need the same head size and k and v the same "
                         f"length; got q {q.shape}, k {k.shape}, v {v.shape}")
    if causal and q.shape[-2] > k.shape[-2]:   # query i sits at key position T - Tq + i
        raise ValueError(f"attention: more queries ({q.shape[-2]}) than keys ({k.shape[-2]}) "
                         f"with causal=True")


class Attention(Function):
    r"""y = softmax(q k^T / sqrt(hs) + mask) v with q (..., Tq, hs), k, v (..., T, hs).

    Options: ``causal`` (default True) masks future keys; ``dropout_p`` drops attention weights
    (pass 0 in evaluation); ``scale`` defaults to 1/sqrt(hs); ``mask``, an array of q's dtype
    that broadcasts to the scores (..., Tq, T), is added to them (0 where a key may be seen, a
    large negative number where not: BERT's padding mask (B, 1, 1, T)); it is a constant.
    Equations: the module docstring.

    Reference: tinygrad_llm.reference.attention.
    """

    def forward(self, q, k, v, causal=True, dropout_p=0.0, scale=None, mask=None):
        _check(q, k, v, causal)
        if mask is not None:
            _check_mask(mask, q, k)
        if not 0 <= dropout_p < 1:
            raise ValueError(f"attention: dropout_p must be in [0, 1), got {dropout_p}")
        scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
        self.y = _forward(self, q, k, v, causal, dropout_p, scale, mask=mask)  # saved: y, for D
        return self.y

    def backward(self, dy):
        dq, dk, dv = _backward(self, dy, self.y)
        need_q, need_k, need_v = self.needs_input_grad
        return dq if need_q else None, dk if need_k else None, dv if need_v else None


class QKVAttention(Function):
    r"""Multi-head causal self-attention on a packed qkv projection: qkv (B, T, 3C) -> y (B, T, C).

    The last axis of qkv holds [q | k | v], each C = nh * hs wide with head h in columns
    h*hs .. (h+1)*hs (nanoGPT's and GPT-2's layout). Each head attends as in ``Attention``;
    the heads' outputs are laid side by side again. q, k, v and y are strided views, so no
    split, transpose or merge is copied, forward or backward:

        q = qkv[:, :, 0:C]   viewed (B, T, nh, hs) -> (B, nh, T, hs)     (same for k, v)
        y (B, nh, T, hs)     viewed back as (B, T, nh, hs) -> (B, T, C)
        dqkv = [dq | dk | dv] written through the same views

    Reference: tinygrad_llm.reference.attention on the split heads.
    """

    def forward(self, qkv, n_head, causal=True, dropout_p=0.0):
        xp = backend.get_xp(qkv)
        if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
            raise ValueError(f"qkv_attention: qkv must be (B, T, 3C) with C divisible by "
                             f"n_head={n_head}, got shape {qkv.shape}")
        if not 0 <= dropout_p < 1:
            raise ValueError(f"qkv_attention: dropout_p must be in [0, 1), got {dropout_p}")
        b, t, c3 = qkv.shape
        c = c3 // 3
        hs = c // n_head
        heads = qkv.reshape(b, t, 3, n_head, hs).transpose(2, 0, 3, 1, 4)    # (3, B, nh, T, hs)
        q, k, v = heads[0], heads[1], heads[2]                              # (B, nh, T, hs) each
        y = xp.empty((b, t, n_head, hs), dtype=qkv.dtype)                   # (B, T, nh, hs)
        _forward(self, q, k, v, causal, dropout_p, 1 / math.sqrt(hs),
                 out=y.transpose(0, 2, 1, 3))                               # written as (B,nh,T,hs)
        self.y = y                                                          # saved: y, for D
        return y.reshape(b, t, c)                                           # (B, T, C): a view

    def backward(self, dy):
        xp = backend.get_xp(dy)
        b, t, c = dy.shape
        n_head, hs = self.y.shape[2], self.y.shape[3]
        dqkv = xp.empty((b, t, 3, n_head, hs), dtype=dy.dtype)              # (B, T, 3, nh, hs)
        dheads = dqkv.transpose(2, 0, 3, 1, 4)                              # (3, B, nh, T, hs)
        dy4 = dy.reshape(b, t, n_head, hs).transpose(0, 2, 1, 3)            # (B, nh, T, hs)
        y4 = self.y.transpose(0, 2, 1, 3)                                   # (B, nh, T, hs)
        _backward(self, dy4, y4, dq=dheads[0], dk=dheads[1], dv=dheads[2])
        return (dqkv.reshape(b, t, 3 * c),)                                 # (B, T, 3C)


def scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.0, scale=None, mask=None):
    r"""softmax(q k^T * scale + causal mask + mask) v on Tensors (..., T, hs); ``mask`` an
    optional additive array (not a Tensor); see ``Attention``."""
    return Attention.apply(q, k, v, causal=causal, dropout_p=dropout_p, scale=scale, mask=mask)


def qkv_attention(qkv, n_head, causal=True, dropout_p=0.0):
    r"""Multi-head self-attention from a packed (B, T, 3C) Tensor to (B, T, C); see
    ``QKVAttention``."""
    return QKVAttention.apply(qkv, n_head=n_head, causal=causal, dropout_p=dropout_p)
