"""tinygrad_llm/nn/gru.py and the fused GRU Functions of ops/rnn.py against the same cell
composed of primitives (forward values and every gradient, random upstream, float64).

Torch parity, gradcheck and bad input for GRU/GRUCell are in tests/test_rnn.py.
"""

import numpy as np
import pytest

from tinygrad_llm import Tensor
from tinygrad_llm.ops import rnn as ops_rnn
from tinygrad_llm.tensor import stack


def gru_cell_primitives(x, h, w_ih, w_hh, b_ih, b_hh):
    """torch's GRU step, one primitive per symbol: n = tanh(gx_n + r * (h W_hn^T + b_hn))."""
    H = h.shape[1]
    gx = x @ w_ih.T + b_ih                                                  # (B, 3H)
    gh = h @ w_hh.T + b_hh                                                  # (B, 3H)
    r = (gx[:, :H] + gh[:, :H]).sigmoid()
    z = (gx[:, H:2 * H] + gh[:, H:2 * H]).sigmoid()
    n = (gx[:, 2 * H:] + r * gh[:, 2 * H:]).tanh()
    return (1 - z) * n + z * h


def _values_and_grads(fn, arrays, upstream):
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    y.backward(Tensor(upstream))
    return [y.numpy()] + [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("B,I,H", [(1, 1, 1), (4, 3, 5), (2, 7, 3)])
def test_fused_gru_cell_matches_primitives(B, I, H):
    rng = np.random.default_rng(B + I + H)
    arrays = [rng.standard_normal(s) * 2 for s in
              ((B, I), (B, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,))]
    up = rng.standard_normal((B, H))
    fused = _values_and_grads(ops_rnn.GRUCell.apply, arrays, up)
    composed = _values_and_grads(gru_cell_primitives, arrays, up)
    for a, b in zip(fused, composed):
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [4, 1, 3]])
def test_fused_gru_layer_matches_unrolled_primitives(reverse, lengths):
    rng = np.random.default_rng(0)
    T, B, I, H = 4, 3, 2, 3
    arrays = [rng.standard_normal(s) for s in
              ((T, B, I), (B, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,))]
    up = rng.standard_normal((T + 1, B, H))
    lens = None if lengths is None else np.array(lengths)

    def unrolled(x, h, *w):
        outs = [None] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            h_new = gru_cell_primitives(x[t], h, *w)
            m = np.ones((B, 1)) if lens is None else (t < lens)[:, None].astype(float)
            outs[t] = h_new * m
            h = h_new * m + h * (1 - m)
        return stack(outs + [h])                                            # (T+1, B, H)

    fused = _values_and_grads(
        lambda *a: ops_rnn.GRULayer.apply(*a, lengths=lens, reverse=reverse), arrays, up)
    composed = _values_and_grads(unrolled, arrays, up)
    for a, b in zip(fused, composed):
        np.testing.assert_allclose(a, b, atol=1e-12)
