"""tinygrad_llm/nn/lstm.py and the fused LSTM Functions of ops/rnn.py against the same cell
composed of primitives (forward values and every gradient, random upstream, float64).

Torch parity, gradcheck and bad input for LSTM/LSTMCell are in tests/test_rnn.py (shared with
the RNN and GRU).
"""

import numpy as np
import pytest

from tinygrad_llm import Tensor
from tinygrad_llm.nn.lstm import LSTM
from tinygrad_llm.ops import rnn as ops_rnn
from tinygrad_llm.tensor import stack


def lstm_cell_primitives(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """The LSTM step of the docstrings, one primitive per symbol (autograd derives backward)."""
    H = h.shape[1]
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh                           # (B, 4H)
    i = gates[:, :H].sigmoid()
    f = gates[:, H:2 * H].sigmoid()
    g = gates[:, 2 * H:3 * H].tanh()
    o = gates[:, 3 * H:].sigmoid()
    c_new = f * c + i * g
    h_new = o * c_new.tanh()
    return h_new, c_new


def _values_and_grads(fn, arrays, upstream):
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    y.backward(Tensor(upstream))
    return [y.numpy()] + [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("B,I,H", [(1, 1, 1), (4, 3, 5), (2, 7, 3)])
def test_fused_lstm_cell_matches_primitives(B, I, H):
    rng = np.random.default_rng(B + I + H)
    arrays = [rng.standard_normal(s) * 2 for s in
              ((B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    up = rng.standard_normal((2, B, H))
    fused = _values_and_grads(ops_rnn.LSTMCell.apply, arrays, up)
    composed = _values_and_grads(lambda *a: stack(list(lstm_cell_primitives(*a))), arrays, up)
    for a, b in zip(fused, composed):
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [4, 1, 3]])
def test_fused_lstm_layer_matches_unrolled_primitives(reverse, lengths):
    """LSTMLayer (one Function, hand-written BPTT) against the loop of the primitive cell, with
    padding steps written as h = m * h_new + (1 - m) * h."""
    rng = np.random.default_rng(0)
    T, B, I, H = 4, 3, 2, 3
    arrays = [rng.standard_normal(s) for s in
              ((T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    up = rng.standard_normal((T + 2, B, H))
    lens = None if lengths is None else np.array(lengths)

    def unrolled(x, h, c, *w):
        outs = [None] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            h_new, c_new = lstm_cell_primitives(x[t], h, c, *w)
            m = np.ones((B, 1)) if lens is None else (t < lens)[:, None].astype(float)
            outs[t] = h_new * m
            h = h_new * m + h * (1 - m)
            c = c_new * m + c * (1 - m)
        return stack(outs + [h, c])                                         # (T+2, B, H)

    fused = _values_and_grads(
        lambda *a: ops_rnn.LSTMLayer.apply(*a, lengths=lens, reverse=reverse), arrays, up)
    composed = _values_and_grads(unrolled, arrays, up)
    for a, b in zip(fused, composed):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_forget_gate_bias_controls_memory():
    """With the forget gate pinned open (f ~ 1) and the input gate shut (i ~ 0), the cell state
    carries c0 unchanged across many steps: the additive path of docs/rnn.md."""
    H = 3
    lstm = LSTM(2, H).to(dtype=np.float64)
    for name in ("bias_ih_l0", "bias_hh_l0"):
        b = np.zeros(4 * H)
        b[:H] = -20          # i ~ 0
        b[H:2 * H] = 20      # f ~ 1
        getattr(lstm, name).data = b
    lstm.weight_ih_l0.data[:] = 0
    lstm.weight_hh_l0.data[:] = 0
    c0 = np.array([[[0.5, -1.0, 2.0]]])
    x = np.random.default_rng(0).standard_normal((50, 1, 2))
    _, (_, c_n) = lstm(x, (np.zeros((1, 1, H)), c0))
    np.testing.assert_allclose(c_n.numpy(), c0, atol=1e-12)
