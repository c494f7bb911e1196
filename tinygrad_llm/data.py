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


# ---- language-model data (the GPT) -------------------------------------------------------------
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


# ---- masked-language-model inputs (BERT) -----------------------------------------------------
def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15, ignore_index=-100):
    r"""BERT's masking for masked-language-model training: choose tokens, hide most of them.

    Each token that is not a special one ([CLS], [SEP], [PAD], ...) is chosen with probability
    ``mask_prob`` (15%), independently (Hugging Face's DataCollatorForLanguageModeling). A chosen
    token is then

    * replaced by [MASK] (``mask_id``) with probability 0.8,
    * replaced by a random token with probability 0.1 (uniform over the ids below
      ``vocab_size`` that are not special),
    * left unchanged with probability 0.1.

    The loss is taken at the chosen positions only: ``labels`` holds their original id and
    ``ignore_index`` everywhere else. Why not always [MASK]: [MASK] never occurs when the model is
    fine-tuned, so a model that only had to read [MASK] positions would learn nothing useful
    about the representation of real tokens; the random and unchanged 10% make it keep a good
    representation of every input token, since any of them might be asked about.

    ``ids`` (B, T) integers, ``rng`` a NumPy Generator. Returns int64 arrays ``(inputs,
    labels)``, both (B, T); ``ids`` is not modified.
    """
    import numpy as np  # noqa: PLC0415 - keeps this module's import light

    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"mask_tokens: ids must be integers, got {ids.dtype}")
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_tokens: mask_prob must be in [0, 1], got {mask_prob}")
    special = np.isin(ids, list(special_ids))                              # (B, T)
    normal = np.setdiff1d(np.arange(vocab_size), list(special_ids))       # ids to draw from
    if normal.size == 0:
        raise ValueError("mask_tokens: every id of the vocabulary is special")
    chosen = (rng.random(ids.shape) < mask_prob) & ~special                # (B, T)
    labels = np.where(chosen, ids, ignore_index).astype(np.int64)          # (B, T)
    action = rng.random(ids.shape)                                         # (B, T)
    inputs = ids.astype(np.int64)                                          # (B, T) copy
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)
    inputs[to_mask] = mask_id
    inputs[to_random] = rng.choice(normal, size=int(to_random.sum()))
    return inputs, labels                                # the other chosen 10%: left unchanged


__all__ += ["mask_tokens"]


# ---- sequence padding, Keras semantics (the RNNs) --------------------------------------------
def pad_sequences(seqs, maxlen=None, padding="pre", truncating="pre", value=0, dtype="int64"):
    r"""Make sequences of different lengths into one (N, maxlen) array, as Keras's
    ``pad_sequences`` does (its semantics, with int64 as the default dtype).

    ``maxlen`` defaults to the longest sequence. A longer sequence is cut to its last ``maxlen``
    items (``truncating='pre'``) or its first (``'post'``); a shorter one is filled with
    ``value`` before (``padding='pre'``, the default: the last real item sits at the last step,
    right where an RNN's final state is read) or after (``'post'``). An empty sequence becomes a
    row of ``value``. Items may themselves be arrays of one common shape: the result is then
    (N, maxlen, *item_shape).

    Example::

        pad_sequences([[1, 2, 3], [4, 5], [6]], maxlen=2)
        # [[2, 3], [4, 5], [0, 6]]      pre-truncating keeps the end, pre-padding fills the front
        pad_sequences([[1, 2, 3], [6]], maxlen=2, padding="post", truncating="post")
        # [[1, 2], [6, 0]]
    """
    import numpy as np  # noqa: PLC0415 - keeps this module's import light

    for name, arg in (("padding", padding), ("truncating", truncating)):
        if arg not in ("pre", "post"):
            raise ValueError(f"pad_sequences: {name} must be 'pre' or 'post', got {arg!r}")
    if not hasattr(seqs, "__len__"):
        raise TypeError(f"pad_sequences: seqs must be a list of sequences, got "
                        f"{type(seqs).__name__}")
    arrays = []
    for i, s in enumerate(seqs):
        if not hasattr(s, "__len__"):
            raise TypeError(f"pad_sequences: seqs[{i}] must be a sequence (list or array), got "
                            f"{type(s).__name__} {s!r}")
        arrays.append(np.asarray(s))
    if maxlen is None:
        maxlen = max((len(a) for a in arrays), default=0)
    if not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be None or an int >= 0, got {maxlen!r}")
    item_shape = next((a.shape[1:] for a in arrays if len(a)), ())
    out = np.full((len(arrays), maxlen, *item_shape), value, dtype=dtype)  # (N, maxlen, ...)
    for i, a in enumerate(arrays):
        if not len(a) or not maxlen:
            continue
        if a.shape[1:] != item_shape:
            raise ValueError(f"pad_sequences: seqs[{i}] has items of shape {a.shape[1:]}, "
                             f"but earlier sequences have {item_shape}")
        kept = a[-maxlen:] if truncating == "pre" else a[:maxlen]
        if padding == "pre":
            out[i, maxlen - len(kept):] = kept
        else:
            out[i, :len(kept)] = kept
    return out


