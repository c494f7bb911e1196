r"""Pre-train a small BERT on Jane Austen by masked-language modelling, then fine-tune it.

What this teaches: the first half of modern NLP, and why it matters. A transformer encoder learns
about language from unlabelled text by filling in hidden words; the same encoder then learns a
labelled task (sentiment) better than one that starts from random weights.

1. Tokenizer: a WordPiece vocabulary trained on the six novels (``train_wordpiece``, BPE merges
   with "##", lower-cased, accents stripped).
2. Data: the novels' paragraphs, tokenized and laid end to end, cut into windows of T - 2
   tokens, each framed as [CLS] window [SEP] (T = ``--seq-len``). The last 5% of the windows
   (the end of the last novel) are held out.
3. Masking (``tinygrad_llm.data.mask_tokens``): 15% of the tokens are chosen; 80% of those
   become [MASK], 10% a random token, 10% stay. The model predicts the original token at the
   chosen positions only. Training batches get fresh masks each time they are drawn; the
   held-out windows get one fixed masking, so every evaluation scores the same positions.
4. Model: ``BertForMaskedLM`` (post-LN encoder, prediction head tied to the word embeddings),
   small: hidden 128, 4 layers, 4 heads, FFN 512. Its prediction head runs on the chosen
   positions only (``mlm_loss``): the same loss as running it everywhere, about 7x less work.
5. Train with AdamW, linear warm-up then linear decay; report the held-out MLM loss, the
   masked-token accuracy and the perplexity exp(loss).
6. Fine-tune on the movie-review sentiment split of lstm_classifier.py and bert_finetune.py
   (``bert_finetune.finetune``: AdamW, warm-up, best val epoch), twice with one seed: from the
   pre-trained encoder, and from random initialisation. The gap is what pre-training bought.

    python examples/bert_pretrain.py                       # about 20 min on 2 busy CPU cores
    python examples/bert_pretrain.py --steps 6000 --save austen-bert/
    python examples/bert_pretrain.py --limit-chars 300000 --vocab-size 800 --steps 30 \
        --finetune-limit 400 --finetune-epochs 1           # a smoke run

The last line printed is a JSON object with the figures. One run with the defaults, on 2 CPU
cores shared with other jobs (OPENBLAS_NUM_THREADS=1, about 20 min in all, 15 of them
pre-training): the held-out MLM loss fell from 8.56 (chance, ln 5000 = 8.52) to 5.65, masked-token
accuracy 0.143, perplexity 283; fine-tuned test accuracy 0.728 from the pre-trained encoder
against 0.760 from random initialisation. At this budget the model has learned which tokens are
frequent, not yet to read their context: small BERTs sit on such a plateau until attention
learns to use positions (on a toy task, a tiny BertForMaskedLM of Hugging Face's in PyTorch,
trained the same way, learns step for step as slowly as ours), and here an encoder from the
plateau started fine-tuning worse than random weights. A second run with --dropout 0 --lr 2e-3
--vocab-size 3000 ended on the same plateau (5.61; test accuracy 0.724 pre-trained, 0.751 from
random initialisation). How many more steps it takes for pre-training to pay off here is not
measured yet: try --steps 10000 and more.
"""

import argparse
import json
import math
import sys
import time
import warnings
from types import SimpleNamespace

import numpy as np

# The neighbour example: the movie-review split and the fine-tuning loop, shared so that both
# fine-tunings here are scored exactly as bert_finetune.py scores MiniLM; its progress bar too.
from bert_finetune import evaluate, finetune, load_split, progress_bar

import tinygrad_llm
from tinygrad_llm import no_grad
from tinygrad_llm.data import dataset_path, mask_tokens
from tinygrad_llm.models.bert import BertConfig, BertForMaskedLM, BertForSequenceClassification
from tinygrad_llm.nn import functional as F
from tinygrad_llm.optim import AdamW, set_lr, warmup_linear_lr
from tinygrad_llm.tokenizer import train_wordpiece

HELD_OUT = 0.05         # the last 5% of the windows
EVAL_MASK_SEED = 1234   # the held-out masking, fixed for good


class UsageError(Exception):
    """Bad input: printed as one message to stderr, exit status 2, no traceback."""


# ---- data ---------------------------------------------------------------------------------------
def austen_paragraphs(limit_chars=None):
    """The novels' paragraphs (blank-line separated), in order; the first ``limit_chars``."""
    text = dataset_path("austen.txt").read_text(encoding="utf-8")
    if limit_chars:
        text = text[:limit_chars]
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def make_windows(tokenizer, paragraphs, seq_len):
    r"""All paragraphs' ids end to end, cut into windows of seq_len - 2, each framed as
    [CLS] window [SEP]: an int64 array (N, seq_len). The tail shorter than a window is dropped."""
    ids = [i for row in tokenizer(paragraphs, add_special_tokens=False)["input_ids"]
           for i in row]
    body = seq_len - 2
    n = len(ids) // body
    if n < 2:
        raise UsageError(f"the text gives {len(ids)} tokens: not even two windows of {body}")
    windows = np.asarray(ids[:n * body], dtype=np.int64).reshape(n, body)  # (N, T-2)
    cls = np.full((n, 1), tokenizer.cls_token_id, dtype=np.int64)
    sep = np.full((n, 1), tokenizer.sep_token_id, dtype=np.int64)
    return np.concatenate([cls, windows, sep], axis=1)                     # (N, T)


