"""tinygrad_llm/backend.py and the CuPy stand-in it is tested through (tests/fake_cupy.py).

- cuda_status() with the stand-in, with cupy absent, with no device, with broken kernels; asking
  for "cuda" when it is unusable raises the reason and the install hint;
- the stand-in is as strict as CuPy where it matters (so a green "cuda" run means something);
- a forward + backward of a small model built from F ops makes no host sync and no host ->
  device copy beyond explicit .item()/.numpy(), and no float64 array;
- scatter_add, the RNGs, memory stats, matmul precision, and that ``import tinygrad_llm`` stays
  light.
"""

import pathlib
import subprocess
import sys
import types

import fake_cupy
import numpy as np
import pytest

import tinygrad_llm as tg
import tinygrad_llm.nn as nn
import tinygrad_llm.nn.functional as F
from tinygrad_llm import Tensor, backend
from tinygrad_llm.kernels import cpu


@pytest.fixture
def fresh_backend():
    """Reset backend.py's cached CUDA state before and after (and restore sys.modules)."""
    saved = {k: sys.modules.get(k) for k in ("cupy", "cupyx")}
    fake_cupy._reset_backend(backend)
    yield
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v
    fake_cupy._reset_backend(backend)


# ---- cuda_status and the "cuda" device ---------------------------------------------------------
def test_cuda_status_with_the_stand_in(fake_cuda):
    ok, reason = backend.cuda_status()
    assert ok and reason == "1 CUDA device(s), CuPy 14.2.0-fake"
    assert backend.check_device("cuda:0") == "cuda"
    assert backend.cuda_status() is backend.cuda_status()   # probed once, then cached


def test_cuda_status_without_cupy(fresh_backend):
    sys.modules["cupy"] = None                               # makes `import cupy` fail
    ok, reason = backend.cuda_status()
    assert not ok and reason.startswith("import cupy failed: ")
    with pytest.raises(RuntimeError, match=r"device 'cuda' is not usable: import cupy failed.*"
                                           r"pip install -e \"\.\[gpu\]\""):
        Tensor([1.0], device="cuda")
    assert Tensor([1.0]).device == "cpu"                     # the CPU still works


def _broken_cupy(count=None, kernel_error=None):
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "14.2.0"

    def get_device_count():
        if count is None:
            raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
        return count
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=get_device_count))

    def arange(*args, **kwargs):
        raise kernel_error
    cupy.arange = arange
    cupy.float32 = np.float32
    cupy.ndarray = type("ndarray", (), {})
    return cupy


@pytest.mark.parametrize("cupy, expected", [
    (_broken_cupy(count=None), "no usable CUDA device: cudaErrorInsufficientDriver"),
    (_broken_cupy(count=0), "no CUDA device found"),
    (_broken_cupy(count=1, kernel_error=OSError("libnvrtc.so.12: cannot open")),
     "CuPy is installed but cannot run kernels: OSError('libnvrtc.so.12"),
])
def test_cuda_status_reports_why_cuda_is_unusable(fresh_backend, cupy, expected):
    sys.modules["cupy"] = cupy
    ok, reason = backend.cuda_status()
    assert not ok and reason.startswith(expected)
    with pytest.raises(RuntimeError, match=r"not usable: .*pip install"):
        backend.check_device("cuda")


