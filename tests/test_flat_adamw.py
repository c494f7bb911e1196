"""tinygrad_llm.optim's flat buffers: Adam/AdamW over one flat array per role, against torch.optim
given the same gradients, including when a user rebinds ``p.data`` or ``p.grad``; and
clip_grad_norm_ over the flat buffer and over row-sparse gradients."""

import numpy as np
import pytest

from tinygrad_llm import Tensor, nn, optim
from tinygrad_llm.nn import Parameter
from tinygrad_llm.sparse import sparse_embedding

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), (2, 3, 2)]


def _pair(rng, name="AdamW", **kwargs):
    ours = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    theirs = [torch.nn.Parameter(torch.tensor(p.numpy())) for p in ours]
    groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.0}]  # noqa: E731
    kwargs = dict(lr=1e-2, weight_decay=0.1, **kwargs)
    return (ours, theirs, getattr(optim, name)(groups(ours), **kwargs),
            getattr(torch.optim, name)(groups(theirs), **kwargs))


def _close(ours, theirs):
    for p, q in zip(ours, theirs):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


def _backward(ps, qs, rng):
    """The same loss on both sides: sum of (random weights * p) over the parameters."""
    ws = [rng.standard_normal(p.shape).astype(np.float32) for p in ps]
    sum((p * Tensor(w)).sum() for p, w in zip(ps, ws)).backward()
    sum((q * torch.tensor(w)).sum() for q, w in zip(qs, ws)).backward()


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_parameters_and_gradients_are_views_of_one_buffer(name):
    rng = np.random.default_rng(0)
    ours, theirs, opt, topt = _pair(rng, name)
    flat = opt.flat
    assert flat is not None
    for _ in range(4):
        opt.zero_grad()
        topt.zero_grad()
        _backward(ours, theirs, rng)
        for p in ours:  # backward accumulated in place, into the flat gradient buffer
            assert p.data.base is flat.buffers["param"]
            assert p.grad.data.base is flat.buffers["grad"]
        opt.step()
        topt.step()
        _close(ours, theirs)
    assert opt.state[0]["exp_avg"].base is flat.buffers["exp_avg"]


def test_zero_grad_is_one_fill_and_set_to_none_drops():
    rng = np.random.default_rng(1)
    ours, theirs, opt, _ = _pair(rng)
    _backward(ours, theirs, rng)
    opt.zero_grad()
    assert all(not p.grad.numpy().any() for p in ours)
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in ours)


def test_replaced_grads_and_model_zero_grad_still_reach_the_update():
    rng = np.random.default_rng(2)
    ours, theirs, opt, topt = _pair(rng)
    # 1. the user assigns .grad directly
    for p, q in zip(ours, theirs):
        g = rng.standard_normal(p.shape).astype(np.float32)
        p.grad, q.grad = Tensor(g.copy()), torch.tensor(g)
    opt.step()
    topt.step()
    _close(ours, theirs)
    # 2. gradients dropped outside the optimizer (as Module.zero_grad does), then backward
    for p, q in zip(ours, theirs):
        p.grad, q.grad = None, None
    _backward(ours, theirs, rng)
    opt.step()
    topt.step()
    _close(ours, theirs)
    # 3. no zero_grad at all: the next backward accumulates onto the adopted gradients
    _backward(ours, theirs, rng)
    opt.step()
    topt.step()
    _close(ours, theirs)


def test_rebound_parameter_data_is_adopted():
    """Module.load_state_dict rebinds p.data; the next step must start from the new values."""
    rng = np.random.default_rng(3)
    model = nn.Linear(4, 3)
    tmodel = torch.nn.Linear(4, 3)
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-2)
    new = {k: rng.standard_normal(v.shape).astype(np.float32)
           for k, v in model.state_dict().items()}
    model.load_state_dict(new)
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in new.items()})
    x = rng.standard_normal((5, 4)).astype(np.float32)
    for _ in range(2):
        opt.zero_grad()
        topt.zero_grad()
        model(Tensor(x)).sum().backward()
        tmodel(torch.tensor(x)).sum().backward()
        opt.step()
        topt.step()
    _close([model.weight, model.bias], [tmodel.weight, tmodel.bias])
    assert model.weight.data.base is opt.flat.buffers["param"]


def test_params_without_grad_are_skipped_as_in_torch():
    rng = np.random.default_rng(4)
    ours, theirs, opt, topt = _pair(rng)
    for _ in range(3):
        for p, q in zip(ours[1:], theirs[1:]):  # the first parameter never gets a gradient
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad, q.grad = Tensor(g.copy()), torch.tensor(g)
        opt.step()
        topt.step()
    _close(ours, theirs)
    assert 0 not in opt.state


def test_module_to_after_the_optimizer_rebuilds_the_buffers():
    rng = np.random.default_rng(5)
    model = nn.Linear(3, 2)
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    x = Tensor(rng.standard_normal((4, 3)).astype(np.float32))
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()
    model.to(dtype=np.float64)
    opt.zero_grad()
    model(x.astype(np.float64)).sum().backward()
    opt.step()
    assert opt.flat.dtype == np.float64 and model.weight.dtype == np.float64
    assert opt.state[0]["exp_avg"].dtype == np.float64


def test_mixed_dtypes_fall_back_to_per_parameter_updates():
    a = Parameter(np.ones(2, np.float32))
    b = Parameter(np.ones(2, np.float64))
    opt = optim.AdamW([a, b], lr=0.1)
    assert opt.flat is None
    a.grad, b.grad = Tensor(np.ones(2, np.float32)), Tensor(np.ones(2, np.float64))
    opt.step()
    assert a.dtype == np.float32 and b.dtype == np.float64
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_over_the_flat_buffer_matches_torch(max_norm):
    rng = np.random.default_rng(6)
    ours, theirs, opt, _ = _pair(rng)
    opt.zero_grad()
    _backward(ours, theirs, rng)
    norm = optim.clip_grad_norm_(ours, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert norm.item() == pytest.approx(tnorm.item(), rel=1e-6)
    for p, q in zip(ours, theirs):
        assert p.grad.data.base is opt.flat.buffers["grad"]
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6, atol=1e-7)
    # a subset of the parameters does not cover the buffer: clipped view by view
    sub = optim.clip_grad_norm_(ours[:1], 1e-3)
    assert sub.item() == pytest.approx(np.linalg.norm(theirs[0].grad.numpy()), rel=1e-5)
    np.testing.assert_allclose(ours[1].grad.numpy(), theirs[1].grad.numpy(), rtol=1e-6)


def test_clip_grad_norm_handles_row_sparse_gradients():
    rng = np.random.default_rng(7)
    w_sparse = Parameter(rng.standard_normal((6, 3)).astype(np.float32))
    w_dense = Parameter(w_sparse.numpy().copy())
    ids = Tensor(np.array([[0, 2, 2], [5, 0, 2]]))
    g = rng.standard_normal((2, 3, 3)).astype(np.float32)
    sparse_embedding(ids, w_sparse).backward(Tensor(g))
    nn.functional.embedding(ids, w_dense).backward(Tensor(g))
    for max_norm in (1e3, 0.5):
        n_sparse = optim.clip_grad_norm_([w_sparse], max_norm)
        n_dense = optim.clip_grad_norm_([w_dense], max_norm)
        assert n_sparse.item() == pytest.approx(n_dense.item(), rel=1e-6)
        np.testing.assert_allclose(w_sparse.grad.numpy(), w_dense.grad.numpy(), rtol=1e-6,
                                   atol=1e-7)
