"""tinygrad_llm/nn/gru.py and the fused GRU Functions of ops/rnn.py against their reference,
``tinygrad_llm.reference.gru_cell`` (run step by step for a layer): every output and every
gradient, random upstream gradients, float64, for each subset of the layer's outputs that the
loss may use (an unused output reaches the fused backward as None).

Torch parity, gradcheck, fused against reference modules and bad input for GRU/GRUCell are in
tests/test_rnn.py.
"""

import numpy as np
import pytest
from recurrent_checks import values_and_grads

from tinygrad_llm import where
from tinygrad_llm.ops import rnn as ops_rnn
from tinygrad_llm.reference import gru_cell
from tinygrad_llm.tensor import stack


@pytest.mark.parametrize("B,I,H", [(1, 1, 1), (4, 3, 5), (2, 7, 3)])
def test_fused_gru_cell_matches_reference(B, I, H):
    rng = np.random.default_rng(B + I + H)
    arrays = [rng.standard_normal(s) * 2 for s in
              ((B, I), (B, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,))]
    ups = [rng.standard_normal((B, H))]
    fused = values_and_grads(ops_rnn.GRUCell.apply, arrays, ups, (0,))
    ref = values_and_grads(gru_cell, arrays, ups, (0,))
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def unrolled_gru(x, h, *weights, lengths=None, reverse=False):
    """The layer as a loop of the reference cell, a padding step (m = [t < lengths]) written
    h_t = where(m, h_new, h_{t-1}), out_t = where(m, h_new, 0)."""
    T, B = x.shape[:2]
    out = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h_new = gru_cell(x[t], h, *weights)
        m = np.ones((B, 1), bool) if lengths is None else (t < lengths)[:, None]   # (B, 1)
        out[t] = where(m, h_new, 0.0)
        h = where(m, h_new, h)
    return stack(out), h                                                    # (T, B, H), (B, H)


@pytest.mark.parametrize("used", [(0, 1), (0,), (1,)], ids=["out-h_n", "out", "h_n"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [4, 1, 3]])
def test_fused_gru_layer_matches_unrolled_reference(reverse, lengths, used):
    """GRULayer (one Function, hand-written BPTT) against the loop of the reference cell."""
    rng = np.random.default_rng(0)
    T, B, I, H = 4, 3, 2, 3
    arrays = [rng.standard_normal(s) for s in
              ((T, B, I), (B, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,))]
    ups = [rng.standard_normal(s) for s in ((T, B, H), (B, H))]
    lens = None if lengths is None else np.array(lengths)
    fused = values_and_grads(
        lambda *a: ops_rnn.GRULayer.apply(*a, lengths=lens, reverse=reverse), arrays, ups, used)
    ref = values_and_grads(lambda *a: unrolled_gru(*a, lengths=lens, reverse=reverse),
                           arrays, ups, used)
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
