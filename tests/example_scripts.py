"""Import a script from examples/ as a module, so tests can call its functions and ``main``."""

import importlib.util
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name, module_name=None):
    """examples/<name>.py as a fresh module (named ``module_name``, default ``name``). The
    examples folder is on sys.path while it runs, so a script may import its neighbours."""
    spec = importlib.util.spec_from_file_location(module_name or name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module
