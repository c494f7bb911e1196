"""tinygrad_llm/testing/strategies.py: each strategy gives what it promises, and the docstring's
example (proving a user-written op with gradcheck over hypothesis shapes) works."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_llm import Function, Tensor
from tinygrad_llm.testing import gradcheck
from tinygrad_llm.testing import strategies as tst


@given(tst.shapes(min_dims=1, max_dims=3, min_side=2, max_side=5))
def test_shapes(shape):
    assert 1 <= len(shape) <= 3 and all(2 <= n <= 5 for n in shape)


@given(tst.broadcast_pairs(), tst.broadcast_triples())
def test_broadcast_shapes_broadcast(pair, triple):
    assert len(pair) == 2 and len(triple) == 3
    np.broadcast_shapes(*pair)
    np.broadcast_shapes(*triple)


@given(tst.matmul_shapes())
def test_matmul_shapes_are_valid(shapes):
    np.matmul(np.ones(shapes[0]), np.ones(shapes[1]))


@given(st.data())
def test_float_arrays_ranges(data):
    a = data.draw(tst.float_arrays((3, 2), low=-1, high=5))
    assert a.shape == (3, 2) and a.dtype == np.float64 and -1 <= a.min() and a.max() <= 5
    p = data.draw(tst.float_arrays(tst.shapes(), positive=True))
    assert (p >= 0.1).all()
    m = data.draw(tst.float_arrays((4,), min_magnitude=0.5))
    assert (np.abs(m) >= 0.5).all()
    f = data.draw(tst.float_arrays((2,), dtype="float32"))
    assert f.dtype == np.float32


@given(tst.distinct_float_arrays(tst.shapes(min_dims=1), gap=0.1))
def test_distinct_float_arrays_have_no_near_ties(a):
    v = np.sort(a.ravel())
    assert (np.diff(v) >= 0.1 - 1e-12).all()


@given(tst.index_arrays(4, (10,)), tst.index_arrays(3, (2, 2), negative=True))
def test_index_arrays(idx, neg):
    assert idx.dtype == np.int64 and 0 <= idx.min() and idx.max() < 4
    assert -3 <= neg.min() and neg.max() < 3 and neg.shape == (2, 2)


@given(st.data())
def test_reduction_axes_are_valid_for_numpy(data):
    shape = data.draw(tst.shapes())
    axis = data.draw(tst.reduction_axes(len(shape)))
    np.sum(np.ones(shape), axis=axis)


@given(tst.tensors((2, 3), positive=True))
def test_tensors(t):
    assert isinstance(t, Tensor) and t.requires_grad and t.shape == (2, 3)


class Cube(Function):
    r"""y = x^3  =>  dx = dy * 3 x^2   (the docs' example of a user-written op)"""

    def forward(self, x):
        self.x = x                     # saved: backward needs x
        return x ** 3

    def backward(self, dy):
        return (dy * 3 * self.x ** 2,)


class Hypot(Function):
    r"""y = sqrt(a^2 + b^2), broadcasting  =>  da = dy a / y,  db = dy b / y"""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = (a * a + b * b) ** 0.5
        return self.y

    def backward(self, dy):
        from tinygrad_llm.ops.basic import unbroadcast
        return (unbroadcast(dy * self.a / self.y, self.a.shape),
                unbroadcast(dy * self.b / self.y, self.b.shape))


@given(tst.shapes(), st.data())
def test_a_user_written_op_proved_with_gradcheck(shape, data):
    x = tst.tensor(data, shape)
    assert gradcheck(lambda x: Cube.apply(x), [x])


@given(tst.broadcast_pairs(), st.data())
def test_a_user_written_broadcasting_op(shapes, data):
    a = tst.tensor(data, shapes[0], positive=True)
    b = tst.tensor(data, shapes[1], positive=True)
    assert gradcheck(lambda a, b: Hypot.apply(a, b), [a, b])
