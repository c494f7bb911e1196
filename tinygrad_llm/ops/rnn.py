r"""Fused recurrent ops: one step of an RNN, LSTM or GRU cell, and a whole layer (one direction,
all T steps) with backpropagation through time (BPTT) written out by hand.

Dimension letters: T time steps, B batch, I input features, H hidden units, G = gates * H. The
code's convention is torch's, in row vectors: a gate pre-activation is ``x W_ih^T + b_ih +
h W_hh^T + b_hh``, with the gates stacked along the last axis in torch's order (LSTM i, f, g, o;
GRU r, z, n). LSTM letters: a_i a_f a_g a_o are the pre-activations, stacked in ``a`` (B, 4H);
i f g o the gates after their nonlinearities, stacked in ``ifgo`` (B, 4H).

Why fused: composed of primitives, one LSTM step is ~15 Functions, each with its own temporaries
and graph node. Here one step is a handful of NumPy calls, and a whole layer is ONE graph node:

* forward does the input projection of every step in one GEMM, ``gx = X W_ih^T + b`` over all
  T*B rows, then per step only ``h W_hh^T`` (B, H)(H, G) and the pointwise cell;
* backward walks the steps in reverse, per step one GEMM ``da W_hh`` for the gradient of the
  previous state, then forms dX, dW_ih, dW_hh and the biases as single GEMMs (sums) over all
  T*B rows.

Several outputs, several gradients: a layer returns ``(out, h_n)`` (LSTM ``(out, h_n, c_n)``) and
its backward takes ``(dout, dh_n)`` (``(dout, dh_n, dc_n)``), each None when nothing used that
output; a missing gradient is skipped, never filled with zeros. The LSTM cell returns
``(h_new, c_new)`` the same way.

Variable lengths: ``lengths`` (B,) makes step t of sequence b a padding step when
``t >= lengths[b]``. A padding step keeps the state (``h_t = h_{t-1}``), outputs zeros, and gets
no gradient through the cell. Running the reverse direction from t = T-1 down to 0 with the same
rule starts each sequence at its own last valid step, as torch's packed sequences do.

The BPTT derivations are in docs/rnn.md. Each Function's readable twin is a cell in
tinygrad_llm/reference.py (``rnn_cell``, ``lstm_cell``, ``gru_cell``), which the layers run step
by step with ``fused=False``; tests/test_rnn.py, test_lstm.py and test_gru.py hold the two equal
and check each Function by finite differences.
"""

from tinygrad_llm import backend
from tinygrad_llm.autograd import Function

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNNLayer", "LSTMLayer", "GRULayer"]


def _sigmoid(x, out=None):
    r"""sigma(x) = 1 / (1 + e^{-x}) = (1 + tanh(x / 2)) / 2: no overflow, three in-place passes."""
    xp = backend.get_xp(x)
    sigma = xp.multiply(x, 0.5, out=out)                                    # x / 2
    xp.tanh(sigma, out=sigma)                                               # tanh(x / 2)
    sigma += 1                                                              # 1 + tanh(x / 2)
    sigma *= 0.5                                                            # sigma(x)
    return sigma


def _gemm_t(a, w, b=None):
    """a W^T (+ b) with a (N, I), W (G, I): a linear map of every row (N, G)."""
    y = a @ w.T
    if b is not None:
        y += b
    return y


def _mask(lengths, T, x):
    """(T, B, 1) booleans, True where step t of sequence b is a real step (t < lengths[b])."""
    if lengths is None:
        return None
    xp = backend.get_xp(x)
    return (xp.arange(T)[:, None] < lengths[None, :])[:, :, None]


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _grad_into_h(dout, t, dh):
    r"""dh_t = dout_t + dh: h_t is the output at step t and the state that step t+1 (or h_n)
    reads. ``dout`` (T, B, H) or ``dh`` (B, H) is None when no gradient came that way."""
    if dout is None:
        return dh
    if dh is None:
        return dout[t]
    return dout[t] + dh


