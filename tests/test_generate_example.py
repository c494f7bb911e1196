"""examples/generate.py: from a train_shakespeare checkpoint and from a GPT-2-layout directory
(GPT-2's tokenizer, from vocab.json + merges.txt or the one shipped), every decoding flag, a
batch of prompts, and bad input as a clear message. No torch needed."""

import shutil
from pathlib import Path

import pytest
from example_scripts import load_example

import tinygrad_llm
from tinygrad_llm.models import GPT, GPTConfig

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
        "--batch-size", "4", "--eval-iters", "1", "--no-progress", "--sample-chars", "0"]


@pytest.fixture(scope="module")
def generate():
    return load_example("generate")


@pytest.fixture(scope="module")
def shakespeare_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "out"
    assert load_example("train_shakespeare").main(["--out-dir", str(out), "--max-iters", "1",
                                                   *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    tinygrad_llm.manual_seed(0)
    path = tmp_path_factory.mktemp("gpt2")
    model = GPT(GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=8,
                          activation="gelu_new"))
    model.save_pretrained(path, bos_token_id=50256, eos_token_id=50256)
    return path


@pytest.mark.parametrize("flags", [["--temperature", "0"],
                                   ["--top-k", "5", "--top-p", "0.9", "--temperature", "0.8"],
                                   ["--num-beams", "3", "--length-penalty", "0.6"],
                                   ["--repetition-penalty", "1.3", "--no-cache"]])
def test_generates_from_a_training_checkpoint(generate, shakespeare_dir, capsys, flags):
    argv = ["--model", str(shakespeare_dir), "--prompt", "ROMEO:", "--max-new-tokens", "12",
            *flags]
    assert generate.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and "tokens/s" in out
    assert generate.main(argv) == 0
    assert capsys.readouterr().out.split("\n")[0] == out.split("\n")[0]      # seeded


def test_a_batch_of_prompts_is_left_padded(generate, shakespeare_dir, capsys):
    assert generate.main(["--model", str(shakespeare_dir), "--prompt", "KING", "--prompt",
                          "To be, or not", "--max-new-tokens", "5", "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert "---- 1 ----\nKING" in out and "---- 2 ----\nTo be, or not" in out
    assert "batch 2" in out


def test_gpt2_directory_with_and_without_its_tokenizer_files(generate, gpt2_dir, capsys,
                                                             tmp_path):
    argv = ["--prompt", "The weather today is", "--max-new-tokens", "4", "--temperature", "0"]
    assert generate.main(["--model", str(gpt2_dir), *argv]) == 0       # the shipped tokenizer
    shipped = capsys.readouterr().out
    assert shipped.startswith("The weather today is")
    with_files = tmp_path / "gpt2"
    shutil.copytree(gpt2_dir, with_files)
    data = Path(tinygrad_llm.__file__).parent / "datasets" / "gpt2"      # shipped files
    shutil.copy(data / "encoder.json", with_files / "vocab.json")
    shutil.copy(data / "vocab.bpe", with_files / "merges.txt")
    assert generate.main(["--model", str(with_files), *argv]) == 0
    assert capsys.readouterr().out.split("\n")[0] == shipped.split("\n")[0]


def test_bad_input_is_a_clear_message(generate, shakespeare_dir, tmp_path, capsys):
    for argv, message in ((["--model", str(tmp_path / "none")], "not a directory"),
                          (["--model", str(shakespeare_dir), "--top-p", "2"], "top_p"),
                          (["--model", str(shakespeare_dir), "--num-beams", "0"], "num_beams"),
                          (["--model", str(shakespeare_dir), "--eos-token-id", "999"],
                           "eos_token_id=999"),
                          (["--model", str(shakespeare_dir), "--prompt", ""], "empty")):
        assert generate.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_no_tokenizer_is_a_clear_message(generate, tmp_path, capsys):
    GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=1, n_embd=4)).save_pretrained(
        tmp_path)
    assert generate.main(["--model", str(tmp_path)]) == 2
    assert "no tokenizer found" in capsys.readouterr().err
