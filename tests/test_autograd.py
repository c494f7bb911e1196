"""tinygrad_llm/autograd.py's graph machinery: Function.apply, backward, no_grad, detect_anomaly.

Accumulation, diamonds, no_grad (context and decorator), a 10,000-op chain, the forward order
that backward runs in reverse, the graph freed after backward (weakref), retain_graph, detach,
backward misuse, anomaly detection, mixed devices, and Functions with several outputs.
On "cpu" and the CuPy stand-in "cuda".
"""

import gc
import math
import weakref

import numpy as np
import pytest

import tinygrad_llm as tg
import tinygrad_llm.nn.functional as F
from tinygrad_llm import Function, Tensor
from tinygrad_llm.testing import gradcheck


def test_a_tensor_used_twice_accumulates(device):
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True, device=device)
    (x * x + x).sum().backward()               # d/dx (x^2 + x) = 2x + 1
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, -3.0, 7.0])
    x.zero_grad()
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_gradients_accumulate_across_backward_calls_until_zeroed(device):
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True, device=device)
    for _ in range(3):
        (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [9.0, 9.0])
    x.zero_grad()
    assert x.grad is None


def test_diamond_graph(device):
    # a = 2x;  y = exp(a) * tanh(a)  =>  dy/dx = 2 (exp(a) tanh(a) + exp(a) (1 - tanh(a)^2))
    v = np.array([0.3, -0.7])
    x = Tensor(v, requires_grad=True, device=device)
    a = x * 2
    (a.exp() * a.tanh()).sum().backward()
    ea, ta = np.exp(2 * v), np.tanh(2 * v)
    np.testing.assert_allclose(x.grad.numpy(), 2 * (ea * ta + ea * (1 - ta ** 2)), rtol=1e-12)
    assert gradcheck(lambda x: (x * 2).exp() * (x * 2).tanh() + (x * 2), [x])


def test_only_leaves_keep_grad_and_constants_get_none(device):
    x = Tensor(np.ones(2), requires_grad=True, device=device)
    c = Tensor(np.ones(2), device=device)
    h = x * c
    (h * 2).sum().backward()
    assert h.grad is None and c.grad is None and x.grad is not None
    assert not c.requires_grad and h.requires_grad and not h.is_leaf and x.is_leaf


def test_no_grad_records_nothing_as_context_and_decorator(device):
    x = Tensor(np.ones(3), requires_grad=True, device=device)
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = (x * 2).exp()
        with tg.enable_grad():
            z = x * 2
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert z.requires_grad and z._ctx is not None

    @tg.no_grad()
    def evaluate(x):
        return (x * x).sum()
    out = evaluate(x)
    assert not out.requires_grad and out._ctx is None
    assert tg.is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        out.backward()


def test_no_grad_decorator_can_reenter():
    @tg.no_grad()
    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)
    depth(3)                                  # one decorator instance, entered 4 times
    assert tg.is_grad_enabled()
    with tg.no_grad():
        depth(2)
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_a_10000_op_chain_needs_no_recursion(device):
    x = Tensor(np.array([1.0]), requires_grad=True, device=device)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-9)


def test_forward_order_puts_each_function_after_the_makers_of_its_inputs():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    a, b = x.exp(), x.tanh()                   # two branches that meet in a product
    y = a * b
    order = tg.autograd.forward_order(y._ctx, "freed")
    assert order == [b._ctx, a._ctx, y._ctx]                     # the last input's branch first
    assert tg.autograd.forward_order(y._ctx, "freed", first_input_first=True) == [
        a._ctx, b._ctx, y._ctx]
    y.sum().backward()
    with pytest.raises(RuntimeError, match="^freed$"):
        tg.autograd.forward_order(y._ctx, "freed")


def test_the_graph_is_freed_after_backward(device):
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True, device=device)
    h = x.exp()                       # an intermediate tensor and its Function
    h_ref, fn_ref = weakref.ref(h), weakref.ref(h._ctx)
    y = (h * h).sum()
    del h
    assert h_ref() is not None        # the graph holds it until backward
    y.backward()
    gc.collect()
    assert h_ref() is None and fn_ref() is None
    assert y._ctx.inputs is None
    with pytest.raises(RuntimeError, match="second time, but it was freed.*retain_graph=True"):
        y.backward()


def test_functions_hold_their_output_weakly(device):
    x = Tensor(np.ones(2), requires_grad=True, device=device)
    y = x * 2
    fn = y._ctx
    assert fn.outputs[0]() is y
    del y
    gc.collect()
    assert fn.outputs[0]() is None    # no Tensor <-> Function reference cycle


def test_retain_graph_allows_a_second_backward(device):
    x = Tensor(np.array([2.0]), requires_grad=True, device=device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0])


