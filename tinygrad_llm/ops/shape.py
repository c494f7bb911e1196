r"""Ops that move elements without changing them: reshape, transpose, expand/squeeze, broadcast,
indexing, concatenate, stack and where. Each backward moves the gradient back the same way.
(``concatenate``, ``stack`` and ``where`` on tensors are in tinygrad_llm.tensor.)
"""

from tinygrad_llm import backend
from tinygrad_llm.autograd import Function
from tinygrad_llm.kernels import cpu
from tinygrad_llm.ops.basic import unbroadcast
from tinygrad_llm.ops.reduce import normalize_axis

__all__ = ["Reshape", "Transpose", "ExpandDims", "Squeeze", "BroadcastTo", "GetItem",
           "Concatenate", "Stack", "Where"]


class Reshape(Function):
    r"""y = x viewed with a new shape (same elements, row-major order)  =>  dx = dy reshaped back"""

    def forward(self, x, shape):
        self.x_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into shape {shape}") from None

    def backward(self, dy):
        return (dy.reshape(self.x_shape),)


class Transpose(Function):
    r"""y = x with its axes permuted: y.shape[i] = x.shape[axes[i]]

    =>  dx = dy permuted by the inverse permutation (argsort of axes)
    """

    def forward(self, x, axes=None):
        if axes is None:
            axes = tuple(range(x.ndim))[::-1]
        if sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                             f"{x.ndim} axes of shape {x.shape}")
        self.axes = tuple(a % x.ndim for a in axes)
        return x.transpose(self.axes)

    def backward(self, dy):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return (dy.transpose(inverse),)


class ExpandDims(Function):
    r"""y = x with a new axis of size 1 at ``axis``  =>  dx = dy with that axis removed"""

    def forward(self, x, axis):
        if not -x.ndim - 1 <= axis <= x.ndim:
            raise ValueError(f"expand_dims: axis {axis} is out of range for shape {x.shape}")
        self.x_shape = x.shape
        return backend.get_xp(x).expand_dims(x, axis)

    def backward(self, dy):
        return (dy.reshape(self.x_shape),)


class Squeeze(Function):
    r"""y = x without axes of size 1 (all, or those in ``axis``)  =>  dx = dy reshaped back"""

    def forward(self, x, axis=None):
        if axis is not None:
            axes = normalize_axis(axis, x.ndim, "squeeze", x.shape)
            bad = [a for a in axes if x.shape[a] != 1]
            if bad:
                raise ValueError(f"squeeze: axis {bad[0]} of shape {x.shape} has size "
                                 f"{x.shape[bad[0]]}, not 1")
        self.x_shape = x.shape
        return x.squeeze(axis)

    def backward(self, dy):
        return (dy.reshape(self.x_shape),)


class BroadcastTo(Function):
    r"""y = x stretched to ``shape``  =>  dx = dy summed over the stretched axes"""

    def forward(self, x, shape):
        self.x_shape = x.shape
        try:
            return backend.get_xp(x).broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"broadcast_to: shape {x.shape} does not broadcast to "
                             f"{shape}") from None

    def backward(self, dy):
        return (unbroadcast(dy, self.x_shape),)


def _has_int_array(index):
    """True if ``index`` holds an integer array: only then can positions repeat."""
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        if isinstance(p, list):
            return True
        if backend.is_array(p) and p.dtype.kind in "iu":
            return True
    return False


class GetItem(Function):
    r"""y = x[index]  (ints, slices, None, Ellipsis, integer arrays, boolean masks)

    =>  dx = zeros like x, with dy added at the indexed positions. An integer array may pick one
    element several times; its gradients then add up (scatter-add), as the chain rule demands.
    """

    def forward(self, x, index):
        self.x_shape, self.x_dtype, self.index = x.shape, x.dtype, index
        try:
            return x[index]
        except IndexError as e:
            raise IndexError(f"getitem: index {index!r} is invalid for shape {x.shape}: "
                             f"{e}") from None

    def backward(self, dy):
        xp = backend.get_xp(dy)
        dx = xp.zeros(self.x_shape, dtype=dy.dtype)
        if _has_int_array(self.index):
            cpu.scatter_add(dx, self.index, dy)  # repeated positions add up
        else:
            dx[self.index] = dy                       # each position picked at most once
        return (dx,)


class Concatenate(Function):
    r"""y = [x_1, x_2, ...] joined along ``axis``  =>  dx_i = the slice of dy that x_i filled"""

    def forward(self, *xs, axis=0):
        xp = backend.get_xp(xs[0])
        self.axis = axis
        self.sizes = [x.shape[axis] for x in xs]
        try:
            return xp.concatenate(xs, axis=axis)
        except (ValueError, IndexError) as e:
            raise ValueError(f"concatenate: shapes {[x.shape for x in xs]} cannot be joined "
                             f"along axis {axis}: {e}") from None

    def backward(self, dy):
        xp = backend.get_xp(dy)
        cuts = []
        total = 0
        for n in self.sizes[:-1]:
            total += n
            cuts.append(total)
        return tuple(xp.split(dy, cuts, axis=self.axis))


class Stack(Function):
    r"""y = [x_1, x_2, ...] stacked along a new ``axis``  =>  dx_i = dy taken at index i of axis"""

    def forward(self, *xs, axis=0):
        xp = backend.get_xp(xs[0])
        shapes = {x.shape for x in xs}
        if len(shapes) != 1:
            raise ValueError(f"stack: all shapes must be equal, got {[x.shape for x in xs]}")
        if not -xs[0].ndim - 1 <= axis <= xs[0].ndim:
            raise ValueError(f"stack: axis {axis} is out of range for shape {xs[0].shape}")
        self.axis = axis
        return xp.stack(xs, axis=axis)

    def backward(self, dy):
        xp = backend.get_xp(dy)
        n = dy.shape[self.axis]
        return tuple(xp.take(dy, i, axis=self.axis) for i in range(n))


class Where(Function):
    r"""y = a where cond else b  =>  da = dy where cond else 0,  db = dy where not cond else 0"""

    def forward(self, cond, a, b):
        xp = backend.get_xp(cond)
        self.cond = cond
        self.a_shape, self.b_shape = getattr(a, "shape", ()), getattr(b, "shape", ())
        try:
            return xp.where(cond, a, b)
        except ValueError:
            raise ValueError(f"where: shapes {cond.shape}, {self.a_shape} and {self.b_shape} "
                             f"do not broadcast") from None

    def backward(self, dy):
        xp = backend.get_xp(dy)
        _, need_a, need_b = self.needs_input_grad
        zero = xp.zeros((), dtype=dy.dtype)
        da = unbroadcast(xp.where(self.cond, dy, zero), self.a_shape) if need_a else None
        db = unbroadcast(xp.where(self.cond, zero, dy), self.b_shape) if need_b else None
        return None, da, db
