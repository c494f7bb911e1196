r"""Functional neural-network ops on Tensors (import as ``F``), as in ``torch.nn.functional``.

The fused ones (softmax, log_softmax, cross_entropy, layer_norm, gelu, linear, embedding, dropout,
binary_cross_entropy_with_logits) are single Functions with hand-derived backwards, in
tinygrad_llm/ops/nn.py. The rest are short compositions of primitives, whose gradients autograd
derives.
"""

from tinygrad_llm.ops import nn as _nn
from tinygrad_llm.ops import sparse as _sparse
from tinygrad_llm.tensor import Tensor

__all__ = ["softmax", "log_softmax", "cross_entropy", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "mse_loss", "gelu", "layer_norm", "linear",
           "embedding", "dropout", "relu", "tanh", "sigmoid"]


def _tensor(x, name, op, like):
    """``x`` as a Tensor; a list or an array is put on the device of the tensor ``like``."""
    if isinstance(x, Tensor):
        return x
    try:
        return Tensor(x, device=like.device)
    except Exception:
        raise TypeError(f"{op}: {name} must be a Tensor or an array, got {type(x).__name__}") \
            from None


def _reduce(loss, reduction, op):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def softmax(x, axis=-1):
    """softmax(x)_i = e^{x_i} / sum_j e^{x_j} along ``axis``."""
    return _nn.Softmax.apply(x, axis=axis)


def log_softmax(x, axis=-1):
    """log softmax(x) along ``axis``, computed stably."""
    return _nn.LogSoftmax.apply(x, axis=axis)


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    r"""Softmax cross-entropy of logits (N, C) against integer class targets (N,), as torch's.

    ``label_smoothing`` eps in [0, 1] trains against q = (1 - eps) onehot(t) + eps / C instead
    of onehot(t); the equations are in tinygrad_llm.ops.nn.CrossEntropy.
    """
    targets = _tensor(targets, "targets", "cross_entropy", logits)
    return _nn.CrossEntropy.apply(logits, targets, ignore_index=ignore_index,
                                  reduction=reduction, label_smoothing=label_smoothing)


def binary_cross_entropy(p, target, reduction="mean"):
    r"""-(t log p + (1 - t) log(1 - p)) for probabilities p; logs clamped at -100, as in torch."""
    target = _tensor(target, "target", "binary_cross_entropy", p)
    if p.shape != target.shape:
        raise ValueError(f"binary_cross_entropy: input {p.shape} and target {target.shape} "
                         "must have the same shape")
    log_p = p.log().clip(min=-100)
    log_1mp = (1 - p).log().clip(min=-100)
    return _reduce(-(target * log_p + (1 - target) * log_1mp), reduction,
                   "binary_cross_entropy")


def binary_cross_entropy_with_logits(x, target, reduction="mean"):
    """Binary cross-entropy on logits: the stable fusion of sigmoid and binary_cross_entropy."""
    target = _tensor(target, "target", "binary_cross_entropy_with_logits", x)
    return _reduce(_nn.BCEWithLogits.apply(x, target.astype(x.dtype)), reduction,
                   "binary_cross_entropy_with_logits")


def mse_loss(x, target, reduction="mean"):
    """Mean squared error: mean((x - target)^2)."""
    target = _tensor(target, "target", "mse_loss", x)
    if x.shape != target.shape:
        raise ValueError(f"mse_loss: input {x.shape} and target {target.shape} must have the "
                         "same shape")
    diff = x - target
    return _reduce(diff * diff, reduction, "mse_loss")


def gelu(x, approximate="none"):
    """GELU, exact (with erf) or with the tanh approximation."""
    return _nn.GELU.apply(x, approximate=approximate)


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """Layer normalisation over the last axis, with optional elementwise weight and bias."""
    return _nn.LayerNorm.apply(x, weight, bias, eps=eps)


def linear(x, weight, bias=None):
    """y = x W^T + b with W (out, in), as torch.nn.functional.linear."""
    return _nn.Linear.apply(x, weight, bias)


def embedding(ids, weight, sparse=False):
    """Rows of ``weight`` (V, D) picked by integer ``ids``: shape ids.shape + (D,).

    ``sparse=True`` gives ``weight`` a row-sparse gradient (tinygrad_llm/ops/sparse.py)."""
    ids = _tensor(ids, "ids", "embedding", weight)
    if sparse:
        return _sparse.SparseEmbedding.apply(ids, weight)
    return _nn.Embedding.apply(ids, weight)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p); identity in eval."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    return _nn.Dropout.apply(x, p=p)


def relu(x):
    return x.relu()


def tanh(x):
    return x.tanh()


def sigmoid(x):
    return x.sigmoid()
