r"""Saving without pickle, and without ever leaving a half-written file.

* ``atomic_write(path)``: a file object for a temporary file beside ``path``; when the ``with``
  block ends it is flushed to disk and renamed over ``path`` (``os.replace``, atomic on POSIX
  and Windows). If anything fails, the temporary file is removed and ``path`` is untouched:
  readers, and a run that crashes mid-save, see the old file or the new one, never a mix.
* ``save_npz(path, arrays, meta)`` / ``load_npz(path)``: named NumPy arrays in one ``.npz``,
  with a JSON-able ``meta`` dict riding along as the uint8 array ``meta_json``. Loading uses
  ``allow_pickle=False``, so a file can carry data but never code.

* ``save_safetensors(path, arrays, metadata)`` / ``load_safetensors(path)``: named arrays in
  the safetensors format (an 8-byte header length, a JSON header of names, dtypes, shapes and
  byte offsets, then the raw bytes), the format Hugging Face checkpoints use. It holds no code by
  construction. Written through ``atomic_write``; read with the ``safetensors`` package's NumPy
  API, so torch is never needed.

The training examples save their checkpoints with these; the tokenizers write their JSON through
``atomic_write``; ``from_pretrained``/``save_pretrained`` read and write ``model.safetensors``.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "save_npz", "load_npz", "load_checkpoint", "CheckpointError",
           "save_safetensors", "load_safetensors", "optimizer_to_arrays", "optimizer_from_arrays"]


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """``with atomic_write(path) as f: ...`` writes ``path`` all at once or not at all."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                     # mkstemp makes it private; a normal file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(path, arrays, meta):
    """Write ``arrays`` ({name: ndarray}) and ``meta`` (a JSON-able dict) to ``path`` atomically."""
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays, meta_json=blob)


def load_npz(path):
    """``(meta, arrays)`` from a file written by ``save_npz``; never unpickles.

    A missing file raises OSError; a file that is not such an .npz raises what NumPy, zipfile or
    json raise for it (ValueError, KeyError, zipfile.BadZipFile): callers turn those into a
    message for the user.
    """
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta_json").tobytes().decode("utf-8"))
    return meta, arrays


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not of the kind asked for; the message says
    which, for the user."""


def load_checkpoint(path, format, version, name):
    r"""``(meta, arrays)`` of a training checkpoint written by ``save_npz`` with
    ``meta["format"] == format`` and ``meta["version"] == version``.

    ``name`` is the program the checkpoint belongs to, for the messages. A missing file, an
    unreadable one (corrupt or truncated), one of another program or of another version raises
    ``CheckpointError`` saying which.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path} (train first, or check --out-dir)")
    try:
        meta, arrays = load_npz(path)
    except Exception as e:  # BadZipFile, ValueError, KeyError, OSError, JSON errors: all corrupt
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): "
                              f"{type(e).__name__}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != format:
        raise CheckpointError(f"{path} is not a {name} checkpoint")
    if meta.get("version") != version:
        raise CheckpointError(f"{path} has checkpoint version {meta.get('version')}; this "
                              f"script reads version {version}")
    return meta, arrays



def save_safetensors(path, arrays, metadata=None):
    r"""Write ``arrays`` ({name: ndarray}) to ``path`` in the safetensors format, atomically.

    ``metadata`` is an optional {str: str} dict stored in the header (Hugging Face writes
    ``{"format": "pt"}``; transformers accepts "pt", "np", "tf" and "flax"). Arrays are written
    C-contiguous in their own dtype; a CuPy array must be moved to NumPy first.
    """
    from safetensors.numpy import save  # runtime dependency, imported when used

    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise TypeError(f"save_safetensors: {name!r} is a {type(a).__name__}, not a NumPy "
                            f"array (move it to the CPU first)")
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str)
                                        for k, v in metadata.items()):
        raise TypeError("save_safetensors: metadata must map str to str")
    blob = save({k: np.ascontiguousarray(a) for k, a in arrays.items()}, metadata=metadata)
    with atomic_write(path) as f:
        f.write(blob)


def load_safetensors(path):
    r"""``(arrays, metadata)`` of a safetensors file: {name: ndarray} in the file's order, and its
    header's metadata dict ({} when there is none).

    A missing file raises ``CheckpointError`` naming it; so does a file that is not safetensors
    (truncated, corrupt, or another format).
    """
    from safetensors import safe_open  # runtime dependency, imported when used

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no safetensors file at {path}")
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # SafetensorError, OSError, header JSON errors: all "not readable"
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or "
                              f"truncated?): {type(e).__name__}: {e}") from None
    return arrays, metadata


def optimizer_to_arrays(state):
    r"""Split an optimizer's ``state_dict()`` into ``(arrays, meta)`` for ``save_npz``: every
    NumPy array as ``optim.<index>.<name>``, and the rest (step counts, the param groups) as a
    JSON-able dict. ``optimizer_from_arrays`` puts them back together."""
    arrays, scalars = {}, {}
    for i, s in state["state"].items():
        for k, v in s.items():
            if isinstance(v, np.ndarray):
                arrays[f"optim.{i}.{k}"] = v
            else:
                scalars.setdefault(str(i), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in state["param_groups"]]
    return arrays, {"param_groups": groups, "scalars": scalars}


def optimizer_from_arrays(meta, arrays):
    r"""The optimizer ``state_dict`` that ``optimizer_to_arrays`` split into ``meta`` and the
    ``optim.*`` entries of ``arrays`` (other entries are ignored)."""
    state = {}
    for k, v in arrays.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    for i, s in meta["scalars"].items():
        state.setdefault(int(i), {}).update(s)
    return {"state": state, "param_groups": meta["param_groups"]}
