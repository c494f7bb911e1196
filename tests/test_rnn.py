"""tinygrad_llm/nn/rnn.py and the layers built on RNNBase (RNN, LSTM, GRU), and ops/rnn.py.

Shared across the three families, parametrised:
- parity with torch.nn.RNN / LSTM / GRU on copied weights, float64, tolerance 1e-6: outputs, h_n
  (and c_n), input gradients, initial-state gradients and every parameter gradient, for
  multi-layer, bidirectional, batch_first, bias=False and ``lengths=`` (against torch's packed
  sequences);
- float64 gradcheck with a random upstream gradient for every cell and every full layer over
  hypothesis-chosen sizes, ``lengths=`` included, through every input and parameter; and with
  only one output used (only ``out``, only h_n, only c_n), so the fused backward gets None for
  the others;
- the fused modules (``fused=True``) against the same modules run from the reference cells
  (``fused=False``): every output and every gradient, float64 to 1e-12 and float32 to 1e-5
  (the reference's sigmoid rounds differently: observed differences ~3e-6);
- bad input: wrong rank or feature size (expected and actual shapes in the message), wrong h0/c0,
  lengths of 0 or > T;
- lengths semantics, unbatched input, state passed in and returned, torch's names and init.

The RNN Functions against the reference cell (``tinygrad_llm.reference.rnn_cell``) are here;
the LSTM's and GRU's are in tests/test_lstm.py and tests/test_gru.py.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recurrent_checks import values_and_grads

from tinygrad_llm import Tensor, no_grad, where
from tinygrad_llm.nn.gru import GRU, GRUCell
from tinygrad_llm.nn.lstm import LSTM, LSTMCell
from tinygrad_llm.nn.rnn import RNN, RNNCell
from tinygrad_llm.ops import rnn as ops_rnn
from tinygrad_llm.reference import rnn_cell
from tinygrad_llm.tensor import stack
from tinygrad_llm.testing import gradcheck, module_gradcheck

LAYERS = {  # name: (our class, torch class name, extra constructor kwargs)
    "rnn_tanh": (RNN, "RNN", {}),
    "rnn_relu": (RNN, "RNN", {"nonlinearity": "relu"}),
    "lstm": (LSTM, "LSTM", {}),
    "gru": (GRU, "GRU", {}),
}
CELLS = {
    "rnn_tanh": (RNNCell, "RNNCell", {}),
    "rnn_relu": (RNNCell, "RNNCell", {"nonlinearity": "relu"}),
    "lstm": (LSTMCell, "LSTMCell", {}),
    "gru": (GRUCell, "GRUCell", {}),
}


def _float64(module):
    """Cast to float64 first, so loading torch's float64 weights loses nothing."""
    return module.to(dtype=np.float64)


def call_with_params(module, names, params, *args, **kwargs):
    """Call ``module`` with its parameters ``names`` temporarily replaced by ``params`` (the
    float64 copies gradcheck makes), so gradients flow to those copies."""
    old = {n: getattr(module, n) for n in names}
    try:
        for n, p in zip(names, params):
            object.__setattr__(module, n, p)   # attribute only: the registry is left alone
        return module(*args, **kwargs)
    finally:
        for n, p in old.items():
            object.__setattr__(module, n, p)


def _state_dict_from_torch(torch_module):
    return {k: v.detach().numpy() for k, v in torch_module.state_dict().items()}


# ---- parity with torch ---------------------------------------------------------------------

CONFIGS = [
    {},
    {"num_layers": 2},
    {"bidirectional": True},
    {"num_layers": 2, "bidirectional": True},
    {"batch_first": True},
    {"batch_first": True, "num_layers": 2, "bidirectional": True},
    {"bias": False},
]


