r"""tinygrad_llm.optim.adam_update_, the one Adam/AdamW update every path runs: on a flat buffer
it gives the bits it gives parameter by parameter (float32 and float64, several steps, Adam's L2
and AdamW's decoupled weight decay); it is its docstring's lines, one rounding each, in order
(the order kernels/adamw.cu follows); and it agrees with the readable reference."""

import math

import numpy as np
import pytest

from tinygrad_llm import backend, reference
from tinygrad_llm.optim import adam_update_

SIZES = [12, 5, 1, 30]           # four parameters, back to back in one flat buffer
DECAYS = [(0.0, False), (0.1, False), (0.1, True)]   # (weight_decay, decoupled): none, L2, AdamW
HYPER = dict(lr=3e-3, beta1=0.9, beta2=0.99, eps=1e-8)


def _arrays(rng, dtype, steps):
    p = rng.standard_normal(sum(SIZES)).astype(dtype)
    gs = [rng.standard_normal(sum(SIZES)).astype(dtype) for _ in range(steps)]
    return p, gs


def _documented(p, g, m, v, *, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    """adam_update_'s docstring, one operation per rounding, on new arrays: every Python float
    is rounded once to the dtype (as NumPy does with a Python scalar)."""
    c = p.dtype.type
    if weight_decay and decoupled:
        p = p * c(1 - lr * weight_decay)
    elif weight_decay:
        g = g + c(weight_decay) * p
    m = m * c(beta1) + g * c(1 - beta1)
    v = v * c(beta2) + (g * g) * c(1 - beta2)
    denom = np.sqrt(v) * c(1 / math.sqrt(1 - beta2 ** step)) + c(eps)
    p = p - (m / denom) * c(lr / (1 - beta1 ** step))
    return p, m, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay,decoupled", DECAYS)
def test_one_flat_call_equals_one_call_per_parameter(dtype, weight_decay, decoupled, device):
    rng = np.random.default_rng(0)
    p0, gs = _arrays(rng, dtype, steps=5)
    move = lambda a: backend.to_device(a, device)  # noqa: E731
    flat = {name: move(a.copy()) for name, a in
            [("p", p0), ("m", np.zeros_like(p0)), ("v", np.zeros_like(p0))]}
    scratch = move(np.empty_like(p0))
    edges = np.cumsum([0] + SIZES)
    # per parameter: separate arrays (no views of one buffer), in the shapes of a model's
    shapes = [(3, 4), (5,), (1,), (2, 3, 5)]
    per = [{name: move(a[lo:hi].copy().reshape(shape)) for name, a in
            [("p", p0), ("m", np.zeros_like(p0)), ("v", np.zeros_like(p0))]}
           for lo, hi, shape in zip(edges[:-1], edges[1:], shapes)]
    for step, g in enumerate(gs, start=1):
        kwargs = dict(HYPER, weight_decay=weight_decay, step=step, decoupled=decoupled)
        adam_update_(flat["p"], move(g), flat["m"], flat["v"], scratch, **kwargs)
        for lo, hi, shape, arrays in zip(edges[:-1], edges[1:], shapes, per):
            adam_update_(arrays["p"], move(g[lo:hi].reshape(shape)), arrays["m"], arrays["v"],
                         **kwargs)                        # scratch=None: it allocates its own
        for name in ("p", "m", "v"):
            whole = np.concatenate([backend.to_numpy(a[name]).ravel() for a in per])
            np.testing.assert_array_equal(backend.to_numpy(flat[name]), whole, err_msg=name)
            assert flat[name].dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay,decoupled", DECAYS)
def test_the_update_is_its_documented_order_to_the_last_bit(dtype, weight_decay, decoupled):
    rng = np.random.default_rng(1)
    p0, gs = _arrays(rng, dtype, steps=5)
    p, m, v, scratch = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), np.empty_like(p0)
    ep, em, ev = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for step, g in enumerate(gs, start=1):
        kwargs = dict(HYPER, weight_decay=weight_decay, step=step, decoupled=decoupled)
        kept = g.copy()
        adam_update_(p, g, m, v, scratch, **kwargs)
        np.testing.assert_array_equal(g, kept)            # the gradient is only read
        ep, em, ev = _documented(ep, g, em, ev, **kwargs)
        np.testing.assert_array_equal(p, ep)
        np.testing.assert_array_equal(m, em)
        np.testing.assert_array_equal(v, ev)
        assert p.dtype == m.dtype == v.dtype == dtype


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("weight_decay,decoupled", DECAYS)
def test_agrees_with_the_readable_reference(dtype, rtol, weight_decay, decoupled):
    rng = np.random.default_rng(2)
    p0, gs = _arrays(rng, dtype, steps=5)
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    rp, rm, rv = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for step, g in enumerate(gs, start=1):
        kwargs = dict(HYPER, weight_decay=weight_decay, step=step, decoupled=decoupled)
        adam_update_(p, g, m, v, **kwargs)
        rp, rm, rv = reference.adam_update(rp, g, rm, rv, **kwargs)
        np.testing.assert_allclose(p, rp, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(m, rm, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(v, rv, rtol=rtol, atol=rtol * 1e-2)
