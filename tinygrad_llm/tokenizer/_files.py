r"""Small helpers for reading and writing tokenizer files: atomic writes and clear errors.

Every file format here is plain text (JSON, or tiktoken's base64 lines); nothing is pickled, so
loading a file never runs code from it.
"""
import json
import os
from pathlib import Path

from tinygrad_llm.checkpoint import atomic_write

__all__ = ["TokenizerFileError", "write_text_atomic", "read_text", "read_json"]


class TokenizerFileError(ValueError):
    r"""A tokenizer file is missing, corrupt, truncated or of an unknown format or version.

    The message names the file and the problem. It is a ValueError, so ``except ValueError``
    catches it too.
    """

    def __init__(self, path, problem):
        super().__init__(f"{os.fspath(path)}: {problem}")
        self.path = os.fspath(path)
        self.problem = problem


def write_text_atomic(path, text):
    r"""Write ``text`` (UTF-8) to ``path`` so that readers see the old file or the new one (a
    temporary file renamed over the target: tinygrad_llm.checkpoint.atomic_write). A crash
    mid-write never leaves a truncated tokenizer."""
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def read_text(path):
    r"""Read a UTF-8 text file, turning I/O and decoding failures into ``TokenizerFileError``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenizerFileError(path, "no such file") from None
    except UnicodeDecodeError as e:
        raise TokenizerFileError(path, f"not UTF-8 text (corrupt?): {e}") from None
    except OSError as e:
        raise TokenizerFileError(path, f"cannot read: {e}") from None


def read_json(path, expect_format=None, expect_version=None):
    r"""Parse a JSON file; check its ``format`` tag and ``version`` when asked to."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TokenizerFileError(path, f"not valid JSON (truncated or corrupt?): {e}") from None
    if expect_format is not None:
        if not isinstance(data, dict) or data.get("format") != expect_format:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise TokenizerFileError(path, f"not a {expect_format} file (format is {found!r})")
        if data.get("version") != expect_version:
            raise TokenizerFileError(
                path, f"unsupported format version {data.get('version')!r} "
                f"(this code reads version {expect_version})")
    return data