@pytest.mark.parametrize("family", list(LAYERS))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(c) or "default")
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_layer_matches_torch(family, config, with_lengths):
    torch = pytest.importorskip("torch")
    cls, torch_name, extra = LAYERS[family]
    T, B, I, H = 5, 3, 4, 6
    L, D = config.get("num_layers", 1), 2 if config.get("bidirectional") else 1
    batch_first = config.get("batch_first", False)
    torch.manual_seed(0)
    ref = getattr(torch.nn, torch_name)(I, H, **extra, **config).double()
    ours = _float64(cls(I, H, **extra, **config))
    ours.load_state_dict(_state_dict_from_torch(ref))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    h0, c0 = rng.standard_normal((2, L * D, B, H))
    lengths = [5, 2, 4] if with_lengths else None
    is_lstm = family == "lstm"

    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    state_t = (h0t, c0t) if is_lstm else h0t
    if with_lengths:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out_t, st_t = ref(packed, state_t)
        out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t, batch_first=batch_first,
                                                          total_length=T)
    else:
        out_t, st_t = ref(xt, state_t)
    xo, h0o, c0o = (Tensor(a, requires_grad=True) for a in (x, h0, c0))
    out_o, st_o = ours(xo, (h0o, c0o) if is_lstm else h0o, lengths=lengths)

    st_t = list(st_t) if is_lstm else [st_t]
    st_o = list(st_o) if is_lstm else [st_o]
    assert out_o.shape == tuple(out_t.shape) == ((B, T, D * H) if batch_first else (T, B, D * H))
    np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), atol=1e-6)
    for a, b in zip(st_o, st_t):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-6)

    # A random upstream gradient on every output (out, h_n, c_n): one backward each side.
    ups = [rng.standard_normal(tuple(t.shape)) for t in [out_t, *st_t]]
    loss_t = sum((t * torch.tensor(u)).sum() for t, u in zip([out_t, *st_t], ups))
    loss_o = None
    for t, u in zip([out_o, *st_o], ups):
        term = (t * Tensor(u)).sum()
        loss_o = term if loss_o is None else loss_o + term
    loss_t.backward()
    loss_o.backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(h0o.grad.numpy(), h0t.grad.numpy(), atol=1e-6)
    if is_lstm:
        np.testing.assert_allclose(c0o.grad.numpy(), c0t.grad.numpy(), atol=1e-6)
    ours_params = dict(ours.named_parameters())
    assert list(ours_params) == [n for n, _ in ref.named_parameters()]
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(ours_params[name].grad.numpy(), p.grad.numpy(), atol=1e-6,
                                   err_msg=name)


@pytest.mark.parametrize("family", list(CELLS))
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch(family, batched, bias):
    torch = pytest.importorskip("torch")
    cls, torch_name, extra = CELLS[family]
    B, I, H = 3, 4, 5
    torch.manual_seed(0)
    ref = getattr(torch.nn, torch_name)(I, H, bias=bias, **extra).double()
    ours = _float64(cls(I, H, bias=bias, **extra))
    ours.load_state_dict(_state_dict_from_torch(ref))
    rng = np.random.default_rng(2)
    lead = (B,) if batched else ()
    x, h, c = rng.standard_normal((1, *lead, I)), *rng.standard_normal((2, *lead, H))
    x = x[0]
    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    xo, ho, co = (Tensor(a, requires_grad=True) for a in (x, h, c))
    if family == "lstm":
        outs_t, outs_o = list(ref(xt, (ht, ct))), list(ours(xo, (ho, co)))
    else:
        outs_t, outs_o = [ref(xt, ht)], [ours(xo, ho)]
    ups = [rng.standard_normal(tuple(t.shape)) for t in outs_t]
    sum((t * torch.tensor(u)).sum() for t, u in zip(outs_t, ups)).backward()
    loss = None
    for t, u in zip(outs_o, ups):
        term = (t * Tensor(u)).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    for a, b in zip(outs_o, outs_t):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(ho.grad.numpy(), ht.grad.numpy(), atol=1e-6)
    if family == "lstm":
        np.testing.assert_allclose(co.grad.numpy(), ct.grad.numpy(), atol=1e-6)
    ours_params = dict(ours.named_parameters())
    assert list(ours_params) == [n for n, _ in ref.named_parameters()]
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(ours_params[name].grad.numpy(), p.grad.numpy(), atol=1e-6,
                                   err_msg=name)


# ---- gradcheck: every input and every parameter, random upstream -------------------------------

def _every_output_as_one(family, out, state):
    """One tensor from every output, so gradcheck's random upstream reaches all of them."""
    from tinygrad_llm.tensor import concatenate
    states = list(state) if family == "lstm" else [state]
    parts = [out.reshape(-1)] + [s.reshape(-1) for s in states]
    return concatenate(parts)


