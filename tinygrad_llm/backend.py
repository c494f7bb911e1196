r"""Array backends: NumPy on the CPU, CuPy on NVIDIA GPUs.

This is the only file in tinygrad_llm that imports ``cupy``. Every op is written once against the
NumPy API, with its array module taken from the data (``xp = get_xp(x)``); CuPy mirrors that API.
The few things that really differ between the two live here, behind small functions:

- device names and host <-> device transfers (``to_device``, ``to_numpy``), and explicit syncs;
- scatter-add (``scatter_add``: ``np.add.at`` on the CPU, ``cupyx.scatter_add`` on the GPU);
- long elementwise formulas (``blockwise``): in cache-sized blocks on the CPU, whole on the GPU;
- random numbers: weights come from one seeded NumPy Generator on the host (``host_rng``) and are
  then moved, so one seed gives the same weights on every device; per-step noise (dropout) is drawn
  on the device itself (``device_rng``) so no host copy sits in the training step;
- matmul precision (TF32 on GPUs, ``set_matmul_precision``);
- memory statistics (``memory_stats``);
- whether CUDA is usable at all (``cuda_status``);
- the fused CUDA kernels (GELU, layer norm, softmax cross-entropy, AdamW): CUDA C source in
  tinygrad_llm/kernels/, compiled by CuPy's ``RawModule`` on first use and launched only from
  here. ``cuda_kernels_for(*arrays)`` says whether to use them (float32 CuPy arrays, switched on
  by default; ``use_cuda_kernels(False)`` or ``TINYGRAD_LLM_CUDA_KERNELS=0`` turns them off and
  the same ops run as plain CuPy calls).

``cupy`` is imported lazily, the first time a CUDA device is asked for, so ``import tinygrad_llm``
never imports it. See docs/backends.md.
"""

import math
import os
import pathlib
import sys

import numpy as np

__all__ = [
    "DEVICES", "get_xp", "device_of", "check_device", "to_device", "to_numpy", "is_array",
    "cuda_status", "scatter_add", "manual_seed", "host_rng", "device_rng", "synchronize",
    "set_matmul_precision", "matmul_precision", "memory_stats", "rng_state", "set_rng_state",
    "blockwise", "KERNELS", "kernel_source", "use_cuda_kernels", "cuda_kernels_enabled",
    "cuda_kernels_for", "gelu_forward_cuda", "gelu_backward_cuda", "layer_norm_forward_cuda",
    "layer_norm_backward_cuda", "cross_entropy_forward_cuda", "cross_entropy_backward_cuda",
    "adamw_step_cuda", "keep_freed_memory",
]

DEVICES = ("cpu", "cuda")
INSTALL_HINT = 'install the GPU extra with: pip install -e ".[gpu]"'

_cupy = None             # the cupy module, once imported
_cuda_checked = None     # cached (ok, reason) from cuda_status()


def _import_cupy():
    """Import cupy on first use. TF32 matmuls are the default, as in nanoGPT (CUPY_TF32=1)."""
    global _cupy
    if _cupy is None:
        os.environ.setdefault("CUPY_TF32", "1")
        import cupy
        _cupy = cupy
    return _cupy


def _loaded_cupy():
    """The cupy module if something already imported it, else None (never imports it)."""
    return _cupy if _cupy is not None else sys.modules.get("cupy")


def is_array(x):
    """True for a NumPy array or, when cupy is loaded, a CuPy array."""
    if isinstance(x, np.ndarray):
        return True
    cupy = _loaded_cupy()
    return cupy is not None and isinstance(x, cupy.ndarray)


