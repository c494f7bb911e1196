"""The GPT model (tinygrad_llm/models/gpt.py): gradcheck over every parameter, overfitting,
generation, causality, names, float32 end to end, and parity with the same GPT in PyTorch."""

import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_llm
from tinygrad_llm import Tensor, autograd, backend
from tinygrad_llm.models import GPT, GPTConfig
from tinygrad_llm.optim import AdamW, clip_grad_norm_
from tinygrad_llm.testing import module_gradcheck

TINY = dict(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=4)


def _ids(rng, shape, vocab=TINY["vocab_size"]):
    return rng.integers(0, vocab, size=shape)


@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck_logits_all_parameters(fused):
    model = GPT(GPTConfig(**TINY, fused_attention=fused))
    idx = _ids(np.random.default_rng(0), (2, 4))
    assert len(model.parameters()) == 2 + 12 * 2 + 2       # wte (tied lm_head), wpe, blocks, ln_f
    module_gradcheck(model, lambda: model(idx)[0], [], seed=1)


def test_gradcheck_loss_with_ignored_targets():
    model = GPT(GPTConfig(**dict(TINY, n_layer=1)))
    rng = np.random.default_rng(1)
    idx, targets = _ids(rng, (2, 3)), _ids(rng, (2, 3))
    targets[0, 1] = -100
    module_gradcheck(model, lambda: model(idx, targets)[1], [], seed=2)


def test_ignore_index_loss_is_mean_over_counted_positions():
    model = GPT(GPTConfig(**TINY))
    rng = np.random.default_rng(2)
    idx, targets = _ids(rng, (2, 4)), _ids(rng, (2, 4))
    logits, _ = model(idx)
    logp = logits.numpy() - np.log(np.exp(logits.numpy()).sum(-1, keepdims=True))
    targets[1, 2:] = -100
    keep = targets != -100
    expected = -logp[keep, targets[keep]].mean()
    assert model(idx, targets)[1].item() == pytest.approx(expected, rel=1e-5)


def test_overfits_a_short_text():
    text = "to be or not to be, that is the question"
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text])
    model = GPT(GPTConfig(vocab_size=len(chars), block_size=len(text) - 1, n_layer=2, n_head=2,
                          n_embd=32))
    opt = model.configure_optimizers(0.0, 1e-2, (0.9, 0.99))
    x, y = ids[None, :-1], ids[None, 1:]
    for _ in range(120):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    assert loss.item() < 0.05
    out = model.generate(ids[None, :1], len(text) - 1, temperature=0)
    assert "".join(chars[i] for i in out[0]) == text     # it learned the text by heart


def test_generate_is_deterministic_under_a_seed():
    model = GPT(GPTConfig(**dict(TINY, block_size=8)))
    start = np.array([[1, 2]])
    a = model.generate(start, 20, seed=3)
    b = model.generate(start, 20, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 22) and a.dtype == np.int64
    np.testing.assert_array_equal(a[:, :2], start)
    tinygrad_llm.manual_seed(5)
    c = model.generate(start, 20, top_k=3, top_p=0.9)
    tinygrad_llm.manual_seed(5)
    d = model.generate(start, 20, top_k=3, top_p=0.9)
    np.testing.assert_array_equal(c, d)
    assert model.training                                 # generate restores the mode


def test_generate_greedy_top_k_1_and_tiny_top_p_agree():
    model = GPT(GPTConfig(**TINY))
    start = np.array([[3], [4]])
    greedy = model.generate(start, 10, temperature=0)     # crops the context past block_size
    np.testing.assert_array_equal(greedy, model.generate(start, 10, top_k=1, seed=0))
    np.testing.assert_array_equal(greedy, model.generate(start, 10, top_p=1e-9, seed=0))
    # greedy by hand: the argmax of the last position's logits, one step
    logits, _ = model(start)
    np.testing.assert_array_equal(greedy[:, 1], logits.numpy()[:, -1].argmax(-1))


def test_generate_errors():
    model = GPT(GPTConfig(**TINY))
    for kwargs, match in [({"temperature": -1}, "temperature"), ({"top_k": 0}, "top_k"),
                          ({"top_p": 0.0}, "top_p")]:
        with pytest.raises(ValueError, match=match):
            model.generate([[1]], 2, **kwargs)


