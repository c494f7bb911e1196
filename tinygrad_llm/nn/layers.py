r"""The basic layers: Linear, Embedding, LayerNorm, Dropout and the activations.

Parameter names and shapes match torch.nn's, so weights copied from torch give torch's numbers.
Each layer calls one fused Function from tinygrad_llm/ops/nn.py, where its equations live.
"""

import math

from tinygrad_llm.nn import functional as F
from tinygrad_llm.nn import init
from tinygrad_llm.nn.module import Module, Parameter

__all__ = ["Linear", "Embedding", "LayerNorm", "Dropout", "GELU", "ReLU", "Tanh", "Sigmoid"]


class Linear(Module):
    r"""y = x W^T + b, x (..., in_features) -> y (..., out_features).

    Parameters (torch's names): ``weight`` W (out_features, in_features), ``bias`` b
    (out_features,). Initialised as torch does: W and b ~ U(-k, k) with k = 1/sqrt(in_features).
    """

    def __init__(self, in_features, out_features, bias=True, device=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        k = 1 / math.sqrt(in_features)
        self.weight = Parameter(init.uniform((out_features, in_features), k), device=device)
        self.bias = Parameter(init.uniform((out_features,), k), device=device) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    r"""y = W[ids]: ids (...) of integers in [0, num_embeddings) -> y (..., embedding_dim).

    Parameter ``weight`` W (num_embeddings, embedding_dim), initialised N(0, 1) as in torch.

    ``sparse=True`` gives W a row-sparse gradient: instead of the dense (V, D) array
    dW[v] = sum of dy over the positions whose id is v, backward returns the rows
    ``RowSparseGrad(indices=ids, values=dy)``, and ``SGD`` (plain: no momentum, no weight decay)
    scatter-adds ``-lr * values`` into the touched rows only. Same step, without touching the
    other V - len(ids) rows: Word2Vec uses it. The GPT keeps dense gradients (the default).
    See tinygrad_llm/ops/sparse.py and docs/word2vec.md.
    """

    def __init__(self, num_embeddings, embedding_dim, device=None, sparse=False):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.sparse = sparse
        self.weight = Parameter(init.normal((num_embeddings, embedding_dim)), device=device)

    def forward(self, ids):
        return F.embedding(ids, self.weight, sparse=self.sparse)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}" + (", sparse=True" if self.sparse
                                                                 else "")


class LayerNorm(Module):
    r"""y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis (size ``dim``).

    Parameters ``weight`` (dim,) = 1 and ``bias`` (dim,) = 0 (none with bias=False), as in torch.
    """

    def __init__(self, dim, eps=1e-5, bias=True, device=None):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = Parameter(init.ones((dim,)), device=device)
        self.bias = Parameter(init.zeros((dim,)), device=device) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}, bias={self.bias is not None}"


class Dropout(Module):
    """Zero elements with probability p in training (scaling the rest by 1/(1-p)); identity in
    eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    def forward(self, x):
        return x.relu()


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x):
        return x.sigmoid()