def get_xp(x):
    """The array module (numpy or cupy) that owns array ``x``."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np
    cupy = _loaded_cupy()
    if cupy is not None and isinstance(x, cupy.ndarray):
        return cupy
    return np


def device_of(x):
    """'cpu' for NumPy arrays and Python scalars, 'cuda' for CuPy arrays."""
    if isinstance(x, (np.ndarray, np.generic)):
        return "cpu"
    cupy = _loaded_cupy()
    if cupy is not None and isinstance(x, cupy.ndarray):
        return "cuda"
    return "cpu"


def check_device(device):
    """Normalise a device name ('cpu', 'cuda', 'cuda:0', None) and fail clearly if unusable."""
    if device is None:
        return "cpu"
    name = str(device).lower()
    if name.startswith("cuda"):
        ok, reason = cuda_status()
        if not ok:
            raise RuntimeError(f"device 'cuda' is not usable: {reason}; {INSTALL_HINT}")
        return "cuda"
    if name != "cpu":
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    return "cpu"


def cuda_status():
    """Return ``(ok, reason)``: can CuPy run kernels here? Never raises.

    ``cupy.is_available()`` only counts devices. A machine can pass it and still lack NVRTC (which
    compiles elementwise kernels) or cuBLAS, so this also runs a tiny elementwise kernel, a
    reduction and a matmul, and copies the result back.
    """
    global _cuda_checked
    if _cuda_checked is not None:
        return _cuda_checked
    try:
        cupy = _import_cupy()
    except Exception as e:  # ImportError, or a broken install
        _cuda_checked = (False, f"import cupy failed: {e!r}")
        return _cuda_checked
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: insufficient driver, no device
        _cuda_checked = (False, f"no usable CUDA device: {e}")
        return _cuda_checked
    if n < 1:
        _cuda_checked = (False, "no CUDA device found")
        return _cuda_checked
    try:
        a = cupy.arange(16, dtype=cupy.float32).reshape(4, 4)
        float(((a @ a) + 1).sum())
    except Exception as e:
        _cuda_checked = (False, f"CuPy is installed but cannot run kernels: {e!r}")
        return _cuda_checked
    _cuda_checked = (True, f"{n} CUDA device(s), CuPy {cupy.__version__}")
    return _cuda_checked


def to_device(x, device):
    """Move array ``x`` to ``device`` ('cpu' or 'cuda'); a no-op when it is already there."""
    device = check_device(device)
    if device == "cpu":
        return to_numpy(x)
    cupy = _import_cupy()
    if isinstance(x, cupy.ndarray):
        return x
    return cupy.asarray(x)  # host -> device copy


def to_numpy(x):
    """A NumPy array from any device (a device -> host copy, and a sync, for CuPy arrays)."""
    if isinstance(x, np.ndarray):
        return x
    cupy = _loaded_cupy()
    if cupy is not None and isinstance(x, cupy.ndarray):
        return cupy.asnumpy(x)
    return np.asarray(x)


def synchronize(device):
    """Wait for queued GPU work (for timing); nothing to do on the CPU."""
    if check_device(device) == "cuda":
        _import_cupy().cuda.Device().synchronize()


def scatter_add(a, indices, values):
    r"""In place: ``a[indices] += values``, where repeated indices add up (unlike ``a[i] += v``).

    NumPy spells it ``np.add.at``, CuPy ``cupyx.scatter_add``. On the CPU ``np.add.at`` is slow
    for an embedding's backward (a 2-D table indexed by a 1-D id array: 5x slower for GPT's
    (768, 128) token gradient), so there we sort the ids, sum each run of equal ids with
    ``np.add.reduceat`` and add the sums to distinct rows. When no id repeats (the position
    embedding's 0..T-1), a plain fancy-indexed ``+=`` is already exact.
    """
    xp = get_xp(a)
    if xp is np:
        # A tuple indexes several axes and stays a tuple (np.asarray would stack it into one
        # 2-D index of the first axis); a list is one index array.
        idx = np.asarray(indices) if isinstance(indices, list) else indices
        if (isinstance(idx, np.ndarray) and idx.dtype.kind in "iu" and idx.ndim == 1
                and a.ndim >= 1 and values.ndim == a.ndim and values.shape[0] == idx.size):
            if idx.size and idx.dtype.kind == "i" and idx.min() < 0:  # -1 and n-1: one row
                idx = np.where(idx < 0, idx + a.shape[0], idx)
            order = np.argsort(idx, kind="stable")           # group equal ids together
            sorted_idx = idx[order]
            new_run = sorted_idx[1:] != sorted_idx[:-1]      # (N-1,)
            if new_run.all():                                 # every id once
                a[idx] += values
            else:
                starts = np.flatnonzero(np.r_[True, new_run])
                sums = np.add.reduceat(values[order], starts, axis=0)  # one sum per distinct id
                a[sorted_idx[starts]] += sums                 # distinct ids: plain += is exact
        else:
            np.add.at(a, idx, values)
        return a
    import cupyx  # noqa: PLC0415 - only reached with CuPy arrays, after cupy is imported
    cupyx.scatter_add(a, indices, values)
    return a


BLOCK = 1 << 15  # elements per block in blockwise(): 128 KiB of float32; a formula's three
                 # or four live temporaries stay inside a 512 KiB L2


def blockwise(f, *arrays):
    r"""``f(*arrays)`` for an elementwise ``f`` of same-shaped arrays, block by block on the CPU.

    ``f`` returns one array or a tuple of arrays (for example a value and its derivative), each
    shaped like its inputs; ``blockwise`` returns the same. A formula such as the GELU's normal
    CDF is about 30 NumPy passes, each of which writes a temporary as large as the input. On a
    big array every pass then goes out to main memory (and a fresh multi-MiB temporary costs
    page faults); on a 32K-element block all 30 stay in cache. On the GPU each pass is a kernel
    launch, so there ``f`` runs once on the whole array.
    """
    x = arrays[0]
    if get_xp(x) is not np or x.size <= 2 * BLOCK:
        return f(*arrays)
    flats = [a.reshape(-1) for a in arrays]                   # (N,) each
    first = f(*[a[:BLOCK] for a in flats])
    single = not isinstance(first, tuple)
    first = (first,) if single else first
    outs = tuple(np.empty(x.size, dtype=r.dtype) for r in first)  # (N,) each
    for out, r in zip(outs, first):
        out[:BLOCK] = r
    for i in range(BLOCK, x.size, BLOCK):
        results = f(*[a[i:i + BLOCK] for a in flats])
        for out, r in zip(outs, (results,) if single else results):
            out[i:i + BLOCK] = r
    outs = tuple(out.reshape(x.shape) for out in outs)
    return outs[0] if single else outs


# ----------------------------------------------------------------------------------------------
# Random numbers
# ----------------------------------------------------------------------------------------------
_host_rng = np.random.default_rng(0)
_device_rngs = {}


def manual_seed(seed):
    """Seed every generator tinygrad_llm uses: the host one (weights) and the device ones."""
    global _host_rng
    _host_rng = np.random.default_rng(seed)
    _device_rngs.clear()
    _device_rngs["seed"] = int(seed)


def host_rng():
    """The seeded NumPy Generator that initialises weights (on the host, then moved)."""
    return _host_rng


def device_rng(device):
    """A Generator living on ``device``, for per-step noise such as dropout masks.

    On the CPU this is the host generator itself. On CUDA it is a ``cupy.random`` Generator seeded
    from the host seed, so a run is reproducible on one device without host -> device copies.
    """
    if device == "cpu":
        return _host_rng
    if "cuda" not in _device_rngs:
        cupy = _import_cupy()
        seed = _device_rngs.get("seed", 0)
        _device_rngs["cuda"] = cupy.random.default_rng(seed)
    return _device_rngs["cuda"]


def rng_state():
    """The host generator's state as a JSON-able dict (for checkpoints)."""
    return _host_rng.bit_generator.state


def set_rng_state(state):
    """Restore the host generator from ``rng_state()``'s dict."""
    _host_rng.bit_generator.state = state


# ----------------------------------------------------------------------------------------------
# Precision and memory
# ----------------------------------------------------------------------------------------------
def set_matmul_precision(precision):
    """'tf32' (fast, the default on GPUs) or 'highest' (full float32) for CuPy float32 matmuls.

    TF32 keeps float32's range but rounds the matmul inputs to a 10-bit mantissa (tensor cores,
    compute capability 8.0 and up; nanoGPT's ``allow_tf32``). CuPy reads ``CUPY_TF32`` at its
    first float32 matmul; if CuPy is already imported, its compute type is set directly as well,
    so this works at any time. It has no effect on the CPU.
    """
    if precision not in ("tf32", "highest"):
        raise ValueError(f"set_matmul_precision: precision must be 'tf32' or 'highest', "
                         f"got {precision!r}")
    os.environ["CUPY_TF32"] = "1" if precision == "tf32" else "0"
    if _cupy is None or not (_cuda_checked or (False,))[0]:
        return                             # CuPy not in use yet: the variable is enough
    core = getattr(_cupy, "_core", None)   # None on the test suite's stand-in
    if core is not None and hasattr(core, "set_compute_type"):
        import cupy._core._routines_linalg as linalg  # noqa: PLC0415 - real CuPy only
        core.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if precision == "tf32"
                              else linalg.COMPUTE_TYPE_DEFAULT)


