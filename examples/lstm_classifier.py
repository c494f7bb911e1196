r"""Sentiment of movie-review sentences with an LSTM: the classic Keras pipeline, in tinygrad_llm.

What this teaches: the text-classification recipe that precedes attention in every course,
and what a recurrent layer adds over counting words.

1. Data: 10,605 movie-review sentences with a human sentiment score in [-4, 4] (shipped with the
   package; provenance in tinygrad_llm/datasets/README.md). The 37 with score 0 are dropped and
   score > 0 is "positive". A fixed, seeded 80/10/10 train/val/test split (``SPLIT_SEED``;
   ``--seed`` does not move it).
2. Tokenize: ``WordTokenizer(num_words, oov_token="<unk>")`` (Keras's ``Tokenizer``) fitted on
   the training sentences, ``texts_to_sequences``, then ``pad_sequences(maxlen)`` (Keras's:
   pre-padding with 0, pre-truncating) into one (N, T) array of word ids.
3. Model: Embedding -> LSTM (or GRU, ``--cell gru``) -> the last hidden state h_n -> Linear(1):
   one logit per sentence, p(positive) = sigmoid(logit). (Keras: Embedding, LSTM(64),
   Dense(1, activation="sigmoid").)
4. Train with Adam on binary cross-entropy (``binary_cross_entropy_with_logits``, the stable
   fusion of the sigmoid and the loss), report loss and accuracy on train and val each epoch,
   keep the weights of the best val epoch, and report test accuracy at the end.
5. Baseline: logistic regression on bag-of-words counts (one weight per word, summed over the
   sentence, plus a bias), trained the same way. Word order is invisible to it; the gap between
   the two is what the LSTM learns from order ("not good" vs "good"). On these 8,454 short
   training sentences there is no such gap beyond noise (docs/performance.md): the LSTM
   overfits within three epochs, and counting words is as good.

    python examples/lstm_classifier.py                          # 20 s to 2 min on 2 CPU cores
    python examples/lstm_classifier.py --cell gru --epochs 8
    python examples/lstm_classifier.py --save sentiment.npz
    python examples/lstm_classifier.py --load sentiment.npz --predict "a gorgeous, moving film"

The last line printed is a JSON object with the final metrics; with the defaults it was
``{"test_accuracy": 0.7628, ..., "baseline_test_accuracy": 0.7779, ...}``.
"""

import argparse
import json
import sys
import time

import numpy as np

import tinygrad_llm
from tinygrad_llm import Tensor, nn, no_grad
from tinygrad_llm.checkpoint import load_npz, save_npz
from tinygrad_llm.data import load_movie_reviews, movie_review_splits, pad_sequences
from tinygrad_llm.nn import functional as F
from tinygrad_llm.optim import Adam
from tinygrad_llm.tokenizer import WordTokenizer

FORMAT = "tinygrad_llm.lstm_classifier"
# The train/val/test split is fixed, whatever --seed says: runs with different seeds (to see the
# spread of a setting) are then scored on the same val and test sentences.
SPLIT_SEED = 0


class UsageError(Exception):
    """Bad input: printed as one message to stderr, exit status 2, no traceback."""


# ---- the models -------------------------------------------------------------------------------
class SentimentRNN(nn.Module):
    r"""ids (B, T) -> Embedding (B, T, D) -> LSTM/GRU -> h_n of the last layer (B, H) -> Linear
    -> logit (B,). Pre-padding puts every sentence's last word at step T-1, so h_n has read all
    of it."""

    def __init__(self, vocab_size, embed_dim=64, hidden_size=64, cell="lstm", dropout=0.0):
        super().__init__()
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        # Keras's Embedding starts at U(-0.05, 0.05), torch's at N(0, 1). Small inputs keep the
        # LSTM's gates out of saturation at the start, and it learns much faster here.
        self.embedding.weight.data = nn.init.uniform((vocab_size, embed_dim), 0.05)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_cls(embed_dim, hidden_size, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, ids):
        x = self.embedding(ids)                                             # (B, T, D)
        _, state = self.rnn(x)
        h_n = state[0] if self.cell == "lstm" else state                    # (1, B, H)
        return self.head(self.drop(h_n[-1])).reshape(-1)                    # (B,)


