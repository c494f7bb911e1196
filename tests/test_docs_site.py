"""The documentation site's sources: every page on the site, every link resolving, every equation
linked to the code that computes it, the study path complete, the math vendored.

Reads docs/ and mkdocs.yml as text and the package's source with ``ast``: no MkDocs needed, so
it runs everywhere. (``mkdocs build --strict`` in .ci/run checks the rendered site, and
tests/test_docs_browser.py opens it in a browser.)
"""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
hooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hooks)

PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
MATH = re.compile(r"^```math\n(.*?)^```\n", re.M | re.S)
MKDOCS = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


def _text(page):
    return (DOCS / page).read_text(encoding="utf-8")


def test_every_page_of_docs_is_on_the_site():
    in_nav = set(re.findall(r"^\s*- (?:[^:\n]+: )?([\w/.-]+\.md)\s*$", MKDOCS, re.M))
    assert set(PAGES) == in_nav
    assert PAGES.count("index.md") == 1


@pytest.mark.parametrize("page", PAGES)
def test_every_link_resolves_to_a_page_a_file_or_a_symbol(page):
    apis = hooks.api_pages()
    for target in hooks.repository_links(_text(page)):
        found = hooks.repo_target(page, target)
        if found is None:                        # a link inside docs/, or to the web
            path = target.partition("#")[0]
            if path and "://" not in target and not target.startswith("mailto:"):
                linked = (DOCS / Path(page).parent / path).resolve()
                assert linked.is_file(), f"{page}: {target} is not a page of docs/"
            continue
        repo_path, symbol = found
        assert (ROOT / repo_path).exists(), f"{page}: {target}: no such file in the repository"
        if symbol:
            assert repo_path.endswith(".py"), f"{page}: {target}: a symbol in a non-Python file"
            source = (ROOT / repo_path).read_text(encoding="utf-8")
            assert hooks.symbol_line(source, symbol), f"{page}: {target}: no {symbol} there"
        assert hooks.site_uri(repo_path, symbol, apis), f"{page}: {target}: nowhere on the site"


@pytest.mark.parametrize("page", [p for p in PAGES if MATH.search(_text(p))])
def test_every_equation_links_to_the_code_that_computes_it(page):
    text = _text(page)
    blocks = list(MATH.finditer(text))
    for i, block in enumerate(blocks):
        end = blocks[i + 1].start() if i + 1 < len(blocks) else len(text)
        after = text[block.end():end]
        heading = re.search(r"^#", after, re.M)
        after = after[:heading.start()] if heading else after
        links = [hooks.repo_target(page, t) for t in hooks.repository_links(after)]
        code = [found for found in links if found and found[0].endswith(".py") and found[1]]
        line = text[:block.start()].count("\n") + 1
        assert code, f"{page}:{line}: a math block with no link to the code (file.py#symbol)"


def test_the_math_is_tex_that_github_and_katex_both_read():
    for page in PAGES:
        for block in MATH.finditer(_text(page)):
            tex = block.group(1)
            assert "$" not in tex and tex.count("{") == tex.count("}"), (page, tex[:60])
            assert tex.count(r"\begin{") == tex.count(r"\end{"), (page, tex[:60])


def test_the_api_reference_documents_existing_modules():
    apis = hooks.api_pages()
    for module in ("tinygrad_llm.autograd", "tinygrad_llm.tensor", "tinygrad_llm.ops.nn",
                   "tinygrad_llm.nn.layers", "tinygrad_llm.models.gpt", "tinygrad_llm.optim",
                   "tinygrad_llm.tokenizer.bpe", "tinygrad_llm.metrics", "tinygrad_llm.decoding",
                   "tinygrad_llm.distributed", "tinygrad_llm.checkpoint"):
        assert module in apis, f"{module} has no API page"
    for module, page in apis.items():
        path = ROOT / (module.replace(".", "/") + ".py")
        package = ROOT / module.replace(".", "/") / "__init__.py"
        assert path.is_file() or package.is_file(), f"{page}: no module {module}"
        assert f"api/{Path(page).name}" in MKDOCS


def _tests_named(text):
    return set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", text))


