r"""The engine: Tensor, Function and reverse-mode backward.

A ``Tensor`` wraps an array (NumPy or CuPy). Every operation on tensors is a ``Function``: its
``forward`` computes the output array from the input arrays, and its ``backward`` maps the
gradient of the loss with respect to that output, ``dy = dL/dy``, to the gradient with respect to
each input, ``dx = dL/dx = dy * dy/dx`` (the chain rule). Calling ``Function.apply`` records the
call: the output tensor keeps a link (``_ctx``) to the Function that made it, and the Function
keeps its inputs. That chain of links is the graph.

``loss.backward()`` walks the graph from the loss back to the leaves. It first orders the Functions
so that each one runs only after every Function that used its output (a topological sort, done
with an explicit stack so a 10,000-op chain cannot overflow Python's recursion limit). Then it
calls each ``backward`` once, adding up the gradients that flow into a tensor from all its uses:

    dx = sum over every use u of x:  dL/dy_u * dy_u/dx

Leaves (tensors made by the user with ``requires_grad=True``) keep their total in ``.grad``;
gradients accumulate there until ``zero_grad``. The graph is freed as backward goes, unless
``retain_graph=True``. Walkthrough: docs/autograd.md.
"""

import contextlib
import weakref

import numpy as np

from tinygrad_llm import backend

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly"]

_grad_enabled = True       # False inside no_grad(): nothing is recorded
_anomaly_mode = False      # True inside detect_anomaly(): check every op for NaN/Inf
_profile_hook = None       # set by tinygrad_llm.profiler while profiling; None costs nothing


