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

(OpenAI's own TensorFlow-era files store the Linear weights transposed, as Conv1D (in, out).)
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from tinygrad_llm import backend
from tinygrad_llm.decoding import beam_search
from tinygrad_llm.nn import functional as F
from tinygrad_llm.nn import init
from tinygrad_llm.nn.attention import CausalSelfAttention
from tinygrad_llm.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear
from tinygrad_llm.nn.module import Module, ModuleList
from tinygrad_llm.optim import AdamW
from tinygrad_llm.tensor import Tensor, no_grad

__all__ = ["GPTConfig", "GPT", "Block", "MLP"]


@dataclass
class GPTConfig:
    r"""The sizes of a GPT. ``bias`` adds biases to Linear and LayerNorm layers (GPT-2 has them);
    ``fused_attention`` picks the fused attention Function (the fast path) or its composition of
    primitives (to read and to test against)."""

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    fused_attention: bool = True

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

    def to_dict(self):
        return asdict(self)


class MLP(Module):
    r"""mlp(x) = dropout(gelu(x W_fc^T + b_fc) W_proj^T + b_proj):  (B, T, C) -> 4C -> C.

    ``c_fc.weight`` W_fc (4C, C), ``c_proj.weight`` W_proj (C, 4C). GELU is the exact one
    (x Phi(x)), as nanoGPT's nn.GELU(); GPT-2 used the tanh approximation.
    """

    def __init__(self, config):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)   # (4C, C)
        self.gelu = GELU()
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
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config.n_embd, config.n_head, dropout=config.dropout,
                                        bias=config.bias, fused=config.fused_attention)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))                                     # (B, T, C)
        return x + self.mlp(self.ln_2(x))                                   # (B, T, C)


class _Transformer(Module):
    """The ``transformer.*`` container of GPT-2's names (a ModuleDict in nanoGPT)."""

    def __init__(self, config):
        super().__init__()
        self.wte = Embedding(config.vocab_size, config.n_embd)              # (V, C)
        self.wpe = Embedding(config.block_size, config.n_embd)              # (block_size, C)
        self.drop = Dropout(config.dropout)
        self.h = ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, bias=config.bias)


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

    def forward(self, idx, targets=None):
        r"""idx (B, T) int -> logits (B, T, V), and the mean cross-entropy against targets (B, T)
        (positions whose target is -100 are ignored), or None without targets."""
        x = self.hidden_states(idx)                                         # (B, T, C)
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

    def hidden_states(self, idx):
        r"""The final LayerNorm's output (B, T, C), before the lm_head."""
        idx = idx if isinstance(idx, Tensor) else Tensor(np.asarray(idx))
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"GPT: idx must be a (B, T) array of integer token ids, got "
                             f"shape {idx.shape} and dtype {idx.dtype}")
        b, t = idx.shape
        if t > self.config.block_size:
            raise ValueError(f"GPT: cannot forward a sequence of length {t}; the block size "
                             f"is only {self.config.block_size}")
        device = self.transformer.wte.weight.device
        idx = idx.to(device)
        xp = backend.get_xp(idx.data)
        pos = Tensor(xp.arange(t))                                          # (T,)
        tok_emb = self.transformer.wte(idx)                                 # (B, T, C)
        pos_emb = self.transformer.wpe(pos)                                 # (T, C)
        x = self.transformer.drop(tok_emb + pos_emb)                        # (B, T, C)
        for block in self.transformer.h:
            x = block(x)                                                    # (B, T, C)
        return self.transformer.ln_f(x)                                     # (B, T, C)

    # ---- generation ---------------------------------------------------------------------------
    @no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None,
                 num_beams=1):
        r"""Extend idx (B, T) by ``max_new_tokens`` sampled tokens, one at a time; returns a NumPy
        int64 array (B, T + max_new_tokens).

        Each step feeds the last ``block_size`` tokens and turns the last position's logits z
        into probabilities p = softmax(z / temperature), keeping only the ``top_k`` largest
        and/or the smallest set of most likely tokens whose probabilities add up to ``top_p``
        (nucleus sampling). temperature=0 is greedy decoding (argmax). ``seed`` makes the draws
        reproducible (otherwise they come from the generator of ``tinygrad_llm.manual_seed``).
        Runs in eval mode under no_grad; the previous mode is restored.

        ``num_beams`` > 1 runs beam search instead (tinygrad_llm.decoding.beam_search, no
        end-of-sequence token, so every beam has the same length and the length penalty plays no
        part): each row gets the continuation of highest total log-probability the beam finds.
        It is deterministic; temperature, top_k, top_p and seed are not used.
        """
        if temperature < 0:
            raise ValueError(f"generate: temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"generate: top_k must be >= 1, got {top_k}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"generate: top_p must be in (0, 1], got {top_p}")
        if num_beams < 1:
            raise ValueError(f"generate: num_beams must be >= 1, got {num_beams}")
        rng = np.random.default_rng(seed) if seed is not None else backend.host_rng()
        idx = idx.numpy() if isinstance(idx, Tensor) else np.asarray(idx)
        idx = idx.astype(np.int64).reshape(1, -1) if idx.ndim == 1 else idx.astype(np.int64)
        was_training = self.training
        self.eval()
        try:
            if num_beams > 1:
                return self._beam_generate(idx, max_new_tokens, num_beams)
            for _ in range(max_new_tokens):
                context = idx[:, -self.config.block_size:]                  # (B, T')
                x = self.hidden_states(context)[:, -1:, :]                  # (B, 1, C)
                z = self.lm_head(x).numpy()[:, 0, :].astype(np.float64)    # (B, V)
                nxt = _sample(z, temperature, top_k, top_p, rng)           # (B,)
                idx = np.concatenate([idx, nxt[:, None]], axis=1)          # (B, T + 1)
        finally:
            self.train(was_training)
        return idx

    def _beam_generate(self, idx, max_new_tokens, num_beams):
        r"""Beam search over the next ``max_new_tokens`` tokens of each row of idx (B, T)."""
        def step(ids, state):
            context = ids[:, -self.config.block_size:]                     # (M, T')
            x = self.hidden_states(context)[:, -1, :]                      # (M, C)
            return F.log_softmax(self.lm_head(x), axis=-1), state          # (M, V)

        sequences, _ = beam_search(step, idx, beam_size=num_beams,
                                   max_len=idx.shape[1] + max_new_tokens)
        return np.stack(sequences)                                         # (B, T + new)

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


def _sample(z, temperature, top_k, top_p, rng):
    r"""One token id per row of logits z (B, V): greedy, or a draw from the filtered softmax."""
    if temperature == 0:
        return z.argmax(axis=-1)                                            # (B,)
    z = z / temperature                                                     # (B, V)
    if top_k is not None:
        k = min(top_k, z.shape[-1])
        kth = np.sort(z, axis=-1)[:, -k][:, None]                           # (B, 1)
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)                                      # (B, V)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=-1, kind="stable")                      # most likely first
        sorted_p = np.take_along_axis(p, order, axis=-1)                    # (B, V)
        before = np.cumsum(sorted_p, axis=-1) - sorted_p                    # mass above each
        sorted_p[before >= top_p] = 0                                       # keep the nucleus
        p = np.zeros_like(p)
        np.put_along_axis(p, order, sorted_p, axis=-1)
        p /= p.sum(axis=-1, keepdims=True)
    u = rng.random((p.shape[0], 1))                                         # inverse-CDF draw
    ids = (np.cumsum(p, axis=-1) < u).sum(axis=-1)
    return np.minimum(ids, p.shape[-1] - 1)                                 # (B,)

