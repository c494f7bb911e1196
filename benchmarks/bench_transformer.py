r"""Train the translation Transformer for N steps, ours and PyTorch's side by side.

    python benchmarks/bench_transformer.py                 # translate.py's model, 100 steps
    python benchmarks/bench_transformer.py --steps 300 --d-model 256
    python benchmarks/bench_transformer.py --threads 1     # one BLAS / torch thread each

Both models are examples/translate.py's Seq2SeqTransformer: embeddings * sqrt(d_model),
sinusoidal positions, the encoder-decoder Transformer (post-norm, ReLU, batch first) and a Linear
to the vocabulary. torch's twin is built from torch.nn.Transformer with the same attribute names
and loads our state dict, so both start from the same weights. They see the same batches (pairs
of about the same length, with source, target and memory key padding masks and the causal
target mask), the same loss (cross-entropy with label smoothing 0.1, padding ignored), the same
AdamW (betas 0.9/0.98, eps 1e-9, decay on matrices only), warm-up schedule and gradient clipping.
Dropout is 0 so the runs are deterministic. The steps alternate in one process, so load from
other processes slows both alike.

Reports the training loss at each ``--every`` steps for both (they should agree within 0.02
after 100 steps: float32 round-off is all that separates them), the median ms/step after
``--warmup`` steps, and the ratio ours / torch. The last line is a JSON object.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

import translate  # noqa: E402  examples/translate.py: the model, tokenizer and batches

import tinygrad_llm  # noqa: E402
from tinygrad_llm.data import translation_splits  # noqa: E402
from tinygrad_llm.optim import clip_grad_norm_, set_lr, warmup_cosine_lr  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    p.add_argument("--every", type=int, default=20, help="print the losses every N steps")
    p.add_argument("--d-model", type=int, default=translate.DEFAULTS["d_model"])
    p.add_argument("--nhead", type=int, default=translate.DEFAULTS["nhead"])
    p.add_argument("--layers", type=int, default=translate.DEFAULTS["layers"])
    p.add_argument("--dim-feedforward", type=int,
                   default=translate.DEFAULTS["dim_feedforward"])
    p.add_argument("--vocab-size", type=int, default=translate.DEFAULTS["vocab_size"])
    p.add_argument("--batch-size", type=int, default=translate.DEFAULTS["batch_size"])
    p.add_argument("--lr", type=float, default=translate.DEFAULTS["lr"])
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return p.parse_args(argv)


def torch_twin(torch, cfg, state_dict):
    r"""torch's Seq2SeqTransformer with our attribute names, loaded from our state dict."""
    nn = torch.nn

    class TorchSeq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg["d_model"]
            self.src_embed = nn.Embedding(cfg["vocab_size"], d)
            self.tgt_embed = nn.Embedding(cfg["vocab_size"], d)
            self.transformer = nn.Transformer(d, cfg["nhead"], cfg["layers"], cfg["layers"],
                                              cfg["dim_feedforward"], dropout=0.0,
                                              batch_first=True)
            self.generator = nn.Linear(d, cfg["vocab_size"])
            pe = translate.PositionalEncoding(d, cfg["max_len"], 0.0, batch_first=True).pe
            self.register_buffer("pe", torch.from_numpy(pe), persistent=False)  # (max_len, E)
            self.scale = math.sqrt(d)

        def forward(self, src, tgt, src_mask, tgt_mask):
            x = self.src_embed(src) * self.scale + self.pe[:src.shape[1]]        # (N, S, E)
            y = self.tgt_embed(tgt) * self.scale + self.pe[:tgt.shape[1]]        # (N, L, E)
            length = tgt.shape[1]      # bool like the padding masks (True: may not attend)
            causal = torch.ones(length, length, dtype=torch.bool).triu(1)        # (L, L)
            h = self.transformer(x, y, tgt_mask=causal, src_key_padding_mask=src_mask,
                                 tgt_key_padding_mask=tgt_mask,
                                 memory_key_padding_mask=src_mask, tgt_is_causal=True)
            return self.generator(h)                                             # (N, L, V)

    model = TorchSeq2Seq()
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()})
    return model