def _pass_padding(dstate, mask_t, dstate_prev):
    r"""Add what a padding step hands back unchanged: state_t = m state_new + (1 - m) state_{t-1}
    gives dstate_{t-1} += (1 - m) dstate_t (``dstate`` None: nothing to hand back)."""
    if dstate is not None:
        dstate_prev += backend.get_xp(dstate).where(mask_t, 0, dstate)
    return dstate_prev


# ---- the Elman RNN -----------------------------------------------------------------------------

def _rnn_act(a, nonlinearity):
    """h = tanh(a) or relu(a), written into a's memory (the caller does not read a again)."""
    xp = backend.get_xp(a)
    if nonlinearity == "tanh":
        return xp.tanh(a, out=a)
    return xp.maximum(a, 0, out=a)


def _rnn_act_backward(dh, h, nonlinearity):
    """da = dh * f'(a), written with the output h: tanh' = 1 - h^2, relu' = [h > 0]."""
    if nonlinearity == "tanh":
        return dh * (1 - h * h)
    return dh * (h > 0)


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")


class RNNCell(Function):
    r"""One Elman RNN step, x (B, I), h (B, H) -> h_new (B, H):

        a = x W_ih^T + b_ih + h W_hh^T + b_hh,      h_new = f(a),   f = tanh or relu

    Backward, with da = dh_new * f'(a) (tanh' = 1 - h_new^2, relu' = [h_new > 0]):

        dx = da W_ih,   dh = da W_hh,   dW_ih = da^T x,   dW_hh = da^T h,   db_ih = db_hh = sum da

    Reference: tinygrad_llm.reference.rnn_cell
    """

    def forward(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
        _check_nonlinearity(nonlinearity)
        a = _gemm_t(x, w_ih, b_ih) + _gemm_t(h, w_hh, b_hh)                # (B, H)
        self.h_new = _rnn_act(a, nonlinearity)      # saved: f' is written with the output
        self.x, self.h, self.w_ih, self.w_hh, self.nonlinearity = x, h, w_ih, w_hh, nonlinearity
        return self.h_new

    def backward(self, dh_new):
        need = self.needs_input_grad
        da = _rnn_act_backward(dh_new, self.h_new, self.nonlinearity)      # (B, H)
        return _input_grads(da, self.x, self.h, self.w_ih, self.w_hh, need)


def _input_grads(da, x, h, w_ih, w_hh, need, da_hh=None):
    r"""The linear part of a cell's backward: a = x W_ih^T + b_ih + h W_hh^T + b_hh, so

        dx = da W_ih,  dh = da W_hh,  dW_ih = da^T x,  dW_hh = da^T h,
        db_ih = db_hh = sum over rows of da.

    (The GRU passes a different ``da_hh`` for the h-side: its n gate scales h W_hn^T by r.)
    Returns one gradient per input: x, h, w_ih, w_hh, and b_ih, b_hh if they were passed.
    """
    dah = da if da_hh is None else da_hh
    dx = da @ w_ih if need[0] else None                                     # (B, I)
    dh = dah @ w_hh if need[1] else None                                    # (B, H)
    dw_ih = da.T @ x if need[2] else None                                   # (G, I)
    dw_hh = dah.T @ h if need[3] else None                                  # (G, H)
    db_ih = da.sum(axis=0) if len(need) > 4 and need[4] else None           # (G,)
    db_hh = dah.sum(axis=0) if len(need) > 5 and need[5] else None          # (G,)
    return (dx, dh, dw_ih, dw_hh, db_ih, db_hh)[:len(need)]


class RNNLayer(Function):
    r"""An Elman RNN over a whole sequence, one direction: x (T, B, I), h0 (B, H) -> out
    (T, B, H), the states h_1..h_T, and h_n (B, H), the final state.

    Forward (gx holds every step's input projection, one GEMM):

        gx = x W_ih^T + b_ih + b_hh                                   (T, B, H)
        a_t = gx_t + h_{t-1} W_hh^T,    h_t = f(a_t),    out_t = h_t     t = 1..T

    Backward through time, from dh_T = dout_T + dh_n, for t = T..1 (docs/rnn.md):

        da_t = dh_t * f'(a_t),     dh_{t-1} = dout_{t-1} + da_t W_hh
        dx = da W_ih,  dW_ih = da^T x,  dW_hh = sum_t da_t^T h_{t-1},  db_ih = db_hh = sum da

    ``dout`` or ``dh_n`` is None when that output was not used. The same layer step by step
    from the reference cell: ``nn.RNN(..., fused=False)``.

    Reference: tinygrad_llm.reference.rnn_cell
    """

    def forward(self, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                lengths=None, reverse=False):
        _check_nonlinearity(nonlinearity)
        xp = backend.get_xp(x)
        T, B, I = x.shape
        H = w_hh.shape[0]
        b = b_ih + b_hh if b_ih is not None else None
        gx = _gemm_t(x.reshape(T * B, I), w_ih, b).reshape(T, B, H)         # (T, B, H)
        mask = _mask(lengths, T, x)                                         # (T, B, 1)
        out = xp.empty((T, B, H), dtype=gx.dtype)                           # out_t
        f_a = xp.empty((T, B, H), dtype=gx.dtype)                           # saved: f(a_t)
        h_prev = xp.empty((T, B, H), dtype=gx.dtype)                        # saved: h_{t-1}
        h = h0
        for t in _steps(T, reverse):
            h_prev[t] = h
            a = gx[t] + h @ w_hh.T                                          # (B, H) a_t
            h_new = _rnn_act(a, nonlinearity)                               # (B, H) f(a_t)
            f_a[t] = h_new
            if mask is None:
                out[t] = h = h_new
            else:  # a padding step keeps the state and outputs 0
                out[t] = xp.where(mask[t], h_new, 0)
                h = xp.where(mask[t], h_new, h)
        self.x, self.f_a, self.h_prev, self.mask = x, f_a, h_prev, mask     # saved for BPTT
        self.w_ih, self.w_hh, self.nonlinearity, self.reverse = w_ih, w_hh, nonlinearity, reverse
        return out, h

    def backward(self, dout, dh_n):
        x, f_a, mask, w_hh = self.x, self.f_a, self.mask, self.w_hh
        xp = backend.get_xp(x)
        T, B, I = x.shape
        H = w_hh.shape[0]
        da = xp.empty((T, B, H), dtype=x.dtype)                             # dL/da_t
        dh = dh_n            # what reaches h_t from step t+1 (from h_n at the last step)
        for t in _steps(T, not self.reverse):
            dh_t = _grad_into_h(dout, t, dh)                                # (B, H)
            if mask is None:
                # h_t = f(a_t), a_t = gx_t + h_{t-1} W_hh^T
                da[t] = _rnn_act_backward(dh_t, f_a[t], self.nonlinearity)
                dh = da[t] @ w_hh                                           # (B, H)
            else:
                # h_t = m f(a_t) + (1 - m) h_{t-1},  out_t = m f(a_t)
                da[t] = _rnn_act_backward(xp.where(mask[t], dh_t, 0), f_a[t], self.nonlinearity)
                dh = _pass_padding(dh, mask[t], da[t] @ w_hh)               # (B, H)
        return _sequence_grads(da, dh, x, self.h_prev, self.w_ih, self.needs_input_grad,
                               n_state=1)


def _sequence_grads(da, dh0, x, h_prev, w_ih, need, n_state, dc0=None, da_hh=None):
    r"""The GEMMs that close a layer's backward, each over all T*B rows at once:

        dx = da W_ih,   dW_ih = da^T x,   dW_hh = sum_t da_hh,t^T h_{t-1},
        db_ih = sum da,  db_hh = sum da_hh     (da_hh = da except in the GRU)

    Returns one gradient per forward input: x, h0 (, c0), w_ih, w_hh (, b_ih, b_hh).
    """
    T, B, I = x.shape
    G = da.shape[-1]
    da2 = da.reshape(T * B, G)                                              # (T*B, G)
    dah2 = da2 if da_hh is None else da_hh.reshape(T * B, G)                # (T*B, G)
    k = 1 + n_state                  # index of w_ih among the inputs
    dx = (da2 @ w_ih).reshape(T, B, I) if need[0] else None                 # (T, B, I)
    dw_ih = da2.T @ x.reshape(T * B, I) if need[k] else None                # (G, I)
    dw_hh = dah2.T @ h_prev.reshape(T * B, -1) if need[k + 1] else None     # (G, H)
    db_ih = da2.sum(axis=0) if len(need) > k + 2 and need[k + 2] else None  # (G,)
    db_hh = dah2.sum(axis=0) if len(need) > k + 3 and need[k + 3] else None  # (G,)
    states = (dh0,) if n_state == 1 else (dh0, dc0)
    return (dx, *states, dw_ih, dw_hh, db_ih, db_hh)[:len(need)]


# ---- the LSTM ---------------------------------------------------------------------------------

def _lstm_pointwise(a, c_prev, ifgo, tanh_c):
    r"""The LSTM cell after its matmuls. a (B, 4H) holds the pre-activations [a_i a_f a_g a_o]:

        i, f, o = sigma(a_i, a_f, a_o),   g = tanh(a_g)                       -> ifgo (B, 4H)
        c = f * c_prev + i * g,   tanh_c = tanh(c),   h = o * tanh_c

    ``ifgo`` and ``tanh_c`` are the caller's buffers (saved for backward); returns h, c.
    """
    xp = backend.get_xp(a)
    H = c_prev.shape[-1]
    _sigmoid(a[:, :2 * H], out=ifgo[:, :2 * H])                             # i, f
    xp.tanh(a[:, 2 * H:3 * H], out=ifgo[:, 2 * H:3 * H])                    # g
    _sigmoid(a[:, 3 * H:], out=ifgo[:, 3 * H:])                             # o
    i, f, g, o = ifgo[:, :H], ifgo[:, H:2 * H], ifgo[:, 2 * H:3 * H], ifgo[:, 3 * H:]
    c = f * c_prev                                                          # (B, H)
    c += i * g                                                              # c = f c_prev + i g
    xp.tanh(c, out=tanh_c)
    return o * tanh_c, c


def _lstm_pointwise_backward(dh, dc, ifgo, c_prev, tanh_c, da):
    r"""Backward of ``_lstm_pointwise`` at step t. dh = dL/dh_t; dc = dL/dc_t along the cell
    path only (from step t+1, or from c_n): c_t reaches the loss through h_t too, and the first
    line adds that. Either may be None (no gradient came that way), not both.

        h_t = o * tanh(c_t)          =>  do = dh * tanh(c_t),
                                         dc_total = dc + dh * o * (1 - tanh^2 c_t)
        c_t = f * c_{t-1} + i * g    =>  di = dc_total * g,   df = dc_total * c_{t-1},
                                         dg = dc_total * i,   dc_{t-1} = f * dc_total
        i, f, o = sigma(a_i, a_f, a_o), g = tanh(a_g)
                                     =>  da_i = di i (1 - i),   da_f = df f (1 - f),
                                         da_g = dg (1 - g^2),   da_o = do o (1 - o)

    so the carry is dc_{t-1} = f_t (dc_t + dh_t o_t (1 - tanh^2 c_t)). Writes da (B, 4H) =
    [da_i da_f da_g da_o] into the caller's buffer; returns dc_{t-1} (B, H).
    """
    H = tanh_c.shape[-1]
    i, f, g, o = ifgo[:, :H], ifgo[:, H:2 * H], ifgo[:, 2 * H:3 * H], ifgo[:, 3 * H:]
    if dh is None:                  # only the cell path: h_t was not used
        dc_total = dc
        da[:, 3 * H:] = 0                                                   # da_o
    else:
        dc_total = dh * o * (1 - tanh_c * tanh_c)                           # (B, H)
        if dc is not None:
            dc_total = dc + dc_total
        da[:, 3 * H:] = dh * tanh_c * o * (1 - o)                           # da_o
    da[:, :H] = dc_total * g * i * (1 - i)                                  # da_i
    da[:, H:2 * H] = dc_total * c_prev * f * (1 - f)                        # da_f
    da[:, 2 * H:3 * H] = dc_total * i * (1 - g * g)                         # da_g
    return dc_total * f                                                     # dc_{t-1}


class LSTMCell(Function):
    r"""One LSTM step, x (B, I), h (B, H), c (B, H) -> h_new (B, H), c_new (B, H):

        a = x W_ih^T + b_ih + h W_hh^T + b_hh                 (B, 4H) = [a_i a_f a_g a_o]
        i, f, o = sigma(a_i, a_f, a_o),  g = tanh(a_g)
        c_new = f * c + i * g,   h_new = o * tanh(c_new)

    Backward from dh_new and dc_new (either None when unused): da from
    ``_lstm_pointwise_backward``, which also gives dc = f (dc_new + dh_new o (1 - tanh^2 c_new));
    then dx = da W_ih, dh = da W_hh, dW_ih = da^T x, dW_hh = da^T h, db_ih = db_hh = sum da.

    Reference: tinygrad_llm.reference.lstm_cell
    """

    def forward(self, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
        xp = backend.get_xp(x)
        a = _gemm_t(x, w_ih, b_ih) + _gemm_t(h, w_hh, b_hh)                 # (B, 4H)
        self.ifgo = xp.empty_like(a)                                        # saved: i f g o
        self.tanh_c = xp.empty_like(c)                                      # saved: tanh(c_new)
        h_new, c_new = _lstm_pointwise(a, c, self.ifgo, self.tanh_c)
        self.x, self.h, self.c, self.w_ih, self.w_hh = x, h, c, w_ih, w_hh
        return h_new, c_new

    def backward(self, dh_new, dc_new):
        xp = backend.get_xp(self.ifgo)
        da = xp.empty_like(self.ifgo)                                       # (B, 4H)
        dc = _lstm_pointwise_backward(dh_new, dc_new, self.ifgo, self.c, self.tanh_c, da)
        need = self.needs_input_grad
        dx, dh, *dweights = _input_grads(da, self.x, self.h, self.w_ih, self.w_hh,
                                         need[:2] + need[3:])               # all inputs but c
        return (dx, dh, dc if need[2] else None, *dweights)


class LSTMLayer(Function):
    r"""An LSTM over a whole sequence, one direction: x (T, B, I), h0, c0 (B, H) -> out
    (T, B, H), the states h_1..h_T, and the final states h_n, c_n (B, H).

    Forward (one GEMM for every step's input projection, then the recurrence):

        gx = x W_ih^T + b_ih + b_hh                                   (T, B, 4H)
        a_t = gx_t + h_{t-1} W_hh^T = [a_i a_f a_g a_o]_t
        i_t, f_t, o_t = sigma(a_i, a_f, a_o)_t,   g_t = tanh(a_g)_t
        c_t = f_t * c_{t-1} + i_t * g_t,    h_t = o_t * tanh(c_t),    out_t = h_t

    Backward through time, from dh_T = dout_T + dh_n and dc_T = dc_n, for t = T..1 (docs/rnn.md):

        da_t, dc_{t-1} = cell backward of (dh_t, dc_t)      (``_lstm_pointwise_backward``)
        dc_{t-1} = f_t (dc_t + dh_t o_t (1 - tanh^2 c_t))
        dh_{t-1} = dout_{t-1} + da_t W_hh
        dx = da W_ih,  dW_ih = da^T x,  dW_hh = sum_t da_t^T h_{t-1},  db_ih = db_hh = sum da

    The carry dc_{t-1} = f_t (...) has no matrix and no squashing derivative between dc_t and
    dc_{t-1}: that is why gradients survive long distances (docs/rnn.md, "vanishing
    gradients"). ``dout``, ``dh_n`` or ``dc_n`` is None when that output was not used. The same
    layer step by step from the reference cell: ``nn.LSTM(..., fused=False)``.

    Reference: tinygrad_llm.reference.lstm_cell
    """

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
        xp = backend.get_xp(x)
        T, B, I = x.shape
        H = w_hh.shape[1]
        b = b_ih + b_hh if b_ih is not None else None
        gx = _gemm_t(x.reshape(T * B, I), w_ih, b).reshape(T, B, 4 * H)     # (T, B, 4H)
        mask = _mask(lengths, T, x)                                         # (T, B, 1)
        dtype = gx.dtype
        out = xp.empty((T, B, H), dtype=dtype)                              # out_t
        ifgo = xp.empty((T, B, 4 * H), dtype=dtype)                         # saved: i f g o
        tanh_c = xp.empty((T, B, H), dtype=dtype)                           # saved: tanh(c_t)
        h_prev = xp.empty((T, B, H), dtype=dtype)                           # saved: for dW_hh
        c_prev = xp.empty((T, B, H), dtype=dtype)                           # saved: for da_f
        w_hh_t = w_hh.T                                                     # (H, 4H)
        h, c = h0, c0
        for t in _steps(T, reverse):
            h_prev[t], c_prev[t] = h, c
            a = h @ w_hh_t                                                  # (B, 4H)
            a += gx[t]                                                      # a_t = gx_t + h W_hh^T
            h_new, c_new = _lstm_pointwise(a, c, ifgo[t], tanh_c[t])
            if mask is None:
                out[t] = h = h_new
                c = c_new
            else:  # a padding step keeps (h, c) and outputs 0
                out[t] = xp.where(mask[t], h_new, 0)
                h = xp.where(mask[t], h_new, h)
                c = xp.where(mask[t], c_new, c)
        self.x, self.ifgo, self.tanh_c, self.h_prev, self.c_prev = x, ifgo, tanh_c, h_prev, c_prev
        self.mask, self.w_ih, self.w_hh, self.reverse = mask, w_ih, w_hh, reverse
        return out, h, c

    def backward(self, dout, dh_n, dc_n):
        x, ifgo, tanh_c, c_prev, mask, w_hh = (self.x, self.ifgo, self.tanh_c, self.c_prev,
                                               self.mask, self.w_hh)
        xp = backend.get_xp(x)
        T = x.shape[0]
        da = xp.empty_like(ifgo)                                            # (T, B, 4H)
        # What reaches h_t and c_t from step t+1 (from h_n and c_n at the last step); the loop
        # turns them into dh_{t-1} and dc_{t-1}.
        dh, dc = dh_n, dc_n
        for t in _steps(T, not self.reverse):
            dh_t = _grad_into_h(dout, t, dh)                                # (B, H) or None
            if mask is None:
                dc = _lstm_pointwise_backward(dh_t, dc, ifgo[t], c_prev[t], tanh_c[t], da[t])
                dh = da[t] @ w_hh                                           # (B, H)
            else:
                # (h_t, c_t) = m (h_new, c_new) + (1 - m) (h_{t-1}, c_{t-1}),  out_t = m h_new
                dh_new = None if dh_t is None else xp.where(mask[t], dh_t, 0)
                dc_new = None if dc is None else xp.where(mask[t], dc, 0)
                dc_cell = _lstm_pointwise_backward(dh_new, dc_new, ifgo[t], c_prev[t],
                                                   tanh_c[t], da[t])
                dh = _pass_padding(dh, mask[t], da[t] @ w_hh)               # (B, H)
                dc = _pass_padding(dc, mask[t], dc_cell)                    # (B, H)
        return _sequence_grads(da, dh, x, self.h_prev, self.w_ih, self.needs_input_grad,
                               n_state=2, dc0=dc)


# ---- the GRU ----------------------------------------------------------------------------------

def _gru_pointwise(gx, gh, h_prev, rzn):
    r"""The GRU cell after its matmuls, gx = x W_ih^T + b_ih and gh = h_prev W_hh^T + b_hh, both
    (B, 3H) = [r z n] parts (torch's formula: r scales the whole h-side of n, bias included):

        r = sigma(gx_r + gh_r),  z = sigma(gx_z + gh_z),  n = tanh(gx_n + r * gh_n)
        h = (1 - z) * n + z * h_prev = n + z * (h_prev - n)

    Writes [r z n] into ``rzn`` (B, 3H), the caller's saved buffer; returns h (B, H).
    """
    xp = backend.get_xp(gx)
    H = h_prev.shape[-1]
    _sigmoid(gx[:, :2 * H] + gh[:, :2 * H], out=rzn[:, :2 * H])             # r, z
    r, z, n = rzn[:, :H], rzn[:, H:2 * H], rzn[:, 2 * H:]
    xp.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:], out=n)                       # n
    return n + z * (h_prev - n)


