"""tinygrad_llm.optim: each optimizer against torch.optim given the same gradients, parameter
groups, state dicts, clip_grad_norm_ and the schedules."""

import math

import numpy as np
import pytest

from tinygrad_llm import Tensor, optim
from tinygrad_llm.nn import Parameter

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), (2, 3, 2)]
CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)),
]


def _pair(name, kwargs, rng, groups=False):
    ours = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    theirs = [torch.nn.Parameter(torch.tensor(p.numpy().copy())) for p in ours]
    if groups:  # the second group overrides lr and weight decay
        mk = lambda ps: [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.003,  # noqa: E731
                                              "weight_decay": 0.0}]
        return ours, theirs, getattr(optim, name)(mk(ours), **kwargs), \
            getattr(torch.optim, name)(mk(theirs), **kwargs)
    return ours, theirs, getattr(optim, name)(ours, **kwargs), \
        getattr(torch.optim, name)(theirs, **kwargs)


def _steps(ours, theirs, opt, topt, rng, n):
    for _ in range(n):
        for p, q in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad, q.grad = Tensor(g.copy()), torch.tensor(g)
        opt.step()
        topt.step()


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("groups", [False, True])
def test_matches_torch(name, kwargs, groups):
    rng = np.random.default_rng(0)
    ours, theirs, opt, topt = _pair(name, kwargs, rng, groups)
    _steps(ours, theirs, opt, topt, rng, 6)
    for p, q in zip(ours, theirs):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", [CASES[2], CASES[5], CASES[7]])
def test_state_dict_resume_matches_uninterrupted(name, kwargs):
    rng = np.random.default_rng(1)
    ours, theirs, opt, topt = _pair(name, kwargs, rng)
    _steps(ours, theirs, opt, topt, rng, 3)
    state = opt.state_dict()
    # A fresh optimizer on copies of the parameters, given the saved state, continues identically.
    copies = [Parameter(p.numpy().copy()) for p in ours]
    fresh = getattr(optim, name)(copies, lr=123.0)  # hyper-parameters come from the state
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == kwargs["lr"]
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in ours]
    for p, c, g in zip(ours, copies, grads):
        p.grad, c.grad = Tensor(g.copy()), Tensor(g.copy())
    opt.step()
    fresh.step()
    for p, c in zip(ours, copies):
        np.testing.assert_array_equal(p.numpy(), c.numpy())


def test_state_dict_layout_is_torchs():
    rng = np.random.default_rng(2)
    ours, theirs, opt, topt = _pair("AdamW", dict(lr=1e-3), rng)
    _steps(ours, theirs, opt, topt, rng, 2)
    s, t = opt.state_dict(), topt.state_dict()
    assert sorted(s["state"]) == sorted(t["state"])
    assert set(s["state"][0]) == set(t["state"][0])
    assert s["param_groups"][0]["params"] == t["param_groups"][0]["params"]
    np.testing.assert_allclose(s["state"][1]["exp_avg"], t["state"][1]["exp_avg"].numpy(),
                               rtol=1e-6)


def test_load_state_dict_errors():
    ps = [Parameter(np.zeros((2, 2), np.float32)), Parameter(np.zeros(3, np.float32))]
    opt = optim.Adam(ps)
    ps[0].grad, ps[1].grad = Tensor(np.ones((2, 2), np.float32)), Tensor(np.ones(3, np.float32))
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        optim.Adam([{"params": ps[:1]}, {"params": ps[1:]}]).load_state_dict(state)
    with pytest.raises(ValueError, match="has shape"):
        other = [Parameter(np.zeros((2, 3), np.float32)), Parameter(np.zeros(3, np.float32))]
        optim.Adam(other).load_state_dict(state)


def test_zero_grad_and_skips_params_without_grad():
    a, b = Parameter(np.ones(2, np.float32)), Parameter(np.ones(2, np.float32))
    opt = optim.SGD([a, b], lr=0.5)
    a.grad = Tensor(np.ones(2, np.float32))
    opt.step()
    np.testing.assert_array_equal(a.numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(b.numpy(), [1, 1])  # no grad: untouched
    opt.zero_grad()
    assert a.grad is None


def test_bad_arguments():
    p = Parameter(np.ones(2, np.float32))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="unknown option"):
        optim.SGD([{"params": [p], "momentun": 0.9}], lr=0.1)
    with pytest.raises(ValueError, match="does not require grad"):
        optim.SGD([Tensor(np.ones(2, np.float32))], lr=0.1)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(3)
    ours = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    theirs = [torch.nn.Parameter(torch.tensor(p.numpy())) for p in ours]
    for p, q in zip(ours, theirs):
        g = rng.standard_normal(p.shape).astype(np.float32)
        p.grad, q.grad = Tensor(g.copy()), torch.tensor(g)
    norm = optim.clip_grad_norm_(ours, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert norm.item() == pytest.approx(tnorm.item(), rel=1e-6)
    for p, q in zip(ours, theirs):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_grad_norm_skips_missing_grads():
    a, b = Parameter(np.ones(2, np.float32)), Parameter(np.ones(2, np.float32))
    a.grad = Tensor(np.array([3.0, 4.0], np.float32))
    assert optim.clip_grad_norm_([a, b], 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.8], rtol=1e-5)
    assert optim.clip_grad_norm_([b], 1.0).item() == 0.0


def test_warmup_cosine_is_nanogpts():
    def get_lr(it, learning_rate=1e-3, warmup_iters=100, lr_decay_iters=2000, min_lr=1e-4):
        # nanoGPT's train.py, verbatim apart from the arguments
        if it < warmup_iters:
            return learning_rate * (it + 1) / (warmup_iters + 1)
        if it > lr_decay_iters:
            return min_lr
        decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
        return min_lr + coeff * (learning_rate - min_lr)

    for it in [0, 1, 50, 99, 100, 101, 1000, 1999, 2000, 2001, 5000]:
        assert optim.warmup_cosine_lr(it, 1e-3, 100, 2000, 1e-4) == pytest.approx(get_lr(it))


def test_constant_and_step_schedules_and_set_lr():
    assert optim.constant_lr(123, 0.1) == 0.1
    sched = torch.optim.lr_scheduler.StepLR(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), step_size=3, gamma=0.5)
    for it in range(10):
        assert optim.step_lr(it, 0.1, 3, 0.5) == pytest.approx(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    opt = optim.AdamW([{"params": [Parameter(np.ones(1, np.float32))]},
                       {"params": [Parameter(np.ones(1, np.float32))], "lr": 5.0}])
    optim.set_lr(opt, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
