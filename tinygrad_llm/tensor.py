r"""Tensor: the array users meet, with operators that call the ops.

A ``Tensor`` wraps an array (NumPy or CuPy) and is a node of the autograd graph: the engine's part
(its gradient, the Function that made it, ``backward``) is ``autograd.TensorBase``. This class adds
what a user works with: construction from Python data, printing, conversions, and the operators
and methods, each of which calls one ``Function`` from ``tinygrad_llm.ops`` (``x + y`` is
``Add.apply(x, y)``, ``x @ w`` is ``MatMul.apply(x, w)``). The module also holds the functions that
build tensors from several (``concatenate``, ``stack``, ``where``). Walkthrough: docs/autograd.md.
"""

import numpy as np

from tinygrad_llm import backend
from tinygrad_llm import ops as _ops
from tinygrad_llm.autograd import (
    Function,
    TensorBase,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
)

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly",
           "concatenate", "stack", "where"]


class Tensor(TensorBase):
    r"""An n-dimensional array that can record the operations made on it, for backward.

    ``Tensor(data, requires_grad=False, dtype=None, device=None)``. ``data`` may be a Python
    scalar or list, a NumPy array, a CuPy array or a Tensor. A NumPy array keeps its dtype; Python
    floats become float32 and Python ints int64.
    """

    __array_priority__ = 1000  # so np_array + tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        if not backend.is_array(data):
            from_python = not isinstance(data, np.generic)  # a NumPy scalar keeps its dtype
            data = np.asarray(data)
            if from_python and dtype is None and data.dtype == np.float64:
                data = data.astype(np.float32)  # Python floats become float32
            if data.dtype == object:
                raise TypeError(f"Tensor: cannot hold {type(data.flat[0]).__name__} objects; "
                                "give numbers, a list of numbers or an array")
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        if device is not None:
            data = backend.to_device(data, device)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad=True needs a floating dtype, got {data.dtype} "
                            "(only floating tensors have gradients)")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._output_index = 0

    # shape, ndim, size, dtype, device, is_leaf, zero_grad and backward: TensorBase

    def __len__(self):
        return len(self.data)

    def __bool__(self):
        # Without this, bool() would fall back to len(): `if x > 0:` on a vector would be True.
        if self.size != 1:
            raise ValueError(f"bool: the truth value of a tensor with {self.size} elements is "
                             f"ambiguous (shape {self.shape}); use .any() or .all() on .numpy()")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __repr__(self):
        body = np.array2string(backend.to_numpy(self.data), separator=", ", prefix="Tensor(",
                               threshold=20)
        extras = f", dtype={self.dtype}, device={self.device!r}"
        if self._ctx is not None:
            extras += f", grad_fn={type(self._ctx).__name__}"
        elif self.requires_grad:
            extras += ", requires_grad=True"
        return f"Tensor({body}{extras})"

    def __array__(self, dtype=None, copy=None):
        # np.asarray(t) on a CPU tensor gives its array (without this, NumPy would build an
        # object array of 0-d Tensors, one getitem at a time). From a GPU it must be explicit.
        if not isinstance(self.data, (np.ndarray, np.generic)):
            raise TypeError(f"implicit conversion of a tensor on {self.device!r} to a NumPy array "
                            "is not allowed; call .numpy() to copy it to the host")
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return np.asarray(self.data, dtype=dtype)

    def numpy(self):
        """A NumPy copy of the data, from any device: changing it never changes the tensor
        (as torch's ``.numpy()`` after ``.cpu()`` on a GPU; use ``.data`` for the array itself)."""
        a = backend.to_numpy(self.data)             # a host copy from a GPU, itself on the CPU
        return a.copy() if a is self.data else a

    def item(self):
        if self.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a scalar, "
                             f"got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def to(self, device):
        """This tensor on ``device``, with gradients flowing back across the move."""
        device = backend.check_device(device)
        return self if device == self.device else _ops.basic.ToDevice.apply(self, device=device)

    def astype(self, dtype):
        dtype = np.dtype(dtype)
        return self if dtype == self.dtype else _ops.basic.Cast.apply(self, dtype=dtype)

    # ---- operators (each a Function in tinygrad_llm/ops) -----------------------------------
    def __add__(self, other):
        return _ops.basic.Add.apply(self, _operand(other, self))

    def __radd__(self, other):
        return _ops.basic.Add.apply(_operand(other, self), self)

    def __sub__(self, other):
        return _ops.basic.Sub.apply(self, _operand(other, self))

    def __rsub__(self, other):
        return _ops.basic.Sub.apply(_operand(other, self), self)

    def __mul__(self, other):
        return _ops.basic.Mul.apply(self, _operand(other, self))

    def __rmul__(self, other):
        return _ops.basic.Mul.apply(_operand(other, self), self)

    def __truediv__(self, other):
        return _ops.basic.Div.apply(self, _operand(other, self))

    def __rtruediv__(self, other):
        return _ops.basic.Div.apply(_operand(other, self), self)

    def __pow__(self, other):
        return _ops.basic.Pow.apply(self, _operand(other, self))

    def __rpow__(self, other):
        return _ops.basic.Pow.apply(_operand(other, self), self)

    def __neg__(self):
        return _ops.basic.Neg.apply(self)

    def __matmul__(self, other):
        return _ops.linalg.MatMul.apply(self, _operand(other, self))

    def __rmatmul__(self, other):
        return _ops.linalg.MatMul.apply(_operand(other, self), self)

    def __getitem__(self, index):
        return _ops.shape.GetItem.apply(self, index=_index_data(index))

    # Comparisons give bool tensors outside the graph.
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(op(self.data, other))

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    __hash__ = object.__hash__  # tensors are hashed by identity, as in torch

    # ---- elementwise -------------------------------------------------------------------------
    def exp(self):
        return _ops.unary.Exp.apply(self)

    def log(self):
        return _ops.unary.Log.apply(self)

    def sqrt(self):
        return _ops.unary.Sqrt.apply(self)

    def tanh(self):
        return _ops.unary.Tanh.apply(self)

    def sigmoid(self):
        return _ops.unary.Sigmoid.apply(self)

    def relu(self):
        return _ops.unary.Relu.apply(self)

    def abs(self):
        return _ops.unary.Abs.apply(self)

    def clip(self, min=None, max=None):
        return _ops.unary.Clip.apply(self, lo=min, hi=max)

    # ---- reductions --------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _ops.reduce.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops.reduce.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops.reduce.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _ops.reduce.Min.apply(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return _ops.reduce.Var.apply(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def argmax(self, axis=None):
        return Tensor._wrap(self.data.argmax(axis=axis))

    # ---- shape -------------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return _ops.shape.Reshape.apply(self, shape=tuple(shape))

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return _ops.shape.Transpose.apply(self, axes=tuple(axes) if axes else None)

    def swapaxes(self, a, b):
        axes = list(range(self.ndim))
        try:
            axes[a], axes[b] = axes[b], axes[a]
        except IndexError:
            raise ValueError(f"swapaxes: axes ({a}, {b}) out of range for a tensor with "
                             f"{self.ndim} dimensions (shape {self.shape})") from None
        return self.transpose(*axes)

    @property
    def T(self):
        return self.transpose()

    def expand_dims(self, axis):
        return _ops.shape.ExpandDims.apply(self, axis=axis)

    def squeeze(self, axis=None):
        return _ops.shape.Squeeze.apply(self, axis=axis)

    def broadcast_to(self, shape):
        return _ops.shape.BroadcastTo.apply(self, shape=tuple(shape))

    def flatten(self):
        return self.reshape(-1)