@pytest.mark.parametrize("family", list(LAYERS))
@settings(max_examples=10)
@given(T=st.integers(1, 4), B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(1, 3),
       num_layers=st.integers(1, 2), bidirectional=st.booleans(), batch_first=st.booleans(),
       bias=st.booleans(), data=st.data())
def test_layer_gradcheck(family, T, B, I, H, num_layers, bidirectional, batch_first, bias, data):
    cls, _, extra = LAYERS[family]
    layer = _float64(cls(I, H, num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first, bias=bias, **extra))
    D = 2 if bidirectional else 1
    lengths = data.draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B))
    rng = np.random.default_rng(T * 100 + B * 10 + H)
    x = Tensor(rng.standard_normal((B, T, I) if batch_first else (T, B, I)), requires_grad=True)
    states = [Tensor(rng.standard_normal((num_layers * D, B, H)), requires_grad=True)
              for _ in range(2 if family == "lstm" else 1)]
    names = [n for n, _ in layer.named_parameters()]
    params = [p for _, p in layer.named_parameters()]
    n_states = len(states)

    def f(x, *rest):
        st_in, ps = rest[:n_states], rest[n_states:]
        hx = tuple(st_in) if family == "lstm" else st_in[0]
        out, state = call_with_params(layer, names, ps, x, hx, lengths=lengths)
        return _every_output_as_one(family, out, state)

    assert gradcheck(f, [x, *states, *params], seed=0)


@pytest.mark.parametrize("family", list(CELLS))
@given(B=st.integers(1, 3), I=st.integers(1, 4), H=st.integers(1, 4), bias=st.booleans())
def test_cell_gradcheck(family, B, I, H, bias):
    cls, _, extra = CELLS[family]
    cell = _float64(cls(I, H, bias=bias, **extra))
    rng = np.random.default_rng(B * 100 + I * 10 + H)
    x = Tensor(rng.standard_normal((B, I)), requires_grad=True)
    states = [Tensor(rng.standard_normal((B, H)), requires_grad=True)
              for _ in range(2 if family == "lstm" else 1)]
    names = [n for n, _ in cell.named_parameters()]
    params = [p for _, p in cell.named_parameters()]
    n_states = len(states)

    def f(x, *rest):
        st_in, ps = rest[:n_states], rest[n_states:]
        if family == "lstm":
            h, c = call_with_params(cell, names, ps, x, tuple(st_in))
            from tinygrad_llm.tensor import concatenate
            return concatenate([h, c], axis=1)
        return call_with_params(cell, names, ps, x, st_in[0])

    assert gradcheck(f, [x, *states, *params], seed=0)


ONE_OUTPUT = [(family, used) for family in LAYERS
              for used in ("out", "h_n") + (("c_n",) if family == "lstm" else ())]


@pytest.mark.parametrize("family,used", ONE_OUTPUT, ids=["-".join(u) for u in ONE_OUTPUT])
@pytest.mark.parametrize("config", [{}, {"num_layers": 2, "bidirectional": True,
                                         "lengths": [3, 1]}],
                         ids=["one-layer", "two-layers-bidirectional-lengths"])
def test_layer_gradcheck_with_one_output_used(family, used, config):
    """The loss reads one output only: the fused backward of the last layer gets None for the
    others (dh_n and dc_n None when only ``out`` is used; dout None when only a final state is)."""
    cls, _, extra = LAYERS[family]
    config = dict(config)
    lengths = config.pop("lengths", None)
    layer = cls(2, 3, **config, **extra)
    D = 2 if config.get("bidirectional") else 1
    rng = np.random.default_rng(7)
    x = Tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    states = [Tensor(rng.standard_normal((config.get("num_layers", 1) * D, 2, 3)),
                     requires_grad=True) for _ in range(2 if family == "lstm" else 1)]

    def f(x, *states):
        out, state = layer(x, tuple(states) if family == "lstm" else states[0], lengths=lengths)
        state = list(state) if family == "lstm" else [state]
        return {"out": out, "h_n": state[0], "c_n": state[-1]}[used]

    assert module_gradcheck(layer, f, [x, *states], seed=0)


