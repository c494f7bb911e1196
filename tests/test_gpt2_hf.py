"""GPT.from_pretrained and save_pretrained (tinygrad_llm/models/gpt.py): Hugging Face GPT-2
directories in and out.

The parity tests build a small random GPT-2 with transformers (weights from a seeded NumPy
generator, with non-zero biases and LayerNorm parameters, so that a dropped bias or a swapped
LayerNorm shows) and compare logits both ways: 1e-4 in float32, 1e-9 in float64. They skip
without transformers. Every other test needs neither torch nor transformers.
"""

import json

import numpy as np
import pytest

from tinygrad_llm.checkpoint import CheckpointError, load_safetensors, save_safetensors
from tinygrad_llm.models import GPT, GPTConfig

SIZES = dict(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=16)
TOL = {np.float32: 1e-4, np.float64: 1e-9}


def _randomise(named, rng):
    r"""Every weight ~ N(0, 0.3^2), every bias ~ N(0, 0.1^2), LayerNorm weights 1 + N(0, 0.1^2);
    ``named``: (name, shape) pairs, in a fixed order. Returns {name: float64 array}."""
    out = {}
    for name, shape in named:
        if ".ln_" in name or name.startswith(("ln_", "transformer.ln_")):
            base = 1.0 if name.endswith("weight") else 0.0
            out[name] = base + 0.1 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            out[name] = 0.1 * rng.standard_normal(shape)
        else:
            out[name] = 0.3 * rng.standard_normal(shape)
    return out


def _ours(dtype=np.float64, seed=0, **config):
    model = GPT(GPTConfig(**dict(SIZES, **config))).to(dtype=dtype)
    values = _randomise([(n, p.shape) for n, p in model.named_parameters()],
                        np.random.default_rng(seed))
    for name, p in model.named_parameters():
        p.data = values[name].astype(dtype)
    return model.eval()


def _ids(rng, shape=(2, 11)):
    return rng.integers(0, SIZES["vocab_size"], size=shape)


def _logits(model, ids):
    return model(ids)[0].numpy()


# ---- without torch ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", [dict(), dict(activation="gelu_new", layer_norm_eps=1e-6),
                                    dict(bias=False)])
def test_save_then_load_gives_the_same_model(tmp_path, dtype, config):
    model = _ours(dtype, **config)
    if not model.config.bias:
        assert not any(n.endswith("bias") for n, _ in model.named_parameters())
    model.save_pretrained(tmp_path)
    back = GPT.from_pretrained(tmp_path, dtype=dtype)
    assert back.config == model.config and not back.training
    ids = _ids(np.random.default_rng(1))
    np.testing.assert_array_equal(_logits(back, ids), _logits(model, ids))
    assert back.lm_head.weight is back.transformer.wte.weight


def test_saved_layout_is_gpt2s(tmp_path):
    model = _ours(np.float32)
    model.save_pretrained(tmp_path, bos_token_id=3, eos_token_id=4)
    arrays, metadata = load_safetensors(tmp_path / "model.safetensors")
    assert metadata == {"format": "pt"} and "lm_head.weight" not in arrays
    assert all(name.startswith("transformer.") for name in arrays)
    c = SIZES["n_embd"]
    for name, shape in (("attn.c_attn", (c, 3 * c)), ("attn.c_proj", (c, c)),
                        ("mlp.c_fc", (c, 4 * c)), ("mlp.c_proj", (4 * c, c))):
        stored = arrays[f"transformer.h.1.{name}.weight"]
        assert stored.shape == shape                                # Conv1D: (in, out)
        ours = dict(model.named_parameters())[f"transformer.h.1.{name}.weight"].numpy()
        np.testing.assert_array_equal(stored, ours.T)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_positions"] == SIZES["block_size"]
    assert config["activation_function"] == "gelu" and config["eos_token_id"] == 4


def test_gpt2model_names_without_the_prefix_and_old_buffers_load(tmp_path):
    model = _ours(np.float32)
    model.save_pretrained(tmp_path)
    arrays, _ = load_safetensors(tmp_path / "model.safetensors")
    bare = {k[len("transformer."):]: v for k, v in arrays.items()}
    bare["h.0.attn.bias"] = np.tril(np.ones((1, 1, 16, 16), np.float32))  # an old mask buffer
    save_safetensors(tmp_path / "model.safetensors", bare)
    back = GPT.from_pretrained(tmp_path)
    ids = _ids(np.random.default_rng(2))
    np.testing.assert_array_equal(_logits(back, ids), _logits(model, ids))


def _tamper(path, change):
    arrays, meta = load_safetensors(path / "model.safetensors")
    change(arrays)
    save_safetensors(path / "model.safetensors", arrays, meta)


