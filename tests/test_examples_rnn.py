"""examples/lstm_classifier.py and examples/char_lstm.py, quickly: a short classifier run beats
chance, bad data files give a message naming the line, save/predict round-trips, and the char
LSTM trains and samples."""

import json
from pathlib import Path

import numpy as np
import pytest
from example_scripts import load_example

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    return load_example(name)


QUICK = ["--limit", "3000", "--epochs", "2", "--maxlen", "24", "--num-words", "3000",
         "--embed-dim", "16", "--hidden-size", "16", "--batch-size", "64", "--lr", "0.01",
         "--no-progress"]


def test_classifier_quick_run_beats_chance(capsys, tmp_path):
    clf = _load("lstm_classifier")
    saved = tmp_path / "clf.npz"
    assert clf.main(QUICK + ["--save", str(saved)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    chance = result["majority_class_test_accuracy"]
    assert result["val_accuracy"] > 0.6 and result["val_accuracy"] > chance + 0.05, result
    assert result["baseline_test_accuracy"] > chance, result
    assert clf.main(["--load", str(saved), "--predict", "a wonderful, moving film",
                     "--predict", "dull"]) == 0
    preds = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    assert [p["text"] for p in preds] == ["a wonderful, moving film", "dull"]
    assert all(0 <= p["p_positive"] <= 1 for p in preds)


def test_classifier_gru_flag(capsys):
    clf = _load("lstm_classifier")
    args = ["--limit", "400", "--epochs", "1", "--maxlen", "8", "--num-words", "500",
            "--embed-dim", "8", "--hidden-size", "8", "--no-baseline", "--no-progress",
            "--cell", "gru"]
    assert clf.main(args) == 0
    out = capsys.readouterr().out
    assert "(rnn): GRU(8, 8, batch_first=True)" in out
    result = json.loads(out.strip().splitlines()[-1])
    assert 0 <= result["test_accuracy"] <= 1 and "baseline_test_accuracy" not in result


def test_classifier_split_is_fixed_and_disjoint():
    """80/10/10 of the 10,568 non-neutral sentences, the same whatever --seed says."""
    clf = _load("lstm_classifier")
    split = clf.load_split(None)
    assert {k: len(v[0]) for k, v in split.items()} == {"train": 8454, "val": 1056, "test": 1058}
    train, val, test = (set(split[k][0]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert clf.load_split(None)["test"][0] == split["test"][0]


def test_classifier_bad_data_file_names_the_line(capsys, tmp_path):
    clf = _load("lstm_classifier")
    assert clf.main(["--data", str(tmp_path / "missing.tsv")]) == 2
    assert "no data file at" in capsys.readouterr().err
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tsentiment\ttext\n1\t2.5\tFine.\n2\toops\tBroken.\n", encoding="utf-8")
    assert clf.main(["--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "bad.tsv" in err


def test_bag_of_words_is_logistic_regression_on_counts():
    clf = _load("lstm_classifier")
    model = clf.BagOfWords(5)
    model.weight.weight.data[:, 0] = np.array([9, 1, 2, 3, 4], dtype=np.float32)
    model.bias.data[:] = 0.5
    ids = np.array([[0, 0, 2, 2, 3], [1, 4, 4, 4, 4]])
    counts = np.array([[0, 0, 2, 1, 0], [0, 1, 0, 0, 4]], dtype=np.float32)  # id 0 is padding
    np.testing.assert_allclose(model(ids).numpy(), counts @ [9, 1, 2, 3, 4] + 0.5)


@pytest.mark.slow
def test_char_lstm_trains_and_samples(capsys, tmp_path):
    cl = _load("char_lstm")
    saved = tmp_path / "char.npz"
    args = ["--max-iters", "30", "--eval-interval", "30", "--eval-iters", "1", "--hidden-size",
            "32", "--embed-dim", "16", "--num-layers", "1", "--block-size", "16", "--lr", "0.01",
            "--num-chars", "20", "--save", str(saved)]
    assert cl.main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["train_loss"] < np.log(65) - 0.5, result
    assert cl.main(["--load", str(saved), "--start", "ROMEO:", "--num-chars", "10"]) == 0
    assert "ROMEO:" in capsys.readouterr().out
