r"""Causal multi-head self-attention, the layer at the heart of a GPT block.

Dimension letters: B batch, T time, C channels (n_embd), nh heads, hs = C / nh head size.

    q, k, v = split(x W_attn^T + b_attn)            (B, T, C) each, from one (B, T, 3C) GEMM
    y_h = softmax(q_h k_h^T / sqrt(hs) + mask) v_h   per head h, (B, nh, T, hs)
    y = concat_h(y_h) W_proj^T + b_proj             (B, T, C)

mask[i, j] = -inf for j > i (no peeking at future tokens), 0 otherwise. Parameter names are
GPT-2's: ``c_attn`` (the fused qkv projection, weight (3C, C)) and ``c_proj`` (weight (C, C)).
The forward and backward of the attention itself are in tinygrad_llm/ops/attention.py and
docs/gpt.md; tinygrad_llm.reference.attention is the same math from primitives.

Generation adds two things (docs/generation.md): a key padding mask (``attention_mask``, True for
a real token, False for left padding: no query attends to a padding key) and incremental
decoding (``forward_cached``): the new positions t..t+L-1 are computed against the keys and
values of positions 0..t-1 kept from earlier calls, which gives the same rows as the full causal
attention over all t+L positions.
"""

import math

import numpy as np

from tinygrad_llm import backend, reference
from tinygrad_llm.nn import functional as F
from tinygrad_llm.nn.layers import Dropout, Linear
from tinygrad_llm.nn.module import Module
from tinygrad_llm.ops import attention as _attention
from tinygrad_llm.tensor import Tensor, concatenate, where

__all__ = ["CausalSelfAttention", "masked_attention"]


