r"""Command line for the BPE tokenizer.

    python -m tinygrad_llm.tokenizer train --vocab-size 4096 --pattern gpt4 input.txt -o tok.json
    python -m tinygrad_llm.tokenizer encode -t tok.json input.txt > ids.txt
    python -m tinygrad_llm.tokenizer decode -t tok.json ids.txt
    python -m tinygrad_llm.tokenizer stats -t gpt2 input.txt

``-t`` takes a file written by ``train``/``save``, a tiktoken rank file (``*.tiktoken``, with
``--pattern``), or ``gpt2`` for GPT-2's shipped tokenizer. Input "-" (the default) is stdin.
Ids are written as whitespace-separated integers.
"""
import argparse
import sys
import time

from .bpe import BPETokenizer


def _read(path):
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _tokenizer(spec, pattern):
    if spec == "gpt2":
        return BPETokenizer.gpt2()
    if spec.endswith(".tiktoken"):
        return BPETokenizer.from_tiktoken(spec, pattern)
    return BPETokenizer.load(spec)


def _allowed(args):
    return "all" if args.allow_special else "none_raise"


def cmd_train(args):
    text = _read(args.input)
    t0 = time.perf_counter()
    tok = BPETokenizer(args.pattern).train(text, args.vocab_size, args.special,
                                           verbose=args.verbose, method=args.method)
    seconds = time.perf_counter() - t0
    tok.save(args.output)
    print(f"trained {tok!r} on {len(text.encode('utf-8')):,} bytes in {seconds:.2f} s; "
          f"saved to {args.output}", file=sys.stderr)


def cmd_encode(args):
    tok = _tokenizer(args.tokenizer, args.pattern)
    ids = tok.encode(_read(args.input), allowed_special=_allowed(args))
    sys.stdout.write(" ".join(map(str, ids)) + "\n")


def cmd_decode(args):
    tok = _tokenizer(args.tokenizer, args.pattern)
    words = _read(args.input).split()
    try:
        ids = [int(w) for w in words]
    except ValueError as e:
        raise ValueError(f"decode: the input must be whitespace-separated integers ({e})") \
            from None
    sys.stdout.write(tok.decode(ids))


def cmd_stats(args):
    tok = _tokenizer(args.tokenizer, args.pattern)
    text = _read(args.input)
    n_bytes = len(text.encode("utf-8"))
    t0 = time.perf_counter()
    ids = tok.encode(text, allowed_special=_allowed(args))
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    tok.encode(text, allowed_special=_allowed(args))
    warm = time.perf_counter() - t0
    print(f"tokenizer      {tok!r}")
    print(f"bytes          {n_bytes:,}")
    print(f"tokens         {len(ids):,}")
    print(f"bytes/token    {n_bytes / max(len(ids), 1):.3f}")
    print(f"encode (cold)  {n_bytes / cold / 1e6:.2f} MB/s  (first pass, empty chunk cache)")
    print(f"encode (warm)  {n_bytes / warm / 1e6:.2f} MB/s  (second pass, chunk cache filled)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinygrad_llm.tokenizer",
                                     description="Train and use byte-level BPE tokenizers.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="learn a BPE vocabulary from a text file")
    p.add_argument("input", help="UTF-8 text file, or - for stdin")
    p.add_argument("-o", "--output", required=True, help="where to save the tokenizer (JSON)")
    p.add_argument("--vocab-size", type=int, required=True)
    p.add_argument("--pattern", default="gpt4", help="gpt2, gpt4, a regex, or none")
    p.add_argument("--special", action="append", default=[], metavar="TOKEN",
                   help="a special token (repeatable), e.g. --special '<|endoftext|>'")
    p.add_argument("--method", choices=["fast", "reference"], default="fast")
    p.add_argument("-v", "--verbose", action="store_true", help="show a progress bar")
    p.set_defaults(run=cmd_train)

    for name, run, what in [("encode", cmd_encode, "text file"), ("decode", cmd_decode,
                                                                  "file of ids"),
                            ("stats", cmd_stats, "text file")]:
        p = sub.add_parser(name, help={"encode": "text to ids", "decode": "ids to text",
                                       "stats": "bytes per token and encoding throughput"}[name])
        p.add_argument("input", nargs="?", default="-", help=f"{what}, or - for stdin")
        p.add_argument("-t", "--tokenizer", default="gpt2",
                       help="saved tokenizer (JSON), a .tiktoken rank file, or gpt2 (default)")
        p.add_argument("--pattern", default="gpt2", help="split pattern for a .tiktoken file")
        if name != "decode":
            p.add_argument("--allow-special", action="store_true",
                           help="encode special-token text as special tokens (else it raises)")
        p.set_defaults(run=run)

    args = parser.parse_args(argv)
    if getattr(args, "pattern", None) == "none":
        args.pattern = None
    try:
        args.run(args)
    except (ValueError, OSError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
