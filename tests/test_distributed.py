"""tinygrad_llm/distributed.py: data parallelism and gradient accumulation equal one big batch.

In this process (no MPI, no torch): one process alone makes every call a no-op; bad input gives
clear errors; the batch splits into parts that are exactly the batch; K micro-batches with uneven
ignore_index padding equal one batch of K x B (and the naive 1/K weighting does not).

Under ``mpiexec -n 2`` (tests/distributed_worker.py; skipped without mpi4py or mpiexec, and each
launch has a time limit, so a hang fails instead of blocking): 2 ranks x half the batch for 5
steps equal 1 process with the whole batch in float64 to 1e-10 for SGD, Adam, and AdamW with
global-norm clipping and micro-batches; the NCCL code path on tests/fake_cupy.py's arrays; a rank
that raises or hangs ends the job with a message. The ``gpu`` test runs the NCCL path for real.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mpi_launch import MPIEXEC, have_mpi, needs_mpi

import tinygrad_llm
from tinygrad_llm import Tensor, backend, distributed, optim
from tinygrad_llm.models.gpt import GPT, GPTConfig

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed_worker.py"


@pytest.fixture(autouse=True)
def alone(monkeypatch):
    """A fresh, uninitialised world for each test, outside any MPI launch."""
    monkeypatch.setattr(distributed, "_world", distributed._World())
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# ---- one process -------------------------------------------------------------------------------
def test_one_process_without_mpi_is_a_no_op():
    assert distributed.init() == "none"
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.local_rank() == 0 and distributed.backend_name() == "none"
    distributed.barrier()
    x = np.array([1.0, 2.0])
    assert distributed.all_reduce(x, "mean") is x and x.tolist() == [1.0, 2.0]
    assert distributed.broadcast(x) is x and x.tolist() == [1.0, 2.0]
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    distributed.check_same({"anything": 1}, "the config")
    assert distributed.accumulation_weights([np.ones((2, 3)), np.ones((2, 3))]) == [0.5, 0.5]
    assert distributed.init("none") == "none"                       # again: nothing happens
    with pytest.raises(distributed.DistributedError, match="already initialised"):
        distributed.init("mpi")


def test_one_process_on_the_cuda_stand_in(fake_cuda):
    x = Tensor([1.0, 2.0], device="cuda").data
    assert distributed.all_reduce(x, "mean") is x
    assert distributed.broadcast(x) is x


def test_bad_input_gives_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown backend 'gloo'.*'auto', 'mpi', 'nccl'"):
        distributed.init("gloo")
    with pytest.raises(ValueError, match="timeout must be positive"):
        distributed.init("none", timeout=0)
    with pytest.raises(ValueError, match="op must be one of"):
        distributed.all_reduce(np.ones(2), "max")
    with pytest.raises(TypeError, match="needs a floating array"):
        distributed.all_reduce(np.ones(2, dtype=np.int64), "mean")
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(distributed.DistributedError, match="one of 2 processes but with "
                                                           "backend 'none'"):
        distributed.init("none")
    monkeypatch.setitem(sys.modules, "mpi4py", None)                # as if not installed
    with pytest.raises(distributed.DistributedError, match=r"needs mpi4py.*\[dist\]"):
        distributed.init("auto")


def test_importing_the_package_does_not_import_mpi4py():
    code = "import sys, tinygrad_llm.distributed; assert 'mpi4py' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_split_rows_covers_the_batch_in_order():
    for batch, parts in ((12, 2), (7, 2), (12, 5), (3, 3)):
        slices = [distributed.split_rows(batch, parts, i) for i in range(parts)]
        rows = np.concatenate([np.arange(batch)[s] for s in slices])
        assert rows.tolist() == list(range(batch))
        assert max(s.stop - s.start for s in slices) - min(s.stop - s.start for s in slices) <= 1
    assert distributed.split_rows(8) == slice(0, 8)                  # one rank: everything
    with pytest.raises(ValueError, match="3 parts but the batch has only 2 rows"):
        distributed.split_rows(2, 3, 0)


def test_one_process_data_parallel_leaves_gradients_alone():
    tinygrad_llm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=8))
    opt = model.configure_optimizers(0.1, 1e-2)
    ddp = distributed.DistributedDataParallel(model, opt)
    x = Tensor(np.arange(8).reshape(2, 4) % 7)
    _, loss = ddp(x, x)                                              # calls the model
    loss.backward()
    before = {id(p): p.grad for p in model.parameters()}
    ddp.sync_gradients()
    assert all(p.grad is before[id(p)] for p in model.parameters())


# ---- gradient accumulation ---------------------------------------------------------------------
CONFIG = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)


def _padded_batches(steps, batch_size, rng):
    """(x, y) pairs of (B, T) where row b's targets end in a different number of -100s."""
    out = []
    for _ in range(steps):
        x = rng.integers(0, CONFIG.vocab_size, size=(batch_size, CONFIG.block_size))   # (B, T)
        y = rng.integers(0, CONFIG.vocab_size, size=(batch_size, CONFIG.block_size))   # (B, T)
        for b in range(batch_size):
            y[b, CONFIG.block_size - (b * 3) % CONFIG.block_size:] = -100
        out.append((x, y))
    return out