def test_causality_future_tokens_do_not_change_earlier_logits():
    model = GPT(GPTConfig(**dict(TINY, block_size=8)))
    rng = np.random.default_rng(4)
    idx = _ids(rng, (2, 8))
    before = model(idx)[0].numpy()
    idx[:, 5:] = (idx[:, 5:] + 1) % TINY["vocab_size"]
    after = model(idx)[0].numpy()
    np.testing.assert_array_equal(before[:, :5], after[:, :5])
    assert not np.allclose(before[:, 5:], after[:, 5:])


def test_gpt2_parameter_names_shapes_and_tied_head():
    c = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8)
    model = GPT(c)
    sd = model.state_dict()
    expected = {"transformer.wte.weight": (11, 8), "transformer.wpe.weight": (5, 8),
                "transformer.ln_f.weight": (8,), "transformer.ln_f.bias": (8,),
                "lm_head.weight": (11, 8)}
    for i in range(2):
        h = f"transformer.h.{i}."
        expected.update({h + "ln_1.weight": (8,), h + "ln_1.bias": (8,),
                         h + "attn.c_attn.weight": (24, 8), h + "attn.c_attn.bias": (24,),
                         h + "attn.c_proj.weight": (8, 8), h + "attn.c_proj.bias": (8,),
                         h + "ln_2.weight": (8,), h + "ln_2.bias": (8,),
                         h + "mlp.c_fc.weight": (32, 8), h + "mlp.c_fc.bias": (32,),
                         h + "mlp.c_proj.weight": (8, 32), h + "mlp.c_proj.bias": (8,)})
    assert {k: v.shape for k, v in sd.items()} == expected
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.num_parameters(non_embedding=False) == sum(
        v.size for k, v in sd.items() if k != "lm_head.weight")


def test_gpt2_initialisation():
    tinygrad_llm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=4, n_head=4, n_embd=64))
    sd = model.state_dict()
    assert np.std(sd["transformer.wte.weight"]) == pytest.approx(0.02, rel=0.1)
    assert np.std(sd["transformer.h.0.mlp.c_fc.weight"]) == pytest.approx(0.02, rel=0.1)
    assert np.std(sd["transformer.h.0.mlp.c_proj.weight"]) == pytest.approx(
        0.02 / np.sqrt(8), rel=0.1)
    assert np.std(sd["transformer.h.1.attn.c_proj.weight"]) == pytest.approx(
        0.02 / np.sqrt(8), rel=0.1)
    assert not sd["transformer.h.0.attn.c_attn.bias"].any()
    assert (sd["transformer.h.0.ln_1.weight"] == 1).all()
    tinygrad_llm.manual_seed(0)
    again = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=4, n_head=4, n_embd=64))
    np.testing.assert_array_equal(again.state_dict()["transformer.wpe.weight"],
                                  sd["transformer.wpe.weight"])


def test_configure_optimizers_decays_only_matrices():
    model = GPT(GPTConfig(**TINY))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    assert isinstance(opt, AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1
                                                             for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(model.parameters())
    assert decay["betas"] == (0.9, 0.99)


def test_training_step_stays_float32():
    model = GPT(GPTConfig(**TINY))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    rng = np.random.default_rng(5)
    logits, loss = model(_ids(rng, (3, 4)), _ids(rng, (3, 4)))
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    loss.backward()
    clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, name
    for s in opt.state.values():
        assert s["exp_avg"].dtype == np.float32 and s["exp_avg_sq"].dtype == np.float32


def test_bad_inputs():
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(ValueError, match="block size"):
        model(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="integer"):
        model(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="targets"):
        model(np.zeros((1, 3), dtype=np.int64), np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="dropout"):
        GPTConfig(dropout=1.0)


def _torch_gpt():
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import torch_gpt
    finally:
        sys.path.pop(0)
    return torch_gpt


@pytest.mark.parametrize("bias", [True, False])
def test_parity_with_torch_logits_loss_grads_and_adamw_steps(bias):
    """Same weights, same batches: logits, loss and every gradient agree with the PyTorch GPT,
    and so do the weights after AdamW steps. (With biases, the key bias's true gradient is 0:
    q . b_k shifts a whole row of scores, which softmax ignores; both sides give rounding
    noise there, which Adam would blow up to +-lr, so the multi-step check runs without.)"""
    torch_gpt = _torch_gpt()
    import torch
    config = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=bias)
    model = GPT(config)
    tmodel = torch_gpt.build(config, model.state_dict())
    opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    topt = tmodel.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    rng = np.random.default_rng(6)
    for step in range(1 if bias else 3):
        idx, targets = _ids(rng, (3, 8), 13), _ids(rng, (3, 8), 13)
        logits, loss = model(idx, targets)
        tlogits, tloss = tmodel(torch.tensor(idx), torch.tensor(targets))
        np.testing.assert_allclose(logits.numpy(), tlogits.detach().numpy(), rtol=1e-4,
                                   atol=2e-5)
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
        opt.zero_grad()
        topt.zero_grad()
        loss.backward()
        tloss.backward()
        tgrads = {k: p.grad.numpy() for k, p in tmodel.named_parameters()}
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), tgrads[name], rtol=1e-3, atol=3e-5,
                                       err_msg=f"step {step}: {name}")
        opt.step()
        topt.step()
    tsd = tmodel.state_dict()
    key_bias = slice(config.n_embd, 2 * config.n_embd)   # rows of c_attn.bias that make k
    for k, v in model.state_dict().items():
        t = tsd[k].numpy()
        if k.endswith("attn.c_attn.bias"):   # Adam's step on the key bias's rounding noise
            v, t = np.delete(v, key_bias), np.delete(t, key_bias)
        np.testing.assert_allclose(v, t, rtol=1e-4, atol=1e-5, err_msg=k)