def matmul_precision():
    """The precision set for CuPy float32 matmuls: 'tf32' or 'highest'."""
    return "tf32" if os.environ.get("CUPY_TF32", "1") == "1" else "highest"


def memory_stats(device="cpu"):
    """Memory in use, as a dict of bytes.

    CPU: the peak resident set size of this process. CUDA: CuPy memory pool's used and total bytes.
    """
    if check_device(device) == "cuda":
        pool = _import_cupy().get_default_memory_pool()
        return {"used_bytes": int(pool.used_bytes()), "total_bytes": int(pool.total_bytes())}
    import resource  # noqa: PLC0415 - Unix only; imported where used
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"peak_rss_bytes": int(peak) * 1024}


def keep_freed_memory():
    """Ask the C allocator (glibc's malloc) to keep freed memory for reuse. Returns True if it did.

    A NumPy training step allocates and frees the same few hundred temporaries every step. By
    default glibc serves blocks over 128 KiB-32 MiB (its threshold adapts) with fresh ``mmap``s
    and gives freed heap tops back to the system, so the next step takes those pages again: up to
    ~10,000 page faults and 20 ms per step of the GPT example, depending on the allocation
    history. Serving blocks up to 32 MiB from the heap and trimming it only past 512 MiB free
    removes them: the pages stay mapped and are reused. Peak memory does not grow (what is kept
    was in use a moment before). It changes the whole process, so it is a call you make
    (examples/train_shakespeare.py and benchmarks/bench_gpt.py do), never a side effect of an
    import. Linux with glibc only; elsewhere it does nothing and returns False.
    """
    import ctypes  # noqa: PLC0415 - only here
    import ctypes.util  # noqa: PLC0415
    m_trim_threshold, m_mmap_threshold = -1, -3  # the option numbers in glibc's malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)
                    and libc.mallopt(m_trim_threshold, 512 << 20))
    except (OSError, AttributeError):  # not glibc: no mallopt
        return False


