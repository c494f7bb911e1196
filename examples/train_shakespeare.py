r"""Train a small GPT on Tiny Shakespeare, character by character, and watch it learn to write.

What this teaches: the whole training loop of a language model, in the open.

1. Tokenize: each character becomes an id (65 of them for Shakespeare), or use byte-level BPE.
2. Batch: random windows of the text; the target at each position is the next token.
3. Forward: the GPT (tinygrad_llm/models/gpt.py) gives logits and the cross-entropy loss.
4. Backward: ``loss.backward()`` fills every parameter's gradient.
5. Update: clip the gradient norm to 1, set the learning rate from the warm-up + cosine schedule,
   and take an AdamW step.
6. Evaluate on held-out text every ``--eval-interval`` iterations, log, and checkpoint.

With no arguments it runs nanoGPT's shakespeare_char CPU configuration (4 layers, 4 heads,
128 wide, context 64, batch 12, 2000 iterations). ``--device cuda`` selects nanoGPT's "baby GPT"
(6 layers, 6 heads, 384 wide, context 256, batch 64, dropout 0.2, 5000 iterations).

    python examples/train_shakespeare.py                    # CPU, a few minutes
    python examples/train_shakespeare.py --device cuda      # the baby GPT on a GPU
    python examples/train_shakespeare.py --device cuda --no-tf32 --no-cuda-kernels   # slower
    python examples/train_shakespeare.py --resume           # continue from out-shakespeare/
    python examples/sample.py --start "ROMEO:"              # sample from the checkpoint
    python examples/train_shakespeare.py --grad-accum 4     # 4 micro-batches of 3 rows a step
    mpiexec -n 2 python examples/train_shakespeare.py       # data parallel: 2 ranks x 6 rows

``--batch-size`` is always the global batch of one optimizer step. ``--grad-accum K`` cuts it into
K micro-batches whose gradients add up before the step; under ``mpiexec -n N`` every rank draws
the same global batch and trains on its N-th of the rows (``distributed.split_rows``), and the
ranks average their gradients (``DistributedDataParallel``) before clipping and the step. Both
give the step one process takes with the whole batch, up to float rounding (docs/distributed.md).
Rank 0 alone logs, evaluates, shows progress and writes checkpoints; ``--resume`` works with any
number of ranks. A rank that dies ends the whole job; one that waits for the others more than
``--dist-timeout`` seconds (default 300) ends it with a message saying where it waited.

Output in --out-dir: ``model.safetensors`` and ``config.json`` (the weights with GPT-2's names and
the config, so the directory is also a Hugging Face GPT-2 directory: ``GPT.from_pretrained`` and
transformers' ``GPT2LMHeadModel.from_pretrained`` load it), ``train_state.npz`` (AdamW state,
options, tokenizer, iteration, random state, and the weights file's SHA-256), ``log.jsonl`` (one
line per evaluation; with ``--log-health N`` also a line of training health every N iterations:
per-layer gradient norms, update-to-weight ratios, the global norm before clipping and whether it
clipped, the share of GELU inputs in its tails, from ``tinygrad_llm.health``; draw them with
``examples/plot_log.py OUT``), ``loss.png`` (with matplotlib), ``tokenizer.json``. Every file
is written atomically, nothing is pickled; the state file is written last, and --resume refuses
weights that are not the ones it was saved with. Ctrl-C saves a checkpoint, then exits.

On cuda, matmuls run in TF32 (as nanoGPT's ``allow_tf32``; ``--no-tf32`` for full float32), the
fused CUDA kernels are on (``--no-cuda-kernels`` for plain CuPy), the step reads nothing back
to the host except the loss every 10 iterations, and each log line adds CuPy's memory pool
figures (``pool_used_bytes``, ``pool_total_bytes``).
"""

