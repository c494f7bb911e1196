r"""Generate text from a GPT trained by examples/train_shakespeare.py.

What this teaches: autoregressive sampling. The model turns the last ``block_size`` tokens into
a probability for every next token; we draw one, append it, and repeat. ``--temperature``
divides the logits (lower: safer, more repetitive; 0: always the most likely token);
``--top-k`` keeps only the k most likely tokens; ``--top-p`` keeps the smallest set whose
probabilities add up to p (nucleus sampling).

    python examples/sample.py --out-dir out-shakespeare --start "ROMEO:" --max-new-tokens 300 \
        --temperature 0.8 --top-k 40 --seed 1
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # to share train_shakespeare's loader

from train_shakespeare import (  # noqa: E402
    UsageError,
    model_from_checkpoint,
    tokenizer_from_json,
)

from tinygrad_llm import backend  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out-dir", default="out-shakespeare",
                   help="the checkpoint directory (model.safetensors, config.json, tokenizer.json)")
    p.add_argument("--start", default="\n", help="the prompt (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=500)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.max_new_tokens < 0:
            raise UsageError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
        if args.temperature < 0:
            raise UsageError(f"--temperature must be >= 0, got {args.temperature}")
        if args.top_k is not None and args.top_k < 1:
            raise UsageError(f"--top-k must be >= 1, got {args.top_k}")
        if args.top_p is not None and not 0 < args.top_p <= 1:
            raise UsageError(f"--top-p must be in (0, 1], got {args.top_p}")
        try:
            device = backend.check_device(args.device)
        except (RuntimeError, ValueError) as e:
            raise UsageError(str(e)) from None
        out_dir = Path(args.out_dir)
        if not (out_dir / "model.safetensors").exists():
            raise UsageError(f"no checkpoint in {out_dir} (train first, or check --out-dir)")
        model = model_from_checkpoint(out_dir, device)
        tok_file = out_dir / "tokenizer.json"
        try:
            tok = tokenizer_from_json(tok_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"{tok_file}: cannot read the tokenizer ({e})") from None
        try:
            ids = tok.encode(args.start)
        except ValueError as e:
            raise UsageError(f"--start: {e}") from None
        if not ids:
            raise UsageError("--start is empty; give at least one character")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = model.generate([ids], args.max_new_tokens, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    print(tok.decode(out[0].tolist()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
