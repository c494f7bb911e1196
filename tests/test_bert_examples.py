"""examples/bert_finetune.py and examples/semantic_search.py, quickly, on a tiny random BERT
folder (its own character-level WordPiece vocabulary), so neither torch nor the MiniLM wheel is
needed: the scripts run end to end, print their JSON, and fail cleanly on a missing folder."""

import json
import string

import numpy as np
import pytest
from example_scripts import load_example

from tinygrad_llm import manual_seed
from tinygrad_llm.models.bert import BertConfig, BertModel


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A sentence-transformers-style folder with a 2-layer BERT of hidden size 16 and a
    vocabulary of single characters (and their ## forms): every word tokenizes."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48}))
    manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


def test_finetune_runs_and_reports(tiny_dir, capsys):
    finetune = load_example("bert_finetune")
    argv = ["--model-dir", str(tiny_dir), "--limit", "80", "--epochs", "1", "--batch-size",
            "16", "--max-length", "32", "--probe-epochs", "2", "--no-progress"]
    assert finetune.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["sizes"] == {"train": 64, "val": 8, "test": 8}
    assert 0 <= result["test_accuracy"] <= 1 and 0 <= result["probe"]["test_accuracy"] <= 1
    assert len(result["epochs"]) == 1 and result["epochs"][0]["train_loss"] > 0


def test_finetune_uses_the_lstm_classifier_split():
    finetune = load_example("bert_finetune")
    lstm = load_example("lstm_classifier")
    ours, theirs = finetune.load_split(), lstm.load_split(None)
    for part in ("train", "val", "test"):
        assert ours[part][0] == theirs[part][0]
        np.testing.assert_array_equal(ours[part][1], theirs[part][1].astype(np.int64))


def test_length_grouped_batches_cover_every_sentence_once():
    finetune = load_example("bert_finetune")
    lengths = np.random.default_rng(0).integers(3, 60, 1000)
    batches = finetune.length_grouped_batches(lengths, 32, np.random.default_rng(1), group=4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 20                  # random batches of 32 would spread over about 53


def test_finetune_missing_folder_is_a_message(tmp_path, capsys):
    finetune = load_example("bert_finetune")
    assert finetune.main(["--model-dir", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_semantic_search_finds_a_sentence_by_itself(tiny_dir, capsys):
    search = load_example("semantic_search")
    reviews = [text for _, _, text in search.load_movie_reviews()[:20]]
    argv = ["--model-dir", str(tiny_dir), "--limit", "20", "--top-k", "3", "--query",
            reviews[7], "--query", "a dull film", "--no-progress"]
    assert search.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["sentences"] == 20 and len(result["queries"]) == 2
    first = result["queries"][0]["matches"]
    assert first[0]["sentence"] == reviews[7] and first[0]["score"] == pytest.approx(1, abs=1e-5)
    scores = [m["score"] for m in result["queries"][1]["matches"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3


def test_austen_sentences_are_sentences():
    sentences = load_example("semantic_search").austen_sentences()
    assert len(sentences) > 20000
    assert sentences[0].startswith("Emma Woodhouse, handsome, clever, and rich")
    assert all("\n" not in s for s in sentences[:100])
