r"""The fused CUDA kernels (tinygrad_llm/kernels/*.cu) and their launchers in kernels/cuda.py.

Two halves, because no machine here has a GPU:

1. **On the CPU (always run): the launchers and the kernels, with the GPU replaced twice.**
   The CuPy stand-in (tests/fake_cupy.py) cannot run CUDA, so ``cuda._kernel`` is patched to
   return, for each kernel name, either
   - ``numpy``: a NumPy function that does what the CUDA C is meant to do (written from the
     kernel's comments), or
   - ``cuda-on-cpu``: the CUDA C itself, compiled by g++ against tests/cuda_on_cpu.h, which runs
     each block as real threads with a real __syncthreads() barrier and warp shuffle
     (tests/cuda_on_cpu.py; skipped without g++).
   Before running, both check the launch against the kernel's C signature, parsed from the .cu
   source: the argument count, every pointer argument a C-contiguous device array of the right
   dtype (a kernel reads raw memory: a strided view or an int32 target array would be read
   wrongly), every scalar a NumPy scalar of the C type (CuPy passes a Python float as a
   double), and a launch shape that the kernel's indexing assumes. This proves the Python half
   (argument order and types, shapes, what is saved for backward, the mean's count, no host
   sync, the dispatch switch) and, on cuda-on-cpu, that the kernels' indexing, reductions and
   barriers compute the right numbers under CUDA's execution model. It does not prove them on
   the hardware (memory model, scheduling, CUDA's math library, speed).

2. **On a real GPU (``-m gpu``; skipped unless ``backend.cuda_status()`` is ok and CuPy can
   compile kernels): every kernel against its NumPy reference**, the CPU Function (or optim.py's
   AdamW), in float32, forward and backward, including rows wider than one block, sizes that
   are not multiples of 32, and ignored targets.
"""

import contextlib
import math

import cuda_on_cpu
import fake_cupy
import numpy as np
import pytest

import tinygrad_llm as tg
import tinygrad_llm.nn.functional as F
from tinygrad_llm import Tensor, backend
from tinygrad_llm.kernels import cuda
from tinygrad_llm.optim import AdamW

# ---- the kernels' C signatures, from the source ----------------------------------------------
C_TYPES = {"float*": np.float32, "long long*": np.int64}
C_SCALARS = {"float": np.float32, "int": np.int32, "long long": np.int64}
SIGNATURES = {name: [(ctype, pname) for ctype, pname, _ in params]
              for file in cuda.KERNELS
              for name, params in cuda_on_cpu.signatures(cuda.kernel_source(file)).items()}


def test_every_launched_kernel_has_a_parsed_signature():
    assert set(SIGNATURES) == set(cuda._KERNEL_FILE)
    assert [t for t, _ in SIGNATURES["gelu_forward"]] == ["float*", "float*", "long long"]


# ---- NumPy emulators of the kernels (what each CUDA C kernel computes) -----------------------
def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _gelu_forward(grid, block, x, y, n):
    x = x.astype(np.float64)
    y[:] = x * 0.5 * (1 + _erf(x / math.sqrt(2)))


def _gelu_backward(grid, block, dy, x, dx, n):
    x = x.astype(np.float64)
    cdf, pdf = 0.5 * (1 + _erf(x / math.sqrt(2))), np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    dx[:] = dy * (cdf + x * pdf)


def _tanh_u(x):
    return np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))


def _gelu_tanh_forward(grid, block, x, y, n):
    x = x.astype(np.float64)
    y[:] = 0.5 * x * (1 + _tanh_u(x))


def _gelu_tanh_backward(grid, block, dy, x, dx, n):
    x = x.astype(np.float64)
    t, du = _tanh_u(x), math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)
    dx[:] = dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)


def _rows(grid, n_rows):
    assert grid == (n_rows,), f"a row kernel needs one block per row: grid {grid}, {n_rows} rows"


def _layer_norm_forward(grid, block, x, w, b, y, mean, rstd, n_rows, c, eps):
    _rows(grid, n_rows)
    x = x.reshape(n_rows, c).astype(np.float64)
    mu = x.mean(axis=1)
    r = 1 / np.sqrt(((x - mu[:, None]) ** 2).mean(axis=1) + eps)
    y[:] = (((x - mu[:, None]) * r[:, None]) * w + b).ravel()
    mean[:], rstd[:] = mu, r


