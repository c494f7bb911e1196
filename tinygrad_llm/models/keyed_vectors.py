r"""Word vectors with gensim's lookup API: ``KeyedVectors``, what ``Word2Vec`` leaves in ``wv``.

Dimension letters: V words, D vector size, n words looked up at once.

A table of V vectors (V, D) with a vocabulary (``index_to_key``, most frequent first, and its
inverse ``key_to_index``): look words up, find the nearest words by cosine similarity
(``most_similar``, which also answers analogies b - a + c), evaluate on word-pair and analogy
files (models/word2vec_eval.py does the work), and read and write word2vec's text and binary
formats, which gensim and word2vec.c read too. docs/word2vec.md describes each.
"""

import os

import numpy as np

from tinygrad_llm.checkpoint import atomic_write
from tinygrad_llm.models.word2vec_eval import (
    evaluate_word_analogies,
    evaluate_word_pairs,
    unit_rows,
)

__all__ = ["KeyedVectors"]


class KeyedVectors:
    r"""Word vectors with gensim's lookup API.

    ``vectors`` (V, D) float32, ``index_to_key`` (list of V words, most frequent first),
    ``key_to_index`` (dict), ``counts`` (V,) corpus counts. ``kv[word]`` is a vector,
    ``kv[[w1, w2]]`` a (2, D) array; an unknown word raises KeyError naming it.
    """

    def __init__(self, vectors, index_to_key, counts=None):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(index_to_key):
            raise ValueError(f"KeyedVectors: vectors {vectors.shape} do not match "
                             f"{len(index_to_key)} keys")
        self.vectors = vectors                                                # (V, D)
        self.index_to_key = list(index_to_key)
        self.key_to_index = {k: i for i, k in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            raise ValueError("KeyedVectors: the keys are not unique")
        self.counts = (np.zeros(len(vectors), np.int64) if counts is None
                       else np.asarray(counts, dtype=np.int64))

    vector_size = property(lambda self: self.vectors.shape[1])

    def __len__(self):
        return len(self.index_to_key)

    def __contains__(self, key):
        return key in self.key_to_index

    def get_index(self, key):
        """The row of ``key``; KeyError naming it if it is not in the vocabulary."""
        try:
            return self.key_to_index[key]
        except (KeyError, TypeError):
            raise KeyError(f"Key {key!r} not present in vocabulary") from None

    def get_vector(self, key, norm=False):
        v = self.vectors[self.get_index(key)]
        return v / max(float(np.linalg.norm(v)), 1e-12) if norm else v

    def __getitem__(self, keys):
        if isinstance(keys, str):
            return self.get_vector(keys)
        return np.stack([self.get_vector(k) for k in keys])                  # (n, D)

    def get_normed_vectors(self):
        """Each vector divided by its length (V, D); recomputed after training changes them."""
        return unit_rows(self.vectors)                                       # (V, D)

    def similarity(self, w1, w2):
        """Cosine similarity of two words."""
        return float(np.dot(self.get_vector(w1, norm=True), self.get_vector(w2, norm=True)))

    def most_similar(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        r"""The ``topn`` words closest (by cosine) to mean(unit(positive)) - mean(unit(negative)).

        As gensim: ``query = unit(sum_p unit(v_p) - sum_n unit(v_n))`` (gensim takes the mean,
        which has the same direction), scores are cosines with every word, the input words are
        left out. ``positive`` / ``negative`` are words (or vectors), or lists of them. Returns
        a list of (word, cosine), best first.
        """
        positive = [positive] if isinstance(positive, (str, np.ndarray)) else list(positive or [])
        negative = [negative] if isinstance(negative, (str, np.ndarray)) else list(negative or [])
        if not positive and not negative:
            raise ValueError("most_similar: cannot compute similarity with no input: give at "
                             "least one word in positive (or negative)")
        parts, exclude = [], set()
        for weight, items in ((1.0, positive), (-1.0, negative)):
            for item in items:
                if isinstance(item, np.ndarray):
                    parts.append(weight * item / max(float(np.linalg.norm(item)), 1e-12))
                else:
                    parts.append(weight * self.get_vector(item, norm=True))
                    exclude.add(self.key_to_index[item])
        query = np.mean(parts, axis=0)                                        # (D,)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        limit = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        sims = self.get_normed_vectors()[:limit] @ query                      # (V,)
        if topn is None:
            return sims
        order = np.argsort(-sims, kind="stable")[:topn + len(exclude)]
        return [(self.index_to_key[i], float(sims[i])) for i in order
                if i not in exclude][:topn]

    def similar_by_vector(self, vector, topn=10):
        return self.most_similar(positive=[np.asarray(vector, dtype=np.float32)], topn=topn)

    # ---- evaluation in gensim's file formats (models/word2vec_eval.py) --------------------
    def evaluate_word_pairs(self, pairs, delimiter="\t", restrict_vocab=300000,
                            case_insensitive=True, dummy4unknown=False):
        """Correlation with human similarity scores: ``((pearson_r, p), (spearman_rho, p),
        oov_percent)``, as gensim (``word2vec_eval.evaluate_word_pairs``)."""
        return evaluate_word_pairs(self, pairs, delimiter, restrict_vocab, case_insensitive,
                                   dummy4unknown)

    def evaluate_word_analogies(self, analogies, restrict_vocab=300000, case_insensitive=True,
                                dummy4unknown=False):
        """Accuracy on "a is to b as c is to d" questions: ``(accuracy, sections)``, as gensim
        (``word2vec_eval.evaluate_word_analogies``)."""
        return evaluate_word_analogies(self, analogies, restrict_vocab, case_insensitive,
                                       dummy4unknown)

    # ---- files ---------------------------------------------------------------------------
    def save_word2vec_format(self, path, binary=False):
        """word2vec's format: a header line 'V D', then per word 'word v1 v2 ...' (text) or
        'word ' followed by D little-endian float32s and a newline (binary). gensim's
        ``KeyedVectors.load_word2vec_format`` reads both."""
        V, D = self.vectors.shape
        with open(path, "wb") as f:
            f.write(f"{V} {D}\n".encode())
            for key, row in zip(self.index_to_key, self.vectors):
                if binary:
                    f.write(key.encode() + b" " + row.astype("<f4").tobytes() + b"\n")
                else:
                    f.write((key + " " + " ".join(f"{x:.9g}" for x in row.tolist())
                             + "\n").encode())

    @classmethod
    def load_word2vec_format(cls, path, binary=False):
        """Read a file written by ``save_word2vec_format`` (or by gensim / word2vec.c)."""
        with open(path, "rb") as f:
            V, D = (int(x) for x in f.readline().split())
            keys, vectors = [], np.empty((V, D), np.float32)
            for i in range(V):
                if binary:
                    word = b""
                    while (ch := f.read(1)) != b" ":
                        if not ch:
                            raise ValueError(f"load_word2vec_format: {path} ends early")
                        word += ch
                    keys.append(word.decode().lstrip("\n"))
                    vectors[i] = np.frombuffer(f.read(4 * D), dtype="<f4")
                else:
                    parts = f.readline().decode().rstrip("\n").split(" ")
                    if len(parts) != D + 1:
                        raise ValueError(f"load_word2vec_format: line {i + 2} of {path} has "
                                         f"{len(parts) - 1} numbers, expected {D}")
                    keys.append(parts[0])
                    vectors[i] = np.array(parts[1:], dtype=np.float32)
        return cls(vectors, keys)

    def save(self, path):
        """Save to a .npz file (no pickle, written atomically): vectors, keys and counts."""
        with atomic_write(npz_path(path)) as f:
            np.savez(f, vectors=self.vectors, keys=np.array(self.index_to_key, dtype=str),
                     counts=self.counts)

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as z:
            return cls(z["vectors"], z["keys"].tolist(), z["counts"])

    def __repr__(self):
        return f"KeyedVectors({len(self)} words, vector_size={self.vector_size})"


def npz_path(path):
    """``path`` with ``.npz`` appended unless it has it, as ``np.savez`` names its files."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"
