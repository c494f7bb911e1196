r"""Gradient checking by central finite differences, for every op here and for your own.

For a function f of inputs x_1..x_k with output y, pick a random upstream gradient g (shaped like
y) and look at the scalar s = sum(g * f(x)). Autograd gives ds/dx_i by running backward with g.
(With several outputs y_1..y_m, one random g_k each: s = sum over k of sum(g_k * y_k).)
Central differences give each element independently:

    ds/dx[j] ~ (s(x + eps e_j) - s(x - eps e_j)) / (2 eps)        error O(eps^2)

The two must agree within ``atol + rtol * |numeric|``. Why float64, why a random g, and how eps
trades truncation error (eps^2) against rounding error (1e-16 / eps): docs/gradcheck.md.
"""

import numpy as np

from tinygrad_llm import backend
from tinygrad_llm.tensor import Tensor, no_grad

__all__ = ["gradcheck", "module_gradcheck", "GradcheckError", "numerical_grad"]


class GradcheckError(AssertionError):
    """Autograd and finite differences disagree; the message names each bad input."""


def _as_float64(t):
    """A float64 copy, C-contiguous so that numerical_grad's flat view writes into it."""
    return Tensor(t.data.astype("float64", order="C"), requires_grad=t.requires_grad)


def _projection(fn, inputs, upstream):
    """s = sum(upstream * fn(*inputs)), summed over the outputs when there are several."""
    ys = fn(*inputs)
    if isinstance(ys, tuple):
        return sum(float(backend.get_xp(g).sum(g * y.data)) for y, g in zip(ys, upstream))
    return float(backend.get_xp(upstream).sum(upstream * ys.data))


def numerical_grad(fn, inputs, i, upstream, eps):
    """d sum(upstream * fn(*inputs)) / d inputs[i], by central differences (float64).

    For a ``fn`` with several outputs, ``upstream`` is a list of arrays, one per output."""
    x = inputs[i].data
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)  # a view: writing flat[j] perturbs x
    with no_grad():
        for j in range(flat.size):
            old = flat[j].item()
            flat[j] = old + eps
            plus = _projection(fn, inputs, upstream)
            flat[j] = old - eps
            minus = _projection(fn, inputs, upstream)
            flat[j] = old
            grad.reshape(-1)[j] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-4, seed=None):
    """Check ``fn``'s backward against central finite differences, in float64.

    ``fn(*inputs)`` must return a Tensor, or a tuple of Tensors (a Function with several
    outputs: each gets its own random upstream gradient, and all flow back in one backward).
    Every input with ``requires_grad=True`` is checked; the inputs are converted to float64 first
    (integer inputs, such as indices, are left as they are). Returns True, or raises
    ``GradcheckError`` naming each bad input with its worst element.
    """
    rng = np.random.default_rng(seed)
    inputs = [_as_float64(t) if isinstance(t, Tensor) and t.dtype.kind == "f" else t
              for t in inputs]
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    ys = fn(*inputs)
    outputs = ys if isinstance(ys, tuple) else (ys,)
    for y in outputs:
        if not isinstance(y, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got "
                            f"{type(y).__name__}")
        if y.dtype != np.float64:
            raise GradcheckError(f"gradcheck: fn returned {y.dtype} for float64 inputs; an op "
                                 "downcasts, so finite differences would be meaningless")
        if not y.requires_grad:
            raise GradcheckError("gradcheck: the output does not require grad: no graph was "
                                 "recorded (is fn running under no_grad, or detaching?)")
    # A random projection (docs/gradcheck.md), drawn on the host and moved to y's device.
    upstreams = [backend.to_device(rng.standard_normal(y.shape), y.device) for y in outputs]
    for i in checked:
        inputs[i].grad = None
    if len(outputs) == 1:
        outputs[0].backward(Tensor._wrap(upstreams[0]))
        upstream = upstreams[0]
    else:  # s = sum_k sum(g_k * y_k): one backward through all the outputs together
        sum(((y * Tensor._wrap(g)).sum() for y, g in zip(outputs, upstreams))).backward()
        upstream = upstreams
    failures = []
    for i in checked:
        analytic = inputs[i].grad.numpy() if inputs[i].grad is not None else np.zeros(
            inputs[i].shape)
        numeric = numerical_grad(fn, inputs, i, upstream, eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and err.max() > 0:
            j = np.unravel_index(int(err.argmax()), err.shape)
            failures.append(f"input {i} (shape {inputs[i].shape}): at index {tuple(map(int, j))} "
                            f"autograd gives {analytic[j]:.8g}, finite differences "
                            f"{numeric[j]:.8g}")
    if failures:
        raise GradcheckError("gradcheck failed:\n  " + "\n  ".join(failures))
    return True


def module_gradcheck(module, call, inputs=(), *, seed=None, **tolerances):
    """gradcheck ``call(*inputs)`` over the inputs *and* every parameter of ``module``.

    ``module`` is converted to float64 for good. gradcheck differentiates with respect to
    float64 copies of its inputs, so the function it checks puts the copies of the parameters
    into the module (every name of a tied parameter, such as a GPT's ``lm_head.weight`` and
    ``transformer.wte.weight``, gets the same copy: it is checked once) for the duration of each
    call, then puts the originals back. ``tolerances``: gradcheck's eps, atol, rtol.

        model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=4))
        module_gradcheck(model, lambda: model(idx, targets)[1])
    """
    module.to(dtype="float64")
    owners = dict(module.named_modules())
    slots, index = [], {}                    # (owning module, attribute, parameter number)
    for name, p in module.named_parameters(remove_duplicate=False):
        prefix, _, attr = name.rpartition(".")
        index.setdefault(id(p), len(index))
        slots.append((owners[prefix], attr, index[id(p)]))
    params = {index[id(p)]: p for p in module.parameters()}
    n = len(inputs)

    def fn(*args):
        for owner, attr, i in slots:
            object.__setattr__(owner, attr, args[n + i])
        try:
            return call(*args[:n])
        finally:
            for owner, attr, i in slots:
                object.__setattr__(owner, attr, params[i])

    return gradcheck(fn, [*inputs, *(params[i] for i in range(len(params)))], seed=seed,
                     **tolerances)
