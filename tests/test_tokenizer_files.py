"""Tokenizer files: JSON save/load, tiktoken rank files, GPT-2's files, bad files, the CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_llm.tokenizer import BPETokenizer, CharTokenizer, TokenizerFileError

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tinygrad_llm" / "datasets"
SHAKESPEARE = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")
SAMPLE = SHAKESPEARE[:3000] + " 你好 🙂 <|endoftext|>"


@pytest.fixture(scope="module")
def trained():
    return BPETokenizer("gpt4").train(SHAKESPEARE[:30_000], 600, special_tokens=["<|endoftext|>"])


def same(a, b):
    assert (a.pattern, a.merges, a.vocab, a.special_tokens, a.byte_order) == \
        (b.pattern, b.merges, b.vocab, b.special_tokens, b.byte_order)
    assert a.encode(SAMPLE, allowed_special="all") == b.encode(SAMPLE, allowed_special="all")


def test_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "tok.json"
    trained.save(path)
    same(trained, BPETokenizer.load(path))
    data = json.loads(path.read_text())
    assert data["format"] == "tinygrad_llm.BPETokenizer" and data["version"] == 1
    assert [tuple(m) for m in data["merges"]] == trained.merges
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temporary file left


@pytest.mark.parametrize("pattern", [None, "gpt2", r"\w+|\W"])
def test_save_load_other_patterns(pattern, tmp_path):
    tok = BPETokenizer(pattern).train(SHAKESPEARE[:2000], 300)
    tok.save(tmp_path / "t.json")
    same(tok, BPETokenizer.load(tmp_path / "t.json"))


def test_gpt2_save_load_keeps_byte_order(tmp_path):
    gpt2 = BPETokenizer.gpt2()
    assert gpt2.byte_order[0] == ord("!")  # GPT-2 lists its 256 bytes in its own order
    gpt2.save(tmp_path / "gpt2.json")
    same(gpt2, BPETokenizer.load(tmp_path / "gpt2.json"))


def test_tiktoken_round_trip(trained, tmp_path):
    path = tmp_path / "tok.tiktoken"
    trained.to_tiktoken(path)
    back = BPETokenizer.from_tiktoken(path, trained.pattern, trained.special_tokens)
    same(trained, back)


def test_tiktoken_file_is_readable_by_tiktoken(trained, tmp_path):
    pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe
    trained.to_tiktoken(tmp_path / "tok.tiktoken")
    ranks = load_tiktoken_bpe(str(tmp_path / "tok.tiktoken"))
    assert ranks == {trained.vocab[i]: i for i in range(256 + len(trained.merges))}


def test_gpt2_files_equal_the_tiktoken_file(tmp_path):
    from_gpt2 = BPETokenizer.gpt2()
    from_tt = BPETokenizer.from_tiktoken(DATA / "gpt2" / "gpt2.tiktoken", "gpt2",
                                         {"<|endoftext|>": 50256})
    same(from_gpt2, from_tt)
    from_gpt2.to_tiktoken(tmp_path / "gpt2.tiktoken")
    assert (tmp_path / "gpt2.tiktoken").read_bytes() == \
        (DATA / "gpt2" / "gpt2.tiktoken").read_bytes()


def test_char_tokenizer_save_load(tmp_path):
    tok = CharTokenizer(SHAKESPEARE)
    tok.save(tmp_path / "c.json")
    back = CharTokenizer.load(tmp_path / "c.json")
    assert back.chars == tok.chars and back.encode("Hello") == tok.encode("Hello")


# ---------------------------------------------------------------- bad files


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file(tmp_path):
    with pytest.raises(TokenizerFileError, match=r"nope\.json: no such file"):
        BPETokenizer.load(tmp_path / "nope.json")


def test_truncated_file(trained, tmp_path):
    trained.save(tmp_path / "tok.json")
    text = (tmp_path / "tok.json").read_text()
    path = write(tmp_path, "cut.json", text[: len(text) // 2])
    with pytest.raises(TokenizerFileError, match=r"cut\.json: not valid JSON \(truncated"):
        BPETokenizer.load(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TokenizerFileError, match=r"bin\.json: not UTF-8"):
        BPETokenizer.load(path)


def test_wrong_version_and_format(trained, tmp_path):
    trained.save(tmp_path / "tok.json")
    data = json.loads((tmp_path / "tok.json").read_text())
    data["version"] = 99
    path = write(tmp_path, "v99.json", json.dumps(data))
    with pytest.raises(TokenizerFileError, match=r"v99\.json: unsupported format version 99"):
        BPETokenizer.load(path)
    path = write(tmp_path, "other.json", json.dumps({"format": "something else"}))
    with pytest.raises(TokenizerFileError, match=r"other\.json: not a tinygrad_llm\.BPETok"):
        BPETokenizer.load(path)
    with pytest.raises(TokenizerFileError, match="not a tinygrad_llm.CharTokenizer"):
        CharTokenizer.load(tmp_path / "tok.json")


@pytest.mark.parametrize("change, problem", [
    (lambda d: d.pop("merges"), "missing fields"),
    (lambda d: d.__setitem__("merges", [[1, 2], [999, 1]]), "merge 1 is"),
    (lambda d: d.__setitem__("merges", [[1, 2, 3]]), "merge 0 is"),
    (lambda d: d.__setitem__("byte_order", [0] * 256), "byte_order"),
    (lambda d: d.__setitem__("special_tokens", {"<x>": 3}), "already taken"),
    (lambda d: d.__setitem__("pattern", "(bad"), "not a valid regex"),
    (lambda d: d.__setitem__("pattern", 5), "'pattern' must be"),
])
def test_corrupt_content(trained, tmp_path, change, problem):
    trained.save(tmp_path / "tok.json")
    data = json.loads((tmp_path / "tok.json").read_text())
    change(data)
    path = write(tmp_path, "bad.json", json.dumps(data))
    with pytest.raises(TokenizerFileError, match=r"bad\.json: .*" + problem):
        BPETokenizer.load(path)


@pytest.mark.parametrize("text, problem", [
    ("", "empty rank file"),
    ("IQ== 0\nnot-base64!! 1\n", "line 2: bad base64"),
    ("IQ== 0 extra\n", "line 1: expected 'base64 rank'"),
    ("IQ== 0\nIQ== 1\n", "line 2: token b'!' appears twice"),
    ("IQ== 0\nIg== 5\n", "ranks are not the numbers 0..n-1"),
])
def test_corrupt_tiktoken_files(tmp_path, text, problem):
    path = write(tmp_path, "bad.tiktoken", text)
    with pytest.raises(TokenizerFileError, match=r"bad\.tiktoken: " + problem):
        BPETokenizer.from_tiktoken(path, "gpt2")


def test_truncated_tiktoken_file_still_loads_a_prefix(tmp_path):
    # Cutting a rank file between lines leaves a valid smaller vocabulary; cutting inside
    # the first 256 lines does not.
    lines = (DATA / "gpt2" / "gpt2.tiktoken").read_text().splitlines(keepends=True)
    path = write(tmp_path, "part.tiktoken", "".join(lines[:1000]))
    assert BPETokenizer.from_tiktoken(path, "gpt2").vocab_size == 1000
    path = write(tmp_path, "cut.tiktoken", "".join(lines[:100]))
    with pytest.raises(TokenizerFileError, match=r"cut\.tiktoken: ranks 0\.\.255 must be"):
        BPETokenizer.from_tiktoken(path, "gpt2")


def test_corrupt_gpt2_files(tmp_path):
    enc, bpe = DATA / "gpt2" / "encoder.json", DATA / "gpt2" / "vocab.bpe"
    lines = bpe.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = write(tmp_path, "vocab.bpe", "".join(lines[:-10]))
    with pytest.raises(TokenizerFileError, match=r"vocab\.bpe: 49990 merges .*truncated"):
        BPETokenizer.from_gpt2(enc, cut)
    swapped = write(tmp_path, "swap.bpe", "".join(lines[:1] + lines[2:3] + lines[1:2]
                                                  + lines[3:]))
    with pytest.raises(TokenizerFileError, match=r"swap\.bpe: line 2: merge"):
        BPETokenizer.from_gpt2(enc, swapped)
    broken = write(tmp_path, "encoder.json", enc.read_text(encoding="utf-8")[:5000])
    with pytest.raises(TokenizerFileError, match=r"encoder\.json: not valid JSON"):
        BPETokenizer.from_gpt2(broken, bpe)


def test_failed_save_leaves_old_file(trained, tmp_path, monkeypatch):
    path = tmp_path / "tok.json"
    trained.save(path)
    before = path.read_bytes()

    def boom(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        BPETokenizer("gpt2").save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]


# ---------------------------------------------------------------- command line


def cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tinygrad_llm.tokenizer", *map(str, args)],
                          input=stdin, capture_output=True, text=True, env=env, timeout=120)


def test_cli_train_encode_decode_stats(tmp_path):
    text = write(tmp_path, "in.txt", SHAKESPEARE[:20_000])
    out = tmp_path / "tok.json"
    r = cli("train", "--vocab-size", 400, "--pattern", "gpt4", text, "-o", out)
    assert r.returncode == 0, r.stderr
    tok = BPETokenizer.load(out)
    assert tok.vocab_size == 400
    r = cli("encode", "-t", out, text)
    assert r.returncode == 0, r.stderr
    ids = [int(w) for w in r.stdout.split()]
    assert ids == tok.encode(SHAKESPEARE[:20_000])
    r = cli("decode", "-t", out, stdin=r.stdout)
    assert r.returncode == 0 and r.stdout == SHAKESPEARE[:20_000]
    r = cli("stats", "-t", "gpt2", text)
    assert r.returncode == 0 and "bytes/token" in r.stdout


def test_cli_errors_are_clear(tmp_path):
    r = cli("decode", "-t", "gpt2", stdin="1 2 99999999")
    assert r.returncode == 2 and "is not a token id" in r.stderr
    r = cli("encode", stdin="<|endoftext|>")
    assert r.returncode == 2 and "special token" in r.stderr
    r = cli("encode", "--allow-special", stdin="<|endoftext|>")
    assert r.returncode == 0 and r.stdout.split() == ["50256"]
    r = cli("encode", "-t", tmp_path / "missing.json", stdin="x")
    assert r.returncode == 2 and "missing.json: no such file" in r.stderr
