r"""Pre-train a small BERT on Jane Austen by masked-language modelling, then fine-tune it.

What this teaches: the first half of modern NLP, what it costs, and how to measure whether it
paid. A transformer encoder learns about language from unlabelled text by filling in hidden
words; the same encoder is then fine-tuned on a labelled task (sentiment) and compared with one
that starts from random weights.

1. Tokenizer: a WordPiece vocabulary trained on the six novels (``train_wordpiece``, BPE merges
   with "##", lower-cased, accents stripped).
2. Data: the novels' paragraphs, tokenized and laid end to end; the last 5% of the tokens (the
   end of the last novel) are held out. Both parts are cut into windows of T - 2 tokens, each
   framed as [CLS] window [SEP].
3. Masking (``tinygrad_llm.data.mask_tokens``): 15% of the tokens are chosen; 80% of those
   become [MASK], 10% a random token, 10% stay. The model predicts the original token at the
   chosen positions only. Training batches get fresh masks each time they are drawn; the
   held-out windows get one fixed masking, so every evaluation scores the same positions.
4. Model: ``BertForMaskedLM`` (post-LN encoder, prediction head tied to the word embeddings),
   small: hidden 128, 2 layers, 4 heads, FFN 512, initial weights N(0, 0.05^2). Its prediction
   head runs on the chosen positions only (``mlm_loss``): the same loss as running it
   everywhere, about 7x less work.
5. Train with AdamW, linear warm-up then linear decay, as BERT did: 90% of the steps on
   32-token windows, the last 10% on 64-token ones (``phases``), so that every position
   embedding fine-tuning uses is trained. Report the held-out MLM loss, the masked-token
   accuracy and the perplexity exp(loss).
6. Fine-tune on the movie-review sentiment split of lstm_classifier.py and bert_finetune.py
   (``bert_finetune.finetune``: AdamW, warm-up, best val epoch), from the pre-trained encoder
   and from random initialisation, with three seeds each. The gap is what pre-training bought.

    python examples/bert_pretrain.py                       # 11.5 min on 2 quiet CPU cores
    python examples/bert_pretrain.py --steps 40000 --save austen-bert/
    python examples/bert_pretrain.py --review-text         # the reviews' text in pre-training too
    python examples/bert_pretrain.py --limit-chars 300000 --vocab-size 800 --steps 30 \
        --finetune-limit 400 --finetune-epochs 1 --finetune-seeds 1    # a smoke run

The last line printed is a JSON object with the figures. Two things to know, both measured
(docs/bert.md, "Pre-training a small BERT", has the numbers and the commands):

- A small BERT first learns only which tokens are frequent (held-out loss near the unigram
  entropy, 6.17 nats here, 5.6 with the unchanged 10%), and stays there until its attention
  learns to find a token's neighbours. With BERT-base's initial std 0.02 at hidden size 128 the
  attention logits start 6x smaller than in BERT-base and that took more than 6,000 steps;
  with std 0.05 (the same logit scale as BERT-base) and 32-token windows, about 3,500.
- On this budget pre-training does not help the sentiment task: the default run reaches a
  held-out MLM loss of 3.82 (masked-token accuracy 0.33) on 32-token windows, yet fine-tunes to
  a mean test accuracy of 0.733 over three seeds against 0.750 from random initialisation.
  Longer runs and the reviews' own text are measured in docs/bert.md: a million tokens of
  novels teach the model syntax, not which words are praise.
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
from bert_finetune import configure_optimizer, evaluate, finetune, load_split, progress_bar

import tinygrad_llm
from tinygrad_llm import no_grad
from tinygrad_llm.data import dataset_path, mask_tokens
from tinygrad_llm.models.bert import BertConfig, BertForMaskedLM, BertForSequenceClassification
from tinygrad_llm.nn import functional as F
from tinygrad_llm.optim import set_lr, warmup_linear_lr
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


def corpus_ids(tokenizer, paragraphs):
    """All paragraphs' ids laid end to end: an int64 array."""
    rows = tokenizer(paragraphs, add_special_tokens=False)["input_ids"]
    return np.asarray([i for row in rows for i in row], dtype=np.int64)


def make_windows(tokenizer, ids, seq_len):
    r"""``ids`` cut into windows of seq_len - 2, each framed as [CLS] window [SEP]: an int64
    array (N, seq_len). The tail shorter than a window is dropped."""
    body = seq_len - 2
    n = len(ids) // body
    if n < 2:
        raise UsageError(f"the text gives {len(ids)} tokens: not even two windows of {body}")
    windows = ids[:n * body].reshape(n, body)                               # (N, T-2)
    cls = np.full((n, 1), tokenizer.cls_token_id, dtype=np.int64)
    sep = np.full((n, 1), tokenizer.sep_token_id, dtype=np.int64)
    return np.concatenate([cls, windows, sep], axis=1)                     # (N, T)


