"""Whole models, one per file: ``gpt`` (GPT-2's architecture)."""

from tinygrad_llm.models.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig"]