# ----------------------------------------------------------------------------------------------
# Fused CUDA kernels
# ----------------------------------------------------------------------------------------------
# The CUDA C source lives in tinygrad_llm/kernels/ (one .cu file per op, each prefixed with the
# block reductions of common.cuh). CuPy compiles a file with NVRTC the first time one of its
# kernels is launched, for the GPU at hand, and caches the binary on disk. The CI compiles every
# file for sm_80 and sm_90 without a GPU (tests/test_nvrtc.py). Each launcher below takes and
# returns CuPy arrays and never reads a value back to the host (no sync).
KERNEL_DIR = pathlib.Path(__file__).with_name("kernels")
KERNELS = {  # file -> (the extern "C" kernels launched from here, extra NVRTC options)
    "gelu.cu": (("gelu_forward", "gelu_backward", "gelu_tanh_forward", "gelu_tanh_backward"),
                ()),
    "layer_norm.cu": (("layer_norm_forward", "layer_norm_backward",
                       "layer_norm_backward_params"), ()),
    "cross_entropy.cu": (("cross_entropy_forward", "cross_entropy_backward"), ()),
    # no fused multiply-add: every rounding step then matches optim.py's NumPy update
    "adamw.cu": (("adamw_step",), ("--fmad=false",)),
}
_KERNEL_FILE = {name: file for file, (names, _) in KERNELS.items() for name in names}
_use_kernels = os.environ.get("TINYGRAD_LLM_CUDA_KERNELS", "1") != "0"
_functions = {}          # kernel name -> compiled function, for the cupy module in "cupy"

