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
def tiny_shakespeare():
    r"""The Tiny Shakespeare text (1,115,394 characters), shipped in the package (provenance in
    tinygrad_llm/datasets/README.md)."""
    return dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")


def get_batch(ids, batch_size, block_size, rng, device=None):
    r"""A batch of random windows of a token sequence, for next-token prediction (nanoGPT's).

    With B = batch_size, T = block_size and offsets o_b drawn uniformly from
    0 .. len(ids) - T - 1 by ``rng`` (a NumPy Generator):

        x[b, t] = ids[o_b + t],   y[b, t] = ids[o_b + t + 1]     (B, T) each

    so y is x shifted one token left: at every position the target is the next token.
    Returns int64 Tensors (x, y) on ``device``.
    """
    import numpy as np  # noqa: PLC0415 - keeps this module's import light

    from tinygrad_llm.tensor import Tensor  # noqa: PLC0415

    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"get_batch: ids must be a 1-D sequence of token ids, got shape "
                         f"{ids.shape}")
    if len(ids) <= block_size:
        raise ValueError(f"get_batch: block_size {block_size} needs more than {block_size} "
                         f"tokens, but the data has only {len(ids)}")
    offsets = rng.integers(0, len(ids) - block_size, size=batch_size)      # (B,)
    windows = np.lib.stride_tricks.sliding_window_view(ids, block_size + 1)  # (N, T+1) view
    xy = windows[offsets].astype(np.int64)                                 # (B, T+1) copy
    return Tensor(xy[:, :-1], device=device), Tensor(xy[:, 1:], device=device)  # (B, T) each


__all__ += ["tiny_shakespeare", "get_batch"]


# ---- sequence padding, Keras semantics (the RNN issue) -----------------------------------------