class BagOfWords(nn.Module):
    r"""Logistic regression on word counts: logit = sum over the sentence's words of w[word] + b.

    Written as an Embedding with one column: ``w[ids]`` (B, T, 1), padding (id 0) masked out,
    summed over T. That is x . w for the count vector x, without building the (B, V) counts."""

    def __init__(self, vocab_size):
        super().__init__()
        self.weight = nn.Embedding(vocab_size, 1)
        self.weight.weight.data[:] = 0
        self.bias = nn.Parameter(np.zeros(1, dtype=np.float32))

    def forward(self, ids):
        mask = Tensor((ids != 0).astype(np.float32))                        # (B, T)
        w = self.weight(ids).reshape(ids.shape)                             # (B, T)
        return (w * mask).sum(axis=1) + self.bias                           # (B,)


# ---- data -------------------------------------------------------------------------------------
def load_split(path, seed=SPLIT_SEED, limit=None):
    """data.movie_review_splits: drop sentiment 0, label > 0 positive, shuffle with ``seed`` and
    cut 80/10/10, with float32 labels (binary cross-entropy's targets); a bad file is a
    UsageError."""
    try:
        rows = load_movie_reviews(path)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    return movie_review_splits(rows, seed, limit, label_dtype=np.float32)


def encode(tokenizer, texts, maxlen):
    return pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=maxlen)  # (N, T) int64


# ---- training ---------------------------------------------------------------------------------
def evaluate(model, ids, labels, batch_size=256):
    """Mean binary cross-entropy and accuracy, in eval mode without a graph."""
    model.eval()
    total, correct = 0.0, 0
    with no_grad():
        for i in range(0, len(ids), batch_size):
            logits = model(ids[i:i + batch_size])                           # (B,)
            y = labels[i:i + batch_size]
            total += F.binary_cross_entropy_with_logits(logits, y, reduction="sum").item()
            correct += int(((logits.numpy() > 0) == (y > 0.5)).sum())
    model.train()
    return total / len(ids), correct / len(ids)


def train(model, data, args, name):
    """Adam on binary cross-entropy; returns the per-epoch log and the best val accuracy. The
    weights of the best val epoch are loaded back at the end (early stopping on val)."""
    opt = Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    (train_ids, train_y), (val_ids, val_y) = data["train"], data["val"]
    best_acc, best_state, log = -1.0, None, []
    progress = _progress_bar(args)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train_ids))
        batches = range(0, len(order), args.batch_size)
        bar = progress(batches, desc=f"{name} epoch {epoch}/{args.epochs}")
        t0, seen, total, correct = time.perf_counter(), 0, 0.0, 0
        for i in bar:
            idx = order[i:i + args.batch_size]
            logits = model(train_ids[idx])                                  # (B,)
            loss = F.binary_cross_entropy_with_logits(logits, train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
            total += loss.item() * len(idx)
            correct += int(((logits.numpy() > 0) == (train_y[idx] > 0.5)).sum())
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{correct / seen:.3f}")
        val_loss, val_acc = evaluate(model, val_ids, val_y)
        entry = {"model": name, "epoch": epoch, "train_loss": round(total / seen, 4),
                 "train_accuracy": round(correct / seen, 4), "val_loss": round(val_loss, 4),
                 "val_accuracy": round(val_acc, 4),
                 "seconds": round(time.perf_counter() - t0, 1)}
        log.append(entry)
        print(f"{name} epoch {epoch}: train loss {entry['train_loss']:.4f} acc "
              f"{entry['train_accuracy']:.3f} | val loss {val_loss:.4f} acc {val_acc:.3f} "
              f"({entry['seconds']}s)", flush=True)
        if val_acc > best_acc:
            best_acc, best_state = val_acc, model.state_dict()
    model.load_state_dict(best_state)
    return log, best_acc


def _progress_bar(args):
    """tqdm if it is installed and wanted, else a plain iterable."""
    if not args.progress:
        return lambda it, desc: it
    try:
        from tqdm import tqdm
    except ImportError:
        return lambda it, desc: it
    return lambda it, desc: tqdm(it, desc=desc, leave=False, file=sys.stderr)


# ---- saving and predicting (no pickle: arrays in .npz, the rest as JSON) ------------------------
def save(path, model, tokenizer, args):
    meta = {"format": FORMAT, "version": 1, "tokenizer": tokenizer.to_json(),
            "config": {"num_words": args.num_words, "maxlen": args.maxlen,
                       "embed_dim": args.embed_dim, "hidden_size": args.hidden_size,
                       "cell": args.cell}}
    save_npz(path, {f"model.{k}": v for k, v in model.state_dict().items()}, meta)  # atomic


def load(path):
    try:
        meta, arrays = load_npz(path)
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"cannot read a saved classifier from {path}: {e}") from None
    if meta.get("format") != FORMAT:
        raise UsageError(f"{path} is not a file saved by lstm_classifier.py --save")
    cfg = meta["config"]
    tokenizer = WordTokenizer.from_json(meta["tokenizer"], source=str(path))
    model = SentimentRNN(cfg["num_words"], cfg["embed_dim"], cfg["hidden_size"], cfg["cell"])
    model.load_state_dict({k[len("model."):]: v for k, v in arrays.items()})
    return model, tokenizer, cfg


