"""A user's own Function: the engine takes its backward's gradients in the documented forms."""

import numpy as np
import pytest

from tinygrad_llm import Function, Tensor
from tinygrad_llm.testing import gradcheck


class Cube(Function):
    r"""y = x^3  =>  dx = dy * 3 x^2 (returned bare, not in a tuple)"""

    def forward(self, x):
        self.x = x
        return x ** 3

    def backward(self, dy):
        return dy * 3 * self.x ** 2


class TwoGradsForOneInput(Function):
    def forward(self, x):
        return x * 2

    def backward(self, dy):
        return (dy * 2, dy)


def test_one_input_function_may_return_a_bare_gradient():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 5)), requires_grad=True)
    assert gradcheck(lambda t: Cube.apply(t), [x])
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * x.numpy() ** 2)


def test_wrong_number_of_gradients_names_the_function():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="TwoGradsForOneInput.backward returned 2 gradients "
                                           "for 1 inputs"):
        TwoGradsForOneInput.apply(x).sum().backward()
