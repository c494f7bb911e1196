r"""Sentence embeddings from a BERT, as sentence-transformers computes them (all-MiniLM-L6-v2).

Dimension letters: N sentences, B batch, T tokens, H hidden size.

    ids, m = tokenize(sentences, truncation at max_seq_length)          (B, T), m 1 / 0 padding
    x = BertModel(ids, m).last_hidden_state                             (B, T, H)
    e = sum_t m[:, t] x[:, t] / max(sum_t m[:, t], 1e-9)                mean over real tokens (B, H)
    e = e / max(||e||_2, 1e-12)                                         unit length (B, H)

so the cosine similarity of two sentences is the dot product of their embeddings. The mean
pooling and the normalisation are Tensor ops (differentiable: ``embed`` keeps the graph for
training); ``encode`` runs them in batches under no_grad and returns NumPy float32 (N, H).

``SentenceEncoder.from_pretrained(dir)`` reads a sentence-transformers folder: the BERT
(``config.json``, ``model.safetensors``), its WordPiece vocabulary (``vocab.txt``,
``tokenizer_config.json``), ``sentence_bert_config.json`` (``max_seq_length``: 256 for
all-MiniLM-L6-v2, though its BERT has 512 positions: longer sentences are cut at 256 tokens,
[CLS] and [SEP] included), ``1_Pooling/config.json`` (only mean pooling is supported) and
``modules.json`` (normalise when it lists a Normalize module). A plain BERT folder works too:
mean pooling, normalised, truncated at max_position_embeddings.
"""

import json
from pathlib import Path

import numpy as np

from tinygrad_llm.models.bert import BertModel
from tinygrad_llm.tensor import Tensor, no_grad
from tinygrad_llm.tokenizer.wordpiece import BertTokenizer

__all__ = ["SentenceEncoder", "mean_pooling", "l2_normalize"]


def mean_pooling(last_hidden_state, attention_mask):
    r"""e = sum_t m_t x_t / max(sum_t m_t, 1e-9): x (B, T, H), attention_mask m (B, T) -> (B, H).

    The mask's sum is a constant, so backward is dx_t = m_t de / max(sum_t m_t, 1e-9)."""
    x = last_hidden_state
    m = np.asarray(attention_mask).astype(x.dtype)                          # (B, T)
    counts = np.maximum(m.sum(axis=1, keepdims=True), 1e-9).astype(x.dtype)  # (B, 1)
    summed = (x * Tensor(m[:, :, None], device=x.device)).sum(axis=1)       # (B, H)
    return summed / Tensor(counts, device=x.device)                         # (B, H)


def l2_normalize(e, eps=1e-12):
    r"""e / max(||e||_2, eps) row by row (torch.nn.functional.normalize): (B, H) -> (B, H)."""
    norm = (e * e).sum(axis=-1, keepdims=True).sqrt()                       # (B, 1)
    return e / norm.clip(min=eps)                                           # (B, H)


class SentenceEncoder:
    r"""A BERT, its tokenizer, mean pooling and L2 normalisation: sentences -> unit vectors.

    ``SentenceEncoder(model, tokenizer, max_seq_length=None, normalize=True)``: ``model`` a
    BertModel; ``tokenizer`` a BertTokenizer (tinygrad_llm.tokenizer), or anything called as
    Hugging Face's: ``tokenizer(texts, padding=True, truncation=True, max_length=...,
    return_tensors="np")`` -> dict of (B, T) int arrays ``input_ids``, ``attention_mask``,
    ``token_type_ids``; ``max_seq_length`` the truncation length (default: the model's
    max_position_embeddings).
    """

    def __init__(self, model, tokenizer, max_seq_length=None, normalize=True):
        limit = model.config.max_position_embeddings
        max_seq_length = limit if max_seq_length is None else int(max_seq_length)
        if not 2 <= max_seq_length <= limit:
            raise ValueError(f"SentenceEncoder: max_seq_length must be in [2, {limit}] (the "
                             f"model's max_position_embeddings), got {max_seq_length}")
        self.model, self.tokenizer = model, tokenizer
        self.max_seq_length, self.normalize = max_seq_length, normalize

    @classmethod
    def from_pretrained(cls, path, dtype="float32", device=None):
        r"""The encoder in a sentence-transformers (or plain BERT) folder; see the module
        docstring for the files it reads."""
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"SentenceEncoder.from_pretrained: no folder {folder}")
        model = BertModel.from_pretrained(folder, dtype=dtype, device=device)
        tokenizer = BertTokenizer.from_pretrained(folder)
        st_config = _read_json(folder / "sentence_bert_config.json", {})
        pooling = _read_json(folder / "1_Pooling" / "config.json", {})
        other = [k for k, v in pooling.items()
                 if k.startswith("pooling_mode_") and v and k != "pooling_mode_mean_tokens"]
        if other:
            raise ValueError(f"{folder / '1_Pooling' / 'config.json'}: only mean pooling is "
                             f"supported, the file asks for {', '.join(other)}")
        modules = _read_json(folder / "modules.json", None)
        normalize = modules is None or any(str(m.get("type", "")).endswith("Normalize")
                                           for m in modules)
        return cls(model, tokenizer, st_config.get("max_seq_length"), normalize)

    def embed(self, batch):
        r"""The embeddings (B, H) Tensor of a tokenized batch (a dict as the tokenizer returns
        it), with the graph when gradients are on (to fine-tune the encoder)."""
        out = self.model(batch["input_ids"], batch["attention_mask"],
                         batch.get("token_type_ids"))
        e = mean_pooling(out.last_hidden_state, batch["attention_mask"])    # (B, H)
        return l2_normalize(e) if self.normalize else e                     # (B, H)

    def encode(self, sentences, batch_size=32, show_progress_bar=False):
        r"""Embeddings of ``sentences`` (a list of str): NumPy float32 (N, H), row i for
        sentence i; one str gives one (H,) vector. Runs in eval mode under no_grad, in batches
        of ``batch_size`` sentences sorted by length (less padding), as sentence-transformers
        does; the model's mode is restored."""
        single = isinstance(sentences, str)
        sentences = [sentences] if single else list(sentences)
        if not all(isinstance(s, str) for s in sentences):
            raise TypeError("SentenceEncoder.encode: sentences must be strings")
        if batch_size < 1:
            raise ValueError(f"SentenceEncoder.encode: batch_size must be >= 1, got {batch_size}")
        hidden = self.model.config.hidden_size
        out = np.zeros((len(sentences), hidden), dtype=np.float32)          # (N, H)
        order = np.argsort([-len(s) for s in sentences], kind="stable")     # longest first
        starts = range(0, len(order), batch_size)
        if show_progress_bar:
            try:
                from tqdm import tqdm
                starts = tqdm(starts, desc="encode", leave=False)
            except ImportError:
                pass
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                for i in starts:
                    idx = order[i:i + batch_size]
                    batch = self.tokenizer([sentences[j] for j in idx], padding=True,
                                           truncation=True, max_length=self.max_seq_length,
                                           return_tensors="np")
                    out[idx] = self.embed(batch).numpy()                    # (B, H)
        finally:
            self.model.train(was_training)
        return out[0] if single else out


def _read_json(path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file: {e}") from None
