r"""The encoder-decoder Transformer (Vaswani et al., 2017) with torch.nn's names, shapes and masks.

Dimension letters: N batch, L target (query) length, S source (key) length, E embed_dim
(= d_model), nh num_heads, hs = E / nh head size, F dim_feedforward, T the length of the
sequence PositionalEncoding reads.

Sequences are (L, N, E) by default, as in torch; with ``batch_first=True`` they are (N, L, E).
Multi-head attention, for queries x_q (N, L, E) and keys/values x_k, x_v (N, S, E), with
W_q, W_k, W_v the three (E, E) row blocks of ``in_proj_weight`` and b_q, b_k, b_v those of
``in_proj_bias``:

    q = x_q W_q^T + b_q,  k = x_k W_k^T + b_k,  v = x_v W_v^T + b_v     (N, L|S, E)
    q_h, k_h, v_h = head h's hs columns of q, k, v                      (N, nh, L|S, hs)
    A_h = q_h k_h^T / sqrt(hs) + mask                                   (N, nh, L, S)
    P_h = softmax(A_h) along S, then dropout (training only)            (N, nh, L, S)
    y = concat_h(P_h v_h) W_o^T + b_o                                   (N, L, E)

W_o, b_o are ``out_proj.weight`` and ``out_proj.bias``. The additive mask is the sum of

    attn_mask          (L, S) or (N*nh, L, S); bool (True = may not attend, i.e. -inf) or float
    key_padding_mask   (N, S); bool (True = a padding key, -inf for every query) or float

A query row whose keys are all masked has no softmax. torch 2.13 gives NaN weights (and a NaN
output) when the weights are asked for (``need_weights=True``), and zero weights, so an output
of b_o, when they are not (``need_weights=False``, which the Transformer layers use); so does
this module. Masks are constants: no gradient flows into a float mask.

Backward: with no mask, or with the causal mask given as a hint (``is_causal``), and no weights
asked for, the attention runs as the fused Function tinygrad_llm.ops.attention.Attention (its
hand-derived backward is in that file); otherwise it is composed from primitives (matmul, add,
softmax, dropout, matmul) and autograd differentiates it, as tinygrad_llm.reference.attention.

Encoder layer (post-norm, ``norm_first=False``; ``SA`` self-attention, ``FF`` the MLP):

    FF(x) = act(x W_1^T + b_1) W_2^T + b_2        linear1 (F, E), linear2 (E, F); act relu|gelu
    x = norm1(x + SA(x)),  x = norm2(x + FF(x))                 post-norm
    x = x + SA(norm1(x)),  x = x + FF(norm2(x))                 pre-norm (norm_first=True)

Decoder layer: the same with cross-attention ``CA`` to the encoder's output ``memory`` between:

    x = norm1(x + SA(x)),  x = norm2(x + CA(x, memory)),  x = norm3(x + FF(x))
    (pre-norm: x = x + SA(norm1(x)), x = x + CA(norm2(x), memory), x = x + FF(norm3(x)))

Dropout (p = ``dropout``) follows each sub-block and the MLP's activation. ``Transformer`` runs
num_encoder_layers encoder layers and a final LayerNorm on the source, then num_decoder_layers
decoder layers and a final LayerNorm on the target, as torch.nn.Transformer does. State dict
keys are torch's (``encoder.layers.0.self_attn.in_proj_weight``, ``decoder.norm.weight``, ...),
so weights move both ways.

PositionalEncoding adds the fixed sinusoidal table PE (max_len, E) to a (T, N, E) input (or
(N, T, E) with batch_first), then dropout:

    PE[pos, 2i] = sin(pos / 10000^(2i / E)),   PE[pos, 2i + 1] = cos(pos / 10000^(2i / E))

Incremental decoding (not in torch.nn): ``TransformerDecoder.forward(tgt_new, memory, ...,
cache=cache)`` with a KVCache (``decoder.new_cache()``) feeds only the new target positions and
returns ``(y_new, cache)``: each layer's self-attention keys and values of the past positions and
its cross-attention keys and values of ``memory`` are kept in the cache instead of recomputed,
and the outputs equal the full decoder's last rows under the causal tgt_mask. The cache is passed
in and returned, never kept on a module; ``Transformer.encode`` gives the memory, and
``PositionalEncoding(x, offset=t)`` places new positions after t seen ones.

torch's ``kdim``/``vdim``/``add_bias_kv``/``add_zero_attn`` options and its inference fast path
(nested tensors) are not provided.
"""

