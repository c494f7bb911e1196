"""Public tools for testing ops: ``gradcheck`` and hypothesis ``strategies`` (docs/gradcheck.md)."""

from tinygrad_llm.testing.gradcheck import GradcheckError, gradcheck, numerical_grad

__all__ = ["gradcheck", "GradcheckError", "numerical_grad"]
