"""tinygrad_llm: a small tensor and reverse-mode autograd core, and the language models on it.

As ``import torch`` gives ``torch.nn`` and ``torch.optim``, ``import tinygrad_llm as tg`` gives
``tg.nn``, ``tg.nn.functional``, ``tg.optim``, ``tg.models`` and ``tg.tokenizer``. It imports
NumPy and regex only: never torch, matplotlib or cupy.

Read the engine in tinygrad_llm/autograd.py and tinygrad_llm/tensor.py, the ops in
tinygrad_llm/ops/, and the docs in docs/. Each module imports only the layers below it:
backend, kernels, autograd, ops, tensor, nn, optim, models (docs/autograd.md).
"""

import numpy as np

from tinygrad_llm import backend, models, nn, optim, tokenizer
from tinygrad_llm.backend import manual_seed
from tinygrad_llm.tensor import (
    Function,
    Tensor,
    concatenate,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    stack,
    where,
)

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly",
           "manual_seed", "concatenate", "stack", "where", "zeros", "ones", "full", "arange",
           "randn", "rand", "backend", "nn", "optim", "models", "tokenizer"]


def _make(array, dtype, device, requires_grad):
    return Tensor(array, requires_grad=requires_grad, dtype=dtype, device=device)


def zeros(*shape, dtype="float32", device=None, requires_grad=False):
    """A tensor of zeros."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return _make(np.zeros(shape, dtype=dtype), None, device, requires_grad)


def ones(*shape, dtype="float32", device=None, requires_grad=False):
    """A tensor of ones."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return _make(np.ones(shape, dtype=dtype), None, device, requires_grad)


def full(shape, value, dtype="float32", device=None, requires_grad=False):
    """A tensor filled with ``value``."""
    return _make(np.full(shape, value, dtype=dtype), None, device, requires_grad)


def arange(start, stop=None, step=1, dtype="int64", device=None):
    """Evenly spaced values, as ``np.arange``."""
    return _make(np.arange(start, stop, step, dtype=dtype), None, device, False)


def randn(*shape, dtype="float32", device=None, requires_grad=False):
    """Standard normal samples from the seeded host generator (see ``manual_seed``)."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    data = backend.host_rng().standard_normal(shape).astype(dtype)
    return _make(data, None, device, requires_grad)


def rand(*shape, dtype="float32", device=None, requires_grad=False):
    """Uniform samples in [0, 1) from the seeded host generator."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    data = backend.host_rng().random(shape).astype(dtype)
    return _make(data, None, device, requires_grad)