import copy
import math

import numpy as np

from tinygrad_llm import backend
from tinygrad_llm.nn import functional as F
from tinygrad_llm.nn import init
from tinygrad_llm.nn.layers import Dropout, LayerNorm, Linear
from tinygrad_llm.nn.module import Module, ModuleList, Parameter
from tinygrad_llm.ops import attention as _attention
from tinygrad_llm.tensor import Tensor, concatenate, where

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer",
           "TransformerEncoder", "TransformerDecoder", "Transformer", "PositionalEncoding",
           "KVCache"]


def _xavier_uniform(shape):
    r"""U(-a, a) with a = sqrt(6 / (fan_in + fan_out)): torch's xavier_uniform_ for (out, in)."""
    fan_out, fan_in = shape[0], shape[1]
    return init.uniform(shape, math.sqrt(6 / (fan_in + fan_out)))


def _mask_array(mask, name, like):
    r"""A bool or float mask as an additive float array (-inf where a bool mask is True).

    ``like``: the scores' array, for the dtype and the device."""
    data = mask.data if isinstance(mask, Tensor) else mask
    if not backend.is_array(data):
        data = np.asarray(data)
    if data.dtype != bool and data.dtype.kind != "f":
        raise ValueError(f"MultiheadAttention: {name} must be bool or floating, got dtype "
                         f"{data.dtype}")
    xp = backend.get_xp(like)
    data = backend.to_device(backend.to_numpy(data), backend.device_of(like))
    if data.dtype == bool:
        return xp.where(data, -xp.inf, 0.0).astype(like.dtype)             # same shape
    return data.astype(like.dtype, copy=False)


