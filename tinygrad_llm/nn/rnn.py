r"""Recurrent layers: the Elman RNN (``RNNCell``, ``RNN``) and the machinery the LSTM and GRU share
(``RNNBase``, ``RNNCellBase``: torch's constructor arguments, parameter names, initialisation,
shape checks, stacking layers and directions, ``batch_first`` and ``lengths=``).

Dimension letters: T time steps, B batch, I input features (``input_size``), H hidden units
(``hidden_size``), L layers (``num_layers``), D directions (2 if ``bidirectional`` else 1),
G = gates * H rows of a stacked weight (RNN 1, LSTM 4, GRU 3 gates).

Parameters, as in torch (so ``load_state_dict`` of a torch state dict gives torch's numbers), for
layer k and the reverse direction's ``_reverse`` copies:

    weight_ih_l{k}  W_ih (G, I) for k = 0, (G, D*H) above     weight_hh_l{k}  W_hh (G, H)
    bias_ih_l{k}    b_ih (G,)                                  bias_hh_l{k}    b_hh (G,)

all initialised U(-1/sqrt(H), 1/sqrt(H)). The state is passed in and returned, never kept on the
module. Inputs and states must have the parameters' dtype, as in torch (a float64 input to a
float32 layer is an error, not a silent float64 run).

``fused=True`` (the default) runs each direction of each layer as one Function with hand-derived
BPTT (tinygrad_llm/ops/rnn.py; derivations in docs/rnn.md), and each cell as one Function.
``fused=False`` runs the readable reference cell (``tinygrad_llm.reference.rnn_cell``,
``lstm_cell``, ``gru_cell``) step by step from Tensor primitives, and autograd derives the
backward through time. Both give the same numbers; the reference is there to read and to test
against.

Variable-length batches: ``lengths`` (B,) of ints in [1, T]. Step t of sequence b is padding when
t >= lengths[b]: it leaves the state unchanged and its output is zero, so h_n (and c_n) hold each
sequence's last valid state, and the reverse direction starts at each sequence's own last step.
This gives torch's results for ``pack_padded_sequence(x, lengths, enforce_sorted=False)`` (with the
padded output of ``pad_packed_sequence``, zeros at padded steps), without packing.
"""

import math

import numpy as np

from tinygrad_llm import backend, reference
from tinygrad_llm.nn import functional as F
from tinygrad_llm.nn import init
from tinygrad_llm.nn.module import Module, Parameter
from tinygrad_llm.ops import rnn as _rnn
from tinygrad_llm.tensor import Tensor, concatenate, stack, where

__all__ = ["RNNBase", "RNNCellBase", "RNNCell", "RNN"]


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _zeros(shape, like):
    """A constant zero state with the dtype and device of ``like`` (no gradient)."""
    xp = backend.get_xp(like.data)
    return Tensor._wrap(xp.zeros(shape, dtype=like.dtype))


def _check_dtype(name, what, t, dtype):
    """Raise unless ``t`` has the parameters' dtype. NumPy would otherwise run the whole layer
    in the wider type (float64 input, float32 weights: silently twice as slow), or take integer
    word ids as numbers (a missing Embedding). torch refuses both too."""
    if t.dtype != dtype:
        raise ValueError(f"{name}: {what} dtype {t.dtype} does not match the parameters' dtype "
                         f"{dtype}; convert the {what} ({what}.astype({dtype})) or the module "
                         f"(.to(dtype=...))")


def _check_state(name, what, h, expected, dtype):
    """Raise unless the state ``h`` has the ``expected`` shape and ``dtype``; return it as a
    Tensor."""
    h = _as_tensor(h)
    if h.shape != expected:
        raise ValueError(f"{name}: expected {what} of shape {expected}, got {h.shape}")
    _check_dtype(name, what, h, dtype)
    return h


