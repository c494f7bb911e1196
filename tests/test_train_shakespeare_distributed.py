"""examples/train_shakespeare.py with --grad-accum and under ``mpiexec -n 2``: the same losses as
one process with the whole batch, rank 0 alone writes, --resume across rank counts, bad worlds
(more ranks than rows, ranks that disagree) give clear errors, and a killed rank ends the job.

The mpiexec tests skip without mpi4py or mpiexec; every launch has a time limit.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from example_scripts import load_example
from mpi_launch import MPIEXEC, needs_mpi

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train_shakespeare.py"
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
        "--batch-size", "4", "--eval-iters", "2", "--no-progress", "--sample-chars", "0",
        "--eval-interval", "3", "--warmup-iters", "2", "--lr", "1e-2"]


@pytest.fixture(scope="module")
def train():
    return load_example("train_shakespeare")


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _same_losses(a, b):
    assert [r["iter"] for r in a] == [r["iter"] for r in b]
    for ra, rb in zip(a, b):
        for key in ("train_loss", "val_loss", "lr"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-5), (key, ra, rb)


def _launch(*commands, timeout=180):
    """``mpiexec -n 1 python SCRIPT args : -n 1 ...``, one single-thread rank per command."""
    argv = [MPIEXEC]
    for n, args in enumerate(commands):
        argv += ([":"] if n else []) + ["-n", "1", sys.executable, str(SCRIPT), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def test_micro_batches_give_the_losses_of_the_whole_batch(train, tmp_path):
    args = ["--max-iters", "6", *TINY]
    assert train.main(["--out-dir", str(tmp_path / "one"), *args]) == 0
    assert train.main(["--out-dir", str(tmp_path / "four"), *args, "--grad-accum", "4"]) == 0
    assert train.main(["--out-dir", str(tmp_path / "three"), *args, "--grad-accum", "3"]) == 0
    whole = _log(tmp_path / "one")
    _same_losses(_log(tmp_path / "four"), whole)
    _same_losses(_log(tmp_path / "three"), whole)            # uneven: 1, 1, 2 rows


def test_too_many_micro_batches_is_a_clear_error(train, tmp_path, capsys):
    assert train.main(["--out-dir", str(tmp_path), *TINY, "--grad-accum", "5"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size 4 over 1 rank(s) leaves 4 row(s)" in err and "Traceback" not in err
    assert train.main(["--out-dir", str(tmp_path), *TINY, "--grad-accum", "0"]) == 2
    assert "--grad-accum must be at least 1" in capsys.readouterr().err


@needs_mpi
def test_two_ranks_give_the_losses_of_one_process(train, tmp_path):
    args = ["--max-iters", "6", *TINY]
    assert train.main(["--out-dir", str(tmp_path / "one"), *args]) == 0
    out = tmp_path / "two"
    proc = _launch(["--out-dir", str(out), *args], ["--out-dir", str(out), *args])
    assert proc.returncode == 0, proc.stderr
    _same_losses(_log(out), _log(tmp_path / "one"))
    assert proc.stdout.count("parameters; vocab") == 1 and "2 ranks (mpi)" in proc.stdout
    assert proc.stdout.count("done: checkpoint") == 1          # rank 0 alone reports
    assert (out / "model.safetensors").exists() and (out / "train_state.npz").exists()


@needs_mpi
def test_resume_with_another_number_of_ranks(train, tmp_path):
    args = ["--max-iters", "9", *TINY]
    full = tmp_path / "full"
    assert train.main(["--out-dir", str(full), *args]) == 0
    part = tmp_path / "part"
    two = ["--out-dir", str(part), *args, "--max-iters", "3"]
    assert _launch(two, two).returncode == 0                   # 2 ranks: iterations 0 -> 3
    assert train.main(["--out-dir", str(part), "--resume", "--max-iters", "6",
                       "--no-progress", "--sample-chars", "0"]) == 0     # 1 process: 3 -> 6
    resume = ["--out-dir", str(part), "--resume", "--max-iters", "9", "--no-progress",
              "--sample-chars", "0", "--grad-accum", "2"]
    proc = _launch(resume, resume)                             # 2 ranks x 2 micro: 6 -> 9
    assert proc.returncode == 0, proc.stderr
    _same_losses(_log(part), _log(full))


@needs_mpi
def test_more_ranks_than_rows_is_a_clear_error(tmp_path):
    args = ["--out-dir", str(tmp_path), *TINY, "--batch-size", "2", "--max-iters", "2"]
    proc = _launch(args, args, args)
    assert proc.returncode != 0
    assert "3 ranks but --batch-size 2" in proc.stderr and "Traceback" not in proc.stderr


@needs_mpi
def test_ranks_that_disagree_are_a_clear_error(tmp_path):
    args = ["--out-dir", str(tmp_path), *TINY, "--max-iters", "2"]
    proc = _launch(args, [*args, "--lr", "2e-2"])
    assert proc.returncode != 0
    assert "the ranks disagree on the options, tokenizer, data or checkpoint" in proc.stderr
    assert "rank 1 has options.lr = 0.02 where rank 0 has 0.01" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "model.safetensors").exists()


def _ranks_of(out):
    """The pids of the Python processes training into ``out`` (not mpiexec itself)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode()).name.startswith("python") and \
                str(out).encode() in argv:
            pids.append(int(cmdline.parent.name))
    return pids


@needs_mpi
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_rank_ends_the_job(tmp_path):
    out = tmp_path / "out"
    args = ["--out-dir", str(out), *TINY, "--max-iters", "100000", "--eval-interval", "100000"]
    argv = [MPIEXEC, "-n", "2", sys.executable, str(SCRIPT), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.monotonic() + 90
        while not (out / "train_state.npz").exists() and time.monotonic() < deadline:
            time.sleep(0.2)                                    # rank 0 evaluated iteration 0
        pids = _ranks_of(out)
        assert len(pids) == 2, pids
        os.kill(max(pids), signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)          # ends: no hang
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    said = stdout + stderr                             # mpiexec's report, or rank 0's abort
    assert "BAD TERMINATION" in said or "Abort" in said, said
