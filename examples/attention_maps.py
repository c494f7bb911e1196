r"""Draw where every attention head of a trained GPT looks, for one prompt.

What this teaches: what attention weights are. For each layer l and head h, the GPT computes
P = softmax(q k^T / sqrt(hs) + causal mask), a (T, T) matrix whose row i says how much position
i draws from each earlier position j (each row sums to 1; the upper triangle is 0, the future).
This script runs the model once on the prompt and draws every P as a heatmap: one row of
panels per layer, one column per head. Typical sights in a character model: heads that look at
the previous character (a bright first subdiagonal), heads that look back to the start of the
word or line, and heads that spread over everything (averaging).

The weights are the ones the model used: ``tinygrad_llm.viz.record_attention`` keeps the P that
the fused attention Function saves for its backward (tinygrad_llm/ops/attention.py), with no
second attention computed beside the model.

    python examples/train_shakespeare.py --max-iters 500 --out-dir out-shakespeare
    python examples/attention_maps.py --model out-shakespeare --prompt "ROMEO:
    But soft, what light" --out attention.png

``--model`` is a from_pretrained directory (model.safetensors + config.json, with the
tokenizer.json train_shakespeare.py writes). Needs matplotlib (pip install -e ".[plot]").
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # to share generate's tokenizer loader

from generate import UsageError, load_tokenizer  # noqa: E402

from tinygrad_llm import backend, no_grad  # noqa: E402
from tinygrad_llm.checkpoint import CheckpointError  # noqa: E402
from tinygrad_llm.models.gpt import GPT  # noqa: E402
from tinygrad_llm.viz import headless_pyplot, record_attention  # noqa: E402

EXTRA = 'pip install -e ".[plot]"'
SHOWN = {"\n": "\\n", " ": "␣", "\t": "\\t"}     # tick labels for invisible characters


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="out-shakespeare",
                   help="the checkpoint directory (model.safetensors, config.json, "
                        "tokenizer.json)")
    p.add_argument("--prompt", default="ROMEO:\nBut soft, what light",
                   help="the text to run the model on (at most block_size tokens)")
    p.add_argument("--out", default=None, help="the PNG to write (default MODEL/attention.png)")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def require_matplotlib():
    r"""matplotlib.pyplot (headless), or a UsageError naming the extra to install."""
    try:
        return headless_pyplot()
    except ImportError:
        raise UsageError(f"attention_maps.py needs matplotlib: {EXTRA}") from None


@no_grad()
def attention_maps(model, ids):
    r"""The attention weights of every layer for one prompt ids (T,): an array (L, nh, T, T),
    layer l's P = softmax(q k^T / sqrt(hs) + mask) for each head, as the model computed it."""
    model.eval()
    with record_attention() as maps:
        model(np.array([ids], dtype=np.int64))                            # (1, T) -> logits
    if len(maps) != model.config.n_layer:
        raise RuntimeError(f"attention_maps: recorded {len(maps)} attention calls for "
                           f"{model.config.n_layer} layers (the model must use the fused "
                           f"attention)")
    return np.stack([m[0] for m in maps])                                 # (L, nh, T, T)


def plot_maps(maps, tokens, png, title):
    r"""One heatmap per (layer, head) of maps (L, nh, T, T); rows are queries, columns keys."""
    plt = require_matplotlib()
    n_layer, n_head, t, _ = maps.shape
    cell = 2.2 if t <= 24 else 3.0
    fig, axes = plt.subplots(n_layer, n_head, figsize=(cell * n_head + 1, cell * n_layer + 1),
                             squeeze=False)
    labels = [SHOWN.get(s, s) for s in tokens] if t <= 48 else None
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer, head]
            ax.imshow(maps[layer, head], cmap="viridis", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if labels is not None and layer == n_layer - 1:
                ax.set_xticks(range(t), labels, fontsize=5, rotation=90)
            if labels is not None and head == 0:
                ax.set_yticks(range(t), labels, fontsize=5)
    fig.supxlabel("key position j (what is looked at)", fontsize=9)
    fig.supylabel("query position i (who looks)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    try:
        try:
            device = backend.check_device(args.device)
        except (RuntimeError, ValueError) as e:
            raise UsageError(str(e)) from None
        model_dir = Path(args.model)
        png = Path(args.out) if args.out else model_dir / "attention.png"
        if png.suffix.lower() != ".png":
            raise UsageError(f"--out {png}: the file must end in .png")
        if not (model_dir / "model.safetensors").exists():
            raise UsageError(f"no checkpoint in {model_dir} (train first with "
                             f"examples/train_shakespeare.py, or check --model)")
        try:
            model = GPT.from_pretrained(model_dir, device=device)
        except CheckpointError as e:
            raise UsageError(str(e)) from None
        tok = load_tokenizer(model_dir, model.config.vocab_size)
        try:
            ids = tok.encode(args.prompt)
        except ValueError as e:
            raise UsageError(f"--prompt: {e}") from None
        if not ids:
            raise UsageError("--prompt is empty; give at least one character")
        block = model.config.block_size
        if len(ids) > block:
            raise UsageError(f"--prompt is {len(ids)} tokens long, more than the model's "
                             f"block_size {block}; shorten it")
        require_matplotlib()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    maps = attention_maps(model, ids)                                     # (L, nh, T, T)
    tokens = [tok.decode([i]) for i in ids]
    plot_maps(maps, tokens, png, f"attention of {model_dir.name} on {args.prompt!r}")
    print(f"saved {maps.shape[0]} layers x {maps.shape[1]} heads of attention to {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
