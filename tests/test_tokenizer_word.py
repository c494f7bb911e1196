"""WordTokenizer: Keras Tokenizer semantics, checked against hand-computed expectations."""
import pytest

from tinygrad_llm.tokenizer import TokenizerFileError, WordTokenizer

TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "Cat and dog?"]
# Words after lower-casing and filtering, with counts in order of first appearance:
#   the 3, cat 2, sat 1, on 1, mat 1, dog 2, ate 1, my 1, homework 1, and 1
# By descending count, ties by first appearance: the, cat, dog, sat, on, mat, ate, my, homework, and
ORDER = ["the", "cat", "dog", "sat", "on", "mat", "ate", "my", "homework", "and"]


def test_word_index_with_oov():
    tok = WordTokenizer().fit_on_texts(TEXTS)
    assert tok.word_index == {"<unk>": 1, **{w: i + 2 for i, w in enumerate(ORDER)}}
    assert tok.index_word[1] == "<unk>" and tok.index_word[2] == "the"
    assert tok.word_counts == {"the": 3, "cat": 2, "sat": 1, "on": 1, "mat": 1, "dog": 2,
                               "ate": 1, "my": 1, "homework": 1, "and": 1}
    assert list(tok.word_counts) == ["the", "cat", "sat", "on", "mat", "dog", "ate", "my",
                                     "homework", "and"]
    assert tok.word_docs["the"] == 2 and tok.word_docs["cat"] == 2 and tok.word_docs["my"] == 1
    assert tok.document_count == 3


def test_word_index_without_oov():
    tok = WordTokenizer(oov_token=None).fit_on_texts(TEXTS)
    assert tok.word_index == {w: i + 1 for i, w in enumerate(ORDER)}


def test_texts_to_sequences():
    tok = WordTokenizer().fit_on_texts(TEXTS)
    # the=2 cat=3 ate=8; "a" and "fish" are unknown -> <unk>=1
    assert tok.texts_to_sequences(["the cat ate a fish", ""]) == [[2, 3, 8, 1, 1], []]
    tok = WordTokenizer(oov_token=None).fit_on_texts(TEXTS)
    assert tok.texts_to_sequences(["the cat ate a fish"]) == [[1, 2, 7]]  # unknown dropped


def test_num_words_limits_at_conversion():
    # num_words=4 keeps ids 1..3: with oov that is <unk>, the, cat; dog (4) becomes <unk>.
    tok = WordTokenizer(num_words=4).fit_on_texts(TEXTS)
    assert len(tok.word_index) == 11  # the index itself is never cut
    assert tok.texts_to_sequences(["the cat ate a dog"]) == [[2, 3, 1, 1, 1]]
    assert tok.sequences_to_texts([[2, 3, 8]]) == ["the cat <unk>"]
    # Without oov: the, cat, dog kept (ids 1..3), the rest dropped.
    tok = WordTokenizer(num_words=4, oov_token=None).fit_on_texts(TEXTS)
    assert tok.texts_to_sequences(["the cat ate a dog"]) == [[1, 2, 3]]
    assert tok.sequences_to_texts([[1, 2, 7, 3]]) == ["the cat dog"]


def test_sequences_to_texts():
    tok = WordTokenizer().fit_on_texts(TEXTS)
    assert tok.sequences_to_texts([[2, 3, 99, 8], []]) == ["the cat <unk> ate", ""]
    tok = WordTokenizer(oov_token=None).fit_on_texts(TEXTS)
    assert tok.sequences_to_texts([[1, 2, 99, 7]]) == ["the cat ate"]


def test_filters_lower_and_split():
    tok = WordTokenizer(oov_token=None)
    assert tok.text_to_word_sequence("Don't  e-mail\tme\nNOW!") == ["don't", "e", "mail", "me",
                                                                     "now"]
    assert WordTokenizer(lower=False).text_to_word_sequence("The the") == ["The", "the"]
    assert WordTokenizer(filters="", split=",").text_to_word_sequence("a,b,,C") == ["a", "b", "c"]
    # A list of words is taken as already split (lower-cased only).
    tok.fit_on_texts([["The", "Cat"], "the"])
    assert tok.word_index == {"the": 1, "cat": 2}


def test_fit_accumulates():
    tok = WordTokenizer().fit_on_texts(["b a"])
    assert tok.word_index == {"<unk>": 1, "b": 2, "a": 3}  # tie: b was seen first
    tok.fit_on_texts(["a"])
    assert tok.word_index == {"<unk>": 1, "a": 2, "b": 3}
    assert tok.document_count == 2


def test_oov_token_that_is_also_a_word():
    # Keras quirk kept on purpose: the repeated word keeps its LATER id, id 1 is left unused.
    tok = WordTokenizer(oov_token="unk").fit_on_texts(["unk unk a"])
    assert tok.word_index == {"unk": 2, "a": 3}
    assert tok.texts_to_sequences(["b a"]) == [[2, 3]]


def test_json_round_trip(tmp_path):
    tok = WordTokenizer(num_words=5).fit_on_texts(TEXTS)
    back = WordTokenizer.from_json(tok.to_json())
    for name in ["num_words", "oov_token", "lower", "filters", "split", "word_counts",
                 "word_docs", "word_index", "index_word", "document_count"]:
        assert getattr(back, name) == getattr(tok, name), name
    assert list(back.word_counts) == list(tok.word_counts)
    assert back.texts_to_sequences(TEXTS) == tok.texts_to_sequences(TEXTS)
    tok.save(tmp_path / "w.json")
    assert WordTokenizer.load(tmp_path / "w.json").word_index == tok.word_index


def test_bad_input(tmp_path):
    with pytest.raises(TypeError, match="fit_on_texts: texts must be a list of texts"):
        WordTokenizer().fit_on_texts("a single string")
    with pytest.raises(TypeError, match="each text must be a str or a list of words"):
        WordTokenizer().fit_on_texts([3])
    with pytest.raises(ValueError, match="num_words must be None or an int >= 1"):
        WordTokenizer(num_words=0)
    with pytest.raises(TokenizerFileError, match="not valid JSON"):
        WordTokenizer.from_json('{"format": ')
    with pytest.raises(TokenizerFileError, match="unsupported format version 7"):
        WordTokenizer.from_json('{"format": "tinygrad_llm.WordTokenizer", "version": 7}')
    with pytest.raises(TokenizerFileError, match="missing or malformed field"):
        WordTokenizer.from_json('{"format": "tinygrad_llm.WordTokenizer", "version": 1}')
    (tmp_path / "cut.json").write_text(WordTokenizer().fit_on_texts(TEXTS).to_json()[:50])
    with pytest.raises(TokenizerFileError, match=r"cut\.json: not valid JSON"):
        WordTokenizer.load(tmp_path / "cut.json")
