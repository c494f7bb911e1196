r"""GPT: a decoder-only transformer language model, GPT-2's architecture (after nanoGPT).

Dimension letters: B batch, T time (<= block_size), C channels (n_embd), V vocabulary size,
nh heads, hs = C / nh head size, L layers.

    x_0 = wte[idx] + wpe[0..T-1]                         token + position embeddings (B, T, C)
    for each block l = 1..L  (pre-LayerNorm residual blocks):
        x = x + attn(ln_1(x))                            causal multi-head self-attention
        x = x + mlp(ln_2(x)),  mlp(u) = gelu(u W_fc^T + b_fc) W_proj^T + b_proj   (C -> 4C -> C)
    logits = ln_f(x) wte^T                               lm_head tied to the token embedding (V)
    loss = mean over positions of -log softmax(logits)[target]

LayerNorm: ln(x) = (x - mean(x)) / sqrt(var(x) + eps) * w + b over C. Attention:
softmax(q k^T / sqrt(hs) + mask) v with mask[i, j] = -inf for j > i. The forward and backward
pass of one block, step by step: docs/gpt.md.

Parameter names are GPT-2's (Hugging Face / nanoGPT layout), so checkpoints map one to one:

    transformer.wte.weight (V, C)   transformer.wpe.weight (block_size, C)
    transformer.h.{l}.ln_1.{weight,bias} (C,)   .attn.c_attn.{weight (3C, C), bias (3C,)}
    .attn.c_proj.{weight (C, C), bias (C,)}    .ln_2.{weight,bias} (C,)
    .mlp.c_fc.{weight (4C, C), bias (4C,)}      .mlp.c_proj.{weight (C, 4C), bias (C,)}
    transformer.ln_f.{weight,bias} (C,)          lm_head.weight (V, C) = transformer.wte.weight

Hugging Face's GPT-2 files store the four Linear weights of each block (``attn.c_attn``,
``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``) transposed, as Conv1D (in, out) matrices:
``GPT.from_pretrained`` and ``save_pretrained`` transpose exactly those four (docs/generation.md).

Generation (``generate``): greedy, temperature, top-k, top-p, repetition penalty, beam search,
eos, left-padded batches, with a KV cache (``forward_cached``) that gives the logits of
recomputing the whole context at every step (docs/generation.md).
"""

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinygrad_llm import backend
from tinygrad_llm.checkpoint import (
    CheckpointError,
    atomic_write,
    load_safetensors,
    save_safetensors,
)
from tinygrad_llm.decoding import beam_search
from tinygrad_llm.nn import functional as F
from tinygrad_llm.nn import init
from tinygrad_llm.nn.attention import CausalSelfAttention
from tinygrad_llm.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear
from tinygrad_llm.nn.module import Module, ModuleList
from tinygrad_llm.nn.transformer import KVCache
from tinygrad_llm.optim import AdamW
from tinygrad_llm.sampling import check_sampling_args, repetition_penalty, sample_next
from tinygrad_llm.tensor import Tensor, no_grad

__all__ = ["GPTConfig", "GPT", "Block", "MLP"]


