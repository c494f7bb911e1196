"""tinygrad_llm.viz: the graph viewer (nodes, edges and labels of the DOT it writes, parsed
back), its bad inputs, the HTML page, the attention recorder against the reference
attention, and the headless pyplot the plotting examples share."""

import importlib.util
import re
import shutil
import sys

import numpy as np
import pytest

import tinygrad_llm as tg
from tinygrad_llm import no_grad, viz
from tinygrad_llm.models.gpt import Block, GPTConfig
from tinygrad_llm.nn import functional as F
from tinygrad_llm.tensor import Tensor

NODE = re.compile(r'^  (\w+) \[label="((?:[^"\\]|\\.)*)", (.*)\];$')
EDGE = re.compile(r"^  (\w+) -> (\w+);$")


def parse_dot(text):
    r"""({key: [label lines]}, [(src, dst)]) of the DOT that graph_dot writes."""
    nodes, edges = {}, []
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    for line in text.splitlines():
        if m := NODE.match(line):
            nodes[m.group(1)] = m.group(2).split("\\n")
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


def _mlp():
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(4, 8), tg.nn.GELU(), tg.nn.Linear(8, 3))
    x = Tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    loss = F.cross_entropy(model(x), Tensor(np.array([0, 1, 2, 1, 0])))
    return model, loss


def _functions(nodes):
    return [lines[0] for key, lines in nodes.items() if key.startswith("f")]


def test_mlp_graph_nodes_edges_and_labels():
    model, loss = _mlp()
    names = dict(model.named_parameters())
    nodes, edges = parse_dot(viz.graph_dot(loss, names))
    assert _functions(nodes) == ["Linear", "GELU", "Linear", "CrossEntropy"]
    assert len(nodes) == 4 + 10 and len(edges) == 13
    by_name = {lines[0]: key for key, lines in nodes.items() if lines[0] in names}
    assert set(by_name) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert nodes[by_name["0.weight"]][1:] == ["(8, 4) float32 cpu", "no grad yet"]
    assert nodes[by_name["2.bias"]][1:] == ["(3,) float32 cpu", "no grad yet"]
    # every parameter feeds a Linear; the chain runs Linear -> GELU -> Linear -> CrossEntropy
    fn_of = {key: lines[0] for key, lines in nodes.items() if key.startswith("f")}
    for key in by_name.values():
        assert [fn_of[b] for a, b in edges if a == key] == ["Linear"]
    chain = [fn_of[k] for k in fn_of]
    links = {(fn_of[a2], fn_of[b2]) for a1, t in edges if a1 in fn_of
             for a2, b2 in [(a1, b) for tt, b in edges if tt == t and b in fn_of]}
    assert links == {("Linear", "GELU"), ("GELU", "Linear"), ("Linear", "CrossEntropy")}
    assert chain[-1] == "CrossEntropy"
    root = [b for a, b in edges if fn_of.get(a) == "CrossEntropy"]
    assert nodes[root[0]] == ["() float32 cpu", "grad not kept (intermediate)"]
    inputs = [k for k, lines in nodes.items() if lines[-1] == "constant (no grad)"]
    assert sorted(nodes[k][0] for k in inputs) == ["(5, 4) float32 cpu", "(5,) int64 cpu"]


def test_saved_bytes_are_what_backward_keeps():
    _, loss = _mlp()
    nodes, _ = parse_dot(viz.graph_dot(loss))
    gelu = loss._ctx.inputs[0]._ctx.inputs[0]._ctx      # CrossEntropy <- Linear <- GELU
    assert type(gelu).__name__ == "GELU"
    assert viz.saved_bytes(gelu) == 5 * 8 * 4        # the slope dy/dx, (5, 8) float32
    assert ["GELU", "saved 160 B"] in nodes.values()


def test_after_backward_with_retain_graph_the_leaves_show_their_gradient_norms():
    model, loss = _mlp()
    loss.backward(retain_graph=True)
    names = dict(model.named_parameters())
    nodes, _ = parse_dot(viz.graph_dot(loss, names))
    labels = {lines[0]: lines[1:] for lines in nodes.values()}
    for name, p in names.items():
        assert labels[name][1] == f"grad norm {np.linalg.norm(p.grad.numpy()):.4g}"
    assert not any(lines[-1] == "no grad yet" for lines in nodes.values())


def test_gpt_block_graph():
    tg.manual_seed(1)
    config = GPTConfig(block_size=8, n_layer=1, n_head=2, n_embd=8)
    block = Block(config)
    x = Tensor(np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32),
               requires_grad=True)
    y = block(x)
    nodes, edges = parse_dot(viz.graph_dot(y, dict(block.named_parameters())))
    fns = _functions(nodes)
    assert fns.count("LayerNorm") == 2 and fns.count("QKVAttention") == 1
    assert fns.count("GELU") == 1 and fns.count("Linear") == 4 and fns.count("Add") == 2
    names = {lines[0] for lines in nodes.values()}
    assert {n for n, _ in block.named_parameters()} <= names
    attention = [k for k, lines in nodes.items() if lines[0] == "QKVAttention"][0]
    # saved: q, k, v (views of qkv, (2, 2, 5, 4) each), P (2, 2, 5, 5), y (2, 5, 2, 4)
    assert nodes[attention][1] == f"saved {(3 * 80 + 100 + 80) * 4 / 1024:.1f} KiB"
    qkv = [a for a, b in edges if b == attention]
    assert len(qkv) == 1 and nodes[qkv[0]][0] == "(2, 5, 24) float32 cpu"
    x_key = [k for k, lines in nodes.items() if lines == ["(2, 5, 8) float32 cpu",
                                                           "no grad yet"]]
    assert len(x_key) == 1
    assert {nodes[b][0] for a, b in edges if a == x_key[0]} == {"LayerNorm", "Add"}