def test_import_does_not_load_cupy_torch_or_hypothesis():
    code = ("import sys, tinygrad_llm, tinygrad_llm.nn, tinygrad_llm.testing; "
            "print(sorted(m for m in ('cupy', 'torch', 'hypothesis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- the stand-in is strict --------------------------------------------------------------------
def test_stand_in_refuses_implicit_conversion_with_cupys_message(fake_cuda):
    a = fake_cuda.asarray(np.arange(3.0))
    message = ("Implicit conversion to a NumPy array is not allowed. "
               "Please use `.get()` to construct a NumPy array explicitly.")
    for convert in (np.asarray, np.array, lambda a: np.ones(3)[...].__setitem__(..., a)):
        with pytest.raises(TypeError) as info:
            convert(a)
        assert message in str(info.value)
    assert not isinstance(a, np.ndarray)                     # a wrapper, not a subclass


def test_stand_in_rejects_host_arrays_in_operators(fake_cuda):
    a = fake_cuda.asarray(np.arange(3.0))
    for mix in (lambda: a + np.ones(3), lambda: np.ones(3) * a,
                lambda: a.__setitem__(0, np.ones(1)),
                lambda: fake_cuda.where(a > 0, a, np.zeros(3)),
                lambda: fake_cuda.stack([a, np.ones(3)]), lambda: np.exp(a)):
        with pytest.raises(TypeError):
            mix()
    assert isinstance(a * np.float32(2) + 1, fake_cuda.ndarray)  # scalars are fine


def test_stand_in_reductions_and_scalar_indexing_give_0d_arrays(fake_cuda):
    a = fake_cuda.asarray(np.arange(6.0).reshape(2, 3))
    for r in (a.sum(), a.max(), a.mean(), fake_cuda.sum(a), a[0, 1], a.sum() * 2):
        assert isinstance(r, fake_cuda.ndarray) and r.shape == ()
    with pytest.raises(TypeError):
        _ = [1, 2, 3][a.argmax()]                             # no __index__, as in CuPy


def test_stand_in_serves_only_cupy_api_names(fake_cuda):
    assert "scatter_add" not in fake_cupy.API_NAMES["cupy"]  # DeZero's stale xp.scatter_add
    with pytest.raises(AttributeError, match="not in the CuPy API"):
        _ = fake_cuda.scatter_add
    with pytest.raises(AttributeError, match="not in the CuPy API"):
        _ = fake_cuda.asarray(np.ones(2)).ctypes
    with pytest.raises(AttributeError, match="no attribute 'normal'"):
        _ = fake_cuda.random.default_rng(0).normal
    assert callable(fake_cuda.add.at) and callable(sys.modules["cupyx"].scatter_add)


class _HostMaskSoftmax(tg.Function):
    """Planted CuPy bugs: a host-built mask and numpy functions on device data."""

    def forward(self, x):
        mask = np.tril(np.ones(x.shape, dtype=bool))       # made on the host: a bug on CUDA
        return np.exp(np.where(mask, x, -np.inf))          # np.* on a device array: a bug too

    def backward(self, dy):
        return (dy,)


class _ScalarReadSoftmax(tg.Function):
    """Planted bug: reads a device value into Python (a hidden sync on every call)."""

    def forward(self, x):
        shift = float(x.max())                             # a device -> host sync
        e = backend.get_xp(x).exp(x - shift)
        return e / e.sum(axis=-1, keepdims=True)

    def backward(self, dy):
        return (dy,)


def test_the_stand_in_catches_planted_cupy_bugs(fake_cuda):
    x_cpu = Tensor(np.zeros((3, 3)), requires_grad=True)
    x = Tensor(np.zeros((3, 3)), requires_grad=True, device="cuda")
    _HostMaskSoftmax.apply(x_cpu)                          # fine on NumPy...
    with pytest.raises(TypeError):
        _HostMaskSoftmax.apply(x)                          # ...refused on the stand-in, as CuPy
    with fake_cupy.counting() as counts:
        _ScalarReadSoftmax.apply(x)
    assert counts["sync"] == 1                             # the hidden sync is counted


def test_stand_in_counts_syncs_and_host_to_device_copies(fake_cuda):
    with fake_cupy.counting() as counts:
        a = fake_cuda.asarray(np.arange(4.0))                 # 1 H2D
        b = a[np.array([0, 0, 1])]                           # host index array: 1 H2D
        assert counts == {"sync": 0, "h2d": 2}
        _ = float(b.sum()), int(a[0]), bool(a[1]), a[2].item()
        _ = a.tolist(), a.get(), fake_cuda.asnumpy(a), f"{a.sum():.2f}"
        assert counts == {"sync": 8, "h2d": 2}


def test_stand_in_can_forbid_float64(fake_cuda):
    a = fake_cuda.asarray(np.ones(2, np.float32))
    with fake_cupy.forbid_float64():
        _ = a * 2.0                                          # a Python float keeps float32
        with pytest.raises(AssertionError, match="float64"):
            _ = a * np.float64(2.0)                          # a NumPy float64 scalar does not
    _ = a * np.float64(2.0)                                  # allowed again after the block
    fake_cupy.forbid_float64()                               # a plain call: on until uninstall
    with pytest.raises(AssertionError, match="float64"):
        _ = a * np.float64(2.0)
    fake_cupy.uninstall()
    fake_cupy.install()
    _ = fake_cuda.asarray(np.ones(2))                        # off again after a reinstall


# ---- no host syncs in a training step ----------------------------------------------------------
class TinyModel(nn.Module):
    """embedding -> layer norm -> linear -> gelu -> dropout -> linear, ids (B, T) -> (B*T, V)."""

    def __init__(self, vocab, dim, device):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim, device=device)
        self.ln = nn.LayerNorm(dim, device=device)
        self.fc = nn.Linear(dim, 4 * dim, device=device)
        self.proj = nn.Linear(4 * dim, vocab, device=device)

    def forward(self, ids):
        h = self.ln(self.wte(ids))                                      # (B, T, D)
        h = F.dropout(F.gelu(self.fc(h)), 0.1)                          # (B, T, 4D)
        attn = F.softmax(h @ h.swapaxes(-1, -2) * 0.1, axis=-1)         # (B, T, T)
        h = attn @ h + F.gelu(h, approximate="tanh").tanh().sigmoid()   # (B, T, 4D)
        logits = self.proj(h)                                           # (B, T, V)
        return logits.reshape(-1, logits.shape[-1])                     # (B*T, V)