def split_windows(tokenizer, ids, lengths):
    r"""The last HELD_OUT of the tokens held out, the rest for training; each part cut into
    windows of every length in ``lengths``: {seq_len: (train (N, T), held_out (M, T))}. Every
    length holds out the same text."""
    n_held = max(1, int(HELD_OUT * len(ids)))
    train_ids, held_ids = ids[:-n_held], ids[-n_held:]
    return {t: (make_windows(tokenizer, train_ids, t), make_windows(tokenizer, held_ids, t))
            for t in sorted(set(lengths))}


def phases(args):
    r"""The pre-training schedule: [(seq_len, steps), ...]. BERT's own recipe: most steps on
    short windows (cheap, and a small model learns to read context sooner there), then the
    last ones on full-length windows, so that every position embedding up to --seq-len is
    trained before fine-tuning uses it."""
    short = round(args.short_fraction * args.steps) if args.short_seq_len < args.seq_len else 0
    return [(t, n) for t, n in ((args.short_seq_len, short), (args.seq_len, args.steps - short))
            if n > 0]


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


def pretrain(model, tokenizer, windows, args):
    r"""``args.steps`` AdamW steps on batches of random training windows, freshly masked, phase
    by phase (``phases``: short windows, then full length); one warm-up and linear decay over
    all of them. Every ``args.eval_every`` steps, and at the end of each phase, evaluate on the
    held-out windows of the current length. Returns the log."""
    rng = np.random.default_rng(args.seed)
    special = tokenizer.all_special_ids
    held_out = {}                                    # seq_len -> (inputs, labels), fixed masks
    for t, (_, windows_t) in windows.items():
        held_out[t] = mask_tokens(windows_t, np.random.default_rng(EVAL_MASK_SEED),
                                  tokenizer.vocab_size, tokenizer.mask_token_id, special)
    opt = configure_optimizer(model, args.lr, args.weight_decay)
    warmup = int(args.warmup * args.steps)
    schedule = phases(args)

    def evaluation(step, seq_len, **extra):
        return {"step": step, "seq_len": seq_len, **extra,
                **evaluate_mlm(model, *held_out[seq_len])}

    log = [evaluation(0, args.seq_len)]
    print(f"step 0: held-out MLM loss {log[0]['loss']:.3f} (chance: ln V = "
          f"{math.log(tokenizer.vocab_size):.3f})", flush=True)
    t0, running, done = time.perf_counter(), None, 0
    bar = progress_bar(args, args.steps, "pre-train")
    model.train()
    for seq_len, n_steps in schedule:
        train = windows[seq_len][0]
        last = done + n_steps
        for step in range(done + 1, last + 1):
            batch = train[rng.integers(0, len(train), size=args.batch_size)]   # (B, T)
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
                bar.set_postfix(T=seq_len, loss=f"{running:.3f}")
            if step % args.eval_every == 0 or step == last:
                entry = evaluation(step, seq_len, train_loss=round(running, 4),
                                   seconds=round(time.perf_counter() - t0, 1))
                log.append(entry)
                message = (f"step {step} (T={seq_len}): train loss {running:.3f} | held-out "
                           f"MLM loss {entry['loss']:.3f}, masked-token accuracy "
                           f"{entry['accuracy']:.3f}, perplexity {entry['perplexity']:.1f} "
                           f"({entry['seconds']}s)")
                if bar is not None:
                    bar.write(message)
                else:
                    print(message, flush=True)
        done = last
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


def compare_finetuning(config, mlm_model, tokenizer, data, args):
    r"""Fine-tune from the pre-trained encoder and from random weights, once per seed in
    ``range(args.seed, args.seed + args.finetune_seeds)`` (the seed sets the new head's weights,
    the random encoder's and the batch order; both starts share it). Reports the test accuracy
    of each run's best val epoch, and the mean over seeds. ``data`` is ``load_split``'s."""
    results = {name: {"runs": []} for name in ("pretrained", "random_init")}
    for seed in range(args.seed, args.seed + args.finetune_seeds):
        ft_args = SimpleNamespace(epochs=args.finetune_epochs, batch_size=args.batch_size,
                                  lr=args.finetune_lr, weight_decay=0.01, warmup=0.1,
                                  max_length=args.seq_len, seed=seed, progress=args.progress)
        for name, source in (("pretrained", mlm_model), ("random_init", None)):
            print(f"fine-tuning from {name.replace('_', ' ')} weights, seed {seed}:", flush=True)
            model = classifier_from(config, source, seed)
            t0 = time.perf_counter()
            log, best_val = finetune(model, tokenizer, data, ft_args)
            test_loss, test_acc = evaluate(model, tokenizer, *data["test"], args.seq_len)
            results[name]["runs"].append({
                "seed": seed, "test_accuracy": round(test_acc, 4),
                "test_loss": round(test_loss, 4), "best_val_accuracy": round(best_val, 4),
                "seconds": round(time.perf_counter() - t0, 1), "epochs": log})
            print(f"  {name}, seed {seed}: test accuracy {test_acc:.4f} (best val "
                  f"{best_val:.4f})", flush=True)
    for entry in results.values():
        accuracies = [run["test_accuracy"] for run in entry["runs"]]
        entry["test_accuracy"] = round(float(np.mean(accuracies)), 4)
        entry["test_accuracies"] = accuracies
    results["sizes"] = {k: len(v[0]) for k, v in data.items()}
    return results


