"""BPETokenizer encoding and decoding: exact to tiktoken, round trips, special tokens, bad ids."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_llm.tokenizer import GPT2_PATTERN, BPETokenizer

DATA = Path(__file__).resolve().parent.parent / "tinygrad_llm" / "datasets"
SHAKESPEARE = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")
EOT = "<|endoftext|>"

# Text that exercises the split pattern and the byte fallback: emoji (4-byte UTF-8, ZWJ
# sequences), CJK, combining marks, digits, runs of whitespace, contractions in both cases.
PIECES = ["🙂", "👩‍👩‍👧", "🇫🇷", "你好世界", "日本語", "e\u0301", "\u0301\u0302", "ñ", "Ω",
          "0", "123", "4567890", " ", "  ", "\t", "\n", "\n\n", "\r\n", "   \n  ", "\u00a0",
          "'s", "'T", "'re", "'VE", "'m", "'ll", "'d", "don't", "I'M", "hello", " world", "Hi",
          ".", "!!", "...", "<|", "|>", "$", "_", "-", EOT]
gpt2_like_text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)),
                          max_size=40).map("".join)


@pytest.fixture(scope="module")
def gpt2():
    return BPETokenizer.gpt2()


@pytest.fixture(scope="module")
def r50k():
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(str(DATA / "gpt2" / "gpt2.tiktoken"))
    return tiktoken.Encoding(name="r50k_test", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={EOT: 50256})


def test_gpt2_basics(gpt2):
    assert gpt2.vocab_size == 50257 and len(gpt2.merges) == 50000
    assert gpt2.special_tokens == {EOT: 50256}
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.decode([15496, 995]) == "Hello world"


def test_gpt2_equals_tiktoken_on_all_of_shakespeare(gpt2, r50k):
    ids = gpt2.encode(SHAKESPEARE)
    assert ids == r50k.encode(SHAKESPEARE)
    assert gpt2.decode(ids) == SHAKESPEARE


@given(gpt2_like_text)
def test_gpt2_equals_tiktoken_on_generated_text(gpt2, r50k, text):
    assert gpt2.encode_ordinary(text) == r50k.encode_ordinary(text)
    assert gpt2.encode(text, allowed_special="all") == r50k.encode(text, allowed_special="all")


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\ud83d\ude00", "x \ud83d  y\ud800\ud800"])
def test_lone_surrogates_as_tiktoken(gpt2, r50k, text):
    # tiktoken pairs valid surrogate pairs up and replaces the rest with U+FFFD.
    assert gpt2.encode(text) == r50k.encode(text)
    assert gpt2.decode(gpt2.encode(text)) == r50k.decode(r50k.encode(text))


@given(st.text())
def test_round_trip_any_text(gpt2, text):
    ids = gpt2.encode_ordinary(text)
    assert gpt2.decode(ids) == text
    assert gpt2.decode_bytes(ids) == text.encode("utf-8")


@given(st.text())
def test_round_trip_untrained_and_no_pattern(text):
    for tok in (BPETokenizer(), BPETokenizer(pattern=None)):
        ids = tok.encode(text)
        assert ids == list(text.encode("utf-8"))  # no merges: one token per byte
        assert tok.decode(ids) == text


def test_decode_bytes_of_a_split_character(gpt2):
    # One id can be half of a multi-byte character; decode_bytes is exact, decode replaces.
    ids = gpt2.encode("🙂")  # 4 UTF-8 bytes, split over several tokens
    assert len(ids) > 1
    assert gpt2.decode_bytes(ids[:1]) == "🙂".encode()[:len(gpt2.vocab[ids[0]])]
    assert "\ufffd" in gpt2.decode(ids[:1])
    with pytest.raises(UnicodeDecodeError):
        gpt2.decode(ids[:1], errors="strict")


def test_decode_accepts_numpy(gpt2):
    ids = gpt2.encode("numpy ids")
    assert gpt2.decode(np.array(ids, dtype=np.int64)) == "numpy ids"


@pytest.mark.parametrize("bad", [[15496, 50257], [-1], [1, 2, 10**9], ["a"], [1.5]])
def test_decode_out_of_range_ids_raise(gpt2, bad):
    with pytest.raises(ValueError, match=r"decode: ids\[\d+\] = .* is not a token id"):
        gpt2.decode(bad)


# ---------------------------------------------------------------- special tokens


def test_special_token_raises_by_default_like_tiktoken(gpt2, r50k):
    text = f"hello {EOT} world"
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>'"):
        gpt2.encode(text)
    with pytest.raises(ValueError):
        r50k.encode(text)


def test_special_token_modes_match_tiktoken(gpt2, r50k):
    text = f"a{EOT}b {EOT}{EOT} c<|endoftext"
    assert gpt2.encode(text, allowed_special="all") == r50k.encode(text, allowed_special="all")
    assert gpt2.encode(text, allowed_special={EOT}) == r50k.encode(text, allowed_special={EOT})
    assert gpt2.encode(text, allowed_special="none") == r50k.encode(text, disallowed_special=())
    assert gpt2.encode(text, disallowed_special=()) == r50k.encode(text, disallowed_special=())
    assert gpt2.encode_ordinary(text) == r50k.encode_ordinary(text)
    assert gpt2.encode(text, allowed_special="all").count(50256) == 3
    assert gpt2.decode(gpt2.encode(text, allowed_special="all")) == text


def test_special_tokens_of_a_trained_tokenizer():
    tok = BPETokenizer().train("abab cdcd abab " * 20, 256 + 5 + 2,
                               special_tokens=["<|bos|>", "<|eos|>"])
    bos, eos = tok.special_tokens["<|bos|>"], tok.special_tokens["<|eos|>"]
    assert (bos, eos) == (256 + len(tok.merges), 257 + len(tok.merges))
    ids = tok.encode("<|bos|>abab<|eos|>", allowed_special={"<|bos|>", "<|eos|>"})
    assert ids[0] == bos and ids[-1] == eos
    with pytest.raises(ValueError, match="<\\|eos\\|>"):
        tok.encode("<|bos|>ab<|eos|>", allowed_special={"<|bos|>"})  # eos is still disallowed
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="allowed_special must be"):
        tok.encode("x", allowed_special="some")


def test_encode_rejects_non_str(gpt2):
    with pytest.raises(TypeError, match="encode: text must be a str"):
        gpt2.encode(b"bytes")


# ---------------------------------------------------------------- trained vocabularies


@pytest.fixture(scope="module")
def trained():
    return BPETokenizer("gpt4").train(SHAKESPEARE[:60_000], 700)


def _tiktoken_of(tok):
    tiktoken = pytest.importorskip("tiktoken")
    ranks = {tok.vocab[i]: i for i in range(256 + len(tok.merges))}
    return tiktoken.Encoding(name="trained_test", pat_str=tok.pattern, mergeable_ranks=ranks,
                             special_tokens={})


def test_trained_vocabulary_encodes_like_tiktoken(trained):
    enc = _tiktoken_of(trained)
    held_out = SHAKESPEARE[60_000:260_000]
    assert trained.encode(held_out) == enc.encode(held_out)


@settings(max_examples=25)
@given(gpt2_like_text)
def test_trained_vocabulary_encodes_like_tiktoken_generated(trained, text):
    assert trained.encode_ordinary(text) == _tiktoken_of(trained).encode_ordinary(text)


def test_long_chunks(gpt2, r50k):
    # Long runs are one chunk each; the merge loop must stay exact (and finish).
    for text in [" " * 3000 + "x", "a" * 3000, "😀" * 500, "1" * 2000]:
        assert gpt2.encode(text) == r50k.encode(text)


def test_repr_and_patterns():
    assert "gpt2" in repr(BPETokenizer("gpt2")) and BPETokenizer("gpt2").pattern == GPT2_PATTERN
    assert BPETokenizer(r"\w+|\s+").pattern == r"\w+|\s+"
    with pytest.raises(ValueError, match="not a valid regex"):
        BPETokenizer("(unclosed")
    with pytest.raises(TypeError, match="pattern must be"):
        BPETokenizer(3)


ascii_text = st.lists(st.one_of(
    st.sampled_from(["'s", "'S", "'ll", "'LL", "'Re", " ", "  ", "\t", "\n", "\r\n", " \n ",
                     "\x0b", "\x0c", "\x1c", "\x1f", "\x00", "abc", "Word", "123", "12345", "!",
                     " ?!", "--", "'"]),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=6)), max_size=40).map("".join)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@given(text=ascii_text)
def test_ascii_fast_split_equals_regex_split(pattern, text):
    # The `re` spelling of the patterns used for pure-ASCII text must split exactly as `regex`.
    tok = BPETokenizer(pattern)
    if tok._ascii_regex is None:
        pytest.skip("Python < 3.11: the ASCII fast path is off")
    assert tok._ascii_regex.findall(text) == tok._split_regex.findall(text)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_ascii_fast_split_on_shakespeare(pattern):
    tok = BPETokenizer(pattern)
    assert tok._split(SHAKESPEARE) == tok._split_regex.findall(SHAKESPEARE)


@given(st.binary(max_size=60) | gpt2_like_text.map(str.encode))
def test_long_chunk_merge_loop_equals_short_one(gpt2, piece):
    # _bpe_long (heap, for chunks over 256 bytes) must choose exactly as _bpe_short does.
    assert gpt2._bpe_long(piece) == gpt2._bpe_short(piece)


def test_very_long_chunk_is_fast_and_exact(gpt2, r50k):
    text = "x" + " " * 20_000 + "y" + "ab" * 10_000
    assert gpt2.encode(text) == r50k.encode(text)