@dataclass
class GPTConfig:
    r"""The sizes of a GPT. ``bias`` adds biases to Linear and LayerNorm layers (GPT-2 has them);
    ``fused_attention`` picks the fused attention Function (the fast path) or its composition of
    primitives (to read and to test against).

    ``activation`` is the MLP's GELU: ``"gelu"``, the exact x Phi(x) (nanoGPT's nn.GELU(), the
    default), or ``"gelu_new"``, the tanh approximation x (1 + tanh(sqrt(2/pi) (x + 0.044715
    x^3))) / 2 that GPT-2 was trained with (Hugging Face's name for it). ``layer_norm_eps`` is
    the eps of every LayerNorm (1e-5, GPT-2's and torch's).
    """

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    fused_attention: bool = True
    activation: str = "gelu"
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GPTConfig: {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} must be divisible by "
                             f"n_head={self.n_head}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in _GELU_APPROXIMATE:
            raise ValueError(f"GPTConfig: activation must be 'gelu' or 'gelu_new', got "
                             f"{self.activation!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"GPTConfig: layer_norm_eps must be > 0, got {self.layer_norm_eps}")

    def to_dict(self):
        return asdict(self)


# GPTConfig.activation -> the ``approximate`` argument of the GELU Function (ops.nn.GELU)
_GELU_APPROXIMATE = {"gelu": "none", "gelu_new": "tanh"}


class MLP(Module):
    r"""mlp(x) = dropout(gelu(x W_fc^T + b_fc) W_proj^T + b_proj):  (B, T, C) -> 4C -> C.

    ``c_fc.weight`` W_fc (4C, C), ``c_proj.weight`` W_proj (C, 4C). GELU is the exact one
    (x Phi(x)) with ``activation="gelu"``, as nanoGPT's nn.GELU(); the tanh approximation with
    ``activation="gelu_new"``, as GPT-2 (GPTConfig).
    """

    def __init__(self, config):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)   # (4C, C)
        self.gelu = GELU(_GELU_APPROXIMATE[config.activation])
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias)  # (C, 4C)
        self.dropout = Dropout(config.dropout)

    def forward(self, x):
        h = self.gelu(self.c_fc(x))                                         # (B, T, 4C)
        return self.dropout(self.c_proj(h))                                 # (B, T, C)


class Block(Module):
    r"""One pre-LayerNorm transformer block:

        x = x + attn(ln_1(x))        (B, T, C)
        x = x + mlp(ln_2(x))         (B, T, C)

    The residual adds copy the gradient unchanged to both branches (dx = dy + dbranch).
    """

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config.n_embd, config.n_head, dropout=config.dropout,
                                        bias=config.bias, fused=config.fused_attention)
        self.ln_2 = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, attention_mask=None):
        x = x + self.attn(self.ln_1(x), attention_mask)                     # (B, T, C)
        return x + self.mlp(self.ln_2(x))                                   # (B, T, C)

    def forward_cached(self, x, past=None, attention_mask=None):
        r"""The block on new positions x (B, L, C) given this layer's past keys and values
        (CausalSelfAttention.forward_cached); returns (x (B, L, C), (k, v))."""
        y, past = self.attn.forward_cached(self.ln_1(x), past, attention_mask)
        x = x + y                                                           # (B, L, C)
        return x + self.mlp(self.ln_2(x)), past                             # (B, L, C)


class _Transformer(Module):
    """The ``transformer.*`` container of GPT-2's names (a ModuleDict in nanoGPT)."""

    def __init__(self, config):
        super().__init__()
        self.wte = Embedding(config.vocab_size, config.n_embd)              # (V, C)
        self.wpe = Embedding(config.block_size, config.n_embd)              # (block_size, C)
        self.drop = Dropout(config.dropout)
        self.h = ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)