def _gru_pointwise_backward(dh, rzn, gh_n, h_prev, dgx, dgh):
    r"""Backward of ``_gru_pointwise`` from dh = dL/dh:

        h = n + z * (h_prev - n)     =>  dn = dh * (1 - z),  dz = dh * (h_prev - n),
                                         dh_prev (direct) = dh * z
        n = tanh(a_n), a_n = gx_n + r * gh_n  =>  da_n = dn * (1 - n^2):
                                         dgx_n = da_n,  dgh_n = da_n * r,  dr = da_n * gh_n
        r, z = sigma(.)              =>  dgx_r = dgh_r = dr r(1-r),  dgx_z = dgh_z = dz z(1-z)

    Writes dgx and dgh (B, 3H) into the caller's buffers; returns the direct dh_prev (B, H).
    """
    H = dh.shape[-1]
    r, z, n = rzn[:, :H], rzn[:, H:2 * H], rzn[:, 2 * H:]
    da_n = dh * (1 - z) * (1 - n * n)                                       # (B, H)
    dgx[:, :H] = da_n * gh_n * r * (1 - r)                                  # d(gx_r), = d(gh_r)
    dgx[:, H:2 * H] = dh * (h_prev - n) * z * (1 - z)                       # d(gx_z), = d(gh_z)
    dgx[:, 2 * H:] = da_n
    dgh[:, :2 * H] = dgx[:, :2 * H]
    dgh[:, 2 * H:] = da_n * r
    return dh * z


