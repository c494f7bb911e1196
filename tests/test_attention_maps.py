"""examples/attention_maps.py: every head of every layer of a tiny trained GPT, the weights it
draws are the model's own (rows sum to 1, causal), and bad input gives a clear message."""

import sys

import numpy as np
import pytest
from example_scripts import load_example

TINY = ["--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
        "--batch-size", "4", "--eval-iters", "1", "--no-progress", "--sample-chars", "0"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("attention") / "run"
    train = load_example("train_shakespeare")
    assert train.main(["--out-dir", str(out), "--max-iters", "3", "--eval-interval", "3",
                       *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def script():
    return load_example("attention_maps")


def test_maps_are_the_models_attention(script, checkpoint):
    from tinygrad_llm.models.gpt import GPT
    model = GPT.from_pretrained(checkpoint)
    ids = [1, 5, 9, 2, 7]
    maps = script.attention_maps(model, ids)
    assert maps.shape == (2, 2, 5, 5)
    assert np.allclose(maps.sum(-1), 1, atol=1e-6)
    assert np.all(maps[..., np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0)
    # layer 0's P, rebuilt in NumPy from the layer's q and k, agrees
    from tinygrad_llm import no_grad
    with no_grad():
        x = model._embed(model._check_idx(np.array([ids])), 0, None)
        block = model.transformer.h[0]
        q, k, _ = block.attn._heads(block.attn.c_attn(block.ln_1(x)))    # (1, nh, T, hs)
        s = (q @ k.swapaxes(-1, -2)).numpy()[0] / np.sqrt(q.shape[-1])
    s = s + np.triu(np.full((5, 5), -np.inf), 1)
    p = np.exp(s - s.max(-1, keepdims=True))
    assert np.allclose(maps[0], p / p.sum(-1, keepdims=True), atol=1e-6)


def test_png_of_every_head(script, checkpoint, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "maps.png"
    assert script.main(["--model", str(checkpoint), "--prompt", "ROMEO: hi", "--out",
                        str(png)]) == 0
    assert png.stat().st_size > 10_000
    assert "2 layers x 2 heads" in capsys.readouterr().out


def _bad(script, capsys, argv, message):
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_bad_inputs(script, checkpoint, tmp_path, capsys, monkeypatch):
    _bad(script, capsys, ["--model", str(tmp_path / "none")], "no checkpoint in")
    _bad(script, capsys, ["--model", str(checkpoint), "--prompt", "x" * 17],
         "--prompt is 17 tokens long, more than the model's block_size 16")
    _bad(script, capsys, ["--model", str(checkpoint), "--prompt", ""], "--prompt is empty")
    _bad(script, capsys, ["--model", str(checkpoint), "--out", str(tmp_path / "a.jpg")],
         "must end in .png")
    monkeypatch.setitem(sys.modules, "matplotlib", None)             # as if not installed
    _bad(script, capsys, ["--model", str(checkpoint), "--prompt", "ROMEO"],
         'attention_maps.py needs matplotlib: pip install -e ".[plot]"')
