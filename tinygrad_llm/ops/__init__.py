"""Every primitive and fused operation, one Function each, grouped by kind.

- basic: + - * / ** and negation (with broadcasting), casts and device moves
- unary: exp, log, sqrt, tanh, sigmoid, relu, abs, clip
- reduce: sum, mean, max, min, var
- shape: reshape, transpose, expand_dims, squeeze, broadcast_to, indexing, concatenate, stack,
  where
- linalg: matmul
- nn: fused neural-network ops with hand-derived backwards (softmax, log-softmax, cross-entropy,
  layer norm, GELU, linear, embedding, dropout, binary cross-entropy, attention)
"""

from tinygrad_llm.ops import basic, linalg, nn, reduce, shape, unary

__all__ = ["basic", "unary", "reduce", "shape", "linalg", "nn"]
