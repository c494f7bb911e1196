"""BPE training: the fast trainer equals the plain reference, the tie rule, bad inputs."""
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_llm.tokenizer import BPETokenizer
from tinygrad_llm.tokenizer.train import merge_pair, train_fast, train_reference

DATA = Path(__file__).resolve().parent.parent / "tinygrad_llm" / "datasets"
SHAKESPEARE = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")


def both(text, vocab_size, pattern="gpt4", specials=None):
    fast = BPETokenizer(pattern).train(text, vocab_size, specials, method="fast")
    ref = BPETokenizer(pattern).train(text, vocab_size, specials, method="reference")
    return fast, ref


def test_merge_pair_does_not_overlap():
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge_pair([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert merge_pair([1, 2, 1, 2, 3], (1, 2), 9) == [9, 9, 3]


@pytest.mark.parametrize("pattern", [None, "gpt2", "gpt4"])
def test_tie_goes_to_first_occurrence(pattern):
    # (a,a) and (b,c) both occur twice; (a,a) comes first in the text, so it is merged first.
    fast, ref = both("aaa bcbc", 256 + 3, pattern)
    assert fast.merges[0] == (ord("a"), ord("a"))
    assert fast.merges[1] == (ord("b"), ord("c"))
    assert fast.merges == ref.merges


def test_tie_order_flips_with_text_order():
    fast, ref = both("bcbc aaa", 256 + 2)
    assert fast.merges == ref.merges == [(ord("b"), ord("c")), (ord("a"), ord("a"))]


def test_known_merges_of_a_small_text():
    # Worked by hand (docs/tokenizer.md): in "abab abab ab" with no split, (a,b) occurs 5 times;
    # then token 256 = "ab", and (256,256) and (256,32) occur twice each; (256,256) comes first.
    tok = BPETokenizer(pattern=None).train("abab abab ab", 256 + 2, method="reference")
    assert tok.merges == [(97, 98), (256, 256)]
    assert tok.vocab[257] == b"abab"
    assert tok.encode("abab ab") == [257, 32, 256]


@pytest.mark.parametrize("pattern, size, vocab", [
    ("gpt4", 20_000, 600), ("gpt2", 20_000, 600), (None, 3_000, 320),
    (r"\w+|\W", 20_000, 400)])
def test_fast_equals_reference_on_shakespeare(pattern, size, vocab):
    fast, ref = both(SHAKESPEARE[:size], vocab, pattern)
    assert len(fast.merges) == vocab - 256
    assert fast.merges == ref.merges


def test_fast_equals_reference_on_repetitive_text():
    # Many ties and runs of one byte: the hardest case for the tie-break bookkeeping.
    text = "aaaa abab aaab baaa " * 30 + "ab ba aa bb " * 20 + "a" * 50
    for pattern in (None, "gpt4"):
        fast, ref = both(text, 256 + 18, pattern)
        assert fast.merges == ref.merges


@settings(max_examples=30)
@given(st.text(alphabet="ab c\n'1é", max_size=80), st.sampled_from([None, "gpt2", "gpt4"]),
       st.integers(0, 30))
def test_fast_equals_reference_generated_small_alphabet(text, pattern, merges):
    chunks = [text.encode()] if pattern is None else \
        [c.encode() for c in BPETokenizer(pattern)._split(text)]
    assert train_fast(Counter(chunks), merges) == train_reference(chunks, merges)


@settings(max_examples=20)
@given(st.text(min_size=1, max_size=200))
def test_fast_equals_reference_generated_any_text(text):
    chunks = [c.encode("utf-8", "surrogatepass") for c in BPETokenizer("gpt4")._split(text)]
    assert train_fast(Counter(chunks), 40) == train_reference(chunks, 40)


def test_training_skips_special_tokens_in_text():
    text = "<|eot|>hello<|eot|>hello<|eot|>"
    tok = BPETokenizer().train(text, 256 + 2 + 1, special_tokens=["<|eot|>"])
    assert all(b"<" not in tok.vocab[256 + k] for k in range(len(tok.merges)))
    assert tok.special_tokens == {"<|eot|>": 256 + len(tok.merges)}


def test_verbose_progress_bar(capsys):
    pytest.importorskip("tqdm")
    BPETokenizer().train("hello hello world", 260, verbose=True)
    assert "BPE merges" in capsys.readouterr().err


# ---------------------------------------------------------------- bad input


def test_vocab_size_too_small():
    with pytest.raises(ValueError, match=r"vocab_size=255 is too small.*256"):
        BPETokenizer().train("some text", 255)
    with pytest.raises(ValueError, match=r"vocab_size=257 is too small.*\+ 2 \(special tokens\) "
                                         r"= 258"):
        BPETokenizer().train("some text", 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer().train("some text", 300.0)


def test_empty_text():
    with pytest.raises(ValueError, match="train: the training text is empty"):
        BPETokenizer().train("", 300)
    with pytest.raises(TypeError, match="train: text must be a str"):
        BPETokenizer().train(b"bytes", 300)


def test_bad_special_tokens_and_method():
    with pytest.raises(ValueError, match="special_tokens must be distinct"):
        BPETokenizer().train("text", 300, special_tokens=["<a>", "<a>"])
    with pytest.raises(ValueError, match="method must be"):
        BPETokenizer().train("text", 300, method="slow")


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_too_few_pairs_stops_early_with_a_warning(method):
    with pytest.warns(UserWarning, match=r"ran out of pairs after 3 of 44 merges; the vocabulary "
                                         r"has 259 tokens"):
        tok = BPETokenizer(pattern=None).train("abcd", 300, method=method)
    assert tok.vocab_size == 259 and tok.decode(tok.encode("abcd")) == "abcd"
