r"""Generate text with a GPT: our own checkpoints, or Hugging Face GPT-2 directories.

What this teaches: the Hugging Face program (``from_pretrained``, ``tokenizer.encode``,
``model.generate``) in our library, and every decoding strategy side by side: greedy
(``--temperature 0``), sampling with ``--temperature``, ``--top-k`` and ``--top-p``,
``--repetition-penalty``, beam search (``--num-beams``, ``--length-penalty``), stopping at
``--eos-token-id``, and the KV cache (``--no-cache`` to feel what it saves). Several
``--prompt``s run as one left-padded batch with an attention mask. The formulas:
docs/generation.md.

    python examples/generate.py --model out-shakespeare --prompt "ROMEO:" --temperature 0.8
    python examples/generate.py --model gpt2 --prompt "The weather today is" --top-k 50
    python examples/generate.py --model gpt2 --prompt "Hello" --prompt "Once upon a time" \
        --num-beams 4 --max-new-tokens 30

``--model`` is any directory with ``config.json`` and ``model.safetensors``: one written by
examples/train_shakespeare.py (its ``tokenizer.json`` is read), or GPT-2 from Hugging Face (its
``vocab.json`` and ``merges.txt`` are read; without them, GPT-2's tokenizer shipped with the
package is used when the vocabulary is GPT-2's). The end-of-text id comes from config.json
unless ``--eos-token-id`` says otherwise (``--eos-token-id -1``: none). Prints each completion,
then the new tokens per second.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tinygrad_llm import backend
from tinygrad_llm.checkpoint import CheckpointError
from tinygrad_llm.models.gpt import GPT


class UsageError(Exception):
    """Bad input: printed as one clear message, with a non-zero exit and no traceback."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="out-shakespeare",
                   help="a directory with config.json and model.safetensors")
    p.add_argument("--prompt", action="append", default=None,
                   help="the prompt; repeat for a batch (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--num-beams", type=int, default=1, help="> 1: beam search")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam search: alpha of GNMT's ((5 + n) / 6) ** alpha")
    p.add_argument("--eos-token-id", type=int, default=None,
                   help="stop a row at this id (default: config.json's; -1: never stop)")
    p.add_argument("--no-cache", action="store_true", help="recompute the context every step")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def load_tokenizer(model_dir, vocab_size):
    r"""Our tokenizer.json (train_shakespeare.py's), GPT-2's vocab.json + merges.txt, or the
    GPT-2 tokenizer shipped with the package for a 50257-token vocabulary."""
    from tinygrad_llm.tokenizer import BPETokenizer, CharTokenizer, TokenizerFileError
    ours = model_dir / "tokenizer.json"
    try:
        if ours.exists():
            kind = json.loads(ours.read_text(encoding="utf-8")).get("format", "")
            for cls in (CharTokenizer, BPETokenizer):
                if kind == cls.FORMAT:
                    return cls.load(ours)
        if (model_dir / "vocab.json").exists() and (model_dir / "merges.txt").exists():
            return BPETokenizer.from_gpt2(model_dir / "vocab.json", model_dir / "merges.txt")
    except (TokenizerFileError, ValueError, OSError) as e:
        raise UsageError(f"{model_dir}: cannot read its tokenizer ({e})") from None
    if vocab_size == 50257:
        return BPETokenizer.gpt2()
    raise UsageError(f"{model_dir}: no tokenizer found (our tokenizer.json, or GPT-2's "
                     f"vocab.json and merges.txt)")


def eos_from_config(model_dir, vocab_size):
    try:
        eos = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        eos = eos.get("eos_token_id")
    except (OSError, ValueError):
        return None
    return eos if isinstance(eos, int) and 0 <= eos < vocab_size else None


def left_pad(rows, pad_id):
    r"""Prompts of different lengths as ids (B, T) and attention_mask (B, T), padded on the
    left (the generated tokens go on the right)."""
    t = max(len(r) for r in rows)
    ids = np.full((len(rows), t), pad_id, dtype=np.int64)                   # (B, T)
    mask = np.zeros((len(rows), t), dtype=np.int64)                         # (B, T)
    for i, r in enumerate(rows):
        ids[i, t - len(r):] = r
        mask[i, t - len(r):] = 1
    return ids, mask


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.max_new_tokens < 0:
            raise UsageError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
        try:
            device = backend.check_device(args.device)
        except (RuntimeError, ValueError) as e:
            raise UsageError(str(e)) from None
        model_dir = Path(args.model)
        try:
            model = GPT.from_pretrained(model_dir, dtype=np.dtype(args.dtype), device=device)
        except CheckpointError as e:
            raise UsageError(str(e)) from None
        vocab = model.config.vocab_size
        tok = load_tokenizer(model_dir, vocab)
        eos = eos_from_config(model_dir, vocab) if args.eos_token_id is None else \
            (None if args.eos_token_id == -1 else args.eos_token_id)
        prompts = args.prompt or ["\n"]
        rows = []
        for text in prompts:
            try:
                ids = tok.encode(text)
            except ValueError as e:
                raise UsageError(f"--prompt {text!r}: {e}") from None
            if not ids:
                raise UsageError("--prompt is empty; give at least one character")
            rows.append(ids)
        ids, mask = left_pad(rows, 0 if eos is None else eos)
        start = time.perf_counter()
        try:
            out = model.generate(ids, args.max_new_tokens, temperature=args.temperature,
                                 top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                                 num_beams=args.num_beams, length_penalty=args.length_penalty,
                                 repetition_penalty=args.repetition_penalty,
                                 eos_token_id=eos, attention_mask=mask,
                                 use_cache=not args.no_cache)
        except ValueError as e:
            raise UsageError(str(e)) from None
        seconds = time.perf_counter() - start
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    new = 0
    for i in range(len(rows)):
        generated = out[i, ids.shape[1]:].tolist()
        if eos is not None and eos in generated:
            generated = generated[:generated.index(eos)]                    # up to its eos
        new += len(generated)
        if len(rows) > 1:
            print(f"---- {i + 1} ----")
        print(tok.decode(rows[i] + generated))
    print(f"{new} new tokens in {seconds:.2f} s: {new / max(seconds, 1e-9):.1f} tokens/s "
          f"({'no cache' if args.no_cache else 'KV cache'}, batch {len(rows)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
