"""examples/bert_pretrain.py: the masked-position loss equals BertForMaskedLM's, windows are
framed, the classifier gets the pre-trained encoder, and a tiny run goes end to end."""
import json

import numpy as np
import pytest
from example_scripts import load_example

import tinygrad_llm
from tinygrad_llm.data import mask_tokens
from tinygrad_llm.models.bert import BertConfig, BertForMaskedLM

TINY = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def example():
    return load_example("bert_pretrain")


def test_loss_at_masked_positions_equals_the_models_loss(example):
    tinygrad_llm.manual_seed(0)
    model = BertForMaskedLM(TINY).to(dtype="float64")
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 50, size=(3, 12))
    inputs, labels = mask_tokens(ids, rng, 50, 4, range(5), mask_prob=0.3)
    loss, logits, targets = example.mlm_loss(model, inputs, labels)
    assert logits.shape == (int((labels != -100).sum()), 50)
    np.testing.assert_array_equal(targets, labels[labels != -100])
    loss.backward()
    grad = model.bert.embeddings.word_embeddings.weight.grad.numpy().copy()
    model.zero_grad()
    full = model(inputs, labels=labels).loss
    full.backward()
    np.testing.assert_allclose(loss.item(), full.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, model.bert.embeddings.word_embeddings.weight.grad.numpy(),
                               rtol=1e-9, atol=1e-12)


def test_windows_are_framed(example):
    from tinygrad_llm.tokenizer import train_wordpiece
    paragraphs = ["It is a truth universally acknowledged.", "Emma Woodhouse, handsome."] * 5
    tok = train_wordpiece(paragraphs, vocab_size=120)
    ids = example.corpus_ids(tok, paragraphs)
    stream = [i for row in tok(paragraphs, add_special_tokens=False)["input_ids"] for i in row]
    assert ids.dtype == np.int64 and ids.tolist() == stream
    windows = example.make_windows(tok, ids, 8)
    assert windows.dtype == np.int64 and windows.shape[1] == 8
    assert (windows[:, 0] == tok.cls_token_id).all() and (windows[:, -1] == tok.sep_token_id).all()
    assert windows[:, 1:-1].reshape(-1).tolist() == stream[:windows[:, 1:-1].size]


def test_every_window_length_holds_out_the_same_text(example):
    from tinygrad_llm.tokenizer import train_wordpiece
    paragraphs = [f"Chapter {i}. Mr. Darcy walked to Netherfield." for i in range(200)]
    tok = train_wordpiece(paragraphs, vocab_size=150)
    ids = example.corpus_ids(tok, paragraphs)
    windows = example.split_windows(tok, ids, [16, 8, 16])
    assert sorted(windows) == [8, 16]
    n_held = int(example.HELD_OUT * len(ids))
    for t, (train, held) in windows.items():
        assert train.shape[1] == held.shape[1] == t
        body = held[:, 1:-1].reshape(-1).tolist()
        assert body == ids[-n_held:][:len(body)].tolist()            # the tail, from its start
        assert train[:, 1:-1].reshape(-1).tolist() == ids[:train[:, 1:-1].size].tolist()


def test_phases_short_windows_first(example):
    args = example.parse_args(["--steps", "100", "--seq-len", "64", "--short-seq-len", "32",
                               "--short-fraction", "0.9"])
    assert example.phases(args) == [(32, 90), (64, 10)]
    args = example.parse_args(["--steps", "100", "--short-fraction", "0"])
    assert example.phases(args) == [(64, 100)]
    args = example.parse_args(["--steps", "100", "--seq-len", "24"])    # short >= seq-len
    assert example.phases(args) == [(24, 100)]


def test_classifier_gets_the_pretrained_encoder(example):
    tinygrad_llm.manual_seed(1)
    mlm = BertForMaskedLM(TINY)
    pre = example.classifier_from(TINY, mlm, seed=3)
    rand = example.classifier_from(TINY, None, seed=3)
    w = "embeddings.word_embeddings.weight"
    np.testing.assert_array_equal(pre.bert.state_dict()[w], mlm.bert.state_dict()[w])
    assert not np.array_equal(rand.bert.state_dict()[w], mlm.bert.state_dict()[w])
    np.testing.assert_array_equal(pre.classifier.weight.numpy(), rand.classifier.weight.numpy())


def test_tiny_run_end_to_end(example, capsys, tmp_path):
    rc = example.main(["--limit-chars", "120000", "--vocab-size", "400", "--seq-len", "24",
                       "--short-seq-len", "12", "--hidden", "16", "--layers", "1", "--heads",
                       "2", "--ffn", "32", "--steps", "6", "--eval-every", "3",
                       "--finetune-limit", "120", "--finetune-epochs", "1",
                       "--finetune-seeds", "2", "--no-progress", "--save", str(tmp_path)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    log = result["pretrain_log"]
    assert [(e["step"], e["seq_len"]) for e in log] == [(0, 24), (3, 12), (5, 12), (6, 24)]
    assert np.isfinite(result["held_out_mlm"]["loss"])
    assert result["held_out_mlm"]["loss"] < result["held_out_at_init"]["loss"]
    for name in ("pretrained", "random_init"):
        runs = result["finetune"][name]["runs"]
        assert [run["seed"] for run in runs] == [0, 1]
        accuracies = [run["test_accuracy"] for run in runs]
        assert result["finetune"][name]["test_accuracies"] == accuracies
        assert result["finetune"][name]["test_accuracy"] == pytest.approx(np.mean(accuracies),
                                                                          abs=1e-4)
        assert all(0 <= a <= 1 for a in accuracies)
    assert (tmp_path / "vocab.txt").is_file() and (tmp_path / "model.safetensors").is_file()


def test_bad_arguments(example, capsys):
    assert example.main(["--hidden", "10", "--heads", "4"]) == 2
    assert "divisible" in capsys.readouterr().err
    assert example.main(["--short-fraction", "1"]) == 2
    assert "--short-fraction" in capsys.readouterr().err
    assert example.main(["--init-range", "0"]) == 2
    assert "--init-range" in capsys.readouterr().err
