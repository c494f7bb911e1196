"""examples/train_shakespeare.py and examples/sample.py: a smoke run with tiny sizes, resume
equals an uninterrupted run, Ctrl-C saves, and every kind of bad input gives a clear message and
a non-zero exit without a traceback."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from example_scripts import load_example

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
        "--batch-size", "4", "--eval-iters", "2", "--no-progress"]


def _load(name):
    return load_example(name)


@pytest.fixture(scope="module")
def train():
    return _load("train_shakespeare")


@pytest.fixture(scope="module")
def sample():
    sys.path.insert(0, str(EXAMPLES))
    try:
        return _load("sample")
    finally:
        sys.path.pop(0)


@pytest.fixture(scope="module")
def small_text(tmp_path_factory):
    from tinygrad_llm.data import tiny_shakespeare
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(tiny_shakespeare()[:20000], encoding="utf-8")
    return path


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_smoke_run_writes_log_checkpoint_plot_and_sample(train, tmp_path, capsys):
    out = tmp_path / "out"
    rc = train.main(["--out-dir", str(out), "--max-iters", "4", "--eval-interval", "2",
                     "--sample-chars", "40", *TINY])
    assert rc == 0
    rows = _log(out)
    assert [r["iter"] for r in rows] == [0, 2, 4]
    assert set(rows[0]) == {"iter", "train_loss", "val_loss", "lr", "elapsed_s", "ms_per_iter"}
    assert all(np.isfinite(r["val_loss"]) and r["val_loss"] < 4.5 for r in rows)
    assert all((out / f).exists() for f in ("model.safetensors", "config.json",
                                             "train_state.npz", "tokenizer.json"))
    pytest.importorskip("matplotlib")
    assert (out / "loss.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "sample" in printed and "iter 4: train loss" in printed


def _meta(out):
    with np.load(out / "train_state.npz", allow_pickle=False) as z:   # raises if pickled
        return json.loads(z["meta_json"].tobytes())


def test_checkpoint_has_no_pickle_and_everything_to_resume(train, tmp_path):
    from tinygrad_llm.checkpoint import load_safetensors
    from tinygrad_llm.models import GPT
    out = tmp_path / "out"
    assert train.main(["--out-dir", str(out), "--max-iters", "2", "--eval-interval", "2",
                       "--sample-chars", "0", *TINY]) == 0
    with np.load(out / "train_state.npz", allow_pickle=False) as z:
        names = set(z.files)
    meta = _meta(out)
    assert "optim.0.exp_avg" in names and not any(n.startswith("model.") for n in names)
    assert meta["iter"] == 2 and meta["model"]["n_layer"] == 1
    assert {"batch", "host"} <= set(meta["rng"]) and "chars" in meta["tokenizer"]
    weights, _ = load_safetensors(out / "model.safetensors")        # GPT-2's names and layout
    assert weights["transformer.h.0.attn.c_attn.weight"].shape == (16, 48)
    assert json.loads((out / "config.json").read_text())["model_type"] == "gpt2"
    model = GPT.from_pretrained(out)                                 # a from_pretrained dir
    assert model.config.bias is False and model.config.n_layer == 1


def test_old_single_file_checkpoint_gets_a_clear_message(train, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "ckpt.npz").write_bytes(b"an old checkpoint")
    _bad(train, capsys, ["--out-dir", str(out), "--resume", *TINY], "old single-file format")


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(train, tmp_path):
    args = ["--max-iters", "6", "--eval-interval", "3", "--sample-chars", "0", "--dropout",
            "0.1", "--lr", "1e-2", "--warmup-iters", "2", *TINY]
    full, part = tmp_path / "full", tmp_path / "part"
    assert train.main(["--out-dir", str(full), *args]) == 0
    assert train.main(["--out-dir", str(part), *args, "--max-iters", "4"]) == 0
    assert train.main(["--out-dir", str(part), "--resume", "--max-iters", "6",
                       "--sample-chars", "0", "--no-progress"]) == 0
    a, b = _log(full), _log(part)
    assert [r["iter"] for r in b] == [0, 3, 4, 6]
    for key in ("train_loss", "val_loss", "lr"):
        assert [r[key] for r in a] == [r[key] for r in b if r["iter"] != 4]


def test_sample_script(train, sample, tmp_path, capsys):
    out = tmp_path / "out"
    assert train.main(["--out-dir", str(out), "--max-iters", "1", "--sample-chars", "0",
                       *TINY]) == 0
    capsys.readouterr()
    argv = ["--out-dir", str(out), "--start", "ROMEO:", "--max-new-tokens", "30",
            "--temperature", "0.8", "--top-k", "5", "--seed", "3"]
    assert sample.main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first.rstrip("\n")) >= 36
    assert sample.main(argv) == 0
    assert capsys.readouterr().out == first                    # a seed makes it reproducible
    assert sample.main(["--out-dir", str(tmp_path / "none")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_bpe_tokenizer(train, tmp_path, small_text):
    out = tmp_path / "out"
    assert train.main(["--out-dir", str(out), "--data", str(small_text), "--tokenizer", "bpe",
                       "--bpe-vocab-size", "300", "--max-iters", "2", "--sample-chars", "10",
                       *TINY]) == 0
    meta = _meta(out)
    assert meta["tokenizer_kind"] == "bpe" and meta["model"]["vocab_size"] == 300


def _bad(train, capsys, argv, message):
    rc = train.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and "Traceback" not in err
    return err


def test_bad_inputs_give_clear_messages(train, tmp_path, capsys, small_text):
    out = str(tmp_path / "out")
    _bad(train, capsys, ["--data", str(tmp_path / "missing.txt"), *TINY], "no such file")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    _bad(train, capsys, ["--data", str(empty), *TINY], "is empty")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00abc")
    _bad(train, capsys, ["--data", str(binary), *TINY], "not UTF-8")
    _bad(train, capsys, ["--data", str(small_text), "--out-dir", out, *TINY,
                         "--block-size", "5000"], "too large for this data")
    _bad(train, capsys, ["--out-dir", out, "--resume", *TINY], "no checkpoint")
    Path(out).mkdir(exist_ok=True)
    (Path(out) / "train_state.npz").write_bytes(b"not a zip file at all")
    _bad(train, capsys, ["--out-dir", out, "--resume", *TINY], "not a readable checkpoint")
    _bad(train, capsys, ["--n-embd", "10", "--n-head", "3"], "divisible")
    _bad(train, capsys, ["--dropout", "1.5"], "--dropout")


def test_resume_with_a_different_config_or_truncated_checkpoint(train, tmp_path, capsys):
    out = tmp_path / "out"
    assert train.main(["--out-dir", str(out), "--max-iters", "1", "--sample-chars", "0",
                       *TINY]) == 0
    capsys.readouterr()
    _bad(train, capsys, ["--out-dir", str(out), "--resume", *TINY, "--n-layer", "2"],
         "does not match the checkpoint")
    _bad(train, capsys, ["--out-dir", str(out), "--resume", "--tokenizer", "bpe"],
         "does not match")
    weights = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    _bad(train, capsys, ["--out-dir", str(out), "--resume"], "is not the weights file")
    (out / "model.safetensors").write_bytes(weights)
    blob = (out / "train_state.npz").read_bytes()
    (out / "train_state.npz").write_bytes(blob[: len(blob) // 2])
    _bad(train, capsys, ["--out-dir", str(out), "--resume"], "not a readable checkpoint")


def test_bad_input_exit_code_without_traceback_as_a_process(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "train_shakespeare.py"), "--data",
                           str(tmp_path / "nope.txt")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "error: --data" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_saves_a_checkpoint(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "train_shakespeare.py"),
                             "--out-dir", str(out), "--max-iters", "100000",
                             "--eval-interval", "100000", "--sample-chars", "0", *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / "train_state.npz").exists() and time.time() < deadline:  # iter-0 eval
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "interrupted: saved" in stdout and "Traceback" not in stderr
    meta = _meta(out)
    assert meta["iter"] > 0 and meta["evaluated"] is False