def main(argv=None):
    args = parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = translation_splits()
    tinygrad_llm.manual_seed(args.seed)
    print(f"training a byte-level BPE tokenizer ({args.vocab_size} tokens)", flush=True)
    vocab = translate.Vocab(translate.train_tokenizer(splits["train"], args.vocab_size))
    examples = translate.encode_pairs(vocab, splits["train"], 64)
    cfg = dict(vocab_size=vocab.tok.vocab_size, d_model=args.d_model, nhead=args.nhead,
               layers=args.layers, dim_feedforward=args.dim_feedforward, dropout=0.0,
               max_len=64)
    ours = translate.Seq2SeqTransformer(**cfg)
    theirs = torch_twin(torch, cfg, ours.state_dict())
    opts = dict(lr=args.lr, weight_decay=translate.DEFAULTS["weight_decay"])
    our_opt = translate.optimizer(ours, opts)
    names = [n for n, _ in theirs.named_parameters()]
    params = dict(theirs.named_parameters())
    torch_opt = torch.optim.AdamW(
        [{"params": [params[n] for n in names if params[n].ndim >= 2],
          "weight_decay": opts["weight_decay"]},
         {"params": [params[n] for n in names if params[n].ndim < 2], "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    warmup = translate.DEFAULTS["warmup_iters"]

    lengths = np.array([len(s) + len(t) for s, t in examples])
    by_length = np.argsort(lengths, kind="stable")
    rng = np.random.default_rng(args.seed)
    print(f"{ours.num_parameters() / 1e6:.2f}M parameters; {args.steps} steps of batch "
          f"{args.batch_size}; torch {torch.__version__} on {torch.get_num_threads()} threads",
          flush=True)
    times = {"ours": [], "torch": []}
    rows = []
    for step in range(args.steps):
        lr = warmup_cosine_lr(step, args.lr, warmup, args.steps, args.lr / 10)
        first = rng.integers(0, len(by_length) - args.batch_size + 1)
        batch = translate.make_batch([examples[i] for i in by_length[first:first +
                                                                     args.batch_size]],
                                     vocab.pad)
        src, tgt_in, tgt_out, src_mask, tgt_mask = batch

        t0 = time.perf_counter()
        set_lr(our_opt, lr)
        loss = translate.batch_loss(ours, batch, args.label_smoothing)
        our_opt.zero_grad()
        loss.backward()
        clip_grad_norm_(ours.parameters(), 1.0)
        our_opt.step()
        our_loss = loss.item()
        t1 = time.perf_counter()
        for group in torch_opt.param_groups:
            group["lr"] = lr
        logits = theirs(*(torch.from_numpy(a) for a in (src, tgt_in, src_mask, tgt_mask)))
        torch_loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), torch.from_numpy(tgt_out.reshape(-1)),
            ignore_index=translate.IGNORE, label_smoothing=args.label_smoothing)
        torch_opt.zero_grad()
        torch_loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        torch_opt.step()
        torch_loss = torch_loss.item()
        t2 = time.perf_counter()
        if step >= args.warmup:
            times["ours"].append(t1 - t0)
            times["torch"].append(t2 - t1)
        rows.append((our_loss, torch_loss))
        if (step + 1) % args.every == 0 or step + 1 == args.steps:
            print(f"step {step + 1:4d}: loss ours {our_loss:.4f}, torch {torch_loss:.4f}, "
                  f"difference {abs(our_loss - torch_loss):.4f}", flush=True)
    ms = {k: 1000 * float(np.median(v)) if v else float("nan") for k, v in times.items()}
    last = rows[-1]
    print(f"ms/step (median after {args.warmup}): ours {ms['ours']:.1f}, torch "
          f"{ms['torch']:.1f}, ratio ours/torch {ms['ours'] / ms['torch']:.2f}")
    print(json.dumps({"steps": args.steps, "loss_ours": round(last[0], 4),
                      "loss_torch": round(last[1], 4),
                      "loss_difference": round(abs(last[0] - last[1]), 4),
                      "ms_per_step_ours": round(ms["ours"], 2),
                      "ms_per_step_torch": round(ms["torch"], 2),
                      "ratio": round(ms["ours"] / ms["torch"], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