def test_bad_directories_name_the_file_and_the_tensor(tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"):
        GPT.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no config.json"):
        GPT.from_pretrained(tmp_path)
    _ours(np.float32).save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    good = json.loads(config_file.read_text())
    for change, message in ((dict(model_type="bert"), "model_type is 'bert'"),
                            (dict(n_inner=7), "n_inner=7"),
                            (dict(activation_function="relu"), "activation_function 'relu'"),
                            (dict(tie_word_embeddings=False), "tie_word_embeddings")):
        bad = dict(good, **change)
        bad.pop("tinygrad_llm")
        config_file.write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=message) as e:
            GPT.from_pretrained(tmp_path)
        assert "config.json" in str(e.value)
    config_file.write_text(json.dumps({"model_type": "gpt2", "n_layer": "two"}))
    with pytest.raises(CheckpointError, match="n_layer is not an integer"):
        GPT.from_pretrained(tmp_path)
    config_file.write_text(json.dumps({"model_type": "gpt2"}))  # GPT-2 small's sizes, as HF
    with pytest.raises(CheckpointError, match=r"'wte.weight' has shape \(37, 16\), expected "
                                              r"\(50257, 768\)"):
        GPT.from_pretrained(tmp_path)
    config_file.write_text(json.dumps(good))

    blob = (tmp_path / "model.safetensors").read_bytes()

    def restore():
        (tmp_path / "model.safetensors").write_bytes(blob)

    _tamper(tmp_path, lambda a: a.pop("transformer.h.1.mlp.c_fc.bias"))
    with pytest.raises(CheckpointError, match=r"model.safetensors.*missing tensor "
                                              r"'transformer.h.1.mlp.c_fc.bias'"):
        GPT.from_pretrained(tmp_path)
    restore()
    _tamper(tmp_path, lambda a: a.update({"transformer.h.0.mlp.c_fc.weight":
                                          a["transformer.h.0.mlp.c_fc.weight"].T.copy()}))
    with pytest.raises(CheckpointError, match=r"'h.0.mlp.c_fc.weight' has shape \(64, 16\), "
                                              r"expected \(16, 64\).*Conv1D"):
        GPT.from_pretrained(tmp_path)
    restore()
    _tamper(tmp_path, lambda a: a.update({"transformer.wpe.weight": np.zeros((8, 16))}))
    with pytest.raises(CheckpointError, match=r"'wpe.weight' has shape \(8, 16\)"):
        GPT.from_pretrained(tmp_path)
    restore()
    _tamper(tmp_path, lambda a: a.update({"transformer.h.0.attn.q_attn.weight": np.zeros(2)}))
    with pytest.raises(CheckpointError, match="unexpected tensor"):
        GPT.from_pretrained(tmp_path)
    restore()
    _tamper(tmp_path, lambda a: a.update({"lm_head.weight": np.ones((37, 16), np.float32)}))
    with pytest.raises(CheckpointError, match="lm_head.weight differs"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        GPT.from_pretrained(tmp_path)


def test_config_validates_activation_and_eps():
    assert GPTConfig().activation == "gelu" and GPTConfig().layer_norm_eps == 1e-5
    with pytest.raises(ValueError, match="activation"):
        GPTConfig(activation="relu")
    with pytest.raises(ValueError, match="layer_norm_eps"):
        GPTConfig(layer_norm_eps=0)


# ---- parity with transformers -------------------------------------------------------------------
def _hf_model(dtype, activation="gelu_new", eps=1e-5, seed=3):
    transformers = pytest.importorskip("transformers")
    import torch
    config = transformers.GPT2Config(vocab_size=SIZES["vocab_size"],
                                     n_positions=SIZES["block_size"], n_embd=SIZES["n_embd"],
                                     n_layer=SIZES["n_layer"], n_head=SIZES["n_head"],
                                     activation_function=activation, layer_norm_epsilon=eps,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=None, eos_token_id=None)
    model = transformers.GPT2LMHeadModel(config).to(torch.float64 if dtype == np.float64
                                                   else torch.float32)
    named = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    values = _randomise(named, np.random.default_rng(seed))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(values[name]))
    return model.eval()


def _hf_logits(model, ids):
    import torch
    with torch.no_grad():
        return model(torch.from_numpy(ids)).logits.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_hugging_face_to_ours(tmp_path, dtype, activation):
    hf = _hf_model(dtype, activation, eps=1e-6)
    hf.save_pretrained(tmp_path)
    assert "lm_head.weight" not in load_safetensors(tmp_path / "model.safetensors")[0]
    ours = GPT.from_pretrained(tmp_path, dtype=dtype)
    assert ours.config.activation == activation and ours.config.layer_norm_eps == 1e-6
    ids = _ids(np.random.default_rng(4))
    expected = _hf_logits(hf, ids)
    assert np.abs(expected).max() > 1                   # not a degenerate comparison
    np.testing.assert_allclose(_logits(ours, ids), expected, rtol=0, atol=TOL[dtype])


def test_hugging_face_gpt2model_to_ours(tmp_path):
    transformers = pytest.importorskip("transformers")
    import torch
    hf = _hf_model(np.float64)
    body = transformers.GPT2Model(hf.config).to(torch.float64)
    body.load_state_dict(hf.transformer.state_dict())
    body.save_pretrained(tmp_path)
    assert not any(k.startswith("transformer.")
                   for k in load_safetensors(tmp_path / "model.safetensors")[0])
    ours = GPT.from_pretrained(tmp_path, dtype=np.float64)
    ids = _ids(np.random.default_rng(5))
    np.testing.assert_allclose(_logits(ours, ids), _hf_logits(hf, ids), rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", [dict(activation="gelu_new"),
                                    dict(activation="gelu", layer_norm_eps=1e-6),
                                    dict(bias=False)])
def test_ours_to_hugging_face(tmp_path, dtype, config):
    transformers = pytest.importorskip("transformers")
    import torch
    ours = _ours(dtype, seed=6, **config)
    ours.save_pretrained(tmp_path)
    hf = transformers.GPT2LMHeadModel.from_pretrained(
        tmp_path, dtype=torch.float64 if dtype == np.float64 else torch.float32).eval()
    ids = _ids(np.random.default_rng(7))
    expected = _logits(ours, ids)
    np.testing.assert_allclose(_hf_logits(hf, ids), expected, rtol=0, atol=TOL[dtype])