# ---- the script ---------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab-size", type=int, default=5000, help="WordPiece vocabulary size")
    p.add_argument("--seq-len", type=int, default=64, help="tokens per window, [CLS] and [SEP] "
                                                           "included; fine-tuning's max length")
    p.add_argument("--short-seq-len", type=int, default=32,
                   help="the window length of the first --short-fraction of the steps")
    p.add_argument("--short-fraction", type=float, default=0.9,
                   help="fraction of the steps on short windows (0: all at --seq-len)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--init-range", type=float, default=0.05,
                   help="std of the initial weights (BertConfig.initializer_range)")
    p.add_argument("--steps", type=int, default=10000, help="pre-training steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="pre-training peak learning rate")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.05, help="fraction of steps warming up")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--finetune-seeds", type=int, default=3,
                   help="fine-tune each start this many times, seeds --seed, --seed + 1, ...")
    p.add_argument("--finetune-limit", type=int, default=None,
                   help="use only the first N movie-review sentences")
    p.add_argument("--no-finetune", action="store_true", help="pre-train only")
    p.add_argument("--review-text", action="store_true",
                   help="also pre-train on the text of the movie-review training sentences "
                        "(never their labels, never the val or test sentences)")
    p.add_argument("--limit-chars", type=int, default=None,
                   help="use only the first N characters of the novels")
    p.add_argument("--save", default=None, help="a folder for the pre-trained model and its "
                                                "tokenizer (Hugging Face's layout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    for name in ("vocab_size", "hidden", "layers", "heads", "ffn", "steps", "batch_size",
                 "eval_every", "finetune_epochs", "finetune_seeds"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.seq_len, args.short_seq_len) < 3:
        raise UsageError("--seq-len and --short-seq-len must be >= 3 ([CLS], a token, [SEP])")
    if not 0 <= args.short_fraction < 1:
        raise UsageError(f"--short-fraction must be in [0, 1), got {args.short_fraction}")
    if not args.init_range > 0:
        raise UsageError(f"--init-range must be > 0, got {args.init_range}")
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
        reviews = load_split(limit=args.finetune_limit)     # the fine-tuning split
        if args.review_text:       # first, so that the held-out tail stays Austen's
            paragraphs = reviews["train"][0] + paragraphs
        tokenizer = train_wordpiece(paragraphs, args.vocab_size)
        vocab_seconds = time.perf_counter() - t0
        ids = corpus_ids(tokenizer, paragraphs)
        windows = split_windows(tokenizer, ids, [t for t, _ in phases(args)] + [args.seq_len])
    except (UsageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"WordPiece: {tokenizer.vocab_size} tokens in {vocab_seconds:.1f}s; {len(ids):,} "
          f"tokens, the last {HELD_OUT:.0%} held out; " + "; ".join(
              f"{len(tr):,} train and {len(ho):,} held-out windows of {t}"
              for t, (tr, ho) in windows.items()), flush=True)

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=args.hidden,
                        num_hidden_layers=args.layers, num_attention_heads=args.heads,
                        intermediate_size=args.ffn, max_position_embeddings=args.seq_len,
                        hidden_dropout_prob=args.dropout,
                        attention_probs_dropout_prob=args.dropout,
                        initializer_range=args.init_range)
    tinygrad_llm.manual_seed(args.seed)
    model = BertForMaskedLM(config)
    print(f"BertForMaskedLM: {model.num_parameters():,} parameters", flush=True)
    t1 = time.perf_counter()
    log = pretrain(model, tokenizer, windows, args)
    pretrain_seconds = time.perf_counter() - t1
    if args.save:
        model.save_pretrained(args.save)
        tokenizer.save_pretrained(args.save)
        print(f"saved the pre-trained model and its tokenizer in {args.save}", flush=True)

    finetuned = None
    if not args.no_finetune:
        finetuned = compare_finetuning(config, model, tokenizer, reviews, args)
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
