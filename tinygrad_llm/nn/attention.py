r"""Causal multi-head self-attention, the layer at the heart of a GPT block.

Dimension letters: B batch, T time, C channels (n_embd), nh heads, hs = C / nh head size.

    q, k, v = split(x W_attn^T + b_attn)            (B, T, C) each, from one (B, T, 3C) GEMM
    y_h = softmax(q_h k_h^T / sqrt(hs) + mask) v_h   per head h, (B, nh, T, hs)
    y = concat_h(y_h) W_proj^T + b_proj             (B, T, C)

mask[i, j] = -inf for j > i (no peeking at future tokens), 0 otherwise. Parameter names are
GPT-2's: ``c_attn`` (the fused qkv projection, weight (3C, C)) and ``c_proj`` (weight (C, C)).
The forward and backward of the attention itself are in tinygrad_llm/ops/attention.py and
docs/gpt.md; tinygrad_llm.reference.attention is the same math from primitives.
"""

from tinygrad_llm import reference
from tinygrad_llm.nn.layers import Dropout, Linear
from tinygrad_llm.nn.module import Module
from tinygrad_llm.ops import attention as _attention

__all__ = ["CausalSelfAttention"]


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

    def forward(self, x):
        b, t, c = x.shape                                                   # (B, T, C)
        qkv = self.c_attn(x)                                                # (B, T, 3C)
        p = self.dropout if self.training else 0.0
        if self.fused:
            y = _attention.qkv_attention(qkv, self.n_head, causal=True, dropout_p=p)  # (B, T, C)
        else:
            y = self._attention_unfused(qkv, p)                             # (B, T, C)
        return self.resid_dropout(self.c_proj(y))                           # (B, T, C)

    def _attention_unfused(self, qkv, p):
        r"""The same attention from primitives: split the heads, then
        ``reference.attention`` (softmax(q k^T / sqrt(hs) + mask), dropout p, times v)."""
        b, t, c3 = qkv.shape
        nh, hs = self.n_head, c3 // (3 * self.n_head)
        c = nh * hs
        q = qkv[:, :, 0:c].reshape(b, t, nh, hs).transpose(0, 2, 1, 3)     # (B, nh, T, hs)
        k = qkv[:, :, c:2 * c].reshape(b, t, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
        v = qkv[:, :, 2 * c:].reshape(b, t, nh, hs).transpose(0, 2, 1, 3)   # (B, nh, T, hs)
        y = reference.attention(q, k, v, causal=True, dropout_p=p)         # (B, nh, T, hs)
        return y.transpose(0, 2, 1, 3).reshape(b, t, c)                     # (B, T, C)

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, fused={self.fused}"
