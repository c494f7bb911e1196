r"""Launchers for the fused CUDA kernels, beside their CUDA C source (GELU, layer norm, softmax
cross-entropy, AdamW).

Each ``.cu`` file in this folder holds one op's kernels, prefixed with the block reductions of
``common.cuh``. CuPy compiles a file with NVRTC the first time one of its kernels is launched, for
the GPU at hand, and caches the binary on disk. The CI compiles every file for sm_80 and sm_90
without a GPU (tests/test_nvrtc.py). Each launcher below takes and returns CuPy arrays and never
reads a value back to the host (no sync).

``cuda_kernels_for(*arrays)`` says whether an op should launch its kernel: float32 CuPy arrays,
with the kernels switched on (the default; ``use_cuda_kernels(False)`` or
``TINYGRAD_LLM_CUDA_KERNELS=0`` turns them off, and the same ops then run their NumPy formulas as
plain CuPy calls). This module never imports cupy: it uses the module that ``backend`` imported.
See docs/backends.md.

Shapes: N rows, C channels (layer norm), V classes (cross-entropy).
"""

import math
import os
import pathlib

import numpy as np

from tinygrad_llm import backend

__all__ = [
    "KERNELS", "kernel_source", "use_cuda_kernels", "cuda_kernels_enabled", "cuda_kernels_for",
    "gelu_forward_cuda", "gelu_backward_cuda", "layer_norm_forward_cuda",
    "layer_norm_backward_cuda", "cross_entropy_forward_cuda", "cross_entropy_backward_cuda",
    "adamw_step_cuda",
]

KERNEL_DIR = pathlib.Path(__file__).parent
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
    cupy = backend.cupy_module()
    return cupy is not None and "RawModule" in vars(cupy)


def cuda_kernels_for(*arrays):
    """True when a fused op should launch its CUDA kernel on ``arrays``: the kernels are on,
    CuPy can compile them, and every array (None entries skipped) is a float32 CuPy array.
    Costs a flag test on the CPU path."""
    cupy = backend.cupy_module()
    if not _use_kernels or cupy is None or not _kernels_supported():
        return False
    return all(a is None or (isinstance(a, cupy.ndarray) and a.dtype == np.float32)
               for a in arrays)


def _kernel(name):
    """The compiled kernel ``name`` (compiling its file on first use)."""
    cupy = backend.cupy_module()
    if _functions.get("cupy") is not cupy:       # a different cupy module: start afresh
        _functions.clear()
        _functions["cupy"] = cupy
    function = _functions.get(name)
    if function is None:
        file = _KERNEL_FILE[name]
        module = cupy.RawModule(code=kernel_source(file), options=KERNELS[file][1])
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
    return backend.cupy_module().ascontiguousarray(x)


def gelu_forward_cuda(x, approximate="none"):
    r"""y = GELU(x) in one kernel (exact with erf, or the tanh form); x float32 on CUDA."""
    x = _contiguous(x)
    y = backend.cupy_module().empty(x.shape, dtype=np.float32)
    if x.size:
        name = "gelu_forward" if approximate == "none" else "gelu_tanh_forward"
        _launch(name, _elementwise_grid(x.size), (THREADS,), (x, y, np.int64(x.size)))
    return y


def gelu_backward_cuda(dy, x, approximate="none"):
    r"""dx = dy GELU'(x) in one kernel, recomputing Phi(x) (or tanh u) from x."""
    dy, x = _contiguous(dy.astype(np.float32, copy=False)), _contiguous(x)
    dx = backend.cupy_module().empty(x.shape, dtype=np.float32)
    if x.size:
        name = "gelu_backward" if approximate == "none" else "gelu_tanh_backward"
        _launch(name, _elementwise_grid(x.size), (THREADS,), (dy, x, dx, np.int64(x.size)))
    return dx


def layer_norm_forward_cuda(x, w=None, b=None, eps=1e-5):
    r"""Layer norm over the last axis in one kernel: returns y (shape of x), and mean and rstd
    (N,), one per row, for backward. w and b default to ones and zeros."""
    cupy = backend.cupy_module()
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
    cupy = backend.cupy_module()
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
    cupy = backend.cupy_module()
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
    cupy = backend.cupy_module()
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
