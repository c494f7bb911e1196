r"""Character tokenizer: one id per distinct character of a text, for char-level models.

``CharTokenizer(text)`` takes the sorted set of characters of ``text`` as its alphabet, so id i is
the i-th smallest character (Tiny Shakespeare gives 65 ids: "\n", " ", "!", ..., "z"). It has
the same ``encode``/``decode``/``save``/``load`` interface as ``BPETokenizer``.
"""
from ._files import TokenizerFileError, read_json, write_text_atomic

__all__ = ["CharTokenizer"]


class CharTokenizer:
    r"""Maps each character of an alphabet to an id: ``stoi[ch]`` and back ``itos[i]``."""

    FORMAT = "tinygrad_llm.CharTokenizer"
    VERSION = 1

    def __init__(self, text):
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer: text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharTokenizer: the text is empty, so there are no characters")
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.itos = dict(enumerate(self.chars))

    @property
    def vocab_size(self):
        return len(self.chars)

    @property
    def vocab(self):
        return dict(self.itos)

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def encode(self, text):
        r"""The id of each character of ``text``; a character outside the alphabet raises."""
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError:
            pass
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.stoi))
        raise ValueError(f"encode: characters {''.join(unknown)!r} are not in this tokenizer's "
                         f"alphabet of {self.vocab_size} characters")

    def decode(self, ids):
        r"""The characters of ``ids``; an id outside 0..vocab_size-1 raises."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        try:
            return "".join(map(self.itos.__getitem__, ids))
        except (KeyError, TypeError):
            pass
        for pos, i in enumerate(ids):
            if not (isinstance(i, int) and i in self.itos):
                raise ValueError(f"decode: ids[{pos}] = {i!r} is not a token id of this "
                                 f"tokenizer (ids are ints in 0..{self.vocab_size - 1})")
        raise TypeError(f"decode: ids must be a sequence of ints, got {type(ids).__name__}")

    def save(self, path):
        r"""Write the alphabet as JSON (atomically)."""
        import json
        data = {"format": self.FORMAT, "version": self.VERSION, "chars": "".join(self.chars)}
        write_text_atomic(path, json.dumps(data, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path):
        r"""Read a file written by ``save``; a bad file raises TokenizerFileError naming it."""
        data = read_json(path, expect_format=cls.FORMAT, expect_version=cls.VERSION)
        chars = data.get("chars")
        if not isinstance(chars, str) or not chars or sorted(set(chars)) != list(chars):
            raise TokenizerFileError(path, "'chars' must be a non-empty string of distinct "
                                     "characters in sorted order")
        return cls(chars)