class MultiheadAttention(Module):
    r"""Multi-head attention with torch.nn.MultiheadAttention's arguments, names and results.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` -> ``(attn_output, attn_weights)``:
    query (L, N, E), key and value (S, N, E) ((N, L, E), (N, S, E) with batch_first; (L, E)
    and (S, E) without a batch), attn_output like query, attn_weights (N, L, S) averaged over
    the heads, (N, nh, L, S) with average_attn_weights=False, or None with need_weights=False.
    Equations and masks: the module docstring.

    Parameters (torch's names): ``in_proj_weight`` [W_q; W_k; W_v] (3E, E), xavier-uniform;
    ``in_proj_bias`` [b_q; b_k; b_v] (3E,) = 0; ``out_proj.weight`` W_o (E, E), U(-1/sqrt(E),
    1/sqrt(E)); ``out_proj.bias`` b_o (E,) = 0. No biases with bias=False.

    ``is_causal`` is a hint, as in torch: it needs ``attn_mask`` too (the causal mask), and with
    no key_padding_mask and need_weights=False the fused causal attention Function
    (tinygrad_llm.ops.attention.Attention) runs instead of the mask; with no mask at all and
    need_weights=False the fused Function runs unmasked. Every other case is composed from
    primitives (matmul, add the mask, softmax, dropout, matmul), which autograd differentiates.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim={embed_dim} is not divisible by "
                             f"num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim, self.batch_first = embed_dim // num_heads, batch_first
        e = embed_dim
        self.in_proj_weight = Parameter(_xavier_uniform((3 * e, e)))       # (3E, E)
        self.in_proj_bias = Parameter(init.zeros((3 * e,))) if bias else None  # (3E,)
        self.out_proj = Linear(e, e, bias=bias)                            # W_o (E, E)
        if bias:
            self.out_proj.bias = Parameter(init.zeros((e,)))               # b_o (E,)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        if is_causal and attn_mask is None:
            raise ValueError("MultiheadAttention: is_causal=True is a hint that attn_mask is "
                             "the causal mask; pass attn_mask too (as torch requires)")
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key, value must all be 3-D (batched) "
                             f"or all 2-D, got shapes {query.shape}, {key.shape}, {value.shape}")
        batched = query.ndim == 3
        if not batched:                                    # (L, E) -> (1, L, E)
            query, key, value = (x.reshape(1, *x.shape) for x in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = np.reshape(_data(key_padding_mask), (1, -1))  # (1, S)
        elif not self.batch_first:                         # (L, N, E) -> (N, L, E)
            query, key, value = (x.transpose(1, 0, 2) for x in (query, key, value))
        y, weights = self._attend(query, key, value, key_padding_mask, need_weights, attn_mask,
                                  average_attn_weights, is_causal)
        if not batched:
            y = y.reshape(*y.shape[1:])                                    # (L, E)
            if weights is not None:
                weights = weights.reshape(*weights.shape[1:])              # ([nh,] L, S)
        elif not self.batch_first:
            y = y.transpose(1, 0, 2)                                       # (L, N, E)
        return y, weights

    def _attend(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                average_attn_weights, is_causal):
        r"""The attention on batch-first inputs: query (N, L, E), key, value (N, S, E)."""
        n, e = query.shape[0], query.shape[2]
        if e != self.embed_dim or key.shape[0] != n or value.shape[:2] != key.shape[:2]:
            raise ValueError(f"MultiheadAttention: expected query (N, L, {self.embed_dim}) "
                             f"and key, value (N, S, {self.embed_dim}) (batch-first view), got "
                             f"{query.shape}, {key.shape}, {value.shape}")
        q = self._project(query, 0)                                        # (N, nh, L, hs)
        k = self._project(key, 1)                                          # (N, nh, S, hs)
        v = self._project(value, 2)                                        # (N, nh, S, hs)
        return self._attend_heads(q, k, v, key_padding_mask, need_weights, attn_mask,
                                  average_attn_weights, is_causal)

    def _project(self, x, which):
        r"""Head-split projection of batch-first x (N, T, E): which = 0, 1, 2 for q, k, v.

            q = x W_q^T + b_q  (N, T, E)  ->  (N, nh, T, hs)    (likewise k, v)"""
        n, t, e = x.shape
        rows = slice(which * e, (which + 1) * e)
        b = None if self.in_proj_bias is None else self.in_proj_bias[rows]  # (E,)
        y = F.linear(x, self.in_proj_weight[rows], b)                      # (N, T, E)
        y = y.reshape(n, t, self.num_heads, self.head_dim)                  # (N, T, nh, hs)
        return y.transpose(0, 2, 1, 3)                                     # (N, nh, T, hs)

    def _attend_heads(self, q, k, v, key_padding_mask, need_weights, attn_mask,
                      average_attn_weights, is_causal):
        r"""The attention of projected heads q (N, nh, L, hs), k, v (N, nh, S, hs), then the
        output projection: returns (y (N, L, E), weights or None)."""
        n, nh, tq, hs = q.shape
        s_len, e = k.shape[2], self.embed_dim
        p_drop = self.dropout if self.training else 0.0
        mask = self._mask(attn_mask, key_padding_mask, n, tq, s_len, q.data)
        fused_causal = is_causal and key_padding_mask is None and tq == s_len
        if not need_weights and (mask is None or fused_causal):
            y = _attention.scaled_dot_product_attention(q, k, v, causal=mask is not None,
                                                        dropout_p=p_drop)  # (N, nh, L, hs)
            weights = None
        else:
            scores = (q * (1 / math.sqrt(hs))) @ k.swapaxes(-1, -2)        # A (N, nh, L, S)
            if mask is not None:
                scores = scores + Tensor(mask)                             # (N, nh, L, S)
            dead = None
            if mask is not None and not need_weights:
                xp = backend.get_xp(mask)
                dead = xp.isneginf(mask).all(axis=-1, keepdims=True)       # (.., L, 1) no keys
                dead = dead if bool(dead.any()) else None
            if dead is not None:             # zero weights instead of NaN, as torch's SDPA gives
                scores = where(dead, 0.0, scores)                          # (N, nh, L, S)
            p = F.softmax(scores, axis=-1)                                 # P (N, nh, L, S)
            if dead is not None:
                p = where(dead, 0.0, p)                                    # (N, nh, L, S)
            p = F.dropout(p, p_drop, self.training)                        # (N, nh, L, S)
            y = p @ v                                                      # (N, nh, L, hs)
            weights = None
            if need_weights:
                weights = p.mean(axis=1) if average_attn_weights else p    # (N, [nh,] L, S)
        y = y.transpose(0, 2, 1, 3).reshape(n, tq, e)                      # (N, L, E)
        return self.out_proj(y), weights                                   # (N, L, E)

    def _mask(self, attn_mask, key_padding_mask, n, tq, s_len, like):
        r"""attn_mask + key_padding_mask as one additive array broadcasting to (N, nh, L, S),
        or None without masks."""
        nh = self.num_heads
        mask = None
        if attn_mask is not None:
            shape = tuple(np.shape(_data(attn_mask)))
            if shape == (tq, s_len):
                mask = _mask_array(attn_mask, "attn_mask", like)           # (L, S)
            elif shape == (n * nh, tq, s_len):
                mask = _mask_array(attn_mask, "attn_mask", like)           # (N*nh, L, S)
                mask = mask.reshape(n, nh, tq, s_len)                      # (N, nh, L, S)
            else:
                raise ValueError(f"MultiheadAttention: attn_mask must have shape (L, S) = "
                                 f"{(tq, s_len)} or (N*num_heads, L, S) = {(n * nh, tq, s_len)}"
                                 f", got {shape}")
        if key_padding_mask is not None:
            shape = tuple(np.shape(_data(key_padding_mask)))
            if shape != (n, s_len):
                raise ValueError(f"MultiheadAttention: key_padding_mask must have shape (N, S) "
                                 f"= {(n, s_len)}, got {shape}")
            pad = _mask_array(key_padding_mask, "key_padding_mask", like)  # (N, S)
            pad = pad.reshape(n, 1, 1, s_len)                              # (N, 1, 1, S)
            mask = pad if mask is None else mask + pad                     # (N, nh, L, S)
        return mask

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}")


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _activation(activation):
    if callable(activation):
        return activation
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise ValueError(f"activation must be 'relu', 'gelu' or a callable, got {activation!r}")


class TransformerEncoderLayer(Module):
    r"""Self-attention then a two-layer MLP, each with a residual connection and a LayerNorm
    (after the residual sum, or before the sub-block with norm_first=True): the module docstring.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``: src (S, N, E)
    ((N, S, E) with batch_first) -> the same shape. Sub-modules (torch's names): ``self_attn``,
    ``linear1`` (F, E), ``dropout``, ``linear2`` (E, F), ``norm1``, ``norm2``, ``dropout1``,
    ``dropout2``.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)         # W_1 (F, E)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)         # W_2 (E, F)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src                                                            # (S, N, E)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x                                                           # (S, N, E)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=bool(is_causal))[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        h = self.dropout(self.activation(self.linear1(x)))                 # (S, N, F)
        return self.dropout2(self.linear2(h))                              # (S, N, E)


