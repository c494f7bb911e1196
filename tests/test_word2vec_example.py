"""examples/word2vec_shakespeare.py end to end on one epoch: it trains, prints the loss per
epoch, takes one step on the engine by hand (backward gives row-sparse gradients and the batch's
loss falls), and prints neighbours and analogies."""

import re
import sys

from example_scripts import load_example


def test_word2vec_example_runs_and_its_step_lowers_the_loss(monkeypatch, capsys, tmp_path):
    example = load_example("word2vec_shakespeare")
    monkeypatch.setattr(sys, "argv", ["word2vec_shakespeare.py", "--epochs", "1", "--out-dir",
                                      str(tmp_path), "--words", "king,zebraish"])
    example.main()
    out = capsys.readouterr().out
    assert "loss per centre word, by epoch:" in out
    step = re.search(r"one step by hand: .* loss ([\d.]+); backward gave RowSparseGrad\((\d+) "
                     r"rows.*RowSparseGrad\((\d+) rows.*\nafter SGD .*: loss ([\d.]+)", out)
    assert step is not None, out
    before, in_rows, out_rows, after = step.groups()
    assert float(after) < float(before) and int(in_rows) == 256 + 10 and int(out_rows) == 256 * 6
    assert "king ->" in out and "zebraish: not in the vocabulary" in out
    assert (tmp_path / "vectors.txt").is_file() and (tmp_path / "model.npz").is_file()
