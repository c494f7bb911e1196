"""tinygrad_llm/nn/lstm.py and the fused LSTM Functions of ops/rnn.py against their reference,
``tinygrad_llm.reference.lstm_cell`` (run step by step for a layer): every output and every
gradient, random upstream gradients, float64, for each subset of the outputs that the loss may
use (an unused output reaches the fused backward as None).

Torch parity, gradcheck, fused against reference modules and bad input for LSTM/LSTMCell are in
tests/test_rnn.py (shared with the RNN and GRU).
"""

import numpy as np
import pytest
from recurrent_checks import values_and_grads

from tinygrad_llm import Tensor, where
from tinygrad_llm.nn.lstm import LSTM
from tinygrad_llm.ops import rnn as ops_rnn
from tinygrad_llm.reference import lstm_cell
from tinygrad_llm.tensor import stack


@pytest.mark.parametrize("used", [(0, 1), (0,), (1,)], ids=["h-c", "h", "c"])
@pytest.mark.parametrize("B,I,H", [(1, 1, 1), (4, 3, 5), (2, 7, 3)])
def test_fused_lstm_cell_matches_reference(B, I, H, used):
    rng = np.random.default_rng(B + I + H)
    arrays = [rng.standard_normal(s) * 2 for s in
              ((B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    ups = [rng.standard_normal((B, H)) for _ in range(2)]
    fused = values_and_grads(ops_rnn.LSTMCell.apply, arrays, ups, used)
    ref = values_and_grads(lstm_cell, arrays, ups, used)
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def unrolled_lstm(x, h, c, *weights, lengths=None, reverse=False):
    """The layer as a loop of the reference cell, a padding step (m = [t < lengths]) written
    h_t = where(m, h_new, h_{t-1}) (c likewise), out_t = where(m, h_new, 0)."""
    T, B = x.shape[:2]
    out = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h_new, c_new = lstm_cell(x[t], h, c, *weights)
        m = np.ones((B, 1), bool) if lengths is None else (t < lengths)[:, None]   # (B, 1)
        out[t] = where(m, h_new, 0.0)
        h, c = where(m, h_new, h), where(m, c_new, c)
    return stack(out), h, c                                                 # (T, B, H)


@pytest.mark.parametrize("used", [(0, 1, 2), (0,), (1,), (2,), (1, 2)],
                         ids=["out-h_n-c_n", "out", "h_n", "c_n", "h_n-c_n"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [4, 1, 3]])
def test_fused_lstm_layer_matches_unrolled_reference(reverse, lengths, used):
    """LSTMLayer (one Function, hand-written BPTT) against the loop of the reference cell."""
    rng = np.random.default_rng(0)
    T, B, I, H = 4, 3, 2, 3
    arrays = [rng.standard_normal(s) for s in
              ((T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    ups = [rng.standard_normal(s) for s in ((T, B, H), (B, H), (B, H))]
    lens = None if lengths is None else np.array(lengths)
    fused = values_and_grads(
        lambda *a: ops_rnn.LSTMLayer.apply(*a, lengths=lens, reverse=reverse), arrays, ups, used)
    ref = values_and_grads(lambda *a: unrolled_lstm(*a, lengths=lens, reverse=reverse),
                           arrays, ups, used)
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_unused_outputs_reach_the_fused_backward_as_none(monkeypatch):
    """Only ``out`` is used: LSTMLayer.backward gets dh_n = dc_n = None (no zero buffers); and
    LSTMCell.backward gets dc_new = None when only h_new is used."""
    seen = []
    for cls in (ops_rnn.LSTMLayer, ops_rnn.LSTMCell):
        original = cls.backward

        def spy(self, *dys, original=original):
            seen.append((type(self).__name__, [dy is None for dy in dys]))
            return original(self, *dys)
        monkeypatch.setattr(cls, "backward", spy)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    out, _ = LSTM(3, 4)(Tensor(x, requires_grad=True))
    out.sum().backward()
    h, c = Tensor(np.zeros((2, 4), np.float32)), Tensor(np.zeros((2, 4), np.float32))
    params = [Tensor(np.ones(s, np.float32), requires_grad=True) for s in ((16, 3), (16, 4))]
    h_new, _ = ops_rnn.LSTMCell.apply(Tensor(x[0]), h, c, *params)
    h_new.sum().backward()
    assert seen == [("LSTMLayer", [False, True, True]), ("LSTMCell", [False, True])]


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