THREADS = 256            # threads per block for the elementwise kernels
MAX_BLOCKS = 1 << 16     # elementwise grids stop growing here; each thread then loops


def kernel_source(file):
    """The CUDA C source CuPy compiles for ``file``: common.cuh, then the file itself.

    ``#line`` directives keep compiler messages pointing at the right file and line.
    """
    common = (KERNEL_DIR / "common.cuh").read_text(encoding="utf-8")
    body = (KERNEL_DIR / file).read_text(encoding="utf-8")
    return f'#line 1 "common.cuh"\n{common}\n#line 1 "{file}"\n{body}'


def use_cuda_kernels(enabled=True):
    """Switch the fused CUDA kernels on (the default) or off; returns the previous setting.

    Off, the same ops run as sequences of plain CuPy calls (the NumPy formulas), for study and
    for comparison. The environment variable ``TINYGRAD_LLM_CUDA_KERNELS=0`` sets the default.
    """
    global _use_kernels
    previous, _use_kernels = _use_kernels, bool(enabled)
    return previous


def cuda_kernels_enabled():
    """Whether the fused CUDA kernels are switched on (see ``use_cuda_kernels``)."""
    return _use_kernels


def _kernels_supported():
    """Whether the loaded cupy can compile kernels: the real CuPy can, the test suite's NumPy
    stand-in (tests/fake_cupy.py) cannot (it has no RawModule)."""
    return _cupy is not None and "RawModule" in vars(_cupy)


def cuda_kernels_for(*arrays):
    """True when a fused op should launch its CUDA kernel on ``arrays``: the kernels are on,
    CuPy can compile them, and every array (None entries skipped) is a float32 CuPy array.
    Costs a flag test on the CPU path."""
    if not _use_kernels or _cupy is None or not _kernels_supported():
        return False
    cupy = _cupy
    return all(a is None or (isinstance(a, cupy.ndarray) and a.dtype == np.float32)
               for a in arrays)


def _kernel(name):
    """The compiled kernel ``name`` (compiling its file on first use)."""
    if _functions.get("cupy") is not _cupy:      # a different cupy module: start afresh
        _functions.clear()
        _functions["cupy"] = _cupy
    function = _functions.get(name)
    if function is None:
        file = _KERNEL_FILE[name]
        module = _cupy.RawModule(code=kernel_source(file), options=KERNELS[file][1])
        for kernel in KERNELS[file][0]:
            _functions[kernel] = module.get_function(kernel)
        function = _functions[name]
    return function


def _launch(name, grid, block, args):
    """Queue kernel ``name`` on the current stream: ``grid`` blocks of ``block`` threads.

    Arrays are passed as device pointers (so they must be C-contiguous), and every scalar as a
    NumPy scalar of the C parameter's type (np.float32 for float, np.int32 for int, np.int64
    for long long): CuPy passes a Python float as a double.
    """
    _kernel(name)(grid, block, args)