def test_bad_inputs():
    model, loss = _mlp()
    with pytest.raises(TypeError, match="draw_graph: tensor must be a Tensor, got list"):
        viz.draw_graph([1, 2], "g.dot")
    with pytest.raises(ValueError, match="draw_graph: this tensor is a leaf"):
        viz.draw_graph(model[0].weight, "g.dot")
    with no_grad():
        frozen = model(Tensor(np.ones((1, 4), dtype=np.float32)))
    with pytest.raises(ValueError, match="leaf"):
        viz.graph_dot(frozen)
    with pytest.raises(ValueError, match=r"draw_graph: path 'g.png' must end in .dot, .svg"):
        viz.draw_graph(loss, "g.png")
    loss.backward()
    with pytest.raises(RuntimeError, match=r"freed by backward\(\).*retain_graph=True"):
        viz.draw_graph(loss, "g.dot")


def test_files_by_suffix(tmp_path, monkeypatch):
    _, loss = _mlp()
    dot = viz.draw_graph(loss, tmp_path / "g.dot")
    assert dot.read_text() == viz.graph_dot(loss)
    monkeypatch.setattr(shutil, "which", lambda name: None)          # no Graphviz
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        viz.draw_graph(loss, tmp_path / "g.svg")
    page = viz.draw_graph(loss, tmp_path / "g.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN
    assert page.count('class="function"') == 4 and "CrossEntropy" in page
    svg = viz.graph_svg(loss)
    assert svg.count("<rect") == 14 and svg.count("marker-end") == 13


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_svg_with_graphviz(tmp_path):
    _, loss = _mlp()
    svg = viz.draw_graph(loss, tmp_path / "g.svg").read_text()
    assert svg.startswith("<svg") and "CrossEntropy" in svg


def test_record_attention_gives_the_weights_the_fused_functions_used():
    tg.manual_seed(2)
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
    from tinygrad_llm.models.gpt import GPT
    model = GPT(config).eval()
    idx = np.array([[1, 2, 3, 4, 5, 6]])
    with no_grad(), viz.record_attention() as maps:
        model(idx)
    assert len(maps) == 2 and all(m.shape == (1, 2, 6, 6) for m in maps)
    assert np.allclose(maps[0].sum(-1), 1) and np.all(np.triu(maps[0][0, 0], 1) == 0)
    # the first layer's weights, recomputed from primitives, agree
    with no_grad():
        x = model._embed(model._check_idx(idx), 0, None)
        h = model.transformer.h[0].ln_1(x)
        q, k, _ = model.transformer.h[0].attn._heads(model.transformer.h[0].attn.c_attn(h))
        scores = (q @ k.swapaxes(-1, -2)).numpy() / np.sqrt(4)
    scores = scores + np.triu(np.full((6, 6), -np.inf), 1)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    assert np.allclose(maps[0], p / p.sum(-1, keepdims=True), atol=1e-6)
    with viz.record_attention() as none:                       # nothing runs: nothing recorded
        pass
    assert none == []


def test_draw_graph_example(tmp_path, capsys):
    from example_scripts import load_example
    script = load_example("draw_graph")
    assert script.main([str(tmp_path / "mlp.dot")]) == 0
    nodes, _ = parse_dot((tmp_path / "mlp.dot").read_text())
    assert _functions(nodes) == ["Linear", "GELU", "Linear", "CrossEntropy"]
    assert any(line.startswith("grad norm") for lines in nodes.values() for line in lines)
    assert script.main([str(tmp_path / "block.html"), "--gpt-block", "--before"]) == 0
    page = (tmp_path / "block.html").read_text()
    assert "QKVAttention" in page and "no grad yet" in page and "grad norm" not in page
    assert script.main([str(tmp_path / "g.svg")]) == 0
    assert (tmp_path / "g.svg").read_text().lstrip().startswith("<svg")
    assert script.main([str(tmp_path / "g.png")]) == 2
    assert "must end in .dot, .svg or .html" in capsys.readouterr().err


def test_svg_and_html_go_through_dot_when_it_is_on_path(tmp_path, monkeypatch):
    # a stand-in for Graphviz's dot: checks it is fed DOT on stdin, answers an SVG document
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1" = "-Tsvg" ] || exit 3\ngrep -q "^digraph" || exit 4\n'
                    'printf \'<?xml version="1.0"?>\\n<!DOCTYPE svg>\\n<svg id="from-dot"/>\\n\'\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    _, loss = _mlp()
    svg = viz.draw_graph(loss, tmp_path / "g.svg").read_text()
    assert svg == '<svg id="from-dot"/>\n'                  # without the XML header
    page = viz.draw_graph(loss, tmp_path / "g.html").read_text()
    assert '<svg id="from-dot"/>' in page and "<!DOCTYPE svg>" not in page


def test_headless_pyplot_draws_to_files_and_raises_import_error_without_matplotlib(monkeypatch):
    if importlib.util.find_spec("matplotlib") is not None:
        plt = viz.headless_pyplot()
        assert plt.get_backend().lower() == "agg"
    monkeypatch.setitem(sys.modules, "matplotlib", None)             # as if not installed
    with pytest.raises(ImportError):
        viz.headless_pyplot()
