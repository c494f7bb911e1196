"""tinygrad_llm.optim's flat buffers (Adam and AdamW with ``flat=True``): parameters, gradients
and moments are views of one flat array per role, and the numbers are the same, to the last bit,
as with ``flat=False`` (parameter by parameter, nothing moved), also when a user rebinds
``p.data`` or ``p.grad`` or a parameter misses its gradient; both against torch.optim; and
clip_grad_norm_ over the flat buffer and over row-sparse gradients.

Only the parity tests need torch (the ``torch`` fixture skips them where it is missing)."""

import numpy as np
import pytest

from tinygrad_llm import Tensor, nn, optim
from tinygrad_llm.nn import Parameter

SHAPES = [(3, 4), (5,), (2, 3, 2)]


@pytest.fixture
def torch():
    """torch, for the parity tests only (they skip where it is not installed)."""
    return pytest.importorskip("torch")


def _groups(ps):
    """Two groups: the second without weight decay."""
    return [{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.0}]


def _twins(rng, name="AdamW", dtype=np.float32, device=None):
    """The same parameters twice, ``ps`` under flat buffers and ``qs`` without."""
    ps = [Parameter(rng.standard_normal(s).astype(dtype), device=device) for s in SHAPES]
    qs = [Parameter(p.numpy().copy(), device=device) for p in ps]
    make = lambda params, flat: getattr(optim, name)(  # noqa: E731
        _groups(params), lr=1e-2, weight_decay=0.1, flat=flat)
    return ps, qs, make(ps, True), make(qs, False)


def _equal(ps, qs):
    for p, q in zip(ps, qs):
        assert p.dtype == q.dtype
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def _backward(rng, *param_lists):
    """The same loss on each list of parameters: sum of (random weights * p)."""
    ws = [rng.standard_normal(p.shape) for p in param_lists[0]]
    for ps in param_lists:
        sum((p * Tensor(w.astype(p.dtype), device=p.device)).sum()
            for p, w in zip(ps, ws)).backward()


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("set_to_none", [True, False])
def test_parameters_and_gradients_are_views_of_one_buffer(name, set_to_none):
    rng = np.random.default_rng(0)
    ps, qs, opt, ref = _twins(rng, name)
    flat = opt.flat
    assert flat is not None and ref.flat is None
    for _ in range(4):
        opt.zero_grad(set_to_none=set_to_none)
        ref.zero_grad(set_to_none=set_to_none)
        _backward(rng, ps, qs)
        for p in ps:
            assert p.data.base is flat.buffers["param"]
            # zeros in place: backward summed straight into the buffer; None: new arrays
            assert (p.grad.data.base is flat.buffers["grad"]) is not set_to_none
        grads = [p.grad for p in ps]
        opt.step()
        ref.step()
        assert all(p.grad is g for p, g in zip(ps, grads))  # the step only reads p.grad
        _equal(ps, qs)
    assert opt.state[0]["exp_avg"].base is flat.buffers["exp_avg"]


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_and_parameter_by_parameter_give_the_same_bits(name, dtype, device):
    """Several steps, both weight decays, two groups; the first parameter skips every third
    step, so its group leaves the flat path for the parameter-by-parameter one."""
    rng = np.random.default_rng(1)
    ps, qs, opt, ref = _twins(rng, name, dtype, device)
    assert opt.flat is not None
    for step in range(7):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in ps]
        for k, (p, q, g) in enumerate(zip(ps, qs, grads)):
            missing = k == 0 and step % 3 == 2
            p.grad = None if missing else Tensor(g.copy(), device=device)
            q.grad = None if missing else Tensor(g.copy(), device=device)
        opt.step()
        ref.step()
        _equal(ps, qs)
    for i in opt.state:
        assert opt.state[i]["step"] == ref.state[i]["step"]
        for k in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(np.asarray(opt.state_dict()["state"][i][k]),
                                          ref.state_dict()["state"][i][k])


