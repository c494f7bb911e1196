"""tinygrad_llm.optim: each optimizer against torch.optim given the same gradients (with and
without flat buffers), parameter groups, state dicts, zero_grad, clip_grad_norm_ and the
schedules.

Only the parity tests need torch (the ``torch`` fixture skips them where it is missing); the rest
run on NumPy alone."""

import inspect
import math

import numpy as np
import pytest

from tinygrad_llm import Tensor, nn, optim
from tinygrad_llm.nn import Parameter

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
# Adam and AdamW once more with flat=False: parameter by parameter, no storage moved.
CASES += [(name, dict(kwargs, flat=False)) for name, kwargs in CASES if name != "SGD"]


@pytest.fixture
def torch():
    """torch, for the parity tests only (they skip where it is not installed)."""
    return pytest.importorskip("torch")


def _groups(ps, groups):
    """One group, or two where the second overrides lr and weight decay."""
    if not groups:
        return ps
    return [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.003, "weight_decay": 0.0}]


def _ours(name, kwargs, rng, groups=False):
    ps = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    return ps, getattr(optim, name)(_groups(ps, groups), **kwargs)


def _theirs(torch, name, kwargs, ours, groups=False):
    """torch's optimizer of the same name on copies of ``ours`` (torch has no ``flat``)."""
    kwargs = {k: v for k, v in kwargs.items() if k != "flat"}
    qs = [torch.nn.Parameter(torch.tensor(p.numpy().copy())) for p in ours]
    return qs, getattr(torch.optim, name)(_groups(qs, groups), **kwargs)


def _grads(rng, ps):
    return [rng.standard_normal(p.shape).astype(np.float32) for p in ps]


def _set_grads(ps, grads):
    for p, g in zip(ps, grads):
        p.grad = Tensor(g.copy())


def _step_both(torch, rng, ours, opt, theirs, topt, steps):
    """``steps`` optimizer steps on both sides, with the same random gradients."""
    for _ in range(steps):
        grads = _grads(rng, ours)
        _set_grads(ours, grads)
        for q, g in zip(theirs, grads):
            q.grad = torch.tensor(g)
        opt.step()
        topt.step()


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("groups", [False, True])
def test_matches_torch(torch, name, kwargs, groups):
    rng = np.random.default_rng(0)
    ours, opt = _ours(name, kwargs, rng, groups)
    theirs, topt = _theirs(torch, name, kwargs, ours, groups)
    _step_both(torch, rng, ours, opt, theirs, topt, steps=6)
    for p, q in zip(ours, theirs):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


# (saved, loaded): the flat option of the optimizer that saves and of the one that loads
LAYOUTS = [(True, True), (True, False), (False, True), (False, False)]


@pytest.mark.parametrize("name,kwargs,saved,loaded",
                         [(*CASES[2], {}, {})] + [(*CASES[k], {"flat": a}, {"flat": b})
                                                  for k in (5, 7) for a, b in LAYOUTS])
def test_state_dict_resume_matches_uninterrupted(name, kwargs, saved, loaded):
    """Save, load into a fresh optimizer on copies of the parameters, and both continue with the
    same numbers; for Adam(W) also across the two layouts (flat buffers or not)."""
    rng = np.random.default_rng(1)
    ours, opt = _ours(name, dict(kwargs, **saved), rng)
    for _ in range(3):
        _set_grads(ours, _grads(rng, ours))
        opt.step()
    state = opt.state_dict()
    copies = [Parameter(p.numpy().copy()) for p in ours]
    fresh = getattr(optim, name)(copies, lr=123.0, **loaded)  # hyper-parameters from the state
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == kwargs["lr"]
    for _ in range(2):
        grads = _grads(rng, ours)
        _set_grads(ours, grads)
        _set_grads(copies, grads)
        opt.step()
        fresh.step()
    for p, c in zip(ours, copies):
        np.testing.assert_array_equal(p.numpy(), c.numpy())


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_state_dict_is_the_same_with_and_without_flat_buffers(name):
    states = []
    for flat in (True, False):
        rng = np.random.default_rng(2)
        ours, opt = _ours(name, dict(lr=1e-2, weight_decay=0.1, flat=flat), rng, groups=True)
        for _ in range(3):
            _set_grads(ours, _grads(rng, ours))
            opt.step()
        states.append(opt.state_dict())
    flat, plain = states
    assert flat["param_groups"] == plain["param_groups"]
    assert all("flat" not in g for g in flat["param_groups"])
    assert sorted(flat["state"]) == sorted(plain["state"]) == [0, 1, 2]
    for i, s in flat["state"].items():
        assert set(s) == set(plain["state"][i]) == {"step", "exp_avg", "exp_avg_sq"}
        assert s["step"] == plain["state"][i]["step"] == 3
        for k in ("exp_avg", "exp_avg_sq"):
            assert type(s[k]) is np.ndarray and s[k].base is None   # a host copy, not a view
            assert s[k].shape == SHAPES[i]
            np.testing.assert_array_equal(s[k], plain["state"][i][k])