def predict(model, tokenizer, maxlen, sentences):
    model.eval()
    with no_grad():
        logits = model(encode(tokenizer, sentences, maxlen)).numpy()
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return [{"text": s, "p_positive": round(float(q), 4),
             "label": "positive" if q > 0.5 else "negative"} for s, q in zip(sentences, p)]


# ---- main -------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None,
                   help="the tab-separated reviews file (default: the shipped one)")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    p.add_argument("--num-words", type=int, default=10000, help="vocabulary size (Keras's)")
    p.add_argument("--maxlen", type=int, default=40, help="pad/truncate to this many words")
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.5, help="dropout on h_n before the head")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--baseline-epochs", type=int, default=10,
                   help="epochs for the bag-of-words baseline (cheap: one weight per word)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0,
                   help="initialisation, dropout and shuffling (the split is fixed)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N shuffled sentences (quick runs)")
    p.add_argument("--no-baseline", action="store_true", help="skip the bag-of-words baseline")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")
    p.add_argument("--save", default=None, help="save the trained classifier (.npz) here")
    p.add_argument("--load", default=None, help="load a saved classifier instead of training")
    p.add_argument("--predict", action="append", default=[], metavar="SENTENCE",
                   help="print p(positive) for this sentence (repeatable)")
    return p.parse_args(argv)


def run(args):
    if args.load:
        model, tokenizer, cfg = load(args.load)
        result = {"predictions": predict(model, tokenizer, cfg["maxlen"], args.predict)}
        return result
    tinygrad_llm.manual_seed(args.seed)
    split = load_split(args.data, SPLIT_SEED, args.limit)
    tokenizer = WordTokenizer(num_words=args.num_words, oov_token="<unk>", lower=True)
    tokenizer.fit_on_texts(split["train"][0])
    data = {k: (encode(tokenizer, texts, args.maxlen), y) for k, (texts, y) in split.items()}
    print(f"data: {', '.join(f'{k} {len(v[1])}' for k, v in data.items())} sentences, "
          f"{len(tokenizer.word_index)} words seen, vocabulary {args.num_words}, "
          f"T = {args.maxlen}; positive rate {split['train'][1].mean():.3f}", flush=True)
    test_ids, test_y = data["test"]
    result = {}
    model = SentimentRNN(args.num_words, args.embed_dim, args.hidden_size, args.cell,
                         args.dropout)
    print(model)
    log, best_val = train(model, data, args, args.cell.upper())
    test_loss, test_acc = evaluate(model, test_ids, test_y)
    print(f"{args.cell.upper()} test: loss {test_loss:.4f}, accuracy {test_acc:.4f} "
          f"(weights of the best val epoch, val accuracy {best_val:.4f})")
    result.update(test_accuracy=round(test_acc, 4), test_loss=round(test_loss, 4),
                  val_accuracy=round(best_val, 4))
    if not args.no_baseline:
        tinygrad_llm.manual_seed(args.seed)
        baseline = BagOfWords(args.num_words)
        b_args = argparse.Namespace(**vars(args))
        b_args.epochs = args.baseline_epochs
        _, b_val = train(baseline, data, b_args, "BagOfWords")
        b_loss, b_acc = evaluate(baseline, test_ids, test_y)
        print(f"bag-of-words baseline test: loss {b_loss:.4f}, accuracy {b_acc:.4f}")
        result.update(baseline_test_accuracy=round(b_acc, 4),
                      baseline_val_accuracy=round(b_val, 4))
    result["majority_class_test_accuracy"] = round(float(max(test_y.mean(), 1 - test_y.mean())), 4)
    if args.save:
        save(args.save, model, tokenizer, args)
        print(f"saved to {args.save}")
    if args.predict:
        result["predictions"] = predict(model, tokenizer, args.maxlen, args.predict)
    result["log"] = log
    return result


def main(argv=None):
    args = parse_args(argv)
    try:
        result = run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in result.get("predictions", []):
        print(f"{p['p_positive']:.3f} {p['label']:8s} {p['text']}")
    print(json.dumps({k: v for k, v in result.items() if k != "log"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
