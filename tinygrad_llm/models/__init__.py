"""Whole models, one per file: ``gpt`` (GPT-2's architecture), ``bert`` (BERT with Hugging Face's
names), ``word2vec`` (skip-gram, CBOW)."""

from tinygrad_llm.models.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
)
from tinygrad_llm.models.gpt import GPT, GPTConfig
from tinygrad_llm.models.keyed_vectors import KeyedVectors
from tinygrad_llm.models.word2vec import CBOW, SkipGram
from tinygrad_llm.models.word2vec_trainer import Word2Vec

__all__ = ["GPT", "GPTConfig", "SkipGram", "CBOW", "Word2Vec", "KeyedVectors"]
__all__ += ["BertConfig", "BertModel", "BertForMaskedLM", "BertForSequenceClassification"]
