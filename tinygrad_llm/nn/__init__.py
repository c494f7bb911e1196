"""Neural-network modules (torch.nn's names and shapes) and the functional ops (``F``)."""

from tinygrad_llm.nn import functional, init
from tinygrad_llm.nn.attention import CausalSelfAttention
from tinygrad_llm.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from tinygrad_llm.nn.module import Module, ModuleList, Parameter, Sequential

__all__ = ["Module", "Parameter", "ModuleList", "Sequential", "Linear", "Embedding", "LayerNorm",
           "Dropout", "GELU", "ReLU", "Tanh", "Sigmoid", "CausalSelfAttention", "functional",
           "init"]