@pytest.mark.parametrize("used", [0, 1], ids=["h_new", "c_new"])
def test_lstm_cell_gradcheck_with_one_output_used(used):
    cell = LSTMCell(3, 4)
    rng = np.random.default_rng(3)
    x, h, c = (Tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3), (2, 4), (2, 4)))
    assert module_gradcheck(cell, lambda x, h, c: cell(x, (h, c))[used], [x, h, c], seed=0)


# ---- the fused modules against the reference modules (fused=False) -----------------------------

TOLERANCES = {"float64": {"rtol": 1e-12, "atol": 1e-12}, "float32": {"rtol": 1e-5, "atol": 1e-5}}


def _run_with_random_upstream(module, x, states, upstream_rng, **kwargs):
    """Call ``module``, backward from sum_k (output_k * random_k) over every output (out, h_n,
    and c_n); return the outputs, then the gradients of x, of each state and of each
    parameter."""
    x = Tensor(x, requires_grad=True)
    states = [Tensor(s, requires_grad=True) for s in states]
    is_pair = len(states) == 2
    result = module(x, tuple(states) if is_pair else states[0], **kwargs)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], tuple):
        outputs = [result[0], *result[1]]                                   # out, (h_n, c_n)
    elif isinstance(result, tuple):
        outputs = list(result)                                              # out, h_n or h, c
    else:
        outputs = [result]                                                  # a cell's h_new
    loss = None
    for y in outputs:
        term = (y * Tensor(upstream_rng.standard_normal(y.shape).astype(y.dtype))).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    return ([y.numpy() for y in outputs] + [x.grad.numpy()] + [s.grad.numpy() for s in states]
            + [p.grad.numpy() for p in module.parameters()])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("family", list(LAYERS))
@pytest.mark.parametrize("config", [
    {},
    {"num_layers": 2, "bidirectional": True},
    {"num_layers": 2, "bidirectional": True, "lengths": [5, 2, 4]},
    {"batch_first": True, "bias": False, "lengths": [1, 5, 3]},
], ids=["default", "two-layers-bidirectional", "with-lengths", "batch_first-no-bias-lengths"])
def test_fused_layer_equals_reference_layer(family, config, dtype):
    cls, _, extra = LAYERS[family]
    config = dict(config)
    lengths = config.pop("lengths", None)
    fused = cls(4, 6, **config, **extra).to(dtype=dtype)
    ref = cls(4, 6, **config, **extra, fused=False).to(dtype=dtype)
    ref.load_state_dict(fused.state_dict())
    assert not ref.fused and "fused=False" in repr(ref)
    L = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    rng = np.random.default_rng(5)
    T, B = 5, 3
    x = rng.standard_normal((B, T, 4) if config.get("batch_first") else (T, B, 4)).astype(dtype)
    states = [rng.standard_normal((L, B, 6)).astype(dtype)
              for _ in range(2 if family == "lstm" else 1)]
    a = _run_with_random_upstream(fused, x, states, np.random.default_rng(6), lengths=lengths)
    b = _run_with_random_upstream(ref, x, states, np.random.default_rng(6), lengths=lengths)
    assert len(a) == len(b) == 1 + len(states) + 1 + len(states) + len(list(fused.parameters()))
    for u, v in zip(a, b):
        assert u.dtype == v.dtype == dtype
        np.testing.assert_allclose(u, v, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("family", list(CELLS))
@pytest.mark.parametrize("bias", [True, False])
def test_fused_cell_equals_reference_cell(family, bias, dtype):
    cls, _, extra = CELLS[family]
    fused = cls(4, 6, bias=bias, **extra).to(dtype=dtype)
    ref = cls(4, 6, bias=bias, **extra, fused=False).to(dtype=dtype)
    ref.load_state_dict(fused.state_dict())
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4)).astype(dtype)
    states = [rng.standard_normal((3, 6)).astype(dtype)
              for _ in range(2 if family == "lstm" else 1)]
    a = _run_with_random_upstream(fused, x, states, np.random.default_rng(9))
    b = _run_with_random_upstream(ref, x, states, np.random.default_rng(9))
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, **TOLERANCES[dtype])


# ---- the RNN Functions against the reference cell ----------------------------------------------

