r"""Data parallelism: N processes (ranks), one model copy each, one gradient between them.

Symbols: N the number of ranks (``world_size()``), r a rank (0 .. N-1), B the global batch,
B_r the rows rank r trains on (sum over r of B_r = B), K micro-batches per step, n_k the targets
counted in micro-batch k (not ``ignore_index``), S the total of those counts over every
micro-batch of every rank in one step.

The loss of a batch is a mean over its counted targets, L = (1/S) sum_i l_i, and a gradient is
linear, so the batch's gradient is a sum of the pieces' gradients:

    dL/dp = sum over ranks r of (S_r / S) dL_r/dp       (L_r the mean over rank r's targets)

Each rank computes dL_r/dp on its own rows, scaled by N S_r / S, and an all-reduce *averages*
the results: (1/N) sum_r (N S_r / S) dL_r/dp = dL/dp, on every rank, so every rank takes the same
optimizer step and the copies stay equal. With equal pieces the scale N S_r / S is 1 and this is
the plain average of gradients. Micro-batches (gradient accumulation) are the same sum taken
one piece after another on one rank: ``accumulation_weights`` gives each piece's scale. The full
derivation, the cost model and the launch commands are in docs/distributed.md.

The engine is MPI (mpi4py, launched by ``mpiexec``) for NumPy arrays and NCCL (through CuPy,
``backend.nccl_module``) for CuPy arrays, one process per GPU; NCCL's unique id travels over
MPI. With one process and no MPI launcher every call below is a no-op, so a training script runs
unchanged without ``mpiexec``. ``mpi4py`` is imported inside ``init`` only.

A rank that dies must not leave the others waiting forever:

- an uncaught exception on any rank prints its traceback and aborts the whole job
  (``MPI_Abort``), as ``python -m mpi4py`` does;
- every blocking MPI call here runs under a watchdog: after ``timeout`` seconds (300 by default,
  ``init(timeout=...)`` or ``TINYGRAD_LLM_DIST_TIMEOUT``) it prints which call waited and ends
  the job;
- a rank killed by a signal is noticed by ``mpiexec`` itself, which ends the others.
"""

import atexit
import json
import os
import sys
import threading
import time

import numpy as np

from tinygrad_llm import backend as be
from tinygrad_llm.kernels.cpu import scatter_add
from tinygrad_llm.ops.sparse import RowSparseGrad
from tinygrad_llm.tensor import Tensor

__all__ = ["BACKENDS", "DistributedError", "init", "rank", "world_size", "local_rank",
           "is_main", "backend_name", "launched_by_mpi", "barrier", "all_reduce", "broadcast",
           "check_same", "any_rank", "abort", "split_rows", "accumulation_weights",
           "DistributedDataParallel"]

BACKENDS = ("auto", "mpi", "nccl", "none")
DEFAULT_TIMEOUT = 300.0
# Environment variables an MPI launcher sets in every process it starts (MPICH's Hydra, Open MPI,
# PMIx-based launchers, MVAPICH).
LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
INSTALL_HINT = 'install the MPI extra with: pip install -e ".[dist]"'


class DistributedError(RuntimeError):
    """The ranks cannot work together: they disagree, or the world is set up wrongly."""


class _World:
    """Who we are and how we talk: the state ``init`` sets (one process: rank 0 of 1)."""

    def __init__(self):
        self.backend, self.rank, self.size, self.local_rank = "none", 0, 1, 0
        self.initialised = False
        self.mpi = self.comm = None         # mpi4py's MPI module and COMM_WORLD
        self.nccl = self.nccl_comm = None   # cupy.cuda.nccl and its communicator
        self.watchdog = None


_world = _World()


