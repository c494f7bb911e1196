"""tinygrad_llm.nn: the Module API (registration order, names, modes, state dicts, repr) and the
layers' parity with torch.nn when torch's own state dict is loaded: outputs and gradients."""

import numpy as np
import pytest

import tinygrad_llm
from tinygrad_llm import Tensor, nn
from tinygrad_llm.testing import gradcheck


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4, bias=False)])
        self.norm = nn.LayerNorm(4)
        self.head = nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.Dropout(0.5))

    def forward(self, ids):
        x = self.emb(ids)
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x))


def test_parameters_in_insertion_order_with_dotted_names():
    names = [n for n, _ in Net().named_parameters()]
    assert names == ["emb.weight", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                     "norm.weight", "norm.bias", "head.0.weight", "head.0.bias"]
    net = Net()
    assert [p.shape for p in net.parameters()] == [(10, 4), (4, 4), (4,), (4, 4), (4,), (4,),
                                                   (3, 4), (3,)]
    assert net.num_parameters() == 40 + 20 + 16 + 8 + 15
    assert all(p.requires_grad for p in net.parameters())


def test_train_eval_modes_reach_every_module():
    net = Net()
    net.eval()
    assert not any(m.training for m in net.modules())
    x = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())   # no dropout in eval
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_and_backward_fill_every_parameter():
    net = Net()
    net(np.array([[1, 2, 3]])).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip_and_to_dtype():
    a, b = Net(), Net()
    sd = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    b.load_state_dict(sd)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    sd["emb.weight"][:] = 0                                 # a copy, not a view of the weights
    assert a.emb.weight.numpy().any()
    params = a.parameters()
    a.to(dtype="float64")
    assert all(p.dtype == np.float64 for p in a.parameters())
    assert all(p is q for p, q in zip(params, a.parameters()))  # same objects: optimizers hold


def test_load_state_dict_names_every_problem():
    net = Net()
    sd = net.state_dict()
    missing = dict(sd)
    del missing["norm.bias"]
    with pytest.raises(KeyError, match="norm.bias"):
        net.load_state_dict(missing)
    with pytest.raises(KeyError, match="extra.weight"):
        net.load_state_dict(dict(sd, **{"extra.weight": np.zeros(2)}))
    wrong = dict(sd, **{"blocks.0.weight": np.zeros((4, 5))})
    with pytest.raises(ValueError, match=r"blocks.0.weight.*\(4, 5\)"):
        net.load_state_dict(wrong)
    result = net.load_state_dict(missing, strict=False)
    assert result["missing_keys"] == ["norm.bias"]


def test_repr_shows_the_tree_with_parameter_counts():
    text = repr(Net())
    assert "Net(" in text and "(blocks): ModuleList" in text
    assert "Linear(in_features=4, out_features=4, bias=True)" in text
    assert "99 params" in text


def test_setattr_before_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_manual_seed_makes_initialisation_reproducible():
    tinygrad_llm.manual_seed(42)
    a = nn.Linear(5, 3).weight.numpy()
    tinygrad_llm.manual_seed(42)
    b = nn.Linear(5, 3).weight.numpy()
    np.testing.assert_array_equal(a, b)
    bound = 1 / np.sqrt(5)
    assert np.abs(a).max() <= bound                       # torch's U(-1/sqrt(in), 1/sqrt(in))


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck_over_weight_and_bias(bias):
    layer = nn.Linear(3, 2, bias=bias)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 4, 3)), requires_grad=True, dtype="float64")
    params = [layer.weight] + ([layer.bias] if bias else [])
    gradcheck(lambda x, *ps: nn.functional.linear(x, *ps), [x, *params], seed=0)


# ---- parity with torch.nn: load torch's state dict, compare outputs and gradients ------------
@pytest.fixture
def torch():
    """torch, or skip: only these parity tests need it."""
    return pytest.importorskip("torch")


def _compare(torch, ours, theirs, x_ours, x_theirs, rtol=1e-5, atol=1e-6):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    y, ty = ours(x_ours), theirs(x_theirs)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(Tensor(g))
    ty.backward(torch.tensor(g))
    tgrads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tgrads[name].grad.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)
    return y


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(torch, bias):
    theirs = torch.nn.Linear(6, 5, bias=bias)
    x = np.random.default_rng(2).standard_normal((3, 4, 6)).astype(np.float32)
    xt, xo = torch.tensor(x, requires_grad=True), Tensor(x, requires_grad=True)
    _compare(torch, nn.Linear(6, 5, bias=bias), theirs, xo, xt)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_matches_torch(torch):
    theirs = torch.nn.Embedding(11, 4)
    ids = np.random.default_rng(3).integers(0, 11, size=(3, 7))           # repeats: scatter-add
    _compare(torch, nn.Embedding(11, 4), theirs, Tensor(ids), torch.tensor(ids))


@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_matches_torch(torch, bias):
    theirs = torch.nn.LayerNorm(8, bias=bias)
    with torch.no_grad():                      # non-trivial weights, so dw and db are tested
        theirs.weight.normal_()
        if bias:
            theirs.bias.normal_()
    x = (np.random.default_rng(4).standard_normal((2, 5, 8)) * 3 + 1).astype(np.float32)
    xt, xo = torch.tensor(x, requires_grad=True), Tensor(x, requires_grad=True)
    _compare(torch, nn.LayerNorm(8, bias=bias), theirs, xo, xt, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_state_dict_names_match_torch_modules(torch):
    tnet = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4),
                               torch.nn.Linear(4, 2, bias=False))
    ours = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2, bias=False))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in tnet.state_dict().items()}
    ours.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    x = np.random.default_rng(5).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), tnet(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
