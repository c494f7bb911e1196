r"""all-MiniLM-L6-v2, ours and Hugging Face transformers (PyTorch eager) side by side.

    python benchmarks/bench_bert.py                       # 10 fine-tuning steps, 512 sentences
    python benchmarks/bench_bert.py --steps 20 --sentences 2000
    python benchmarks/bench_bert.py --threads 1           # one torch thread (NumPy: set
                                                          # OPENBLAS_NUM_THREADS=1 yourself)

1. A fine-tuning step: BertForSequenceClassification (MiniLM, a new 2-way classifier) on a batch
   of 32 movie-review sentences of their real lengths (padded to the longest in the batch),
   forward, cross-entropy, backward and an AdamW step (lr 5e-5, weight decay 0.01), in training
   mode (dropout 0.1). transformers' model loads our save_pretrained folder, so both start from
   the same weights; the first batch's eval-mode loss is printed for both as a check. The steps
   alternate in one process (load from other processes slows both alike); the median ms/step
   after ``--warmup`` steps is reported, and ours / transformers.
2. Sentence embeddings: ``SentenceEncoder.encode`` on ``--sentences`` review sentences (batches
   of 32, sorted by length) against the same pipeline in transformers (BertTokenizerFast,
   BertModel under torch.no_grad, mean pooling over the attention mask, normalize), as
   sentence-transformers runs it; sentences per second for both, ours / transformers, and the
   largest difference between the embeddings.

The last line is a JSON object with both figures.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinygrad_llm  # noqa: E402
from tinygrad_llm import no_grad  # noqa: E402
from tinygrad_llm.data import load_movie_reviews  # noqa: E402
from tinygrad_llm.models.bert import BertForSequenceClassification  # noqa: E402
from tinygrad_llm.models.sentence_encoder import SentenceEncoder  # noqa: E402
from tinygrad_llm.optim import AdamW  # noqa: E402
from tinygrad_llm.tokenizer import BertTokenizer, minilm_dir  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10, help="fine-tuning steps timed, each side")
    p.add_argument("--warmup", type=int, default=2, help="steps left out of the timing")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--sentences", type=int, default=512, help="sentences to embed")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def hf_encode(torch, model, tokenizer, sentences, batch_size=32, max_seq_length=256):
    """sentence-transformers' encode, from transformers: longest first, mean pooling, normalize."""
    out = np.zeros((len(sentences), model.config.hidden_size), dtype=np.float32)
    order = np.argsort([-len(s) for s in sentences], kind="stable")
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            enc = tokenizer([sentences[j] for j in idx], padding=True, truncation=True,
                            max_length=max_seq_length, return_tensors="pt")
            x = model(**enc).last_hidden_state                              # (B, T, H)
            m = enc["attention_mask"].unsqueeze(-1).to(x.dtype)             # (B, T, 1)
            e = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)                   # (B, H)
            out[idx] = torch.nn.functional.normalize(e, p=2, dim=1).numpy()
    return out


