"""KeyedVectors: lookups, nearest words and analogies by cosine, word2vec's text and binary
formats (read back by us and, when installed, by gensim), .npz files, and bad keys."""

import numpy as np
import pytest

from tinygrad_llm.models import KeyedVectors

try:
    import gensim  # noqa: F401
    HAVE_GENSIM = True
except ImportError:
    HAVE_GENSIM = False


@pytest.fixture(scope="module")
def kv():
    """24 random vectors of size 8 with made-up counts, most frequent first."""
    rng = np.random.default_rng(1)
    words = [f"c{c}w{i}" for c in range(3) for i in range(8)]
    return KeyedVectors(rng.standard_normal((24, 8)), words, np.arange(24, 0, -1) * 10)


def test_lookups(kv):
    assert kv.vectors.shape == (24, 8) and kv.vectors.dtype == np.float32 and len(kv) == 24
    assert kv.vector_size == 8 and "c0w1" in kv and "zebra" not in kv
    assert all(kv.key_to_index[k] == i for i, k in enumerate(kv.index_to_key))
    np.testing.assert_array_equal(kv["c0w1"], kv.vectors[kv.get_index("c0w1")])
    assert kv[["c0w1", "c2w0"]].shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(kv.get_normed_vectors(), axis=1), 1, rtol=1e-6)
    assert kv.similarity("c0w1", "c0w1") == pytest.approx(1.0, abs=1e-6)


def test_most_similar_is_cosine_without_the_query_words(kv):
    near = kv.most_similar(positive=["c0w1", "c0w2"], negative=["c1w0"], topn=4)
    assert len(near) == 4 and not {"c0w1", "c0w2", "c1w0"} & {w for w, _ in near}
    assert [s for _, s in near] == sorted((s for _, s in near), reverse=True)
    unit = kv.get_normed_vectors()
    query = unit[kv.get_index("c0w1")] + unit[kv.get_index("c0w2")] - unit[kv.get_index("c1w0")]
    sims = unit @ (query / np.linalg.norm(query))
    best = [kv.index_to_key[i] for i in np.argsort(-sims)
            if kv.index_to_key[i] not in ("c0w1", "c0w2", "c1w0")][:4]
    assert [w for w, _ in near] == best
    assert kv.most_similar("c0w1", topn=3) == kv.most_similar(positive=["c0w1"], topn=3)
    assert kv.similar_by_vector(kv["c0w3"], topn=1)[0][0] == "c0w3"
    assert len(kv.most_similar("c0w1", topn=None)) == len(kv)
    assert len(kv.most_similar("c0w1", topn=30, restrict_vocab=5)) == 4


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trip(kv, tmp_path, binary):
    path = tmp_path / "vectors.txt"
    kv.save_word2vec_format(path, binary=binary)
    loaded = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert loaded.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(loaded.vectors, kv.vectors)
    if not binary:
        assert path.read_text().splitlines()[0] == "24 8"


def test_npz_round_trip(kv, tmp_path):
    kv.save(tmp_path / "kv")                                # .npz is appended, as np.savez does
    loaded = KeyedVectors.load(tmp_path / "kv.npz")
    np.testing.assert_array_equal(loaded.vectors, kv.vectors)
    np.testing.assert_array_equal(loaded.counts, kv.counts)
    assert loaded.index_to_key == kv.index_to_key and "24 words" in repr(loaded)


@pytest.mark.skipif(not HAVE_GENSIM, reason="gensim is not installed")
@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_our_word2vec_format(kv, tmp_path, binary):
    from gensim.models import KeyedVectors as GensimKeyedVectors
    path = tmp_path / "vectors.bin"
    kv.save_word2vec_format(path, binary=binary)
    theirs = GensimKeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert theirs.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(theirs.vectors, kv.vectors)
    assert [w for w, _ in theirs.most_similar("c0w1", topn=3)] == [
        w for w, _ in kv.most_similar("c0w1", topn=3)]


def test_unknown_word_raises_key_error_naming_it(kv):
    with pytest.raises(KeyError, match="zebra"):
        kv["zebra"]
    with pytest.raises(KeyError, match="zebra"):
        kv.most_similar("zebra")
    with pytest.raises(KeyError, match="zebra"):
        kv.similarity("c0w1", "zebra")


def test_bad_construction_and_queries(kv):
    with pytest.raises(ValueError, match="no input"):
        kv.most_similar(positive=[])
    with pytest.raises(ValueError, match="do not match"):
        KeyedVectors(np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="not unique"):
        KeyedVectors(np.zeros((2, 2)), ["a", "a"])
