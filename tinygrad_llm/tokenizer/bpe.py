r"""Byte-level BPE: the tokenizer of GPT-2 and GPT-4, trainable, and exact to tiktoken.

Encoding a text (docs/tokenizer.md walks through an example):

1. **Split.** A regex cuts the text into chunks: words with their leading space, runs of digits,
   runs of punctuation, runs of whitespace. Merges never cross a chunk boundary, so "dog." and
   "dog!" share the token " dog" instead of each growing its own.
2. **Bytes.** Each chunk becomes its UTF-8 bytes. Tokens 0..255 are the 256 byte values, so every
   string (emoji, CJK, anything) can be encoded, and nothing is ever "unknown".
3. **Merge by rank.** Each token has a rank (its id). Repeatedly join the adjacent pair of parts
   whose concatenation is a token of lowest rank (the leftmost one on a tie) until no adjacent
   concatenation is a token. As tiktoken does, a chunk that is itself a token becomes that token
   directly.

Special tokens such as "<|endoftext|>" are strings that map to one id each, outside the merge
table; ``encode`` decides whether text that spells them is treated as the special token or as
ordinary characters (see ``encode``).
"""
import re
from collections import Counter
from itertools import chain
from pathlib import Path

import regex

from . import gpt2 as _gpt2
from ._files import TokenizerFileError, read_json, write_text_atomic
from .train import train_fast, train_reference

__all__ = ["BPETokenizer", "GPT2_PATTERN", "GPT4_PATTERN", "PATTERNS"]

# GPT-2's split (tiktoken's r50k_base): contractions, then optional space + letters / digits /
# other symbols, then whitespace (a run of spaces gives its last space to the next word).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# GPT-4's split (tiktoken's cl100k_base): case-insensitive contractions, digits in groups of at
# most 3, and line breaks kept apart from other whitespace.
GPT4_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}|"""
                r""" ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""")
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}

# A speed-up, not a new rule: the same two patterns for pure-ASCII text, spelled for Python's
# built-in `re`, which splits about twice as fast as `regex`. On ASCII, \p{L} is [A-Za-z],
# \p{N} is [0-9], and regex's \s is [\t-\r ] (it does not count \x1c-\x1f as space, unlike
# re's \s, so we spell the class out). tests/test_tokenizer_bpe.py checks both give identical
# chunks. Possessive quantifiers (?+, ++) need Python >= 3.11; older versions skip this path.
_ASCII_PATTERNS = {
    GPT2_PATTERN: r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\t-\r A-Za-z0-9]+"""
                  r"""|[\t-\r ]+(?![^\t-\r ])|[\t-\r ]+""",
    GPT4_PATTERN: r"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?+[A-Za-z]+|[0-9]{1,3}"""
                  r"""| ?[^\t-\r A-Za-z0-9]++[\r\n]*|[\t-\r ]*[\r\n]|[\t-\r ]+(?![^\t-\r ])"""
                  r"""|[\t-\r ]+""",
}

_DATA = Path(__file__).resolve().parent.parent / "datasets" / "gpt2"
_SINGLE_BYTES = [bytes([b]) for b in range(256)]
_NO_RANK = float("inf")  # the "rank" of a pair whose concatenation is not a token
_CACHE_LIMIT = 500_000   # chunks remembered by encode_ordinary before the cache is emptied
_LONG_CHUNK = 256        # chunks longer than this (bytes) use the O(n log n) merge loop


