"""CharTokenizer: alphabet from a text, encode/decode round trips, clear errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_llm.tokenizer import CharTokenizer


def test_alphabet_is_sorted_set():
    tok = CharTokenizer("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.vocab_size == 8
    assert tok.encode("hello") == [3, 2, 4, 4, 5]
    assert tok.decode([3, 2, 4, 4, 5]) == "hello"
    assert tok.decode(np.array([7, 5], dtype=np.int32)) == "wo"


@given(st.text(min_size=1))
def test_round_trip(text):
    tok = CharTokenizer(text)
    assert tok.decode(tok.encode(text)) == text
    assert max(tok.encode(text)) < tok.vocab_size


def test_errors():
    tok = CharTokenizer("abc")
    with pytest.raises(ValueError, match="characters 'xz' are not in this tokenizer's alphabet"):
        tok.encode("axbz")
    with pytest.raises(ValueError, match=r"decode: ids\[1\] = 3 is not a token id"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="the text is empty"):
        CharTokenizer("")
    with pytest.raises(TypeError, match="text must be a str"):
        CharTokenizer(["a"])