def _layer_norm_backward(grid, block, dy, x, w, mean, rstd, dx, n_rows, c):
    _rows(grid, n_rows)
    x, dy = x.reshape(n_rows, c).astype(np.float64), dy.reshape(n_rows, c)
    xhat = (x - mean[:, None]) * rstd[:, None]
    dxhat = dy * w
    dx[:] = (rstd[:, None] * (dxhat - dxhat.mean(axis=1, keepdims=True)
                              - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))).ravel()


def _layer_norm_backward_params(grid, block, dy, x, mean, rstd, dw_partial, db_partial,
                                n_rows, c, rows_per_chunk):
    chunks = -(-n_rows // rows_per_chunk)
    assert block == (32, 8), "the kernel's shared tiles are 8 x 32"
    assert grid == (-(-c // 32), chunks) and chunks <= 65535, (grid, c, chunks)
    assert dw_partial.size == db_partial.size == chunks * c
    x, dy = x.reshape(n_rows, c).astype(np.float64), dy.reshape(n_rows, c)
    xhat = (x - mean[:, None]) * rstd[:, None]
    for k in range(chunks):
        rows = slice(k * rows_per_chunk, (k + 1) * rows_per_chunk)
        dw_partial[k * c:(k + 1) * c] = (dy[rows] * xhat[rows]).sum(axis=0)
        db_partial[k * c:(k + 1) * c] = dy[rows].sum(axis=0)


def _cross_entropy_forward(grid, block, logits, targets, loss, lse, n_rows, v, ignore_index):
    _rows(grid, n_rows)
    x = logits.reshape(n_rows, v).astype(np.float64)
    m = x.max(axis=1)
    log_s = np.log(np.exp(x - m[:, None]).sum(axis=1))
    for n, t in enumerate(targets):
        if t == ignore_index:
            loss[n] = 0
        elif not 0 <= t < v:
            loss[n] = np.nan
        else:
            loss[n] = log_s[n] - (x[n, t] - m[n])
    lse[:] = m + log_s


def _cross_entropy_backward(grid, block, logits, targets, lse, dloss, count, dlogits, n_rows, v,
                            ignore_index):
    _rows(grid, n_rows)
    assert dloss.size == 1 and count.size == 1, "dloss and count are device scalars"
    x = logits.reshape(n_rows, v).astype(np.float64)
    scale = np.where(targets == ignore_index, 0.0, dloss[0] / count[0])
    d = scale[:, None] * np.exp(x - lse[:, None])
    for n, t in enumerate(targets):
        if 0 <= t < v:
            d[n, t] -= scale[n]
    dlogits[:] = d.ravel()


def _adamw_step(grid, block, p, g, m, v, decay, l2, beta1, one_minus_beta1, beta2,
                one_minus_beta2, inv_sqrt_bias2, eps, step_size, n):
    """float32 throughout, in adamw.cu's order (no fused multiply-add, as it is compiled)."""
    gi = g + l2 * p if l2 != 0 else g.copy()
    pi = p * decay if decay != 1 else p.copy()
    mi = m * beta1 + one_minus_beta1 * gi
    vi = v * beta2 + one_minus_beta2 * (gi * gi)
    denom = np.sqrt(vi) * inv_sqrt_bias2 + eps
    p[:] = pi - (mi / denom) * step_size
    m[:], v[:] = mi, vi


EMULATORS = {
    "gelu_forward": _gelu_forward, "gelu_backward": _gelu_backward,
    "gelu_tanh_forward": _gelu_tanh_forward, "gelu_tanh_backward": _gelu_tanh_backward,
    "layer_norm_forward": _layer_norm_forward, "layer_norm_backward": _layer_norm_backward,
    "layer_norm_backward_params": _layer_norm_backward_params,
    "cross_entropy_forward": _cross_entropy_forward,
    "cross_entropy_backward": _cross_entropy_backward, "adamw_step": _adamw_step,
}


def _check_launch(name, grid, block, args):
    """The launch against the kernel's C signature and CUDA's limits."""
    params = SIGNATURES[name]
    assert len(args) == len(params), f"{name}: {len(args)} arguments for {len(params)} params"
    for (ctype, pname), a in zip(params, args):
        if ctype.endswith("*"):
            assert isinstance(a, fake_cupy.ndarray), f"{name}({pname}): not a device array"
            assert a.dtype == C_TYPES[ctype], f"{name}({pname}): {a.dtype} for {ctype}"
            assert a.flags.c_contiguous, f"{name}({pname}): not C-contiguous"
        else:
            assert type(a) is C_SCALARS[ctype], f"{name}({pname}): {type(a).__name__} for {ctype}"
    assert isinstance(grid, tuple) and isinstance(block, tuple)
    assert all(isinstance(d, int) and d >= 1 for d in grid + block), (grid, block)
    assert block[0] % 32 == 0 and math.prod(block) <= 1024, f"{name}: block {block}"
    assert grid[0] < 2 ** 31 and all(d <= 65535 for d in grid[1:]), f"{name}: grid {grid}"


@pytest.fixture(params=["numpy", "cuda-on-cpu"])
def emulated(request, monkeypatch):
    """The CuPy stand-in as "cuda", with kernels/cuda.py.s kernels replaced by checked NumPy
    emulators or by the CUDA C run on the CPU. Yields the list of kernel names launched."""
    if request.param == "cuda-on-cpu" and not cuda_on_cpu.available():
        pytest.skip("no g++ to build the kernels for the CPU")
    fake_cupy.install()
    backend.check_device("cuda")                              # imports the stand-in
    launched = []

    def kernel(name):
        on_cpu = cuda_on_cpu.kernel(name) if request.param == "cuda-on-cpu" else None

        def run(grid, block, args):
            _check_launch(name, grid, block, args)
            launched.append(name)
            if on_cpu is not None:
                on_cpu(grid, block, args)
                return
            flat = [a._a.reshape(-1) if isinstance(a, fake_cupy.ndarray) else a for a in args]
            EMULATORS[name](grid, block, *flat)       # writes through the views, in place
        return run

    monkeypatch.setattr(cuda, "_kernels_supported", lambda: True)
    monkeypatch.setattr(cuda, "_kernel", kernel)
    try:
        yield launched
    finally:
        fake_cupy.uninstall()


@contextlib.contextmanager
def kernels(enabled):
    previous = cuda.use_cuda_kernels(enabled)
    try:
        yield
    finally:
        cuda.use_cuda_kernels(previous)


# ---- the dispatch switch ---------------------------------------------------------------------
def test_kernels_are_never_used_on_the_cpu_or_the_plain_stand_in(fake_cuda):
    x = np.ones(3, dtype=np.float32)
    assert cuda.cuda_kernels_enabled()
    assert not cuda.cuda_kernels_for(x)                    # NumPy
    d = fake_cuda.asarray(x)
    assert not cuda.cuda_kernels_for(d)                    # the stand-in cannot compile


def test_switch_and_dtype_decide_on_cuda(emulated):
    cupy = backend._cupy
    d32, d64 = cupy.ones(3, dtype=np.float32), cupy.ones(3, dtype=np.float64)
    assert cuda.cuda_kernels_for(d32, None) and not cuda.cuda_kernels_for(d32, d64)
    assert not cuda.cuda_kernels_for(np.ones(3, dtype=np.float32))
    with kernels(False):
        assert not cuda.cuda_kernels_for(d32)
    assert cuda.cuda_kernels_for(d32)


def test_environment_variable_sets_the_default():
    import os
    import subprocess
    import sys
    code = "from tinygrad_llm.kernels import cuda; print(cuda.cuda_kernels_enabled())"
    for value, expected in (("0", "False"), ("1", "True")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "TINYGRAD_LLM_CUDA_KERNELS": value},
                             check=True).stdout.strip()
        assert out == expected


# ---- the launchers and kernels, on the CPU replacements of the GPU ----------------------------
def _dev(a):
    return backend._cupy.asarray(np.ascontiguousarray(a))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_launchers(emulated, approximate):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((7, 45)) * 3).astype(np.float32)
    dy = rng.standard_normal((7, 45)).astype(np.float32)
    xt = Tensor(x, requires_grad=True)
    ref = F.gelu(xt, approximate=approximate)
    ref.backward(Tensor(dy))
    y = cuda.gelu_forward_cuda(_dev(x), approximate)
    dx = cuda.gelu_backward_cuda(_dev(dy), _dev(x), approximate)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(backend.to_numpy(y), ref.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(dx), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    suffix = "" if approximate == "none" else "tanh_"
    assert emulated == [f"gelu_{suffix}forward", f"gelu_{suffix}backward"]


def test_gelu_launcher_copies_a_strided_view_before_the_kernel_reads_it(emulated):
    x = np.arange(24, dtype=np.float32).reshape(4, 6) / 10
    y = cuda.gelu_forward_cuda(_dev(x).T)                  # a transposed view (6, 4)
    np.testing.assert_allclose(backend.to_numpy(y), F.gelu(Tensor(x.T.copy())).numpy(),
                               rtol=1e-5)


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_launchers(emulated, affine):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 65, 40)).astype(np.float32) * 2 + 1    # 130 rows: 2 chunks
    w = rng.standard_normal(40).astype(np.float32) if affine else None
    b = rng.standard_normal(40).astype(np.float32) if affine else None
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ts = [Tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    ref = F.layer_norm(*ts)
    ref.backward(Tensor(dy))
    y, mean, rstd = cuda.layer_norm_forward_cuda(
        _dev(x), *[_dev(a) if a is not None else None for a in (w, b)])
    assert y.shape == x.shape and mean.shape == rstd.shape == (130,)
    np.testing.assert_allclose(backend.to_numpy(y), ref.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(mean), x.reshape(-1, 40).mean(axis=1),
                               rtol=1e-5, atol=1e-6)
    dx, dw, db = cuda.layer_norm_backward_cuda(_dev(dy), _dev(x), _dev(w) if affine else None,
                                                  mean, rstd, need_w=affine, need_b=affine)
    np.testing.assert_allclose(backend.to_numpy(dx), ts[0].grad.numpy(), rtol=1e-4, atol=1e-5)
    if affine:
        np.testing.assert_allclose(backend.to_numpy(dw), ts[1].grad.numpy(), rtol=1e-4,
                                   atol=1e-4)
        np.testing.assert_allclose(backend.to_numpy(db), ts[2].grad.numpy(), rtol=1e-4,
                                   atol=1e-4)
        assert emulated[-1] == "layer_norm_backward_params"
    else:
        assert dw is None and db is None and "layer_norm_backward_params" not in emulated


def test_cross_entropy_launchers_without_a_host_sync(emulated):
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((37, 65)) * 4).astype(np.float32)
    targets = rng.integers(0, 65, 37)
    targets[::4] = -100                                                # ignored rows
    lt = Tensor(logits, requires_grad=True)
    ref = F.cross_entropy(lt, targets)
    ref.backward(Tensor(np.float32(0.7)))
    d_logits, d_targets = _dev(logits), _dev(targets.astype(np.int32))   # int32: cast inside
    with fake_cupy.counting() as counts:
        loss, lse, count = cuda.cross_entropy_forward_cuda(d_logits, d_targets)
        dlogits = cuda.cross_entropy_backward_cuda(_dev(np.float32(0.7)), d_logits,
                                                      d_targets, lse, count)
        assert counts["sync"] == 0
    assert loss.shape == () and loss.dtype == np.float32 and count.dtype == np.float32
    assert float(count) == (targets != -100).sum()
    np.testing.assert_allclose(float(loss), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(dlogits), lt.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("width", [1, 33, 1000])
def test_row_kernels_at_widths_that_fill_one_lane_a_ragged_warp_and_1024_threads(emulated, width):
    """Row widths 1, 33 and 1000 launch 32, 64 and 1024 threads per row: the block reductions
    over 1, 2 and 32 warps (with idle lanes) must still sum and max over exactly the row."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((2, width)) * 3 + 1).astype(np.float32)
    y, mean, rstd = cuda.layer_norm_forward_cuda(_dev(x))
    np.testing.assert_allclose(backend.to_numpy(mean), x.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(y), F.layer_norm(Tensor(x)).numpy(), rtol=1e-4,
                               atol=1e-4)
    targets = np.array([0, width - 1])
    loss, lse, _ = cuda.cross_entropy_forward_cuda(_dev(x), _dev(targets))
    np.testing.assert_allclose(backend.to_numpy(lse), np.log(np.exp(
        x.astype(np.float64)).sum(axis=1)), rtol=1e-5)
    np.testing.assert_allclose(float(loss), F.cross_entropy(Tensor(x), targets).item(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decoupled", [True, False])
def test_adamw_launcher_matches_optim_bit_for_bit(emulated, decoupled):
    """The launcher's host-side constants (decay, step size, bias corrections) are float32
    roundings of the same Python floats optim.py uses, so the emulated float32 update (the
    kernel's operation order, no FMA) equals optim.AdamW's NumPy update exactly."""
    from tinygrad_llm.optim import Adam
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(1000).astype(np.float32)
    param = Tensor(p0.copy(), requires_grad=True)
    cls, wd = (AdamW, 0.1) if decoupled else (Adam, 0.01)
    opt = cls([param], lr=3e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)
    cupy = backend._cupy
    p, m, v = _dev(p0), cupy.zeros(1000, dtype=np.float32), cupy.zeros(1000, dtype=np.float32)
    for step in range(1, 4):
        g = rng.standard_normal(1000).astype(np.float32)
        param.grad = Tensor(g)
        opt.step()
        cuda.adamw_step_cuda(p, _dev(g), m, v, lr=3e-3, beta1=0.9, beta2=0.99, eps=1e-8,
                                weight_decay=wd, step=step, decoupled=decoupled)
    np.testing.assert_array_equal(backend.to_numpy(p), param.numpy())
    np.testing.assert_array_equal(backend.to_numpy(m), opt.state[0]["exp_avg"])
    np.testing.assert_array_equal(backend.to_numpy(v), opt.state[0]["exp_avg_sq"])


def test_adamw_launcher_refuses_a_view_it_cannot_update_in_place(emulated):
    cupy = backend._cupy
    p = cupy.zeros((4, 4), dtype=np.float32).T                         # not C-contiguous
    z = cupy.zeros((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="p must be a C-contiguous float32 array"):
        cuda.adamw_step_cuda(p, z, z, z, lr=1e-3, beta1=0.9, beta2=0.99, eps=1e-8,
                                weight_decay=0.0, step=1)


def test_empty_inputs_launch_nothing(emulated):
    cupy = backend._cupy
    e = cupy.zeros((0, 8), dtype=np.float32)
    assert cuda.gelu_forward_cuda(e).shape == (0, 8)
    assert cuda.layer_norm_forward_cuda(e)[0].shape == (0, 8)
    assert emulated == []


# ---- on a real GPU ---------------------------------------------------------------------------
@pytest.fixture
def gpu():
    ok, reason = backend.cuda_status()
    if not ok:
        pytest.skip(f"no usable CUDA GPU: {reason}")
    if not cuda._kernels_supported():
        pytest.skip("this CuPy cannot compile kernels")
    with kernels(True):
        yield backend._cupy


def _both(f, arrays, upstream, **kwargs):
    """f's output and input gradients on "cpu" (the NumPy reference) and on "cuda" (kernels)."""
    out = []
    for device in ("cpu", "cuda"):
        ts = [Tensor(a, requires_grad=a.dtype.kind == "f", device=device) for a in arrays]
        y = f(*ts, **kwargs)
        y.backward(Tensor(upstream, device=device))
        out.append((y.numpy(), [t.grad.numpy() for t in ts if t.grad is not None]))
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (33, 65), (64, 256, 1536)])   # (B, T, 4C)
def test_gpu_gelu_kernel_matches_numpy(gpu, approximate, shape):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    (y_cpu, g_cpu), (y_gpu, g_gpu) = _both(F.gelu, [x], dy, approximate=approximate)
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=1e-5, atol=1e-5)   # CUDA's erff vs our fit
    np.testing.assert_allclose(g_gpu[0], g_cpu[0], rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(4, 7), (64, 256, 384), (300, 1000), (2, 3000)])