def test_training_step_on_each_device_float32_without_host_syncs(device):
    """On "cuda" (the strict CuPy stand-in) a whole step makes no float64 array and reads
    nothing back to the host; both devices give the same loss."""
    import fake_cupy

    from tinygrad_llm.data import get_batch
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    model = GPT(config).to(device)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    ids = np.random.default_rng(0).integers(0, 11, 200)
    x, y = get_batch(ids, 4, 8, np.random.default_rng(1), device)
    if device == "cuda":
        fake_cupy.forbid_float64()
    with fake_cupy.counting() as counts:
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    assert counts["sync"] == 0
    assert loss.dtype == np.float32 and loss.device == device
    tinygrad_llm.manual_seed(0)
    ref = GPT(config)
    x, y = get_batch(ids, 4, 8, np.random.default_rng(1))
    assert loss.item() == pytest.approx(ref(x, y)[1].item(), rel=1e-6)
    assert model.generate(np.array([[1, 2]]), 4, top_k=3, top_p=0.9, seed=0).shape == (1, 6)


def _float_arrays(value):
    """Every floating array in ``value`` (an array, a tuple/list of them, a dict of them)."""
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _float_arrays(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _float_arrays(v)]
    if backend.is_array(value) and value.dtype.kind == "f":
        return [value]
    return []


@pytest.mark.parametrize("fused", [True, False])
def test_gpt_training_step_stays_float32_everywhere(fused):
    """Every op's output, every backward gradient, every array a Function saves for backward,
    every parameter, gradient and optimizer moment: float32, with no silent float64."""
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.1,
                       fused_attention=fused)
    model = GPT(config)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    rng = np.random.default_rng(2)
    idx, targets = rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))
    seen = []

    def hook(name, phase, fn, args, kwargs):
        out = fn(*args, **kwargs)
        owner = getattr(fn, "__self__", None)
        for a in _float_arrays(args) + _float_arrays(out) + _float_arrays(vars(owner)):
            seen.append((name, phase, a.dtype))
        return out

    previous, autograd._profile_hook = autograd._profile_hook, hook
    try:
        for _ in range(2):
            _, loss = model(Tensor(idx), targets)
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    finally:
        autograd._profile_hook = previous
    assert {phase for _, phase, _ in seen} == {"forward", "backward"}
    wrong = sorted({(name, phase, str(d)) for name, phase, d in seen if d != np.float32})
    assert not wrong, f"float64 (or other) arrays in the step: {wrong}"
    assert loss.dtype == np.float32
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, name
    for s in opt.state.values():
        assert s["exp_avg"].dtype == np.float32 and s["exp_avg_sq"].dtype == np.float32
    assert all(b.dtype == np.float32 for b in opt.flat.buffers.values())


def test_gpt_parameters_live_in_the_optimizers_flat_buffer():
    tinygrad_llm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    opt = model.configure_optimizers(0.1, 1e-3)
    opt.zero_grad(set_to_none=False)                # the gradients are views of the buffer
    _, loss = model(Tensor(np.zeros((2, 8), np.int64)), np.ones((2, 8), np.int64))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.data.base is opt.flat.buffers["param"], name
        assert p.grad.data.base is opt.flat.buffers["grad"], name
