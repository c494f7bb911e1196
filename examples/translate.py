r"""Train a small encoder-decoder Transformer to translate German into English.

What this teaches: sequence-to-sequence learning with the architecture of "Attention Is All You
Need", from the sentence pairs to a BLEU score.

1. Data: 15,163 German-English sentence pairs (tinygrad_llm/datasets/de_en_sentences.tsv), cut
   90/5/5 into train/val/test by a fixed seed that never moves with ``--seed``.
2. Tokenize: one byte-level BPE vocabulary for both languages, trained on the training split,
   with three special tokens: <pad>, <bos> (start of a target) and <eos> (end of a sentence).
3. Model: token embedding * sqrt(d_model) + sinusoidal PositionalEncoding, nn.Transformer
   (batch_first), a Linear to the vocabulary. The encoder reads the German sentence; the
   decoder reads ``<bos> english`` and predicts ``english <eos>``, one token ahead.
4. Masks: key padding masks hide <pad> from every attention (source, target, and the memory
   that cross-attention reads); the causal mask keeps each target position from seeing later
   ones, so training on the whole sentence at once is the same as predicting it token by token.
5. Loss: cross-entropy with label smoothing 0.1 over the non-pad target tokens; AdamW with a
   linear warm-up then cosine decay; the gradient norm clipped to 1.
6. Decode the test set greedily and with beam search (length penalty), both with the decoder's
   key/value cache, and score them with BLEU and ROUGE-L against the references.

The default run (2.5M parameters, 4000 steps of 64 pairs) takes about 13 minutes on two quiet
CPU cores (165-210 ms per step) and reaches BLEU 4.7 (beam 5) on the test split; the figures,
the equations, the masks and the searches are in docs/transformer.md.

    python examples/translate.py                            # train, then test BLEU
    python examples/translate.py --resume --max-iters 6000  # train longer
    python examples/translate.py --resume                   # only evaluate the checkpoint
    python examples/translate.py --translate "Ich habe Hunger."
    python examples/translate.py --translate "Ich habe Hunger." --attention-plot att.png

Output in --out-dir: ``ckpt.npz`` (weights, AdamW state, config, tokenizer, iteration and random
state; written atomically, no pickle) and ``log.jsonl`` (one line per evaluation). The last line
printed is a JSON object with the test figures: bleu (beam), bleu_greedy, rougeL, test_loss and
test_perplexity.
"""

import argparse
import inspect
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_llm
from tinygrad_llm import backend, checkpoint, no_grad
from tinygrad_llm.checkpoint import save_npz
from tinygrad_llm.data import translation_splits
from tinygrad_llm.metrics import bleu, rouge_l
from tinygrad_llm.nn import functional as F
from tinygrad_llm.nn.layers import Embedding, Linear
from tinygrad_llm.nn.module import Module
from tinygrad_llm.nn.transformer import PositionalEncoding, Transformer
from tinygrad_llm.optim import AdamW, clip_grad_norm_, set_lr, warmup_cosine_lr
from tinygrad_llm.tensor import Tensor
from tinygrad_llm.viz import headless_pyplot, record_attention

CHECKPOINT = "ckpt.npz"
FORMAT = "tinygrad_llm.translate.checkpoint"
VERSION = 1
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
IGNORE = -100                           # target id that cross_entropy skips (padding)

DEFAULTS = dict(vocab_size=3000, d_model=128, nhead=4, layers=3, dim_feedforward=512,
                dropout=0.1, max_len=64, batch_size=64, max_iters=4000, lr=1e-3, min_lr=1e-4,
                warmup_iters=400, lr_decay_iters=None, eval_interval=500, weight_decay=0.01,
                grad_clip=1.0, label_smoothing=0.1, seed=1337)
MODEL_KEYS = ("vocab_size", "d_model", "nhead", "layers", "dim_feedforward", "dropout",
              "max_len")
TRAIN_KEYS = ("batch_size", "max_iters", "lr", "min_lr", "warmup_iters", "lr_decay_iters",
              "eval_interval", "weight_decay", "grad_clip", "label_smoothing", "seed")


class UsageError(Exception):
    """Bad input: printed as one clear message, with a non-zero exit and no traceback."""