def test_gpu_layer_norm_kernel_matches_numpy(gpu, shape):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    w = rng.standard_normal(shape[-1]).astype(np.float32)
    b = rng.standard_normal(shape[-1]).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    (y_cpu, g_cpu), (y_gpu, g_gpu) = _both(F.layer_norm, [x, w, b], dy)
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=1e-4, atol=1e-5)
    for a, b_ in zip(g_gpu, g_cpu):           # dx, dw, db: dw and db sum over many rows
        np.testing.assert_allclose(a, b_, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("n, v", [(5, 3), (16384, 65), (64, 50257)])
def test_gpu_cross_entropy_kernel_matches_numpy(gpu, n, v):
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((n, v)) * 3).astype(np.float32)
    targets = rng.integers(0, v, n)
    targets[::3] = -100
    out = []
    for device in ("cpu", "cuda"):
        lt = Tensor(logits, requires_grad=True, device=device)
        loss = F.cross_entropy(lt, Tensor(targets, device=device))
        loss.backward(Tensor(np.float32(1.3), device=device))
        out.append((loss.item(), lt.grad.numpy()))
    assert out[1][0] == pytest.approx(out[0][0], rel=1e-5)
    np.testing.assert_allclose(out[1][1], out[0][1], rtol=1e-4, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.parametrize("decoupled", [True, False])
def test_gpu_adamw_kernel_matches_optim(gpu, decoupled):
    """Compiled with --fmad=false in optim.py's order: expected to agree to the last bit."""
    rng = np.random.default_rng(3)
    size = 1_000_003                                     # not a multiple of the block size
    p0 = rng.standard_normal(size).astype(np.float32)
    param = Tensor(p0.copy(), requires_grad=True)
    opt = AdamW([param], lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1 if decoupled else 0.0)
    p = gpu.asarray(p0)
    m, v = gpu.zeros(size, dtype=np.float32), gpu.zeros(size, dtype=np.float32)
    for step in range(1, 6):
        g = rng.standard_normal(size).astype(np.float32)
        param.grad = Tensor(g)
        opt.step()
        cuda.adamw_step_cuda(p, gpu.asarray(g), m, v, lr=1e-3, beta1=0.9, beta2=0.99,
                                eps=1e-8, weight_decay=0.1 if decoupled else 0.0, step=step)
    np.testing.assert_allclose(backend.to_numpy(p), param.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(backend.to_numpy(m), opt.state[0]["exp_avg"], rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(backend.to_numpy(v), opt.state[0]["exp_avg_sq"], rtol=1e-6,
                               atol=1e-10)


@pytest.mark.gpu
def test_gpu_gpt_step_with_and_without_kernels_agree(gpu):
    """A few baby-sized GPT training steps: kernels on and off give the same losses."""
    from tinygrad_llm.data import get_batch
    from tinygrad_llm.models.gpt import GPT, GPTConfig
    from tinygrad_llm.optim import clip_grad_norm_
    losses = {}
    for enabled in (True, False):
        with kernels(enabled):
            tg.manual_seed(0)
            model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2,
                                  n_embd=64, dropout=0.0)).to("cuda")
            opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
            ids = np.random.default_rng(0).integers(0, 65, 5000)
            rng, out = np.random.default_rng(1), []
            for _ in range(5):
                x, y = get_batch(ids, 8, 64, rng, "cuda")
                _, loss = model(x, y)
                opt.zero_grad()
                loss.backward()
                clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                out.append(loss.item())
            losses[enabled] = out
    np.testing.assert_allclose(losses[True], losses[False], rtol=2e-3)


# ---- examples/train_shakespeare.py on "cuda" (the stand-in) ----------------------------------
def _train_script():
    from example_scripts import load_example  # noqa: PLC0415
    return load_example("train_shakespeare", "train_shakespeare_cuda")


def _run_cuda(tmp_path, max_iters, *flags):
    from tinygrad_llm.data import tiny_shakespeare
    data = tmp_path / "small.txt"
    data.write_text(tiny_shakespeare()[:5000], encoding="utf-8")
    out = tmp_path / f"out{max_iters}{''.join(flags)}"
    argv = ["--device", "cuda", "--data", str(data), "--out-dir", str(out), "--n-layer", "1",
            "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
            "--eval-iters", "1", "--eval-interval", "100", "--max-iters", str(max_iters),
            "--sample-chars", "0", "--no-progress", *flags]
    with fake_cupy.counting() as counts:
        assert _train_script().main(argv) == 0
        syncs = counts["sync"]
    import json
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return rows, syncs


def test_train_script_on_cuda_logs_the_memory_pool_and_syncs_once_per_10_steps(
        fake_cuda, tmp_path, monkeypatch, capsys):
    """Two runs that differ only in length (10 and 20 steps; evaluations at the first and last
    iteration in both): the ten extra training steps add exactly one host sync, the loss read
    for the progress line at iteration 10. So a step itself reads nothing back."""
    monkeypatch.setenv("CUPY_TF32", "1")
    backend.cuda_status()                     # probed (one sync) before, not inside, the runs
    rows, syncs10 = _run_cuda(tmp_path, 10)
    assert [r["iter"] for r in rows] == [0, 10]
    assert all(r["pool_used_bytes"] >= 0 and r["pool_total_bytes"] >= 0 for r in rows)
    rows, syncs20 = _run_cuda(tmp_path, 20)
    assert syncs20 - syncs10 == 1, (syncs10, syncs20)
    assert backend.matmul_precision() == "tf32"
    assert "cuda: tf32 matmuls" in capsys.readouterr().out


def test_train_script_no_tf32_and_no_cuda_kernels_flags(fake_cuda, tmp_path, monkeypatch,
                                                        capsys):
    monkeypatch.setenv("CUPY_TF32", "1")
    with kernels(True):
        _run_cuda(tmp_path, 1, "--no-tf32", "--no-cuda-kernels")
        assert backend.matmul_precision() == "highest" and not cuda.cuda_kernels_enabled()
    assert "cuda: highest matmuls, fused kernels off" in capsys.readouterr().out


def test_gpu_check_times_the_gpt_with_kernels_on_and_off_and_names_why_torch_is_skipped(
        fake_cuda, capsys):
    import pathlib
    import sys
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    assert gpu_check.main(["--iters", "1", "--tiny"]) == 0
    out = capsys.readouterr().out
    assert "| adamw, 3 steps (params)" in out and "fused CUDA kernels: on" in out
    assert "| tinygrad_llm, kernels on   |" in out and "| tinygrad_llm, kernels off  |" in out
    assert "both rows ran plain CuPy" in out                  # the stand-in has no kernels
    assert "PyTorch: not measured (torch" in out or "| PyTorch eager" in out
    assert cuda.cuda_kernels_enabled()                     # the switch is restored


# ---- the stand-in, where the flat buffers rely on it ------------------------------------------
def test_stand_in_view_base_is_the_buffer_itself(fake_cuda):
    """As in CuPy, a view's ``base`` is the array it views, the same object on every access.
    optim.clip_grad_norm_ groups gradient views by ``id(view.base)``; with a fresh wrapper per
    access the stand-in gave a wrong gradient norm from the second step on."""
    buffer = fake_cuda.zeros(10, dtype=np.float32)
    a, b = buffer[:4], buffer[4:]
    assert a.base is buffer and b.base is buffer and a.base is a.base
    assert buffer.base is None and a.reshape(2, 2).base is buffer


def test_gpt_steps_with_clipping_on_the_stand_in_equal_the_cpu_steps(fake_cuda):
    """Two GPT steps with gradient clipping over AdamW's flat buffers, plain CuPy path: the same
    parameters on "cuda" as on "cpu" (the stand-in's ``base`` used to break the second norm)."""
    from tinygrad_llm.data import get_batch
    from tinygrad_llm.models.gpt import GPT, GPTConfig
    from tinygrad_llm.optim import clip_grad_norm_
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)
    ids = np.random.default_rng(0).integers(0, 11, 200)
    out = {}
    for device in ("cpu", "cuda"):
        tg.manual_seed(0)
        model = GPT(config).to(device)
        opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
        rng, norms = np.random.default_rng(1), []
        for _ in range(2):
            x, y = get_batch(ids, 4, 8, rng, device)
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            norms.append(clip_grad_norm_(model.parameters(), 1.0).item())
            opt.step()
        out[device] = norms, model.state_dict()
    np.testing.assert_allclose(out["cuda"][0], out["cpu"][0], rtol=1e-5)
    for k, v in out["cpu"][1].items():
        np.testing.assert_allclose(out["cuda"][1][k], v, rtol=1e-5, atol=1e-6, err_msg=k)