def _elementwise_grid(n):
    return (min(-(-n // THREADS), MAX_BLOCKS),)


def _row_threads(c):
    """Threads per block for a row kernel: whole warps, one element each up to 1024."""
    return (min(1024, max(32, -(-c // 32) * 32)),)


def _contiguous(x):
    return _cupy.ascontiguousarray(x)


def gelu_forward_cuda(x, approximate="none"):
    r"""y = GELU(x) in one kernel (exact with erf, or the tanh form); x float32 on CUDA."""
    x = _contiguous(x)
    y = _cupy.empty(x.shape, dtype=np.float32)
    if x.size:
        name = "gelu_forward" if approximate == "none" else "gelu_tanh_forward"
        _launch(name, _elementwise_grid(x.size), (THREADS,), (x, y, np.int64(x.size)))
    return y


def gelu_backward_cuda(dy, x, approximate="none"):
    r"""dx = dy GELU'(x) in one kernel, recomputing Phi(x) (or tanh u) from x."""
    dy, x = _contiguous(dy.astype(np.float32, copy=False)), _contiguous(x)
    dx = _cupy.empty(x.shape, dtype=np.float32)
    if x.size:
        name = "gelu_backward" if approximate == "none" else "gelu_tanh_backward"
        _launch(name, _elementwise_grid(x.size), (THREADS,), (dy, x, dx, np.int64(x.size)))
    return dx


def layer_norm_forward_cuda(x, w=None, b=None, eps=1e-5):
    r"""Layer norm over the last axis in one kernel: returns y (shape of x), and mean and rstd
    (N,), one per row, for backward. w and b default to ones and zeros."""
    cupy = _cupy
    c = x.shape[-1]
    x2 = _contiguous(x).reshape(-1, c)                                    # (N, C)
    n = x2.shape[0]
    w = _contiguous(w) if w is not None else cupy.ones(c, dtype=np.float32)     # (C,)
    b = _contiguous(b) if b is not None else cupy.zeros(c, dtype=np.float32)    # (C,)
    y = cupy.empty((n, c), dtype=np.float32)                              # (N, C)
    mean = cupy.empty(n, dtype=np.float32)                                # (N,)
    rstd = cupy.empty(n, dtype=np.float32)                                # (N,)
    if n and c:
        _launch("layer_norm_forward", (n,), _row_threads(c),
                (x2, w, b, y, mean, rstd, np.int64(n), np.int32(c), np.float32(eps)))
    return y.reshape(x.shape), mean, rstd


def layer_norm_backward_cuda(dy, x, w, mean, rstd, need_w=True, need_b=True):
    r"""(dx, dw, db) of layer norm from the forward's mean and rstd: dx in one kernel (one block
    per row), dw and db in a second (per-chunk column sums, then one sum over the chunks).
    dw (db) is None when ``need_w`` (``need_b``) is false."""
    cupy = _cupy
    c = x.shape[-1]
    x2 = _contiguous(x).reshape(-1, c)                                    # (N, C)
    dy2 = _contiguous(dy.astype(np.float32, copy=False)).reshape(-1, c)   # (N, C)
    n = x2.shape[0]
    w1 = _contiguous(w) if w is not None else cupy.ones(c, dtype=np.float32)    # (C,)
    dx = cupy.empty((n, c), dtype=np.float32)                             # (N, C)
    if n and c:
        _launch("layer_norm_backward", (n,), _row_threads(c),
                (dy2, x2, w1, mean, rstd, dx, np.int64(n), np.int32(c)))
    dw = db = None
    if need_w or need_b:
        rows_per_chunk = max(128, -(-n // 1024))                         # at most 1024 chunks
        chunks = max(-(-n // rows_per_chunk), 1)
        new = cupy.empty if n and c else cupy.zeros       # the kernel writes every entry
        dw_partial = new((chunks, c), dtype=np.float32)                   # (chunks, C)
        db_partial = new((chunks, c), dtype=np.float32)                   # (chunks, C)
        if n and c:
            _launch("layer_norm_backward_params", (-(-c // 32), chunks), (32, 8),
                    (dy2, x2, mean, rstd, dw_partial, db_partial, np.int64(n), np.int32(c),
                     np.int64(rows_per_chunk)))
        dw = dw_partial.sum(axis=0) if need_w else None                  # (C,)
        db = db_partial.sum(axis=0) if need_b else None                  # (C,)
    return dx.reshape(x.shape), dw, db


def cross_entropy_forward_cuda(logits, targets, ignore_index=-100):
    r"""Mean softmax cross-entropy of logits (N, V) against targets (N,) in one kernel.

    Returns the loss (a 0-d device array), each row's log-sum-exp (N,) and the number M of
    counted rows (a 0-d float32 device array), the last two for backward. Nothing is read back.
    """
    cupy = _cupy
    logits = _contiguous(logits)                                          # (N, V)
    targets = _contiguous(targets.astype(np.int64, copy=False))           # (N,)
    n, v = logits.shape
    loss_rows = cupy.empty(n, dtype=np.float32)                           # (N,)
    lse = cupy.empty(n, dtype=np.float32)                                 # (N,)
    if n:
        _launch("cross_entropy_forward", (n,), _row_threads(v),
                (logits, targets, loss_rows, lse, np.int64(n), np.int32(v),
                 np.int64(ignore_index)))
    count = (targets != ignore_index).sum().astype(np.float32)           # M, on the device
    return loss_rows.sum() / count, lse, count


def cross_entropy_backward_cuda(dloss, logits, targets, lse, count, ignore_index=-100):
    r"""dlogits (N, V) of the mean cross-entropy, in one kernel: (dloss / M) (p - onehot)."""
    cupy = _cupy
    logits = _contiguous(logits)                                          # (N, V)
    targets = _contiguous(targets.astype(np.int64, copy=False))           # (N,)
    dloss = _contiguous(dloss.astype(np.float32, copy=False))             # 0-d
    n, v = logits.shape
    dlogits = cupy.empty((n, v), dtype=np.float32)                        # (N, V)
    if n:
        _launch("cross_entropy_backward", (n,), _row_threads(v),
                (logits, targets, lse, dloss, count, dlogits, np.int64(n), np.int32(v),
                 np.int64(ignore_index)))
    return dlogits


def adamw_step_cuda(p, g, m, v, *, lr, beta1, beta2, eps, weight_decay, step, decoupled=True):
    r"""One Adam(W) update of p, m, v in place from gradient g, in one kernel.

    All four are float32 C-contiguous CuPy arrays of one size (a flat buffer, or one
    parameter); ``step`` is the step count t from 1. ``decoupled`` is AdamW (p <- p (1 - lr wd));
    otherwise Adam's L2 (g <- g + wd p). The math and its operation order are optim.py's.
    """
    for name, a in (("p", p), ("g", g), ("m", m), ("v", v)):
        if not a.flags.c_contiguous or a.size != p.size or a.dtype != np.float32:
            raise ValueError(f"adamw_step_cuda: {name} must be a C-contiguous float32 array "
                             f"of {p.size} elements, got shape {a.shape}, dtype {a.dtype}")
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step                  # Python floats
    decay = 1 - lr * weight_decay if weight_decay and decoupled else 1.0
    l2 = weight_decay if weight_decay and not decoupled else 0.0
    f32 = np.float32
    if p.size:
        _launch("adamw_step", _elementwise_grid(p.size), (THREADS,),
                (p, g, m, v, f32(decay), f32(l2), f32(beta1), f32(1 - beta1), f32(beta2),
                 f32(1 - beta2), f32(1 / math.sqrt(bias2)), f32(eps), f32(lr / bias1),
                 np.int64(p.size)))
