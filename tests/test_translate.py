"""examples/translate.py and the translation data: a smoke run with tiny sizes writes a log and
a checkpoint and ends with the JSON figures, resume equals an uninterrupted run, --translate
reads the checkpoint, and bad input gives a clear message and a non-zero exit without a
traceback. The split of the sentence pairs is fixed and keeps each source in one part."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from example_scripts import load_example

from tinygrad_llm.data import load_translation_pairs, translation_splits

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUICK = ["--batch-size", "8", "--test-limit", "3", "--beam", "2", "--show", "1",
         "--no-progress"]
TINY = ["--d-model", "16", "--nhead", "2", "--layers", "1", "--dim-feedforward", "32",
        "--vocab-size", "300", *QUICK]
KEYS = {"bleu", "bleu_greedy", "rougeL", "test_loss", "test_perplexity"}


@pytest.fixture(scope="module")
def translate():
    return load_example("translate")


@pytest.fixture(scope="module")
def trained(translate, tmp_path_factory):
    out = tmp_path_factory.mktemp("translate") / "out"
    assert translate.main(["--out-dir", str(out), "--max-iters", "4", "--eval-interval", "2",
                           *TINY]) == 0
    return out


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_split_is_fixed_and_keeps_each_source_in_one_part():
    pairs = load_translation_pairs()
    assert len(pairs) == 15163
    np.random.seed(123)                                  # the global seed must not matter
    a = translation_splits(pairs)
    np.random.seed(7)
    b = translation_splits(pairs)
    assert a == b
    assert sum(len(v) for v in a.values()) == len(pairs)
    assert 0.89 < len(a["train"]) / len(pairs) < 0.91
    sources = {name: {de for de, _ in part} for name, part in a.items()}
    assert not sources["train"] & sources["test"] and not sources["val"] & sources["test"]
    assert not sources["train"] & sources["val"]


def test_smoke_run_writes_log_checkpoint_and_json_last(translate, trained, capsys):
    rows = _log(trained)
    assert [r["iter"] for r in rows] == [0, 2, 4]
    assert all(np.isfinite(r["val_loss"]) for r in rows)
    with np.load(trained / "ckpt.npz", allow_pickle=False) as z:   # raises if pickled
        meta = json.loads(z["meta_json"].tobytes())
        assert "model.transformer.encoder.layers.0.self_attn.in_proj_weight" in z.files
    assert meta["iter"] == 4 and meta["model"]["d_model"] == 16
    out = trained.parent / "again"
    assert translate.main(["--out-dir", str(out), "--max-iters", "1", *TINY]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last)
    assert KEYS <= set(figures) and np.isfinite(figures["test_loss"])
    assert figures["test_perplexity"] == pytest.approx(np.exp(figures["test_loss"]), rel=1e-3)


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(translate, tmp_path):
    args = ["--max-iters", "4", "--eval-interval", "2", "--lr", "1e-2", "--warmup-iters",
            "1", "--lr-decay-iters", "4", *TINY]
    full, part = tmp_path / "full", tmp_path / "part"
    assert translate.main(["--out-dir", str(full), *args]) == 0
    assert translate.main(["--out-dir", str(part), *args, "--max-iters", "2"]) == 0
    assert translate.main(["--out-dir", str(part), "--resume", "--max-iters", "4",
                           *QUICK]) == 0
    a, b = _log(full), _log(part)
    assert [r["iter"] for r in b] == [0, 2, 4]
    for key in ("train_loss", "val_loss", "lr"):
        assert [r[key] for r in a] == pytest.approx([r[key] for r in b], rel=1e-6)


def test_translate_from_the_checkpoint(translate, trained, capsys):
    capsys.readouterr()
    assert translate.main(["--out-dir", str(trained), "--translate", "Ich habe Hunger.",
                           "--beam", "2"]) == 0
    assert translate.main(["--out-dir", str(trained), "--translate", "Ich habe Hunger.",
                           "--beam", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2


def test_attention_plot(translate, trained, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "attention.png"
    assert translate.main(["--out-dir", str(trained), "--translate", "Wir gehen nach Hause.",
                           "--attention-plot", str(png)]) == 0
    assert png.stat().st_size > 0


def _bad(translate, capsys, argv, message):
    rc = translate.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and "Traceback" not in err


def test_bad_inputs_give_clear_messages(translate, trained, tmp_path, capsys):
    none = str(tmp_path / "none")
    _bad(translate, capsys, ["--out-dir", none, "--translate", "Hallo Welt."], "no checkpoint")
    _bad(translate, capsys, ["--out-dir", none, "--resume", *TINY], "no checkpoint")
    _bad(translate, capsys, ["--out-dir", str(trained), "--translate", "   "], "empty")
    _bad(translate, capsys, ["--out-dir", str(trained), "--translate", "Wort " * 80],
         "at most --max-len 64")
    _bad(translate, capsys, ["--d-model", "10", "--nhead", "3"], "divisible")
    _bad(translate, capsys, ["--label-smoothing", "1.5"], "--label-smoothing")
    _bad(translate, capsys, ["--out-dir", str(trained), "--resume", "--d-model", "32"],
         "does not match")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ckpt.npz").write_bytes(b"not a zip file")
    _bad(translate, capsys, ["--out-dir", str(broken), "--translate", "Hallo."],
         "not a readable checkpoint")


def test_bad_input_exit_code_without_traceback_as_a_process(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "translate.py"), "--out-dir",
                           str(tmp_path / "none"), "--translate", "Ich habe Hunger."],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: no checkpoint" in proc.stderr and "Traceback" not in proc.stderr
