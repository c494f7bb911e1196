"""tinygrad_llm/data.py: pad_sequences (Keras's semantics, on the examples of Keras's own
documentation and on the corner cases of its implementation), load_movie_reviews (the shipped
file, and the errors that name the bad line) and movie_review_splits (the fixed 80/10/10 cut)."""

import numpy as np
import pytest

from tinygrad_llm.data import load_movie_reviews, movie_review_splits, pad_sequences

SEQUENCE = [[1], [2, 3], [4, 5, 6]]


@pytest.mark.parametrize("kwargs,expected", [
    # the four examples in keras.utils.pad_sequences's docstring
    ({}, [[0, 0, 1], [0, 2, 3], [4, 5, 6]]),
    ({"value": -1}, [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]),
    ({"padding": "post"}, [[1, 0, 0], [2, 3, 0], [4, 5, 6]]),
    ({"maxlen": 2}, [[0, 1], [2, 3], [5, 6]]),
    # truncating and padding each way
    ({"maxlen": 2, "truncating": "post"}, [[0, 1], [2, 3], [4, 5]]),
    ({"maxlen": 2, "padding": "post", "truncating": "post"}, [[1, 0], [2, 3], [4, 5]]),
    ({"maxlen": 4}, [[0, 0, 0, 1], [0, 0, 2, 3], [0, 4, 5, 6]]),
    ({"maxlen": 4, "padding": "post"}, [[1, 0, 0, 0], [2, 3, 0, 0], [4, 5, 6, 0]]),
    ({"maxlen": 0}, [[], [], []]),
])
def test_keras_examples(kwargs, expected):
    out = pad_sequences(SEQUENCE, **kwargs)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.array(expected, dtype=np.int64).reshape(3, -1))


def test_docstring_examples():
    """The two examples in pad_sequences's own docstring."""
    np.testing.assert_array_equal(pad_sequences([[1, 2, 3], [4, 5], [6]], maxlen=2),
                                  [[2, 3], [4, 5], [0, 6]])
    np.testing.assert_array_equal(
        pad_sequences([[1, 2, 3], [6]], maxlen=2, padding="post", truncating="post"),
        [[1, 2], [6, 0]])


def test_empty_sequences_dtype_and_items():
    np.testing.assert_array_equal(pad_sequences([[], [7]]), [[0], [7]])
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([[1, 2]], dtype="float32").dtype == np.float32
    vectors = [np.ones((2, 3)), np.ones((1, 3))]
    out = pad_sequences(vectors, dtype="float64")
    assert out.shape == (2, 2, 3) and not out[1, 0].any() and out[1, 1].all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post', got 'middle'"):
        pad_sequences(SEQUENCE, padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        pad_sequences(SEQUENCE, truncating="both")
    with pytest.raises(ValueError, match="maxlen"):
        pad_sequences(SEQUENCE, maxlen=-1)
    with pytest.raises(TypeError, match=r"seqs\[1\] must be a sequence"):
        pad_sequences([[1], 5])
    with pytest.raises(ValueError, match=r"seqs\[1\] has items of shape \(2,\)"):
        pad_sequences([np.ones((1, 3)), np.ones((2, 2))])


def test_movie_reviews_shipped_file():
    rows = load_movie_reviews()
    assert len(rows) == 10605
    assert sum(1 for _, s, _ in rows if s == 0) == 37
    assert all(-4 <= s <= 4 for _, s, _ in rows)
    assert rows[0][0] == 1 and rows[0][2].startswith("The Rock is destined")


def test_movie_reviews_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no data file at"):
        load_movie_reviews(tmp_path / "nope.tsv")


@pytest.mark.parametrize("bad_line,reason", [
    ("3\tnot-a-number\tA sentence.", "could not convert"),
    ("3\t1.5", "expected 3 tab-separated fields, got 2"),
    ("3\t9.0\tToo positive.", r"sentiment 9.0 is outside \[-4, 4\]"),
])
def test_movie_reviews_malformed_line_is_named(tmp_path, bad_line, reason):
    path = tmp_path / "reviews.tsv"
    path.write_text(f"id\tsentiment\ttext\n1\t2.0\tGood.\n2\t-1.0\tBad.\n{bad_line}\n",
                    encoding="utf-8")
    with pytest.raises(ValueError, match=rf"line 4: {reason}"):
        load_movie_reviews(path)


def test_movie_reviews_bad_header(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text("sentiment\ttext\n2.0\tGood.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: expected the header"):
        load_movie_reviews(path)


def test_movie_review_splits_drop_neutral_and_cut_80_10_10():
    rows = [(i, s, f"sentence {i}") for i, s in enumerate([2.0, -1.0, 0.0, 3.5, -4.0] * 4)]
    split = movie_review_splits(rows, seed=3)
    assert {k: len(v[0]) for k, v in split.items()} == {"train": 12, "val": 1, "test": 3}
    texts = [t for k in ("train", "val", "test") for t in split[k][0]]
    assert sorted(texts) == sorted(t for _, s, t in rows if s != 0)        # each once, no 0s
    score = {t: s for _, s, t in rows}
    for part_texts, labels in split.values():
        assert labels.dtype == np.int64 and labels.shape == (len(part_texts),)
        assert labels.tolist() == [int(score[t] > 0) for t in part_texts]
    assert movie_review_splits(rows, seed=3)["test"][0] == split["test"][0]   # seeded
    small = movie_review_splits(rows, seed=3, limit=10, label_dtype=np.float32)
    assert sum(len(v[0]) for v in small.values()) == 10
    assert small["train"][1].dtype == np.float32