class GRUCell(Function):
    r"""One GRU step, x (B, I), h (B, H) -> h_new (B, H) (torch's formula, gates [r z n]):

        gx = x W_ih^T + b_ih,   gh = h W_hh^T + b_hh                     (B, 3H)
        r = sigma(gx_r + gh_r),  z = sigma(gx_z + gh_z),  n = tanh(gx_n + r * gh_n)
        h_new = (1 - z) * n + z * h

    Backward: dgx, dgh from ``_gru_pointwise_backward``, then dx = dgx W_ih,
    dh = dh_new * z + dgh W_hh, dW_ih = dgx^T x, dW_hh = dgh^T h, db_ih = sum dgx, db_hh = sum dgh.

    Reference: tinygrad_llm.reference.gru_cell
    """

    def forward(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None):
        xp = backend.get_xp(x)
        gx = _gemm_t(x, w_ih, b_ih)                                         # (B, 3H)
        gh = _gemm_t(h, w_hh, b_hh)                                         # (B, 3H)
        H = h.shape[-1]
        self.rzn = xp.empty_like(gx)                                        # saved: r z n
        self.gh_n = gh[:, 2 * H:]                                           # saved: for dr
        self.x, self.h, self.w_ih, self.w_hh = x, h, w_ih, w_hh
        return _gru_pointwise(gx, gh, h, self.rzn)

    def backward(self, dh_new):
        xp = backend.get_xp(dh_new)
        dgx, dgh = xp.empty_like(self.rzn), xp.empty_like(self.rzn)         # (B, 3H)
        dh_direct = _gru_pointwise_backward(dh_new, self.rzn, self.gh_n, self.h, dgx, dgh)
        dx, dh_gates, *dweights = _input_grads(
            dgx, self.x, self.h, self.w_ih, self.w_hh, self.needs_input_grad, da_hh=dgh)
        dh = None if dh_gates is None else dh_gates + dh_direct             # (B, H)
        return (dx, dh, *dweights)