class GPT(Module):
    r"""The GPT language model. ``logits, loss = model(idx, targets)``; see the module docstring.

    Initialisation (GPT-2's): every Linear and Embedding weight ~ N(0, 0.02^2), biases 0,
    LayerNorms weight 1 and bias 0; the two residual projections of each block (``attn.c_proj``
    and ``mlp.c_proj``) ~ N(0, (0.02 / sqrt(2 L))^2), so the residual stream's variance does not
    grow with depth. Weights come from the seeded host generator (``tinygrad_llm.manual_seed``).
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = _Transformer(config)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)  # (V, C)
        self.lm_head.weight = self.transformer.wte.weight                   # tied: one Parameter
        self._init_weights()

    def _init_weights(self):
        std_proj = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                data = init.normal(p.shape, std=std_proj)
            elif name.endswith(".bias"):
                data = init.zeros(p.shape)
            elif ".ln_" in name:                                            # LayerNorm weights
                data = init.ones(p.shape)
            else:                                                           # Linear, Embedding
                data = init.normal(p.shape, std=0.02)
            p.data = backend.to_device(data, p.device)

    def num_parameters(self, non_embedding=True):
        r"""Parameter count; by default without the position embedding (nanoGPT's convention;
        the token embedding is counted once, as the tied lm_head)."""
        n = sum(p.size for p in self.parameters())
        return n - self.transformer.wpe.weight.size if non_embedding else n

    def forward(self, idx, targets=None, attention_mask=None):
        r"""idx (B, T) int -> logits (B, T, V), and the mean cross-entropy against targets (B, T)
        (positions whose target is -100 are ignored), or None without targets.
        ``attention_mask`` (B, T) (1 or True for a real token, 0 for left padding) or None:
        hidden_states."""
        x = self.hidden_states(idx, attention_mask)                         # (B, T, C)
        logits = self.lm_head(x)                                            # (B, T, V)
        if targets is None:
            return logits, None
        targets = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
        b, t, v = logits.shape
        if targets.shape != (b, t):
            raise ValueError(f"GPT: targets must have the shape of idx {(b, t)}, got "
                             f"{targets.shape}")
        loss = F.cross_entropy(logits.reshape(b * t, v),                   # (B*T, V)
                               Tensor(targets.reshape(b * t), device=logits.device),
                               ignore_index=-100)
        return logits, loss

    def hidden_states(self, idx, attention_mask=None):
        r"""The final LayerNorm's output (B, T, C), before the lm_head.

        With ``attention_mask`` (B, T) (Hugging Face's: 1 for a token, 0 for padding on the
        left), no position attends to a padding key, and the positions count real tokens only:
        pos = max(cumsum(mask) - 1, 0), so a left-padded row gets the numbers it would get
        alone. Without it, pos = 0..T-1 and the fused attention runs."""
        idx = self._check_idx(idx)
        b, t = idx.shape
        if t > self.config.block_size:
            raise ValueError(f"GPT: cannot forward a sequence of length {t}; the block size "
                             f"is only {self.config.block_size}")
        mask = None if attention_mask is None else self._check_mask(attention_mask, (b, t))
        x = self._embed(idx, 0, mask)                                       # (B, T, C)
        for block in self.transformer.h:
            x = block(x, mask)                                              # (B, T, C)
        return self.transformer.ln_f(x)                                     # (B, T, C)

    def new_cache(self):
        r"""An empty KV cache for ``forward_cached``: a tinygrad_llm.nn.KVCache whose keys[l],
        values[l] will hold layer l's (B, nh, t, hs) keys and values (no memory: a GPT has no
        encoder)."""
        empty = [None] * self.config.n_layer
        return KVCache(empty, empty, empty, empty)

    def forward_cached(self, idx, cache, attention_mask=None):
        r"""Incremental forward: idx (B, L) the tokens at positions t..t+L-1, ``cache`` the keys
        and values of positions 0..t-1 (``new_cache()`` when t = 0), ``attention_mask``
        (B, t + L) for every position so far, or None. Returns (h (B, L, C), the cache grown to
        t + L positions); h equals the last L rows of ``hidden_states`` on all t + L tokens.
        Positions t + L must fit in block_size (``generate`` handles the end of the window)."""
        idx = self._check_idx(idx)
        b, l_new = idx.shape
        t = cache.length
        if t + l_new > self.config.block_size:
            raise ValueError(f"GPT: the cache holds {t} positions; {l_new} more exceed the block "
                             f"size {self.config.block_size}")
        if len(cache.keys) != self.config.n_layer:
            raise ValueError(f"GPT: the cache has {len(cache.keys)} layers, the model "
                             f"{self.config.n_layer}")
        mask = None
        if attention_mask is not None:
            mask = self._check_mask(attention_mask, (b, t + l_new))
        x = self._embed(idx, t, mask)                                       # (B, L, C)
        keys, values = [], []
        for block, k, v in zip(self.transformer.h, cache.keys, cache.values):
            x, (k, v) = block.forward_cached(x, None if k is None else (k, v), mask)
            keys.append(k)                                                  # (B, nh, t+L, hs)
            values.append(v)
        empty = [None] * len(keys)
        return self.transformer.ln_f(x), KVCache(keys, values, empty, empty)  # (B, L, C)

    def _embed(self, idx, t, mask):
        r"""wte[idx] + wpe[pos] for idx (B, L) at positions t..t+L-1 (or, with ``mask``
        (B, t + L), max(cumsum(mask) - 1, 0) of its last L columns), then dropout."""
        device = self.transformer.wte.weight.device
        idx = idx.to(device)
        l_new = idx.shape[1]
        if mask is None:
            pos = np.arange(t, t + l_new)                                   # (L,)
        else:
            pos = np.maximum(np.cumsum(mask, axis=1) - 1, 0)[:, -l_new:]    # (B, L)
        pos = Tensor(backend.to_device(pos, device))
        tok_emb = self.transformer.wte(idx)                                 # (B, L, C)
        pos_emb = self.transformer.wpe(pos)                                 # (L | B, L, C)
        return self.transformer.drop(tok_emb + pos_emb)                     # (B, L, C)

    @staticmethod
    def _check_idx(idx):
        idx = idx if isinstance(idx, Tensor) else Tensor(np.asarray(idx))
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"GPT: idx must be a (B, T) array of integer token ids, got "
                             f"shape {idx.shape} and dtype {idx.dtype}")
        return idx

    @staticmethod
    def _check_mask(mask, shape):
        r"""An attention mask as a (B, T) bool NumPy array, checked: 0/1 (or bool) of ``shape``."""
        mask = backend.to_numpy(mask.data) if isinstance(mask, Tensor) else np.asarray(mask)
        if mask.shape != shape:
            raise ValueError(f"GPT: attention_mask must have shape {shape}, got {mask.shape}")
        if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
            raise ValueError("GPT: attention_mask must hold only 0 (padding) and 1 (token)")
        return mask.astype(bool)                                            # (B, T)

    # ---- generation ---------------------------------------------------------------------------
    @no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None,
                 num_beams=1, length_penalty=1.0, repetition_penalty=1.0, eos_token_id=None,
                 pad_token_id=None, attention_mask=None, use_cache=True, output_logits=False):
        r"""Extend each row of idx (B, T) (or (T,)) by up to ``max_new_tokens`` tokens; returns
        a NumPy int64 array (B, T + n), n <= max_new_tokens. The rules, with their formulas:
        docs/generation.md.

        Each step turns the next-token logits z (B, V) into a token (tinygrad_llm.sampling):
        the repetition penalty (Hugging Face's: z_v / theta if z_v > 0 else z_v * theta for
        every token v already in the row; 1 = off), then temperature=0 takes argmax z (greedy),
        otherwise a token is drawn from softmax(z / temperature) restricted to the ``top_k``
        most likely and/or to the nucleus of mass ``top_p``. ``seed`` makes the draws
        reproducible (otherwise they come from the generator of ``tinygrad_llm.manual_seed``).

        ``eos_token_id``: a row that emits it stops; its later positions get ``pad_token_id``
        (default: eos_token_id), and generation ends when every row has stopped.

        ``num_beams`` > 1 runs beam search (tinygrad_llm.decoding.beam_search, the one beam
        search of the project): each row gets its best hypothesis by s(y) / lp(|y|) with GNMT's
        lp(n) = ((5 + n) / 6) ** length_penalty over the n generated tokens (eos included);
        shorter hypotheses are padded. The repetition penalty applies; temperature, top_k,
        top_p and seed do not (beam search is deterministic).

        ``attention_mask`` (B, T) (1 for a token, 0 for padding) generates a batch of prompts of
        different lengths, left-padded as Hugging Face does: padding is never attended to and
        positions count real tokens only. Each row's last prompt token must be real.

        ``use_cache=True`` keeps every layer's keys and values (a KVCache, B x L x 2 x T x C
        numbers) so that each step runs only the newest token through the model (attending to
        the T cached keys) instead of all T positions: the same logits as recomputing the
        whole context (use_cache=False). The context
        is at most block_size tokens: a longer prompt is cropped to its last block_size tokens
        (the output keeps the whole prompt), and once prompt plus generated tokens pass
        block_size the window slides, every position shifts, and cached keys (computed at
        their old positions) no longer apply: from then on each step recomputes the last
        block_size tokens, exactly as use_cache=False does.

        ``output_logits=True`` returns (ids, logits): the raw next-token logits of every step,
        a list of float64 arrays (rows, V) (B rows; for beam search, the rows it scored).
        Runs in eval mode under no_grad; the previous mode is restored.
        """
        v = self.config.vocab_size
        if int(max_new_tokens) != max_new_tokens or max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be an integer >= 0, got "
                             f"{max_new_tokens}")
        check_sampling_args(temperature, top_k, top_p, repetition_penalty)
        if int(num_beams) != num_beams or num_beams < 1:
            raise ValueError(f"generate: num_beams must be an integer >= 1, got {num_beams}")
        for name, value in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
            if value is not None and not (int(value) == value and 0 <= value < v):
                raise ValueError(f"generate: {name}={value} is outside the vocabulary "
                                 f"[0, {v})")
        pad_token_id = eos_token_id if pad_token_id is None else pad_token_id
        idx = idx.numpy() if isinstance(idx, Tensor) else np.asarray(idx)
        idx = idx.reshape(1, -1) if idx.ndim == 1 else idx
        if idx.ndim != 2 or idx.shape[1] == 0 or idx.dtype.kind not in "iu":
            raise ValueError(f"generate: idx must be (B, T) integer token ids with T >= 1, got "
                             f"shape {idx.shape} and dtype {idx.dtype}")
        if idx.min() < 0 or idx.max() >= v:
            raise ValueError(f"generate: token ids must be in [0, {v}), got "
                             f"[{idx.min()}, {idx.max()}]")
        idx = idx.astype(np.int64)
        mask = None
        if attention_mask is not None:
            mask = self._check_mask(attention_mask, idx.shape)
            if not mask[:, -1].all():
                raise ValueError("generate: attention_mask must pad on the left (every row's "
                                 "last prompt token real), as generation appends on the right")
        state = (self.new_cache() if use_cache else None, mask)
        rng = np.random.default_rng(seed) if seed is not None else backend.host_rng()
        logits = [] if output_logits else None
        was_training = self.training
        self.eval()
        try:
            if num_beams > 1:
                ids = self._beam_generate(idx, max_new_tokens, num_beams, length_penalty,
                                          repetition_penalty, eos_token_id, pad_token_id,
                                          state, logits)
            else:
                ids = self._sample_generate(idx, max_new_tokens, temperature, top_k, top_p,
                                            repetition_penalty, eos_token_id, pad_token_id,
                                            state, rng, logits)
        finally:
            self.train(was_training)
        return (ids, logits) if output_logits else ids

    def _next_logits(self, ids, state):
        r"""The next-token logits (M, V) float64 after each row of ids (M, t), and the new state.

        state = (cache, mask): a KVCache holding the first cache.length positions of each row
        (None: recompute the context), and the prompt's attention mask (None: no padding),
        extended here with ones for the generated tokens. While t <= block_size the cache is
        fed only the positions it lacks; past block_size the window slides, the cache is
        dropped and the last block_size tokens are recomputed (the generate docstring)."""
        cache, mask = state
        block = self.config.block_size
        t = ids.shape[1]
        if mask is not None and mask.shape[1] < t:                          # generated: real
            grown = np.ones((mask.shape[0], t - mask.shape[1]), dtype=bool)
            mask = np.concatenate([mask, grown], axis=1)                    # (M, t)
        if cache is not None and t <= block:
            h, cache = self.forward_cached(ids[:, cache.length:], cache, mask)  # (M, L, C)
        else:
            cache = None
            h = self.hidden_states(ids[:, -block:],
                                   None if mask is None else mask[:, -block:])  # (M, t', C)
        z = self.lm_head(h[:, -1:, :])                                      # (M, 1, V)
        return z.numpy()[:, 0, :].astype(np.float64), (cache, mask)        # (M, V)

    def _sample_generate(self, idx, max_new_tokens, temperature, top_k, top_p, penalty,
                         eos_token_id, pad_token_id, state, rng, logits):
        r"""Greedy or sampled generation, one token per row per step."""
        ids = idx                                                           # (B, T)
        done = np.zeros(ids.shape[0], dtype=bool)                           # (B,) eos emitted
        for _ in range(max_new_tokens):
            z, state = self._next_logits(ids, state)                        # (B, V)
            if logits is not None:
                logits.append(z)
            z = repetition_penalty(z, ids, penalty, state[1])
            nxt = sample_next(z, rng, temperature, top_k, top_p)            # (B,)
            if eos_token_id is not None:
                nxt = np.where(done, pad_token_id, nxt)                     # stopped rows: pad
                done |= nxt == eos_token_id
            ids = np.concatenate([ids, nxt[:, None]], axis=1)               # (B, t + 1)
            if done.all():
                break
        return ids

    def _beam_generate(self, idx, max_new_tokens, num_beams, length_penalty, penalty,
                       eos_token_id, pad_token_id, state, logits):
        r"""Beam search over the next ``max_new_tokens`` tokens of each row of idx (B, T); the
        cache and the mask follow the beams as they are reordered."""
        def step(ids, state):
            z, state = self._next_logits(ids, state)                        # (M, V)
            if logits is not None:
                logits.append(z)
            z = repetition_penalty(z, ids, penalty, state[1])
            z = z - z.max(axis=-1, keepdims=True)
            return z - np.log(np.exp(z).sum(axis=-1, keepdims=True)), state  # log_softmax

        def reorder(state, index):
            cache, mask = state
            return (None if cache is None else cache.reorder(index),
                    None if mask is None else mask[index])

        sequences, _ = beam_search(step, idx, beam_size=num_beams,
                                   max_len=idx.shape[1] + max_new_tokens, eos_id=eos_token_id,
                                   length_penalty=length_penalty, state=state, reorder=reorder)
        longest = max(len(s) for s in sequences)
        fill = 0 if pad_token_id is None else pad_token_id    # only eos makes lengths differ
        out = np.full((len(sequences), longest), fill, dtype=np.int64)      # (B, T + n)
        for row, seq in enumerate(sequences):
            out[row, :len(seq)] = seq
        return out

    # ---- Hugging Face checkpoints -------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path, dtype=np.float32, device="cpu"):
        r"""A GPT with the weights of a Hugging Face GPT-2 directory: ``config.json`` and
        ``model.safetensors``, as ``GPT2LMHeadModel.save_pretrained`` (or ``save_pretrained``
        here) writes them. Returned in eval mode, as Hugging Face does.

        The tensor names may be GPT2LMHeadModel's (``transformer.h.0.attn.c_attn.weight``) or
        GPT2Model's (``h.0.attn.c_attn.weight``). The four Conv1D weights of each block are
        stored (in, out) and are transposed to our (out, in); every other tensor is taken as it
        is. ``lm_head.weight``, when the file has it, must equal ``wte`` (the head is tied); the
        causal-mask buffers ``attn.bias`` / ``attn.masked_bias`` of old files are skipped.
        Step by step: docs/generation.md.

        A missing directory or file, a config that is not GPT-2's (or a GPT-2 variant this model
        does not implement), a tensor that is missing, unknown or of the wrong shape raise
        ``tinygrad_llm.checkpoint.CheckpointError`` naming the file and the tensor.
        """
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"GPT.from_pretrained: {path} is not a directory (it needs "
                                  f"config.json and model.safetensors)")
        config_file, weights_file = path / "config.json", path / "model.safetensors"
        for f in (config_file, weights_file):
            if not f.is_file():
                raise CheckpointError(f"GPT.from_pretrained: no {f.name} in {path}")
        try:
            hf = json.loads(config_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"GPT.from_pretrained: {config_file} is not JSON: {e}") \
                from None
        config = _config_from_hf(hf, config_file)
        arrays, _ = load_safetensors(weights_file)
        state = _state_from_hf(arrays, config, weights_file)
        model = cls(config).to(dtype=dtype)
        model.load_state_dict(state)
        return model.to(device).eval()

    def save_pretrained(self, path, bos_token_id=None, eos_token_id=None):
        r"""Write ``config.json`` and ``model.safetensors`` into the directory ``path`` (made if
        needed), in the layout ``transformers.GPT2LMHeadModel.from_pretrained`` loads: GPT-2's
        config keys, GPT2LMHeadModel's tensor names, the four Conv1D weights transposed to
        (in, out), no ``lm_head.weight`` (tied to ``wte``). Weights keep their dtype. Each file
        is written atomically.

        A model without biases (``bias=False``) is written with zero biases, which Hugging Face
        needs and which change nothing; our own config rides along in config.json under
        ``"tinygrad_llm"``, so ``from_pretrained`` gives back exactly this model.
        ``bos_token_id`` and ``eos_token_id`` go into config.json for Hugging Face's generate
        (GPT-2's are both 50256); None writes null.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_safetensors(path / "model.safetensors", _state_to_hf(self), {"format": "pt"})
        hf = dict(_config_to_hf(self.config), bos_token_id=bos_token_id,
                  eos_token_id=eos_token_id)
        text = json.dumps(hf, indent=2) + "\n"
        with atomic_write(path / "config.json", "w", encoding="utf-8") as f:
            f.write(text)

    # ---- optimizer ----------------------------------------------------------------------------
    def configure_optimizers(self, weight_decay, learning_rate, betas=(0.9, 0.95), eps=1e-8):
        r"""AdamW with two groups: weight decay on every 2-D weight (Linear and Embedding
        matrices), none on biases and LayerNorm weights (nanoGPT's rule)."""
        params = self.parameters()
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return AdamW(groups, lr=learning_rate, betas=betas, eps=eps)


# ---- Hugging Face GPT-2 layout ----------------------------------------------------------------
# The four Linear layers that Hugging Face's GPT-2 stores as Conv1D, weight (in, out).
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_HF_ACTIVATION = {"gelu": "gelu", "gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new"}
_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)$")   # causal masks in old files