@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_fused_rnn_cell_matches_reference(nonlinearity):
    rng = np.random.default_rng(0)
    B, I, H = 4, 3, 5
    arrays = [rng.standard_normal(s) for s in ((B, I), (B, H), (H, I), (H, H), (H,), (H,))]
    ups = [rng.standard_normal((B, H))]
    fused = values_and_grads(
        lambda *a: ops_rnn.RNNCell.apply(*a, nonlinearity=nonlinearity), arrays, ups, (0,))
    ref = values_and_grads(lambda *a: rnn_cell(*a, nonlinearity=nonlinearity), arrays, ups,
                            (0,))
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("used", [(0, 1), (0,), (1,)], ids=["out-h_n", "out", "h_n"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [4, 1, 3]])
def test_fused_rnn_layer_matches_unrolled_reference(nonlinearity, reverse, lengths, used):
    """RNNLayer (one Function, hand-written BPTT) against the loop of the reference cell, a
    padding step (m = [t < lengths]) written h_t = where(m, h_new, h_{t-1}),
    out_t = where(m, h_new, 0)."""
    rng = np.random.default_rng(0)
    T, B, I, H = 4, 3, 2, 3
    arrays = [rng.standard_normal(s) for s in ((T, B, I), (B, H), (H, I), (H, H), (H,), (H,))]
    ups = [rng.standard_normal(s) for s in ((T, B, H), (B, H))]
    lens = None if lengths is None else np.array(lengths)

    def unrolled(x, h, *w):
        out = [None] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            h_new = rnn_cell(x[t], h, *w, nonlinearity=nonlinearity)
            m = np.ones((B, 1), bool) if lens is None else (t < lens)[:, None]     # (B, 1)
            out[t] = where(m, h_new, 0.0)
            h = where(m, h_new, h)
        return stack(out), h                                                # (T, B, H), (B, H)

    fused = values_and_grads(
        lambda *a: ops_rnn.RNNLayer.apply(*a, nonlinearity=nonlinearity, lengths=lens,
                                          reverse=reverse), arrays, ups, used)
    ref = values_and_grads(unrolled, arrays, ups, used)
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
@pytest.mark.parametrize("family", ["rnn_tanh", "lstm", "gru"])
def test_layer_runs_on_the_cupy_stand_in(device, family, fused):
    """The layers use only the NumPy API that CuPy mirrors (tests/fake_cupy.py)."""
    cls, _, extra = LAYERS[family]
    layer = cls(3, 4, num_layers=2, bidirectional=True, fused=fused, **extra).to(device)
    x = Tensor(np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32),
               requires_grad=True, device=device)
    out, _ = layer(x, lengths=[5, 3])
    assert out.device == device and out.shape == (5, 2, 8)
    (out * out).sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in layer.parameters())


# ---- lengths= ----------------------------------------------------------------------------------

@pytest.mark.parametrize("family", list(LAYERS))
def test_lengths_match_running_each_sequence_alone(family):
    cls, _, extra = LAYERS[family]
    layer = _float64(cls(3, 4, num_layers=2, bidirectional=True, **extra))
    T, B = 6, 3
    lengths = [6, 1, 4]
    x = np.random.default_rng(0).standard_normal((T, B, 3))
    with no_grad():
        out, state = layer(x, lengths=lengths)
        h_n = state[0] if family == "lstm" else state
        for b, n in enumerate(lengths):
            out_b, state_b = layer(x[:n, b:b + 1])
            h_b = state_b[0] if family == "lstm" else state_b
            np.testing.assert_allclose(out.numpy()[:n, b], out_b.numpy()[:, 0], atol=1e-12)
            assert not out.numpy()[n:, b].any()         # padded steps output zeros
            np.testing.assert_allclose(h_n.numpy()[:, b], h_b.numpy()[:, 0], atol=1e-12)
            if family == "lstm":
                np.testing.assert_allclose(state[1].numpy()[:, b], state_b[1].numpy()[:, 0],
                                           atol=1e-12)


@pytest.mark.parametrize("lengths", [[0, 2], [3, 6], [-1, 2]])
def test_lengths_out_of_range(lengths):
    layer = LSTM(3, 4)
    x = np.zeros((5, 2, 3), dtype=np.float32)
    bad = next(i for i, n in enumerate(lengths) if not 1 <= n <= 5)
    with pytest.raises(ValueError, match=rf"lengths\[{bad}\] = {lengths[bad]} .*\[1, 5\]"):
        layer(x, lengths=lengths)