import argparse
import contextlib
import hashlib
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_llm
from tinygrad_llm import allocator, backend, checkpoint, distributed, no_grad
from tinygrad_llm.checkpoint import CheckpointError, save_npz
from tinygrad_llm.data import get_batch, tiny_shakespeare
from tinygrad_llm.health import HealthMonitor
from tinygrad_llm.kernels import cuda
from tinygrad_llm.models.gpt import GPT, GPTConfig
from tinygrad_llm.optim import clip_grad_norm_, set_lr, warmup_cosine_lr
from tinygrad_llm.viz import headless_pyplot

WEIGHTS = "model.safetensors"          # with config.json: a from_pretrained directory
STATE = "train_state.npz"               # optimizer state, options, tokenizer, random state
OLD_CHECKPOINT = "ckpt.npz"             # the single-file format of earlier versions
FORMAT = "tinygrad_llm.train_shakespeare.checkpoint"
VERSION = 2

# nanoGPT's config/train_shakespeare_char.py, run on a CPU as its README says
# (--block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
#  --lr_decay_iters=2000 --dropout=0.0 --eval_iters=20), and as written for a GPU.
PRESETS = {
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
                max_iters=2000, lr_decay_iters=2000, eval_iters=20),
    "cuda": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2,
                 max_iters=5000, lr_decay_iters=5000, eval_iters=200),
}
COMMON = dict(lr=1e-3, min_lr=1e-4, warmup_iters=100, eval_interval=250, weight_decay=0.1,
              beta1=0.9, beta2=0.99, grad_clip=1.0, seed=1337, bpe_vocab_size=512)
MODEL_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "dropout")
TRAIN_KEYS = ("batch_size", "max_iters", "lr", "min_lr", "warmup_iters", "lr_decay_iters",
              "eval_interval", "eval_iters", "weight_decay", "beta1", "beta2", "grad_clip",
              "seed")


class UsageError(Exception):
    """Bad input: printed as one clear message, with a non-zero exit and no traceback."""


# ---- arguments ---------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (baby GPT config)")
    p.add_argument("--tokenizer", choices=("char", "bpe"), default=None,
                   help="characters (default) or byte-level BPE trained on the training split")
    p.add_argument("--tokenizer-file", default=None,
                   help="load a saved tokenizer (CharTokenizer or BPETokenizer JSON)")
    p.add_argument("--bpe-vocab-size", type=int, default=None,
                   help=f"BPE vocabulary size (default {COMMON['bpe_vocab_size']})")
    p.add_argument("--data", default=None, help="a UTF-8 text file (default: Tiny Shakespeare)")
    p.add_argument("--out-dir", default="out-shakespeare", help="checkpoint and log directory")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/model.safetensors and OUT/train_state.npz")
    for name, kind in (("max-iters", int), ("eval-interval", int), ("eval-iters", int),
                       ("batch-size", int), ("block-size", int), ("n-layer", int),
                       ("n-head", int), ("n-embd", int), ("dropout", float), ("lr", float),
                       ("min-lr", float), ("warmup-iters", int), ("lr-decay-iters", int),
                       ("weight-decay", float), ("grad-clip", float), ("seed", int)):
        p.add_argument(f"--{name}", type=kind, default=None)
    p.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches per step (the batch size stays the global batch)")
    p.add_argument("--dist-timeout", type=float, default=None,
                   help="under mpiexec: seconds a rank may wait for the others (default 300)")
    p.add_argument("--log-health", type=int, default=0, metavar="N",
                   help="every N iterations, log gradient norms, update ratios, clipping and "
                        "GELU tails to log.jsonl (0: never)")
    p.add_argument("--sample-chars", type=int, default=500,
                   help="tokens to sample at the end (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (plain log lines)")
    p.add_argument("--no-tf32", action="store_true",
                   help="cuda: full float32 matmuls (TF32 tensor-core matmuls are the default)")
    p.add_argument("--no-cuda-kernels", action="store_true",
                   help="cuda: plain CuPy ops instead of the fused CUDA kernels")
    return p.parse_args(argv)


