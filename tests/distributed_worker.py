"""The rank side of tests/test_distributed.py: run as ``mpiexec -n 2 python distributed_worker.py
SCENARIO OUT.json``. Rank 0 writes what it measured to OUT.json; the test reads it.

Scenarios:
- ``equality``: data-parallel training (2 ranks) against one process with the whole batch, for
  SGD with momentum, Adam, AdamW with gradient clipping and micro-batches, and a row-sparse
  embedding; every rank also builds its model from its own seed, so only the broadcast makes the
  copies equal. Also: clipping each rank's local gradient (the wrong order) differs; ranks that
  disagree on a config raise on every rank.
- ``nccl``: the same AdamW run on "cuda" arrays, tests/fake_cupy.py's stand-in, through the NCCL
  code path; the stand-in's NCCL does its sums over MPI on the arrays' host memory, addressed by
  the raw pointers NCCL calls take.
- ``gpu``: the ``nccl`` run with real CuPy and NCCL, one GPU per rank (a machine with two GPUs).
- ``raise`` / ``hang``: rank 1 raises / hangs while rank 0 waits in an all-reduce.
"""

import ctypes
import json
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))        # fake_cupy

import tinygrad_llm  # noqa: E402
from tinygrad_llm import Tensor, distributed, nn, optim  # noqa: E402
from tinygrad_llm.models.gpt import GPT, GPTConfig  # noqa: E402

STEPS = 5
CONFIG = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)


def batches(batch_size, pad):
    """STEPS batches (x, y) of shape (B, T), the same on every rank; with ``pad`` some target
    rows end in a different number of ignore_index (-100) positions."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(STEPS):
        x = rng.integers(0, CONFIG.vocab_size, size=(batch_size, CONFIG.block_size))   # (B, T)
        y = rng.integers(0, CONFIG.vocab_size, size=(batch_size, CONFIG.block_size))   # (B, T)
        if pad:
            for b in range(batch_size):
                y[b, CONFIG.block_size - (b * 3) % CONFIG.block_size:] = -100
        out.append((x, y))
    return out


def make_model(seed, device="cpu"):
    tinygrad_llm.manual_seed(seed)
    return GPT(CONFIG).to(device=device, dtype=np.float64)


def make_optimizer(kind, model):
    if kind == "sgd":
        return optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if kind == "adam":
        return optim.Adam(model.parameters(), lr=1e-2)
    return model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))     # AdamW, flat buffers


def train(kind, data, device="cpu", ranks=1, micro=1, clip=0.0, clip_first=False):
    r"""STEPS steps; with ``ranks`` > 1 this rank trains on its rows, in ``micro`` micro-batches,
    weighted by their counted targets. Returns the parameters as one host vector."""
    seed = 0 if ranks == 1 else 100 * distributed.rank()     # different starts: the broadcast
    model = make_model(seed, device)
    opt = make_optimizer(kind, model)
    ddp = distributed.DistributedDataParallel(model, opt) if ranks > 1 else None
    for x, y in data:
        if ranks > 1:
            rows = distributed.split_rows(len(x))
            x, y = x[rows], y[rows]
        pieces = [(x[s], y[s]) for s in (distributed.split_rows(len(x), micro, k)
                                         for k in range(micro))]
        weights = distributed.accumulation_weights([yk for _, yk in pieces]) if ranks > 1 \
            else [1.0]
        opt.zero_grad()
        for (xk, yk), w in zip(pieces, weights):
            _, loss = model(Tensor(xk, device=device), Tensor(yk, device=device))
            (loss * w).backward()
        if clip and clip_first:
            optim.clip_grad_norm_(model.parameters(), clip)     # wrong: the local norm
        if ddp is not None:
            ddp.sync_gradients()
        if clip and not clip_first:
            optim.clip_grad_norm_(model.parameters(), clip)     # the global norm
        opt.step()
    return np.concatenate([p.numpy().ravel() for p in model.parameters()])


def sparse_train(ranks):
    """A row-sparse embedding (Word2Vec's kind of gradient) under plain SGD."""
    seed = 0 if ranks == 1 else 100 * distributed.rank()
    tinygrad_llm.manual_seed(seed)
    emb = nn.Embedding(20, 4, sparse=True).to(dtype=np.float64)
    opt = optim.SGD(emb.parameters(), lr=0.5)
    ddp = distributed.DistributedDataParallel(emb, opt) if ranks > 1 else None
    rng = np.random.default_rng(3)
    for _ in range(STEPS):
        ids = rng.integers(0, 20, size=(6, 3))                       # (B, T)
        target = rng.standard_normal((6, 3, 4))                      # (B, T, D)
        if ranks > 1:
            rows = distributed.split_rows(6)
            ids, target = ids[rows], target[rows]
        opt.zero_grad()
        diff = emb(Tensor(ids)) - Tensor(target)
        ((diff * diff).sum() * (ranks / 6)).backward()       # mean over the batch
        if ddp is not None:
            ddp.sync_gradients()
        opt.step()
    return emb.weight.numpy().ravel()


def equality():
    results = {}
    cases = {"sgd_momentum": dict(kind="sgd", batch=4, pad=False),
             "adam_padded": dict(kind="adam", batch=6, pad=True),
             "adamw_clip_micro_uneven": dict(kind="adamw", batch=7, pad=True, micro=2,
                                             clip=0.05)}
    for name, c in cases.items():
        data = batches(c["batch"], c["pad"])
        reference = train(c["kind"], data, clip=c.get("clip", 0.0))
        ours = train(c["kind"], data, ranks=2, micro=c.get("micro", 1), clip=c.get("clip", 0.0))
        results[name] = float(np.max(np.abs(ours - reference)))
    data = batches(7, True)
    wrong = train("adamw", data, ranks=2, micro=2, clip=0.05, clip_first=True)
    results["clip_local_norm"] = float(np.max(np.abs(wrong - train("adamw", data, clip=0.05))))
    results["sparse_sgd"] = float(np.max(np.abs(sparse_train(2) - sparse_train(1))))
    try:
        distributed.check_same({"lr": 0.1, "n_layer": 2 + distributed.rank()}, "the config")
        results["mismatch"] = "no error"
    except distributed.DistributedError as e:
        results["mismatch"] = str(e)
    distributed.check_same({"lr": 0.1, "vocab": list("abc")}, "the config")    # agrees: fine
    x = np.array([1.0 + distributed.rank(), 10.0])
    results["all_reduce_mean"] = distributed.all_reduce(x, "mean").tolist()
    results["broadcast"] = distributed.broadcast(np.array([float(distributed.rank())]))[0]
    results["world"] = [distributed.rank(), distributed.world_size(), distributed.is_main()]
    return results


# ---- a NumPy stand-in for NCCL, over MPI ------------------------------------------------------
def fake_nccl():
    """``cupy.cuda.nccl`` for tests/fake_cupy.py: the calls NCCL takes (raw device pointers, an
    element count, type and op codes, a stream), carried out by MPI on the host memory those
    pointers address. It records every call, so the test sees what the seam sent."""
    from mpi4py import MPI
    calls = []
    types_ = {1: np.float32, 2: np.float64, 3: np.int64}
    nccl = types.ModuleType("cupy.cuda.nccl")
    nccl.NCCL_FLOAT32, nccl.NCCL_FLOAT64, nccl.NCCL_INT64 = 1, 2, 3
    nccl.NCCL_FLOAT16, nccl.NCCL_INT32, nccl.NCCL_UINT8 = 4, 5, 6
    nccl.NCCL_SUM = 0
    nccl.available = True

    def at(ptr, count, datatype):
        dtype = np.dtype(types_[datatype])
        buf = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
        return np.frombuffer(buf, dtype=dtype)                       # (count,) the same memory

    class NcclCommunicator:
        def __init__(self, ndev, uid, rank):
            mine = np.frombuffer(bytes(uid), dtype=np.uint8)              # (128,)
            ids = np.zeros((MPI.COMM_WORLD.Get_size(), len(mine)), dtype=np.uint8)
            MPI.COMM_WORLD.Allgather(mine, ids)
            assert len(mine) == 128 and (ids == mine).all(), "ranks got different unique ids"
            calls.append(("init", ndev, rank))

        def allReduce(self, sendptr, recvptr, count, datatype, op, stream):
            assert op == nccl.NCCL_SUM and sendptr == recvptr
            calls.append(("allReduce", count, datatype))
            MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, at(recvptr, count, datatype), op=MPI.SUM)

        def bcast(self, ptr, count, datatype, root, stream):
            calls.append(("bcast", count, datatype))
            MPI.COMM_WORLD.Bcast(at(ptr, count, datatype), root=root)

    nccl.NcclCommunicator = NcclCommunicator
    nccl.get_unique_id = lambda: bytes(np.random.default_rng().integers(0, 256, 128,
                                                                         dtype=np.uint8))
    return nccl, calls


