r"""Pictures of what the engine does: the computation graph behind a tensor, and hooks that let
a picture see inside the ops (the attention weights, the inputs of a GELU) while a model runs.

The graph. ``draw_graph(loss, "loss.html")`` walks the links the engine records (a tensor's
``_ctx`` is the Function that made it; ``fn.inputs`` are that Function's inputs; docs/autograd.md)
from ``loss`` back to the leaves, and writes one node per tensor and one per Function:

    tensor node     shape, dtype, device, and its gradient: the norm ||x.grad|| of a leaf after
                    backward, "no grad yet" before it ("constant" for a leaf that needs none;
                    the engine keeps no gradient for an intermediate tensor)
    Function node   the op's name and the bytes it saved for backward (every array it keeps on
                    ``self``: what ``backward`` will read)
    edges           input tensor -> Function -> output tensor, the direction of the forward pass

Backward frees the graph as it goes (``vars(fn).clear()``), so draw it before ``backward()``, or
after ``backward(retain_graph=True)`` to see the gradients' norms.

The hooks. While ``watch_forward`` is active, the engine's per-op hook (``autograd._profile_hook``,
the one the profiler uses) hands every Function of the chosen classes to a callback right after
its forward ran, with the arrays it was given. ``record_attention`` uses it to keep the
attention weights P = softmax(q k^T / sqrt(hs) + mask) that the fused attention Functions
(tinygrad_llm.ops.attention) save for their backward: the weights the model really used, with
no second attention computed beside it. It works under ``no_grad`` too: forward saves P on the
Function whether or not a graph is kept.
"""

import contextlib
import html
import shutil
import subprocess
from pathlib import Path

import numpy as np

from tinygrad_llm import autograd, backend
from tinygrad_llm.autograd import TensorBase
from tinygrad_llm.ops.attention import Attention, QKVAttention

__all__ = ["draw_graph", "graph_dot", "graph_svg", "saved_bytes", "watch_forward",
           "record_attention", "headless_pyplot"]

_LINKS = ("inputs", "outputs", "needs_input_grad")  # the graph's own links, not saved state


# ---- the graph -------------------------------------------------------------------------------
def saved_bytes(fn):
    r"""The bytes of the arrays a Function keeps on ``self`` for its backward (views of an
    input count at their full size: they keep that input's memory alive)."""
    total = 0
    stack = [v for k, v in vars(fn).items() if k not in _LINKS]
    while stack:
        v = stack.pop()
        if isinstance(v, TensorBase):
            v = v.data
        if isinstance(v, (tuple, list)):
            stack.extend(v)
        elif backend.is_array(v) or isinstance(v, np.generic):
            total += int(v.nbytes)
    return total


def _walk(tensor, caller):
    r"""The Functions behind ``tensor`` in forward order (each after the Functions that made
    its inputs), found by backward's own search, the first input's branch first."""
    if not isinstance(tensor, TensorBase):
        raise TypeError(f"{caller}: tensor must be a Tensor, got {type(tensor).__name__}")
    if tensor._ctx is None:
        raise ValueError(f"{caller}: this tensor is a leaf (made by the user, or computed under "
                         f"no_grad, or from tensors that need no gradient), so no graph stands "
                         f"behind it; pass a tensor computed from ones with requires_grad=True, "
                         f"such as the loss")
    return autograd.forward_order(
        tensor._ctx, f"{caller}: the graph behind this tensor was freed by backward(); draw it "
        f"before backward, or call backward(retain_graph=True) to keep it",
        first_input_first=True)


def _fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _grad_line(t):
    if t._ctx is not None:
        return "grad not kept (intermediate)"
    if not t.requires_grad:
        return "constant (no grad)"
    if t.grad is None:
        return "no grad yet"
    g = getattr(t.grad, "data", t.grad)
    if not backend.is_array(g):                         # a row-sparse gradient, say
        return f"grad: a {type(t.grad).__name__}"
    g = backend.to_numpy(g)
    norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
    return f"grad norm {norm:.4g}"


