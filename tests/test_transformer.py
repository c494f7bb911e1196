"""tinygrad_llm/nn/transformer.py: MultiheadAttention, the encoder and decoder layers and stacks,
Transformer and PositionalEncoding. Parity with torch.nn in float64 (the same weights both ways,
the same outputs, the same gradients for the inputs and every parameter under a random upstream
gradient) for every mask kind, and finite-difference gradchecks that need no torch."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_llm import Tensor
from tinygrad_llm.nn import (
    MultiheadAttention,
    PositionalEncoding,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from tinygrad_llm.testing import module_gradcheck


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _np(rng, shape):
    return rng.standard_normal(shape)


def _copy_from_torch(ours, theirs):
    ours.to(dtype="float64")
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _run_both(torch, ours, theirs, call_ours, call_theirs, inputs, seed=0):
    r"""Run both modules on the same float64 inputs, backpropagate the same random upstream
    gradient, and compare the outputs and the gradients of the inputs and of every parameter."""
    rng = np.random.default_rng(seed)
    xs = [Tensor(a, requires_grad=True, dtype="float64") for a in inputs]
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs]
    y = call_ours(*xs)
    ty = call_theirs(*ts)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    y.backward(Tensor(dy))
    ty.backward(torch.tensor(dy))
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(np.asarray(x.grad), t.grad.numpy(), rtol=1e-9, atol=1e-10)
    grads = {k: p.grad for k, p in theirs.named_parameters()}
    own = dict(ours.named_parameters())
    assert own.keys() == grads.keys()
    for k, p in own.items():
        if grads[k] is None:                   # a parameter the output does not depend on
            assert p.grad is None or not np.asarray(p.grad).any(), k
            continue
        np.testing.assert_allclose(np.asarray(p.grad), grads[k].numpy(), rtol=1e-9, atol=1e-10,
                                   err_msg=k)


# ---- MultiheadAttention ----------------------------------------------------------------------
def _mha_pair(torch, e=6, nh=2, batch_first=False, bias=True):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(e, nh, bias=bias, batch_first=batch_first).double()
    with torch.no_grad():                      # non-zero biases, so their gradients matter
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = MultiheadAttention(e, nh, bias=bias, batch_first=batch_first)
    _copy_from_torch(ours, theirs)
    return ours, theirs


def _masks(torch, kind, n, nh, tq, s, rng):
    r"""(ours, theirs) keyword arguments for one kind of mask."""
    if kind == "none":
        return {}, {}
    if kind == "bool2d":
        m = rng.random((tq, s)) < 0.3
        m[:, 0] = False                                       # every query keeps a key
        return {"attn_mask": m}, {"attn_mask": torch.tensor(m)}
    if kind == "float2d":
        m = rng.standard_normal((tq, s))
        return {"attn_mask": m}, {"attn_mask": torch.tensor(m)}
    if kind == "bool3d":
        m = rng.random((n * nh, tq, s)) < 0.3
        m[..., 0] = False
        return {"attn_mask": m}, {"attn_mask": torch.tensor(m)}
    if kind == "float3d":
        m = rng.standard_normal((n * nh, tq, s))
        m[0, 0, 1] = -math.inf
        return {"attn_mask": m}, {"attn_mask": torch.tensor(m)}
    if kind == "padding":
        m = np.zeros((n, s), dtype=bool)
        m[0, -1] = True
        m[-1, 1:] = True
        return {"key_padding_mask": m}, {"key_padding_mask": torch.tensor(m)}
    if kind == "padding+bool2d":
        o1, t1 = _masks(torch, "padding", n, nh, tq, s, rng)
        o2, t2 = _masks(torch, "bool2d", n, nh, tq, s, rng)
        return {**o1, **o2}, {**t1, **t2}
    if kind == "padding+float3d":
        o1, t1 = _masks(torch, "padding", n, nh, tq, s, rng)
        o2, t2 = _masks(torch, "float3d", n, nh, tq, s, rng)
        return {**o1, **o2}, {**t1, **t2}
    if kind == "causal":
        assert tq == s
        m = np.triu(np.ones((tq, s), dtype=bool), k=1)
        return ({"attn_mask": m, "is_causal": True},
                {"attn_mask": torch.tensor(m), "is_causal": True})
    raise AssertionError(kind)


MASKS = ["none", "bool2d", "float2d", "bool3d", "float3d", "padding", "padding+bool2d",
         "padding+float3d", "causal"]


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_self_attention_matches_torch(torch, kind, need_weights, batch_first):
    n, t, e, nh = 3, 4, 6, 2
    ours, theirs = _mha_pair(torch, e, nh, batch_first=batch_first)
    rng = np.random.default_rng(1)
    kw, tkw = _masks(torch, kind, n, nh, t, t, rng)
    shape = (n, t, e) if batch_first else (t, n, e)
    x = _np(rng, shape)
    _run_both(torch, ours, theirs,
              lambda x: ours(x, x, x, need_weights=need_weights, **kw)[0],
              lambda x: theirs(x, x, x, need_weights=need_weights, **tkw)[0], [x])


@pytest.mark.parametrize("kind", ["none", "bool2d", "float3d", "padding+bool2d"])
@pytest.mark.parametrize("tq", [2, 5])
def test_mha_cross_attention_matches_torch(torch, kind, tq):
    n, s, e, nh = 2, 4, 6, 3
    ours, theirs = _mha_pair(torch, e, nh)
    rng = np.random.default_rng(2)
    kw, tkw = _masks(torch, kind, n, nh, tq, s, rng)
    q, k, v = _np(rng, (tq, n, e)), _np(rng, (s, n, e)), _np(rng, (s, n, e))
    for need in (True, False):
        ours.zero_grad()
        theirs.zero_grad()
        _run_both(torch, ours, theirs,
                  lambda q, k, v, need=need: ours(q, k, v, need_weights=need, **kw)[0],
                  lambda q, k, v, need=need: theirs(q, k, v, need_weights=need, **tkw)[0],
                  [q, k, v])


@pytest.mark.parametrize("average", [True, False])
def test_mha_attention_weights_match_torch(torch, average):
    n, t, e, nh = 2, 3, 4, 2
    ours, theirs = _mha_pair(torch, e, nh)
    rng = np.random.default_rng(3)
    kw, tkw = _masks(torch, "padding+bool2d", n, nh, t, t, rng)
    x = _np(rng, (t, n, e))
    _run_both(torch, ours, theirs,
              lambda x: ours(x, x, x, average_attn_weights=average, **kw)[1],
              lambda x: theirs(x, x, x, average_attn_weights=average, **tkw)[1], [x])
    assert ours(Tensor(x), Tensor(x), Tensor(x), average_attn_weights=average)[1].shape == (
        (n, t, t) if average else (n, nh, t, t))


def test_mha_without_bias_and_unbatched_match_torch(torch):
    ours, theirs = _mha_pair(torch, 4, 2, bias=False)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["in_proj_weight",
                                                                     "out_proj.weight"]
    rng = np.random.default_rng(4)
    x = _np(rng, (3, 4))                                                  # (L, E), no batch
    pad = np.array([False, False, True])
    _run_both(torch, ours, theirs,
              lambda x: ours(x, x, x, key_padding_mask=pad)[0],
              lambda x: theirs(x, x, x, key_padding_mask=torch.tensor(pad))[0], [x])


def test_mha_fully_masked_row_is_like_torch(torch):
    r"""A query whose keys are all masked: NaN with need_weights=True, b_o (zero attention)
    with need_weights=False, in torch 2.13 and here; and the gradients agree (finite)."""
    n, t, e, nh = 2, 3, 4, 2
    ours, theirs = _mha_pair(torch, e, nh)
    mask = np.zeros((t, t), dtype=bool)
    mask[1] = True                                                        # query 1 sees nothing
    x = np.random.default_rng(5).standard_normal((t, n, e))
    with np.errstate(invalid="ignore"):                                   # softmax of all -inf
        y, w = ours(Tensor(x), Tensor(x), Tensor(x), attn_mask=mask)
    ty, tw = theirs(*[torch.tensor(x)] * 3, attn_mask=torch.tensor(mask))
    assert np.isnan(y.numpy()[1]).all() and np.isnan(ty.detach().numpy()[1]).all()
    assert np.isnan(w.numpy()[:, 1]).all() and np.isnan(tw.detach().numpy()[:, 1]).all()
    np.testing.assert_allclose(y.numpy()[[0, 2]], ty.detach().numpy()[[0, 2]], rtol=1e-10)
    y = ours(Tensor(x), Tensor(x), Tensor(x), attn_mask=mask, need_weights=False)[0]
    np.testing.assert_allclose(y.numpy()[1], np.broadcast_to(ours.out_proj.bias.numpy(), (n, e)))
    _run_both(torch, ours, theirs,
              lambda x: ours(x, x, x, attn_mask=mask, need_weights=False)[0],
              lambda x: theirs(x, x, x, attn_mask=torch.tensor(mask), need_weights=False)[0],
              [x])


def test_mha_state_dict_keys_and_init(torch):
    theirs = torch.nn.MultiheadAttention(8, 2)
    ours = MultiheadAttention(8, 2)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert ours.state_dict()[k].shape == tuple(v.shape)
    # and back: our weights into torch give our numbers
    theirs.double().load_state_dict({k: torch.from_numpy(v.astype(np.float64))
                                     for k, v in ours.state_dict().items()})
    x = np.random.default_rng(6).standard_normal((3, 2, 8))
    ours.to(dtype="float64")
    np.testing.assert_allclose(ours(Tensor(x), Tensor(x), Tensor(x))[0].numpy(),
                               theirs(*[torch.tensor(x)] * 3)[0].detach().numpy(), rtol=1e-10)


def test_mha_init_is_torchs():
    m = MultiheadAttention(16, 4)
    bound = math.sqrt(6 / (16 + 48))                                      # xavier, (3E, E)
    assert np.abs(m.in_proj_weight.numpy()).max() <= bound
    assert np.abs(m.in_proj_weight.numpy()).max() > 0.8 * bound
    assert not m.in_proj_bias.numpy().any() and not m.out_proj.bias.numpy().any()
    assert np.abs(m.out_proj.weight.numpy()).max() <= 1 / 4               # U(-1/sqrt(E), .)


def test_mha_bad_masks_raise():
    m = MultiheadAttention(4, 2)
    x = Tensor(np.zeros((3, 2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"attn_mask.*\(3, 3\).*\(4, 3, 3\).*\(2, 3\)"):
        m(x, x, x, attn_mask=np.zeros((2, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask.*\(2, 3\).*\(3, 2\)"):
        m(x, x, x, key_padding_mask=np.zeros((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="attn_mask must be bool or floating.*int"):
        m(x, x, x, attn_mask=np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="is_causal"):
        m(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(5, 2)


def test_mha_gradcheck_with_masks():
    n, tq, s, e, nh = 2, 3, 4, 4, 2
    m = MultiheadAttention(e, nh)
    rng = np.random.default_rng(7)
    for p in m.parameters():
        p.data = p.data + 0.1 * rng.standard_normal(p.shape).astype(p.dtype)
    attn = rng.standard_normal((n * nh, tq, s))
    attn[1, 2, :2] = -math.inf
    pad = np.array([[False, False, False, True], [False, True, False, False]])
    q, k, v = (Tensor(_np(rng, shape), requires_grad=True)
               for shape in ((tq, n, e), (s, n, e), (s, n, e)))
    module_gradcheck(m, lambda q, k, v: m(q, k, v, attn_mask=attn, key_padding_mask=pad)[0],
                     [q, k, v], seed=0)
    bool_mask = np.triu(np.ones((tq, s), dtype=bool), k=2)
    module_gradcheck(m, lambda q, k, v: m(q, k, v, attn_mask=bool_mask, need_weights=False)[0],
                     [q, k, v], seed=1)


@given(n=st.integers(1, 2), tq=st.integers(1, 4), s=st.integers(1, 4), nh=st.integers(1, 2),
       hs=st.integers(1, 2), kind=st.sampled_from(["none", "bool", "float", "padding"]),
       need_weights=st.booleans())
def test_mha_gradcheck_shapes(n, tq, s, nh, hs, kind, need_weights):
    e = nh * hs
    rng = np.random.default_rng(n * 1000 + tq * 100 + s * 10 + nh + hs)
    m = MultiheadAttention(e, nh, batch_first=True)
    for p in m.parameters():
        p.data = p.data + 0.1 * rng.standard_normal(p.shape).astype(p.dtype)
    kw = {}
    if kind == "bool":                                     # some keys hidden; key 0 always seen
        mask = rng.random((tq, s)) < 0.4
        mask[:, 0] = False
        kw["attn_mask"] = mask
    elif kind == "float":
        kw["attn_mask"] = rng.standard_normal((n * nh, tq, s))
    elif kind == "padding":
        pad = rng.random((n, s)) < 0.4
        pad[:, 0] = False
        kw["key_padding_mask"] = pad
    q, k = Tensor(_np(rng, (n, tq, e)), requires_grad=True), Tensor(_np(rng, (n, s, e)),
                                                                    requires_grad=True)
    module_gradcheck(m, lambda q, k: m(q, k, k, need_weights=need_weights, **kw)[0], [q, k],
                     seed=0)


def test_mha_gradcheck_fully_masked_row():
    r"""need_weights=False: a query that sees no key gets zero weights and passes no gradient."""
    m = MultiheadAttention(4, 2)
    rng = np.random.default_rng(18)
    mask = np.zeros((3, 3), dtype=bool)
    mask[2] = True
    x = Tensor(_np(rng, (3, 2, 4)), requires_grad=True)
    module_gradcheck(m, lambda x: m(x, x, x, attn_mask=mask, need_weights=False)[0], [x], seed=0)


# ---- layers and stacks -----------------------------------------------------------------------
def _layer_pair(torch, ours_cls, theirs_cls, **kwargs):
    torch.manual_seed(0)
    theirs = theirs_cls(**kwargs).double()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = ours_cls(**kwargs)
    _copy_from_torch(ours, theirs)
    return ours, theirs


LAYER_CASES = [  # (norm_first, activation, batch_first, mask kind)
    (False, "relu", False, "none"), (True, "gelu", False, "bool2d"),
    (False, "gelu", True, "float2d"), (True, "relu", True, "padding"),
    (False, "relu", False, "causal"), (True, "gelu", True, "padding+float3d"),
    (False, "relu", True, "bool3d"),
]


@pytest.mark.parametrize("norm_first, activation, batch_first, kind", LAYER_CASES)
def test_encoder_layer_matches_torch(torch, norm_first, activation, batch_first, kind):
    n, t, d, nh = 2, 4, 6, 2
    kwargs = dict(d_model=d, nhead=nh, dim_feedforward=10, dropout=0.0, activation=activation,
                  batch_first=batch_first, norm_first=norm_first)
    ours, theirs = _layer_pair(torch, TransformerEncoderLayer, torch.nn.TransformerEncoderLayer,
                               **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(8)
    kw, tkw = _masks(torch, kind, n, nh, t, t, rng)
    ren = {"attn_mask": "src_mask", "key_padding_mask": "src_key_padding_mask",
           "is_causal": "is_causal"}
    kw = {ren[k]: v for k, v in kw.items()}
    tkw = {ren[k]: v for k, v in tkw.items()}
    x = _np(rng, (n, t, d) if batch_first else (t, n, d))
    _run_both(torch, ours, theirs, lambda x: ours(x, **kw), lambda x: theirs(x, **tkw), [x])


@pytest.mark.parametrize("norm_first, activation, batch_first, kind", LAYER_CASES)
def test_decoder_layer_matches_torch(torch, norm_first, activation, batch_first, kind):
    n, t, s, d, nh = 2, 4, 5, 6, 2
    kwargs = dict(d_model=d, nhead=nh, dim_feedforward=10, dropout=0.0, activation=activation,
                  batch_first=batch_first, norm_first=norm_first)
    ours, theirs = _layer_pair(torch, TransformerDecoderLayer, torch.nn.TransformerDecoderLayer,
                               **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(9)
    kw, tkw = _masks(torch, kind, n, nh, t, t, rng)
    ren = {"attn_mask": "tgt_mask", "key_padding_mask": "tgt_key_padding_mask",
           "is_causal": "tgt_is_causal"}
    kw = {ren[k]: v for k, v in kw.items()}
    tkw = {ren[k]: v for k, v in tkw.items()}
    mem_mask = rng.random((t, s)) < 0.3
    mem_mask[:, 0] = False
    mem_pad = np.zeros((n, s), dtype=bool)
    mem_pad[1, 3:] = True
    kw.update(memory_mask=mem_mask, memory_key_padding_mask=mem_pad)
    tkw.update(memory_mask=torch.tensor(mem_mask), memory_key_padding_mask=torch.tensor(mem_pad))
    shape = (lambda length: (n, length, d)) if batch_first else (lambda length: (length, n, d))
    x, m = _np(rng, shape(t)), _np(rng, shape(s))
    _run_both(torch, ours, theirs, lambda x, m: ours(x, m, **kw),
              lambda x, m: theirs(x, m, **tkw), [x, m])


def test_stacks_match_torch_and_copy_layers(torch):
    n, t, s, d, nh = 2, 3, 4, 4, 2
    torch.manual_seed(0)
    enc_layer = torch.nn.TransformerEncoderLayer(d, nh, 8, dropout=0.0)
    theirs = torch.nn.TransformerEncoder(enc_layer, 2, norm=torch.nn.LayerNorm(d),
                                         enable_nested_tensor=False).double()
    ours = TransformerEncoder(TransformerEncoderLayer(d, nh, 8, dropout=0.0), 2,
                              norm=__import__("tinygrad_llm").nn.LayerNorm(d))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.layers[0].linear1.weight is not ours.layers[1].linear1.weight
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    _copy_from_torch(ours, theirs)
    rng = np.random.default_rng(10)
    mask = Transformer.generate_square_subsequent_mask(s)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(s)
    np.testing.assert_array_equal(mask.numpy(), tmask.numpy())
    pad = np.zeros((n, s), dtype=bool)
    pad[0, -1] = True
    _run_both(torch, ours, theirs,
              lambda x: ours(x, mask=mask.numpy().astype(np.float64), src_key_padding_mask=pad),
              lambda x: theirs(x, mask=tmask.double(), src_key_padding_mask=torch.tensor(pad)),
              [_np(rng, (s, n, d))])
    dec_layer = torch.nn.TransformerDecoderLayer(d, nh, 8, dropout=0.0, norm_first=True)
    theirs = torch.nn.TransformerDecoder(dec_layer, 2).double()
    ours = TransformerDecoder(TransformerDecoderLayer(d, nh, 8, dropout=0.0, norm_first=True), 2)
    _copy_from_torch(ours, theirs)
    tm = Transformer.generate_square_subsequent_mask(t).numpy()
    _run_both(torch, ours, theirs, lambda x, m: ours(x, m, tgt_mask=tm),
              lambda x, m: theirs(x, m, tgt_mask=torch.tensor(tm)),
              [_np(rng, (t, n, d)), _np(rng, (s, n, d))])


@pytest.mark.parametrize("norm_first, activation, batch_first, bias", [
    (False, "relu", False, True), (True, "gelu", True, True), (False, "gelu", True, False)])
def test_transformer_matches_torch(torch, norm_first, activation, batch_first, bias):
    n, t, s, d, nh = 2, 3, 4, 4, 2
    kwargs = dict(d_model=d, nhead=nh, num_encoder_layers=2, num_decoder_layers=2,
                  dim_feedforward=8, dropout=0.0, activation=activation, layer_norm_eps=1e-3,
                  batch_first=batch_first, norm_first=norm_first, bias=bias)
    ours, theirs = _layer_pair(torch, Transformer, torch.nn.Transformer, **kwargs)
    keys = list(theirs.state_dict())
    assert list(ours.state_dict()) == keys
    assert "encoder.norm.weight" in keys and "decoder.norm.weight" in keys
    assert ("decoder.norm.bias" in keys) == bias
    rng = np.random.default_rng(11)
    tgt_mask = Transformer.generate_square_subsequent_mask(t).numpy().astype(np.float64)
    src_pad = np.zeros((n, s), dtype=bool)
    src_pad[1, -2:] = True
    tgt_pad = np.zeros((n, t), dtype=bool)
    tgt_pad[0, -1] = True
    shape = (lambda length: (n, length, d)) if batch_first else (lambda length: (length, n, d))
    _run_both(torch, ours, theirs,
              lambda a, b: ours(a, b, tgt_mask=tgt_mask, src_key_padding_mask=src_pad,
                                tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad),
              lambda a, b: theirs(a, b, tgt_mask=torch.tensor(tgt_mask),
                                  src_key_padding_mask=torch.tensor(src_pad),
                                  tgt_key_padding_mask=torch.tensor(tgt_pad),
                                  memory_key_padding_mask=torch.tensor(src_pad)),
              [_np(rng, shape(s)), _np(rng, shape(t))])


@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_unbatched_matches_torch(torch, batch_first):
    kwargs = dict(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                  dim_feedforward=8, dropout=0.0, batch_first=batch_first)
    ours, theirs = _layer_pair(torch, Transformer, torch.nn.Transformer, **kwargs)
    rng = np.random.default_rng(17)
    tgt_mask = Transformer.generate_square_subsequent_mask(3).numpy().astype(np.float64)
    pad = np.array([False, False, False, True])                           # (S,) no batch
    _run_both(torch, ours, theirs,
              lambda a, b: ours(a, b, tgt_mask=tgt_mask, src_key_padding_mask=pad),
              lambda a, b: theirs(a, b, tgt_mask=torch.tensor(tgt_mask),
                                  src_key_padding_mask=torch.tensor(pad)),
              [_np(rng, (4, 4)), _np(rng, (3, 4))])


def test_transformer_init_and_keys_both_ways(torch):
    ours = Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                       dim_feedforward=16)
    theirs = torch.nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1,
                                  num_decoder_layers=1, dim_feedforward=16)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert all(ours_sd[k].shape == tuple(v.shape) for k, v in theirs_sd.items())
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours_sd.items()})
    w = ours_sd["encoder.layers.0.linear1.weight"]                        # xavier: (16, 8)
    assert np.abs(w).max() <= math.sqrt(6 / 24)


def test_transformer_gradcheck():
    m = Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                    dim_feedforward=6, dropout=0.0, activation="gelu")
    rng = np.random.default_rng(12)
    for p in m.parameters():
        p.data = p.data + 0.1 * rng.standard_normal(p.shape).astype(p.dtype)
    src = Tensor(_np(rng, (3, 2, 4)), requires_grad=True)
    tgt = Tensor(_np(rng, (2, 2, 4)), requires_grad=True)
    tgt_mask = Transformer.generate_square_subsequent_mask(2)
    pad = np.array([[False, False, True], [False, False, False]])
    module_gradcheck(m, lambda s, t: m(s, t, tgt_mask=tgt_mask, src_key_padding_mask=pad,
                                       memory_key_padding_mask=pad), [src, tgt], seed=0)


def test_transformer_bad_shapes_raise():
    m = Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                    dim_feedforward=6)
    with pytest.raises(ValueError, match="batch size"):
        m(Tensor(np.zeros((3, 2, 4))), Tensor(np.zeros((3, 1, 4))))
    with pytest.raises(ValueError, match="d_model"):
        m(Tensor(np.zeros((3, 2, 5))), Tensor(np.zeros((3, 2, 5))))


# ---- PositionalEncoding ----------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
def test_positional_encoding(batch_first):
    d, t, b = 6, 5, 2
    pe = PositionalEncoding(d, max_len=10, dropout=0.0, batch_first=batch_first)
    assert pe.parameters() == [] and pe.state_dict() == {}
    x = np.zeros((b, t, d) if batch_first else (t, b, d))
    y = pe(Tensor(x)).numpy()
    table = y[0] if batch_first else y[:, 0]                              # (T, D)
    pos, i = 3, 1
    assert math.isclose(table[pos, 2 * i], math.sin(pos / 10000 ** (2 * i / d)), rel_tol=1e-6)
    assert math.isclose(table[pos, 2 * i + 1], math.cos(pos / 10000 ** (2 * i / d)),
                        rel_tol=1e-6)
    np.testing.assert_allclose(table[0], [0, 1, 0, 1, 0, 1], atol=1e-7)
    with pytest.raises(ValueError, match="max_len"):
        pe(Tensor(np.zeros((11, b, d))) if not batch_first else Tensor(np.zeros((b, 11, d))))
    assert PositionalEncoding(5, max_len=3).pe.shape == (3, 5)            # odd d_model


def test_positional_encoding_passes_gradient():
    pe = PositionalEncoding(4, max_len=8, dropout=0.0)
    x = Tensor(np.random.default_rng(13).standard_normal((3, 2, 4)), requires_grad=True)
    dy = np.random.default_rng(14).standard_normal((3, 2, 4))
    pe(x).backward(Tensor(dy))
    np.testing.assert_allclose(np.asarray(x.grad), dy)


# ---- devices, dtypes, dropout ----------------------------------------------------------------
def test_transformer_on_each_device(device):
    """float32, every mask kind at once: the same numbers on "cpu" and on the CuPy stand-in."""
    import tinygrad_llm
    rng = np.random.default_rng(15)
    src, tgt = _np(rng, (4, 2, 8)).astype(np.float32), _np(rng, (3, 2, 8)).astype(np.float32)
    g = _np(rng, (3, 2, 8)).astype(np.float32)
    pad = np.array([[False, False, False, True], [False, True, False, False]])
    src_mask = rng.standard_normal((2 * 2, 4, 4)).astype(np.float32)
    results = {}
    for dev in ("cpu", device):
        tinygrad_llm.manual_seed(0)
        m = Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                        dim_feedforward=16, dropout=0.0).to(dev)
        s, t = Tensor(src, requires_grad=True, device=dev), Tensor(tgt, device=dev)
        y = m(s, t, src_mask=src_mask, tgt_mask=Transformer.generate_square_subsequent_mask(3),
              src_key_padding_mask=pad, memory_key_padding_mask=pad)
        y.backward(Tensor(g, device=dev))
        assert y.dtype == np.float32 and y.device == dev
        results[dev] = (y.numpy(), s.grad.numpy(), m.encoder.layers[0].linear1.weight.grad.numpy())
    for a, b in zip(results["cpu"], results[device]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training():
    import tinygrad_llm
    m = Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                    dim_feedforward=16, dropout=0.5)
    rng = np.random.default_rng(16)
    src, tgt = Tensor(_np(rng, (4, 2, 8)), dtype="float32"), Tensor(_np(rng, (3, 2, 8)),
                                                                     dtype="float32")
    tinygrad_llm.manual_seed(1)
    a = m(src, tgt).numpy()
    tinygrad_llm.manual_seed(1)
    b = m(src, tgt).numpy()
    c = m(src, tgt).numpy()
    np.testing.assert_array_equal(a, b)                # the same seed, the same masks
    assert not np.allclose(a, c)
    m.eval()
    np.testing.assert_array_equal(m(src, tgt).numpy(), m(src, tgt).numpy())
    mha = MultiheadAttention(8, 2, dropout=0.5)
    x = Tensor(_np(rng, (3, 2, 8)), dtype="float32")
    w = mha(x, x, x, average_attn_weights=False)[1].numpy()  # dropped, as torch returns them
    assert (w == 0).any()
    mha.eval()
    np.testing.assert_allclose(mha(x, x, x)[1].numpy().sum(-1), 1, rtol=1e-6)


# ---- incremental decoding with a KV cache -------------------------------------------------------
def _tiny_transformer(norm_first, batch_first, seed=0):
    import tinygrad_llm
    tinygrad_llm.manual_seed(seed)
    model = Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                        dim_feedforward=16, dropout=0.0, batch_first=batch_first,
                        norm_first=norm_first)
    model.to(dtype="float64")
    model.eval()
    return model


def _seq(x, start, stop, batch_first):
    r"""Positions start..stop-1 of x (T, N, E), or of (N, T, E) with batch_first."""
    return x[:, start:stop] if batch_first else x[start:stop]


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_cached_decoding_matches_the_full_decoder(norm_first, batch_first):
    rng = np.random.default_rng(0)
    model = _tiny_transformer(norm_first, batch_first)
    n, s_len, t_len, e = 3, 5, 6, 8
    shape = (n, s_len, e) if batch_first else (s_len, n, e)
    src = Tensor(_np(rng, shape), dtype="float64")
    tgt = _np(rng, (n, t_len, e) if batch_first else (t_len, n, e))
    pad = np.zeros((n, s_len), dtype=bool)
    pad[1, 3:] = True                                       # sentence 1 has 3 real tokens
    pad[2, 4:] = True
    memory = model.encode(src, src_key_padding_mask=pad)
    cache = model.decoder.new_cache()
    assert cache.length == 0
    for t in range(1, t_len + 1):
        mask = Transformer.generate_square_subsequent_mask(t, dtype=np.float64)
        full = model.decoder(Tensor(_seq(tgt, 0, t, batch_first)), memory, tgt_mask=mask,
                             memory_key_padding_mask=pad).numpy()
        before = cache
        step, cache = model.decoder(Tensor(_seq(tgt, t - 1, t, batch_first)),
                                    memory if t == 1 else None,
                                    memory_key_padding_mask=pad, cache=cache)
        assert before.length == t - 1 and cache.length == t      # the given cache is unchanged
        np.testing.assert_allclose(step.numpy(), _seq(full, t - 1, t, batch_first),
                                   rtol=0, atol=1e-9)


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_several_positions_at_once_and_unbatched(norm_first):
    rng = np.random.default_rng(1)
    model = _tiny_transformer(norm_first, batch_first=False)
    src, tgt = _np(rng, (4, 8)), _np(rng, (5, 8))                # unbatched (S, E), (T, E)
    memory = model.encode(Tensor(src))
    mask = Transformer.generate_square_subsequent_mask(5, dtype=np.float64)
    full = model.decoder(Tensor(tgt), memory, tgt_mask=mask).numpy()           # (T, E)
    first, cache = model.decoder(Tensor(tgt[:3]), memory, cache=model.decoder.new_cache())
    rest, cache = model.decoder(Tensor(tgt[3:]), None, cache=cache)            # 2 positions
    np.testing.assert_allclose(np.concatenate([first.numpy(), rest.numpy()]), full,
                               rtol=0, atol=1e-9)
    assert cache.length == 5


def test_cache_reorder_follows_the_batch():
    rng = np.random.default_rng(2)
    model = _tiny_transformer(False, batch_first=True)
    src, tgt = _np(rng, (3, 4, 8)), _np(rng, (3, 3, 8))
    memory = model.encode(Tensor(src))
    _, cache = model.decoder(Tensor(tgt[:, :2]), memory, cache=model.decoder.new_cache())
    index = np.array([2, 0, 0, 1])                           # reorder, duplicate
    y, _ = model.decoder(Tensor(tgt[index, 2:]), None, cache=cache.reorder(index))
    mask = Transformer.generate_square_subsequent_mask(3, dtype=np.float64)
    full = model.decoder(Tensor(tgt), memory, tgt_mask=mask).numpy()
    np.testing.assert_allclose(y.numpy(), full[index, 2:], rtol=0, atol=1e-9)


def test_cache_misuse_raises():
    model = _tiny_transformer(False, batch_first=True)
    x = Tensor(np.zeros((1, 1, 8)))
    with pytest.raises(ValueError, match="needs memory"):
        model.decoder(x, None, cache=model.decoder.new_cache())
    with pytest.raises(ValueError, match="tgt_mask"):
        model.decoder(x, x, tgt_mask=np.zeros((1, 1)), cache=model.decoder.new_cache())


def test_positional_encoding_offset():
    pe = PositionalEncoding(6, max_len=10, dropout=0.0)
    x = Tensor(np.zeros((7, 2, 6), dtype=np.float32))
    whole = pe(x).numpy()
    np.testing.assert_array_equal(pe(Tensor(np.zeros((3, 2, 6), np.float32)), offset=4).numpy(),
                                  whole[4:7])
    with pytest.raises(ValueError, match="max_len"):
        pe(x, offset=4)


@pytest.mark.parametrize("dtype, atol", [("float64", 1e-9), ("float32", 1e-5)])
def test_cached_decoding_with_a_memory_mask(dtype, atol):
    rng = np.random.default_rng(3)
    model = _tiny_transformer(True, batch_first=True)
    model.to(dtype=dtype)
    src, tgt = _np(rng, (2, 4, 8)).astype(dtype), _np(rng, (2, 4, 8)).astype(dtype)
    memory_mask = np.zeros((4, 4), dtype=bool)
    memory_mask[0, 1:] = True                                # query 0 sees source 0 only
    memory_mask[2, :2] = True
    memory = model.encode(Tensor(src))
    causal = Transformer.generate_square_subsequent_mask(4, dtype=np.dtype(dtype))
    full = model.decoder(Tensor(tgt), memory, tgt_mask=causal, memory_mask=memory_mask).numpy()
    cache = model.decoder.new_cache()
    for t in range(4):
        y, cache = model.decoder(Tensor(tgt[:, t:t + 1]), memory, memory_mask=memory_mask[t:t + 1],
                                 cache=cache)
        assert y.dtype == dtype
        np.testing.assert_allclose(y.numpy(), full[:, t:t + 1], rtol=0, atol=atol)