def nccl():
    import fake_cupy
    cupy = fake_cupy.install()
    fake_cupy.ndarray.data = property(lambda self: types.SimpleNamespace(
        ptr=self._a.ctypes.data))                                    # cupy's MemoryPointer
    cupy.cuda.get_current_stream = lambda: types.SimpleNamespace(ptr=0)
    used = []
    cupy.cuda.Device = lambda index=0: types.SimpleNamespace(use=lambda: used.append(index))
    module, calls = fake_nccl()
    cupy.cuda.nccl = module
    sys.modules["cupy.cuda"], sys.modules["cupy.cuda.nccl"] = cupy.cuda, module
    assert distributed.init("auto", device="cuda") == "nccl"
    data = batches(7, True)
    reference = train("adamw", data, device="cuda", clip=0.05)
    ours = train("adamw", data, device="cuda", ranks=2, micro=2, clip=0.05)
    return {"difference": float(np.max(np.abs(ours - reference))), "devices": used,
            "calls": sorted({c[0] for c in calls}),
            "grad_all_reduces": sum(1 for c in calls if c[0] == "allReduce")}


def gpu():
    assert distributed.init("auto", device="cuda") == "nccl"
    data = batches(7, True)
    reference = train("adamw", data, device="cuda", clip=0.05)
    ours = train("adamw", data, device="cuda", ranks=2, micro=2, clip=0.05)
    return {"difference": float(np.max(np.abs(ours - reference)))}


def main():
    scenario, out = sys.argv[1], Path(sys.argv[2])
    if scenario == "nccl":
        results = nccl()
    elif scenario == "gpu":
        results = gpu()
    else:
        distributed.init("auto", timeout=float(sys.argv[3]) if len(sys.argv) > 3 else None)
        if scenario == "equality":
            results = equality()
        elif scenario in ("raise", "hang"):
            if distributed.rank() == 1:
                if scenario == "raise":
                    raise RuntimeError("rank 1 fails on purpose")
                time.sleep(600)
            distributed.all_reduce(np.ones(3))
            results = {"finished": True}
    if distributed.is_main():
        out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
