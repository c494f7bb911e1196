r"""Array backends: NumPy on the CPU, CuPy on NVIDIA GPUs: the device seam.

This is the only file in tinygrad_llm that imports ``cupy``. Every op is written once against the
NumPy API, with its array module taken from the data (``xp = get_xp(x)``); CuPy mirrors that API.
The few things that really differ between the two live here, behind small functions:

- device names and host <-> device transfers (``to_device``, ``to_numpy``), explicit syncs, and
  which arrays live on the host (``is_cpu``);
- adding into repeated positions (``add_at``: ``np.add.at`` on the CPU, ``cupyx.scatter_add`` on
  the GPU);
- random numbers: weights come from one seeded NumPy Generator on the host (``host_rng``) and are
  then moved, so one seed gives the same weights on every device; per-step noise (dropout) is drawn
  on the device itself (``device_rng``) so no host copy sits in the training step;
- matmul precision (TF32 on GPUs, ``set_matmul_precision``);
- memory statistics (``memory_stats``);
- whether CUDA is usable at all (``cuda_status``), and the imported cupy module for the CUDA
  kernels' launchers (``cupy_module``; tinygrad_llm/kernels/cuda.py);
- for data parallelism on GPUs (tinygrad_llm/distributed.py): CuPy's NCCL binding
  (``nccl_module``), choosing this process's GPU (``use_cuda_device``), and the raw addresses
  NCCL takes (``data_pointer``, ``stream_pointer``).

``cupy`` is imported lazily, the first time a CUDA device is asked for, so ``import tinygrad_llm``
never imports it. The faster CPU algorithms for some array operations (a sorted scatter-add,
cache-sized blocks) are in tinygrad_llm/kernels/cpu.py, and the C allocator's tuning in
tinygrad_llm/allocator.py. See docs/backends.md.
"""

import os
import sys

import numpy as np

__all__ = [
    "DEVICES", "get_xp", "device_of", "is_cpu", "check_device", "to_device", "to_numpy",
    "is_array", "cuda_status", "cupy_module", "add_at", "manual_seed", "host_rng", "device_rng",
    "synchronize", "set_matmul_precision", "matmul_precision", "memory_stats", "rng_state",
    "set_rng_state", "nccl_module", "use_cuda_device", "data_pointer", "stream_pointer",
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


def is_cpu(x):
    """True when array ``x`` lives on the host (a NumPy array or scalar): there, a check that
    reads values costs nothing, where on a GPU it would wait for the device (a sync)."""
    return isinstance(x, (np.ndarray, np.generic))


def cupy_module():
    """The imported cupy module, or None while no CUDA device has been asked for."""
    return _cupy


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


def add_at(a, indices, values):
    r"""In place: ``a[indices] += values``, where repeated indices add up (unlike ``a[i] += v``).

    NumPy spells it ``np.add.at``, CuPy ``cupyx.scatter_add``. tinygrad_llm.kernels.cpu's
    ``scatter_add`` is the one ops call: faster on the CPU for rows of a table, and this on a GPU.
    """
    if get_xp(a) is np:
        np.add.at(a, indices, values)
        return a
    import cupyx  # noqa: PLC0415 - only reached with CuPy arrays, after cupy is imported
    cupyx.scatter_add(a, indices, values)
    return a


def nccl_module():
    """CuPy's NCCL binding, ``cupy.cuda.nccl`` (all-reduce between GPUs), or a clear error."""
    _import_cupy()
    try:
        import cupy.cuda.nccl as nccl  # noqa: PLC0415 - GPU data parallelism only
    except ImportError as e:
        raise RuntimeError(f"NCCL is not available through CuPy ({e}); install it with: "
                           'pip install "nvidia-nccl-cu12>=2.18"') from None
    if not getattr(nccl, "available", True):
        raise RuntimeError("CuPy found no NCCL library; install it with: "
                           'pip install "nvidia-nccl-cu12>=2.18"')
    return nccl


def use_cuda_device(index):
    """Make GPU ``index`` this process's current device (one process per GPU)."""
    _import_cupy().cuda.Device(index).use()


def data_pointer(x):
    """The device address of a CuPy array's first element (what NCCL calls take)."""
    return x.data.ptr


def stream_pointer():
    """The current CUDA stream's handle: NCCL queues its work there, after the kernels before."""
    return _import_cupy().cuda.get_current_stream().ptr


def synchronize(device):
    """Wait for queued GPU work (for timing); nothing to do on the CPU."""
    if check_device(device) == "cuda":
        _import_cupy().cuda.Device().synchronize()


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