# ---- arguments ---------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", default="out-translate", help="checkpoint and log directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.npz")
    for name, kind in (("vocab-size", int), ("d-model", int), ("nhead", int), ("layers", int),
                       ("dim-feedforward", int), ("dropout", float), ("max-len", int),
                       ("batch-size", int), ("max-iters", int), ("lr", float),
                       ("min-lr", float), ("warmup-iters", int), ("lr-decay-iters", int),
                       ("eval-interval", int),
                       ("weight-decay", float), ("grad-clip", float),
                       ("label-smoothing", float), ("seed", int)):
        default = DEFAULTS[name.replace("-", "_")]
        p.add_argument(f"--{name}", type=kind, default=None,
                       help=f"default {default if default is not None else '--max-iters'}")
    p.add_argument("--beam", type=int, default=5, help="beam width for beam search (default 5)")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="alpha of the length penalty ((5 + len) / 6)^alpha (default 1.0, "
                        "chosen on the validation split)")
    p.add_argument("--no-cache", action="store_true",
                   help="decode without the KV cache (re-reading every row at every step)")
    p.add_argument("--test-limit", type=int, default=None,
                   help="decode only the first N test sentences (default: all)")
    p.add_argument("--show", type=int, default=5, help="translations to print side by side")
    p.add_argument("--translate", default=None, metavar="SENTENCE",
                   help="translate one German sentence with the checkpoint in --out-dir")
    p.add_argument("--attention-plot", default=None, metavar="PATH",
                   help="save one test sentence's cross-attention heatmap (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (plain log lines)")
    return p.parse_args(argv)


def given(args):
    """The model/training options the user set explicitly on the command line."""
    return {k: getattr(args, k) for k in MODEL_KEYS + TRAIN_KEYS
            if getattr(args, k, None) is not None}


def check_options(opts, args):
    for k in ("d_model", "nhead", "layers", "dim_feedforward", "batch_size", "eval_interval"):
        if k in opts and opts[k] < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be at least 1, got {opts[k]}")
    for k in ("max_iters", "warmup_iters", "lr_decay_iters"):
        if k in opts and opts[k] < 0:
            raise UsageError(f"--{k.replace('_', '-')} must be >= 0, got {opts[k]}")
    if "max_len" in opts and opts["max_len"] < 4:
        raise UsageError(f"--max-len must be at least 4 tokens, got {opts['max_len']}")
    if "vocab_size" in opts and opts["vocab_size"] < 259:
        raise UsageError(f"--vocab-size must be at least 259 (256 bytes + 3 special tokens), "
                         f"got {opts['vocab_size']}")
    for k in ("dropout", "label_smoothing"):
        if k in opts and not 0 <= opts[k] < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be in [0, 1), got {opts[k]}")
    if opts.get("lr", 1) <= 0:
        raise UsageError(f"--lr must be positive, got {opts['lr']}")
    if "d_model" in opts and "nhead" in opts and opts["d_model"] % opts["nhead"]:
        raise UsageError(f"--d-model {opts['d_model']} must be divisible by --nhead "
                         f"{opts['nhead']}")
    if args.beam < 1:
        raise UsageError(f"--beam must be at least 1, got {args.beam}")
    if args.test_limit is not None and args.test_limit < 1:
        raise UsageError(f"--test-limit must be at least 1, got {args.test_limit}")


