"""Public tools for testing ops: ``gradcheck``, ``module_gradcheck`` (a whole Module's
parameters) and hypothesis ``strategies`` (docs/gradcheck.md).

``strategies`` needs hypothesis, a dev dependency, so it is imported on first use
(``from tinygrad_llm.testing import strategies``) rather than here: gradcheck alone needs only
NumPy.
"""

from tinygrad_llm.testing.gradcheck import (
    GradcheckError,
    gradcheck,
    module_gradcheck,
    numerical_grad,
)

__all__ = ["gradcheck", "module_gradcheck", "GradcheckError", "numerical_grad", "strategies"]


def __getattr__(name):
    # PEP 562: `tinygrad_llm.testing.strategies` imports the submodule (and hypothesis) only
    # when someone asks for it.
    if name == "strategies":
        import importlib
        return importlib.import_module("tinygrad_llm.testing.strategies")
    raise AttributeError(f"module 'tinygrad_llm.testing' has no attribute {name!r}")
