r"""A character-level LSTM language model on Tiny Shakespeare, char-rnn style, with sampling.

What this teaches: a recurrent language model end to end, and how its state is carried.

1. Tokenize: ``CharTokenizer``, one id per character (65 for Shakespeare); 90/10 train/val.
2. Batch: ``get_batch`` (shared with the GPT example) cuts random windows of T characters; the
   target at every position is the next character.
3. Model: Embedding (V -> E), a stacked LSTM (dropout between layers), Linear (H -> V): logits
   for the next character at every step, cross-entropy against the targets.
4. Train with Adam and gradient-norm clipping. Backpropagation through time runs inside each
   LSTM layer's fused Function (tinygrad_llm/ops/rnn.py; docs/rnn.md derives it).
5. Sample: feed the prompt once, then one character at a time, passing the state (h, c) that
   the LSTM returned back into it. Nothing is re-read: the state IS the memory of the prompt,
   unlike a transformer's context window.

    python examples/char_lstm.py                               # ~5 minutes on 2 CPU cores
    python examples/char_lstm.py --max-iters 3000 --save char_lstm.npz
    python examples/char_lstm.py --load char_lstm.npz --start "ROMEO:" --temperature 0.8

The last line printed is a JSON object with the final train and val losses. The default run
reaches train loss ~1.40 and val loss ~1.60 (docs/performance.md). On a machine busy with
other work, run it with OPENBLAS_NUM_THREADS=1: each step's (B, H)(H, 4H) product is small, and
two BLAS threads that must wait for each other's turn on the CPU cost far more than they save.
"""

import argparse
import json
import math
import sys
import time

import numpy as np

import tinygrad_llm
from tinygrad_llm import Tensor, backend, nn, no_grad
from tinygrad_llm.checkpoint import load_npz, save_npz
from tinygrad_llm.data import get_batch, tiny_shakespeare
from tinygrad_llm.nn import functional as F
from tinygrad_llm.optim import Adam, clip_grad_norm_
from tinygrad_llm.tokenizer import CharTokenizer

FORMAT = "tinygrad_llm.char_lstm"


class UsageError(Exception):
    """Bad input: printed as one message to stderr, exit status 2, no traceback."""


class CharLSTM(nn.Module):
    r"""ids (B, T) -> Embedding (B, T, E) -> LSTM (B, T, H) -> Linear -> logits (B, T, V).

    ``forward(ids, state=None)`` returns (logits, state) with state = (h, c), each
    (num_layers, B, H): pass it back in to continue where the last call stopped."""

    def __init__(self, vocab_size, embed_dim=64, hidden_size=256, num_layers=2, dropout=0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        x = self.embedding(ids)                                             # (B, T, E)
        out, state = self.lstm(x, state)                                    # (B, T, H)
        return self.head(out), state                                        # (B, T, V)


def loss_of(model, x, y):
    logits, _ = model(x)                                                    # (B, T, V)
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V), y.reshape(B * T))


def estimate_loss(model, splits, args, rng):
    model.eval()
    out = {}
    with no_grad():
        for name, ids in splits.items():
            losses = [loss_of(model, *get_batch(ids, args.batch_size, args.block_size, rng,
                                                args.device)).item()
                      for _ in range(args.eval_iters)]
            out[name] = float(np.mean(losses))
    model.train()
    return out


def sample(model, tok, start, n, temperature, top_k, rng, device="cpu"):
    r"""Generate n characters after ``start``, carrying the LSTM state from step to step."""
    model.eval()
    ids = tok.encode(start)
    with no_grad():
        logits, state = model(Tensor(np.array([ids], dtype=np.int64), device=device))  # prompt
        out = []
        for _ in range(n):
            last = backend.to_numpy(logits.data)[0, -1].astype(np.float64)  # (V,)
            if temperature == 0:
                nxt = int(last.argmax())
            else:
                last = last / temperature
                if top_k:
                    last[last < np.sort(last)[-min(top_k, len(last))]] = -np.inf
                p = np.exp(last - last.max())
                nxt = int(rng.choice(len(p), p=p / p.sum()))
            out.append(nxt)
            logits, state = model(Tensor(np.array([[nxt]], dtype=np.int64), device=device),
                                  state)                                    # one step
    model.train()
    return start + tok.decode(out)


def save(path, model, tok, args, meta_extra):
    meta = {"format": FORMAT, "version": 1, "chars": "".join(tok.chars),
        "config": {k: getattr(args, k) for k in ("embed_dim", "hidden_size", "num_layers")},
        **meta_extra}
    save_npz(path, {f"model.{k}": v for k, v in model.state_dict().items()}, meta)  # atomic


def load(path, device):
    try:
        meta, arrays = load_npz(path)
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"cannot read a saved model from {path}: {e}") from None
    if meta.get("format") != FORMAT:
        raise UsageError(f"{path} is not a file saved by char_lstm.py --save")
    tok = CharTokenizer(meta["chars"])
    model = CharLSTM(tok.vocab_size, **meta["config"])
    model.load_state_dict({k[len("model."):]: v for k, v in arrays.items()})
    return model.to(device), tok


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.0, help="between LSTM layers")
    p.add_argument("--block-size", type=int, default=64, help="T: BPTT length")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-iters", type=int, default=1000)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--start", default="ROMEO:", help="the sampling prompt")
    p.add_argument("--num-chars", type=int, default=400, help="characters to sample")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--save", default=None, help="save the trained model (.npz) here")
    p.add_argument("--load", default=None, help="load a saved model and only sample")
    return p.parse_args(argv)


def run(args):
    try:
        args.device = backend.check_device(args.device)
    except (RuntimeError, ValueError) as e:
        raise UsageError(str(e)) from None
    rng = np.random.default_rng(args.seed)
    if args.load:
        model, tok = load(args.load, args.device)
        text = sample(model, tok, args.start, args.num_chars, args.temperature, args.top_k,
                      rng, args.device)
        print(text)
        return {"sample": text, "sampled_chars": args.num_chars}
    tinygrad_llm.manual_seed(args.seed)
    text = tiny_shakespeare()
    tok = CharTokenizer(text)
    ids = np.array(tok.encode(text), dtype=np.int64)
    n = int(0.9 * len(ids))
    splits = {"train": ids[:n], "val": ids[n:]}
    model = CharLSTM(tok.vocab_size, args.embed_dim, args.hidden_size, args.num_layers,
                     args.dropout).to(args.device)
    print(model)
    print(f"{len(ids):,} characters, vocabulary {tok.vocab_size}; an untrained model's loss "
          f"is ln {tok.vocab_size} = {math.log(tok.vocab_size):.3f}", flush=True)
    opt = Adam(model.parameters(), lr=args.lr)
    t0, losses = time.perf_counter(), {}
    for it in range(args.max_iters + 1):
        if it % args.eval_interval == 0 or it == args.max_iters:
            losses = estimate_loss(model, splits, args, rng)
            print(f"iter {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
        if it == args.max_iters:
            break
        x, y = get_batch(splits["train"], args.batch_size, args.block_size, rng, args.device)
        loss = loss_of(model, x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
    if args.save:
        save(args.save, model, tok, args, {"iters": args.max_iters})
        print(f"saved to {args.save}")
    text = sample(model, tok, args.start, args.num_chars, args.temperature, args.top_k, rng,
                  args.device)
    print("-" * 40 + "\n" + text + "\n" + "-" * 40)
    return {"train_loss": round(losses["train"], 4), "val_loss": round(losses["val"], 4),
            "iters": args.max_iters, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None):
    args = parse_args(argv)
    try:
        result = run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in result.items() if k != "sample"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