def test_state_dict_layout_is_torchs(torch):
    rng = np.random.default_rng(2)
    ours, opt = _ours("AdamW", dict(lr=1e-3), rng)
    theirs, topt = _theirs(torch, "AdamW", dict(lr=1e-3), ours)
    _step_both(torch, rng, ours, opt, theirs, topt, steps=2)
    s, t = opt.state_dict(), topt.state_dict()
    assert sorted(s["state"]) == sorted(t["state"])
    assert set(s["state"][0]) == set(t["state"][0])
    assert s["param_groups"][0]["params"] == t["param_groups"][0]["params"]
    np.testing.assert_allclose(s["state"][1]["exp_avg"], t["state"][1]["exp_avg"].numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("flat", [True, False])
def test_load_state_dict_errors(flat):
    ps = [Parameter(np.zeros((2, 2), np.float32)), Parameter(np.zeros(3, np.float32))]
    opt = optim.Adam(ps, flat=flat)
    ps[0].grad, ps[1].grad = Tensor(np.ones((2, 2), np.float32)), Tensor(np.ones(3, np.float32))
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        optim.Adam([{"params": ps[:1]}, {"params": ps[1:]}], flat=flat).load_state_dict(state)
    with pytest.raises(ValueError, match="has shape"):
        other = [Parameter(np.zeros((2, 3), np.float32)), Parameter(np.zeros(3, np.float32))]
        optim.Adam(other, flat=flat).load_state_dict(state)


def test_zero_grad_and_skips_params_without_grad():
    a, b = Parameter(np.ones(2, np.float32)), Parameter(np.ones(2, np.float32))
    opt = optim.SGD([a, b], lr=0.5)
    a.grad = Tensor(np.ones(2, np.float32))
    opt.step()
    np.testing.assert_array_equal(a.numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(b.numpy(), [1, 1])  # no grad: untouched
    opt.zero_grad()
    assert a.grad is None


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1),
                                  lambda ps: optim.Adam(ps),
                                  lambda ps: optim.AdamW(ps),
                                  lambda ps: optim.Adam(ps, flat=False),
                                  lambda ps: optim.AdamW(ps, flat=False)],
                         ids=["SGD", "Adam", "AdamW", "Adam-not-flat", "AdamW-not-flat"])
def test_zero_grad_sets_to_none_by_default_as_torch(make):
    ps = [Parameter(np.ones((2, 3), np.float32)), Parameter(np.ones(4, np.float32))]
    opt = make(ps)
    assert inspect.signature(opt.zero_grad).parameters["set_to_none"].default is True
    for _ in range(2):  # before and after a step (flat buffers rebind p.grad at a step)
        for p in ps:
            p.grad = Tensor(np.full(p.shape, 2.0, np.float32))
        opt.zero_grad()
        assert all(p.grad is None for p in ps)
        for p in ps:
            p.grad = Tensor(np.full(p.shape, 2.0, np.float32))
        opt.step()
    kept = [p.grad for p in ps]
    opt.zero_grad(set_to_none=False)                 # zeros, in place, as torch's
    for p, g in zip(ps, kept):
        assert p.grad is not None and p.grad.dtype == np.float32 and not p.grad.numpy().any()
        if not getattr(opt, "flat", None):           # nothing moved: the same arrays, zeroed
            assert p.grad is g


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
    with pytest.raises(TypeError):
        optim.Adam([p], 1e-3, (0.9, 0.999), 1e-8, 0.0, False)  # flat is keyword-only


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("flat", [True, False])
def test_adam_refuses_a_row_sparse_gradient(name, flat):
    w = Parameter(np.ones((6, 3), np.float32))
    opt = getattr(optim, name)([w], lr=0.1, flat=flat)
    ids, dy = Tensor(np.array([0, 2])), Tensor(np.ones((2, 3), np.float32))
    nn.functional.embedding(ids, w, sparse=True).backward(dy)
    with pytest.raises(TypeError, match="row-sparse gradient .* only plain SGD"):
        opt.step()
    np.testing.assert_array_equal(w.numpy(), 1.0)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(torch, max_norm):
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


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_is_the_formula(max_norm):
    r"""total = sqrt(sum g^2) over every gradient; g <- g min(1, max_norm / (total + 1e-6))."""
    rng = np.random.default_rng(3)
    ours = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    grads = _grads(rng, ours)
    _set_grads(ours, grads)
    total = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    assert optim.clip_grad_norm_(ours, max_norm).item() == pytest.approx(total, rel=1e-6)
    coef = min(1.0, max_norm / (total + 1e-6))
    for p, g in zip(ours, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-6, atol=1e-7)


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


def test_step_lr_matches_torch(torch):
    sched = torch.optim.lr_scheduler.StepLR(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), step_size=3, gamma=0.5)
    for it in range(10):
        assert optim.step_lr(it, 0.1, 3, 0.5) == pytest.approx(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()


def test_constant_and_step_schedules_and_set_lr():
    assert optim.constant_lr(123, 0.1) == 0.1
    assert [optim.step_lr(it, 0.1, 3, 0.5) for it in (0, 2, 3, 5, 6, 9)] == \
        pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.0125])
    opt = optim.AdamW([{"params": [Parameter(np.ones(1, np.float32))]},
                       {"params": [Parameter(np.ones(1, np.float32))], "lr": 5.0}])
    optim.set_lr(opt, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]


def test_warmup_linear_lr_is_bert_s_schedule():
    """Hugging Face's get_linear_schedule_with_warmup, as its LambdaLR factor times lr."""
    def factor(it, warmup, total):
        if it < warmup:
            return it / max(1, warmup)
        return max(0.0, (total - it) / max(1, total - warmup))

    for it in [0, 1, 5, 9, 10, 11, 50, 99, 100, 150]:
        assert optim.warmup_linear_lr(it, 2e-5, 10, 100) == pytest.approx(2e-5 * factor(it, 10,
                                                                                        100))
    assert optim.warmup_linear_lr(0, 1e-3, 0, 10) == 1e-3                 # no warm-up
