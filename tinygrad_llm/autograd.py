r"""The autograd core: Function, the graph node every tensor is, and reverse-mode backward.

Every operation on tensors is a ``Function``: its ``forward`` computes the output arrays from the
input arrays, and its ``backward`` maps the gradient of the loss with respect to each output,
``dy = dL/dy``, to the gradient with respect to each input, ``dx = dL/dx = dy * dy/dx`` (the chain
rule). Calling ``Function.apply`` records the call: each output tensor keeps a link (``_ctx``) to
the Function that made it, and the Function keeps its inputs. That chain of links is the graph.

``loss.backward()`` walks the graph from the loss back to the leaves. It first orders the Functions
so that each one runs only after every Function that used one of its outputs (a topological sort,
done with an explicit stack so a 10,000-op chain cannot overflow Python's recursion limit). Then
it calls each ``backward`` once, adding up the gradients that flow into a tensor from all its uses:

    dx = sum over every use u of x:  dL/dy_u * dy_u/dx

Leaves (tensors made by the user with ``requires_grad=True``) keep their total in ``.grad``;
gradients accumulate there until ``zero_grad``. The graph is freed as backward goes, unless
``retain_graph=True``.

This module knows arrays only through ``backend``. ``TensorBase`` is the part of a tensor the
engine needs (its array, its gradient, its link to the Function that made it, ``backward``);
``tinygrad_llm.tensor.Tensor`` adds the operators, each a Function in ``tinygrad_llm.ops``.
Walkthrough: docs/autograd.md.
"""

import contextlib
import weakref

from tinygrad_llm import backend

__all__ = ["Function", "TensorBase", "forward_order", "no_grad", "enable_grad", "is_grad_enabled",
           "detect_anomaly"]

_grad_enabled = True       # False inside no_grad(): nothing is recorded
_anomaly_mode = False      # True inside detect_anomaly(): check every op for NaN/Inf
_profile_hook = None       # set by tinygrad_llm.profiler while profiling; None costs nothing


# ---- grad modes ----------------------------------------------------------------------------
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


# ---- Function --------------------------------------------------------------------------------
class Function:
    r"""One differentiable operation. Subclass it and write ``forward`` and ``backward``.

    ``forward(*xs, **kwargs)`` takes raw arrays (and any non-tensor arguments, passed through as
    they are) and returns one array, or a tuple of arrays for an op with several outputs. It may
    save on ``self`` what backward needs.

    ``backward(*dys)`` takes one gradient per output, in order: ``backward(dy)`` for one output,
    ``backward(dh, dc)`` for two. An output that nothing used gets None. It returns a tuple of one
    gradient per positional input, in order: an array shaped like that input, or None where no
    gradient is needed (integer inputs, constants, or inputs whose ``self.needs_input_grad[i]`` is
    False). A one-input Function may return the bare array.

    Call it as ``MyFunction.apply(*tensors, **kwargs)``: one Tensor back for one output, a tuple of
    Tensors for several.

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

    Two outputs (docs/autograd.md shows its gradcheck)::

        class SinCos(Function):
            r'''s = sin x, c = cos x  =>  dx = ds cos x - dc sin x'''
            def forward(self, x):
                self.x = x
                return np.sin(x), np.cos(x)
            def backward(self, ds, dc):        # None for an output nobody used
                dx = 0
                if ds is not None:
                    dx = dx + ds * np.cos(self.x)
                if dc is not None:
                    dx = dx - dc * np.sin(self.x)
                return dx
    """

    @classmethod
    def apply(cls, *args, **kwargs):
        # One pass over the arguments: unwrap tensors, note whether any needs a gradient, and
        # check that they share a device (cheaply: only arrays of different types can differ).
        raw, needs, first = [], [], None
        for a in args:
            if isinstance(a, TensorBase):
                if first is None:
                    first = a
                elif type(a.data) is not type(first.data):
                    _check_same_device(cls.__name__, first.data, a.data)
                raw.append(a.data)
                needs.append(a.requires_grad)
            else:
                raw.append(a)
                needs.append(False)
        fn = cls()
        if _profile_hook is None:
            ys = fn.forward(*raw, **kwargs)
        else:
            ys = _profile_hook(cls.__name__, "forward", fn.forward, raw, kwargs)
        several = type(ys) is tuple
        if _anomaly_mode:
            _check_finite(ys if several else (ys,), f"the forward of {cls.__name__}")
        requires_grad = _grad_enabled and True in needs
        # The outputs are tensors of the first input's kind (a Parameter's ops give Tensors).
        wrap = first._wrap if first is not None else TensorBase._wrap
        if not several:
            out = wrap(ys, requires_grad)
            if requires_grad:
                fn.inputs = args            # strong links to the inputs: the graph
                fn.needs_input_grad = tuple(needs)
                fn.outputs = (weakref.ref(out),)  # weak: an output owns its Function
                out._ctx = fn
            return out
        # Several outputs: only the floating ones can carry a gradient (not, say, indices).
        outs = tuple(wrap(y, requires_grad and y.dtype.kind == "f") for y in ys)
        if requires_grad:
            fn.inputs = args
            fn.needs_input_grad = tuple(needs)
            fn.outputs = tuple(weakref.ref(out) for out in outs)
            for i, out in enumerate(outs):
                if out.requires_grad:
                    out._ctx, out._output_index = fn, i
        return outs

    def forward(self, *xs):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, *dys):
        raise NotImplementedError(f"{type(self).__name__}.backward")