def test_a_training_step_makes_no_hidden_sync_or_copy(fake_cuda):
    vocab, dim = 11, 8
    model = TinyModel(vocab, dim, "cuda")
    rng = np.random.default_rng(0)
    ids = Tensor(rng.integers(0, vocab, (2, 5)), device="cuda")
    targets = Tensor(rng.integers(0, vocab, (10,)), device="cuda")
    mask = Tensor(rng.random((10, 1)) > 0.5, device="cuda")
    with fake_cupy.counting() as counts, fake_cupy.forbid_float64():
        logits = model(ids)
        loss = F.cross_entropy(logits, targets) + F.mse_loss(
            tg.where(mask, logits, 0.0).max(axis=1), logits.mean(axis=1).detach()) * 0.01
        loss = loss + F.binary_cross_entropy_with_logits(
            logits[:, :3], F.sigmoid(logits[:, 3:6]).detach()) + logits.var() * 0.0
        loss.backward()
        for p in model.parameters():
            assert p.grad is not None and p.grad.dtype == np.float32
        assert counts == {"sync": 0, "h2d": 0}, counts
        value = loss.item()                                  # the one explicit read-back
        assert counts == {"sync": 1, "h2d": 0}
    assert np.isfinite(value)


def test_gpu_check_script_runs_clean_on_the_stand_in(fake_cuda, capsys):
    """benchmarks/gpu_check.py's op comparison, on the stand-in: every op agrees with the CPU
    and none syncs with the host (under cupyx.allow_synchronize(False))."""
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    assert gpu_check.main(["--iters", "1", "--tiny"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "every op agrees" in out and "| cuda   |" in out and "fake_cupy" in out
    with pytest.raises(fake_cupy.DeviceSynchronized):
        with sys.modules["cupyx"].allow_synchronize(False):
            Tensor(np.ones(2), device="cuda").sum().item()


def test_gpu_check_exits_cleanly_without_cuda(fresh_backend, capsys):
    sys.modules["cupy"] = None
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    assert gpu_check.main([]) == 0
    assert "CUDA is not usable here (import cupy failed" in capsys.readouterr().out


# ---- the rest of the interface -----------------------------------------------------------------
def test_get_xp_device_of_to_device_to_numpy(fake_cuda):
    h = np.arange(3.0)
    assert backend.get_xp(h) is np and backend.device_of(h) == "cpu"
    assert backend.device_of(np.float64(1)) == "cpu" and backend.get_xp(np.float64(1)) is np
    d = backend.to_device(h, "cuda")
    assert backend.get_xp(d) is fake_cuda and backend.device_of(d) == "cuda"
    assert backend.is_array(d) and backend.is_array(h) and not backend.is_array([1])
    assert backend.to_device(d, "cuda") is d
    np.testing.assert_array_equal(backend.to_numpy(d), h)
    assert backend.to_numpy(h) is h


def test_blockwise_gives_the_whole_array_result(device):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 257)), rng.standard_normal((300, 257))  # > 2 blocks
    def f(a, b):
        return a * 2 + backend.get_xp(b).exp(b)
    got = cpu.blockwise(f, Tensor(a, device=device).data, Tensor(b, device=device).data)
    assert got.shape == a.shape and backend.device_of(got) == device
    np.testing.assert_array_equal(Tensor(got).numpy(), f(a, b))
    small = cpu.blockwise(f, *(Tensor(v[:2], device=device).data for v in (a, b)))
    np.testing.assert_array_equal(Tensor(small).numpy(), f(a[:2], b[:2]))