class GRULayer(Function):
    r"""A GRU over a whole sequence, one direction: x (T, B, I), h0 (B, H) -> out (T, B, H), the
    states h_1..h_T, and h_n (B, H), the final state.

    Forward: gx = x W_ih^T + b_ih for all steps in one GEMM (T, B, 3H); then per step
    gh_t = h_{t-1} W_hh^T + b_hh and the cell of ``_gru_pointwise``.

    Backward through time, from dh_T = dout_T + dh_n, for t = T..1:

        dgx_t, dgh_t, dh_direct = cell backward of dh_t
        dh_{t-1} = dout_{t-1} + dh_direct + dgh_t W_hh
        dx = dgx W_ih,  dW_ih = dgx^T x,  dW_hh = sum_t dgh_t^T h_{t-1},
        db_ih = sum dgx,  db_hh = sum dgh

    ``dout`` or ``dh_n`` is None when that output was not used. The same layer step by step
    from the reference cell: ``nn.GRU(..., fused=False)``.

    Reference: tinygrad_llm.reference.gru_cell
    """

    def forward(self, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
        xp = backend.get_xp(x)
        T, B, I = x.shape
        H = w_hh.shape[1]
        gx = _gemm_t(x.reshape(T * B, I), w_ih, b_ih).reshape(T, B, 3 * H)  # (T, B, 3H)
        mask = _mask(lengths, T, x)                                         # (T, B, 1)
        dtype = gx.dtype
        out = xp.empty((T, B, H), dtype=dtype)                              # out_t
        rzn = xp.empty((T, B, 3 * H), dtype=dtype)                          # saved: r z n
        gh_n = xp.empty((T, B, H), dtype=dtype)                             # saved: for dr
        h_prev = xp.empty((T, B, H), dtype=dtype)                           # saved: for dz, dW_hh
        h = h0
        for t in _steps(T, reverse):
            h_prev[t] = h
            gh = _gemm_t(h, w_hh, b_hh)                                     # (B, 3H)
            gh_n[t] = gh[:, 2 * H:]
            h_new = _gru_pointwise(gx[t], gh, h, rzn[t])                    # (B, H)
            if mask is None:
                out[t] = h = h_new
            else:  # a padding step keeps the state and outputs 0
                out[t] = xp.where(mask[t], h_new, 0)
                h = xp.where(mask[t], h_new, h)
        self.x, self.rzn, self.gh_n, self.h_prev, self.mask = x, rzn, gh_n, h_prev, mask
        self.w_ih, self.w_hh, self.reverse = w_ih, w_hh, reverse
        return out, h

    def backward(self, dout, dh_n):
        x, rzn, gh_n, h_prev, mask, w_hh = (self.x, self.rzn, self.gh_n, self.h_prev, self.mask,
                                            self.w_hh)
        xp = backend.get_xp(x)
        T = x.shape[0]
        dgx, dgh = xp.empty_like(rzn), xp.empty_like(rzn)                   # (T, B, 3H)
        dh = dh_n            # what reaches h_t from step t+1 (from h_n at the last step)
        for t in _steps(T, not self.reverse):
            dh_t = _grad_into_h(dout, t, dh)                                # (B, H)
            if mask is None:
                dh_direct = _gru_pointwise_backward(dh_t, rzn[t], gh_n[t], h_prev[t],
                                                    dgx[t], dgh[t])
                dh = dgh[t] @ w_hh + dh_direct                              # (B, H)
            else:
                # h_t = m h_new + (1 - m) h_{t-1},  out_t = m h_new
                dh_direct = _gru_pointwise_backward(xp.where(mask[t], dh_t, 0), rzn[t],
                                                    gh_n[t], h_prev[t], dgx[t], dgh[t])
                dh = _pass_padding(dh, mask[t], dgh[t] @ w_hh + dh_direct)  # (B, H)
        return _sequence_grads(dgx, dh, x, h_prev, self.w_ih, self.needs_input_grad,
                               n_state=1, da_hh=dgh)