class TransformerDecoderLayer(Module):
    r"""Self-attention, cross-attention to the encoder's output ``memory``, then the MLP; each
    with a residual connection and a LayerNorm (the module docstring).

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``: tgt (L, N, E),
    memory (S, N, E) (batch first with batch_first) -> (L, N, E). Sub-modules (torch's names):
    ``self_attn``, ``multihead_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``,
    ``norm2``, ``norm3``, ``dropout1``, ``dropout2``, ``dropout3``.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)         # W_1 (F, E)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)         # W_2 (E, F)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt                                                            # (L, N, E)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                    memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                               memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x                                                           # (L, N, E)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=bool(is_causal))[0]
        return self.dropout1(x)

    def forward_cached(self, x, memory, past, memory_mask=None, memory_key_padding_mask=None):
        r"""The layer on the new positions only, batch-first whatever ``batch_first`` says:
        x (N, L, E) holds target positions t..t+L-1, ``past`` = (k, v, k_mem, v_mem) this
        layer's cached keys and values (k, v (N, nh, t, hs), or None when t = 0; k_mem, v_mem
        (N, nh, S, hs), or None to project ``memory`` (N, S, E) now). Returns (y (N, L, E),
        (k, v, k_mem, v_mem)) with k, v grown to t + L positions. Self-attention is causal:
        new position t+i sees positions 0..t+i."""
        past_k, past_v, k_mem, v_mem = past
        l_new = x.shape[1]
        t = 0 if past_k is None else past_k.shape[2]
        sa, ca = self.self_attn, self.multihead_attn

        def sa_block(h):
            k = sa._project(h, 1)                                          # (N, nh, L, hs)
            v = sa._project(h, 2)                                          # (N, nh, L, hs)
            if past_k is not None:
                k = concatenate([past_k, k], axis=2)                       # (N, nh, t+L, hs)
                v = concatenate([past_v, v], axis=2)                       # (N, nh, t+L, hs)
            future = None                                  # one new position sees every key
            if l_new > 1:
                future = np.triu(np.ones((l_new, t + l_new), dtype=bool), k=t + 1)  # (L, t+L)
            y = sa._attend_heads(sa._project(h, 0), k, v, None, False, future, True,
                                 False)[0]                                 # (N, L, E)
            return self.dropout1(y), k, v

        def mha_block(h):
            y = ca._attend_heads(ca._project(h, 0), k_mem, v_mem, memory_key_padding_mask,
                                 False, memory_mask, True, False)[0]       # (N, L, E)
            return self.dropout2(y)

        if k_mem is None:
            k_mem = ca._project(memory, 1)                                 # (N, nh, S, hs)
            v_mem = ca._project(memory, 2)                                 # (N, nh, S, hs)
        if self.norm_first:
            y, k, v = sa_block(self.norm1(x))
            x = x + y
            x = x + mha_block(self.norm2(x))
            x = x + self._ff_block(self.norm3(x))
        else:
            y, k, v = sa_block(x)
            x = self.norm1(x + y)
            x = self.norm2(x + mha_block(x))
            x = self.norm3(x + self._ff_block(x))
        return x, (k, v, k_mem, v_mem)                                     # (N, L, E)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, memory, memory, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=bool(is_causal))[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        h = self.dropout(self.activation(self.linear1(x)))                 # (L, N, F)
        return self.dropout3(self.linear2(h))                              # (L, N, E)


def _is_causal_mask(mask, size):
    r"""True when ``mask`` (a Tensor or array, bool or float) is the (size, size) causal mask."""
    data = backend.to_numpy(_data(mask)) if mask is not None else None
    if data is None or data.shape != (size, size):
        return False
    future = np.triu(np.ones((size, size), dtype=bool), k=1)              # (T, T) j > i
    if data.dtype == bool:
        return bool((data == future).all())
    return bool((np.isneginf(data) == future).all() and (data[~future] == 0).all())


class TransformerEncoder(Module):
    r"""``num_layers`` independent copies of ``encoder_layer`` (``layers.0``, ``layers.1``, ...),
    then ``norm`` if given. ``forward(src, mask=None, src_key_padding_mask=None,
    is_causal=None)``: is_causal=None means "True if mask is the causal mask", as in torch."""

    def __init__(self, encoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        if is_causal is None:
            first = self.layers[0].self_attn.batch_first if len(self.layers) else False
            is_causal = _is_causal_mask(mask, src.shape[1 if first and src.ndim == 3 else 0])
        x = src                                                            # (S, N, E)
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=is_causal)
        return self.norm(x) if self.norm is not None else x                # (S, N, E)


class KVCache:
    r"""The keys and values a TransformerDecoder has computed, kept for its next positions.

    Per decoder layer l: ``keys[l]``, ``values[l]`` (N, nh, t, hs), the self-attention's k and v
    of the t target positions decoded so far, and ``memory_keys[l]``, ``memory_values[l]``
    (N, nh, S, hs), the cross-attention's k and v of the encoder's output, computed once (None
    before the first step). Always batch-first, whatever the layers' ``batch_first``. A cache is
    a value: ``TransformerDecoder.forward(..., cache=cache)`` returns a new one and leaves the
    given one as it was; ``TransformerDecoder.new_cache()`` makes an empty one.

    Decoding position t+i with the cache computes, per head h,

        k_h = concat(keys[l]_h, x_new W_k^T + b_k)        (N, t + L, hs)
        P_h = softmax(q_h k_h^T / sqrt(hs) + causal)       causal: -inf where key j > t + i

    which are the rows t..t+L-1 of the full decoder's attention: the same numbers, without
    recomputing the past positions' k and v (and the memory's) at every step.
    """

    def __init__(self, keys, values, memory_keys, memory_values):
        self.keys, self.values = tuple(keys), tuple(values)
        self.memory_keys, self.memory_values = tuple(memory_keys), tuple(memory_values)

    @property
    def length(self):
        r"""t, the number of target positions cached (0 when empty)."""
        return 0 if not self.keys or self.keys[0] is None else self.keys[0].shape[2]

    def reorder(self, index):
        r"""A cache whose batch row i is row ``index[i]`` of this one (index: ints (N',)); beam
        search calls it when beams are reordered, duplicated or dropped."""
        index = np.asarray(backend.to_numpy(_data(index)), dtype=np.int64)  # (N',)

        def take(x):
            if x is None:
                return None
            return x[backend.to_device(index, x.device)]                  # (N', nh, t|S, hs)

        return KVCache(*([take(x) for x in group] for group in
                         (self.keys, self.values, self.memory_keys, self.memory_values)))

    def __repr__(self):
        return f"KVCache(layers={len(self.keys)}, length={self.length})"


class TransformerDecoder(Module):
    r"""``num_layers`` independent copies of ``decoder_layer``, then ``norm`` if given.
    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False, cache=None)``.

    With ``cache`` (a KVCache, e.g. ``new_cache()``) the decoder runs incrementally: tgt holds
    only the L new target positions t..t+L-1 (t = cache.length; (L, N, E), or (N, L, E) with
    batch_first, or (L, E)) and forward returns ``(y, cache)``: y the output of those positions
    (tgt's shape) and the cache grown by them. Self-attention is causal (tgt_mask and
    tgt_key_padding_mask must be None); memory is read on the first call only (it may be None
    afterwards), memory_key_padding_mask (N, S) is needed at every call, memory_mask (L, S) is
    the new rows. The outputs equal the last L rows of the full decoder on all t + L positions
    with the causal tgt_mask.
    """

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def new_cache(self):
        r"""An empty KVCache for this decoder's layers."""
        empty = [None] * len(self.layers)
        return KVCache(empty, empty, empty, empty)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False,
                cache=None):
        if cache is not None:
            if tgt_mask is not None or tgt_key_padding_mask is not None:
                raise ValueError("TransformerDecoder: with a cache the self-attention is causal "
                                 "by construction; tgt_mask and tgt_key_padding_mask must be None")
            return self._forward_cached(tgt, memory, cache, memory_mask, memory_key_padding_mask)
        if tgt_is_causal is None:
            first = self.layers[0].self_attn.batch_first if len(self.layers) else False
            tgt_is_causal = _is_causal_mask(tgt_mask,
                                            tgt.shape[1 if first and tgt.ndim == 3 else 0])
        x = tgt                                                            # (L, N, E)
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return self.norm(x) if self.norm is not None else x                # (L, N, E)

    def _forward_cached(self, tgt, memory, cache, memory_mask, memory_key_padding_mask):
        if len(cache.keys) != len(self.layers):
            raise ValueError(f"TransformerDecoder: the cache has {len(cache.keys)} layers, the "
                             f"decoder {len(self.layers)}")
        batch_first = self.layers[0].self_attn.batch_first if len(self.layers) else False
        batched = tgt.ndim == 3
        if memory is None and any(k is None for k in cache.memory_keys):
            raise ValueError("TransformerDecoder: the first call with a cache needs memory")
        if not batched:                                    # (L, E) -> (1, L, E)
            x = tgt.reshape(1, *tgt.shape)
            memory = None if memory is None else memory.reshape(1, *memory.shape)  # (1, S, E)
            if memory_key_padding_mask is not None:
                memory_key_padding_mask = np.reshape(_data(memory_key_padding_mask), (1, -1))
        elif not batch_first:                              # (L, N, E) -> (N, L, E)
            x = tgt.transpose(1, 0, 2)
            memory = None if memory is None else memory.transpose(1, 0, 2)  # (N, S, E)
        else:
            x = tgt                                                        # (N, L, E)
        caches = []
        for layer, *past in zip(self.layers, cache.keys, cache.values, cache.memory_keys,
                                cache.memory_values):
            x, past = layer.forward_cached(x, memory, past, memory_mask=memory_mask,
                                           memory_key_padding_mask=memory_key_padding_mask)
            caches.append(past)                                            # (k, v, k_mem, v_mem)
        if self.norm is not None:
            x = self.norm(x)                                               # (N, L, E)
        if not batched:
            x = x.reshape(*x.shape[1:])                                    # (L, E)
        elif not batch_first:
            x = x.transpose(1, 0, 2)                                       # (L, N, E)
        return x, KVCache(*zip(*caches)) if caches else cache