def _config_from_hf(hf, file):
    r"""GPTConfig from a Hugging Face GPT-2 config.json dict; errors name ``file`` and the key."""
    def fail(msg):
        raise CheckpointError(f"GPT.from_pretrained: {file}: {msg}")

    if not isinstance(hf, dict):
        fail("not a JSON object")
    if hf.get("model_type") != "gpt2":
        fail(f"model_type is {hf.get('model_type')!r}, not 'gpt2' (only GPT-2 checkpoints load)")
    sizes = {}
    for ours, theirs, default in (("vocab_size", "vocab_size", 50257),
                                  ("block_size", "n_positions", 1024),
                                  ("n_layer", "n_layer", 12), ("n_head", "n_head", 12),
                                  ("n_embd", "n_embd", 768)):
        value = hf.get(theirs, default)     # a missing key means GPT-2's default, as in HF
        if not isinstance(value, int):
            fail(f"{theirs} is not an integer ({value!r})")
        sizes[ours] = value
    if hf.get("n_inner") not in (None, 4 * sizes["n_embd"]):
        fail(f"n_inner={hf['n_inner']}; this GPT's MLP is 4 * n_embd = {4 * sizes['n_embd']}")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in _HF_ACTIVATION:
        fail(f"activation_function {activation!r} is not one of {sorted(_HF_ACTIVATION)}")
    for key, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                      ("add_cross_attention", False), ("tie_word_embeddings", True)):
        if hf.get(key, want) != want:
            fail(f"{key}={hf[key]} is not supported (this GPT needs {key}={want})")
    config = dict(sizes, dropout=float(hf.get("resid_pdrop", 0.1)),
                  activation=_HF_ACTIVATION[activation],
                  layer_norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)))
    ours = hf.get("tinygrad_llm")
    if isinstance(ours, dict):                      # written by save_pretrained: exact config
        try:
            exact = GPTConfig(**ours)
        except (TypeError, ValueError) as e:
            fail(f"the 'tinygrad_llm' config is not a GPTConfig: {e}")
        for key, value in config.items():
            if key != "dropout" and getattr(exact, key) != value:
                fail(f"'tinygrad_llm' says {key}={getattr(exact, key)!r} but the GPT-2 keys "
                     f"say {value!r}")
        return exact
    try:
        return GPTConfig(**config)
    except ValueError as e:
        fail(str(e))


