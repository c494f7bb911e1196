r"""Data shipped with the package, and batching.

The data files live in tinygrad_llm/datasets/ (provenance in its README.md), so every example runs
offline on a fresh machine.
"""

from pathlib import Path

DATASETS = Path(__file__).resolve().parent / "datasets"

__all__ = ["DATASETS", "dataset_path"]


def dataset_path(name):
    """The path of a file shipped in tinygrad_llm/datasets/."""
    path = DATASETS / name
    if not path.exists():
        raise FileNotFoundError(f"dataset_path: no shipped data file {name!r} in {DATASETS}")
    return path


# ---- language-model data (the GPT issue) -------------------------------------------------------


# ---- sequence padding, Keras semantics (the RNN issue) -----------------------------------------