RETAIN_CASES = {
    "cross_entropy": lambda x: F.cross_entropy(x, [0, 2, 1]),
    "cross_entropy_none": lambda x: F.cross_entropy(x, [0, 2, 1], reduction="none").sum(),
    "softmax": lambda x: (F.softmax(x) * x).sum(),
    "log_softmax": lambda x: (F.log_softmax(x, axis=0) * x).sum(),
    "layer_norm": lambda x: (F.layer_norm(x) * x).sum(),
    "gelu": lambda x: F.gelu(x).sum(),
    "linear": lambda x: F.linear(x, x).sum(),
    "embedding": lambda x: F.embedding([0, 0, 2], x).sum(),
    "bce_with_logits": lambda x: F.binary_cross_entropy_with_logits(x, np.ones((3, 3))),
    "max": lambda x: x.max(axis=1).sum(),
    "var": lambda x: x.var(),
    "where": lambda x: tg.where(x > 0, x * 2, x).sum(),
    "getitem": lambda x: x[[0, 0, 1]].sum(),
}


@pytest.mark.parametrize("op", list(RETAIN_CASES))
def test_retain_graph_twice_doubles_every_gradient(device, op):
    """A backward must not consume what forward saved (e.g. update a saved buffer in place)."""
    a = np.random.default_rng(0).standard_normal((3, 3))
    x = Tensor(a, requires_grad=True, device=device)
    RETAIN_CASES[op](x).backward()
    once = x.grad.numpy().copy()
    x.zero_grad()
    y = RETAIN_CASES[op](x)
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * once, rtol=1e-12)


def test_detach_cuts_the_graph_and_shares_data(device):
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True, device=device)
    h = x * 3
    d = h.detach()
    assert not d.requires_grad and d._ctx is None and d.data is h.data
    (h * d).sum().backward()          # d is a constant: dx = 3 * d
    np.testing.assert_array_equal(x.grad.numpy(), [9.0, 18.0])


def test_backward_misuse_raises_clear_errors(device):
    x = Tensor(np.ones((2, 2)), requires_grad=True, device=device)
    with pytest.raises(RuntimeError, match=r"implicitly created only for scalar outputs.*"
                                           r"shape \(2, 2\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2), device=device).sum().backward()
    with pytest.raises(ValueError, match=r"backward: grad has shape \(3,\), but the tensor has "
                                         r"shape \(2, 2\)"):
        (x * 2).backward(np.ones(3))


def test_backward_with_an_explicit_gradient(device):
    x = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True, device=device)
    (x * 2).backward([[1.0, 2.0], [3.0, 4.0]])     # a list, moved to x's device and dtype
    np.testing.assert_array_equal(x.grad.numpy(), [[2, 4], [6, 8]])
    assert x.grad.dtype == np.float32 and x.grad.device == device
    x.zero_grad()
    x.backward(Tensor(np.ones((2, 2)), device=device))  # a leaf takes the gradient as it is
    np.testing.assert_array_equal(x.grad.numpy(), 1)


def test_a_backward_of_the_wrong_shape_is_caught(device):
    class Bad(Function):
        def forward(self, x):
            return x * 2

        def backward(self, dy):
            return (dy.sum(),)

    x = Tensor(np.ones(3), requires_grad=True, device=device)
    with pytest.raises(RuntimeError, match=r"gradient of shape \(\) for a tensor of shape \(3,\)"):
        Bad.apply(x).sum().backward()


def test_a_backward_may_return_none_for_an_input_that_requires_grad(device):
    class Stop(Function):
        def forward(self, x):
            return x * 1

        def backward(self, dy):
            return (None,)

    x = Tensor(np.ones(2), requires_grad=True, device=device)
    h = x * 2
    (Stop.apply(h) + x).sum().backward()     # nothing reaches h; x still gets its 1
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_custom_function_gets_raw_arrays_kwargs_and_needs_input_grad(device):
    seen = {}

    class ScaledMul(Function):
        r"""y = x * z * scale  =>  dx = dy * z * scale,  dz = dy * x * scale"""

        def forward(self, x, z, scale, *, offset=0.0):
            seen["types"] = (type(x), type(z), scale, offset)
            self.x, self.z, self.scale = x, z, scale
            return x * z * scale + offset

        def backward(self, dy):
            seen["needs"] = self.needs_input_grad
            need_x, need_z, _ = self.needs_input_grad
            return (dy * self.z * self.scale if need_x else None,
                    dy * self.x * self.scale if need_z else None, None)

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True, device=device)
    z = Tensor(np.array([3.0, 4.0]), device=device)
    y = ScaledMul.apply(x, z, 2.0, offset=1.0)
    assert seen["types"] == (type(x.data), type(z.data), 2.0, 1.0)
    np.testing.assert_array_equal(y.numpy(), [7.0, 17.0])
    y.sum().backward()
    assert seen["needs"] == (True, False, False)
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 8.0])
    assert gradcheck(lambda x: ScaledMul.apply(x, z, 2.0), [x])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_detect_anomaly_names_the_op(device):
    x = Tensor(np.array([-1.0, 1.0]), requires_grad=True, device=device)
    with tg.detect_anomaly():
        with pytest.raises(FloatingPointError, match="the forward of Log produced NaN or Inf"):
            x.log()
        z = Tensor(np.array([0.0, 1.0]), requires_grad=True, device=device)
        y = z.sqrt().sum()            # finite forward, infinite backward at 0
        with pytest.raises(FloatingPointError, match="the backward of Sqrt produced NaN or Inf"):
            y.backward()
        with pytest.raises(FloatingPointError, match="the forward of Sum"):
            Tensor(np.array([1e308, 1e308]), device=device).sum()  # overflow in a reduction
    assert math.isnan(x.log().numpy()[0])  # off again outside the context


