"""The package's layers: every import points down, there are no cycles, every module imports alone.

The layers, lowest first. A module may import modules of its own layer or of a layer below it,
never one above (not even lazily, inside a function), and the imports between modules form no
cycle. The package's own ``__init__`` sits above everything: it gathers the public names.
"""

import ast
import concurrent.futures
import os
import pathlib
import subprocess
import sys

import pytest

import tinygrad_llm

PACKAGE = pathlib.Path(tinygrad_llm.__file__).parent
ROOT = PACKAGE.parent

LAYERS = [
    ("backend", "checkpoint", "allocator"),     # NumPy only: the device seam, files, malloc
    ("kernels", "tokenizer"),                   # array kernels; text to ids (no tensors)
    ("autograd",),                              # Function, the graph, backward
    ("ops",),                                   # one Function per primitive or fused op
    ("tensor",),                                # Tensor and its operators
    ("nn", "reference", "testing", "profiler", "data", "decoding", "sampling", "viz",
     "health"),
    ("optim",),
    ("models", "metrics", "distributed"),   # distributed: data parallelism (MPI, NCCL)
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _unit(module):
    """The layer unit of a module: ``tinygrad_llm.ops.nn`` -> ``ops``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None   # None: the package's own __init__


def _imports(module):
    """The tinygrad_llm modules that ``module`` imports, anywhere in its file."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                              # relative: from .bpe import ...
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:                    # from pkg import submodule
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_module_is_in_a_layer():
    units = {_unit(m) for m in MODULES} - {None}
    assert units <= set(RANK), f"modules outside every layer: {sorted(units - set(RANK))}"


def test_no_module_imports_a_layer_above_it():
    upward = []
    for module, imported in GRAPH.items():
        unit = _unit(module)
        if unit is None:
            continue
        for other in imported:
            if other == "tinygrad_llm" or RANK[_unit(other)] > RANK[unit]:
                upward.append(f"{module} imports {other}")
    assert not upward, "imports that point up:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    # Depth-first search with colours; report the first cycle found as a path.
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(GRAPH, white)
    for start in sorted(GRAPH):
        if colour[start] != white:
            continue
        path, stack = [], [(start, iter(sorted(GRAPH[start])))]
        colour[start] = grey
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = black
                path.pop()
                stack.pop()
            elif colour[child] == grey:
                cycle = path[path.index(child):] + [child]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            elif colour[child] == white:
                colour[child] = grey
                path.append(child)
                stack.append((child, iter(sorted(GRAPH[child]))))


def test_the_checks_catch_an_upward_import_and_a_cycle(monkeypatch):
    graph = dict(GRAPH)
    graph["tinygrad_llm.ops.basic"] = GRAPH["tinygrad_llm.ops.basic"] | {"tinygrad_llm.tensor"}
    monkeypatch.setattr(sys.modules[__name__], "GRAPH", graph)
    with pytest.raises(AssertionError, match="ops.basic imports tinygrad_llm.tensor"):
        test_no_module_imports_a_layer_above_it()
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycles()


def _import_alone(module):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = (f"import sys, {module}\n"
            "heavy = [m for m in ('torch', 'cupy', 'matplotlib', 'mpi4py') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    return module, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  env=env, cwd=ROOT, timeout=120)


def test_every_module_imports_alone_in_a_fresh_interpreter():
    modules = [m for m in MODULES if not m.endswith("__main__")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_import_alone, modules))
    failed = [f"{m}:\n{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
              for m, r in results if r.returncode != 0]
    assert not failed, "\n".join(failed)


def test_the_package_gives_its_subpackages_as_torch_does():
    import tinygrad_llm as tg
    assert tg.nn.functional.gelu and tg.optim.AdamW and tg.models.GPT
    assert tg.tokenizer.BPETokenizer