def test_lengths_wrong_shape_or_dtype():
    layer = GRU(3, 4)
    x = np.zeros((5, 2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\).*\(3,\)"):
        layer(x, lengths=[5, 5, 5])
    with pytest.raises(TypeError, match="integers"):
        layer(x, lengths=[5.0, 2.0])


# ---- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("family", list(LAYERS))
def test_wrong_input_rank_or_features_names_both_shapes(family):
    cls, _, extra = LAYERS[family]
    layer = cls(3, 4, **extra)
    with pytest.raises(ValueError, match=r"\(T, B, input_size\) with input_size=3.*\(5, 2, 7\)"):
        layer(np.zeros((5, 2, 7), dtype=np.float32))
    with pytest.raises(ValueError, match=r"got shape \(5, 2, 1, 3\)"):
        layer(np.zeros((5, 2, 1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        layer(np.zeros((3,), dtype=np.float32))
    with pytest.raises(ValueError, match=r"T, B >= 1; got shape \(0, 2, 3\)"):
        layer(np.zeros((0, 2, 3), dtype=np.float32))
    batch_first = cls(3, 4, batch_first=True, **extra)
    with pytest.raises(ValueError, match=r"\(B, T, input_size\).*\(2, 5, 4\)"):
        batch_first(np.zeros((2, 5, 4), dtype=np.float32))


@pytest.mark.parametrize("family", list(LAYERS))
def test_wrong_initial_state_shape(family):
    cls, _, extra = LAYERS[family]
    layer = cls(3, 4, num_layers=2, **extra)
    x = np.zeros((5, 2, 3), dtype=np.float32)
    bad = np.zeros((1, 2, 4), dtype=np.float32)
    good = np.zeros((2, 2, 4), dtype=np.float32)
    if family == "lstm":
        with pytest.raises(ValueError, match=r"h0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
            layer(x, (bad, good))
        with pytest.raises(ValueError, match=r"c0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
            layer(x, (good, bad))
    else:
        with pytest.raises(ValueError, match=r"h0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
            layer(x, bad)


@pytest.mark.parametrize("family", list(CELLS))
def test_cell_bad_input(family):
    cls, _, extra = CELLS[family]
    cell = cls(3, 4, **extra)
    with pytest.raises(ValueError, match=r"\(B, 3\) or unbatched \(3,\), got shape \(2, 5\)"):
        cell(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(B, 3\) or unbatched \(3,\), got shape \(2, 1, 3\)"):
        cell(np.zeros((2, 1, 3), dtype=np.float32))
    bad_h = np.zeros((2, 5), dtype=np.float32)
    x = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"h of shape \(2, 4\), got \(2, 5\)"):
        cell(x, (bad_h, None) if family == "lstm" else bad_h)
    with pytest.raises(ValueError, match=r"h of shape \(4,\), got \(2, 4\)"):
        cell(x[0], (bad_h[:, :4], None) if family == "lstm" else bad_h[:, :4])
    if family == "lstm":
        with pytest.raises(ValueError, match=r"LSTMCell: expected c of shape \(2, 4\), got \(2, 5"):
            cell(x, (None, bad_h))
        with pytest.raises(TypeError, match=r"LSTMCell: hx must be a pair \(h, c\)"):
            cell(x, np.zeros((2, 4), dtype=np.float32))


def test_lstm_state_must_be_a_pair():
    layer = LSTM(3, 4, num_layers=2)
    x = np.zeros((5, 2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match=r"LSTM: hx must be a pair \(h0, c0\), got ndarray"):
        layer(x, np.zeros((2, 2, 4), dtype=np.float32))


@pytest.mark.parametrize("family", list(LAYERS))
def test_dtype_must_match_the_parameters(family):
    """As torch: no silent float64 run of a float32 layer, no integer ids taken as numbers."""
    cls, _, extra = LAYERS[family]
    layer = cls(3, 4, **extra)                                              # float32
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"{name}: input dtype float64 does not match the "
                                         r"parameters' dtype float32"):
        layer(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=rf"{name}: input dtype int64"):
        layer(np.zeros((5, 2, 3), dtype=np.int64))
    x, h0 = np.zeros((5, 2, 3), dtype=np.float32), np.zeros((1, 2, 4))
    with pytest.raises(ValueError, match=rf"{name}: h0 dtype float64 does not match"):
        layer(x, (h0, h0.astype(np.float32)) if family == "lstm" else h0)
    cell_cls, _, cell_extra = CELLS[family]
    with pytest.raises(ValueError, match=rf"{cell_cls.__name__}: input dtype float64"):
        cell_cls(3, 4, **cell_extra)(np.zeros((2, 3)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        LSTM(3, 0)
    with pytest.raises(ValueError, match="dropout"):
        GRU(3, 4, dropout=1.0)


# ---- the module contract -----------------------------------------------------------------------

@pytest.mark.parametrize("family", list(LAYERS))
def test_names_shapes_and_init_follow_torch(family):
    cls, _, extra = LAYERS[family]
    gates = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}[family]
    layer = cls(3, 16, num_layers=2, bidirectional=True, **extra)
    shapes = {n: p.shape for n, p in layer.named_parameters()}
    expected = {}
    for k in range(2):
        for s in ("", "_reverse"):
            expected[f"weight_ih_l{k}{s}"] = (gates * 16, 3 if k == 0 else 32)
            expected[f"weight_hh_l{k}{s}"] = (gates * 16, 16)
            expected[f"bias_ih_l{k}{s}"] = (gates * 16,)
            expected[f"bias_hh_l{k}{s}"] = (gates * 16,)
    assert list(shapes.items()) == list(expected.items())
    values = np.concatenate([p.numpy().ravel() for p in layer.parameters()])
    assert np.abs(values).max() <= 1 / math.sqrt(16) and values.std() > 0.1 / math.sqrt(16)


@pytest.mark.parametrize("family", list(LAYERS))
def test_state_is_passed_not_stashed(family):
    """Two calls give the same answer; carrying the state by hand equals one long call."""
    cls, _, extra = LAYERS[family]
    layer = _float64(cls(3, 4, num_layers=2, **extra))
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    with no_grad():
        a, state = layer(x)
        b, _ = layer(x)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        first, mid = layer(x[:3])
        second, _ = layer(x[3:], mid)
    np.testing.assert_allclose(np.concatenate([first.numpy(), second.numpy()]), a.numpy(),
                               atol=1e-12)


@pytest.mark.parametrize("family", list(LAYERS))
def test_unbatched_equals_batch_of_one(family):
    cls, _, extra = LAYERS[family]
    layer = _float64(cls(3, 4, bidirectional=True, **extra))
    x = np.random.default_rng(0).standard_normal((5, 3))
    with no_grad():
        out, state = layer(x)
        out_b, state_b = layer(x[:, None])
    assert out.shape == (5, 8)
    np.testing.assert_allclose(out.numpy(), out_b.numpy()[:, 0])
    h, h_b = (state[0], state_b[0]) if family == "lstm" else (state, state_b)
    assert h.shape == (2, 4)
    np.testing.assert_allclose(h.numpy(), h_b.numpy()[:, 0])


def test_dropout_between_layers_only_in_training():
    layer = LSTM(3, 4, num_layers=3, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    with no_grad():
        train_a, _ = layer(x)
        train_b, _ = layer(x)
        layer.eval()
        eval_a, _ = layer(x)
        eval_b, _ = layer(x)
    assert not np.allclose(train_a.numpy(), train_b.numpy())
    np.testing.assert_array_equal(eval_a.numpy(), eval_b.numpy())


@pytest.mark.parametrize("family", list(LAYERS))
def test_no_dropout_after_the_last_layer(family):
    """As in torch, dropout acts on the outputs of every layer except the last: a one-layer
    network gives the same output in training as in eval, whatever ``dropout`` says."""
    cls, _, extra = LAYERS[family]
    layer = cls(3, 4, num_layers=1, dropout=0.5, **extra)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    with no_grad():
        train, _ = layer(x)
        layer.eval()
        evaluated, _ = layer(x)
    np.testing.assert_array_equal(train.numpy(), evaluated.numpy())


def test_float32_stays_float32():
    layer = LSTM(3, 4, num_layers=2, bidirectional=True)
    x = Tensor(np.ones((5, 2, 3), dtype=np.float32), requires_grad=True)
    out, (h, c) = layer(x, lengths=[5, 2])
    assert out.dtype == h.dtype == c.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())