class CausalSelfAttention(Module):
    r"""Multi-head causal self-attention with a fused qkv projection, as in GPT-2 / nanoGPT.

    Parameters: ``c_attn.weight`` W_attn (3C, C), ``c_attn.bias`` (3C,), ``c_proj.weight`` W_proj
    (C, C), ``c_proj.bias`` (C,) (no biases with bias=False). ``dropout`` applies to the attention
    weights and to the output (``resid_dropout``), in training only.

    ``fused=True`` runs the attention as one Function (``QKVAttention``: hand-derived backward,
    strided views instead of copies); ``fused=False`` splits the heads with primitives (slice,
    reshape, transpose) and runs ``tinygrad_llm.reference.attention`` (matmul, mask, softmax,
    dropout, matmul from primitives), which autograd differentiates. Both give the same numbers
    and draw the same dropout masks from the same seed; the unfused one is there to read and to
    test against.
    """

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, fused=True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"CausalSelfAttention: n_embd={n_embd} is not divisible by "
                             f"n_head={n_head}")
        self.n_embd, self.n_head, self.dropout, self.fused = n_embd, n_head, dropout, fused
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)                 # W_attn (3C, C)
        self.c_proj = Linear(n_embd, n_embd, bias=bias)                     # W_proj (C, C)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x, attention_mask=None):
        r"""x (B, T, C) -> (B, T, C). ``attention_mask`` (B, T) bool, False at padding keys, or
        None; with a mask the attention is composed from primitives (``masked_attention``)."""
        b, t, c = x.shape                                                   # (B, T, C)
        qkv = self.c_attn(x)                                                # (B, T, 3C)
        p = self.dropout if self.training else 0.0
        if attention_mask is not None:
            q, k, v = self._heads(qkv)                                      # (B, nh, T, hs)
            y = masked_attention(q, k, v, attention_mask, dropout_p=p)      # (B, nh, T, hs)
            y = y.transpose(0, 2, 1, 3).reshape(b, t, c)                    # (B, T, C)
        elif self.fused:
            y = _attention.qkv_attention(qkv, self.n_head, causal=True, dropout_p=p)  # (B, T, C)
        else:
            y = self._attention_unfused(qkv, p)                             # (B, T, C)
        return self.resid_dropout(self.c_proj(y))                           # (B, T, C)

    def forward_cached(self, x, past=None, attention_mask=None):
        r"""Incremental attention: x (B, L, C) holds the new positions t..t+L-1, ``past`` the
        keys and values (k, v), each (B, nh, t, hs), of positions 0..t-1 (None when t = 0),
        ``attention_mask`` (B, t + L) bool (False at padding) or None. Returns y (B, L, C) and
        (k, v) grown to (B, nh, t + L, hs):

            k = concat(past k, x W_k^T + b_k),  v likewise                   (B, nh, t + L, hs)
            y_i = softmax(q_i k^T / sqrt(hs) + mask_i) v,  key j allowed if j <= t + i and
                  attention_mask[:, j]

        the rows t..t+L-1 of ``forward`` over all t + L positions, without recomputing the
        past keys and values. Dropout as in forward (generation runs in eval mode: none)."""
        b, l_new, c = x.shape                                               # (B, L, C)
        q, k, v = self._heads(self.c_attn(x))                               # (B, nh, L, hs)
        if past is not None:
            k = concatenate([past[0], k], axis=2)                           # (B, nh, t+L, hs)
            v = concatenate([past[1], v], axis=2)                           # (B, nh, t+L, hs)
        p = self.dropout if self.training else 0.0
        y = masked_attention(q, k, v, attention_mask, dropout_p=p)          # (B, nh, L, hs)
        y = y.transpose(0, 2, 1, 3).reshape(b, l_new, c)                    # (B, L, C)
        return self.resid_dropout(self.c_proj(y)), (k, v)                   # (B, L, C)

    def _heads(self, qkv):
        r"""qkv (B, T, 3C) -> q, k, v, each (B, nh, T, hs)."""
        b, t, c3 = qkv.shape
        nh, hs = self.n_head, c3 // (3 * self.n_head)
        c = nh * hs
        q = qkv[:, :, 0:c].reshape(b, t, nh, hs).transpose(0, 2, 1, 3)     # (B, nh, T, hs)
        k = qkv[:, :, c:2 * c].reshape(b, t, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
        v = qkv[:, :, 2 * c:].reshape(b, t, nh, hs).transpose(0, 2, 1, 3)   # (B, nh, T, hs)
        return q, k, v

    def _attention_unfused(self, qkv, p):
        r"""The same attention from primitives: split the heads, then
        ``reference.attention`` (softmax(q k^T / sqrt(hs) + mask), dropout p, times v)."""
        b, t, c3 = qkv.shape
        q, k, v = self._heads(qkv)                                          # (B, nh, T, hs)
        y = reference.attention(q, k, v, causal=True, dropout_p=p)         # (B, nh, T, hs)
        return y.transpose(0, 2, 1, 3).reshape(b, t, c3 // 3)               # (B, T, C)

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, fused={self.fused}"


def masked_attention(q, k, v, attention_mask=None, dropout_p=0.0):
    r"""Causal attention with a key padding mask, from primitives: q (B, nh, L, hs), k and v
    (B, nh, S, hs) with the L queries at the last L key positions (S - L + i for query i),
    ``attention_mask`` (B, S) bool (True: a real token; False: padding) or None.

        allowed[b, i, j] = (j <= S - L + i) and attention_mask[b, j]          (B, 1, L, S)
        P = softmax(q k^T / sqrt(hs), over the allowed j)                     (B, nh, L, S)
        y = dropout(P) v                                                      (B, nh, L, hs)

    A query that may see no key at all (a padding position at the start of a left-padded row)
    gets zero weights, so y = 0 there: finite, and never read by a real position (its key is
    masked for every real query). reference.attention is the same without the padding mask.
    """
    l_new, s_len, hs = q.shape[2], k.shape[2], q.shape[3]
    # The mask is built on the host (the caller's mask is a host array; a small (L, S) or
    # (B, 1, L, S) bool), so deciding which case applies reads nothing back from a GPU.
    allowed = ~np.triu(np.ones((l_new, s_len), dtype=bool), k=s_len - l_new + 1)  # (L, S)
    if attention_mask is not None:
        keys = attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
        keys = np.asarray(backend.to_numpy(keys), dtype=bool)               # (B, S)
        if keys.shape != (q.shape[0], s_len):
            raise ValueError(f"masked_attention: attention_mask must be (B, S) = "
                             f"{(q.shape[0], s_len)}, got {keys.shape}")
        allowed = allowed[None, None] & keys[:, None, None, :]              # (B, 1, L, S)
    scores = (q @ k.swapaxes(-1, -2)) * (1 / math.sqrt(hs))                 # (B, nh, L, S)
    if allowed.all():
        p = F.softmax(scores, axis=-1)                                      # (B, nh, L, S)
    else:
        device = backend.device_of(q.data)
        dead = ~allowed.any(axis=-1, keepdims=True)                         # (.., L, 1) no key
        scores = where(backend.to_device(allowed | dead, device), scores,
                       -math.inf)                                           # dead rows: finite
        p = F.softmax(scores, axis=-1)                                      # (B, nh, L, S)
        if dead.any():
            p = where(backend.to_device(dead, device), 0.0, p)              # zero weights
    p = F.dropout(p, dropout_p, dropout_p > 0)                              # (B, nh, L, S)
    return p @ v                                                            # (B, nh, L, hs)
