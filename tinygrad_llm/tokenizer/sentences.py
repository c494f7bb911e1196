r"""Words and sentences for Word2Vec: a text becomes lists of lowercase word tokens.

Word2Vec reads a corpus as sentences, each a list of tokens; a word's context never crosses the
end of its sentence. Three ways to get them:

* ``tokenize(text)``: lowercase runs of letters, apostrophes kept inside a word:
  "Don't stop!" -> ["don't", "stop"] (so "o'er" and "king's" stay one word each).
* ``text_to_sentences(text, max_len)``: the whole text as one stream of tokens, cut every
  ``max_len`` tokens (lines of verse are too short to be sentences).
* ``LineSentence(path)``: a file with one sentence per line, tokens separated by whitespace
  (gensim's ``corpus_file`` format), read afresh on each pass.
"""

import re
from pathlib import Path

__all__ = ["tokenize", "text_to_sentences", "LineSentence", "MAX_SENTENCE_LEN"]

MAX_SENTENCE_LEN = 10000    # longer sentences are cut into pieces of this length (gensim's cap)
TOKEN_PATTERN = re.compile(r"[a-z]+(?:'[a-z]+)*")


def tokenize(text):
    """Lowercase letter runs with internal apostrophes kept: "Don't stop!" -> ["don't", "stop"]."""
    return TOKEN_PATTERN.findall(text.lower())


def text_to_sentences(text, max_len=MAX_SENTENCE_LEN):
    """``tokenize(text)`` as one stream, cut into sentences of ``max_len`` tokens (the benchmark's
    and the example's corpus: lines of verse are too short to be sentences)."""
    tokens = tokenize(text)
    return [tokens[i:i + max_len] for i in range(0, len(tokens), max_len)]


class LineSentence:
    """Sentences from a text file, one per line, tokens separated by whitespace (gensim's format
    for ``corpus_file``). Iterating twice reads the file twice."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Word2Vec: corpus file {str(self.path)!r} does not exist")

    def __iter__(self):
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                yield line.split()
