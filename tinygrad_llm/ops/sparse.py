r"""Row-sparse gradients for embedding tables: ``Embedding(..., sparse=True)``.

A lookup ``y = W[ids]`` touches only the rows ``ids`` of the table W (V, D), so its gradient is
zero everywhere else:

    dW[v] = sum of dy[n] over every n with ids[n] = v

The dense backward builds that (V, D) array, mostly zeros, and the optimizer then reads and
writes all V rows. Word2Vec touches a few thousand rows of a large table per step, so instead the
sparse backward returns the pair (indices, values) = (ids, dy) as a ``RowSparseGrad``, without
summing repeated ids. ``SGD`` applies it to the touched rows only, by a scatter-add in which
repeated rows add up:

    W[indices[n]] -= lr * values[n]      for every n

That is exactly the dense step ``W -= lr dW``. Only plain SGD (no momentum, no weight decay)
takes a row-sparse gradient: momentum and Adam's moments would have to decay every row at every
step, which is dense again. The sparse table must be a leaf tensor (a Parameter). Gradients from
several uses of one table accumulate by concatenation (and into a dense gradient by scatter-add).
``to_dense()`` gives the dense array, which the tests compare with the dense backward. The
engine adds a row-sparse gradient into a leaf through ``RowSparseGrad.accumulate_grad``.
"""

from tinygrad_llm import backend
from tinygrad_llm.autograd import TensorBase
from tinygrad_llm.kernels.cpu import scatter_add
from tinygrad_llm.ops.nn import Embedding

__all__ = ["RowSparseGrad", "SparseEmbedding"]

_ONLY_SGD = ("a row-sparse gradient (from Embedding(..., sparse=True)) supports only plain SGD "
             "(no momentum or weight decay); call .to_dense() or use sparse=False")


class RowSparseGrad:
    r"""The gradient of a (V, D) table as rows: ``dense[indices[n]] += values[n]``.

    ``indices`` (N,) integers, may repeat; ``values`` (N, D); ``shape`` the table's (V, D).
    ``.data`` is the object itself, so optimizers that read ``p.grad.data`` get it.
    """

    __array_ufunc__ = None  # so ndarray + RowSparseGrad calls our __radd__

    def __init__(self, indices, values, shape):
        if values.ndim != 2 or indices.shape != values.shape[:1] or values.shape[1] != shape[1]:
            raise ValueError(f"RowSparseGrad: indices {indices.shape} and values {values.shape} "
                             f"do not fit a table of shape {tuple(shape)}")
        self.indices, self.values, self.shape = indices, values, tuple(shape)

    data = property(lambda self: self)
    dtype = property(lambda self: self.values.dtype)
    device = property(lambda self: backend.device_of(self.values))
    ndim = property(lambda self: len(self.shape))

    def to_dense(self):
        """The dense (V, D) gradient: zeros, plus a scatter-add of the rows."""
        xp = backend.get_xp(self.values)
        dense = xp.zeros(self.shape, dtype=self.values.dtype)                  # (V, D)
        return scatter_add(dense, self.indices, self.values)

    def numpy(self):
        return backend.to_numpy(self.to_dense())

    def coalesce(self):
        """The same gradient with each row once (repeated indices summed), indices sorted."""
        xp = backend.get_xp(self.values)
        rows, inverse = xp.unique(self.indices, return_inverse=True)
        values = xp.zeros((len(rows), self.shape[1]), dtype=self.values.dtype)  # (U, D)
        scatter_add(values, inverse.reshape(-1), self.values)
        return RowSparseGrad(rows, values, self.shape)

    def __add__(self, other):
        if isinstance(other, RowSparseGrad):                    # rows of both, side by side
            xp = backend.get_xp(self.values)
            return RowSparseGrad(xp.concatenate([self.indices, other.indices]),
                                 xp.concatenate([self.values, other.values]), self.shape)
        other = other.data if isinstance(other, TensorBase) else other
        return scatter_add(other.copy(), self.indices, self.values)   # dense result

    __radd__ = __add__

    @staticmethod
    def accumulate_grad(grad, dx, leaf):
        """The new ``leaf.grad`` after adding ``dx``, when either side is row-sparse.

        The engine (``TensorBase._accumulate``) calls this for any leaf whose gradient or incoming
        ``dx`` is a RowSparseGrad. ``grad`` is None, a Tensor or a RowSparseGrad; ``dx`` an array
        or a RowSparseGrad. The first sparse gradient's values are copied, as the dense path
        copies its first gradient.
        """
        if dx.shape != leaf.shape:
            raise RuntimeError(f"backward: gradient of shape {dx.shape} for a tensor of shape "
                               f"{leaf.shape}")
        if grad is None:
            if isinstance(dx, RowSparseGrad):
                return RowSparseGrad(dx.indices, dx.values.astype(leaf.dtype, copy=True),
                                     leaf.shape)
            return leaf._wrap(dx.astype(leaf.dtype, copy=True))
        if isinstance(grad, RowSparseGrad):
            total = grad + dx                                    # sparse + sparse stays sparse
            return total if isinstance(total, RowSparseGrad) else leaf._wrap(total)
        scatter_add(grad.data, dx.indices, dx.values)            # dense + sparse, in place
        return grad

    def _unsupported(self, *args):
        raise TypeError(_ONLY_SGD)

    __mul__ = __rmul__ = __sub__ = __rsub__ = __truediv__ = __pow__ = __neg__ = _unsupported
    __imul__ = __isub__ = __itruediv__ = _unsupported

    def __repr__(self):
        return (f"RowSparseGrad({len(self.indices)} rows of a {self.shape} table, "
                f"dtype={self.dtype})")


class SparseEmbedding(Embedding):
    r"""y = W[ids], with a row-sparse gradient for W.

    Forward: y = W[ids], shape ids.shape + (D,). Backward: dW = RowSparseGrad(ids.ravel(),
    dy.reshape(-1, D)), meaning dW[v] = sum of dy over every position whose id is v.
    """

    # forward is the dense Embedding's (ops/nn.py): checks the ids, saves them, gathers W[ids]

    def backward(self, dy):
        D = self.w_shape[1]
        return None, RowSparseGrad(self.ids.reshape(-1), dy.reshape(-1, D), self.w_shape)