def load_movie_reviews(path=None):
    r"""The movie-review sentences (Hutto & Gilbert 2014; provenance in
    tinygrad_llm/datasets/README.md) as a list of (id, sentiment, text), sentiment a float in
    [-4, 4].

    The file is tab-separated with the header ``id, sentiment, text``. A missing file raises
    FileNotFoundError; a malformed line raises ValueError naming the file and the line number.
    """
    def parse(fields):
        if len(fields) != 3:
            raise ValueError(f"expected 3 tab-separated fields, got {len(fields)}")
        sentiment = float(fields[1])
        if not -4 <= sentiment <= 4:
            raise ValueError(f"sentiment {sentiment} is outside [-4, 4]")
        return int(fields[0]), sentiment, fields[2]

    return _read_tsv("load_movie_reviews", path, "movie_review_snippets.tsv",
                     ["id", "sentiment", "text"], parse)


def _read_tsv(op, path, shipped, header, parse):
    r"""The rows of a tab-separated file with a header line: ``parse(fields)`` for each non-blank
    line after the header. ``path`` None means the shipped file ``shipped``. A missing file
    raises FileNotFoundError; a wrong header, or a line that ``parse`` refuses with ValueError,
    raises ValueError naming ``op``, the file and the line number."""
    path = Path(path) if path is not None else dataset_path(shipped)
    if not path.exists():
        raise FileNotFoundError(f"{op}: no data file at {path} (the package ships it as "
                                f"tinygrad_llm/datasets/{shipped})")
    rows = []
    with open(path, encoding="utf-8") as f:
        got = f.readline().rstrip("\n").split("\t")
        if got != header:
            raise ValueError(f"{op}: {path}, line 1: expected the header "
                             f"{'<TAB>'.join(header)!r}, got {got!r}")
        for lineno, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            try:
                rows.append(parse(line.split("\t")))
            except ValueError as e:
                raise ValueError(f"{op}: {path}, line {lineno}: {e}: {line[:80]!r}") from None
    return rows


def movie_review_splits(rows=None, seed=0, limit=None, label_dtype="int64"):
    r"""The movie reviews as a binary sentiment task cut 80/10/10: a dict with keys ``train``,
    ``val``, ``test``, each ``(texts, labels)``, texts a list of N sentences and labels an (N,)
    array of ``label_dtype``, 1 where the sentiment is > 0 and 0 where it is < 0.

    ``rows`` are load_movie_reviews()'s (None: the shipped file). The sentences with sentiment 0
    are dropped, the rest shuffled by a Generator seeded with ``seed``, kept to the first
    ``limit`` when it is given, then cut into the first 80%, the next 10% and the rest.
    """
    import numpy as np  # noqa: PLC0415 - keeps this module's import light

    if rows is None:
        rows = load_movie_reviews()
    rows = [(text, int(score > 0)) for _, score, text in rows if score != 0]
    order = np.random.default_rng(seed).permutation(len(rows))
    rows = [rows[i] for i in order]
    if limit:
        rows = rows[:limit]
    n_train, n_val = int(0.8 * len(rows)), int(0.1 * len(rows))
    cuts = {"train": rows[:n_train], "val": rows[n_train:n_train + n_val],
            "test": rows[n_train + n_val:]}
    return {k: ([t for t, _ in v], np.array([y for _, y in v], dtype=label_dtype))
            for k, v in cuts.items()}


__all__ += ["pad_sequences", "load_movie_reviews", "movie_review_splits"]


# ---- translation pairs (the encoder-decoder Transformer) ---------------------------------------
SPLIT_SEED = 20150901       # fixed for good: the split must never move with a training seed


def load_translation_pairs(path=None):
    r"""The German-English sentence pairs from the Ding dictionary (provenance and the GPL-2.0+
    licence in tinygrad_llm/datasets/README.md) as a list of (german, english) strings, in file
    order.

    The file is tab-separated with the header ``de, en``. A missing file raises
    FileNotFoundError; a malformed line raises ValueError naming the file and the line number.
    """
    def parse(fields):
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise ValueError("expected two non-empty tab-separated fields")
        return fields[0], fields[1]

    return _read_tsv("load_translation_pairs", path, "de_en_sentences.tsv", ["de", "en"], parse)


def translation_splits(pairs=None, fractions=(0.9, 0.05, 0.05)):
    r"""A fixed train / validation / test split of the translation pairs: a dict with keys
    ``train``, ``val``, ``test``, each a list of (german, english).

    The split shuffles the *distinct German sentences* with a Generator seeded by the constant
    SPLIT_SEED (never by a training seed), then cuts that order at the given fractions. Pairs
    that share a German sentence (a few sentences have two English translations) land in the
    same split, so no test source was seen in training. Keep the test split out of all tuning:
    choose settings on ``val`` and report ``test`` once.
    """
    import numpy as np  # noqa: PLC0415 - keeps this module's import light

    if pairs is None:
        pairs = load_translation_pairs()
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"translation_splits: fractions must be three numbers >= 0 summing "
                         f"to 1, got {fractions!r}")
    sources = sorted({de for de, _ in pairs})           # sorted: independent of file order
    order = np.random.default_rng(SPLIT_SEED).permutation(len(sources))
    n_train = int(round(fractions[0] * len(sources)))
    n_val = int(round(fractions[1] * len(sources)))
    part = {}
    for rank, i in enumerate(order):
        part[sources[i]] = ("train" if rank < n_train else
                            "val" if rank < n_train + n_val else "test")
    splits = {"train": [], "val": [], "test": []}
    for de, en in pairs:
        splits[part[de]].append((de, en))
    return splits


__all__ += ["load_translation_pairs", "translation_splits"]