# ---- the graph node --------------------------------------------------------------------------
class TensorBase:
    r"""What the engine needs of a tensor: its array ``data``, ``requires_grad``, the gradient
    ``grad`` (leaves only), the Function that made it (``_ctx``, None for a leaf) and which of
    that Function's outputs it is (``_output_index``), and ``backward``.

    ``tinygrad_llm.tensor.Tensor`` is the class users meet: it adds construction from Python
    data and the operators.
    """

    @classmethod
    def _wrap(cls, data, requires_grad=False):
        """A tensor around ``data`` with no checks: the fast path for Function outputs."""
        t = cls.__new__(cls)
        t.data, t.grad, t.requires_grad, t._ctx, t._output_index = (
            data, None, requires_grad, None, 0)
        return t

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self._ctx is None)

    def zero_grad(self):
        self.grad = None

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
            grad = grad.data if isinstance(grad, TensorBase) else grad
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

        # 1. Order the Functions so each runs after all Functions that consumed its outputs:
        #    the forward order (each after the Functions that made its inputs), reversed.
        order = forward_order(self._ctx, "backward: trying to go through the graph a second "
                              "time, but it was freed; call backward(retain_graph=True) the "
                              "first time if you need to")

        # 2. Run each backward once. ``pending`` holds, per Function, the sum so far of the
        #    gradients of each of its outputs (None where nothing has flowed in yet).
        pending = {}
        _add_pending(pending, self, grad)
        for fn in reversed(order):
            dys = pending.pop(id(fn), None)
            if dys is None:  # every consumer returned None for its outputs: nothing flows back
                if not retain_graph:
                    vars(fn).clear()
                    fn.inputs = None
                continue
            if _profile_hook is None:
                dxs = fn.backward(*dys)
            else:
                dxs = _profile_hook(type(fn).__name__, "backward", fn.backward, dys, {})
            if type(dxs) is not tuple:  # a one-input Function may return its gradient bare
                dxs = tuple(dxs) if type(dxs) is list else (dxs,)
            if len(dxs) != len(fn.inputs):
                raise RuntimeError(f"backward: {type(fn).__name__}.backward returned "
                                   f"{len(dxs)} gradients for {len(fn.inputs)} inputs")
            if _anomaly_mode:
                _check_finite(dxs, f"the backward of {type(fn).__name__}")
            for x, dx in zip(fn.inputs, dxs):
                if dx is None or not isinstance(x, TensorBase) or not x.requires_grad:
                    continue
                if x._ctx is None:
                    x._accumulate(dx)
                else:
                    _add_pending(pending, x, dx)
            if not retain_graph:  # free what forward saved, and the links to the inputs
                vars(fn).clear()
                fn.inputs = None

    def _accumulate(self, dx):
        """``self.grad += dx`` for a leaf. The first gradient is copied: ``dx`` may be shared.

        A gradient that is not an array (a row-sparse one, say) brings its own rule: its class's
        ``accumulate_grad(grad, dx, leaf)`` returns the new ``.grad``. The engine names no
        gradient type.
        """
        rule = (getattr(type(dx), "accumulate_grad", None)
                or getattr(type(self.grad), "accumulate_grad", None))
        if rule is not None:
            self.grad = rule(self.grad, dx, self)
            return
        if dx.shape != self.shape:
            raise RuntimeError(f"backward: gradient of shape {dx.shape} for a tensor of shape "
                               f"{self.shape} (a Function's backward returned a wrong shape)")
        if self.grad is None:
            self.grad = self._wrap(dx.astype(self.dtype, copy=True))
        else:
            self.grad.data += dx


def forward_order(fn, freed_message, first_input_first=False):
    r"""``fn`` and every Function behind it, each after the Functions that made its inputs: an
    iterative post-order depth-first search (an explicit stack, so a 10,000-op chain cannot
    overflow Python's recursion limit). backward runs it in reverse; tinygrad_llm.viz draws it.

    The inputs of a Function are visited last to first, so the branch of its last input comes
    first in the order; ``first_input_first=True`` visits them first to last (a drawing then
    reads left to right). A Function whose graph backward has freed raises
    RuntimeError(freed_message).
    """
    order, visited, stack = [], set(), [(fn, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        if getattr(fn, "inputs", None) is None:
            raise RuntimeError(freed_message)
        stack.append((fn, True))
        for x in (reversed(fn.inputs) if first_input_first else fn.inputs):
            if isinstance(x, TensorBase) and x._ctx is not None and id(x._ctx) not in visited:
                stack.append((x._ctx, False))
    return order


def _add_pending(pending, x, dx):
    """Add ``dx`` into the pending gradient of output ``x._output_index`` of ``x._ctx``."""
    fn = x._ctx
    dys = pending.get(id(fn))
    if dys is None:
        dys = pending[id(fn)] = [None] * len(fn.outputs)
    i = x._output_index
    dys[i] = dx if dys[i] is None else dys[i] + dx