# ---- set-up ----------------------------------------------------------------------------------
def launched_by_mpi():
    """True when an MPI launcher (``mpiexec``, ``mpirun``, ``srun`` with PMI) started us."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def init(backend="auto", *, device="cpu", timeout=None):
    r"""Join the world of ranks. Call it once, first thing, on every rank.

    backend : "auto" (the default), "mpi", "nccl" or "none".
        "auto" is "none" when no MPI launcher started this process, else "nccl" for
        ``device="cuda"`` and "mpi" for "cpu". "mpi" sums NumPy arrays over MPI (CuPy arrays
        pass through host memory); "nccl" sums CuPy arrays with NCCL, one GPU per process (the
        node-local rank picks it), and uses MPI for the rest. "none" is one process alone.
    device : "cpu" or "cuda", the device the model trains on (for "auto").
    timeout : seconds a blocking call may wait for the other ranks before the job is ended
        (default ``TINYGRAD_LLM_DIST_TIMEOUT`` or 300).

    Returns the backend chosen. Calling it again with the same backend does nothing.
    """
    if backend not in BACKENDS:
        raise ValueError(f"distributed.init: unknown backend {backend!r}; expected one of "
                         f"{BACKENDS}")
    if backend == "auto":
        backend = ("nccl" if device == "cuda" else "mpi") if launched_by_mpi() else "none"
    if _world.initialised:
        if backend != _world.backend:
            raise DistributedError(f"distributed.init: already initialised with "
                                   f"{_world.backend!r}, asked for {backend!r}")
        return backend
    if timeout is None:
        timeout = float(os.environ.get("TINYGRAD_LLM_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    if timeout <= 0:
        raise ValueError(f"distributed.init: timeout must be positive, got {timeout}")
    if backend == "none":
        launched = int(os.environ.get("PMI_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1")))
        if launched > 1:
            raise DistributedError(f"distributed.init: started as one of {launched} processes "
                                   "but with backend 'none': each would train alone on the "
                                   "same data; use backend 'auto' or 'mpi'")
        _world.initialised = True
        return backend
    try:
        from mpi4py import MPI  # noqa: PLC0415 - only here: importing the package stays light
    except ImportError as e:
        raise DistributedError(f"distributed.init({backend!r}) needs mpi4py ({e}); "
                               f"{INSTALL_HINT}") from None
    comm = MPI.COMM_WORLD
    _world.mpi, _world.comm = MPI, comm
    _world.rank, _world.size = comm.Get_rank(), comm.Get_size()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=_world.rank)   # the ranks on this machine
    _world.local_rank = node.Get_rank()
    node.Free()
    _world.backend, _world.initialised = backend, True
    if _world.size > 1:
        _world.watchdog = _Watchdog(timeout)
        _install_abort_on_exception()
        atexit.register(_leave_together)
    if backend == "nccl":
        be.use_cuda_device(_world.local_rank)
        _world.nccl = be.nccl_module()
        _world.nccl_comm = _world.nccl.NcclCommunicator(_world.size, _nccl_unique_id(),
                                                        _world.rank)
    return backend


def _nccl_unique_id():
    r"""Rank 0 makes NCCL's unique id (128 bytes naming the new communicator) and broadcasts it
    over MPI as raw bytes (no pickle). CuPy 14 gives bytes, older CuPy a tuple of small ints."""
    nccl = _world.nccl
    head = np.zeros(1, dtype=np.int64)              # 1: CuPy gave a tuple, 0: bytes
    raw = np.zeros(128, dtype=np.uint8)             # (128,) ncclUniqueId
    if _world.rank == 0:
        uid = nccl.get_unique_id()
        head[0] = not isinstance(uid, bytes)
        raw[:] = np.frombuffer(bytes(np.asarray(uid, dtype=np.int8).tobytes())
                               if head[0] else uid, dtype=np.uint8)
    broadcast(head)
    broadcast(raw)
    return tuple(raw.view(np.int8).tolist()) if head[0] else raw.tobytes()


def rank():
    """This process's rank, 0 .. world_size() - 1 (0 without MPI)."""
    return _world.rank


def world_size():
    """The number of ranks (1 without MPI)."""
    return _world.size


def local_rank():
    """This process's rank among those on its machine (it picks the GPU)."""
    return _world.local_rank


def is_main():
    """True on rank 0: the one that logs, evaluates and writes checkpoints."""
    return _world.rank == 0


def backend_name():
    """'none', 'mpi' or 'nccl': what ``init`` chose."""
    return _world.backend