def given(args):
    """The model/training options the user set explicitly on the command line."""
    keys = MODEL_KEYS + TRAIN_KEYS + ("bpe_vocab_size",)
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def check_options(opts):
    positive = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "eval_interval",
                "eval_iters")
    for k in positive:
        if k in opts and opts[k] < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be at least 1, got {opts[k]}")
    for k in ("max_iters", "warmup_iters", "lr_decay_iters"):
        if k in opts and opts[k] < 0:
            raise UsageError(f"--{k.replace('_', '-')} must be >= 0, got {opts[k]}")
    if "dropout" in opts and not 0 <= opts["dropout"] < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {opts['dropout']}")
    if opts.get("lr", 1) <= 0:
        raise UsageError(f"--lr must be positive, got {opts['lr']}")
    if "n_embd" in opts and "n_head" in opts and opts["n_embd"] % opts["n_head"]:
        raise UsageError(f"--n-embd {opts['n_embd']} must be divisible by --n-head "
                         f"{opts['n_head']}")


# ---- data and tokenizer --------------------------------------------------------------------------
def read_text(path):
    if path is None:
        return tiny_shakespeare()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--data {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--data {path}: is a directory, not a text file") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"--data {path}: not UTF-8 text ({e.reason} at byte {e.start})") \
            from None
    except OSError as e:
        raise UsageError(f"--data {path}: cannot read it ({e.strerror})") from None
    if not text.strip():
        raise UsageError(f"--data {path}: the file is empty")
    return text


def tokenizer_to_json(tok):
    """The tokenizer's own JSON file format, as a string (stored inside the checkpoint)."""
    with tempfile.TemporaryDirectory() as d:
        tok.save(Path(d) / "tok.json")
        return (Path(d) / "tok.json").read_text(encoding="utf-8")


def tokenizer_from_json(text):
    from tinygrad_llm.tokenizer import BPETokenizer, CharTokenizer
    kind = json.loads(text).get("format", "")
    cls = CharTokenizer if kind == CharTokenizer.FORMAT else BPETokenizer
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "tok.json").write_text(text, encoding="utf-8")
        return cls.load(Path(d) / "tok.json")


def load_tokenizer_file(path):
    from tinygrad_llm.tokenizer import TokenizerFileError
    try:
        text = Path(path).read_text(encoding="utf-8")
        return tokenizer_from_json(text)
    except FileNotFoundError:
        raise UsageError(f"--tokenizer-file {path}: no such file") from None
    except (TokenizerFileError, ValueError, OSError) as e:
        raise UsageError(f"--tokenizer-file {path}: not a valid tokenizer file ({e})") from None


def build_tokenizer(args, text, train_text, bpe_vocab_size):
    from tinygrad_llm.tokenizer import BPETokenizer, CharTokenizer
    if args.tokenizer_file:
        return load_tokenizer_file(args.tokenizer_file)
    if args.tokenizer == "char":
        return CharTokenizer(text)                 # the alphabet of the whole text, as nanoGPT
    print(f"training a byte-level BPE tokenizer ({bpe_vocab_size} tokens) on the training split")
    if bpe_vocab_size < 256:
        raise UsageError(f"--bpe-vocab-size must be at least 256, got {bpe_vocab_size}")
    return BPETokenizer("gpt2").train(train_text, bpe_vocab_size)


def encode(tok, text, what):
    try:
        return np.array(tok.encode(text), dtype=np.int64)
    except ValueError as e:
        raise UsageError(f"cannot encode the {what} with this tokenizer: {e}") from None