def _config_to_hf(config):
    r"""The config.json dict of GPT2LMHeadModel for a GPTConfig (ours under "tinygrad_llm")."""
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": config.vocab_size, "n_positions": config.block_size,
            "n_embd": config.n_embd, "n_layer": config.n_layer, "n_head": config.n_head,
            "n_inner": None, "activation_function": config.activation,
            "resid_pdrop": config.dropout, "embd_pdrop": config.dropout,
            "attn_pdrop": config.dropout, "layer_norm_epsilon": config.layer_norm_eps,
            "initializer_range": 0.02, "scale_attn_weights": True,
            "tie_word_embeddings": True, "tinygrad_llm": config.to_dict()}


def _state_from_hf(arrays, config, file):
    r"""Our state dict from the tensors of a Hugging Face GPT-2 safetensors file.

    Names lose their ``transformer.`` prefix (GPT2LMHeadModel) or have none (GPT2Model); each
    Conv1D weight (in, out) becomes our Linear weight (out, in) = its transpose."""
    expected = _expected_shapes(config)                    # {short name: our shape}
    found, head = {}, None
    for name, value in arrays.items():
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        if short == "lm_head.weight":
            head = value
        elif _BUFFER.match(short):
            continue
        elif short not in expected:
            raise CheckpointError(f"GPT.from_pretrained: {file}: unexpected tensor {name!r} "
                                  f"(not part of GPT-2)")
        else:
            found[short] = value
    state = {}
    for short, shape in expected.items():
        if short not in found:
            if not config.bias and short.endswith(".bias"):
                continue
            raise CheckpointError(f"GPT.from_pretrained: {file}: missing tensor "
                                  f"'transformer.{short}' (or {short!r})")
        value = found[short]
        conv1d = short.endswith(_CONV1D)
        want = shape[::-1] if conv1d else shape                # Conv1D is stored (in, out)
        if tuple(value.shape) != want:
            raise CheckpointError(f"GPT.from_pretrained: {file}: tensor {short!r} has shape "
                                  f"{tuple(value.shape)}, expected {want}"
                                  + (" (a Conv1D weight, stored (in, out))" if conv1d else ""))
        if not config.bias and short.endswith(".bias"):
            if np.any(value != 0):
                raise CheckpointError(f"GPT.from_pretrained: {file}: tensor {short!r} is not "
                                      f"zero but the config says bias=False")
            continue
        state[f"transformer.{short}"] = value.T if conv1d else value    # (out, in)
    wte = state["transformer.wte.weight"]
    if head is not None and (head.shape != wte.shape or not np.array_equal(head, wte)):
        raise CheckpointError(f"GPT.from_pretrained: {file}: lm_head.weight differs from "
                              f"wte.weight; this GPT ties them")
    state["lm_head.weight"] = wte
    return state