def main(argv=None):
    args = parse_args(argv)
    import torch
    import transformers
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    folder = minilm_dir()
    texts = [t for _, score, t in load_movie_reviews() if score != 0]
    rng = np.random.default_rng(args.seed)
    tokenizer = BertTokenizer.from_pretrained(folder)
    hf_tokenizer = transformers.BertTokenizerFast.from_pretrained(folder)

    # ---- 1. a fine-tuning step ----------------------------------------------------------------
    tinygrad_llm.manual_seed(args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = BertForSequenceClassification.from_pretrained(folder, num_labels=2)
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        theirs = transformers.BertForSequenceClassification.from_pretrained(tmp)
    n_steps = args.steps + args.warmup
    batches = []
    for _ in range(n_steps):
        idx = rng.choice(len(texts), args.batch_size, replace=False)
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=256,
                        return_tensors="np")
        batches.append((enc, rng.integers(0, 2, args.batch_size)))
    lengths = [enc["input_ids"].shape[1] for enc, _ in batches]
    enc, labels = batches[0]
    ours.eval()
    theirs.eval()
    with no_grad():
        loss_ours = ours(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
                         labels=labels).loss.item()
    with torch.no_grad():
        loss_theirs = theirs(**{k: torch.tensor(v) for k, v in enc.items()},
                             labels=torch.tensor(labels)).loss.item()
    print(f"same weights: eval loss of batch 0, ours {loss_ours:.6f}, transformers "
          f"{loss_theirs:.6f}", flush=True)
    ours.train()
    theirs.train()
    opt_ours = AdamW(ours.parameters(), lr=5e-5, weight_decay=0.01)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=5e-5, weight_decay=0.01)
    times = {"ours": [], "transformers": []}
    for step, (enc, labels) in enumerate(batches):
        t0 = time.perf_counter()
        out = ours(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
                   labels=labels)
        opt_ours.zero_grad()
        out.loss.backward()
        opt_ours.step()
        t1 = time.perf_counter()
        out_t = theirs(**{k: torch.tensor(v) for k, v in enc.items()},
                       labels=torch.tensor(labels))
        opt_theirs.zero_grad()
        out_t.loss.backward()
        opt_theirs.step()
        t2 = time.perf_counter()
        if step >= args.warmup:
            times["ours"].append(t1 - t0)
            times["transformers"].append(t2 - t1)
        print(f"step {step:3d} (T={enc['input_ids'].shape[1]:3d}): ours {1e3 * (t1 - t0):7.0f} "
              f"ms, transformers {1e3 * (t2 - t1):7.0f} ms", flush=True)
    step_ours = statistics.median(times["ours"]) * 1e3
    step_theirs = statistics.median(times["transformers"]) * 1e3
    print(f"fine-tuning step, batch {args.batch_size}, median of {args.steps}: ours "
          f"{step_ours:.0f} ms, transformers {step_theirs:.0f} ms, ours/transformers "
          f"{step_ours / step_theirs:.2f}x", flush=True)
    del ours, theirs, opt_ours, opt_theirs

    # ---- 2. sentence embeddings ---------------------------------------------------------------
    sentences = [texts[i] for i in rng.permutation(len(texts))[:args.sentences]]
    encoder = SentenceEncoder.from_pretrained(folder)
    hf_model = transformers.BertModel.from_pretrained(folder).eval()
    encoder.encode(sentences[:32])                                          # warm up both
    hf_encode(torch, hf_model, hf_tokenizer, sentences[:32])
    t0 = time.perf_counter()
    e_ours = encoder.encode(sentences, batch_size=32)
    t1 = time.perf_counter()
    e_theirs = hf_encode(torch, hf_model, hf_tokenizer, sentences, batch_size=32)
    t2 = time.perf_counter()
    rate_ours, rate_theirs = len(sentences) / (t1 - t0), len(sentences) / (t2 - t1)
    gap = float(np.abs(e_ours - e_theirs).max())
    print(f"encode {len(sentences)} sentences: ours {rate_ours:.1f}/s, transformers "
          f"{rate_theirs:.1f}/s, ours/transformers {rate_ours / rate_theirs:.2f}x (largest "
          f"difference {gap:.1e})", flush=True)
    print(json.dumps({
        "finetune_step_ms": {"ours": round(step_ours, 1), "transformers": round(step_theirs, 1),
                             "ours_over_transformers": round(step_ours / step_theirs, 3)},
        "batch_size": args.batch_size, "steps": args.steps,
        "median_length": float(np.median(lengths)),
        "eval_loss_batch0": {"ours": round(loss_ours, 6), "transformers": round(loss_theirs, 6)},
        "encode_sentences_per_s": {"ours": round(rate_ours, 1),
                                   "transformers": round(rate_theirs, 1),
                                   "ours_over_transformers": round(rate_ours / rate_theirs, 3)},
        "sentences": len(sentences), "embedding_max_abs_diff": gap,
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "transformers": transformers.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
