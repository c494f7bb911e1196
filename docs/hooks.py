"""MkDocs hooks: the pages' links into the repository, made to work on the built site, offline.

The pages link to code the way a repository browser reads them: relative paths from docs/,
``../tinygrad_llm/ops/nn.py#CrossEntropy``, with the symbol after the ``#``. A browser of the
repository opens the file (and ignores the anchor). On the site, each such link is rewritten:

- a module documented in docs/api/ goes to its API-reference entry, the symbol's anchor
  (``api/ops.md#tinygrad_llm.ops.nn.CrossEntropy``), where the docstring's equations and the
  source that computes them are shown;
- any other file (a test, an example, a benchmark), and a symbol the API reference leaves out
  (a private one, ``_accumulate``, or one in a module without an API page), get a generated
  page under source/ that shows the file with line numbers, the link pointing at the symbol's
  line;
- a folder goes to the API page that documents a module inside it.

tests/test_docs_site.py uses the same functions to check that every link resolves, so the
check needs no MkDocs. MkDocs is imported only inside the hooks it calls.
"""

import ast
import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

LINK = re.compile(r"(\[[^\]]*\]\()([^)\s]+)(\))")   # [text](target)
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.M)  # ::: tinygrad_llm.ops.nn
LANGUAGES = {".py": "python", ".md": "markdown", ".json": "json", ".h": "c", ".cu": "cuda",
             ".cuh": "cuda", ".sh": "bash", ".toml": "toml", ".txt": "text", ".tsv": "text"}


def api_pages():
    """{module name: docs-relative API page} from the ``::: module`` lines of docs/api/*.md."""
    pages = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for module in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            pages[module] = f"api/{page.name}"
    return pages


def module_name(repo_path):
    """tinygrad_llm/ops/nn.py -> tinygrad_llm.ops.nn (a package's __init__.py -> the package)."""
    parts = repo_path[:-len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def repo_target(page_uri, target):
    """(repo-relative path, anchor) of a link that leaves docs/, or None for any other link.

    page_uri is the page's path inside docs/ ("gpt.md", "api/ops.md").
    """
    if "://" in target or target.startswith(("#", "mailto:", "/")):
        return None
    path, _, anchor = target.partition("#")
    joined = posixpath.normpath(posixpath.join("docs", posixpath.dirname(page_uri), path))
    if joined == "docs" or joined.startswith("docs/") or joined.startswith(".."):
        return None
    return joined, anchor


def symbol_line(source, symbol):
    """The line where ``Name`` or ``Class.method`` is defined (or assigned) in source, or None."""
    body, found = ast.parse(source).body, None
    for part in symbol.split("."):
        found = None
        for node in body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name == part:
                    found = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == part for t in targets):
                    found = node
        if found is None:
            return None
        body = getattr(found, "body", [])
    return found.lineno


def site_uri(repo_path, anchor, apis):
    """Where a link to repo_path#anchor points on the site (a docs-relative URI with anchor)."""
    if (ROOT / repo_path).is_dir():
        prefix = repo_path.replace("/", ".")
        for module, page in apis.items():
            if module == prefix or module.startswith(prefix + "."):
                return page
        return None
    module = module_name(repo_path) if repo_path.endswith(".py") else None
    private = any(part.startswith("_") for part in anchor.split(".")) if anchor else False
    if module and anchor and (private or module not in apis):   # not in the API: its line
        line = symbol_line((ROOT / repo_path).read_text(encoding="utf-8"), anchor)
        return f"{source_page(repo_path)}#__codelineno-0-{line}"
    if module in apis:
        return f"{apis[module]}#{module}.{anchor}" if anchor else f"{apis[module]}#{module}"
    return source_page(repo_path)


def source_page(repo_path):
    return f"source/{repo_path}.md"


def repository_links(markdown_text):
    """Every link target in a page, fenced code blocks left out."""
    text = "".join(_outside_code(markdown_text)[::2])
    return [match.group(2) for match in LINK.finditer(text)]


def _outside_code(markdown_text):
    """The text split at fenced code blocks: even items are prose, odd items are the blocks."""
    return re.split(r"(^[ \t]*(?:```|~~~).*?^[ \t]*(?:```|~~~)[ \t]*$)", markdown_text,
                    flags=re.M | re.S)


def _source_markdown(repo_path):
    text = (ROOT / repo_path).read_text(encoding="utf-8", errors="replace")
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    language = LANGUAGES.get(Path(repo_path).suffix, "text")
    return (f"# {repo_path}\n\nThe file as it is in the repository, line by line.\n\n"
            f'{fence}{language} linenums="1"\n{text.rstrip()}\n{fence}\n')


def on_files(files, config):
    """Add a source page for every repository file a page links to that has no API entry."""
    from mkdocs.structure.files import File

    apis = api_pages()
    wanted = set()
    for file in files.documentation_pages():
        for target in repository_links(Path(file.abs_src_path).read_text(encoding="utf-8")):
            found = repo_target(file.src_uri, target)
            if found and (ROOT / found[0]).is_file():
                if site_uri(*found, apis).startswith("source/"):
                    wanted.add(found[0])
    for repo_path in sorted(wanted):
        files.append(File.generated(config, source_page(repo_path),
                                    content=_source_markdown(repo_path)))
    return files


def on_page_markdown(markdown, page, config, files):
    """Rewrite the links that leave docs/ to where they point on the site."""
    apis = api_pages()
    page_dir = posixpath.dirname(page.file.src_uri)

    def rewrite(match):
        found = repo_target(page.file.src_uri, match.group(2))
        if found is None or not (ROOT / found[0]).exists():
            return match.group(0)         # MkDocs reports it if it is broken
        uri = site_uri(*found, apis)
        if uri is None:
            return match.group(0)
        path, _, anchor = uri.partition("#")
        relative = posixpath.relpath(path, page_dir or ".")
        return f"{match.group(1)}{relative}{'#' + anchor if anchor else ''}{match.group(3)}"

    parts = _outside_code(markdown)
    return "".join(part if i % 2 else LINK.sub(rewrite, part) for i, part in enumerate(parts))


def on_page_content(html, page, config, files):
    """Let MkDocs check links to a source page's line anchors: it collects anchors from the
    Markdown, but a highlighted block's line anchors reach the page as raw HTML."""
    if page.file.src_uri.startswith("source/") and page.present_anchor_ids is not None:
        page.present_anchor_ids.update(re.findall(r'<a id="(__codelineno-[0-9-]+)"', html))
    return html


__all__ = ["api_pages", "module_name", "repo_target", "symbol_line", "site_uri",
           "source_page", "repository_links", "on_files", "on_page_markdown", "on_page_content"]