def _check_lengths(name, lengths, T, B, device="cpu"):
    """Validate ``lengths`` (B,) ints in [1, T]; return them on ``device``, or None if all are T."""
    if lengths is None:
        return None
    lengths = lengths.numpy() if isinstance(lengths, Tensor) else np.asarray(lengths)
    if lengths.shape != (B,):
        raise ValueError(f"{name}: lengths must have shape ({B},), one per sequence, got "
                         f"{lengths.shape}")
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"{name}: lengths must be integers, got {lengths.dtype}")
    bad = (lengths < 1) | (lengths > T)
    if bad.any():
        b = int(np.argmax(bad))
        raise ValueError(f"{name}: lengths[{b}] = {int(lengths[b])} is out of range: every "
                         f"length must be in [1, T] = [1, {T}]")
    if (lengths == T).all():
        return None          # nothing is padding: take the faster unmasked path
    return backend.to_device(lengths.astype(np.int64), device)


class RNNBase(Module):
    r"""Stacked, optionally bidirectional recurrent layers; ``RNN``, ``LSTM`` and ``GRU`` set
    ``gates`` and ``_layer`` (one direction of one layer).

    Input x (T, B, I), or (B, T, I) with ``batch_first``, or unbatched (T, I). Output
    ``out`` (T, B, D*H) (batch_first: (B, T, D*H); unbatched (T, D*H)): the last layer's hidden
    states, the two directions concatenated [forward, reverse]. States h0, h_n (L*D, B, H),
    indexed layer * D + direction, as in torch. Between layers, dropout ``dropout`` (training
    only); the input of layer k > 0 is the output of layer k - 1. ``fused``: one Function per
    layer and direction (True), or the reference cell step by step (False); module docstring.
    """

    gates = 1
    has_cell_state = False

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, fused=True):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size),
                           ("num_layers", num_layers)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional, self.fused = bidirectional, fused
        self.num_directions = 2 if bidirectional else 1
        H, G = hidden_size, self.gates * hidden_size
        k = 1 / math.sqrt(H)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else H * self.num_directions
            for suffix in ("", "_reverse")[:self.num_directions]:
                setattr(self, f"weight_ih_l{layer}{suffix}",
                        Parameter(init.uniform((G, layer_input), k), device=device))  # (G, I)
                setattr(self, f"weight_hh_l{layer}{suffix}",
                        Parameter(init.uniform((G, H), k), device=device))            # (G, H)
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}",
                            Parameter(init.uniform((G,), k), device=device))          # (G,)
                    setattr(self, f"bias_hh_l{layer}{suffix}",
                            Parameter(init.uniform((G,), k), device=device))          # (G,)

    def layer_weights(self, layer, reverse=False):
        """(W_ih, W_hh, b_ih, b_hh) of one layer and direction (biases None with bias=False)."""
        s = f"l{layer}" + ("_reverse" if reverse else "")
        return (getattr(self, f"weight_ih_{s}"), getattr(self, f"weight_hh_{s}"),
                getattr(self, f"bias_ih_{s}", None), getattr(self, f"bias_hh_{s}", None))

    def _fused_layer(self, x, h0, c0, weights, lengths, reverse):
        """One direction of one layer as one fused Function: returns out, h_n, c_n or None."""
        raise NotImplementedError

    def _cell(self, x, h, c, weights):
        """One step of the reference cell, x (B, I), h, c (B, H) -> h_new, c_new (B, H) (c and
        c_new None without a cell state)."""
        raise NotImplementedError

    def _layer(self, x, h, c, weights, lengths, reverse):
        r"""One direction of one layer: x (T, B, I), h, c (B, H) -> out (T, B, H), h_n (B, H),
        c_n (B, H) or None.

        Unfused, the reference cell runs step by step and autograd records each primitive of
        each step. A padding step (m = [t < lengths], one per sequence) keeps the state:

            h_t = where(m, h_new, h_{t-1}),   c_t = where(m, c_new, c_{t-1}),
            out_t = where(m, h_new, 0)
        """
        if self.fused:
            return self._fused_layer(x, h, c, weights, lengths, reverse)
        T = x.shape[0]
        mask = None
        if lengths is not None:
            xp = backend.get_xp(x.data)
            mask = (xp.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
        out = [None] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            h_new, c_new = self._cell(x[t], h, c, weights)                  # (B, H) each
            if mask is None:
                out[t], h, c = h_new, h_new, c_new
            else:
                out[t] = where(mask[t], h_new, 0.0)                         # (B, H)
                h = where(mask[t], h_new, h)                                # (B, H)
                c = where(mask[t], c_new, c) if c is not None else None     # (B, H)
        return stack(out), h, c                                             # (T, B, H)

    def _run(self, x, h0, c0, lengths):
        """The shared forward: shape checks, layers and directions; returns out, h_n, c_n."""
        name = type(self).__name__
        x = _as_tensor(x)
        I, H, LD = self.input_size, self.hidden_size, self.num_layers * self.num_directions
        if x.ndim not in (2, 3) or x.shape[-1] != I or 0 in x.shape:
            layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            raise ValueError(f"{name}: expected input of shape {layout} with input_size={I}, or "
                             f"unbatched (T, {I}), with T, B >= 1; got shape {x.shape}")
        dtype = self.weight_ih_l0.dtype
        _check_dtype(name, "input", x, dtype)
        batched = x.ndim == 3
        if not batched:
            x = x.expand_dims(1)                                            # (T, 1, I)
        elif self.batch_first:
            x = x.swapaxes(0, 1)                                            # (T, B, I)
        T, B, _ = x.shape
        state_shape = (LD, B, H) if batched else (LD, H)
        states = []
        for what, h in (("h0", h0), ("c0", c0)):
            if h is not None:
                h = _check_state(name, what, h, state_shape, dtype)
                h = h if batched else h.expand_dims(1)                      # (L*D, B, H)
            states.append(h)
        h0, c0 = states
        lengths = _check_lengths(name, lengths, T, B, x.device)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.num_directions):
                i = layer * self.num_directions + direction
                h = h0[i] if h0 is not None else _zeros((B, H), x)          # (B, H)
                c = None
                if self.has_cell_state:
                    c = c0[i] if c0 is not None else _zeros((B, H), x)      # (B, H)
                out, h, c = self._layer(x, h, c, self.layer_weights(layer, direction == 1),
                                        lengths, reverse=direction == 1)
                outs.append(out)                                            # (T, B, H)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if len(outs) == 1 else concatenate(outs, axis=2)    # (T, B, D*H)
            if layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, self.training)
        h_n = stack(h_n)                                                    # (L*D, B, H)
        c_n = stack(c_n) if self.has_cell_state else None                   # (L*D, B, H)
        if not batched:
            x, h_n = x.squeeze(1), h_n.squeeze(1)                           # (T, D*H), (L*D, H)
            c_n = c_n.squeeze(1) if c_n is not None else None
        elif self.batch_first:
            x = x.swapaxes(0, 1)                                            # (B, T, D*H)
        return x, h_n, c_n

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if not self.fused:
            s += ", fused=False"
        return s