def _graph(tensor, names, caller):
    r"""(nodes, edges): nodes {key: (kind, label lines)} in forward order, edges [(src, dst)].
    kind is "function", "leaf" (a leaf that needs a gradient: a parameter), "constant" (a leaf
    that does not) or "tensor" (an intermediate)."""
    order = _walk(tensor, caller)
    names = {} if names is None else dict(names)
    name_of = {id(t): n for n, t in names.items()}
    nodes, edges, keys = {}, [], {}

    def tensor_key(t):
        if id(t) not in keys:
            keys[id(t)] = key = f"t{len(keys)}"
            shape = "(" + ", ".join(str(d) for d in t.shape) + ("," if t.ndim == 1 else "") + ")"
            lines = ([name_of[id(t)]] if id(t) in name_of else []) + [
                f"{shape} {t.dtype} {t.device}", _grad_line(t)]
            kind = ("tensor" if t._ctx is not None else
                    "leaf" if t.requires_grad else "constant")
            nodes[key] = (kind, lines)
        return keys[id(t)]

    for n, fn in enumerate(order):
        inputs = [tensor_key(x) for x in fn.inputs if isinstance(x, TensorBase)]
        key = f"f{n}"
        nodes[key] = ("function", [type(fn).__name__, f"saved {_fmt_bytes(saved_bytes(fn))}"])
        edges.extend((i, key) for i in dict.fromkeys(inputs))   # one edge per distinct input
        for ref in fn.outputs:              # the outputs still alive (the root always is)
            out = ref()
            if out is not None and out._ctx is fn:
                edges.append((key, tensor_key(out)))
    return nodes, edges


_DOT_STYLE = {
    "function": 'shape=box, style="filled", fillcolor="#ffe3a3", color="#a67c00"',
    "leaf": 'shape=box, style="rounded,filled", fillcolor="#cfe2ff", color="#3465a4"',
    "constant": 'shape=box, style="rounded,filled", fillcolor="#eeeeee", color="#888888"',
    "tensor": 'shape=box, style="rounded", color="#555555"',
}


def graph_dot(tensor, names=None):
    r"""The computation graph behind ``tensor`` as Graphviz DOT text (see ``draw_graph``)."""
    return _dot_text(*_graph(tensor, names, "graph_dot"))