def test_flat_false_moves_nothing():
    rng = np.random.default_rng(2)
    _, qs, _, ref = _twins(rng)
    data = [q.data for q in qs]
    for _ in range(3):
        grads = [Tensor(rng.standard_normal(q.shape).astype(np.float32)) for q in qs]
        kept = [g.numpy().copy() for g in grads]
        for q, g in zip(qs, grads):
            q.grad = g
        ref.step()
        for q, d, g, k in zip(qs, data, grads, kept):
            assert q.data is d and d.base is None          # updated in place, never rebound
            assert q.grad is g                              # the gradient only read
            np.testing.assert_array_equal(g.numpy(), k)
    assert ref.flat is None
    assert all(s[k].base is None for s in ref.state.values() for k in ("exp_avg", "exp_avg_sq"))


def test_flat_true_moves_the_parameter_storage_and_only_reads_the_gradient():
    """What the docstring warns about: an array taken before the optimizer is built is not the
    parameter any more. The gradient the user assigned stays theirs, unchanged."""
    rng = np.random.default_rng(3)
    p = Parameter(rng.standard_normal((3, 4)).astype(np.float32))
    old = p.data
    before = old.copy()
    opt = optim.AdamW([p], lr=0.1)
    assert p.data is not old and p.data.base is opt.flat.buffers["param"]
    np.testing.assert_array_equal(p.numpy(), before)
    g = Tensor(np.ones((3, 4), np.float32))
    p.grad = g
    opt.step()
    np.testing.assert_array_equal(old, before)              # the old array did not move
    assert not np.array_equal(p.numpy(), before)
    assert p.grad is g and g.data.base is None
    np.testing.assert_array_equal(g.numpy(), 1.0)
    np.testing.assert_array_equal(opt.flat.buffers["grad"], 1.0)   # a copy went to the buffer


def test_zero_grad_drops_by_default_and_fills_when_asked():
    rng = np.random.default_rng(4)
    ps, qs, opt, ref = _twins(rng)
    _backward(rng, ps, qs)
    opt.zero_grad(set_to_none=False)                        # one fill: zeros, views of the buffer
    assert all(not p.grad.numpy().any() for p in ps)
    assert all(p.grad.data.base is opt.flat.buffers["grad"] for p in ps)
    kept = [q.grad for q in qs]
    ref.zero_grad(set_to_none=False)                        # zeros in the same arrays
    assert all(q.grad is g and not g.numpy().any() for q, g in zip(qs, kept))
    opt.zero_grad()
    ref.zero_grad()
    assert all(p.grad is None for p in ps + qs)


def test_replaced_grads_and_model_zero_grad_still_reach_the_update():
    rng = np.random.default_rng(5)
    ps, qs, opt, ref = _twins(rng)
    # 1. the user assigns .grad directly
    for p, q in zip(ps, qs):
        g = rng.standard_normal(p.shape).astype(np.float32)
        p.grad, q.grad = Tensor(g.copy()), Tensor(g.copy())
    opt.step()
    ref.step()
    _equal(ps, qs)
    # 2. gradients dropped outside the optimizer (as Module.zero_grad does), then backward
    for p, q in zip(ps, qs):
        p.grad, q.grad = None, None
    _backward(rng, ps, qs)
    opt.step()
    ref.step()
    _equal(ps, qs)
    # 3. no zero_grad at all: the next backward accumulates onto the adopted gradients
    _backward(rng, ps, qs)
    opt.step()
    ref.step()
    _equal(ps, qs)


def test_rebound_parameter_data_is_adopted():
    """Module.load_state_dict rebinds p.data; the next step must start from the new values."""
    rng = np.random.default_rng(6)
    models = [nn.Linear(4, 3), nn.Linear(4, 3)]
    opts = [optim.AdamW(m.parameters(), lr=1e-2, flat=flat)
            for m, flat in zip(models, [True, False])]
    new = {k: rng.standard_normal(v.shape).astype(np.float32)
           for k, v in models[0].state_dict().items()}
    x = Tensor(rng.standard_normal((5, 4)).astype(np.float32))
    for model in models:
        model.load_state_dict(new)
    for _ in range(2):
        for model, opt in zip(models, opts):
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
    _equal([models[0].weight, models[0].bias], [models[1].weight, models[1].bias])
    assert not np.array_equal(models[0].weight.numpy(), new["weight"])
    assert models[0].weight.data.base is opts[0].flat.buffers["param"]