def text_digest(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- checkpoints (no pickle: safetensors and .npz, everything else as JSON) ----------------------
def file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_checkpoint(out_dir, model, opt, meta):
    r"""Write the weights, then the AdamW state and ``meta`` (JSON), into ``out_dir``.

    ``model.save_pretrained`` writes ``model.safetensors`` and ``config.json``; then the
    optimizer's arrays go into ``train_state.npz`` under ``optim.<index>.<name>``, with the JSON
    riding along as a uint8 array ``meta_json``, together with the SHA-256 of the weights file.
    Each file is a temporary file in the same directory, flushed, then ``os.replace``-d over the
    old one: a crash leaves every file whole, and a crash between the two writes leaves weights
    that the state file does not name, which --resume refuses.
    """
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    arrays, optim_meta = checkpoint.optimizer_to_arrays(opt.state_dict())
    meta = dict(meta, format=FORMAT, version=VERSION, weights_sha256=file_digest(out_dir / WEIGHTS),
                optim=optim_meta)
    save_npz(out_dir / STATE, arrays, meta)         # a temp file, then os.replace


def load_checkpoint(out_dir):
    r"""(meta dict, {name: array}) of ``out_dir/train_state.npz``, after checking that
    ``model.safetensors`` is the file it was saved with; anything wrong raises UsageError."""
    out_dir = Path(out_dir)
    if not (out_dir / STATE).exists() and (out_dir / OLD_CHECKPOINT).exists():
        raise UsageError(f"{out_dir / OLD_CHECKPOINT} is a checkpoint in the old single-file "
                         f"format, which this version does not read; train again (checkpoints "
                         f"are now {WEIGHTS} + config.json + {STATE})")
    try:
        meta, arrays = checkpoint.load_checkpoint(out_dir / STATE, FORMAT, VERSION,
                                                  "train_shakespeare")
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    weights = out_dir / WEIGHTS
    if not weights.exists():
        raise UsageError(f"no {WEIGHTS} beside {out_dir / STATE}")
    if file_digest(weights) != meta.get("weights_sha256"):
        raise UsageError(f"{weights} is not the weights file {out_dir / STATE} was saved with "
                         f"(changed, truncated, or a crash between the two writes)")
    return meta, arrays


def model_from_checkpoint(out_dir, device="cpu"):
    """The GPT of a checkpoint directory, in eval mode (used by --resume and by sample.py)."""
    try:
        return GPT.from_pretrained(out_dir, device=device)
    except CheckpointError as e:
        raise UsageError(str(e)) from None


def restore_optimizer(opt, meta, arrays):
    try:
        opt.load_state_dict(checkpoint.optimizer_from_arrays(meta["optim"], arrays))
    except (KeyError, ValueError) as e:
        raise UsageError(f"the checkpoint's optimizer state does not fit the model: {e}") \
            from None


# ---- evaluation, logging, plotting ---------------------------------------------------------------
@no_grad()
def estimate_loss(model, splits, opts, it, device):
    r"""Mean loss over ``eval_iters`` batches of each split. The batches come from a generator
    seeded by (seed, it, split), so evaluation never disturbs the training batches (a resumed
    run draws exactly what an uninterrupted one would)."""
    model.eval()
    out = {}
    for n, (name, ids) in enumerate(splits.items()):
        rng = np.random.default_rng([opts["seed"], it, n])
        losses = []
        for _ in range(opts["eval_iters"]):
            x, y = get_batch(ids, opts["batch_size"], opts["block_size"], rng, device)
            losses.append(model(x, y)[1].item())
        out[name] = float(np.mean(losses))
    model.train()
    return out


def plot_losses(log_path, png_path):
    try:
        plt = headless_pyplot()
    except ImportError:
        return False
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line]
    rows = [r for r in rows if "train_loss" in r]      # the evaluations, not the health lines
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("train_loss", "val_loss"):
        ax.plot([r["iter"] for r in rows], [r[key] for r in rows], marker="o",
                label=key.replace("_", " "))
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title("GPT on Tiny Shakespeare")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return True