def _fix_surrogates(text):
    # Lone surrogates (e.g. "\ud800") have no UTF-8 form. Like tiktoken, we pair up the ones that
    # form a valid UTF-16 pair and replace the rest by U+FFFD.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _special_regex(tokens):
    # Longest first, so that of two specials where one is a prefix of the other, the longer wins.
    return regex.compile("|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True)))


class BPETokenizer:
    r"""Byte-level BPE tokenizer.

    ``BPETokenizer(pattern="gpt4")`` starts with the 256 byte tokens and no merges; call
    ``train``, or build one from files with ``load``, ``from_tiktoken``, ``from_gpt2``, ``gpt2``.

    ``pattern``: "gpt2", "gpt4", a regex string (for the ``regex`` package), or None (no split:
    the whole text is one chunk, as in minbpe's BasicTokenizer).

    Attributes (read them, do not change them):

    * ``vocab``: {id: bytes}, special tokens included (as their UTF-8 bytes);
    * ``merges``: list of id pairs in rank order; ``merges[k]`` makes token ``256 + k``;
    * ``special_tokens``: {str: id};
    * ``vocab_size``: the largest id + 1 (the rows an embedding table needs);
    * ``pattern``: the split regex string, or None.
    """

    FORMAT = "tinygrad_llm.BPETokenizer"
    VERSION = 1

    def __init__(self, pattern="gpt4"):
        self.pattern = PATTERNS.get(pattern, pattern) if isinstance(pattern, str) else pattern
        if self.pattern is not None and not isinstance(self.pattern, str):
            raise TypeError(f"BPETokenizer: pattern must be 'gpt2', 'gpt4', a regex string or "
                            f"None, got {type(pattern).__name__}")
        try:
            self._split_regex = regex.compile(self.pattern) if self.pattern else None
        except regex.error as e:
            raise ValueError(f"BPETokenizer: pattern {pattern!r} is not a valid regex: {e}") \
                from None
        try:
            ascii_pattern = _ASCII_PATTERNS.get(self.pattern)
            self._ascii_regex = re.compile(ascii_pattern, re.ASCII) if ascii_pattern else None
        except re.error:  # Python < 3.11: no possessive quantifiers in `re`
            self._ascii_regex = None
        self._set_state(list(range(256)), [], {})

    # ------------------------------------------------------------------ state

    def _set_state(self, byte_order, merges, special_tokens):
        r"""Install a vocabulary, checking that it is consistent (raises ValueError if not).

        ``byte_order[i]`` is the byte of token i < 256 (identity for trained tokenizers);
        ``merges[k] = (a, b)`` makes token ``256 + k`` with bytes ``vocab[a] + vocab[b]``.
        """
        if sorted(byte_order) != list(range(256)):
            raise ValueError("byte_order must list each byte 0..255 once")
        vocab = {i: _SINGLE_BYTES[b] for i, b in enumerate(byte_order)}
        merges = [tuple(m) for m in merges]
        for k, m in enumerate(merges):
            if (len(m) != 2 or not all(type(t) is int and 0 <= t < 256 + k for t in m)):
                raise ValueError(f"merge {k} is {list(m)!r}, not a pair of ids below {256 + k}")
            vocab[256 + k] = vocab[m[0]] + vocab[m[1]]
        n_merged = 256 + len(merges)
        for s, i in special_tokens.items():
            if not isinstance(s, str) or not s or type(i) is not int:
                raise ValueError(f"special token {s!r}: {i!r} must be a non-empty str and an int")
            if i < n_merged or i in vocab:
                raise ValueError(f"special token {s!r} has id {i}, which is already taken "
                                 f"(ids 0..{n_merged - 1} are bytes and merges)")
            vocab[i] = s.encode("utf-8")

        self.vocab = vocab
        self.merges = merges
        self.special_tokens = dict(special_tokens)
        self.byte_order = list(byte_order)
        # Encoding looks tokens up by their bytes: {bytes: id} over the merge table. If two merges
        # ever spell the same bytes, the lower rank is kept (the later one can never be produced).
        self._ranks = {}
        for i in range(n_merged - 1, -1, -1):
            self._ranks[vocab[i]] = i
        self._special_ids = {i: s for s, i in self.special_tokens.items()}
        self._cache = {}  # chunk (str) -> list of ids

    @property
    def vocab_size(self):
        return max(self.vocab) + 1

    def __repr__(self):
        name = next((k for k, v in PATTERNS.items() if v == self.pattern), None)
        pattern = repr(name) if name else ("None" if self.pattern is None else "<custom>")
        return (f"BPETokenizer(pattern={pattern}, vocab_size={self.vocab_size}, "
                f"merges={len(self.merges)}, special_tokens={len(self.special_tokens)})")

    def _split(self, text):
        # The chunks of `text` (a list of str); no pattern means one chunk.
        if self._split_regex is None:
            return [text] if text else []
        if self._ascii_regex is not None and text.isascii():
            return self._ascii_regex.findall(text)
        return self._split_regex.findall(text)

    # ------------------------------------------------------------------ training

    def train(self, text, vocab_size, special_tokens=None, verbose=False, method="fast"):
        r"""Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        The merge rule (the same for both methods, see ``train.py``): take the most frequent
        adjacent pair of tokens inside a chunk; on a tie, the one that occurs first in the text.

        ``special_tokens``: a list of strings, given ids right after the merges. Text that spells
        them is cut out before training, so no merge grows into a special token.
        ``method``: "fast" (default) or "reference" (the plain O(merges * text) loop).
        If the text runs out of pairs first, training stops early with a warning; the smaller
        ``vocab_size`` is then what this tokenizer has. Returns self.
        """
        specials = list(special_tokens or [])
        if len(set(specials)) != len(specials) or not all(isinstance(s, str) and s
                                                          for s in specials):
            raise ValueError(f"train: special_tokens must be distinct non-empty strings, "
                             f"got {specials!r}")
        if not isinstance(text, str):
            raise TypeError(f"train: text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("train: the training text is empty")
        if type(vocab_size) is not int or vocab_size < 256 + len(specials):
            raise ValueError(f"train: vocab_size={vocab_size!r} is too small: it must be at least "
                             f"256 (the byte tokens) + {len(specials)} (special tokens) = "
                             f"{256 + len(specials)}")
        if method not in ("fast", "reference"):
            raise ValueError(f"train: method must be 'fast' or 'reference', got {method!r}")
        num_merges = vocab_size - 256 - len(specials)

        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _fix_surrogates(text)
        pieces = _special_regex(specials).split(text) if specials else [text]
        chunks = [c.encode("utf-8") for piece in pieces for c in self._split(piece)]

        bar = None
        if verbose:
            from tqdm import tqdm  # imported only when asked for: tqdm is not needed otherwise
            bar = tqdm(total=num_merges, desc=f"BPE merges ({method})", unit="merge")
        progress = bar.update if bar is not None else None
        try:
            if method == "fast":
                merges = train_fast(Counter(chunks), num_merges, progress)
            else:
                merges = train_reference(chunks, num_merges, progress)
        finally:
            if bar is not None:
                bar.close()
        if len(merges) < num_merges:
            import warnings
            final = 256 + len(merges) + len(specials)
            warnings.warn(f"train: the text ran out of pairs after {len(merges)} of {num_merges} "
                          f"merges; the vocabulary has {final} tokens, not {vocab_size}",
                          stacklevel=2)
        n = 256 + len(merges)
        self._set_state(list(range(256)), merges, {s: n + k for k, s in enumerate(specials)})
        return self

    # ------------------------------------------------------------------ encoding

    def _encode_chunk(self, piece):
        r"""BPE on one chunk's bytes ``piece``; returns its ids."""
        rank = self._ranks.get(piece)
        if rank is not None:  # tiktoken's shortcut: a chunk that is a token is that token
            return [rank]
        if len(piece) > _LONG_CHUNK:
            return self._bpe_long(piece)
        return self._bpe_short(piece)

    def _bpe_short(self, piece):
        r"""The merge loop for ordinary chunks (a few bytes to a few hundred).

        ``pair_ranks[i]`` is the rank of ``parts[i] + parts[i+1]`` (inf if that is no token).
        Each step joins the leftmost lowest-ranked pair and recomputes only the two pair ranks
        next to the join. Steps <= len(piece), each O(len(piece)) in C (min, index, del).
        """
        ranks = self._ranks
        get = ranks.get
        parts = list(map(_SINGLE_BYTES.__getitem__, piece))
        pair_ranks = [get(x + y, _NO_RANK) for x, y in zip(parts, parts[1:])]
        while pair_ranks:
            best = min(pair_ranks)
            if best == _NO_RANK:
                break
            i = pair_ranks.index(best)                 # leftmost of the lowest rank
            parts[i:i + 2] = [parts[i] + parts[i + 1]]  # join parts i and i+1
            del pair_ranks[i]
            if i > 0:
                pair_ranks[i - 1] = get(parts[i - 1] + parts[i], _NO_RANK)
            if i < len(pair_ranks):
                pair_ranks[i] = get(parts[i] + parts[i + 1], _NO_RANK)
        return [ranks[p] for p in parts]

    def _bpe_long(self, piece):
        r"""The same merges in O(n log n) for long chunks (a run of 100,000 spaces is one chunk).

        Parts are named by their start offset and chained by ``nxt`` / ``prv``. A heap holds
        candidate joins ``(rank, start, mid, end)``: the part [start, mid) with the part
        [mid, end). Popping the smallest gives the lowest rank, leftmost on a tie: the same choice
        as ``_bpe_short``. Parts only grow, so an entry is still current exactly when ``start``
        still begins a part that ends at ``mid`` and the next part still ends at ``end``.
        """
        import heapq
        get = self._ranks.get
        n = len(piece)
        nxt = list(range(1, n + 1))   # nxt[i]: where the part starting at i ends
        prv = list(range(-1, n - 1))  # prv[i]: where the part before it starts
        alive = [True] * n
        heap = []
        for i in range(n - 1):
            r = get(piece[i:i + 2])
            if r is not None:
                heap.append((r, i, i + 1, i + 2))
        heapq.heapify(heap)
        while heap:
            _, start, mid, end = heapq.heappop(heap)
            if not alive[start] or nxt[start] != mid or nxt[mid] != end:
                continue  # stale: one side has grown since this entry was pushed
            alive[mid] = False  # join [start, mid) and [mid, end)
            nxt[start] = end
            if end < n:
                prv[end] = start
                r = get(piece[start:nxt[end]])
                if r is not None:
                    heapq.heappush(heap, (r, start, end, nxt[end]))
            before = prv[start]
            if before >= 0:
                r = get(piece[before:end])
                if r is not None:
                    heapq.heappush(heap, (r, before, start, end))
        ids, i = [], 0
        while i < n:
            ids.append(self._ranks[piece[i:nxt[i]]])
            i = nxt[i]
        return ids

    def encode_ordinary(self, text):
        r"""Encode ``text`` with no special tokens: text spelling "<|endoftext|>" is plain text.

        The speed comes from the chunk cache: natural text repeats its chunks (" the", ",\n"),
        so after a first pass almost every chunk is a dictionary hit, and the whole encode is the
        regex split plus one C-level pass that looks up and concatenates the cached ids.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, got {type(text).__name__}")
        try:
            return self._encode_chunks(self._split(text))
        except UnicodeEncodeError:
            return self._encode_chunks(self._split(_fix_surrogates(text)))

    def _encode_chunks(self, chunks):
        cache = self._cache
        try:
            return list(chain.from_iterable(map(cache.__getitem__, chunks)))
        except KeyError:
            pass
        # Some chunks are new: BPE each new distinct chunk once, then look all of them up.
        new = set(chunks).difference(cache)
        if len(cache) + len(new) > _CACHE_LIMIT:
            cache.clear()  # bound the memory; the chunks of this call are still all added
            new = set(chunks)
        for chunk in new:
            cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def encode(self, text, allowed_special="none_raise", disallowed_special="all"):
        r"""Encode ``text`` to a list of ids, with tiktoken's rules for special tokens.

        ``allowed_special``: which specials spelled in the text become their special id:

        * "none_raise" (default): none, and text that spells a special raises ValueError (as
          tiktoken's default ``allowed_special=set()``, ``disallowed_special="all"``);
        * "none": none, and such text is encoded as ordinary text;
        * "all": every special;
        * a set of special strings: those; the text spelling any other raises ValueError.

        ``disallowed_special``: "all" (every special not allowed) or a collection of strings whose
        presence raises ValueError; as in tiktoken. Ignored when ``allowed_special="none"``.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, got {type(text).__name__}")
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif allowed_special in ("none", "none_raise"):
            allowed = set()
        elif isinstance(allowed_special, (set, frozenset, list, tuple)):
            allowed = set(allowed_special)
            unknown = allowed.difference(self.special_tokens)
            if unknown:
                raise ValueError(f"encode: allowed_special names {sorted(unknown)!r}, which are "
                                 f"not special tokens of this tokenizer "
                                 f"({sorted(self.special_tokens)!r})")
        else:
            raise ValueError(f"encode: allowed_special must be 'none_raise', 'none', 'all' or a "
                             f"set of special tokens, got {allowed_special!r}")

        if allowed_special == "none":
            disallowed = set()
        elif disallowed_special == "all":
            disallowed = set(self.special_tokens) - allowed
        else:
            disallowed = set(disallowed_special)
        if disallowed:
            found = _special_regex(disallowed).search(text)
            if found:
                raise ValueError(
                    f"encode: the text contains the special token {found.group()!r} at character "
                    f"{found.start()}, which is not allowed. Pass allowed_special={{"
                    f"{found.group()!r}}} (or 'all') to encode it as the special token, or "
                    f"allowed_special='none' to encode it as ordinary text.")
        if not allowed:
            return self.encode_ordinary(text)
        # regex.split with a capturing group keeps the separators: text, special, text, ...
        pieces = regex.split(f"({_special_regex(allowed).pattern})", text)
        ids = []
        for k, piece in enumerate(pieces):
            if k % 2:
                ids.append(self.special_tokens[piece])
            elif piece:
                ids.extend(self.encode_ordinary(piece))
        return ids

    # ------------------------------------------------------------------ decoding

    def decode_bytes(self, ids):
        r"""The bytes spelled by ``ids`` (a sequence of ints; numpy arrays are fine)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        try:
            return b"".join(map(self.vocab.__getitem__, ids))
        except (KeyError, TypeError):
            pass
        for pos, i in enumerate(ids):  # find the first bad id, for the message
            if not (isinstance(i, int) and i in self.vocab):
                raise ValueError(f"decode: ids[{pos}] = {i!r} is not a token id of this "
                                 f"tokenizer (ids are ints in 0..{self.vocab_size - 1})")
        raise TypeError(f"decode: ids must be a sequence of ints, got {type(ids).__name__}")

    def decode(self, ids, errors="replace"):
        r"""The text of ``ids``. A sequence that cuts a multi-byte character in two (an id list
        can) is not valid UTF-8: ``errors="replace"`` shows U+FFFD there, "strict" raises."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    # ------------------------------------------------------------------ files

    def save(self, path):
        r"""Write the tokenizer as readable JSON (atomically: a temp file, then ``os.replace``).

        Fields: ``format``, ``version``, ``pattern``, ``byte_order`` (byte of each id < 256),
        ``merges`` (id pairs in rank order) and ``special_tokens``.
        """
        import json
        data = {
            "format": self.FORMAT,
            "version": self.VERSION,
            "pattern": self.pattern,
            "byte_order": self.byte_order,
            "special_tokens": self.special_tokens,
            "merges": [list(m) for m in self.merges],
        }
        # One merge per line keeps the file readable and diffable.
        body = ",\n    ".join(f"[{a}, {b}]" for a, b in self.merges)
        head = json.dumps({k: v for k, v in data.items() if k != "merges"}, ensure_ascii=False)
        write_text_atomic(path, head[:-1] + ',\n  "merges": [\n    ' + body + "\n  ]\n}\n")

    @classmethod
    def load(cls, path):
        r"""Read a file written by ``save``. Raises TokenizerFileError naming the file and the
        problem if it is missing, not JSON, truncated, of another format or version, or
        inconsistent."""
        data = read_json(path, expect_format=cls.FORMAT, expect_version=cls.VERSION)
        missing = {"pattern", "byte_order", "merges", "special_tokens"} - set(data)
        if missing:
            raise TokenizerFileError(path, f"missing fields {sorted(missing)}")
        if data["pattern"] is not None and not isinstance(data["pattern"], str):
            raise TokenizerFileError(path, "'pattern' must be a string or null")
        if not isinstance(data["merges"], list) or not isinstance(data["special_tokens"], dict) \
                or not isinstance(data["byte_order"], list):
            raise TokenizerFileError(path, "'merges' and 'byte_order' must be lists and "
                                     "'special_tokens' an object")
        try:
            tok = cls(data["pattern"])
            tok._set_state(data["byte_order"], data["merges"], data["special_tokens"])
        except (ValueError, TypeError) as e:
            raise TokenizerFileError(path, str(e)) from None
        return tok

    @classmethod
    def from_tiktoken(cls, path, pattern, special_tokens=None):
        r"""Read a tiktoken rank file (one ``base64(token) rank`` per line).

        ``pattern``: the split regex that goes with it ("gpt2" for r50k_base / gpt2.tiktoken);
        ``special_tokens``: {str: id}, e.g. {"<|endoftext|>": 50256}. The merges are recovered
        from the ranks: token r is the BPE of its bytes using only ranks below r.
        """
        ranks = _gpt2.read_tiktoken_file(path)
        byte_order, merges = _gpt2.ranks_to_merges(ranks, path)
        tok = cls(pattern)
        try:
            tok._set_state(byte_order, merges, dict(special_tokens or {}))
        except ValueError as e:
            raise ValueError(f"from_tiktoken: {e}") from None
        return tok

    def to_tiktoken(self, path):
        r"""Write the merge table as a tiktoken rank file (special tokens are not part of it)."""
        import base64
        n = 256 + len(self.merges)
        if len(self._ranks) != n:
            raise ValueError("to_tiktoken: two tokens spell the same bytes, which a rank file "
                             "cannot express")
        lines = (f"{base64.b64encode(self.vocab[i]).decode('ascii')} {i}\n" for i in range(n))
        write_text_atomic(path, "".join(lines))

    @classmethod
    def from_gpt2(cls, encoder_json, vocab_bpe):
        r"""Read GPT-2's original ``encoder.json`` and ``vocab.bpe`` (with GPT-2's split)."""
        byte_order, merges, specials = _gpt2.read_gpt2_files(encoder_json, vocab_bpe)
        tok = cls("gpt2")
        try:
            tok._set_state(byte_order, merges, specials)
        except ValueError as e:
            raise TokenizerFileError(encoder_json, str(e)) from None
        return tok

    @classmethod
    def gpt2(cls):
        r"""GPT-2's tokenizer, from the files shipped in the package (no network):
        50,000 merges, ``<|endoftext|>`` = 50256, vocab_size 50257."""
        return cls.from_gpt2(_DATA / "encoder.json", _DATA / "vocab.bpe")