# ---- the fused Functions and the flat AdamW dispatch to the kernels (emulated) --------------
def _cpu_and_cuda(f, arrays, upstream):
    """f's output and gradients on "cpu" and on the stand-in "cuda" (emulated kernels)."""
    out = []
    for device in ("cpu", "cuda"):
        ts = [Tensor(a, requires_grad=a.dtype.kind == "f", device=device) for a in arrays]
        with fake_cupy.counting() as counts:
            y = f(*ts)
            y.backward(Tensor(upstream, device=device))
            assert counts["sync"] == 0 or device == "cpu"
        out.append((y.numpy(), [t.grad.numpy() for t in ts if t.grad is not None]))
    return out


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_function_runs_the_kernels_on_cuda(emulated, approximate):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((6, 50)) * 3).astype(np.float32)
    dy = rng.standard_normal((6, 50)).astype(np.float32)
    (y0, g0), (y1, g1) = _cpu_and_cuda(lambda t: F.gelu(t, approximate=approximate), [x], dy)
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g1[0], g0[0], rtol=1e-5, atol=1e-5)
    suffix = "" if approximate == "none" else "tanh_"
    assert emulated == [f"gelu_{suffix}forward", f"gelu_{suffix}backward"]


def test_layer_norm_function_runs_the_kernels_on_cuda(emulated):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9, 24)).astype(np.float32)
    w, b = rng.standard_normal(24).astype(np.float32), rng.standard_normal(24).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    (y0, g0), (y1, g1) = _cpu_and_cuda(F.layer_norm, [x, w, b], dy)
    np.testing.assert_allclose(y1, y0, rtol=1e-4, atol=1e-5)
    for a, b_ in zip(g1, g0):
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-5)
    assert emulated == ["layer_norm_forward", "layer_norm_backward",
                        "layer_norm_backward_params"]