# ---- the model ---------------------------------------------------------------------------------
class Seq2SeqTransformer(Module):
    r"""Embedding + PositionalEncoding -> nn.Transformer -> Linear, for translation.

    Dimension letters: N batch, S source length, L target length, E d_model, V vocabulary.

        x = PE(src_embed[src] * sqrt(E))                     (N, S, E)
        y = PE(tgt_embed[tgt] * sqrt(E))                     (N, L, E)
        memory = encoder(x);  h = decoder(y, memory)         (N, S, E), (N, L, E)
        logits = h W^T + b                                    (N, L, V)   ``generator``

    The sqrt(E) scale keeps the embeddings (initialised N(0, 1) / sqrt(E) below) at the same
    size as the position table, as in the original paper.
    """

    def __init__(self, vocab_size, d_model, nhead, layers, dim_feedforward, dropout, max_len):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, d_model=d_model, nhead=nhead, layers=layers,
                           dim_feedforward=dim_feedforward, dropout=dropout, max_len=max_len)
        self.src_embed = Embedding(vocab_size, d_model)
        self.tgt_embed = Embedding(vocab_size, d_model)
        for emb in (self.src_embed, self.tgt_embed):
            emb.weight.data = (emb.weight.data / math.sqrt(d_model)).astype(np.float32)
        self.pos = PositionalEncoding(d_model, max_len=max_len, dropout=dropout,
                                      batch_first=True)
        self.transformer = Transformer(d_model, nhead, layers, layers, dim_feedforward, dropout,
                                       batch_first=True)
        self.generator = Linear(d_model, vocab_size)
        self.scale = math.sqrt(d_model)

    def embed_src(self, src):
        return self.pos(self.src_embed(src) * self.scale)                  # (N, S, E)

    def embed_tgt(self, tgt):
        return self.pos(self.tgt_embed(tgt) * self.scale)                  # (N, L, E)

    def encode(self, src, src_key_padding_mask=None):
        r"""memory (N, S, E) for source ids (N, S); True in the mask marks a <pad>."""
        return self.transformer.encoder(self.embed_src(Tensor(src)),
                                        src_key_padding_mask=src_key_padding_mask)

    def decode(self, tgt, memory, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        r"""logits (N, L, V) for target ids (N, L) given the encoder's memory (N, S, E)."""
        length = tgt.shape[1]
        causal = Transformer.generate_square_subsequent_mask(length)       # (L, L)
        h = self.transformer.decoder(self.embed_tgt(Tensor(tgt)), memory, tgt_mask=causal,
                                     tgt_key_padding_mask=tgt_key_padding_mask,
                                     memory_key_padding_mask=memory_key_padding_mask,
                                     tgt_is_causal=True)                   # (N, L, E)
        return self.generator(h)                                           # (N, L, V)

    def forward(self, src, tgt, src_key_padding_mask=None, tgt_key_padding_mask=None):
        memory = self.encode(src, src_key_padding_mask)                    # (N, S, E)
        return self.decode(tgt, memory, tgt_key_padding_mask,
                           src_key_padding_mask)                           # (N, L, V)


def optimizer(model, opts):
    r"""AdamW with weight decay on the matrices only (none on biases and LayerNorm weights)."""
    params = model.parameters()
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": opts["weight_decay"]},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return AdamW(groups, lr=opts["lr"], betas=(0.9, 0.98), eps=1e-9)


def label_smoothing_available():
    return "label_smoothing" in inspect.signature(F.cross_entropy).parameters


def smoothed_cross_entropy(logits, targets, label_smoothing):
    r"""Mean cross-entropy over the targets that are not IGNORE, against the smoothed target
    distribution (1 - eps) one_hot + eps / V (plain one-hot if F.cross_entropy lacks it)."""
    if label_smoothing and label_smoothing_available():
        return F.cross_entropy(logits, targets, ignore_index=IGNORE,
                               label_smoothing=label_smoothing)
    return F.cross_entropy(logits, targets, ignore_index=IGNORE)


# ---- data --------------------------------------------------------------------------------------
def tokenizer_to_json(tok):
    """The tokenizer's own JSON file format, as a string (stored inside the checkpoint)."""
    with tempfile.TemporaryDirectory() as d:
        tok.save(Path(d) / "tok.json")
        return (Path(d) / "tok.json").read_text(encoding="utf-8")


def tokenizer_from_json(text):
    from tinygrad_llm.tokenizer import BPETokenizer
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "tok.json").write_text(text, encoding="utf-8")
        return BPETokenizer.load(Path(d) / "tok.json")


def train_tokenizer(train_pairs, vocab_size):
    from tinygrad_llm.tokenizer import BPETokenizer
    text = "\n".join(f"{de}\n{en}" for de, en in train_pairs)
    return BPETokenizer("gpt2").train(text, vocab_size, special_tokens=[PAD, BOS, EOS])


