r"""Hypothesis strategies for testing ops: shapes, broadcast-compatible shape pairs and triples,
float arrays with controlled ranges, integer index arrays, reduction axes and tensors.

Made for ``gradcheck`` (docs/gradcheck.md): shapes stay small by default (finite differences cost
two forward passes per input element), and float arrays can keep away from the points where an
op is not differentiable (``min_magnitude`` for relu and abs at 0, ``positive`` for log and sqrt,
``distinct_float_arrays`` for max and min, whose gradient jumps where two elements tie).

Example: prove a user-written op on random shapes, broadcasting included::

    from hypothesis import given
    from tinygrad_llm.testing import gradcheck, strategies as tst

    @given(tst.broadcast_pairs(), tst.data())
    def test_my_op(shapes, data):
        a = tst.tensor(data, shapes[0])
        b = tst.tensor(data, shapes[1], positive=True)
        assert gradcheck(lambda a, b: MyOp.apply(a, b), [a, b])

This module needs ``hypothesis`` (a dev dependency); ``import tinygrad_llm`` does not import it.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_llm.tensor import Tensor

__all__ = ["shapes", "broadcast_shapes", "broadcast_pairs", "broadcast_triples",
           "matmul_shapes", "float_arrays", "distinct_float_arrays", "index_arrays",
           "reduction_axes", "tensors", "tensor", "data"]

data = st.data  # re-exported, for tests that draw inside their body (see tensor())


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Array shapes: tuples of ``min_dims..max_dims`` sizes, each in ``min_side..max_side``."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcast_shapes(num_shapes, min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Tuples of ``num_shapes`` shapes that broadcast together (some sizes 1, some dims missing)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda r: r.input_shapes)


def broadcast_pairs(**kwargs):
    """Pairs of shapes for a binary elementwise op: ``(shape_a, shape_b)``."""
    return broadcast_shapes(2, **kwargs)


def broadcast_triples(**kwargs):
    """Triples of shapes for a ternary op such as ``where(cond, a, b)``."""
    return broadcast_shapes(3, **kwargs)


def matmul_shapes(max_dims=4, max_side=4):
    """Pairs of shapes ``np.matmul`` accepts: 1-D, 2-D and batched with broadcasting."""
    return hnp.mutually_broadcastable_shapes(
        signature="(m?,n),(n,p?)->(m?,p?)", max_dims=max_dims, min_side=1,
        max_side=max_side).map(lambda r: r.input_shapes)


def _elements(low, high, positive, min_magnitude, dtype):
    if positive:
        low = max(low, 0.1)  # far enough from 0 that log, sqrt and 1/x stay well conditioned
    if low > high:
        raise ValueError(f"float_arrays: empty range [{low}, {high}]")
    width = np.dtype(dtype).itemsize * 8
    kw = dict(allow_nan=False, allow_infinity=False, width=width)
    if min_magnitude <= 0:
        return st.floats(low, high, **kw)
    parts = []
    if high >= min_magnitude:
        parts.append(st.floats(max(low, min_magnitude), high, **kw))
    if low <= -min_magnitude:
        parts.append(st.floats(low, min(high, -min_magnitude), **kw))
    if not parts:
        raise ValueError(f"float_arrays: no value in [{low}, {high}] has |x| >= {min_magnitude}")
    return st.one_of(*parts)


def float_arrays(shape, *, low=-2.0, high=2.0, positive=False, min_magnitude=0.0,
                 dtype="float64"):
    """NumPy float arrays of ``shape`` (a tuple, or a strategy of tuples).

    Elements lie in ``[low, high]``; ``positive=True`` raises ``low`` to 0.1 (for log, sqrt,
    division); ``min_magnitude`` keeps ``|x|`` at least that far from 0 (for relu, abs).
    """
    return hnp.arrays(np.dtype(dtype), shape,
                      elements=_elements(low, high, positive, min_magnitude, dtype),
                      fill=st.nothing())


@st.composite
def distinct_float_arrays(draw, shape, gap=0.05, dtype="float64"):
    """Float arrays whose elements differ pairwise by at least ``gap``: no ties, so max, min and
    sort are differentiable at every draw (and finite differences never step across a tie)."""
    shape = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    n = int(np.prod(shape))
    order = draw(st.permutations(range(n)))
    offset = draw(st.floats(-1, 1))
    return ((np.array(order, dtype=np.float64) - n / 2) * gap + offset).reshape(shape).astype(
        dtype)


def index_arrays(size, shape, *, negative=False, dtype="int64"):
    """Integer arrays of ``shape`` indexing an axis of length ``size``: values in ``[0, size)``,
    or ``[-size, size)`` with ``negative=True``. Repeats are allowed (and are the point: their
    gradients must add up)."""
    if size < 1:
        raise ValueError("index_arrays: size must be at least 1")
    return hnp.arrays(np.dtype(dtype), shape,
                      elements=st.integers(-size if negative else 0, size - 1))


@st.composite
def reduction_axes(draw, ndim):
    """An ``axis`` argument for a reduction over ``ndim`` dimensions: None, an int (maybe
    negative) or a tuple of distinct ints."""
    kind = draw(st.sampled_from(["none", "int", "tuple"] if ndim else ["none"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return tuple(draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                               unique=True)))


def tensors(shape, *, requires_grad=True, device=None, **kwargs):
    """Tensors of ``shape`` whose data comes from ``float_arrays(shape, **kwargs)``."""
    return float_arrays(shape, **kwargs).map(
        lambda a: Tensor(a, requires_grad=requires_grad, device=device))


def tensor(data, shape, **kwargs):
    """Draw one tensor inside a test that takes ``data = strategies.data()``."""
    return data.draw(tensors(shape, **kwargs))
