r"""Reductions over axes: sum, mean, max, min, var.

A reduction maps x (shape S) to y (S with the reduced axes removed, or kept as 1 with keepdims).
In backward, dy is first reshaped to the keepdims shape, then broadcast back over the reduced
axes: every element of x that fed y gets a share of dy.
"""

from tinygrad_llm import backend
from tinygrad_llm.autograd import Function

__all__ = ["normalize_axis", "Sum", "Mean", "Max", "Min", "Var"]


def normalize_axis(axis, ndim, op, shape):
    """``axis`` (None, an int or a tuple, negatives allowed) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {axis} is out of range for shape {shape}")
        out.append(a % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


def _kept_shape(shape, axes):
    """The keepdims shape: reduced axes become 1."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    r"""y = sum_{axes} x  =>  dx = dy broadcast back over the summed axes"""

    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axis(axis, x.ndim, "sum", x.shape)
        self.x_shape = x.shape
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, dy):
        xp = backend.get_xp(dy)
        dy = dy.reshape(_kept_shape(self.x_shape, self.axes))
        return (xp.broadcast_to(dy, self.x_shape),)


class Mean(Function):
    r"""y = (1/n) sum_{axes} x  =>  dx = dy / n, broadcast back (n = number of elements averaged)"""

    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axis(axis, x.ndim, "mean", x.shape)
        self.x_shape = x.shape
        return x.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, dy):
        xp = backend.get_xp(dy)
        n = 1
        for a in self.axes:
            n *= self.x_shape[a]
        dy = dy.reshape(_kept_shape(self.x_shape, self.axes)) / n
        return (xp.broadcast_to(dy, self.x_shape),)


class Max(Function):
    r"""y = max_{axes} x  =>  dx = dy * [x == y] / (number of maxima)

    Ties share the gradient equally (as torch.amax does).
    """
    reduce = "max"

    def forward(self, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError(f"{self.reduce}: cannot reduce an empty tensor of shape {x.shape}")
        self.axes = normalize_axis(axis, x.ndim, self.reduce, x.shape)
        y = getattr(x, self.reduce)(axis=self.axes, keepdims=True)
        self.hit = x == y  # saved: where the extreme values sit
        return y if keepdims else y.reshape(tuple(n for i, n in enumerate(x.shape)
                                                  if i not in self.axes))

    def backward(self, dy):
        # the count in dy's dtype: an int64 count would promote float32 gradients to float64
        count = self.hit.sum(axis=self.axes, keepdims=True).astype(dy.dtype)
        dy = dy.reshape(count.shape)
        return (self.hit * (dy / count),)


class Min(Max):
    r"""y = min_{axes} x  =>  dx = dy * [x == y] / (number of minima)"""
    reduce = "min"


class Var(Function):
    r"""y = sum_{axes} (x - m)^2 / (n - ddof), with m the mean over the axes

    =>  dx = dy * 2 (x - m) / (n - ddof)   (the term through m sums to zero)
    """

    def forward(self, x, axis=None, keepdims=False, ddof=0):
        self.axes = normalize_axis(axis, x.ndim, "var", x.shape)
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        if n - ddof <= 0:
            raise ValueError(f"var: {n} elements with ddof={ddof} leave no degrees of freedom")
        self.centered = x - x.mean(axis=self.axes, keepdims=True)  # saved: x - m
        self.denom = n - ddof
        return (self.centered ** 2).sum(axis=self.axes, keepdims=keepdims) / self.denom

    def backward(self, dy):
        dy = dy.reshape(_kept_shape(self.centered.shape, self.axes))
        return (dy * (2 / self.denom) * self.centered,)