# ---- the masked-language-model loss --------------------------------------------------------------
def mlm_loss(model, inputs, labels):
    r"""BertForMaskedLM's loss, with the prediction head run only where a label is set.

    x = encoder(inputs) (B, T, H); keep the M rows whose label is not -100, x_m (M, H); logits
    = head(x_m) (M, V); loss = mean cross-entropy against the M labels. Equal to
    ``model(inputs, labels=labels).loss`` (the head is applied to each position alone), but
    the (B, T, V) logits of every position are never built: with 15% masked, ~7x less work
    in the head, which is most of a small model's cost. Returns (loss, logits (M, V), targets).
    """
    b, t = inputs.shape
    rows = np.flatnonzero(labels.reshape(-1) != -100)                      # (M,)
    x = model.bert(inputs).last_hidden_state                               # (B, T, H)
    x_m = x.reshape(b * t, -1)[rows]                                       # (M, H)
    logits = model.cls(x_m)                                                # (M, V)
    targets = labels.reshape(-1)[rows]                                     # (M,)
    return F.cross_entropy(logits, targets), logits, targets


def evaluate_mlm(model, inputs, labels, batch_size=64):
    """Held-out MLM loss (mean over masked tokens), masked-token accuracy and perplexity."""
    model.eval()
    total, correct, count = 0.0, 0, 0
    with no_grad():
        for i in range(0, len(inputs), batch_size):
            loss, logits, targets = mlm_loss(model, inputs[i:i + batch_size],
                                             labels[i:i + batch_size])
            m = len(targets)
            total += loss.item() * m
            correct += int((logits.numpy().argmax(axis=1) == targets).sum())
            count += m
    model.train()
    loss = total / count
    return {"loss": round(loss, 4), "accuracy": round(correct / count, 4),
            "perplexity": round(math.exp(loss), 2)}