# ---- a dead or stuck rank ends the job -------------------------------------------------------
class _Watchdog:
    """A daemon thread that ends the job when one blocking call waits longer than ``timeout``.

    MPI calls wait without a time limit, so a rank that hangs (or left the loop early) would hold
    every other rank forever. ``start(what)`` / ``stop()`` bracket each blocking call; the thread
    looks once a second (mpi4py releases the GIL while MPI waits)."""

    def __init__(self, timeout):
        self.timeout, self.what, self.since = timeout, None, 0.0
        threading.Thread(target=self._run, name="tinygrad_llm.distributed watchdog",
                         daemon=True).start()

    def start(self, what):
        self.since, self.what = time.monotonic(), what

    def stop(self):
        self.what = None

    def _run(self):
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            what = self.what
            if what is not None and time.monotonic() - self.since > self.timeout:
                abort(1, f"rank {_world.rank} of {_world.size} waited more than "
                         f"{self.timeout:g} s in {what} for the other ranks: one of them died, "
                         "hangs, or stopped early; ending the job (raise the limit with "
                         "TINYGRAD_LLM_DIST_TIMEOUT if a rank is just slow)")


def _blocking(what, call, *args, **kwargs):
    """Run one blocking MPI call under the watchdog."""
    if _world.watchdog is None:
        return call(*args, **kwargs)
    _world.watchdog.start(what)
    try:
        return call(*args, **kwargs)
    finally:
        _world.watchdog.stop()


def _install_abort_on_exception():
    """An uncaught exception on one rank ends every rank (the others would wait for it)."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        abort(1, f"rank {_world.rank} of {_world.size} stopped with {kind.__name__}; ending "
                 "the job")
    sys.excepthook = hook


def _leave_together():
    """At exit, every rank meets once more: a rank that left early is reported by the watchdog
    instead of hanging in MPI_Finalize."""
    if _world.comm is not None and _world.size > 1:
        _blocking("the final barrier (every rank reaching the end of the program)",
                  _world.comm.Barrier)


def abort(code=1, message=None):
    """End every rank now with exit status ``code``, after printing ``message`` to stderr."""
    if message:
        sys.stderr.write(f"tinygrad_llm.distributed: {message}\n")
        sys.stderr.flush()
    if _world.comm is not None and _world.size > 1:
        # The launcher reads each rank's stderr through a pipe; MPI_Abort tears the job down at
        # once, and under load it can do so before the launcher has forwarded the traceback and
        # the message above. A moment's wait lets them reach the user.
        time.sleep(1.0)
        _world.comm.Abort(code)
    os._exit(code)


# ---- collectives -----------------------------------------------------------------------------
_OPS = ("sum", "mean")


def all_reduce(array, op="sum"):
    r"""In place, on every rank: ``array <- sum over ranks r of array_r`` (op="sum") or that sum
    divided by N (op="mean"). NumPy or CuPy, C-contiguous. Returns ``array``."""
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
    if op == "mean" and array.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: op='mean' needs a floating array, got {array.dtype}")
    if _world.size == 1:
        return array
    if not array.flags.c_contiguous:
        raise ValueError("all_reduce: the array must be C-contiguous (one block of memory)")
    if be.is_cpu(array):
        _blocking("all_reduce", _world.comm.Allreduce, _world.mpi.IN_PLACE, array,
                  op=_world.mpi.SUM)
    elif _world.nccl_comm is not None:
        nccl, ptr = _world.nccl, be.data_pointer(array)
        _world.nccl_comm.allReduce(ptr, ptr, array.size, _nccl_dtype(array.dtype),
                                   nccl.NCCL_SUM, be.stream_pointer())
    else:                                   # CuPy arrays over plain MPI: through host memory
        host = be.to_numpy(array).copy()
        _blocking("all_reduce", _world.comm.Allreduce, _world.mpi.IN_PLACE, host,
                  op=_world.mpi.SUM)
        array[...] = be.to_device(host, "cuda")
    if op == "mean":
        array /= _world.size
    return array


def broadcast(array, root=0):
    """In place, on every rank: ``array <- array on rank root``. Returns ``array``."""
    if _world.size == 1:
        return array
    if not 0 <= root < _world.size:
        raise ValueError(f"broadcast: root {root} is not a rank (0 .. {_world.size - 1})")
    if not array.flags.c_contiguous:
        raise ValueError("broadcast: the array must be C-contiguous (one block of memory)")
    if be.is_cpu(array):
        _blocking("broadcast", _world.comm.Bcast, array, root=root)
    elif _world.nccl_comm is not None:
        _world.nccl_comm.bcast(be.data_pointer(array), array.size, _nccl_dtype(array.dtype),
                               root, be.stream_pointer())
    else:
        host = be.to_numpy(array).copy()
        _blocking("broadcast", _world.comm.Bcast, host, root=root)
        array[...] = be.to_device(host, "cuda")
    return array


def barrier():
    """Wait until every rank gets here."""
    if _world.size > 1:
        _blocking("barrier", _world.comm.Barrier)


def _nccl_dtype(dtype):
    names = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
             "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8"}
    if str(dtype) not in names:
        raise TypeError(f"all_reduce/broadcast: NCCL has no type for {dtype}")
    return getattr(_world.nccl, names[str(dtype)])


def any_rank(flag):
    """True on every rank when ``flag`` is true on at least one (e.g. "stop now")."""
    if _world.size == 1:
        return bool(flag)
    return bool(all_reduce(np.array([int(bool(flag))], dtype=np.int64))[0])


def check_same(value, what):
    r"""Raise DistributedError on every rank unless ``value`` is the same on every rank.

    ``value`` is anything JSON can write (a config dict, a vocabulary list). Rank 0's JSON is
    broadcast as bytes and compared; the ranks then agree on whether any differed, so all raise
    together (a rank that raised alone would leave the others waiting), and the first rank that
    differs broadcasts its own JSON, so every rank's message names what differs."""
    if _world.size == 1:
        return
    mine = _canonical(value).encode("utf-8")
    reference = _broadcast_bytes(mine, 0)                               # rank 0's JSON
    differs = np.zeros(_world.size, dtype=np.int64)                     # (N,) one flag per rank
    differs[_world.rank] = reference != mine
    all_reduce(differs)
    if differs.any():
        ranks = [int(r) for r in np.flatnonzero(differs)]
        other = _broadcast_bytes(mine, ranks[0])
        detail = _difference(json.loads(reference), json.loads(other))
        raise DistributedError(f"the ranks disagree on {what}: rank(s) {ranks} differ from "
                               f"rank 0; rank {ranks[0]} has {detail}")


