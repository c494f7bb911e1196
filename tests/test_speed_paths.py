"""The fast paths of issue 7 ("Speed") keep their meaning: blockwise with several outputs, the
float32 normal CDF and density, scatter_add's CPU paths, Tensor.numpy() as a copy, and a GPT
training step that stays float32 in every activation, gradient, saved array and optimizer state."""

import math

import numpy as np
import pytest

import tinygrad_llm as tg
from tinygrad_llm import Tensor, autograd, backend
from tinygrad_llm.kernels import cpu
from tinygrad_llm.models import GPT, GPTConfig
from tinygrad_llm.ops.special import normal_cdf_and_pdf
from tinygrad_llm.optim import clip_grad_norm_


def test_numpy_returns_a_copy(device):
    t = Tensor(np.array([1.0, 2.0], np.float32), device=device)
    a = t.numpy()
    a[0] = 99.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])   # the tensor is unchanged
    assert isinstance(a, np.ndarray) and a.dtype == np.float32


def test_blockwise_with_several_outputs(device):
    n = 2 * cpu.BLOCK + 123                                 # three blocks, the last short
    a = np.random.default_rng(0).standard_normal((n // 3, 3))

    def f(x):
        xp = backend.get_xp(x)
        return x * 2, xp.exp(x)
    got = cpu.blockwise(f, Tensor(a, device=device).data)
    assert isinstance(got, tuple) and len(got) == 2
    for g, expected in zip(got, f(a)):
        assert g.shape == a.shape and backend.device_of(g) == device
        np.testing.assert_array_equal(Tensor(g).numpy(), expected)


@pytest.mark.parametrize("ids", [[3, 0, 2, 1], [0, 2, 2, -1, 0, 2, 3, 3], []])
def test_scatter_add_distinct_repeated_and_empty_ids(ids):
    rng = np.random.default_rng(1)
    ids = np.array(ids, dtype=np.int64)
    values = rng.standard_normal((len(ids), 5)).astype(np.float32)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    expected = a.copy()
    np.add.at(expected, ids, values)
    np.testing.assert_allclose(cpu.scatter_add(a, ids, values), expected, rtol=1e-6)


def test_float32_normal_cdf_and_pdf_against_math():
    a = np.concatenate([np.linspace(-13, 13, 20001), [0.0, -1e-30, 1e-30]]).astype(np.float32)
    cdf, pdf = normal_cdf_and_pdf(a)
    assert cdf.dtype == np.float32 and pdf.dtype == np.float32
    a64 = a.astype(np.float64)
    exact_cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in a64])
    exact_pdf = np.exp(-0.5 * a64 * a64) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(cdf, exact_cdf, rtol=0, atol=2.5e-7)
    tail = (a < 0) & (exact_cdf > 1e-37)                       # relative in the negative tail
    np.testing.assert_allclose(cdf[tail], exact_cdf[tail], rtol=1e-5)
    np.testing.assert_allclose(pdf, exact_pdf, rtol=1e-5, atol=1e-40)
    assert np.all(np.diff(cdf[:20001]) >= 0)                   # monotone on the grid


def _float_arrays(value):
    """Every floating array in ``value`` (an array, a tuple/list of them, a dict of them)."""
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _float_arrays(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _float_arrays(v)]
    if backend.is_array(value) and value.dtype.kind == "f":
        return [value]
    return []


@pytest.mark.parametrize("fused", [True, False])
def test_gpt_training_step_stays_float32_everywhere(fused):
    """Every op's output, every backward gradient, every array a Function saves for backward,
    every parameter, gradient and optimizer moment: float32, with no silent float64."""
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.1,
                       fused_attention=fused)
    model = GPT(config)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    rng = np.random.default_rng(2)
    idx, targets = rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))
    seen = []

    def hook(name, phase, fn, args, kwargs):
        out = fn(*args, **kwargs)
        owner = getattr(fn, "__self__", None)
        for a in _float_arrays(args) + _float_arrays(out) + _float_arrays(vars(owner)):
            seen.append((name, phase, a.dtype))
        return out

    previous, autograd._profile_hook = autograd._profile_hook, hook
    try:
        for _ in range(2):
            _, loss = model(Tensor(idx), targets)
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    finally:
        autograd._profile_hook = previous
    assert {phase for _, phase, _ in seen} == {"forward", "backward"}
    wrong = sorted({(name, phase, str(d)) for name, phase, d in seen if d != np.float32})
    assert not wrong, f"float64 (or other) arrays in the step: {wrong}"
    assert loss.dtype == np.float32
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, name
    for s in opt.state.values():
        assert s["exp_avg"].dtype == np.float32 and s["exp_avg_sq"].dtype == np.float32
    assert all(b.dtype == np.float32 for b in opt.flat.buffers.values())


def test_gpt_parameters_live_in_the_optimizers_flat_buffer():
    tg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    opt = model.configure_optimizers(0.1, 1e-3)
    opt.zero_grad()
    _, loss = model(Tensor(np.zeros((2, 8), np.int64)), np.ones((2, 8), np.int64))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.data.base is opt.flat.buffers["param"], name
        assert p.grad.data.base is opt.flat.buffers["grad"], name


def test_profiler_counts_each_op_and_averages_per_step():
    from tinygrad_llm import profiler
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with profiler.profile() as prof:
        for _ in range(2):
            ((x * 2).sum()).backward()
    calls = {(op, phase): n for op, phase, n, _ in prof.rows()}
    assert calls[("Mul", "forward")] == 2 and calls[("Mul", "backward")] == 2
    assert calls[("Sum", "backward")] == 2
    table = prof.table(per=2)
    assert "ms/step" in table and "Mul" in table
    assert autograd._profile_hook is None            # off again: the engine pays nothing