@pytest.mark.parametrize("n", [5, 200])                       # both CPU paths, and CuPy's
def test_scatter_add_adds_repeated_and_negative_indices(device, n):
    rng = np.random.default_rng(0)
    idx = rng.integers(-4, 4, n)
    values = rng.standard_normal((n, 3))
    expected = np.zeros((4, 3))
    np.add.at(expected, idx, values)
    a = Tensor(np.zeros((4, 3)), device=device).data
    cpu.scatter_add(a, Tensor(idx, device=device).data, Tensor(values, device=device).data)
    np.testing.assert_allclose(Tensor(a).numpy(), expected, rtol=1e-12)
    # a tuple indexes two axes (it must not be stacked into one index array)
    b = Tensor(np.zeros((4, 3)), device=device).data
    rows, cols = np.array([0, 0, 3]), np.array([1, 1, 2])
    cpu.scatter_add(b, (Tensor(rows, device=device).data, Tensor(cols, device=device).data),
                        Tensor(np.ones(3), device=device).data)
    np.testing.assert_array_equal(Tensor(b).numpy()[[0, 3], [1, 2]], [2, 1])


def test_rngs_and_seeds(fake_cuda):
    backend.manual_seed(1)
    a = backend.host_rng().standard_normal(3)
    backend.manual_seed(1)
    np.testing.assert_array_equal(backend.host_rng().standard_normal(3), a)
    assert backend.device_rng("cpu") is backend.host_rng()
    g = backend.device_rng("cuda")
    assert backend.device_rng("cuda") is g
    assert isinstance(g.random((2,), dtype=np.float32), fake_cuda.ndarray)
    state = backend.rng_state()
    x = backend.host_rng().random()
    backend.set_rng_state(state)
    assert backend.host_rng().random() == x


def test_memory_stats_precision_and_synchronize(fake_cuda, monkeypatch):
    assert backend.memory_stats()["peak_rss_bytes"] > 0
    assert backend.memory_stats("cuda") == {"used_bytes": 0, "total_bytes": 0}
    monkeypatch.setenv("CUPY_TF32", "1")
    backend.set_matmul_precision("highest")
    import os
    assert os.environ["CUPY_TF32"] == "0"
    with pytest.raises(ValueError, match="precision must be 'tf32' or 'highest'"):
        backend.set_matmul_precision("fp16")
    backend.synchronize("cuda")
    backend.synchronize("cpu")
