"""Neural-network modules (torch.nn's names and shapes) and the functional ops (``F``)."""

from tinygrad_llm.nn import functional, init
from tinygrad_llm.nn.attention import CausalSelfAttention
from tinygrad_llm.nn.gru import GRU, GRUCell
from tinygrad_llm.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from tinygrad_llm.nn.lstm import LSTM, LSTMCell
from tinygrad_llm.nn.module import Module, ModuleList, Parameter, Sequential
from tinygrad_llm.nn.rnn import RNN, RNNCell
from tinygrad_llm.nn.transformer import (
    KVCache,
    MultiheadAttention,
    PositionalEncoding,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = ["Module", "Parameter", "ModuleList", "Sequential", "Linear", "Embedding", "LayerNorm",
           "Dropout", "GELU", "ReLU", "Tanh", "Sigmoid", "CausalSelfAttention", "functional",
           "init"]
__all__ += ["RNN", "RNNCell", "LSTM", "LSTMCell", "GRU", "GRUCell"]  # recurrent layers
__all__ += ["MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer",
            "TransformerEncoder", "TransformerDecoder", "Transformer",
            "PositionalEncoding", "KVCache"]  # the encoder-decoder Transformer