class Transformer(Module):
    r"""torch.nn.Transformer: an encoder (with a final LayerNorm ``encoder.norm``) reads src,
    a decoder (with ``decoder.norm``) reads tgt and attends to the encoder's output.

    ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
    src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
    src_is_causal=None, tgt_is_causal=None, memory_is_causal=False)``: src (S, N, E), tgt
    (L, N, E) (batch first with batch_first) -> (L, N, E). Masks as in MultiheadAttention:
    src_mask (S, S), tgt_mask (L, L), memory_mask (L, S), key padding masks (N, S) or (N, L).
    Every weight matrix is initialised xavier-uniform, as torch does.
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True):
        super().__init__()
        args = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                    layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                    norm_first=norm_first, bias=bias)
        self.encoder = TransformerEncoder(TransformerEncoderLayer(d_model, nhead, **args),
                                          num_encoder_layers,
                                          LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.decoder = TransformerDecoder(TransformerDecoderLayer(d_model, nhead, **args),
                                          num_decoder_layers,
                                          LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for p in self.parameters():
            if p.ndim > 1:
                p.data = backend.to_device(_xavier_uniform(p.shape), p.device)  # (out, in)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        batch_axis = 0 if self.batch_first else 1
        if src.ndim == 3 and src.shape[batch_axis] != tgt.shape[batch_axis]:
            raise ValueError(f"Transformer: src and tgt need the same batch size, got shapes "
                             f"{src.shape} and {tgt.shape} (batch_first={self.batch_first})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"Transformer: src and tgt need {self.d_model} features (d_model), "
                             f"got shapes {src.shape} and {tgt.shape}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)                     # (S, N, E)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)             # (L, N, E)

    def encode(self, src, src_mask=None, src_key_padding_mask=None, src_is_causal=None):
        r"""The encoder's output ``memory`` (S, N, E) ((N, S, E) with batch_first), as forward
        computes it. Incremental decoding then runs ``decoder(tgt_new, memory, ...,
        cache=decoder.new_cache())`` step by step (TransformerDecoder, KVCache)."""
        return self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                            is_causal=src_is_causal)                       # (S, N, E)

    @staticmethod
    def generate_square_subsequent_mask(sz, dtype=np.float32):
        r"""The (sz, sz) float causal mask: 0 on and below the diagonal, -inf above it."""
        return Tensor(np.triu(np.full((sz, sz), -np.inf, dtype=dtype), k=1))  # (sz, sz)


class PositionalEncoding(Module):
    r"""Adds the sinusoidal position table, then dropout: y = dropout(x + PE[:T]).

        PE[pos, 2i]     = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))                  PE (max_len, D)

    x is (T, B, D) (torch's sequence-first layout, as nn.Transformer's default), or (B, T, D)
    with batch_first=True. ``pe`` (max_len, D) is a float32 constant, not a Parameter: it is in
    no state dict and gets no gradient.
    """

    def __init__(self, d_model, max_len=5000, dropout=0.1, batch_first=False):
        super().__init__()
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = Dropout(dropout)
        pos = np.arange(max_len, dtype=np.float64)[:, None]                # (max_len, 1)
        rate = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)  # (ceil(D/2),)
        angle = pos * rate                                                 # (max_len, ceil(D/2))
        pe = np.zeros((max_len, d_model))                                  # (max_len, D)
        pe[:, 0::2] = np.sin(angle)
        pe[:, 1::2] = np.cos(angle[:, :d_model // 2])
        self.pe = pe.astype(np.float32)                                    # (max_len, D)

    def forward(self, x, offset=0):
        r"""x + PE[offset:offset + T], then dropout; offset > 0 places x after ``offset``
        positions already seen (incremental decoding with a KVCache)."""
        t = x.shape[1 if self.batch_first else 0]
        if offset + t > self.max_len:
            raise ValueError(f"PositionalEncoding: positions up to {offset + t} > "
                             f"max_len={self.max_len}")
        pe = self.pe[offset:offset + t].astype(x.dtype)                    # (T, D)
        pe = pe[None] if self.batch_first else pe[:, None]                 # (1, T, D) | (T, 1, D)
        return self.dropout(x + Tensor(backend.to_device(pe, x.device)))   # like x

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"