class RNN(RNNBase):
    r"""Elman RNN, ``out, h_n = rnn(x, h0=None, lengths=None)``, torch.nn.RNN's arguments.

    For each layer (and direction), with f = tanh or relu (``nonlinearity``):

        h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)       x_t (B, I), h_t (B, H)

    W_ih = ``weight_ih_l{k}`` (H, I), W_hh = ``weight_hh_l{k}`` (H, H), b_ih = ``bias_ih_l{k}``,
    b_hh = ``bias_hh_l{k}`` (H,). Backward through time (docs/rnn.md), per step from t = T down,
    with dh_t the whole gradient reaching h_t (from out_t and from step t+1):
    da_t = dh_t * f'(a_t), dh_{t-1} = dout_{t-1} + da_t W_hh, dW_hh = sum_t da_t^T h_{t-1}.
    Shapes, ``batch_first``, bidirectional, dropout, ``lengths`` and ``fused``: see ``RNNBase``
    and the module docstring.
    """

    gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, fused=True):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, fused)
        self.nonlinearity = nonlinearity

    def forward(self, x, h0=None, lengths=None):
        out, h_n, _ = self._run(x, h0, None, lengths)
        return out, h_n

    def _fused_layer(self, x, h0, c0, weights, lengths, reverse):
        out, h_n = _rnn.RNNLayer.apply(x, h0, *weights, nonlinearity=self.nonlinearity,
                                       lengths=lengths, reverse=reverse)    # (T, B, H), (B, H)
        return out, h_n, None

    def _cell(self, x, h, c, weights):
        return reference.rnn_cell(x, h, *weights, nonlinearity=self.nonlinearity), None

    def extra_repr(self):
        s = super().extra_repr()
        return s + (f", nonlinearity={self.nonlinearity!r}" if self.nonlinearity != "tanh" else "")