def test_cross_entropy_function_runs_the_kernels_on_cuda_for_the_mean_only(emulated):
    rng = np.random.default_rng(6)
    logits = (rng.standard_normal((20, 11)) * 3).astype(np.float32)
    targets = rng.integers(0, 11, 20)
    targets[::3] = -100
    (l0, g0), (l1, g1) = _cpu_and_cuda(lambda t: F.cross_entropy(t, targets), [logits],
                                       np.float32(0.5))
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    np.testing.assert_allclose(g1[0], g0[0], rtol=1e-4, atol=1e-7)
    assert emulated == ["cross_entropy_forward", "cross_entropy_backward"]
    emulated.clear()
    F.cross_entropy(Tensor(logits, device="cuda"), targets, reduction="sum")
    assert emulated == []                                     # 'sum' and 'none': plain CuPy


def test_cross_entropy_with_label_smoothing_runs_plain_cupy_on_cuda(emulated):
    """The kernel has no smoothing: the 'mean' with label_smoothing > 0 takes the array
    formulas on "cuda" too, and gives the CPU's numbers."""
    rng = np.random.default_rng(7)
    logits = (rng.standard_normal((20, 11)) * 3).astype(np.float32)
    targets = rng.integers(0, 11, 20)
    targets[::3] = -100
    (l0, g0), (l1, g1) = _cpu_and_cuda(
        lambda t: F.cross_entropy(t, targets, label_smoothing=0.1), [logits], np.float32(0.5))
    assert emulated == []
    assert l1.dtype == g1[0].dtype == np.float32
    np.testing.assert_allclose(l1, l0, rtol=1e-6)
    np.testing.assert_allclose(g1[0], g0[0], rtol=1e-6, atol=1e-8)


