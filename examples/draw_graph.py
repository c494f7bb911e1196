r"""Draw the computation graph behind the loss of a tiny MLP, or of one GPT block.

What this teaches: what autograd records. Every op on tensors leaves a Function node holding
its inputs and what it saved for backward (docs/autograd.md); ``tinygrad_llm.viz.draw_graph``
draws those nodes. The MLP is 2 -> 4 -> 3 with a GELU between, on 5 points with a
cross-entropy loss; ``--gpt-block`` draws one GPT block (LayerNorm, the fused attention, the
MLP, the two residual adds) on a (2, 5, 8) input instead. The graph is drawn after
``backward(retain_graph=True)``, so each parameter shows its gradient's norm; ``--before``
draws it before backward ("no grad yet").

    python examples/draw_graph.py docs/images/mlp_loss_graph.svg
    python examples/draw_graph.py mlp.html             # open in a browser: no network needed
    python examples/draw_graph.py block.dot --gpt-block

The suffix picks the format (.dot, .svg, .html). SVG comes from Graphviz's ``dot`` when it is
installed (apt-get install graphviz); without it this script writes the SVG of viz's own layered
layout (``viz.graph_svg``), the one the HTML page uses.
"""

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

import tinygrad_llm as tg
from tinygrad_llm import viz
from tinygrad_llm.models.gpt import Block, GPTConfig
from tinygrad_llm.nn import functional as F


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("path", help="the file to write: .dot, .svg or .html")
    p.add_argument("--gpt-block", action="store_true", help="one GPT block instead of the MLP")
    p.add_argument("--before", action="store_true", help="draw before backward (no gradients)")
    return p.parse_args(argv)


def mlp_loss():
    r"""(loss, named parameters) of a 2 -> 4 -> 3 MLP on 5 points."""
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(2, 4), tg.nn.GELU(), tg.nn.Linear(4, 3))
    x = tg.Tensor(np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32))  # (5, 2)
    y = tg.Tensor(np.array([0, 1, 2, 1, 0]))                                            # (5,)
    return F.cross_entropy(model(x), y), dict(model.named_parameters())


def block_output():
    r"""(sum of a random projection of one GPT block's output, named parameters)."""
    tg.manual_seed(0)
    block = Block(GPTConfig(block_size=8, n_layer=1, n_head=2, n_embd=8))
    x = tg.Tensor(np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32))
    return block(x).sum(), dict(block.named_parameters())                                # ()


def main(argv=None):
    args = parse_args(argv)
    path = Path(args.path)
    if path.suffix.lower() not in (".dot", ".svg", ".html"):
        print(f"error: {path} must end in .dot, .svg or .html", file=sys.stderr)
        return 2
    loss, names = block_output() if args.gpt_block else mlp_loss()
    if not args.before:
        loss.backward(retain_graph=True)             # keep the graph to draw it with gradients
    if path.suffix.lower() == ".svg" and shutil.which("dot") is None:
        path.write_text(viz.graph_svg(loss, names), encoding="utf-8")
        print(f"saved {path} (Graphviz is not installed: viz's own layout)")
    else:
        viz.draw_graph(loss, path, names, title="The graph behind the loss")
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