class Vocab:
    """The tokenizer and its three special ids."""

    def __init__(self, tok):
        self.tok = tok
        ids = tok.encode(f"{PAD}{BOS}{EOS}", allowed_special="all")
        self.pad, self.bos, self.eos = ids

    def encode(self, text):
        return self.tok.encode(text, allowed_special="none")              # specials as text

    def decode(self, ids):
        ids = list(ids)
        if self.eos in ids:
            ids = ids[:ids.index(self.eos)]
        text = self.tok.decode([i for i in ids if i not in (self.pad, self.bos)])
        return " ".join(text.split())                     # one line, single spaces


def encode_pairs(vocab, pairs, max_len):
    r"""Token ids (source + <eos>, <bos> + target + <eos>) of the pairs that fit in max_len."""
    kept = []
    for de, en in pairs:
        src = vocab.encode(de) + [vocab.eos]
        tgt = [vocab.bos] + vocab.encode(en) + [vocab.eos]
        if len(src) <= max_len and len(tgt) <= max_len:
            kept.append((src, tgt))
    return kept


def pad_batch(seqs, pad):
    r"""(ids (N, T) padded on the right with ``pad``, mask (N, T) True at the padding)."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad, dtype=np.int64)                # (N, T)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
    return ids, ids == pad                                                 # (N, T), (N, T)


def make_batch(examples, pad):
    r"""src (N, S), decoder input (N, L), decoder target (N, L) with IGNORE at the padding, and
    the two padding masks. The decoder reads <bos> y_1 .. y_n and predicts y_1 .. y_n <eos>."""
    src, src_mask = pad_batch([s for s, _ in examples], pad)              # (N, S)
    tgt, _ = pad_batch([t for _, t in examples], pad)                      # (N, L + 1)
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:].copy()                       # (N, L) each
    tgt_out[tgt_out == pad] = IGNORE
    return src, tgt_in, tgt_out, src_mask, tgt_in == pad


def batch_loss(model, batch, label_smoothing):
    src, tgt_in, tgt_out, src_mask, tgt_mask = batch
    logits = model(src, tgt_in, src_mask, tgt_mask)                        # (N, L, V)
    n, length, v = logits.shape
    return smoothed_cross_entropy(logits.reshape(n * length, v), Tensor(tgt_out.reshape(-1)),
                                  label_smoothing)


@no_grad()
def mean_loss(model, examples, pad, batch_size=64):
    r"""Cross-entropy per target token (no label smoothing) over all ``examples``."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = make_batch(examples[i:i + batch_size], pad)
        tokens = int((batch[2] != IGNORE).sum())
        total += batch_loss(model, batch, 0.0).item() * tokens
        count += tokens
    model.train()
    return total / max(count, 1)


# ---- checkpoints (no pickle: arrays in .npz, everything else as JSON) ----------------------------
def save_checkpoint(path, model, opt, meta):
    r"""Weights, AdamW state and ``meta`` to ``path`` in one atomic write (a temporary file
    renamed over the old one: a crash leaves the old checkpoint whole)."""
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim_arrays, optim_meta = checkpoint.optimizer_to_arrays(opt.state_dict())
    arrays.update(optim_arrays)
    meta = dict(meta, format=FORMAT, version=VERSION,
                optim=optim_meta)
    save_npz(path, arrays, meta)


def load_checkpoint(path):
    r"""(meta, {name: array}) from ``path``; a missing or unreadable file raises UsageError."""
    try:
        return checkpoint.load_checkpoint(path, FORMAT, VERSION, "translate.py")
    except checkpoint.CheckpointError as e:
        raise UsageError(str(e)) from None


def model_from_checkpoint(meta, arrays):
    try:
        model = Seq2SeqTransformer(**meta["model"])
        model.load_state_dict({k[len("model."):]: v for k, v in arrays.items()
                               if k.startswith("model.")})
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"the checkpoint's weights do not fit its config: {e}") from None
    return model


def restore_optimizer(opt, meta, arrays):
    try:
        opt.load_state_dict(checkpoint.optimizer_from_arrays(meta["optim"], arrays))
    except (KeyError, ValueError) as e:
        raise UsageError(f"the checkpoint's optimizer state does not fit the model: {e}") \
            from None