def _dot_text(nodes, edges):
    lines = ["digraph computation {", '  graph [rankdir=TB, fontname="Helvetica"];',
             '  node [fontname="Helvetica", fontsize=10];', "  edge [color=\"#666666\"];"]
    for key, (kind, label) in nodes.items():
        text = "\\n".join(s.replace("\\", "\\\\").replace('"', '\\"') for s in label)
        lines.append(f'  {key} [label="{text}", {_DOT_STYLE[kind]}];')
    lines += [f"  {a} -> {b};" for a, b in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- a small layered layout, for when Graphviz is not installed --------------------------------
_FILL = {"function": ("#ffe3a3", "#a67c00"), "leaf": ("#cfe2ff", "#3465a4"),
         "constant": ("#eeeeee", "#888888"), "tensor": ("#ffffff", "#555555")}
_CHAR_W, _LINE_H, _PAD, _GAP_X, _GAP_Y = 6.6, 14, 8, 18, 36


def _layout(nodes, edges):
    r"""Positions {key: (x, y, w, h)} by layers: a Function one layer below its lowest input,
    its outputs one below it, a leaf just above its first consumer; then each layer is sorted
    twice by the mean position of its nodes' predecessors (the barycentre heuristic)."""
    preds, succs = {k: [] for k in nodes}, {k: [] for k in nodes}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    rank = {}
    for key in nodes:                   # forward order: producers before consumers
        inner = [rank[p] for p in preds[key] if p in rank]
        if preds[key] or nodes[key][0] == "tensor":
            rank[key] = max(inner, default=0) + 1
    for key in nodes:                   # leaves: just above their first consumer
        if key not in rank:
            rank[key] = min((rank[s] for s in succs[key] if s in rank), default=1) - 1
    layers = {}
    for key in nodes:
        layers.setdefault(rank[key], []).append(key)
    size = {k: (_CHAR_W * max(len(s) for s in lines) + 2 * _PAD, _LINE_H * len(lines) + _PAD)
            for k, (_, lines) in nodes.items()}
    pos = {}
    for _ in range(2):
        for r in sorted(layers):
            row = layers[r]
            if pos:
                row.sort(key=lambda k, r=r: _centre(k, r, preds[k] + succs[k], pos, rank))
            width = sum(size[k][0] for k in row) + _GAP_X * (len(row) - 1)
            x = -width / 2
            for k in row:
                pos[k] = x + size[k][0] / 2
                x += size[k][0] + _GAP_X
    tops, y = {}, 20.0
    for r in sorted(layers):
        tops[r] = y
        y += max(size[k][1] for k in layers[r]) + _GAP_Y
    left = min(pos[k] - size[k][0] / 2 for k in nodes) - 20
    return {k: (pos[k] - left, tops[rank[k]], size[k][0], size[k][1]) for k in nodes}


def _centre(key, r, neighbours, pos, rank):
    r"""The mean x of the neighbours of ``key`` in the layers above layer r (its own x if none)."""
    xs = [pos[n] for n in neighbours if n in pos and rank[n] < r]
    return sum(xs) / len(xs) if xs else pos.get(key, 0.0)


def graph_svg(tensor, names=None):
    r"""The graph behind ``tensor`` as SVG text, laid out by this module (no Graphviz needed):
    what ``draw_graph`` puts into an HTML page when Graphviz's ``dot`` is not installed."""
    return _svg_text(*_graph(tensor, names, "graph_svg"))


def _svg_text(nodes, edges):
    box = _layout(nodes, edges)
    width = max(x + w / 2 for x, _, w, _ in box.values()) + 20
    height = max(y + h for _, y, _, h in box.values()) + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" '
           f'font-size="11">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker>'
           '</defs>']
    for a, b in edges:
        xa, ya, _, ha = box[a]
        xb, yb, _, _ = box[b]
        mid = (ya + ha + yb) / 2
        out.append(f'<path d="M{xa:.1f},{ya + ha:.1f} C{xa:.1f},{mid:.1f} {xb:.1f},{mid:.1f} '
                   f'{xb:.1f},{yb:.1f}" fill="none" stroke="#666" marker-end="url(#arrow)"/>')
    for key, (kind, lines) in nodes.items():
        x, y, w, h = box[key]
        fill, stroke = _FILL[kind]
        radius = 0 if kind == "function" else 6
        out.append(f'<g id="{key}" class="{kind}"><title>{html.escape(" | ".join(lines))}</title>'
                   f'<rect x="{x - w / 2:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                   f'rx="{radius}" fill="{fill}" stroke="{stroke}"/>')
        for i, line in enumerate(lines):
            weight = ' font-weight="bold"' if i == 0 and kind == "function" else ""
            out.append(f'<text x="{x:.1f}" y="{y + _PAD / 2 + _LINE_H * (i + 0.8):.1f}" '
                       f'text-anchor="middle"{weight}>{html.escape(line)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _dot_to_svg(dot, caller):
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(f"{caller}: writing SVG needs Graphviz's `dot` program, which is not "
                           f"on PATH; install it (apt-get install graphviz, or brew install "
                           f"graphviz), or write .dot or .html instead")
    done = subprocess.run([exe, "-Tsvg"], input=dot, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{caller}: dot failed: {done.stderr.strip()}")
    svg = done.stdout
    return svg[svg.index("<svg"):]           # without the XML declaration and doctype


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 1em; color: #222; }}
.graph {{ overflow: auto; border: 1px solid #ddd; padding: 0.5em; }}
.key span {{ display: inline-block; padding: 0.1em 0.5em; margin-right: 0.5em;
             border: 1px solid #888; border-radius: 4px; font-size: 0.9em; }}
</style></head><body>
<h1>{title}</h1>
<p class="key"><span style="background:#ffe3a3">Function: saved for backward</span>
<span style="background:#cfe2ff">parameter (leaf with a gradient)</span>
<span style="background:#eeeeee">constant</span>
<span style="background:#ffffff">intermediate tensor</span></p>
<p>{count}. Arrows run in the direction of the forward pass; backward walks them in reverse.
Hover a node to see its label in full.</p>
<div class="graph">
{svg}</div>
</body></html>
"""


def draw_graph(tensor, path, names=None, title=None):
    r"""Write the computation graph behind ``tensor`` (a Tensor made by ops, such as a loss) to
    ``path``; the suffix picks the format:

    - ``.dot``: Graphviz DOT text (always);
    - ``.svg``: rendered by Graphviz's ``dot`` program (a clear error if it is not installed);
    - ``.html``: one self-contained page (no network): the SVG from ``dot`` when it is installed,
      else the SVG of this module's own layered layout (``graph_svg``).

    ``names`` maps names to tensors, e.g. ``dict(model.named_parameters())``: those tensors'
    nodes show their names. Nodes and edges: the module docstring. Returns the Path written.

    Errors: a ``tensor`` that is not a Tensor (TypeError) or is a leaf (ValueError), a graph
    already freed by ``backward()`` (RuntimeError: draw it first, or use
    ``backward(retain_graph=True)``), an unknown suffix (ValueError).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".dot", ".svg", ".html"):
        raise ValueError(f"draw_graph: path {str(path)!r} must end in .dot, .svg or .html")
    nodes, edges = _graph(tensor, names, "draw_graph")
    if suffix == ".dot":
        text = _dot_text(nodes, edges)
    elif suffix == ".svg":
        text = _dot_to_svg(_dot_text(nodes, edges), "draw_graph")
    else:
        fns = sum(kind == "function" for kind, _ in nodes.values())
        svg = (_dot_to_svg(_dot_text(nodes, edges), "draw_graph") if shutil.which("dot")
               else _svg_text(nodes, edges))
        text = _PAGE.format(title=html.escape(title or "Computation graph"), svg=svg,
                            count=f"{fns} Functions, {len(nodes) - fns} tensors")
    path.write_text(text, encoding="utf-8")
    return path


# ---- hooks into the ops ------------------------------------------------------------------------
@contextlib.contextmanager
def watch_forward(classes, callback):
    r"""Within this context, call ``callback(fn, xs, kwargs)`` right after the forward of every
    Function that is an instance of ``classes`` (a class or a tuple of them): ``fn`` is the
    Function with what its forward saved on it, ``xs`` the raw arrays (and other positional
    arguments) it was given. Runs under ``no_grad`` too.

    It takes the engine's per-op hook and passes every call on to the hook that was there before
    (an active profiler keeps timing). Entering a profiler *inside* this context replaces the
    hook until the profiler ends.
    """
    previous = autograd._profile_hook

    def hook(name, phase, call, args, kwargs):
        out = (call(*args, **kwargs) if previous is None
               else previous(name, phase, call, args, kwargs))
        if phase == "forward" and isinstance(call.__self__, classes):
            callback(call.__self__, args, kwargs)
        return out

    autograd._profile_hook = hook
    try:
        yield
    finally:
        autograd._profile_hook = previous


@contextlib.contextmanager
def record_attention():
    r"""Collect the attention weights of every fused attention call run inside the context.

        with no_grad(), record_attention() as maps:
            model(idx)
        maps[l]          # (B, nh, Tq, Tk) NumPy array: P = softmax(q k^T / sqrt(hs) + mask)

    One entry per call, in the order the calls ran: for a GPT, layer l's self-attention is
    ``maps[l]``; for nn.Transformer's decoder, each layer's self-attention and then its
    cross-attention. P is the array the ``Attention`` and ``QKVAttention`` Functions save for
    their backward (before dropout), copied to the host. Only the fused Functions are seen:
    attention that a layer composes from primitives (a padding mask, ``need_weights=True``,
    ``fused=False``) is not recorded; such a layer returns its weights itself
    (``nn.MultiheadAttention``'s ``need_weights``).
    """
    maps = []

    def keep(fn, xs, kwargs):
        maps.append(np.array(backend.to_numpy(fn.p)))                       # (B, nh, Tq, Tk)

    with watch_forward((Attention, QKVAttention), keep):
        yield maps


# ---- plots -------------------------------------------------------------------------------------
def headless_pyplot():
    r"""``matplotlib.pyplot`` on the Agg backend: it draws into files (PNG), with no window and
    no display. matplotlib is optional (the ``plot`` extra: ``pip install -e ".[plot]"``), so it
    is imported here, when a plot is asked for; without it this raises ImportError, and the
    caller says what to install or goes on without the plot."""
    import matplotlib  # noqa: PLC0415 - optional, imported where used
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    return plt