class _GradMode(contextlib.ContextDecorator):
    """A context manager and decorator that switches graph recording off (or on)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.previous = []  # a stack: a decorated function may call itself (re-entering)

    def __enter__(self):
        global _grad_enabled
        self.previous.append(_grad_enabled)
        _grad_enabled = self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.previous.pop()


def no_grad():
    """``with no_grad():`` (or ``@no_grad()``) runs ops without recording a graph."""
    return _GradMode(False)


def enable_grad():
    """Switch recording back on inside a ``no_grad`` block."""
    return _GradMode(True)


def is_grad_enabled():
    return _grad_enabled


@contextlib.contextmanager
def detect_anomaly():
    """Within this context, raise at the first op whose forward or backward gives NaN or Inf."""
    global _anomaly_mode
    previous, _anomaly_mode = _anomaly_mode, True
    try:
        yield
    finally:
        _anomaly_mode = previous


def _check_finite(arrays, where):
    for a in arrays:  # NumPy reductions give NumPy scalars, so test for a dtype, not an array
        if a is not None and getattr(a, "dtype", None) is not None and a.dtype.kind == "f":
            if not bool(backend.get_xp(a).isfinite(a).all()):
                raise FloatingPointError(f"detect_anomaly: {where} produced NaN or Inf")


def _check_same_device(op, a, b):
    da, db = backend.device_of(a), backend.device_of(b)
    if da != db:
        raise ValueError(f"{op}: inputs are on different devices ({da} and {db}); "
                         "move them with .to(device)")


class Function:
    r"""One differentiable operation. Subclass it and write ``forward`` and ``backward``.

    ``forward(*xs, **kwargs)`` takes raw arrays (and any non-tensor arguments, passed through as
    they are) and returns one array. It may save on ``self`` what backward needs.
    ``backward(dy)`` returns a tuple of one gradient per positional input, in order: an array
    shaped like that input, or None where no gradient is needed (integer inputs, constants, or
    inputs whose ``self.needs_input_grad[i]`` is False). A one-input Function may return the
    bare array. Call it as ``MyFunction.apply(*tensors, **kwargs)``.

    Example, with its proof by finite differences (see docs/gradcheck.md)::

        class Cube(Function):
            r'''y = x^3  =>  dx = dy * 3 x^2'''
            def forward(self, x):
                self.x = x                     # saved: backward needs x
                return x ** 3
            def backward(self, dy):
                return (dy * 3 * self.x ** 2,)

        x = Tensor(np.random.randn(5), requires_grad=True, dtype="float64")
        tinygrad_llm.testing.gradcheck(lambda x: Cube.apply(x), [x])
    """

    @classmethod
    def apply(cls, *args, **kwargs):
        # One pass over the arguments: unwrap tensors, note whether any needs a gradient, and
        # check that they share a device (cheaply: only arrays of different types can differ).
        raw, needs, first = [], [], None
        for a in args:
            if isinstance(a, Tensor):
                data = a.data
                if first is None:
                    first = data
                elif type(data) is not type(first):
                    _check_same_device(cls.__name__, first, data)
                raw.append(data)
                needs.append(a.requires_grad)
            else:
                raw.append(a)
                needs.append(False)
        fn = cls()
        if _profile_hook is None:
            y = fn.forward(*raw, **kwargs)
        else:
            y = _profile_hook(cls.__name__, "forward", fn.forward, raw, kwargs)
        if _anomaly_mode:
            _check_finite([y], f"the forward of {cls.__name__}")
        requires_grad = _grad_enabled and True in needs
        out = Tensor._wrap(y, requires_grad)
        if requires_grad:
            fn.inputs = args            # strong links to the inputs: the graph
            fn.needs_input_grad = tuple(needs)
            fn.output = weakref.ref(out)  # weak: the output owns its Function, not vice versa
            out._ctx = fn
        return out

    def forward(self, *xs):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__}.backward")


class Tensor:
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

    @classmethod
    def _wrap(cls, data, requires_grad=False):
        """A Tensor around ``data`` with no checks: the fast path for Function outputs."""
        t = cls.__new__(cls)
        t.data, t.grad, t.requires_grad, t._ctx = data, None, requires_grad, None
        return t

    # ---- attributes ----------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self._ctx is None)

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
        from tinygrad_llm.ops.basic import ToDevice
        device = backend.check_device(device)
        return self if device == self.device else ToDevice.apply(self, device=device)

    def astype(self, dtype):
        from tinygrad_llm.ops.basic import Cast
        return self if np.dtype(dtype) == self.dtype else Cast.apply(self, dtype=np.dtype(dtype))

    def zero_grad(self):
        self.grad = None

    # ---- backward ------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        r"""Accumulate ``dL/dx`` into ``x.grad`` for every leaf ``x`` that this tensor depends on.

        ``grad`` is ``dL/dself``; it may be left out only when self is a scalar (then it is 1).
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no grad_fn "
                               "(did you forget requires_grad=True, or run under no_grad?)")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward: grad can be implicitly created only for scalar "
                                   f"outputs; this tensor has shape {self.shape}, so pass "
                                   f"backward(grad) with that shape")
            grad = backend.get_xp(self.data).ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            if type(grad) is not type(self.data) and (
                    not backend.is_array(grad) or backend.device_of(grad) != self.device):
                grad = backend.to_device(grad, self.device)  # a list, or an array elsewhere
            if grad.dtype != self.dtype:
                grad = grad.astype(self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape}, but the tensor has "
                                 f"shape {self.shape}")
        if self._ctx is None:  # a leaf: its gradient is the given one
            self._accumulate(grad)
            return

        # 1. Order the Functions so each runs after all Functions that consumed its output.
        #    Iterative post-order depth-first search, then reversed.
        order, visited, stack = [], set(), [(self._ctx, False)]
        while stack:
            fn, expanded = stack.pop()
            if expanded:
                order.append(fn)
                continue
            if id(fn) in visited:
                continue
            visited.add(id(fn))
            if fn.inputs is None:
                raise RuntimeError("backward: trying to go through the graph a second time, "
                                   "but it was freed; call backward(retain_graph=True) the "
                                   "first time if you need to")
            stack.append((fn, True))
            for x in fn.inputs:
                if isinstance(x, Tensor) and x._ctx is not None and id(x._ctx) not in visited:
                    stack.append((x._ctx, False))

        # 2. Run each backward once, summing gradients per tensor (keyed by its Function).
        grads = {id(self._ctx): grad}
        for fn in reversed(order):
            dy = grads.pop(id(fn), None)
            if dy is None:  # every consumer returned None for this output: nothing flows back
                if not retain_graph:
                    vars(fn).clear()
                    fn.inputs = None
                continue
            if _profile_hook is None:
                dxs = fn.backward(dy)
            else:
                dxs = _profile_hook(type(fn).__name__, "backward", fn.backward, [dy], {})
            if type(dxs) is not tuple:  # a one-input Function may return its gradient bare
                dxs = tuple(dxs) if type(dxs) is list else (dxs,)
            if len(dxs) != len(fn.inputs):
                raise RuntimeError(f"backward: {type(fn).__name__}.backward returned "
                                   f"{len(dxs)} gradients for {len(fn.inputs)} inputs")
            if _anomaly_mode:
                _check_finite(dxs, f"the backward of {type(fn).__name__}")
            for x, dx in zip(fn.inputs, dxs):
                if dx is None or not isinstance(x, Tensor) or not x.requires_grad:
                    continue
                if x._ctx is None:
                    x._accumulate(dx)
                else:
                    key = id(x._ctx)
                    grads[key] = dx if key not in grads else grads[key] + dx
            if not retain_graph:  # free what forward saved, and the links to the inputs
                vars(fn).clear()
                fn.inputs = None

    def _accumulate(self, dx):
        """``self.grad += dx`` for a leaf. The first gradient is copied: ``dx`` may be shared."""
        if type(dx) is _RowSparseGrad or type(self.grad) is _RowSparseGrad:
            self.grad = _sparse.accumulate(self.grad, dx, self)  # Embedding(sparse=True)
            return
        if dx.shape != self.shape:
            raise RuntimeError(f"backward: gradient of shape {dx.shape} for a tensor of shape "
                               f"{self.shape} (a Function's backward returned a wrong shape)")
        if self.grad is None:
            self.grad = Tensor._wrap(dx.astype(self.dtype, copy=True))
        else:
            self.grad.data += dx

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


# The ops modules (and sparse, for row-sparse gradients) import Function and Tensor from this
# module, so they are imported last, once both classes exist. The operators above reach them
# through these names at call time.
from tinygrad_llm import ops as _ops  # noqa: E402
from tinygrad_llm import sparse as _sparse  # noqa: E402
from tinygrad_llm.sparse import RowSparseGrad as _RowSparseGrad  # noqa: E402
