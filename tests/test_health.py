"""tinygrad_llm.health (gradient norms, update ratios, clipping, GELU tails, checked against
NumPy), train_shakespeare.py --log-health, and examples/plot_log.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from example_scripts import load_example
from mpi_launch import MPIEXEC, needs_mpi

import tinygrad_llm as tg
from tinygrad_llm import autograd
from tinygrad_llm.health import HealthMonitor, layer_of
from tinygrad_llm.optim import SGD, clip_grad_norm_
from tinygrad_llm.tensor import Tensor

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train_shakespeare.py"
TINY = ["--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
        "--batch-size", "4", "--eval-iters", "2", "--no-progress", "--sample-chars", "0"]


def _model():
    tg.manual_seed(0)
    return tg.nn.Sequential(tg.nn.Linear(3, 6), tg.nn.GELU(), tg.nn.Linear(6, 6), tg.nn.GELU(),
                            tg.nn.Linear(6, 2))


def test_layer_of():
    assert layer_of("transformer.h.0.attn.c_attn.weight") == "transformer.h.0.attn.c_attn"
    assert layer_of("bias") == "bias"


def test_norms_ratios_clipping_and_gelu_tails_against_numpy():
    model = _model()
    opt = SGD(model.parameters(), lr=0.1)
    monitor = HealthMonitor(model.named_parameters(), max_norm=0.01, tail=1.0)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((7, 3)).astype(np.float32) * 3 for _ in range(2)]
    for x in batches:                                   # two micro-batches
        with monitor.watch():
            loss = (model(Tensor(x)) ** 2).mean()
        loss.backward()
    assert autograd._profile_hook is None               # the hook is gone after the context
    monitor.gradients()
    grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    total = clip_grad_norm_(model.parameters(), 0.01).item()
    opt.step()
    row = monitor.report()
    json.dumps(row)                                     # plain numbers
    assert row["grad_norm_total"] == pytest.approx(total, rel=1e-6)
    assert row["clipped"] is True and row["max_norm"] == 0.01
    assert set(row["grad_norm"]) == {"0", "2", "4"}
    for layer in ("0", "2", "4"):
        g = np.concatenate([grads[f"{layer}.weight"].ravel(), grads[f"{layer}.bias"].ravel()])
        assert row["grad_norm"][layer] == pytest.approx(np.linalg.norm(g), rel=1e-6)
        w0 = np.concatenate([before[f"{layer}.weight"].ravel(), before[f"{layer}.bias"].ravel()])
        w1 = np.concatenate([model[int(layer)].weight.numpy().ravel(),
                             model[int(layer)].bias.numpy().ravel()])
        assert row["update_ratio"][layer] == pytest.approx(
            np.linalg.norm(w1 - w0) / np.linalg.norm(w0), rel=1e-5)
    # the GELU inputs, recomputed: the first GELU sees x W0^T + b0 of both micro-batches
    w, b = before["0.weight"], before["0.bias"]
    pre = np.concatenate([x @ w.T + b for x in batches])
    assert row["gelu_tails"]["below"][0] == pytest.approx(np.mean(pre < -1.0))
    assert row["gelu_tails"]["above"][0] == pytest.approx(np.mean(pre > 1.0))
    assert len(row["gelu_tails"]["below"]) == 2 and row["gelu_tail"] == 1.0
    assert 0 < row["gelu_tails"]["below"][0] < 1


def test_no_clipping_and_bad_inputs():
    model = _model()
    monitor = HealthMonitor(model.named_parameters(), max_norm=None)
    with pytest.raises(RuntimeError, match=r"HealthMonitor.report: call gradients\(\)"):
        monitor.report()
    (model(Tensor(np.ones((2, 3), dtype=np.float32))) ** 2).sum().backward()
    monitor.gradients()
    row = monitor.report()
    assert row["clipped"] is False and row["gelu_tails"] == {"below": [], "above": []}
    assert all(r == 0 for r in row["update_ratio"].values())        # no step taken
    with pytest.raises(ValueError, match="HealthMonitor: tail must be > 0, got 0"):
        HealthMonitor(model.named_parameters(), tail=0)
    with pytest.raises(ValueError, match="named_parameters is empty"):
        HealthMonitor([])


@pytest.fixture(scope="module")
def health_run(tmp_path_factory):
    train = load_example("train_shakespeare")
    out = tmp_path_factory.mktemp("health") / "run"
    assert train.main(["--out-dir", str(out), "--max-iters", "6", "--eval-interval", "3",
                       "--log-health", "2", *TINY]) == 0
    return out


def test_train_shakespeare_logs_health(health_run):
    rows = [json.loads(line) for line in (health_run / "log.jsonl").read_text().splitlines()]
    health = [r for r in rows if "health" in r]
    evals = [r for r in rows if "train_loss" in r]
    assert [r["iter"] for r in health] == [0, 2, 4] and [r["iter"] for r in evals] == [0, 3, 6]
    h = health[0]["health"]
    assert set(h) == {"grad_norm", "grad_norm_total", "max_norm", "clipped", "update_ratio",
                      "gelu_tail", "gelu_tails"}
    assert "transformer.h.1.mlp.c_fc" in h["grad_norm"] and h["max_norm"] == 1.0
    assert h["clipped"] == (h["grad_norm_total"] > 1.0)
    assert len(h["gelu_tails"]["below"]) == 2                     # one GELU per block
    assert all(np.isfinite(r["loss"]) for r in health)


def test_bad_log_health(capsys, tmp_path):
    train = load_example("train_shakespeare")
    assert train.main(["--out-dir", str(tmp_path), "--log-health", "-1", *TINY]) == 2
    err = capsys.readouterr().err
    assert "--log-health must be >= 0" in err and "Traceback" not in err


def test_plot_log(health_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot_log = load_example("plot_log")
    assert plot_log.main([str(health_run)]) == 0
    assert (health_run / "health.png").stat().st_size > 10_000
    png = tmp_path / "only_loss.png"
    (tmp_path / "evals").mkdir()
    lines = (health_run / "log.jsonl").read_text().splitlines()
    (tmp_path / "evals" / "log.jsonl").write_text(
        "\n".join(line for line in lines if "health" not in line) + "\n")
    assert plot_log.main([str(tmp_path / "evals"), "--out", str(png)]) == 0
    assert png.stat().st_size > 0


def _plot_error(plot_log, capsys, argv, message):
    assert plot_log.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, (argv, err)


def test_plot_log_bad_inputs(tmp_path, capsys, monkeypatch):
    plot_log = load_example("plot_log")
    run = str(tmp_path)
    _plot_error(plot_log, capsys, [str(tmp_path / "none")], "is not a directory")
    _plot_error(plot_log, capsys, [run], "no log.jsonl in")
    (tmp_path / "log.jsonl").write_text("")
    _plot_error(plot_log, capsys, [run], "has no evaluation or health lines")
    (tmp_path / "log.jsonl").write_text("{not json\n")
    _plot_error(plot_log, capsys, [run], "line 1: not JSON")
    (tmp_path / "log.jsonl").write_text('{"iter": 0, "train_loss": 1, "val_loss": 1, "lr": 1}\n')
    monkeypatch.setitem(sys.modules, "matplotlib", None)             # as if not installed
    _plot_error(plot_log, capsys, [run], 'needs matplotlib: pip install -e ".[plot]"')


def test_plot_log_out_must_be_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot_log = load_example("plot_log")
    (tmp_path / "log.jsonl").write_text('{"iter": 0, "train_loss": 1, "val_loss": 1, "lr": 1}\n')
    _plot_error(plot_log, capsys, [str(tmp_path), "--out", "x.jpg"], "must end in .png")


@needs_mpi
def test_health_of_two_ranks_is_that_of_one_process(tmp_path):
    # rank 0 measures the averaged gradients: the global batch's, as one process computes them
    args = ["--max-iters", "3", "--eval-interval", "3", "--log-health", "1", *TINY]
    train = load_example("train_shakespeare")
    assert train.main(["--out-dir", str(tmp_path / "one"), *args]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(SCRIPT), "--out-dir",
                           str(tmp_path / "two"), *args], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr

    def health(out):
        return [json.loads(line)["health"] for line in (out / "log.jsonl").read_text()
                .splitlines() if "health" in line]

    one, two = health(tmp_path / "one"), health(tmp_path / "two")
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        assert b["grad_norm_total"] == pytest.approx(a["grad_norm_total"], rel=1e-4)
        assert b["clipped"] == a["clipped"]
        for layer, value in a["grad_norm"].items():
            assert b["grad_norm"][layer] == pytest.approx(value, rel=1e-3, abs=1e-7)