def _broadcast_bytes(data, root):
    """Rank ``root``'s ``data`` (bytes) on every rank: its length, then the bytes (no pickle)."""
    length = broadcast(np.array([len(data)], dtype=np.int64), root)[0]
    buffer = np.frombuffer(data, dtype=np.uint8).copy() if _world.rank == root else \
        np.zeros(length, dtype=np.uint8)                                # (bytes,)
    return broadcast(buffer, root).tobytes()


def _difference(reference, value):
    """A short description of where ``value`` differs from rank 0's ``reference``."""
    diffs = _differences(reference, value, "")
    return "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")


def _differences(reference, value, prefix):
    if isinstance(reference, dict) and isinstance(value, dict):
        out = []
        for k in sorted(set(reference) | set(value), key=str):
            out += _differences(reference.get(k), value.get(k), f"{prefix}{k}.")
        return out
    if _canonical(reference) == _canonical(value):
        return []
    name = prefix[:-1] or "the value"
    return [f"{name} = {_canonical(value)[:60]} where rank 0 has {_canonical(reference)[:60]}"]


def _canonical(value):
    return json.dumps(value, sort_keys=True, default=str)


# ---- the batch, split over ranks and micro-batches -------------------------------------------
def split_rows(batch_size, parts=None, index=None):
    r"""The rows ``slice(start, stop)`` of a batch of ``batch_size`` rows that part ``index`` of
    ``parts`` takes (by default this rank's share): start = index B // parts, so the parts
    differ by at most one row and together are the whole batch, in order."""
    parts = _world.size if parts is None else parts
    index = _world.rank if index is None else index
    if parts > batch_size:
        raise ValueError(f"split_rows: {parts} parts but the batch has only {batch_size} rows; "
                         "each part needs at least one (a larger batch, or fewer ranks or "
                         "micro-batches)")
    return slice(index * batch_size // parts, (index + 1) * batch_size // parts)


def accumulation_weights(targets, ignore_index=-100):
    r"""Scales for the mean losses of this rank's micro-batches, so that summing their
    gradients here and averaging over ranks gives exactly the gradient of the global batch:

        w_k = N n_k / S        n_k = count(targets[k] != ignore_index),  S = sum of every n

    where S runs over every micro-batch of every rank (one small all-reduce). Then
    (1/N) sum_r sum_k w_k L_k = (1/S) sum of every target's loss, the big batch's mean. When
    all n_k are equal, w_k = 1/K. A micro-batch with n_k = 0 has weight 0 (its mean loss is
    0/0: skip it). ``targets``: one integer array or Tensor per micro-batch. Returns floats."""
    counts = []
    for y in targets:
        y = y.data if isinstance(y, Tensor) else y
        counts.append(int(be.to_numpy((y != ignore_index).sum())))   # one host read each
    total = all_reduce(np.array([sum(counts)], dtype=np.int64))[0]
    if total == 0:
        return [0.0] * len(counts)
    return [_world.size * n / int(total) for n in counts]


# ---- gradient synchronisation ----------------------------------------------------------------
class DistributedDataParallel:
    r"""Keeps N copies of a model equal: the same start, the same averaged gradient.

    - At construction: checks that every rank has the same parameters (names, shapes, dtypes)
      and broadcasts rank 0's values, so the copies start equal whatever each rank's seed.
    - ``sync_gradients()`` after backward (after the last micro-batch's): copies every gradient
      into one flat buffer per device and dtype (the optimizer's own ``FlatBuffers`` gradient
      buffer when it has one: AdamW's ``flat=True``), averages each buffer over the ranks in a
      single all-reduce (a few large messages, not one per parameter), and points every
      ``p.grad`` at its view of the result. Clip and step after it: ``clip_grad_norm_`` then sees
      the global gradient, hence the global norm, identical on every rank.

    A parameter with no gradient on some ranks counts as zeros there; one with no gradient on
    every rank keeps ``p.grad = None``, as in one process. A row-sparse gradient
    (``Embedding(sparse=True)``) is summed into the dense buffer: correct, but it sends the
    whole table. Calling the wrapper calls the model. With one rank, ``sync_gradients`` does
    nothing. Build it after the model is on its device and dtype and after the optimizer (so it
    can share the optimizer's buffer); the gradients stay exact either way.
    """

    def __init__(self, model, optimizer=None):
        self.module = model
        named = list(model.named_parameters())
        check_same([[name, list(p.shape), str(p.dtype)] for name, p in named],
                   "the model's parameters (names, shapes, dtypes)")
        self.params = [p for _, p in named]
        flat = getattr(optimizer, "flat", None)
        self.buckets = []                   # (params, flat gradient buffer, views) per bucket
        mine = {id(p) for p in self.params}
        if flat is not None and flat.fits() and {id(p) for p in flat.params} == mine:
            self.buckets.append((flat.params, flat.buffers["grad"], flat.views["grad"]))
        else:
            groups = {}
            for p in self.params:
                groups.setdefault((p.device, str(p.dtype)), []).append(p)
            for params in groups.values():
                xp = be.get_xp(params[0].data)
                buffer = xp.zeros(sum(p.size for p in params), dtype=params[0].dtype)  # (n,)
                self.buckets.append((params, buffer, _views(buffer, params)))
        self.broadcast_parameters()

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def broadcast_parameters(self, root=0):
        """Every rank's parameters <- rank ``root``'s (one message per bucket)."""
        if _world.size == 1:
            return
        for params, grad_buffer, _ in self.buckets:
            packed = be.get_xp(grad_buffer).empty_like(grad_buffer)          # (n,)
            for p, view in zip(params, _views(packed, params)):
                view[...] = p.data
            broadcast(packed, root)
            for p, view in zip(params, _views(packed, params)):
                p.data[...] = view

    def sync_gradients(self):
        """Average every gradient over the ranks, in place (see the class docstring)."""
        if _world.size == 1:
            return
        index = {id(p): i for i, p in enumerate(self.params)}
        present = np.zeros(len(self.params), dtype=np.int64)               # (P,) host flags
        for i, p in enumerate(self.params):
            present[i] = p.grad is not None
        all_reduce(present)                  # which parameters have a gradient on some rank
        for params, buffer, views in self.buckets:
            for p, view in zip(params, views):
                g = p.grad
                if g is None:
                    view.fill(0)
                elif isinstance(g, RowSparseGrad):          # rows -> the dense table
                    view.fill(0)
                    scatter_add(view, g.indices, g.values)
                elif g.data is not view:
                    view[...] = g.data
            all_reduce(buffer, "mean")
            for p, view in zip(params, views):
                p.grad = Tensor._wrap(view) if present[index[id(p)]] else None


def _views(buffer, params):
    """Each parameter's view of a flat buffer, in order and in its shape."""
    views, start = [], 0
    for p in params:
        views.append(buffer[start:start + p.size].reshape(p.shape))
        start += p.size
    return views