def _operand(x, like):
    """The other side of a binary operator: Tensors pass; Python scalars stay scalars (so they
    keep the tensor's dtype, as NumPy 2 does); arrays become constant tensors."""
    if isinstance(x, (Tensor, int, float, bool)):
        return x
    if isinstance(x, np.generic):
        return x.item()
    return Tensor(x, device=like.device)


def _index_data(index):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


# ---- tensors from several tensors ------------------------------------------------------------
def concatenate(tensors, axis=0):
    """Join tensors along an existing axis."""
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    return _ops.shape.Concatenate.apply(*[_as_tensor(t) for t in tensors], axis=axis)


def stack(tensors, axis=0):
    """Join equal-shaped tensors along a new axis."""
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    return _ops.shape.Stack.apply(*[_as_tensor(t) for t in tensors], axis=axis)


def where(cond, a, b):
    """Elementwise choice: ``a`` where ``cond`` is true, else ``b``."""
    cond = _as_tensor(cond)
    if cond.dtype != bool:
        cond = Tensor._wrap(cond.data.astype(bool))
    a = a if isinstance(a, (Tensor, int, float)) else Tensor(a)
    b = b if isinstance(b, (Tensor, int, float)) else Tensor(b)
    return _ops.shape.Where.apply(cond, a, b)


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)