class RNNCellBase(Module):
    r"""One step of a recurrent cell: parameters ``weight_ih`` (G, I), ``weight_hh`` (G, H),
    ``bias_ih``, ``bias_hh`` (G,), U(-1/sqrt(H), 1/sqrt(H)), as torch. Input x (B, I) or
    unbatched (I,); state (B, H) or (H,). ``fused``: one Function (True) or the reference cell
    from primitives (False), as for ``RNNBase``."""

    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, fused=True):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        self.input_size, self.hidden_size, self.bias, self.fused = (input_size, hidden_size,
                                                                     bias, fused)
        G, k = self.gates * hidden_size, 1 / math.sqrt(hidden_size)
        self.weight_ih = Parameter(init.uniform((G, input_size), k), device=device)   # (G, I)
        self.weight_hh = Parameter(init.uniform((G, hidden_size), k), device=device)  # (G, H)
        self.bias_ih = Parameter(init.uniform((G,), k), device=device) if bias else None
        self.bias_hh = Parameter(init.uniform((G,), k), device=device) if bias else None

    def weights(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def _check(self, x, states):
        """Check x (B, I) or (I,) and each state (B, H) or (H,); return them as 2-D tensors
        (zeros for a state that is None) and whether the input was batched."""
        name = type(self).__name__
        x = _as_tensor(x)
        I, H = self.input_size, self.hidden_size
        if x.ndim not in (1, 2) or x.shape[-1] != I or 0 in x.shape:
            raise ValueError(f"{name}: expected input of shape (B, {I}) or unbatched ({I},), "
                             f"got shape {x.shape}")
        dtype = self.weight_ih.dtype
        _check_dtype(name, "input", x, dtype)
        batched = x.ndim == 2
        x = x if batched else x.expand_dims(0)                              # (B, I)
        B = x.shape[0]
        out = []
        for what, h in states:
            if h is None:
                out.append(_zeros((B, H), x))                               # (B, H)
                continue
            h = _check_state(name, what, h, (B, H) if batched else (H,), dtype)
            out.append(h if batched else h.expand_dims(0))                  # (B, H)
        return x, out, batched

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
                + ("" if self.fused else ", fused=False"))


class RNNCell(RNNCellBase):
    r"""One Elman step, ``h_new = cell(x, h=None)``, torch.nn.RNNCell's arguments:

        h_new = f(x W_ih^T + b_ih + h W_hh^T + b_hh),    f = tanh or relu

    W_ih = ``weight_ih`` (H, I), W_hh = ``weight_hh`` (H, H), b_ih = ``bias_ih``, b_hh =
    ``bias_hh`` (H,). Backward (one fused Function, ``ops.rnn.RNNCell``): da = dh_new * f'(a),
    dx = da W_ih, dh = da W_hh, dW_ih = da^T x, dW_hh = da^T h, db_ih = db_hh = sum da.
    ``fused=False``: ``tinygrad_llm.reference.rnn_cell`` from primitives instead.
    """

    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 fused=True):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, device, fused)
        self.nonlinearity = nonlinearity

    def forward(self, x, h=None):
        x, (h,), batched = self._check(x, [("h", h)])
        cell = _rnn.RNNCell.apply if self.fused else reference.rnn_cell
        h_new = cell(x, h, *self.weights(), nonlinearity=self.nonlinearity)  # (B, H)
        return h_new if batched else h_new.squeeze(0)                       # (B, H) or (H,)
