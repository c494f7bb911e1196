r"""The LSTM: ``LSTMCell`` (one step) and ``LSTM`` (stacked, bidirectional, variable-length).

Dimension letters: T time, B batch, I input features, H hidden units, L layers, D directions.

For each layer and direction, at step t (row vectors, torch's gate order i, f, g, o), with
a_i a_f a_g a_o the gates' pre-activations and i f g o the gates:

    [a_i a_f a_g a_o]_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh     (B, 4H), then
    i_t = sigma(a_i), f_t = sigma(a_f), g_t = tanh(a_g), o_t = sigma(a_o)
    c_t = f_t * c_{t-1} + i_t * g_t          the cell state: a gated running sum
    h_t = o_t * tanh(c_t)                    the output gate decides what the cell shows

Names to symbols (torch's names and shapes): ``weight_ih_l{k}`` = [W_ii W_if W_ig W_io] (4H, I),
``weight_hh_l{k}`` = [W_hi W_hf W_hg W_ho] (4H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (4H,);
``_reverse`` for the reverse direction. With ``fused=True`` (the default) each direction of each
layer is one Function with a hand-written backward through time (tinygrad_llm/ops/rnn.py,
``LSTMLayer``); with ``fused=False`` the reference cell ``tinygrad_llm.reference.lstm_cell`` runs
step by step and autograd derives the backward. Going back one step, the cell state's gradient
is carried by

    dc_{t-1} = f_t (dc_t + dh_t o_t (1 - tanh^2 c_t))

(dc_t: what reaches c_t from step t+1; dh_t: all that reaches h_t). The derivation, and why this
path keeps gradients from vanishing, are in docs/rnn.md.
"""

from tinygrad_llm import reference
from tinygrad_llm.nn.rnn import RNNBase, RNNCellBase
from tinygrad_llm.ops import rnn as _rnn

__all__ = ["LSTMCell", "LSTM"]


def _unpack_pair(name, what, hx):
    """The LSTM's state is a pair: (None, None) for None, else the pair itself. A lone array
    would otherwise be unpacked along its first axis into a wrong h and c."""
    if hx is None:
        return None, None
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        got = f"a {type(hx).__name__} of length {len(hx)}" if isinstance(hx, (tuple, list)) \
            else type(hx).__name__
        raise TypeError(f"{name}: hx must be a pair {what}, got {got}")
    return hx


class LSTM(RNNBase):
    r"""``out, (h_n, c_n) = lstm(x, (h0, c0)=None, lengths=None)``, torch.nn.LSTM's arguments
    and ``fused``: LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, device=None, fused=True).

    x (T, B, I) (batch_first: (B, T, I); unbatched (T, I)); out (T, B, D*H); h0, c0, h_n, c_n
    (L*D, B, H). Equations and parameter names: module docstring. ``lengths`` (B,): padded steps
    keep (h, c), output zeros; h_n, c_n are each sequence's last valid states.
    """

    gates = 4
    has_cell_state = True

    def forward(self, x, hx=None, lengths=None):
        h0, c0 = _unpack_pair("LSTM", "(h0, c0)", hx)
        out, h_n, c_n = self._run(x, h0, c0, lengths)
        return out, (h_n, c_n)

    def _fused_layer(self, x, h0, c0, weights, lengths, reverse):
        out, h_n, c_n = _rnn.LSTMLayer.apply(x, h0, c0, *weights, lengths=lengths,
                                             reverse=reverse)               # (T, B, H), (B, H) x2
        return out, h_n, c_n

    def _cell(self, x, h, c, weights):
        return reference.lstm_cell(x, h, c, *weights)                       # (B, H) each


class LSTMCell(RNNCellBase):
    r"""One LSTM step, ``h_new, c_new = cell(x, (h, c)=None)``, torch.nn.LSTMCell's arguments
    (and ``fused=True``):

        [a_i a_f a_g a_o] = x W_ih^T + b_ih + h W_hh^T + b_hh           (B, 4H)
        i, f, g, o = sigma(a_i), sigma(a_f), tanh(a_g), sigma(a_o)
        c_new = f * c + i * g,   h_new = o * tanh(c_new)

    ``weight_ih`` W_ih (4H, I), ``weight_hh`` W_hh (4H, H), ``bias_ih`` b_ih, ``bias_hh`` b_hh
    (4H,). One fused Function (``ops.rnn.LSTMCell``) with the hand-derived backward:
    do = dh_new * tanh(c_new), dc_total = dc_new + dh_new * o * (1 - tanh^2 c_new),
    di = dc_total * g, df = dc_total * c, dg = dc_total * i, dc = f * dc_total, then through
    the sigmoids and tanh to da_i da_f da_g da_o and the two matmuls. ``fused=False``:
    ``tinygrad_llm.reference.lstm_cell`` from primitives instead.
    """

    gates = 4

    def forward(self, x, hx=None):
        h, c = _unpack_pair("LSTMCell", "(h, c)", hx)
        x, (h, c), batched = self._check(x, [("h", h), ("c", c)])
        cell = _rnn.LSTMCell.apply if self.fused else reference.lstm_cell
        h_new, c_new = cell(x, h, c, *self.weights())                       # (B, H) each
        if not batched:
            h_new, c_new = h_new.squeeze(0), c_new.squeeze(0)               # (H,)
        return h_new, c_new