def test_mixed_devices_error_names_op_and_both_devices(fake_cuda):
    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.ones(2), device="cuda")
    for f, name in ((lambda: a + b, "Add"), (lambda: b * a, "Mul"), (lambda: a @ b, "MatMul"),
                    (lambda: tg.concatenate([a, b]), "Concatenate")):
        with pytest.raises(ValueError, match=rf"{name}: inputs are on different devices "
                                             r"\((cpu and cuda|cuda and cpu)\)"):
            f()


# ---- Functions with several outputs ----------------------------------------------------------
class SinCos(Function):
    r"""s = sin x, c = cos x  =>  dx = ds cos x - dc sin x"""

    def forward(self, x):
        xp = tg.backend.get_xp(x)
        self.x = x                               # saved: both derivatives need x
        return xp.sin(x), xp.cos(x)

    def backward(self, ds, dc):
        xp = tg.backend.get_xp(self.x)
        self.received = (ds is not None, dc is not None)
        dx = xp.zeros_like(self.x)
        if ds is not None:
            dx = dx + ds * xp.cos(self.x)
        if dc is not None:
            dx = dx - dc * xp.sin(self.x)
        return dx


class MaxAndIndex(Function):
    r"""m = max_j x[..., j], i = argmax_j x[..., j]  =>  dx[..., i] = dm (the index has no grad)"""

    def forward(self, x):
        self.shape, self.i = x.shape, x.argmax(axis=-1)        # saved: where the max was
        return x.max(axis=-1), self.i

    def backward(self, dm, di):
        assert di is None                        # an integer output never carries a gradient
        xp = tg.backend.get_xp(dm)
        onehot = self.i[..., None] == xp.arange(self.shape[-1])             # (..., J)
        return onehot * dm[..., None]


def test_a_two_output_function_passes_gradcheck_through_both_outputs():
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda t: SinCos.apply(t), [x], seed=1)
    assert gradcheck(lambda t: SinCos.apply(t * 2)[1] * 3, [x], seed=2)   # one output used


def test_apply_returns_a_tuple_and_each_output_knows_its_place(device):
    x = Tensor(np.array([0.5, 1.0]), requires_grad=True, device=device)
    s, c = SinCos.apply(x)
    assert s._ctx is c._ctx and (s._output_index, c._output_index) == (0, 1)
    assert [r() for r in s._ctx.outputs] == [s, c]
    np.testing.assert_allclose(s.numpy(), np.sin([0.5, 1.0]))
    np.testing.assert_allclose(c.numpy(), np.cos([0.5, 1.0]))


@pytest.mark.parametrize("use", ["both", "sin", "cos"])
def test_an_unused_output_sends_none_and_the_rest_flows(device, use):
    x0 = np.array([0.3, -1.2, 2.0])
    x = Tensor(x0, requires_grad=True, device=device)
    s, c = SinCos.apply(x)
    fn = s._ctx
    loss = {"both": (s * c).sum(), "sin": (s * 2).sum(), "cos": c.sum()}[use]
    loss.backward(retain_graph=True)
    expected = {"both": np.cos(2 * x0), "sin": 2 * np.cos(x0), "cos": -np.sin(x0)}[use]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
    assert fn.received == {"both": (True, True), "sin": (True, False), "cos": (False, True)}[use]


def test_gradients_of_one_output_used_twice_add_up_before_its_backward(device):
    x = Tensor(np.array([0.7]), requires_grad=True, device=device)
    s, c = SinCos.apply(x)
    (s * s + s + c).sum().backward()          # d/dx (sin^2 + sin + cos) = (2 sin + 1) cos - sin
    expected = (2 * np.sin(0.7) + 1) * np.cos(0.7) - np.sin(0.7)
    np.testing.assert_allclose(x.grad.numpy(), [expected], rtol=1e-12)


def test_backward_may_start_at_any_output(device):
    x = Tensor(np.array([0.2, 0.4]), requires_grad=True, device=device)
    _, c = SinCos.apply(x)
    c.backward(np.ones(2))
    np.testing.assert_allclose(x.grad.numpy(), -np.sin([0.2, 0.4]), rtol=1e-12)


def test_an_integer_output_does_not_require_grad(device):
    x = Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]), requires_grad=True, device=device)
    m, i = MaxAndIndex.apply(x)
    assert m.requires_grad and not i.requires_grad and i._ctx is None
    np.testing.assert_array_equal(i.numpy(), [1, 0])
    (m * Tensor(np.array([2.0, 3.0]), device=device)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 2, 0], [3, 0, 0]])


def test_several_outputs_under_no_grad_record_nothing(device):
    x = Tensor(np.array([0.1]), requires_grad=True, device=device)
    with tg.no_grad():
        s, c = SinCos.apply(x)
    assert not s.requires_grad and s._ctx is None and c._ctx is None
