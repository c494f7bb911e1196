r"""Readers for real vocabularies: GPT-2's original files and tiktoken's rank files.

GPT-2's release stores its byte-level BPE as two text files:

* ``encoder.json``: {token as a printable string: id}, 50,257 entries;
* ``vocab.bpe``: a ``#version`` line, then one merge per line, "left right", in rank order.

The tokens are byte strings, but JSON and the merges file want printable text, so GPT-2 writes
each byte as one printable Unicode character (``bytes_to_unicode``): printable Latin-1 bytes stand
for themselves and the other 68 bytes (controls, space, ...) are moved to code points 256 and up.
A space, byte 32, is written "Ġ" (U+0120).

tiktoken's rank file is simpler: one line per token, ``base64(token bytes) rank``. It stores no
merges, so we recover them (``ranks_to_merges``).

All of these return plain data; ``BPETokenizer`` builds itself from it.
"""
import base64
import binascii
import json

from ._files import TokenizerFileError, read_text

__all__ = ["bytes_to_unicode", "read_gpt2_files", "read_tiktoken_file", "ranks_to_merges",
           "bpe_parts"]


def bytes_to_unicode():
    r"""GPT-2's map from each byte 0..255 to the printable character that stands for it."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table = {}
    moved = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + moved)  # the unprintable ones, in byte order, from U+0100 up
            moved += 1
    return table


def bpe_parts(token, ranks, max_rank=None):
    r"""Split ``token`` (bytes) by BPE with ``ranks`` (bytes -> rank), ranks below ``max_rank``.

    Start from single bytes; repeatedly join the adjacent pair whose concatenation has the lowest
    rank (the leftmost on a tie), until no adjacent concatenation has a rank. Returns the parts.
    """
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best_i, best_rank = -1, None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (max_rank is None or r < max_rank):
                if best_rank is None or r < best_rank:
                    best_i, best_rank = i, r
        if best_rank is None:
            break
        parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return parts


def ranks_to_merges(ranks, path="<ranks>"):
    r"""Recover (byte_order, merges) from ``ranks`` ({token bytes: rank}, ranks 0..n-1).

    Ranks 0..255 must be the 256 single bytes, in any order: ``byte_order[i]`` is the byte with
    rank i. Every later token must be built from exactly two lower-ranked tokens; we find them by
    running BPE on its bytes with only the lower ranks (``bpe_parts``), which must stop at two
    parts. Merge k is then the pair of their ranks, and it makes the token of rank 256 + k.
    """
    n = len(ranks)
    if sorted(ranks.values()) != list(range(n)):
        raise TokenizerFileError(path, "ranks are not the numbers 0..n-1 each used once")
    by_rank = sorted(ranks, key=ranks.get)
    if n < 256 or any(len(t) != 1 for t in by_rank[:256]):
        raise TokenizerFileError(path, "ranks 0..255 must be the 256 single bytes")
    byte_order = [t[0] for t in by_rank[:256]]
    merges = []
    for r in range(256, n):
        token = by_rank[r]
        parts = bpe_parts(token, ranks, max_rank=r)
        if len(parts) != 2:
            raise TokenizerFileError(
                path, f"token {token!r} of rank {r} is not a merge of two lower-ranked tokens")
        merges.append((ranks[parts[0]], ranks[parts[1]]))
    return byte_order, merges


def read_tiktoken_file(path):
    r"""Read a tiktoken rank file (``base64 rank`` per line) into {token bytes: rank}."""
    ranks = {}
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise TokenizerFileError(path, f"line {lineno}: expected 'base64 rank', got {line!r}")
        try:
            token = base64.b64decode(fields[0], validate=True)
            rank = int(fields[1])
        except (binascii.Error, ValueError):
            raise TokenizerFileError(
                path, f"line {lineno}: bad base64 token or rank: {line!r}") from None
        if token in ranks:
            raise TokenizerFileError(path, f"line {lineno}: token {token!r} appears twice")
        ranks[token] = rank
    if not ranks:
        raise TokenizerFileError(path, "empty rank file")
    return ranks


def read_gpt2_files(encoder_json, vocab_bpe):
    r"""Read GPT-2's ``encoder.json`` and ``vocab.bpe``.

    Returns ``(byte_order, merges, special_tokens)``: ``byte_order[i]`` is the byte of token i
    (GPT-2 lists the 256 bytes in its own order, "!" first), ``merges[k]`` the ids of the pair
    that makes token 256 + k, and ``special_tokens`` {"<|endoftext|>": 50256}.
    """
    try:
        encoder = json.loads(read_text(encoder_json))
    except json.JSONDecodeError as e:
        raise TokenizerFileError(encoder_json, f"not valid JSON (truncated or corrupt?): {e}") \
            from None
    if not isinstance(encoder, dict):
        raise TokenizerFileError(encoder_json, "expected a JSON object {token: id}")
    lines = read_text(vocab_bpe).splitlines()
    if not lines or not lines[0].startswith("#version"):
        raise TokenizerFileError(vocab_bpe, "missing the '#version' first line")

    char_to_byte = {ch: b for b, ch in bytes_to_unicode().items()}

    def to_bytes(token, path):
        try:
            return bytes(char_to_byte[ch] for ch in token)
        except KeyError:
            raise TokenizerFileError(path, f"token {token!r} has a character outside GPT-2's "
                                     "byte alphabet") from None

    special_tokens = {}
    by_id = {}
    for token, i in encoder.items():
        if token.startswith("<|") and token.endswith("|>"):
            special_tokens[token] = i
        else:
            by_id[i] = to_bytes(token, encoder_json)
    if sorted(by_id) != list(range(len(by_id))) or len(by_id) < 256:
        raise TokenizerFileError(encoder_json, "token ids are not 0..n-1 with 256 bytes first")
    if any(len(by_id[i]) != 1 for i in range(256)):
        raise TokenizerFileError(encoder_json, "ids 0..255 must be the 256 single bytes")
    byte_order = [by_id[i][0] for i in range(256)]

    ids = {t: i for i, t in by_id.items()}
    merges = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split(" ")
        if len(fields) != 2:
            raise TokenizerFileError(vocab_bpe, f"line {lineno}: expected 'left right'")
        left, right = (to_bytes(f, vocab_bpe) for f in fields)
        if left not in ids or right not in ids or ids.get(left + right) != 256 + len(merges):
            raise TokenizerFileError(
                vocab_bpe, f"line {lineno}: merge {line!r} does not match encoder.json "
                f"(expected it to make token {256 + len(merges)})")
        merges.append((ids[left], ids[right]))
    if 256 + len(merges) != len(by_id):
        raise TokenizerFileError(vocab_bpe, f"{len(merges)} merges for {len(by_id)} tokens "
                                 "(truncated?)")
    return byte_order, merges, special_tokens