def pretrain(model, tokenizer, train, held_out, args):
    r"""``args.steps`` AdamW steps on batches of random training windows, freshly masked;
    evaluate on the held-out windows every ``args.eval_every`` steps. Returns the log."""
    rng = np.random.default_rng(args.seed)
    special = tokenizer.all_special_ids
    eval_inputs, eval_labels = mask_tokens(held_out, np.random.default_rng(EVAL_MASK_SEED),
                                           tokenizer.vocab_size, tokenizer.mask_token_id,
                                           special)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = AdamW([{"params": decay, "weight_decay": args.weight_decay},
                 {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    warmup = int(args.warmup * args.steps)
    log = [{"step": 0, **evaluate_mlm(model, eval_inputs, eval_labels)}]
    print(f"step 0: held-out MLM loss {log[0]['loss']:.3f} (chance: ln V = "
          f"{math.log(tokenizer.vocab_size):.3f})", flush=True)
    t0, running = time.perf_counter(), None
    bar = progress_bar(args, args.steps, "pre-train")
    model.train()
    for step in range(1, args.steps + 1):
        batch = train[rng.integers(0, len(train), size=args.batch_size)]    # (B, T)
        inputs, labels = mask_tokens(batch, rng, tokenizer.vocab_size,
                                     tokenizer.mask_token_id, special)
        set_lr(opt, warmup_linear_lr(step - 1, args.lr, warmup, args.steps))
        loss, _, _ = mlm_loss(model, inputs, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}")
        if step % args.eval_every == 0 or step == args.steps:
            entry = {"step": step, "train_loss": round(running, 4),
                     **evaluate_mlm(model, eval_inputs, eval_labels),
                     "seconds": round(time.perf_counter() - t0, 1)}
            log.append(entry)
            message = (f"step {step}: train loss {running:.3f} | held-out MLM loss "
                       f"{entry['loss']:.3f}, masked-token accuracy {entry['accuracy']:.3f}, "
                       f"perplexity {entry['perplexity']:.1f} ({entry['seconds']}s)")
            if bar is not None:
                bar.write(message)
            else:
                print(message, flush=True)
    if bar is not None:
        bar.close()
    return log


# ---- fine-tuning: pre-trained against random initialisation -------------------------------------
def classifier_from(config, mlm_model, seed):
    r"""A BertForSequenceClassification(2) with the given encoder weights (or, for
    ``mlm_model=None``, BERT's random initialisation); the pooler and the classifier are new.
    Both are built after ``manual_seed(seed)``, so they start from the same head weights."""
    tinygrad_llm.manual_seed(seed)
    model = BertForSequenceClassification(config, num_labels=2)
    if mlm_model is not None:
        arrays = {name: p.numpy() for name, p in mlm_model.bert.named_parameters()}
        with warnings.catch_warnings():              # the pooler: new, we know
            warnings.filterwarnings("ignore", message=".*no weights for")
            model.load_hf_state_dict(arrays, source="the pre-trained encoder")
    return model


def compare_finetuning(config, mlm_model, tokenizer, args):
    """Fine-tune from the pre-trained encoder and from random weights; the test accuracy of the
    best val epoch of each."""
    data = load_split(limit=args.finetune_limit)
    ft_args = SimpleNamespace(epochs=args.finetune_epochs, batch_size=args.batch_size,
                              lr=args.finetune_lr, weight_decay=0.01, warmup=0.1,
                              max_length=args.seq_len, seed=args.seed, progress=args.progress)
    results = {}
    for name, source in (("pretrained", mlm_model), ("random_init", None)):
        print(f"fine-tuning from {name.replace('_', ' ')} weights:", flush=True)
        model = classifier_from(config, source, args.seed)
        t0 = time.perf_counter()
        log, best_val = finetune(model, tokenizer, data, ft_args)
        test_loss, test_acc = evaluate(model, tokenizer, *data["test"], args.seq_len)
        results[name] = {"test_accuracy": round(test_acc, 4), "test_loss": round(test_loss, 4),
                         "best_val_accuracy": round(best_val, 4),
                         "seconds": round(time.perf_counter() - t0, 1), "epochs": log}
        print(f"  {name}: test accuracy {test_acc:.4f} (best val {best_val:.4f})", flush=True)
    results["sizes"] = {k: len(v[0]) for k, v in data.items()}
    return results


# ---- the script ---------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab-size", type=int, default=5000, help="WordPiece vocabulary size")
    p.add_argument("--seq-len", type=int, default=64, help="tokens per window, [CLS] and [SEP] "
                                                           "included")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=2000, help="pre-training steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="pre-training peak learning rate")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.05, help="fraction of steps warming up")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--finetune-lr", type=float, default=2e-4)
    p.add_argument("--finetune-limit", type=int, default=None,
                   help="use only the first N movie-review sentences")
    p.add_argument("--no-finetune", action="store_true", help="pre-train only")
    p.add_argument("--limit-chars", type=int, default=None,
                   help="use only the first N characters of the novels")
    p.add_argument("--save", default=None, help="a folder for the pre-trained model and its "
                                                "tokenizer (Hugging Face's layout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    for name in ("vocab_size", "hidden", "layers", "heads", "ffn", "steps", "batch_size",
                 "eval_every", "finetune_epochs"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if args.seq_len < 3:
        raise UsageError("--seq-len must be >= 3 ([CLS], a token, [SEP])")
    if args.hidden % args.heads:
        raise UsageError(f"--hidden {args.hidden} must be divisible by --heads {args.heads}")
    if not 0 <= args.dropout < 1 or not 0 <= args.warmup < 1:
        raise UsageError("--dropout and --warmup must be in [0, 1)")
    return args


def main(argv=None):
    try:
        args = parse_args(argv)
        t0 = time.perf_counter()
        paragraphs = austen_paragraphs(args.limit_chars)
        tokenizer = train_wordpiece(paragraphs, args.vocab_size)
        vocab_seconds = time.perf_counter() - t0
        windows = make_windows(tokenizer, paragraphs, args.seq_len)
    except (UsageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_held = max(1, int(HELD_OUT * len(windows)))
    train, held_out = windows[:-n_held], windows[-n_held:]
    print(f"WordPiece: {tokenizer.vocab_size} tokens in {vocab_seconds:.1f}s; "
          f"{windows.size:,} tokens in {len(windows):,} windows of {args.seq_len} "
          f"({len(train):,} train, {n_held:,} held out)", flush=True)

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=args.hidden,
                        num_hidden_layers=args.layers, num_attention_heads=args.heads,
                        intermediate_size=args.ffn, max_position_embeddings=args.seq_len,
                        hidden_dropout_prob=args.dropout,
                        attention_probs_dropout_prob=args.dropout)
    tinygrad_llm.manual_seed(args.seed)
    model = BertForMaskedLM(config)
    print(f"BertForMaskedLM: {model.num_parameters():,} parameters", flush=True)
    t1 = time.perf_counter()
    log = pretrain(model, tokenizer, train, held_out, args)
    pretrain_seconds = time.perf_counter() - t1
    if args.save:
        model.save_pretrained(args.save)
        tokenizer.save_pretrained(args.save)
        print(f"saved the pre-trained model and its tokenizer in {args.save}", flush=True)

    finetuned = None
    if not args.no_finetune:
        finetuned = compare_finetuning(config, model, tokenizer, args)
        gain = finetuned["pretrained"]["test_accuracy"] - finetuned["random_init"]["test_accuracy"]
        print(f"pre-training changed the sentiment test accuracy by {gain:+.4f}", flush=True)
    print(json.dumps({"held_out_mlm": {k: log[-1][k] for k in ("loss", "accuracy", "perplexity")},
                      "held_out_at_init": {k: log[0][k] for k in ("loss", "accuracy",
                                                                  "perplexity")},
                      "vocab_size": tokenizer.vocab_size, "parameters": model.num_parameters(),
                      "pretrain_seconds": round(pretrain_seconds, 1), "pretrain_log": log,
                      "finetune": finetuned,
                      "options": {k: v for k, v in vars(args).items() if k != "progress"},
                      "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
