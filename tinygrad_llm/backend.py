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
- whether CUDA is usable at all (``cuda_status``).

``cupy`` is imported lazily, the first time a CUDA device is asked for, so ``import tinygrad_llm``
never imports it. See docs/backends.md.
"""

import os
import sys

import numpy as np

__all__ = [
    "DEVICES", "get_xp", "device_of", "check_device", "to_device", "to_numpy", "is_array",
    "cuda_status", "scatter_add", "manual_seed", "host_rng", "device_rng", "synchronize",
    "set_matmul_precision", "memory_stats", "rng_state", "set_rng_state", "blockwise",
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
    for an embedding's backward (a 2-D table indexed by a 1-D id array), so there we sort the ids,
    sum each run of equal ids with ``np.add.reduceat`` and add the sums to distinct rows.
    """
    xp = get_xp(a)
    if xp is np:
        # A tuple indexes several axes and stays a tuple (np.asarray would stack it into one
        # 2-D index of the first axis); a list is one index array.
        idx = np.asarray(indices) if isinstance(indices, list) else indices
        if (isinstance(idx, np.ndarray) and idx.dtype.kind in "iu" and idx.ndim == 1
                and a.ndim >= 1 and values.ndim == a.ndim and idx.size > 64):
            if idx.dtype.kind == "i" and idx.min() < 0:     # -1 and n-1 are the same row
                idx = np.where(idx < 0, idx + a.shape[0], idx)
            order = np.argsort(idx, kind="stable")           # group equal ids together
            sorted_idx = idx[order]
            starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
            sums = np.add.reduceat(values[order], starts, axis=0)  # one sum per distinct id
            a[sorted_idx[starts]] += sums                     # distinct ids: plain += is exact
        else:
            np.add.at(a, idx, values)
        return a
    import cupyx  # noqa: PLC0415 - only reached with CuPy arrays, after cupy is imported
    cupyx.scatter_add(a, indices, values)
    return a


BLOCK = 1 << 14  # elements per block in blockwise(): 64 KiB of float32, well inside L2


def blockwise(f, *arrays):
    r"""``f(*arrays)`` for an elementwise ``f`` of same-shaped arrays, block by block on the CPU.

    A formula such as the GELU's normal CDF is about 30 NumPy passes, each of which writes a
    fresh temporary as large as the input. On a big array every pass then goes out to main
    memory; on a 16K-element block all 30 stay in cache, and the whole is about twice as fast.
    On the GPU each pass is a kernel launch, so there ``f`` runs once on the whole array.
    """
    x = arrays[0]
    if get_xp(x) is not np or x.size <= 2 * BLOCK:
        return f(*arrays)
    flats = [a.reshape(-1) for a in arrays]                   # (N,) each
    first = f(*[a[:BLOCK] for a in flats])
    out = np.empty(x.size, dtype=first.dtype)                 # (N,)
    out[:BLOCK] = first
    for i in range(BLOCK, x.size, BLOCK):
        out[i:i + BLOCK] = f(*[a[i:i + BLOCK] for a in flats])
    return out.reshape(x.shape)


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
    """'tf32' (fast, the default on GPUs) or 'highest' (full float32) for CuPy matmuls.

    CuPy reads the ``CUPY_TF32`` environment variable when it is imported, so call this before
    the first CUDA tensor is made. It has no effect on the CPU.
    """
    if precision not in ("tf32", "highest"):
        raise ValueError(f"set_matmul_precision: precision must be 'tf32' or 'highest', "
                         f"got {precision!r}")
    os.environ["CUPY_TF32"] = "1" if precision == "tf32" else "0"


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