def _expected_shapes(config):
    r"""{name without ``transformer.``: our shape} of a GPT-2 with biases (Hugging Face's
    files always have them)."""
    c, v = config.n_embd, config.vocab_size
    shapes = {"wte.weight": (v, c), "wpe.weight": (config.block_size, c)}
    for layer in range(config.n_layer):
        h = f"h.{layer}."
        shapes.update({h + "ln_1.weight": (c,), h + "ln_1.bias": (c,),
                       h + "attn.c_attn.weight": (3 * c, c), h + "attn.c_attn.bias": (3 * c,),
                       h + "attn.c_proj.weight": (c, c), h + "attn.c_proj.bias": (c,),
                       h + "ln_2.weight": (c,), h + "ln_2.bias": (c,),
                       h + "mlp.c_fc.weight": (4 * c, c), h + "mlp.c_fc.bias": (4 * c,),
                       h + "mlp.c_proj.weight": (c, 4 * c), h + "mlp.c_proj.bias": (c,)})
    shapes.update({"ln_f.weight": (c,), "ln_f.bias": (c,)})
    return shapes


def _state_to_hf(model):
    r"""{GPT2LMHeadModel name: NumPy array} of ``model``: Conv1D weights transposed to
    (in, out), zero biases where the model has none, no lm_head (tied)."""
    state = model.state_dict()
    out = {}
    for short, shape in _expected_shapes(model.config).items():
        name = f"transformer.{short}"
        if name in state:
            value = state[name]
            out[name] = np.ascontiguousarray(value.T) if short.endswith(_CONV1D) else value
        else:                                              # bias=False: zeros, as no bias
            out[name] = np.zeros(shape, dtype=state["transformer.wte.weight"].dtype)
    return out
