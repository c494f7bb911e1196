r"""Fused recurrent ops: one step of an RNN, LSTM or GRU cell, and a whole layer (one direction,
all T steps) with backpropagation through time (BPTT) written out by hand.

Dimension letters: T time steps, B batch, I input features, H hidden units. The code's
convention is torch's, in row vectors: a gate pre-activation is ``x W_ih^T + b_ih + h W_hh^T +
b_hh``, with the gates stacked along the last axis in torch's order (LSTM i, f, g, o; GRU r, z, n).

Why fused: composed of primitives, one LSTM step is ~15 Functions, each with its own temporaries
and graph node. Here one step is a handful of NumPy calls, and a whole layer is ONE graph node:

* forward does the input projection of every step in one GEMM, ``gx = X W_ih^T + b`` over all
  T*B rows, then per step only ``h W_hh^T`` (B, H)(H, G) and the pointwise cell;
* backward walks the steps in reverse, per step one GEMM ``dgates W_hh`` for ``dh_prev``, and
  then forms dX, dW_ih, dW_hh and the biases as single GEMMs (sums) over all T*B rows.

A Function returns one array, so a layer packs its outputs along time: ``Y[:T]`` is the output
sequence, ``Y[T]`` the final hidden state h_n and (LSTM) ``Y[T+1]`` the final cell state c_n.
The layers in tinygrad_llm/nn/ slice them apart (views; their backward scatters the slices
back). A cell packs ``[h, c]`` the same way, as (2, B, H).

Variable lengths: ``lengths`` (B,) makes step t of sequence b a padding step when
``t >= lengths[b]``. A padding step keeps the state (``h_t = h_{t-1}``), outputs zeros, and gets
no gradient through the cell. Running the reverse direction from t = T-1 down to 0 with the same
rule starts each sequence at its own last valid step, as torch's packed sequences do.

The BPTT derivations are in docs/rnn.md. Each Function is checked by finite differences and
against the same cell composed of primitives in tests/test_rnn.py, test_lstm.py, test_gru.py.
"""

from tinygrad_llm import backend
from tinygrad_llm.autograd import Function

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNNLayer", "LSTMLayer", "GRULayer"]


def _sigmoid(x, out=None):
    r"""sigma(x) = 1 / (1 + e^{-x}) = (1 + tanh(x / 2)) / 2: no overflow, three in-place passes."""
    xp = backend.get_xp(x)
    y = xp.multiply(x, 0.5, out=out)
    xp.tanh(y, out=y)
    y += 1
    y *= 0.5
    return y


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


# ---- the Elman RNN -----------------------------------------------------------------------------

def _rnn_act(a, nonlinearity):
    """h = tanh(a) or relu(a), in place on the pre-activation a."""
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


def _input_grads(dgates, x, h, w_ih, w_hh, need, dgates_hh=None):
    r"""The linear part of a cell's backward: gates = x W_ih^T + b_ih + h W_hh^T + b_hh, so

        dx = dgates W_ih,  dh = dgates W_hh,  dW_ih = dgates^T x,  dW_hh = dgates^T h,
        db_ih = db_hh = sum over rows of dgates.

    (The GRU passes a different ``dgates_hh`` for the h-side: its n gate scales h W_hn^T by r.)
    """
    dgh = dgates if dgates_hh is None else dgates_hh
    dx = dgates @ w_ih if need[0] else None                                 # (B, I)
    dh = dgh @ w_hh if need[1] else None                                    # (B, H)
    dw_ih = dgates.T @ x if need[2] else None                               # (G, I)
    dw_hh = dgh.T @ h if need[3] else None                                  # (G, H)
    db_ih = dgates.sum(axis=0) if len(need) > 4 and need[4] else None       # (G,)
    db_hh = dgh.sum(axis=0) if len(need) > 5 and need[5] else None          # (G,)
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


