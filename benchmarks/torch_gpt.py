r"""The same GPT in PyTorch, for parity tests and the --compare-torch benchmark.

Written here (after nanoGPT's model.py) with the architecture, parameter names, initialisation
and loss of tinygrad_llm.models.gpt, so one state dict fits both:

    x = wte[idx] + wpe[pos];  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x));  logits = ln_f(x) wte^T

Dimension letters: B batch, T time, C channels, nh heads, hs head size, V vocabulary.
Imported only by benchmarks and tests (``import tinygrad_llm`` never imports torch).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TorchGPT", "build"]


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, dropout, bias):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)            # (3C, C)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)                # (C, C)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x):
        b, t, c = x.shape                                                   # (B, T, C)
        q, k, v = self.c_attn(x).split(c, dim=2)                            # (B, T, C) each
        q = q.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)     # (B, nh, T, hs)
        k = k.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)     # (B, nh, T, hs)
        v = v.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)     # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,         # (B, nh, T, hs)
                                           dropout_p=self.dropout if self.training else 0)
        y = y.transpose(1, 2).contiguous().view(b, t, c)                    # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, n_embd, dropout, bias):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)               # (4C, C)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)             # (C, 4C)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))          # (B, T, C)


class Block(nn.Module):
    def __init__(self, n_embd, n_head, dropout, bias):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(nn.Module):
    """GPT-2 in PyTorch; ``config`` is a tinygrad_llm GPTConfig (or anything with its fields)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.n_embd),
            wpe=nn.Embedding(c.block_size, c.n_embd),
            drop=nn.Dropout(c.dropout),
            h=nn.ModuleList([Block(c.n_embd, c.n_head, c.dropout, c.bias)
                             for _ in range(c.n_layer)]),
            ln_f=nn.LayerNorm(c.n_embd, bias=c.bias),
        ))
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight                  # tied
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            elif ".ln_" in name:
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, targets=None):
        b, t = idx.shape
        pos = torch.arange(t, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))                    # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=-100)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas, eps=1e-8):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps)


def build(config, state_dict=None):
    """A TorchGPT, with weights copied from a tinygrad_llm state dict when given."""
    model = TorchGPT(config)
    if state_dict is not None:
        model.load_state_dict({k: torch.tensor(v) for k, v in state_dict.items()})
    return model
