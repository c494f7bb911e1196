r"""Draw a training run's log: loss, learning rate and training health, in one PNG.

What this teaches: how to read a run's vital signs. ``examples/train_shakespeare.py`` writes
``log.jsonl`` in its out dir: a line per evaluation (train and validation loss, learning rate)
and, with ``--log-health N``, a line every N iterations from ``tinygrad_llm.health``:

- the global gradient norm before clipping, with the clipping threshold: a run that clips at
  every step has a learning rate or an initialisation that is too hot;
- the gradient norm of each layer: a layer whose norm falls by orders of magnitude learns
  nothing (vanishing), one that shoots up is diverging;
- the update-to-weight ratio ||dW|| / ||W|| of each layer: about 1e-3 is healthy for Adam;
- the share of each GELU's inputs in its tails (x < -3: flat, almost no gradient passes;
  x > 3: linear): a growing flat share means units are dying.

    python examples/train_shakespeare.py --max-iters 300 --log-health 10 --out-dir run
    python examples/plot_log.py run                  # writes run/health.png
    python examples/plot_log.py run --out curves.png

Needs matplotlib (pip install -e ".[plot]").
"""

import argparse
import io
import json
import sys
from pathlib import Path

from tinygrad_llm.viz import headless_pyplot

EXTRA = 'pip install -e ".[plot]"'


class UsageError(Exception):
    """Bad input: printed as one clear message, with a non-zero exit and no traceback."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", help="a train_shakespeare.py out dir (with log.jsonl)")
    p.add_argument("--out", default=None, help="the PNG to write (default RUN_DIR/health.png)")
    return p.parse_args(argv)


def require_matplotlib():
    r"""matplotlib.pyplot (headless), or a UsageError naming the extra to install."""
    try:
        return headless_pyplot()
    except ImportError:
        raise UsageError(f"plot_log.py needs matplotlib: {EXTRA}") from None


def read_log(run_dir):
    r"""(evaluation rows, health rows) of RUN_DIR/log.jsonl, each sorted by iteration."""
    path = Path(run_dir) / "log.jsonl"
    if not Path(run_dir).is_dir():
        raise UsageError(f"{run_dir} is not a directory (give a train_shakespeare.py out dir)")
    if not path.is_file():
        raise UsageError(f"no log.jsonl in {run_dir} (train first, or check the directory)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UsageError(f"{path}, line {n}: not JSON ({e.msg})") from None
    evals = sorted((r for r in rows if "train_loss" in r), key=lambda r: r["iter"])
    health = sorted((r for r in rows if "health" in r), key=lambda r: r["iter"])
    if not evals and not health:
        raise UsageError(f"{path} has no evaluation or health lines")
    return evals, health


def _by_layer(health, key):
    r"""{layer: ([iter], [value])} of the health rows' per-layer dict ``key``."""
    out = {}
    for r in health:
        for layer, value in r["health"][key].items():
            if value is not None and value > 0:
                xs, ys = out.setdefault(layer, ([], []))
                xs.append(r["iter"])
                ys.append(value)
    return out


def _layer_lines(ax, plt, series, title, ylabel):
    colours = plt.get_cmap("viridis")
    for n, (layer, (xs, ys)) in enumerate(series.items()):
        ax.plot(xs, ys, color=colours(n / max(len(series) - 1, 1)), lw=1,
                label=layer.removeprefix("transformer."))
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if len(series) <= 16:
        ax.legend(fontsize=6, ncol=2)
    else:
        ax.text(0.01, 0.01, f"{len(series)} layers, input (dark) to output (light)",
                transform=ax.transAxes, fontsize=7)


def plot(evals, health, png, title):
    plt = require_matplotlib()
    panels = 6 if health else 2
    fig, axes = plt.subplots(2 if health else 1, 3 if health else 2,
                             figsize=(15, 8) if health else (10, 3.6))
    axes = axes.ravel()
    ax = axes[0]                                                  # loss
    if health:
        ax.plot([r["iter"] for r in health], [r["loss"] for r in health], color="0.6", lw=1,
                label="train (one batch)")
    for key, colour in (("train_loss", "C0"), ("val_loss", "C1")):
        if evals:
            ax.plot([r["iter"] for r in evals], [r[key] for r in evals], "o-", color=colour,
                    label=key.replace("_loss", " (evaluation)"))
    ax.set_title("loss")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend(fontsize=8)
    ax = axes[1]                                                  # learning rate
    lrs = sorted({r["iter"]: r["lr"] for r in evals + health}.items())
    ax.plot([i for i, _ in lrs], [lr for _, lr in lrs], color="C2")
    ax.set_title("learning rate")
    if health:
        ax = axes[2]                                              # global norm and clipping
        its = [r["iter"] for r in health]
        ax.plot(its, [r["health"]["grad_norm_total"] for r in health], color="C3", lw=1,
                label="global gradient norm")
        max_norm = health[-1]["health"]["max_norm"]
        if max_norm:
            ax.axhline(max_norm, color="k", ls="--", lw=1, label=f"clip at {max_norm:g}")
        clipped = [r for r in health if r["health"]["clipped"]]
        ax.plot([r["iter"] for r in clipped],
                [r["health"]["grad_norm_total"] for r in clipped], "x", color="C3",
                label=f"clipped ({len(clipped)} of {len(health)})")
        ax.set_yscale("log")
        ax.set_title("gradient norm before clipping")
        ax.legend(fontsize=8)
        _layer_lines(axes[3], plt, _by_layer(health, "grad_norm"), "gradient norm per layer",
                     "||g||")
        _layer_lines(axes[4], plt, _by_layer(health, "update_ratio"),
                     "update-to-weight ratio per layer", "||dW|| / ||W||")
        axes[4].axhline(1e-3, color="k", ls="--", lw=1)
        ax = axes[5]                                              # GELU tails
        tail = health[-1]["health"]["gelu_tail"]
        n_gelu = max(len(r["health"]["gelu_tails"]["below"]) for r in health)
        for g in range(n_gelu):
            for side, style in (("below", "-"), ("above", ":")):
                points = [(r["iter"], r["health"]["gelu_tails"][side][g]) for r in health
                          if g < len(r["health"]["gelu_tails"][side])]
                ax.plot([i for i, _ in points], [v for _, v in points], style,
                        color=f"C{g % 10}",
                        label=f"GELU {g}: x {'<' if side == 'below' else '>'} "
                              f"{'-' if side == 'below' else ''}{tail:g}")
        ax.set_title("share of GELU inputs in the tails")
        ax.set_ylabel("fraction of inputs")
        if n_gelu:
            ax.legend(fontsize=6, ncol=2)
    for ax in axes[:panels]:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    from PIL import Image  # matplotlib's own dependency
    # a 256-colour palette: a third of the bytes of full colour, the same picture
    Image.open(buffer).convert("RGB").quantize(colors=256).save(png, optimize=True)


def main(argv=None):
    args = parse_args(argv)
    try:
        evals, health = read_log(args.run_dir)
        require_matplotlib()
        png = Path(args.out) if args.out else Path(args.run_dir) / "health.png"
        if png.suffix.lower() != ".png":
            raise UsageError(f"--out {png}: the file must end in .png")
        plot(evals, health, png, f"{args.run_dir}: {len(evals)} evaluations, "
                                 f"{len(health)} health lines")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"saved {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
