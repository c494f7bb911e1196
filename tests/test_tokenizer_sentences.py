"""Words and sentences for Word2Vec: the token rule, cutting a stream into sentences, and
reading one sentence per line from a file."""

import pytest

from tinygrad_llm.tokenizer import LineSentence, text_to_sentences, tokenize


def test_tokenize():
    assert tokenize("Don't STOP, o'er the hills-and far'") == ["don't", "stop", "o'er", "the",
                                                                 "hills", "and", "far"]
    assert tokenize("  '' 123 ") == []


def test_text_to_sentences():
    assert [len(s) for s in text_to_sentences("a " * 25, max_len=10)] == [10, 10, 5]
    assert text_to_sentences("") == []


def test_line_sentence(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the cat  sat\n\non the mat\n")
    corpus = LineSentence(path)
    assert list(corpus) == [["the", "cat", "sat"], [], ["on", "the", "mat"]]
    assert list(corpus) == list(corpus)                      # read afresh on every pass
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        LineSentence(tmp_path / "nope.txt")