class RNNLayer(Function):
    r"""An Elman RNN over a whole sequence, one direction: x (T, B, I), h0 (B, H) -> Y (T+1, B, H)
    with Y[:T] the outputs h_1..h_T and Y[T] the final state h_n.

    Forward (gx holds every step's input projection, one GEMM):

        gx = x W_ih^T + b_ih + b_hh                                   (T, B, H)
        h_t = f(gx_t + h_{t-1} W_hh^T)                                  t = 1..T

    Backward through time, from dh_T = dY[T] and t = T..1 (docs/rnn.md):

        da_t = (dY_t + dh_t) * f'(a_t),     dh_{t-1} = da_t W_hh
        dx = da W_ih,  dW_ih = da^T x,  dW_hh = sum_t da_t^T h_{t-1},  db_ih = db_hh = sum da
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
        y = xp.empty((T + 1, B, H), dtype=gx.dtype)                         # outputs, then h_n
        hs = xp.empty((T, B, H), dtype=gx.dtype)                            # each step's f(a)
        h_prev = xp.empty((T, B, H), dtype=gx.dtype)                        # state entering t
        h = h0
        for t in _steps(T, reverse):
            h_prev[t] = h
            a = gx[t] + h @ w_hh.T                                          # (B, H)
            hs[t] = _rnn_act(a, nonlinearity)
            if mask is None:
                y[t] = h = hs[t]
            else:  # a padding step keeps the state and outputs 0
                y[t] = xp.where(mask[t], hs[t], 0)
                h = xp.where(mask[t], hs[t], h)
        y[T] = h
        self.x, self.hs, self.h_prev, self.mask = x, hs, h_prev, mask      # saved for BPTT
        self.w_ih, self.w_hh, self.nonlinearity, self.reverse = w_ih, w_hh, nonlinearity, reverse
        return y

    def backward(self, dy):
        xp = backend.get_xp(dy)
        x, hs, mask, w_hh = self.x, self.hs, self.mask, self.w_hh
        T, B, I = x.shape
        H = w_hh.shape[0]
        da = xp.empty((T, B, H), dtype=dy.dtype)                            # dL/da_t
        dh = dy[T]                                                          # dL/dh_n
        for t in _steps(T, not self.reverse):
            if mask is None:
                # h_t = f(a_t) feeds the output y_t and the next step
                da[t] = _rnn_act_backward(dy[t] + dh, hs[t], self.nonlinearity)
                dh = da[t] @ w_hh                                           # h_{t-1} W_hh^T
            else:
                # h_t = m f(a_t) + (1 - m) h_{t-1},  y_t = m f(a_t)
                dh_new = xp.where(mask[t], dy[t] + dh, 0)
                da[t] = _rnn_act_backward(dh_new, hs[t], self.nonlinearity)
                dh = da[t] @ w_hh + xp.where(mask[t], 0, dh)
        return _sequence_grads(da, dh, x, self.h_prev, self.w_ih, self.needs_input_grad,
                               n_state=1)


def _sequence_grads(dgates, dh0, x, h_prev, w_ih, need, n_state, dc0=None, dgates_hh=None):
    r"""The GEMMs that close a layer's backward, each over all T*B rows at once:

        dx = dgates W_ih,   dW_ih = dgates^T x,   dW_hh = sum_t dgates_hh,t^T h_{t-1},
        db_ih = sum dgates,  db_hh = sum dgates_hh     (dgates_hh = dgates except in the GRU)

    Returns one gradient per forward input: x, h0 (, c0), w_ih, w_hh, b_ih, b_hh.
    """
    T, B, I = x.shape
    G = dgates.shape[-1]
    dg = dgates.reshape(T * B, G)                                           # (T*B, G)
    dgh = dg if dgates_hh is None else dgates_hh.reshape(T * B, G)          # (T*B, G)
    k = 1 + n_state                  # index of w_ih among the inputs
    dx = (dg @ w_ih).reshape(T, B, I) if need[0] else None                  # (T, B, I)
    dw_ih = dg.T @ x.reshape(T * B, I) if need[k] else None                 # (G, I)
    dw_hh = dgh.T @ h_prev.reshape(T * B, -1) if need[k + 1] else None      # (G, H)
    db_ih = dg.sum(axis=0) if len(need) > k + 2 and need[k + 2] else None   # (G,)
    db_hh = dgh.sum(axis=0) if len(need) > k + 3 and need[k + 3] else None  # (G,)
    states = (dh0,) if n_state == 1 else (dh0, dc0)
    return (dx, *states, dw_ih, dw_hh, db_ih, db_hh)


# ---- the LSTM ---------------------------------------------------------------------------------

def _lstm_pointwise(gates, c_prev, act, tanh_c):
    r"""The LSTM cell after its matmuls. gates (B, 4H) are the pre-activations [i f g o].

        i, f, o = sigma(gates_i, gates_f, gates_o),   g = tanh(gates_g)   -> act (B, 4H)
        c = f * c_prev + i * g,   tanh_c = tanh(c),   h = o * tanh_c

    ``act`` and ``tanh_c`` are the caller's buffers (saved for backward); returns h, c.
    """
    xp = backend.get_xp(gates)
    H = c_prev.shape[-1]
    _sigmoid(gates[:, :2 * H], out=act[:, :2 * H])                          # i, f
    xp.tanh(gates[:, 2 * H:3 * H], out=act[:, 2 * H:3 * H])                 # g
    _sigmoid(gates[:, 3 * H:], out=act[:, 3 * H:])                           # o
    i, f, g, o = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
    c = f * c_prev
    c += i * g                                                              # (B, H)
    xp.tanh(c, out=tanh_c)
    return o * tanh_c, c


def _lstm_pointwise_backward(dh, dc, act, c_prev, tanh_c, dgates):
    r"""Backward of ``_lstm_pointwise``, from dh = dL/dh and dc = dL/dc (the path that skips h):

        h = o * tanh_c             =>  do = dh * tanh_c,   dc_total = dc + dh * o * (1 - tanh_c^2)
        c = f * c_prev + i * g     =>  di = dc_total * g,  df = dc_total * c_prev,
                                       dg = dc_total * i,  dc_prev = dc_total * f
        i = sigma(gates_i), ...    =>  dgates = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]

    Writes dgates (B, 4H) into the caller's buffer; returns dc_prev (B, H).
    """
    H = dh.shape[-1]
    i, f, g, o = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
    dc = dc + dh * o * (1 - tanh_c * tanh_c)                                # (B, H)
    dgates[:, :H] = dc * g * i * (1 - i)                                    # d gates_i
    dgates[:, H:2 * H] = dc * c_prev * f * (1 - f)                          # d gates_f
    dgates[:, 2 * H:3 * H] = dc * i * (1 - g * g)                           # d gates_g
    dgates[:, 3 * H:] = dh * tanh_c * o * (1 - o)                           # d gates_o
    return dc * f                                                           # dc_prev


class LSTMCell(Function):
    r"""One LSTM step, x (B, I), h (B, H), c (B, H) -> [h_new, c_new] stacked (2, B, H):

        gates = x W_ih^T + b_ih + h W_hh^T + b_hh                        (B, 4H) = [i f g o]
        i, f, o = sigma(.),  g = tanh(.),   c_new = f * c + i * g,   h_new = o * tanh(c_new)

    Backward: dgates from ``_lstm_pointwise_backward`` (and dc = dc_new * f), then
    dx = dgates W_ih, dh = dgates W_hh, dW_ih = dgates^T x, dW_hh = dgates^T h, db = sum dgates.
    """

    def forward(self, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
        xp = backend.get_xp(x)
        gates = _gemm_t(x, w_ih, b_ih) + _gemm_t(h, w_hh, b_hh)             # (B, 4H)
        self.act = xp.empty_like(gates)                                     # saved: i f g o
        self.tanh_c = xp.empty_like(c)                                      # saved: tanh(c_new)
        h_new, c_new = _lstm_pointwise(gates, c, self.act, self.tanh_c)
        self.x, self.h, self.c, self.w_ih, self.w_hh = x, h, c, w_ih, w_hh
        return xp.stack([h_new, c_new])                                     # (2, B, H)

    def backward(self, dy):
        xp = backend.get_xp(dy)
        dgates = xp.empty_like(self.act)                                    # (B, 4H)
        dc = _lstm_pointwise_backward(dy[0], dy[1], self.act, self.c, self.tanh_c, dgates)
        need = self.needs_input_grad
        dx, dh, dw_ih, dw_hh, db_ih, db_hh = _input_grads(
            dgates, self.x, self.h, self.w_ih, self.w_hh, need[:2] + need[3:])
        return dx, dh, dc if need[2] else None, dw_ih, dw_hh, db_ih, db_hh


class LSTMLayer(Function):
    r"""An LSTM over a whole sequence, one direction: x (T, B, I), h0, c0 (B, H) -> Y (T+2, B, H)
    with Y[:T] the outputs h_1..h_T, Y[T] = h_n and Y[T+1] = c_n.

    Forward (one GEMM for every step's input projection, then the recurrence):

        gx = x W_ih^T + b_ih + b_hh                                   (T, B, 4H)
        gates_t = gx_t + h_{t-1} W_hh^T = [i f g o]_t  (pre-activations)
        c_t = f_t * c_{t-1} + i_t * g_t,    h_t = o_t * tanh(c_t)

    Backward through time, from dh_T = dY[T], dc_T = dY[T+1], for t = T..1 (docs/rnn.md):

        dgates_t, dc_{t-1} = cell backward of (dY_t + dh_t, dc_t)    (dc_{t-1} = dc_t * f_t + ...)
        dh_{t-1} = dgates_t W_hh
        dx = dgates W_ih,  dW_ih = dgates^T x,  dW_hh = sum_t dgates_t^T h_{t-1},  db = sum dgates

    The cell-state path dc_{t-1} = dc_t * f_t has no matrix and no squashing derivative in it:
    that is why gradients survive long distances (docs/rnn.md, "vanishing gradients").
    """

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
        xp = backend.get_xp(x)
        T, B, I = x.shape
        H = w_hh.shape[1]
        b = b_ih + b_hh if b_ih is not None else None
        gx = _gemm_t(x.reshape(T * B, I), w_ih, b).reshape(T, B, 4 * H)     # (T, B, 4H)
        mask = _mask(lengths, T, x)                                         # (T, B, 1)
        dtype = gx.dtype
        y = xp.empty((T + 2, B, H), dtype=dtype)                            # outputs, h_n, c_n
        act = xp.empty((T, B, 4 * H), dtype=dtype)                          # saved: i f g o
        tanh_c = xp.empty((T, B, H), dtype=dtype)                           # saved: tanh(c_t)
        h_prev = xp.empty((T, B, H), dtype=dtype)                           # saved: for dW_hh
        c_prev = xp.empty((T, B, H), dtype=dtype)                           # saved: for df
        w_hh_t = w_hh.T                                                     # (H, 4H)
        h, c = h0, c0
        for t in _steps(T, reverse):
            h_prev[t], c_prev[t] = h, c
            gates = h @ w_hh_t                                              # (B, 4H)
            gates += gx[t]
            h_new, c_new = _lstm_pointwise(gates, c, act[t], tanh_c[t])
            if mask is None:
                y[t] = h = h_new
                c = c_new
            else:  # a padding step keeps (h, c) and outputs 0
                y[t] = xp.where(mask[t], h_new, 0)
                h = xp.where(mask[t], h_new, h)
                c = xp.where(mask[t], c_new, c)
        y[T], y[T + 1] = h, c
        self.x, self.act, self.tanh_c, self.h_prev, self.c_prev = x, act, tanh_c, h_prev, c_prev
        self.mask, self.w_ih, self.w_hh, self.reverse = mask, w_ih, w_hh, reverse
        return y

    def backward(self, dy):
        xp = backend.get_xp(dy)
        x, act, tanh_c, c_prev, mask, w_hh = (self.x, self.act, self.tanh_c, self.c_prev,
                                              self.mask, self.w_hh)
        T = x.shape[0]
        dgates = xp.empty_like(act)                                         # (T, B, 4H)
        dh, dc = dy[T], dy[T + 1]                                           # dL/dh_n, dL/dc_n
        for t in _steps(T, not self.reverse):
            if mask is None:
                # h_t feeds the output y_t and step t+1; c_t feeds step t+1 only
                dc = _lstm_pointwise_backward(dy[t] + dh, dc, act[t], c_prev[t], tanh_c[t],
                                              dgates[t])
                dh = dgates[t] @ w_hh                                       # (B, H)
            else:
                # (h_t, c_t) = m (h_new, c_new) + (1 - m) (h_{t-1}, c_{t-1}),  y_t = m h_new
                dh_new = xp.where(mask[t], dy[t] + dh, 0)
                dc_new = xp.where(mask[t], dc, 0)
                dc_cell = _lstm_pointwise_backward(dh_new, dc_new, act[t], c_prev[t],
                                                   tanh_c[t], dgates[t])
                dh = dgates[t] @ w_hh + xp.where(mask[t], 0, dh)
                dc = dc_cell + xp.where(mask[t], 0, dc)
        return _sequence_grads(dgates, dh, x, self.h_prev, self.w_ih, self.needs_input_grad,
                               n_state=2, dc0=dc)


# ---- the GRU ----------------------------------------------------------------------------------

def _gru_pointwise(gx, gh, h_prev, act):
    r"""The GRU cell after its matmuls, gx = x W_ih^T + b_ih and gh = h_prev W_hh^T + b_hh, both
    (B, 3H) = [r z n] parts (torch's formula: r scales the whole h-side of n, bias included):

        r = sigma(gx_r + gh_r),  z = sigma(gx_z + gh_z),  n = tanh(gx_n + r * gh_n)
        h = (1 - z) * n + z * h_prev = n + z * (h_prev - n)

    Writes [r z n] into ``act`` (B, 3H), the caller's saved buffer; returns h (B, H).
    """
    xp = backend.get_xp(gx)
    H = h_prev.shape[-1]
    _sigmoid(gx[:, :2 * H] + gh[:, :2 * H], out=act[:, :2 * H])             # r, z
    r, z, n = act[:, :H], act[:, H:2 * H], act[:, 2 * H:]
    xp.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:], out=n)                       # n
    return n + z * (h_prev - n)


def _gru_pointwise_backward(dh, act, gh_n, h_prev, dgx, dgh):
    r"""Backward of ``_gru_pointwise`` from dh = dL/dh:

        h = n + z * (h_prev - n)     =>  dn = dh * (1 - z),  dz = dh * (h_prev - n),
                                         dh_prev (direct) = dh * z
        n = tanh(a_n), a_n = gx_n + r * gh_n  =>  da_n = dn * (1 - n^2):
                                         dgx_n = da_n,  dgh_n = da_n * r,  dr = da_n * gh_n
        r, z = sigma(.)              =>  dgx_r = dgh_r = dr r(1-r),  dgx_z = dgh_z = dz z(1-z)

    Writes dgx and dgh (B, 3H) into the caller's buffers; returns the direct dh_prev (B, H).
    """
    H = dh.shape[-1]
    r, z, n = act[:, :H], act[:, H:2 * H], act[:, 2 * H:]
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
    """

    def forward(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None):
        xp = backend.get_xp(x)
        gx = _gemm_t(x, w_ih, b_ih)                                         # (B, 3H)
        gh = _gemm_t(h, w_hh, b_hh)                                         # (B, 3H)
        H = h.shape[-1]
        self.act = xp.empty_like(gx)                                        # saved: r z n
        self.gh_n = gh[:, 2 * H:]                                           # saved: for dr
        self.x, self.h, self.w_ih, self.w_hh = x, h, w_ih, w_hh
        return _gru_pointwise(gx, gh, h, self.act)

    def backward(self, dh_new):
        xp = backend.get_xp(dh_new)
        dgx, dgh = xp.empty_like(self.act), xp.empty_like(self.act)         # (B, 3H)
        dh_direct = _gru_pointwise_backward(dh_new, self.act, self.gh_n, self.h, dgx, dgh)
        dx, dh, dw_ih, dw_hh, db_ih, db_hh = _input_grads(
            dgx, self.x, self.h, self.w_ih, self.w_hh, self.needs_input_grad, dgates_hh=dgh)
        if dh is not None:
            dh += dh_direct
        return dx, dh, dw_ih, dw_hh, db_ih, db_hh


class GRULayer(Function):
    r"""A GRU over a whole sequence, one direction: x (T, B, I), h0 (B, H) -> Y (T+1, B, H) with
    Y[:T] the outputs h_1..h_T and Y[T] = h_n.

    Forward: gx = x W_ih^T + b_ih for all steps in one GEMM (T, B, 3H); then per step
    gh_t = h_{t-1} W_hh^T + b_hh and the cell of ``_gru_pointwise``.

    Backward through time, for t = T..1, with dh_t = dY[T] at the start:

        dgx_t, dgh_t, dh_direct = cell backward of (dY_t + dh_t)
        dh_{t-1} = dh_direct + dgh_t W_hh
        dx = dgx W_ih,  dW_ih = dgx^T x,  dW_hh = sum_t dgh_t^T h_{t-1},
        db_ih = sum dgx,  db_hh = sum dgh
    """

    def forward(self, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
        xp = backend.get_xp(x)
        T, B, I = x.shape
        H = w_hh.shape[1]
        gx = _gemm_t(x.reshape(T * B, I), w_ih, b_ih).reshape(T, B, 3 * H)  # (T, B, 3H)
        mask = _mask(lengths, T, x)                                         # (T, B, 1)
        dtype = gx.dtype
        y = xp.empty((T + 1, B, H), dtype=dtype)                            # outputs, h_n
        act = xp.empty((T, B, 3 * H), dtype=dtype)                          # saved: r z n
        gh_n = xp.empty((T, B, H), dtype=dtype)                             # saved: for dr
        h_prev = xp.empty((T, B, H), dtype=dtype)                           # saved: for dz, dW_hh
        h = h0
        for t in _steps(T, reverse):
            h_prev[t] = h
            gh = _gemm_t(h, w_hh, b_hh)                                     # (B, 3H)
            gh_n[t] = gh[:, 2 * H:]
            h_new = _gru_pointwise(gx[t], gh, h, act[t])
            if mask is None:
                y[t] = h = h_new
            else:  # a padding step keeps the state and outputs 0
                y[t] = xp.where(mask[t], h_new, 0)
                h = xp.where(mask[t], h_new, h)
        y[T] = h
        self.x, self.act, self.gh_n, self.h_prev, self.mask = x, act, gh_n, h_prev, mask
        self.w_ih, self.w_hh, self.reverse = w_ih, w_hh, reverse
        return y

    def backward(self, dy):
        xp = backend.get_xp(dy)
        x, act, gh_n, h_prev, mask, w_hh = (self.x, self.act, self.gh_n, self.h_prev, self.mask,
                                            self.w_hh)
        T = x.shape[0]
        dgx, dgh = xp.empty_like(act), xp.empty_like(act)                   # (T, B, 3H)
        dh = dy[T]                                                          # dL/dh_n
        for t in _steps(T, not self.reverse):
            if mask is None:
                dh_direct = _gru_pointwise_backward(dy[t] + dh, act[t], gh_n[t], h_prev[t],
                                                    dgx[t], dgh[t])
                dh = dgh[t] @ w_hh + dh_direct                              # (B, H)
            else:
                dh_new = xp.where(mask[t], dy[t] + dh, 0)
                dh_direct = _gru_pointwise_backward(dh_new, act[t], gh_n[t], h_prev[t],
                                                    dgx[t], dgh[t])
                dh = dgh[t] @ w_hh + dh_direct + xp.where(mask[t], 0, dh)
        return _sequence_grads(dgx, dh, x, h_prev, self.w_ih, self.needs_input_grad,
                               n_state=1, dgates_hh=dgh)