def test_switched_off_or_float64_the_functions_run_plain_cupy(emulated):
    x = Tensor(np.ones((2, 8), dtype=np.float32), device="cuda")
    with kernels(False):
        F.gelu(x)
        F.layer_norm(x)
    F.gelu(Tensor(np.ones((2, 8)), device="cuda"))          # float64
    assert emulated == []


def test_gpt_step_with_emulated_kernels_equals_the_cpu_step(emulated):
    """A whole GPT training step on "cuda" with every fused op and the flat AdamW going
    through the (emulated) kernels: the same loss and parameters as on the CPU, no sync."""
    from tinygrad_llm.data import get_batch
    from tinygrad_llm.models.gpt import GPT, GPTConfig
    from tinygrad_llm.optim import clip_grad_norm_
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    ids = np.random.default_rng(0).integers(0, 11, 200)
    results = {}
    for device in ("cpu", "cuda"):
        tg.manual_seed(0)
        model = GPT(config).to(device)
        opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
        rng = np.random.default_rng(1)
        with fake_cupy.counting() as counts:
            for _ in range(2):
                x, y = get_batch(ids, 4, 8, rng, device)
                _, loss = model(x, y)
                opt.zero_grad()
                loss.backward()
                clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            syncs = counts["sync"]
        results[device] = (loss.item(), model.state_dict())
        if device == "cuda":
            assert syncs == 0
    assert results["cuda"][0] == pytest.approx(results["cpu"][0], rel=1e-5)
    for k, v in results["cpu"][1].items():
        np.testing.assert_allclose(results["cuda"][1][k], v, rtol=1e-4, atol=1e-6, err_msg=k)
    for name in ("gelu_forward", "gelu_backward", "layer_norm_forward",
                 "layer_norm_backward", "layer_norm_backward_params", "cross_entropy_forward",
                 "cross_entropy_backward", "adamw_step"):
        assert name in emulated, name
