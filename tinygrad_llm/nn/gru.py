r"""The GRU: ``GRUCell`` (one step) and ``GRU`` (stacked, bidirectional, variable-length).

Dimension letters: T time, B batch, I input features, H hidden units, L layers, D directions.

For each layer and direction, at step t (torch's formula and gate order r, z, n):

    gx = x_t W_ih^T + b_ih,   gh = h_{t-1} W_hh^T + b_hh              (B, 3H) = [r z n] parts
    r_t = sigma(gx_r + gh_r)                 reset gate
    z_t = sigma(gx_z + gh_z)                 update gate
    n_t = tanh(gx_n + r_t * gh_n)            candidate: r scales the h-side, b_hn included
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Names to symbols: ``weight_ih_l{k}`` = [W_ir W_iz W_in] (3H, I), ``weight_hh_l{k}`` =
[W_hr W_hz W_hn] (3H, H), ``bias_ih_l{k}`` = [b_ir b_iz b_in], ``bias_hh_l{k}`` = [b_hr b_hz b_hn]
(3H,); ``_reverse`` for the reverse direction. With ``fused=True`` (the default), one Function
per layer and direction (tinygrad_llm/ops/rnn.py, ``GRULayer``), backward through time derived in
its docstring; with ``fused=False``, the reference cell ``tinygrad_llm.reference.gru_cell`` step
by step, autograd deriving the backward.
"""

from tinygrad_llm import reference
from tinygrad_llm.nn.rnn import RNNBase, RNNCellBase
from tinygrad_llm.ops import rnn as _rnn

__all__ = ["GRUCell", "GRU"]


class GRU(RNNBase):
    r"""``out, h_n = gru(x, h0=None, lengths=None)``, torch.nn.GRU's arguments and ``fused``:
    GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, device=None, fused=True).

    x (T, B, I) (batch_first: (B, T, I); unbatched (T, I)); out (T, B, D*H); h0, h_n (L*D, B, H).
    ``lengths`` (B,): padded steps keep h and output zeros; h_n is each last valid state.
    """

    gates = 3

    def forward(self, x, h0=None, lengths=None):
        out, h_n, _ = self._run(x, h0, None, lengths)
        return out, h_n

    def _fused_layer(self, x, h0, c0, weights, lengths, reverse):
        out, h_n = _rnn.GRULayer.apply(x, h0, *weights, lengths=lengths,
                                       reverse=reverse)                     # (T, B, H), (B, H)
        return out, h_n, None

    def _cell(self, x, h, c, weights):
        return reference.gru_cell(x, h, *weights), None                     # (B, H)


class GRUCell(RNNCellBase):
    r"""One GRU step, ``h_new = cell(x, h=None)``, torch.nn.GRUCell's arguments:

        r = sigma(x W_ir^T + b_ir + h W_hr^T + b_hr),   z = sigma(x W_iz^T + b_iz + h W_hz^T + b_hz)
        n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),   h_new = (1 - z) * n + z * h

    ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``, ``bias_hh`` (3H,), stacked [r z n].
    One fused Function (``ops.rnn.GRUCell``), its backward derived in its docstring; with
    ``fused=False``, ``tinygrad_llm.reference.gru_cell`` from primitives instead.
    """

    gates = 3

    def forward(self, x, h=None):
        x, (h,), batched = self._check(x, [("h", h)])
        cell = _rnn.GRUCell.apply if self.fused else reference.gru_cell
        h_new = cell(x, h, *self.weights())                                 # (B, H)
        return h_new if batched else h_new.squeeze(0)