# ---- decoding ----------------------------------------------------------------------------------
def source_ids(vocab, sentence, max_len):
    r"""The source ids of one German sentence, or UsageError if it is empty or too long."""
    if not sentence.strip():
        raise UsageError("the sentence to translate is empty")
    ids = vocab.encode(sentence.strip()) + [vocab.eos]
    if len(ids) > max_len:
        raise UsageError(f"the sentence is {len(ids)} tokens long (with <eos>); this model reads "
                         f"at most --max-len {max_len}")
    return ids


class DecoderState:
    r"""What the decoder carries from one step to the next, one row per hypothesis: the
    encoder's memory (M, S, E) and its padding mask (M, S), and the decoder's KVCache (None when
    decoding without it). ``reorder(index)`` makes row i the old row index[i] (beam search)."""

    def __init__(self, memory, memory_mask, cache):
        self.memory, self.memory_mask, self.cache = memory, memory_mask, cache

    def reorder(self, index):
        cache = None if self.cache is None else self.cache.reorder(index)
        memory = None if self.memory is None else Tensor(self.memory.data[index])
        return DecoderState(memory, self.memory_mask[index], cache)


def decoder_step(model):
    r"""The step function tinygrad_llm.decoding drives: (ids (M, t), state) -> (log p (M, V),
    state), the log-probabilities of the token after each row.

    With a cache the decoder reads only the positions it has not seen (ids[:, t:], t the cache
    length: all of <bos> on the first call, then the last token) and appends their keys and
    values to the cache. Without one it runs the decoder on the whole row every step, as in
    training: the same numbers, with all t positions recomputed in every layer.
    """

    def step(ids, state):
        if state.cache is None:
            logits = model.decode(ids, state.memory, None, state.memory_mask)  # (M, t, V)
            return F.log_softmax(logits[:, -1], axis=-1), state               # (M, V)
        t = state.cache.length
        x = model.pos(model.tgt_embed(Tensor(ids[:, t:])) * model.scale, offset=t)  # (M, t', E)
        h, cache = model.transformer.decoder(x, state.memory, cache=state.cache,
                                             memory_key_padding_mask=state.memory_mask)
        logits = model.generator(h[:, -1])                                 # (M, V)
        # the memory's keys and values are in the cache now: the memory itself is done with
        return F.log_softmax(logits, axis=-1), DecoderState(None, state.memory_mask, cache)

    return step


@no_grad()
def translate_ids(model, vocab, sources, beam=1, length_penalty=1.0, batch_size=64,
                  use_cache=True):
    r"""Translations (lists of target ids, without <bos>/<eos>) of the source id lists:
    greedy when beam == 1, else beam search, both from tinygrad_llm.decoding."""
    from tinygrad_llm import decoding
    model.eval()
    max_len = model.config["max_len"]
    step = decoder_step(model)
    out = []
    for i in range(0, len(sources), batch_size):
        src, src_mask = pad_batch(sources[i:i + batch_size], vocab.pad)    # (N, S)
        cache = model.transformer.decoder.new_cache() if use_cache else None
        state = DecoderState(model.encode(src, src_mask), src_mask, cache)  # memory (N, S, E)
        start = np.full(len(src), vocab.bos, dtype=np.int64)               # (N,)
        if beam == 1:
            ids, _ = decoding.greedy_decode(step, start, max_len, eos_id=vocab.eos, state=state)
        else:
            ids, _ = decoding.beam_search(step, start, beam_size=beam, max_len=max_len,
                                          eos_id=vocab.eos, length_penalty=length_penalty,
                                          state=state)
        for row in ids:
            row = row[1:].tolist()                                         # without <bos>
            out.append(row[:-1] if row and row[-1] == vocab.eos else row)  # and <eos>
    model.train()
    return out


@no_grad()
def cross_attention(model, src_ids, tgt_ids):
    r"""The last decoder layer's cross-attention weights (L, S), averaged over the heads, for
    one source (S ids) and the decoder input <bos> + translation (L ids).

    The decoder runs once as it does when translating, inside ``viz.record_attention``, which
    keeps the weights softmax(q k^T / sqrt(hs)) that each fused attention call saves: a
    decoder layer records its self-attention, then its cross-attention, so the last record is
    the last layer's cross-attention (1, nh, L, S).
    """
    model.eval()
    src = np.array([src_ids], dtype=np.int64)                              # (1, S)
    tgt = np.array([tgt_ids], dtype=np.int64)                              # (1, L)
    memory = model.encode(src)                                             # (1, S, E)
    with record_attention() as maps:
        model.decode(tgt, memory)                                          # (1, L, V)
    model.train()
    weights = maps[-1]                                                     # (1, nh, L, S)
    if weights.shape[-2:] != (tgt.shape[1], src.shape[1]):
        raise RuntimeError(f"cross_attention: the last attention recorded has shape "
                           f"{weights.shape}, not the cross-attention's (1, nh, L, S)")
    return weights[0].mean(axis=0)                                         # (L, S)