class Progress:
    """A tqdm bar when tqdm is installed (and wanted), else a plain line every 10%."""

    def __init__(self, start, total, enabled, silent=False):
        self.bar = None
        self.total, self.start, self.silent = total, start, silent
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(initial=start, total=total, unit="it", dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, it, loss, ms):
        if self.silent:
            return
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", ms_iter=f"{ms:.0f}")
        elif loss is not None and (it % max(self.total // 10, 1) == 0 or it == self.total):
            print(f"iter {it}/{self.total}: loss {loss:.4f}, {ms:.0f} ms/iter", flush=True)

    def write(self, msg):
        if self.silent:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ---- the run ---------------------------------------------------------------------------------
def setup(args):
    """Everything before the loop: options, data, tokenizer, model, optimizer, state."""
    from tinygrad_llm.tokenizer import CharTokenizer
    try:
        device = backend.check_device(args.device)
    except (RuntimeError, ValueError) as e:
        raise UsageError(str(e)) from None
    try:                                            # alone: a no-op; under mpiexec: the ranks
        distributed.init("auto", device=device, timeout=args.dist_timeout)
    except (distributed.DistributedError, RuntimeError, ValueError) as e:
        raise UsageError(str(e)) from None
    if device == "cuda":                            # before the first matmul
        backend.set_matmul_precision("highest" if args.no_tf32 else "tf32")
        if args.no_cuda_kernels:
            cuda.use_cuda_kernels(False)
    explicit = given(args)
    check_options(explicit)
    if args.log_health < 0:
        raise UsageError(f"--log-health must be >= 0 (0: never), got {args.log_health}")
    out_dir = Path(args.out_dir)
    meta = arrays = None
    if args.resume:
        meta, arrays = load_checkpoint(out_dir)
        opts = dict(meta["train"], **meta["model"])
        for k in MODEL_KEYS:
            if k in explicit and explicit[k] != opts[k]:
                raise UsageError(f"--{k.replace('_', '-')} {explicit[k]} does not match the "
                                 f"checkpoint's {k} = {opts[k]} (leave it out to resume)")
        for k in TRAIN_KEYS:
            if k in explicit:
                opts[k] = explicit[k]
        if args.data is not None and meta["data"]["path"] != str(Path(args.data).resolve()):
            raise UsageError(f"--data {args.data} is not the text this checkpoint was trained "
                             f"on ({meta['data']['path']})")
        if args.tokenizer is not None and args.tokenizer != meta["tokenizer_kind"]:
            raise UsageError(f"--tokenizer {args.tokenizer} does not match the checkpoint's "
                             f"{meta['tokenizer_kind']}")
        if args.tokenizer_file:
            raise UsageError("--tokenizer-file cannot be used with --resume: the tokenizer "
                             "is stored in the checkpoint")
        args.tokenizer = meta["tokenizer_kind"]
        data_path = meta["data"]["path"]
        text = read_text(data_path) if data_path != "tiny_shakespeare" else tiny_shakespeare()
        if text_digest(text) != meta["data"]["sha256"]:
            raise UsageError(f"the data file {data_path} changed since the checkpoint was "
                             "written")
        tok = tokenizer_from_json(meta["tokenizer"])
    else:
        args.tokenizer = args.tokenizer or "char"
        opts = dict(COMMON, **PRESETS[device])
        opts.update(explicit)
        check_options(opts)
        text = read_text(args.data)
    n_split = int(0.9 * len(text))
    train_text, val_text = text[:n_split], text[n_split:]
    if not args.resume:
        tok = build_tokenizer(args, text, train_text, opts["bpe_vocab_size"])
    train_ids = encode(tok, train_text, "training split")
    val_ids = encode(tok, val_text, "validation split")
    check_world(opts["batch_size"], args.grad_accum)
    shortest = min(len(train_ids), len(val_ids))
    if opts["block_size"] >= shortest:
        raise UsageError(f"--block-size {opts['block_size']} is too large for this data: the "
                         f"{'validation' if len(val_ids) < len(train_ids) else 'training'} split "
                         f"has only {shortest} tokens (it needs more than the block size)")

    tinygrad_llm.manual_seed(opts["seed"])
    if args.resume:
        model = model_from_checkpoint(out_dir, device).train()
    else:
        config = GPTConfig(vocab_size=tok.vocab_size, block_size=opts["block_size"],
                           n_layer=opts["n_layer"], n_head=opts["n_head"],
                           n_embd=opts["n_embd"], dropout=opts["dropout"],
                           bias=False)  # nanoGPT's train.py default: no biases in Linear, LayerNorm
        model = GPT(config).to(device)
    if model.config.vocab_size < tok.vocab_size:
        raise UsageError(f"the tokenizer has {tok.vocab_size} tokens but the model only "
                         f"{model.config.vocab_size}")
    opt = model.configure_optimizers(opts["weight_decay"], opts["lr"],
                                     (opts["beta1"], opts["beta2"]))
    batch_rng = np.random.default_rng(opts["seed"])
    state = {"iter": 0, "elapsed_s": 0.0, "evaluated": False}
    if args.resume:
        restore_optimizer(opt, meta, arrays)
        batch_rng.bit_generator.state = meta["rng"]["batch"]
        backend.set_rng_state(meta["rng"]["host"])
        state = {k: meta[k] for k in state}
    try:                                            # every rank: the same run, rank 0's weights
        distributed.check_same({"options": opts, "tokenizer": tokenizer_to_json(tok),
                                "data": text_digest(text), "iter": state["iter"]},
                               "the options, tokenizer, data or checkpoint")
        ddp = distributed.DistributedDataParallel(model, opt)
    except distributed.DistributedError as e:
        raise UsageError(str(e)) from None
    if distributed.rank() > 0:   # its own dropout noise; rank 0 keeps the single-process stream
        tinygrad_llm.manual_seed(int(np.random.SeedSequence(
            [opts["seed"], state["iter"], distributed.rank()]).generate_state(1)[0]))
    data_path = "tiny_shakespeare" if args.data is None else str(Path(args.data).resolve())
    if args.resume:
        data_path = meta["data"]["path"]
    info = {"path": data_path, "chars": len(text), "sha256": text_digest(text)}
    return dict(device=device, opts=opts, tok=tok, model=model, opt=opt, batch_rng=batch_rng,
                ddp=ddp, grad_accum=args.grad_accum, state=state, out_dir=out_dir, data=info,
                log_health=args.log_health,
                splits={"train": train_ids, "val": val_ids},
                tokenizer_kind="char" if isinstance(tok, CharTokenizer) else "bpe")


def check_world(batch_size, grad_accum):
    """Every rank needs rows of the global batch, and every micro-batch at least one."""
    n = distributed.world_size()
    if grad_accum < 1:
        raise UsageError(f"--grad-accum must be at least 1, got {grad_accum}")
    if n > batch_size:
        raise UsageError(f"{n} ranks but --batch-size {batch_size}: the global batch has fewer "
                         "rows than there are ranks (each rank trains on its share of the rows)")
    if batch_size // n < grad_accum:
        raise UsageError(f"--batch-size {batch_size} over {n} rank(s) leaves {batch_size // n} "
                         f"row(s) on a rank, fewer than --grad-accum {grad_accum} micro-batches")


def micro_batches(x, y, grad_accum):
    r"""This rank's rows of the global batch (x, y) (B, T), cut into ``grad_accum`` pieces
    (x_k, y_k, w_k), w_k = N B_k / B the weight of piece k's mean loss: what
    ``distributed.accumulation_weights`` gives when every target counts, as here (no padding),
    so no counting and no message is needed."""
    n, batch = distributed.world_size(), x.shape[0]
    rows = distributed.split_rows(batch)                     # this rank's share: about B / N
    x, y = x[rows], y[rows]                                  # (B_r, T) each
    pieces = [distributed.split_rows(x.shape[0], grad_accum, k) for k in range(grad_accum)]
    return [(x[s], y[s], n * (s.stop - s.start) / batch) for s in pieces]   # (B_k, T) each


def make_meta(run, it, evaluated):
    model_cfg = run["model"].config.to_dict()
    train = {k: run["opts"][k] for k in TRAIN_KEYS}
    train["bpe_vocab_size"] = run["opts"]["bpe_vocab_size"]
    return {"model": model_cfg, "train": train, "iter": it, "evaluated": evaluated,
            "elapsed_s": run["state"]["elapsed_s"], "tokenizer": tokenizer_to_json(run["tok"]),
            "tokenizer_kind": run["tokenizer_kind"], "data": run["data"],
            "rng": {"batch": run["batch_rng"].bit_generator.state,
                    "host": backend.rng_state()}}


def train(run, progress_enabled=True):
    opts, model, opt, device = run["opts"], run["model"], run["opt"], run["device"]
    out_dir = run["out_dir"]
    main = distributed.is_main()                    # rank 0 (or the only process) writes
    log_path = out_dir / "log.jsonl"
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "tokenizer.json").write_text(tokenizer_to_json(run["tok"]), encoding="utf-8")
    start, max_iters = run["state"]["iter"], opts["max_iters"]
    world = distributed.world_size()
    if main:
        print(f"{model.num_parameters() / 1e6:.2f}M parameters; vocab {run['tok'].vocab_size}; "
              f"train {len(run['splits']['train']):,} / val {len(run['splits']['val']):,} "
              f"tokens; device {device}; iterations {start} -> {max_iters}"
              + (f"; {world} ranks ({distributed.backend_name()})" if world > 1 else "")
              + (f"; {run['grad_accum']} micro-batches a step" if run["grad_accum"] > 1 else ""),
              flush=True)
    if device == "cuda" and main:
        print(f"cuda: {backend.matmul_precision()} matmuls, fused kernels "
              f"{'on' if cuda.cuda_kernels_enabled() else 'off'}", flush=True)

    stop = {"flag": False}

    def on_sigint(signum, frame):            # first Ctrl-C: finish this step, save, exit
        if stop["flag"]:
            raise KeyboardInterrupt
        stop["flag"] = True

    previous_handler = signal.signal(signal.SIGINT, on_sigint)
    progress = Progress(start, max_iters, progress_enabled and main, silent=not main)
    window_start, window_iters = time.perf_counter(), 0
    t_loss, it = None, start
    every = run.get("log_health", 0)             # rank 0 measures, on the averaged gradients
    monitor = (HealthMonitor(model.named_parameters(), opts["grad_clip"] or None)
               if every and main else None)
    try:
        for it in range(start, max_iters + 1):
            if distributed.any_rank(stop["flag"]):  # the ranks stop together, at one iteration
                run["state"]["elapsed_s"] += time.perf_counter() - window_start
                if main:
                    save_checkpoint(out_dir, model, opt, make_meta(run, it, False))
                progress.write(f"interrupted: saved a checkpoint in {out_dir} at iteration {it}; "
                               f"continue with --resume")
                return 130
            lr = warmup_cosine_lr(it, opts["lr"], opts["warmup_iters"], opts["lr_decay_iters"],
                                  opts["min_lr"])
            set_lr(opt, lr)
            if (it % opts["eval_interval"] == 0 or it == max_iters) and main:
                if not (it == start and run["state"]["evaluated"]):  # logged before the save
                    now = time.perf_counter()
                    run["state"]["elapsed_s"] += now - window_start
                    ms = 1000 * (now - window_start) / window_iters if window_iters else None
                    losses = estimate_loss(model, run["splits"], opts, it, device)
                    row = {"iter": it, "train_loss": round(losses["train"], 6),
                           "val_loss": round(losses["val"], 6), "lr": lr,
                           "elapsed_s": round(run["state"]["elapsed_s"], 3),
                           "ms_per_iter": round(ms, 2) if ms is not None else None}
                    if device == "cuda":                # CuPy's memory pool, in bytes
                        pool = backend.memory_stats("cuda")
                        row["pool_used_bytes"] = pool["used_bytes"]
                        row["pool_total_bytes"] = pool["total_bytes"]
                    with open(log_path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
                    progress.write(f"iter {it}: train loss {losses['train']:.4f}, val loss "
                                   f"{losses['val']:.4f}, lr {lr:.2e}"
                                   + (f", {ms:.1f} ms/iter" if ms is not None else "")
                                   + (f", pool {row['pool_used_bytes'] / 2**20:.0f}/"
                                      f"{row['pool_total_bytes'] / 2**20:.0f} MiB"
                                      if device == "cuda" else ""))
                    save_checkpoint(out_dir, model, opt, make_meta(run, it, True))
                    window_start, window_iters = time.perf_counter(), 0
            if it == max_iters:
                break
            # the global batch, the same draw on every rank; each takes its share of the rows
            x, y = get_batch(run["splits"]["train"], opts["batch_size"], opts["block_size"],
                             run["batch_rng"], device)
            opt.zero_grad()
            losses = []
            health = monitor is not None and it % every == 0
            for xk, yk, w in micro_batches(x, y, run["grad_accum"]):
                with monitor.watch() if health else contextlib.nullcontext():  # GELU inputs
                    _, loss = model(xk, yk)             # forward: logits and mean loss
                (loss * w if w != 1 else loss).backward()   # backward: .grad accumulates
                losses.append((loss, w))
            run["ddp"].sync_gradients()                 # average over the ranks (alone: nothing)
            if health:
                monitor.gradients()                     # norms before clipping, weights before
            if opts["grad_clip"] > 0:                   # the global batch's gradient norm
                clip_grad_norm_(model.parameters(), opts["grad_clip"])
            opt.step()                                  # AdamW update
            window_iters += 1
            if it % 10 == 0 or it == max_iters - 1 or (every and it % every == 0):  # a GPU syncs
                t_loss = sum(w * loss.item() for loss, w in losses)   # the global batch's loss
                t_loss = float(distributed.all_reduce(np.array([t_loss]), "mean")[0])
            if health:
                row = {"iter": it, "lr": lr, "loss": round(t_loss, 6), "health": monitor.report()}
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            ms = 1000 * (time.perf_counter() - window_start) / window_iters
            progress.update(it + 1, t_loss, ms)
    finally:
        progress.close()
        signal.signal(signal.SIGINT, previous_handler)
        if main and log_path.exists():
            plot_losses(log_path, out_dir / "loss.png")
    return 0


def sample_text(model, tok, n, seed, start="\n", temperature=1.0, top_k=None, top_p=None):
    try:
        ids = tok.encode(start)
    except ValueError:
        ids = [0]
    ids = ids or [0]
    out = model.generate(np.array([ids], dtype=np.int64), n, temperature=temperature,
                         top_k=top_k, top_p=top_p, seed=seed)
    return tok.decode(out[0].tolist())


def main(argv=None):
    args = parse_args(argv)
    try:
        run = setup(args)
        code = train(run, progress_enabled=not args.no_progress)
    except UsageError as e:
        where = f" (rank {distributed.rank()})" if distributed.world_size() > 1 else ""
        print(f"error{where}: {e}", file=sys.stderr, flush=True)
        if distributed.world_size() > 1:           # the other ranks may be waiting for this one
            distributed.abort(2)
        return 2
    except KeyboardInterrupt:
        print("interrupted (a second Ctrl-C): no checkpoint written for this step",
              file=sys.stderr)
        return 130
    if code or not distributed.is_main():
        return code
    if args.sample_chars > 0:
        print("-" * 40 + " sample " + "-" * 40)
        print(sample_text(run["model"], run["tok"], args.sample_chars, run["opts"]["seed"]))
    peak = backend.memory_stats("cpu")["peak_rss_bytes"] / 2 ** 20
    print(f"done: checkpoint in {run['out_dir']}, log in {run['out_dir'] / 'log.jsonl'}; "
          f"peak memory {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    allocator.keep_freed_memory()  # reuse freed pages: no page faults in each step (backend.py)
    sys.exit(main())