def _train(data, micro, weighting="tokens", clip=0.05):
    """5 AdamW steps with global-norm clipping; each batch in ``micro`` micro-batches."""
    tinygrad_llm.manual_seed(0)
    model = GPT(CONFIG).to(dtype=np.float64)
    opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    for x, y in data:
        pieces = [(x[s], y[s]) for s in (distributed.split_rows(len(x), micro, k)
                                         for k in range(micro))]
        if weighting == "tokens":
            weights = distributed.accumulation_weights([yk for _, yk in pieces])
        else:
            weights = [1 / micro] * micro                            # the usual loss / K
        opt.zero_grad()
        for (xk, yk), w in zip(pieces, weights):
            _, loss = model(Tensor(xk), Tensor(yk))
            (loss * w).backward()
        optim.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return np.concatenate([p.numpy().ravel() for p in model.parameters()])


def test_micro_batches_with_uneven_padding_equal_one_big_batch():
    data = _padded_batches(5, 12, np.random.default_rng(1))          # K x B = 4 x 3 rows
    whole = _train(data, micro=1)
    np.testing.assert_allclose(_train(data, micro=4), whole, rtol=0, atol=1e-10)
    np.testing.assert_allclose(_train(data, micro=5), whole, rtol=0, atol=1e-10)   # uneven rows
    naive = _train(data, micro=4, weighting="mean of means")
    assert np.max(np.abs(naive - whole)) > 1e-4                      # the test can fail


def test_accumulation_weights():
    y = np.full((2, 4), 3)
    padded = y.copy()
    padded[0, 1:] = -100                                             # 5 counted targets
    empty = np.full((1, 4), -100)
    assert distributed.accumulation_weights([y, y, y]) == pytest.approx([1 / 3] * 3)
    assert distributed.accumulation_weights([y, Tensor(padded), empty]) == \
        pytest.approx([8 / 13, 5 / 13, 0.0])
    assert distributed.accumulation_weights([padded], ignore_index=3) == [1.0]
    assert distributed.accumulation_weights([empty]) == [0.0]


# ---- several processes -------------------------------------------------------------------------
def _mpiexec(tmp_path, scenario, *extra, timeout=240, ranks=2):
    out = tmp_path / f"{scenario}.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.monotonic()
    proc = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(WORKER), scenario,
                           str(out), *extra], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=HERE)
    proc.seconds = time.monotonic() - start
    proc.results = json.loads(out.read_text()) if out.exists() else None
    return proc


@pytest.fixture(scope="module")
def equality(tmp_path_factory):
    if not have_mpi():
        pytest.skip("needs mpi4py and mpiexec (pip install mpi4py mpich)")
    proc = _mpiexec(tmp_path_factory.mktemp("mpi"), "equality")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.results


@needs_mpi
@pytest.mark.parametrize("case", ["sgd_momentum", "adam_padded", "adamw_clip_micro_uneven",
                                  "sparse_sgd"])
def test_two_ranks_equal_one_process_with_the_whole_batch(equality, case):
    assert equality[case] < 1e-10, equality


@needs_mpi
def test_clipping_before_the_sync_sees_local_norms_and_differs(equality):
    assert equality["clip_local_norm"] > 1e-4


@needs_mpi
def test_collectives_and_config_check_over_mpi(equality):
    assert equality["world"] == [0, 2, True]
    assert equality["all_reduce_mean"] == [1.5, 10.0] and equality["broadcast"] == 0.0
    assert equality["mismatch"] == ("the ranks disagree on the config: rank(s) [1] differ from "
                                    "rank 0; rank 1 has n_layer = 3 where rank 0 has 2")


@needs_mpi
def test_the_nccl_path_on_the_cuda_stand_in(tmp_path):
    proc = _mpiexec(tmp_path, "nccl")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = proc.results
    assert r["difference"] < 1e-10, r
    assert r["devices"] == [0]                      # rank 0 of one machine: GPU 0
    assert r["calls"] == ["allReduce", "bcast", "init"]
    assert r["grad_all_reduces"] == 5               # one message per step: the flat buffer


@needs_mpi
def test_a_rank_that_raises_ends_the_job(tmp_path):
    proc = _mpiexec(tmp_path, "raise", timeout=120)
    assert proc.returncode != 0 and proc.results is None
    assert "rank 1 fails on purpose" in proc.stderr
    assert "rank 1 of 2 stopped with RuntimeError; ending the job" in proc.stderr
    assert proc.seconds < 60


@needs_mpi
def test_a_rank_that_hangs_ends_the_job_after_the_timeout(tmp_path):
    proc = _mpiexec(tmp_path, "hang", "3", timeout=120)
    assert proc.returncode != 0 and proc.results is None
    assert "rank 0 of 2 waited more than 3 s in all_reduce" in proc.stderr
    assert proc.seconds < 60


@pytest.mark.gpu
def test_gpu_nccl_two_ranks_equal_one_process(tmp_path):
    ok, reason = backend.cuda_status()
    if not ok:
        pytest.skip(reason)
    if backend.cupy_module().cuda.runtime.getDeviceCount() < 2:
        pytest.skip("NCCL needs one GPU per rank: two GPUs")
    if not have_mpi():
        pytest.skip("needs mpi4py and mpiexec")
    proc = _mpiexec(tmp_path, "gpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.results["difference"] < 1e-10