def test_the_study_path_names_a_file_a_test_an_example_and_an_exercise_per_step():
    text = _text("index.md")
    steps = re.split(r"^## ", text, flags=re.M)[1:]
    titles = [step.splitlines()[0] for step in steps]
    expected = ["the tensor and backward", "one op's derivative", "gradcheck", "an mlp",
                "rnn, lstm", "word2vec", "attention", "the gpt block",
                "the encoder–decoder transformer", "bert", "the tokenizer", "scaling out"]
    assert len(titles) == 12
    for number, (title, words) in enumerate(zip(titles, expected), start=1):
        assert title.lower().startswith(f"{number}. {words}"), title
    for title, step in zip(titles, steps):
        for part in ("**Read**", "**Proved by**", "**Run**", "**Exercise.**"):
            assert part in step, f"{title}: no {part}"
        assert re.search(r"\]\(\.\./tinygrad_llm/", step), f"{title}: no file of the package"
        assert re.search(r"tests/test_\w+\.py", step), f"{title}: no test"


@pytest.mark.parametrize("page", PAGES)
def test_the_tests_examples_and_scripts_the_pages_name_exist(page):
    text = _text(page)
    for path, name in _tests_named(text):
        source = (ROOT / path).read_text(encoding="utf-8")
        assert hooks.symbol_line(source, name), f"{page}: {path}::{name} does not exist"
    for path in re.findall(r"python ((?:examples|benchmarks)/[\w/]+\.py)", text):
        assert (ROOT / path).is_file(), f"{page}: {path} does not exist"


def test_katex_is_vendored_with_its_licence_and_nothing_comes_from_a_cdn():
    katex = DOCS / "assets" / "katex"
    for name in ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "LICENSE"):
        assert (katex / name).is_file(), name
    fonts = set(re.findall(r"url\(fonts/([\w-]+\.woff2)\)", (katex / "katex.min.css").read_text()))
    assert fonts and all((katex / "fonts" / font).is_file() for font in fonts)
    assert "MIT" in (katex / "LICENSE").read_text()
    assert "font: false" in MKDOCS                      # Material would fetch web fonts
    for line in MKDOCS.splitlines():
        if line.strip().startswith("- ") and re.search(r"\.(js|css)\b", line):
            assert "//" not in line, line
    for asset in ("assets/katex/katex.min.js", "assets/katex/contrib/auto-render.min.js",
                  "assets/javascripts/katex.js", "assets/katex/katex.min.css"):
        assert f"- {asset}" in MKDOCS and (DOCS / asset).is_file()


def test_the_hook_sends_each_kind_of_link_to_its_place():
    apis = hooks.api_pages()
    assert hooks.site_uri("tinygrad_llm/ops/nn.py", "CrossEntropy", apis) == \
        "api/ops.md#tinygrad_llm.ops.nn.CrossEntropy"
    assert hooks.site_uri("tinygrad_llm/autograd.py", "", apis) == \
        "api/engine.md#tinygrad_llm.autograd"
    line = hooks.symbol_line((ROOT / "tinygrad_llm/autograd.py").read_text(), "_add_pending")
    assert hooks.site_uri("tinygrad_llm/autograd.py", "_add_pending", apis) == \
        f"source/tinygrad_llm/autograd.py.md#__codelineno-0-{line}"
    assert hooks.site_uri("tests/test_autograd.py", "", apis) == "source/tests/test_autograd.py.md"
    line = hooks.symbol_line((ROOT / "tests/test_autograd.py").read_text(), "test_diamond_graph")
    assert hooks.site_uri("tests/test_autograd.py", "test_diamond_graph", apis) == \
        f"source/tests/test_autograd.py.md#__codelineno-0-{line}"
    assert hooks.site_uri("tinygrad_llm/ops", "", apis) == "api/ops.md"
    assert hooks.repo_target("api/ops.md", "../../tinygrad_llm/ops/nn.py#GELU") == \
        ("tinygrad_llm/ops/nn.py", "GELU")
    assert hooks.repo_target("gpt.md", "autograd.md#cost") is None
    assert hooks.repo_target("gpt.md", "https://example.org/a.py") is None
    assert hooks.symbol_line("class A:\n    def f(self):\n        pass\n", "A.f") == 2
    assert hooks.symbol_line("class A:\n    pass\n", "A.g") is None
    assert ast.parse((DOCS / "hooks.py").read_text())           # the hook file itself parses


def test_the_readme_points_to_the_site_and_says_how_to_build_and_serve_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/index.md)" in readme
    assert 'pip install -e ".[docs]"' in readme and "mkdocs serve" in readme
    assert "mkdocs build --strict" in readme
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    extra = re.search(r'"docs": \[([^\]]*\][^\]]*)\]', setup).group(1)   # mkdocstrings[python]
    for package in ('"mkdocs', '"mkdocs-material', '"mkdocstrings[python]'):
        assert package in extra