def test_params_without_grad_are_skipped_as_in_torch():
    rng = np.random.default_rng(7)
    ps, qs, opt, ref = _twins(rng)
    first = ps[0].numpy().copy()
    for _ in range(3):
        opt.zero_grad()
        for p, q in zip(ps[1:], qs[1:]):   # the first parameter never gets a gradient
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad, q.grad = Tensor(g.copy()), Tensor(g.copy())
        opt.step()
        ref.step()
    _equal(ps, qs)
    np.testing.assert_array_equal(ps[0].numpy(), first)
    assert 0 not in opt.state and 0 not in ref.state


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("set_to_none", [True, False])
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_matches_torch_through_backward(torch, name, flat, set_to_none):
    rng = np.random.default_rng(8)
    ps = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    qs = [torch.nn.Parameter(torch.tensor(p.numpy().copy())) for p in ps]
    opt = getattr(optim, name)(_groups(ps), lr=1e-2, weight_decay=0.1, flat=flat)
    topt = getattr(torch.optim, name)(_groups(qs), lr=1e-2, weight_decay=0.1)
    for _ in range(4):
        opt.zero_grad(set_to_none=set_to_none)
        topt.zero_grad(set_to_none=set_to_none)
        ws = [rng.standard_normal(p.shape).astype(np.float32) for p in ps]
        sum((p * Tensor(w)).sum() for p, w in zip(ps, ws)).backward()
        sum((q * torch.tensor(w)).sum() for q, w in zip(qs, ws)).backward()
        opt.step()
        topt.step()
    for p, q in zip(ps, qs):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_module_to_after_the_optimizer_rebuilds_the_buffers():
    rng = np.random.default_rng(9)
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
@pytest.mark.parametrize("set_to_none", [True, False])
def test_clip_grad_norm_over_the_flat_buffer(max_norm, set_to_none):
    """One pass over the buffer when the gradients are its views (zero_grad(set_to_none=False)),
    view by view otherwise; the same norm and the same next step as without flat buffers."""
    rng = np.random.default_rng(10)
    ps, qs, opt, ref = _twins(rng)
    opt.zero_grad(set_to_none=set_to_none)
    ref.zero_grad(set_to_none=set_to_none)
    _backward(rng, ps, qs)
    grads = [q.grad.numpy().astype(np.float64) for q in qs]
    total = np.sqrt(sum((g ** 2).sum() for g in grads))
    norm = optim.clip_grad_norm_(ps, max_norm)
    assert norm.item() == pytest.approx(total, rel=1e-6)
    coef = min(1.0, max_norm / (total + 1e-6))
    for p, g in zip(ps, grads):
        assert (p.grad.data.base is opt.flat.buffers["grad"]) is not set_to_none
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-6, atol=1e-7)
    if set_to_none:  # both clip array by array: the same sums, so the same bits after a step
        assert optim.clip_grad_norm_(qs, max_norm).item() == norm.item()
        opt.step()
        ref.step()
        _equal(ps, qs)
    else:
        opt.step()
    # a subset of the parameters does not cover the buffer: clipped view by view
    expected = [p.grad.numpy().copy() for p in ps]
    sub = optim.clip_grad_norm_(ps[:1], 1e-3)
    assert sub.item() == pytest.approx(np.linalg.norm(expected[0]), rel=1e-5)
    np.testing.assert_array_equal(ps[1].grad.numpy(), expected[1])


def test_clip_grad_norm_handles_row_sparse_gradients():
    rng = np.random.default_rng(11)
    w_sparse = Parameter(rng.standard_normal((6, 3)).astype(np.float32))
    w_dense = Parameter(w_sparse.numpy().copy())
    ids = Tensor(np.array([[0, 2, 2], [5, 0, 2]]))
    g = rng.standard_normal((2, 3, 3)).astype(np.float32)
    nn.functional.embedding(ids, w_sparse, sparse=True).backward(Tensor(g))
    nn.functional.embedding(ids, w_dense).backward(Tensor(g))
    for max_norm in (1e3, 0.5):
        n_sparse = optim.clip_grad_norm_([w_sparse], max_norm)
        n_dense = optim.clip_grad_norm_([w_dense], max_norm)
        assert n_sparse.item() == pytest.approx(n_dense.item(), rel=1e-6)
        np.testing.assert_allclose(w_sparse.grad.numpy(), w_dense.grad.numpy(), rtol=1e-6,
                                   atol=1e-7)