def require_matplotlib():
    r"""matplotlib.pyplot (headless), or UsageError before any time is spent training."""
    try:
        return headless_pyplot()
    except ImportError:
        raise UsageError("--attention-plot needs matplotlib (pip install matplotlib)") from None


def plot_attention(path, model, vocab, src_ids, out_ids):
    plt = require_matplotlib()
    tgt_ids = [vocab.bos] + list(out_ids)
    weights = cross_attention(model, src_ids, tgt_ids)                     # (L, S)
    rows = [vocab.tok.decode([i]) for i in list(out_ids) + [vocab.eos]]  # token each row predicts
    cols = [vocab.tok.decode([i]) for i in src_ids]
    fig, ax = plt.subplots(figsize=(1 + 0.4 * len(cols), 1 + 0.35 * len(rows)))
    ax.imshow(weights, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=90)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("source token (German)")
    ax.set_ylabel("predicted token (English)")
    ax.set_title("cross-attention, last decoder layer, mean over heads")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"saved the cross-attention heatmap to {path}")


# ---- progress ----------------------------------------------------------------------------------
class Progress:
    """A tqdm bar when tqdm is installed (and wanted), else a plain line every 10%."""

    def __init__(self, start, total, enabled):
        self.bar = None
        self.total = total
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(initial=start, total=total, unit="it", dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, it, loss, ms):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", ms_iter=f"{ms:.0f}")
        elif it % max(self.total // 10, 1) == 0 or it == self.total:
            print(f"iter {it}/{self.total}: loss {loss:.4f}, {ms:.0f} ms/iter", flush=True)

    def write(self, msg):
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ---- the run -----------------------------------------------------------------------------------
def setup(args):
    """Options, data, tokenizer, model, optimizer and state, fresh or from the checkpoint."""
    explicit = given(args)
    check_options(explicit, args)
    out_dir = Path(args.out_dir)
    ckpt_path = out_dir / CHECKPOINT
    splits = translation_splits()
    if args.resume:
        meta, arrays = load_checkpoint(ckpt_path)
        opts = dict(meta["train"], **meta["model"])
        for k in MODEL_KEYS:
            if k in explicit and explicit[k] != opts[k]:
                raise UsageError(f"--{k.replace('_', '-')} {explicit[k]} does not match the "
                                 f"checkpoint's {k} = {opts[k]} (leave it out to resume)")
        opts.update({k: explicit[k] for k in TRAIN_KEYS if k in explicit})
        vocab = Vocab(tokenizer_from_json(meta["tokenizer"]))
    else:
        opts = dict(DEFAULTS, **explicit)
        if opts["lr_decay_iters"] is None:      # fixed now: a resumed run keeps the schedule
            opts["lr_decay_iters"] = opts["max_iters"]
        check_options(opts, args)
        print(f"training a byte-level BPE tokenizer ({opts['vocab_size']} tokens) on the "
              f"training split", flush=True)
        vocab = Vocab(train_tokenizer(splits["train"], opts["vocab_size"]))
    examples = {name: encode_pairs(vocab, pairs, opts["max_len"]) for name, pairs in
                splits.items()}
    if not examples["train"] or not examples["val"]:
        raise UsageError(f"--max-len {opts['max_len']} leaves no training or validation pair")

    tinygrad_llm.manual_seed(opts["seed"])
    if args.resume:
        model = model_from_checkpoint(meta, arrays)
    else:
        model = Seq2SeqTransformer(vocab.tok.vocab_size, opts["d_model"], opts["nhead"],
                                   opts["layers"], opts["dim_feedforward"], opts["dropout"],
                                   opts["max_len"])
    opt = optimizer(model, opts)
    batch_rng = np.random.default_rng(opts["seed"])
    state = {"iter": 0, "elapsed_s": 0.0, "evaluated": False}
    if args.resume:
        restore_optimizer(opt, meta, arrays)
        batch_rng.bit_generator.state = meta["rng"]["batch"]
        backend.set_rng_state(meta["rng"]["host"])
        state = {k: meta[k] for k in state}
    return dict(opts=opts, vocab=vocab, model=model, opt=opt, batch_rng=batch_rng, state=state,
                out_dir=out_dir, ckpt_path=ckpt_path, splits=splits, examples=examples)


def make_meta(run, it, evaluated):
    return {"model": run["model"].config, "train": {k: run["opts"][k] for k in TRAIN_KEYS},
            "iter": it, "evaluated": evaluated, "elapsed_s": run["state"]["elapsed_s"],
            "tokenizer": tokenizer_to_json(run["vocab"].tok),
            "rng": {"batch": run["batch_rng"].bit_generator.state, "host": backend.rng_state()}}


def train(run, progress_enabled=True):
    opts, model, opt, vocab = run["opts"], run["model"], run["opt"], run["vocab"]
    start, max_iters = run["state"]["iter"], opts["max_iters"]
    run["out_dir"].mkdir(parents=True, exist_ok=True)
    log_path = run["out_dir"] / "log.jsonl"
    if start == 0 and not run["state"]["evaluated"]:
        log_path.unlink(missing_ok=True)              # a fresh run starts a fresh log
    train_examples = run["examples"]["train"]
    smoothing = opts["label_smoothing"] if label_smoothing_available() else 0.0
    print(f"{model.num_parameters() / 1e6:.2f}M parameters; vocab {vocab.tok.vocab_size}; "
          f"pairs train {len(train_examples):,} / val {len(run['examples']['val']):,} / test "
          f"{len(run['examples']['test']):,}; label smoothing {smoothing}; iterations {start} "
          f"-> {max_iters}", flush=True)
    # a fixed sample of training pairs for the logged train loss (same every evaluation)
    probe = [train_examples[i] for i in
             np.random.default_rng(0).choice(len(train_examples),
                                             min(512, len(train_examples)), replace=False)]
    # Batches of pairs of about the same length: a window of batch_size neighbours at a random
    # place in the pairs sorted by length. Random pairs would pad every batch to its longest
    # (about 2.5 times the mean length), and the step's cost grows with the padded length.
    lengths = np.array([len(s) + len(t) for s, t in train_examples])      # (pairs,)
    by_length = np.argsort(lengths, kind="stable")                        # (pairs,)
    progress = Progress(start, max_iters, progress_enabled)
    window_start, window_iters = time.perf_counter(), 0
    try:
        for it in range(start, max_iters + 1):
            lr = warmup_cosine_lr(it, opts["lr"], opts["warmup_iters"],
                                  max(opts["lr_decay_iters"], 1), opts["min_lr"])
            set_lr(opt, lr)
            if (it % opts["eval_interval"] == 0 or it == max_iters) and not (
                    it == start and run["state"]["evaluated"]):
                now = time.perf_counter()
                run["state"]["elapsed_s"] += now - window_start
                ms = 1000 * (now - window_start) / window_iters if window_iters else None
                train_loss = mean_loss(model, probe, vocab.pad)
                val_loss = mean_loss(model, run["examples"]["val"], vocab.pad)
                row = {"iter": it, "train_loss": round(train_loss, 6),
                       "val_loss": round(val_loss, 6), "lr": lr,
                       "elapsed_s": round(run["state"]["elapsed_s"], 3),
                       "ms_per_iter": round(ms, 2) if ms is not None else None}
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                progress.write(f"iter {it}: train loss {train_loss:.4f}, val loss "
                               f"{val_loss:.4f}, lr {lr:.2e}"
                               + (f", {ms:.1f} ms/iter" if ms is not None else ""))
                save_checkpoint(run["ckpt_path"], model, opt, make_meta(run, it, True))
                window_start, window_iters = time.perf_counter(), 0
            if it == max_iters:
                break
            first = run["batch_rng"].integers(0, max(len(by_length) - opts["batch_size"], 0) + 1)
            picks = by_length[first:first + opts["batch_size"]]
            batch = make_batch([train_examples[i] for i in picks], vocab.pad)
            loss = batch_loss(model, batch, smoothing)            # forward: mean token loss
            opt.zero_grad()
            loss.backward()                                        # every parameter's .grad
            if opts["grad_clip"] > 0:
                clip_grad_norm_(model.parameters(), opts["grad_clip"])
            opt.step()                                             # AdamW update
            window_iters += 1
            progress.update(it + 1, loss.item(),
                            1000 * (time.perf_counter() - window_start) / window_iters)
    finally:
        progress.close()


def evaluate(run, args):
    r"""Test loss and perplexity, greedy and beam BLEU and ROUGE-L; returns the figures."""
    model, vocab = run["model"], run["vocab"]
    test = run["examples"]["test"]
    test_loss = mean_loss(model, test, vocab.pad)
    grouped = {}                    # a source with two English translations has two references
    for de, en in run["splits"]["test"]:
        if len(vocab.encode(de)) + 1 <= model.config["max_len"]:
            grouped.setdefault(de, []).append(en)
    pairs = list(grouped.items())
    if args.test_limit is not None:
        pairs = pairs[:args.test_limit]
    sources = [vocab.encode(de) + [vocab.eos] for de, _ in pairs]
    references = [refs for _, refs in pairs]
    t0 = time.perf_counter()
    cached = not args.no_cache
    greedy = [vocab.decode(ids) for ids in translate_ids(model, vocab, sources, beam=1,
                                                          use_cache=cached)]
    t1 = time.perf_counter()
    beam = [vocab.decode(ids) for ids in translate_ids(model, vocab, sources, args.beam,
                                                        args.length_penalty, use_cache=cached)]
    t2 = time.perf_counter()
    print(f"decoded {len(pairs)} test sentences {'with' if cached else 'without'} the KV "
          f"cache: greedy {t1 - t0:.1f} s, beam {args.beam} {t2 - t1:.1f} s")
    for (de, en), g, b in list(zip(pairs, greedy, beam))[:args.show]:
        print(f"  de:     {de}\n  ref:    {' | '.join(en)}\n  greedy: {g}\n  beam:   {b}\n")
    figures = {"bleu": round(bleu(beam, references), 4),
               "bleu_greedy": round(bleu(greedy, references), 4),
               "rougeL": round(rouge_l(beam, references).fmeasure, 4),
               "rougeL_greedy": round(rouge_l(greedy, references).fmeasure, 4),
               "test_loss": round(test_loss, 4),
               "test_perplexity": round(math.exp(test_loss), 4),
               "test_sentences": len(pairs)}
    if args.attention_plot:
        out = translate_ids(model, vocab, sources[:1], args.beam, args.length_penalty)[0]
        plot_attention(args.attention_plot, model, vocab, sources[0], out)
    return figures


def translate_one(args):
    r"""--translate: one sentence through the checkpoint in --out-dir."""
    meta, arrays = load_checkpoint(Path(args.out_dir) / CHECKPOINT)
    model = model_from_checkpoint(meta, arrays)
    vocab = Vocab(tokenizer_from_json(meta["tokenizer"]))
    src = source_ids(vocab, args.translate, model.config["max_len"])
    out = translate_ids(model, vocab, [src], args.beam, args.length_penalty)[0]
    print(vocab.decode(out))
    if args.attention_plot:
        plot_attention(args.attention_plot, model, vocab, src, out)
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.attention_plot:
            require_matplotlib()
        if args.translate is not None:
            if args.beam < 1:
                raise UsageError(f"--beam must be at least 1, got {args.beam}")
            return translate_one(args)
        run = setup(args)
        train(run, progress_enabled=not args.no_progress)
        figures = evaluate(run, args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is the one written at the last evaluation",
              file=sys.stderr)
        return 130
    print(f"test: BLEU {figures['bleu']:.2f} (beam {args.beam}), {figures['bleu_greedy']:.2f} "
          f"(greedy); ROUGE-L {figures['rougeL']:.4f}; loss {figures['test_loss']:.4f}, "
          f"perplexity {figures['test_perplexity']:.2f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
