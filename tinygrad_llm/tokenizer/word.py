r"""Word tokenizer with the semantics of Keras's ``keras.preprocessing.text.Tokenizer``.

A text becomes words in three steps (Keras's ``text_to_word_sequence``):

1. lower-case it (when ``lower``);
2. replace every character of ``filters`` (punctuation, tab, newline by default) by ``split``;
3. split on ``split`` and drop empty strings.

``fit_on_texts`` counts the words; ids are then given by descending count, ties going to the word
seen first, starting at 1 (0 is left free for padding). With an ``oov_token`` it takes id 1 and
every word not in the index (or cut off by ``num_words``) maps to it.

Example with the default filters and ``oov_token="<unk>"``: fitting ["The cat sat.", "the dog"]
counts the:2, cat:1, sat:1, dog:1 and gives word_index {"<unk>": 1, "the": 2, "cat": 3, "sat": 4,
"dog": 5}; then ``texts_to_sequences(["the bird sat"])`` is [[2, 1, 4]].
"""
import json

from ._files import TokenizerFileError, read_json, write_text_atomic

__all__ = ["WordTokenizer", "KERAS_FILTERS"]

# Keras's default filters: ASCII punctuation except the apostrophe, plus tab and newline.
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


class WordTokenizer:
    r"""Keras-style word tokenizer.

    ``num_words``: if set, ``texts_to_sequences`` keeps only ids below ``num_words`` (the
    ``num_words - 1`` most frequent entries of ``word_index``, the oov token included); the rest
    become the oov id, or are dropped without an oov token. ``word_index`` always holds every word.

    Attributes: ``word_counts`` {word: count} in order of first appearance, ``word_docs`` {word:
    number of texts containing it}, ``document_count``, ``word_index`` {word: id}, ``index_word``
    {id: word}.
    """

    FORMAT = "tinygrad_llm.WordTokenizer"
    VERSION = 1

    def __init__(self, num_words=None, oov_token="<unk>", lower=True, filters=KERAS_FILTERS,
                 split=" "):
        if num_words is not None and (type(num_words) is not int or num_words < 1):
            raise ValueError(f"WordTokenizer: num_words must be None or an int >= 1, got "
                             f"{num_words!r}")
        if not isinstance(split, str) or not split:
            raise ValueError(f"WordTokenizer: split must be a non-empty str, got {split!r}")
        self.num_words = num_words
        self.oov_token = oov_token
        self.lower = lower
        self.filters = filters
        self.split = split
        self.word_counts = {}
        self.word_docs = {}
        self.document_count = 0
        self.word_index = {}
        self.index_word = {}

    def __repr__(self):
        return (f"WordTokenizer(num_words={self.num_words}, oov_token={self.oov_token!r}, "
                f"words={len(self.word_counts)})")

    def text_to_word_sequence(self, text):
        r"""The words of one text: lower-case, filter characters to ``split``, split, drop ''.

        A list of strings is taken as already split (only lower-cased), as Keras does."""
        if isinstance(text, list):
            return [w.lower() for w in text] if self.lower else list(text)
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer: each text must be a str or a list of words, got "
                            f"{type(text).__name__}")
        if self.lower:
            text = text.lower()
        text = text.translate(str.maketrans({ch: self.split for ch in self.filters}))
        return [w for w in text.split(self.split) if w]

    @staticmethod
    def _check_texts(texts, op):
        # A lone string would be iterated character by character: almost surely a mistake.
        if isinstance(texts, str):
            raise TypeError(f"{op}: texts must be a list of texts, got a single str "
                            f"(wrap it: [text])")

    def fit_on_texts(self, texts):
        r"""Count the words of ``texts`` (adding to earlier calls) and rebuild ``word_index``."""
        self._check_texts(texts, "fit_on_texts")
        for text in texts:
            self.document_count += 1
            seq = self.text_to_word_sequence(text)
            for w in seq:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            for w in dict.fromkeys(seq):
                self.word_docs[w] = self.word_docs.get(w, 0) + 1
        # sorted() is stable: equal counts keep the order of first appearance.
        by_count = sorted(self.word_counts, key=self.word_counts.get, reverse=True)
        vocab = ([] if self.oov_token is None else [self.oov_token]) + by_count
        # As in Keras, dict() keeps the LAST id of a repeated word: if the oov token is also a
        # word of the texts, it ends up with that word's id.
        self.word_index = dict(zip(vocab, range(1, len(vocab) + 1)))
        self.index_word = {i: w for w, i in self.word_index.items()}
        return self

    def _oov_index(self):
        return self.word_index.get(self.oov_token) if self.oov_token is not None else None

    def texts_to_sequences(self, texts):
        r"""Each text as a list of word ids (see the class docstring for ``num_words``)."""
        self._check_texts(texts, "texts_to_sequences")
        num_words, oov = self.num_words, self._oov_index()
        out = []
        for text in texts:
            seq = []
            for w in self.text_to_word_sequence(text):
                i = self.word_index.get(w)
                if i is not None and not (num_words and i >= num_words):
                    seq.append(i)
                elif oov is not None:
                    seq.append(oov)
            out.append(seq)
        return out

    def sequences_to_texts(self, sequences):
        r"""Each sequence of ids back to words joined by spaces; unknown or cut-off ids become
        the oov token (or are dropped without one)."""
        num_words, oov = self.num_words, self._oov_index()
        out = []
        for seq in sequences:
            if hasattr(seq, "tolist"):
                seq = seq.tolist()
            words = []
            for i in seq:
                w = self.index_word.get(i)
                if w is not None and not (num_words and i >= num_words):
                    words.append(w)
                elif oov is not None:
                    words.append(self.index_word[oov])
            out.append(" ".join(words))
        return out

    # ------------------------------------------------------------------ files

    def to_json(self):
        r"""The tokenizer as a JSON string (configuration and counts; no pickle)."""
        return json.dumps({
            "format": self.FORMAT, "version": self.VERSION,
            "config": {"num_words": self.num_words, "oov_token": self.oov_token,
                       "lower": self.lower, "filters": self.filters, "split": self.split},
            "document_count": self.document_count,
            # Lists of pairs keep the order, which the tie-break of word_index depends on.
            "word_counts": list(self.word_counts.items()),
            "word_docs": list(self.word_docs.items()),
            "word_index": list(self.word_index.items()),
        }, ensure_ascii=False)

    @classmethod
    def from_json(cls, text, source="<json string>"):
        r"""Rebuild a tokenizer from ``to_json``'s output; bad input raises TokenizerFileError."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as e:
            raise TokenizerFileError(source, f"not valid JSON (truncated or corrupt?): {e}") \
                from None
        return cls._from_data(data, source)

    @classmethod
    def _from_data(cls, data, source):
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise TokenizerFileError(source, f"not a {cls.FORMAT} document")
        if data.get("version") != cls.VERSION:
            raise TokenizerFileError(source, f"unsupported format version "
                                     f"{data.get('version')!r} (this code reads {cls.VERSION})")
        try:
            tok = cls(**data["config"])
            tok.document_count = int(data["document_count"])
            tok.word_counts = {str(w): int(n) for w, n in data["word_counts"]}
            tok.word_docs = {str(w): int(n) for w, n in data["word_docs"]}
            tok.word_index = {str(w): int(i) for w, i in data["word_index"]}
        except (KeyError, TypeError, ValueError) as e:
            raise TokenizerFileError(source, f"missing or malformed field: {e!r}") from None
        tok.index_word = {i: w for w, i in tok.word_index.items()}
        return tok

    def save(self, path):
        r"""Write ``to_json()`` to ``path`` atomically."""
        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path):
        r"""Read a file written by ``save``."""
        return cls._from_data(read_json(path), path)
