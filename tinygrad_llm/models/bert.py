r"""BERT: a bidirectional transformer encoder (Devlin et al., 2019) with Hugging Face's names.

Dimension letters: B batch, T time (<= max_position_embeddings), H hidden_size, nh heads,
hs = H / nh head size, I intermediate_size, V vocab_size, L layers, K num_labels.

    x = LN_e(word[input_ids] + position[0..T-1] + token_type[token_type_ids])    (B, T, H)
    for each layer l = 1..L  (post-LayerNorm: the norm comes after each residual sum):
        a = LN_1(x + attn(x, mask) W_o^T + b_o)                                  (B, T, H)
        x = LN_2(a + gelu(a W_i^T + b_i) W_out^T + b_out)        H -> I -> H     (B, T, H)
    last_hidden_state = x                                                        (B, T, H)
    pooler_output = tanh(x[:, 0] W_p^T + b_p)     the [CLS] position             (B, H)

attn is multi-head self-attention over *all* positions (no causal mask), with the additive
padding mask mask[b, j] = 0 for a real token and finfo(dtype).min for padding, added to every
score row as a (B, 1, 1, T) bias: softmax(q k^T / sqrt(hs) + mask) v. It runs as the fused
tinygrad_llm.ops.attention.Attention. gelu is the exact x Phi(x) (Phi with erf), the LayerNorms
take eps = layer_norm_eps (1e-12 for BERT), and dropout follows the embeddings, the attention
weights and both sub-blocks, in training only. Architecture, the pre-training objective and the
porting traps: docs/bert.md.

Heads:

    BertForMaskedLM:  logits = LN_t(gelu(x W_t^T + b_t)) word^T + b_mlm     (B, T, V), the
                      decoder tied to the word embeddings; loss = cross-entropy at the positions
                      whose label is not -100.
    BertForSequenceClassification:  logits = dropout(pooler_output) W_c^T + b_c   (B, K); loss
                      as Hugging Face's: MSE for K = 1 (regression), cross-entropy for integer
                      labels, binary cross-entropy with logits for float labels (multi-label).

Parameter names are Hugging Face transformers' (``BertModel`` without a prefix; the heads keep
the encoder under ``bert.``), so ``model.safetensors`` files move both ways:

    embeddings.word_embeddings.weight (V, H)          embeddings.position_embeddings.weight (P, H)
    embeddings.token_type_embeddings.weight (2, H)    embeddings.LayerNorm.{weight,bias} (H,)
    encoder.layer.{l}.attention.self.{query,key,value}.{weight (H, H), bias (H,)}
    encoder.layer.{l}.attention.output.dense.{weight (H, H), bias}  .attention.output.LayerNorm
    encoder.layer.{l}.intermediate.dense.{weight (I, H), bias (I,)}
    encoder.layer.{l}.output.dense.{weight (H, I), bias (H,)}       .output.LayerNorm
    pooler.dense.{weight (H, H), bias (H,)}
    cls.predictions.transform.dense.{weight (H, H), bias}  cls.predictions.transform.LayerNorm
    cls.predictions.bias (V,)  (= cls.predictions.decoder.bias; decoder.weight = word_embeddings)
    classifier.{weight (K, H), bias (K,)}

Position ids are 0..T-1 for every row; a sequence longer than max_position_embeddings raises
ValueError (SentenceEncoder truncates before that). The word embedding's padding row gets a
gradient like any other row (torch's padding_idx would zero it; with the padding mask and the
-100 labels no loss reaches it anyway).
"""

import json
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from tinygrad_llm import backend
from tinygrad_llm.checkpoint import atomic_write, load_safetensors, save_safetensors
from tinygrad_llm.nn import functional as F
from tinygrad_llm.nn import init
from tinygrad_llm.nn.layers import Dropout, Embedding, LayerNorm, Linear
from tinygrad_llm.nn.module import Module, ModuleList, Parameter
from tinygrad_llm.ops import attention as _attention
from tinygrad_llm.tensor import Tensor

__all__ = ["BertConfig", "BertModel", "BertForMaskedLM", "BertForSequenceClassification",
           "BertModelOutput", "BertHeadOutput", "extended_attention_mask"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Buffers, not parameters, that some checkpoints carry (the position ids 0..P-1): skipped.
_BUFFERS = ("embeddings.position_ids",)
_ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh",
                "gelu_fast": "tanh", "relu": None}


@dataclass
class BertConfig:
    r"""The sizes of a BERT, with the names of Hugging Face's ``config.json``.

    ``from_dict``/``from_json_file`` read such a file (keys this model does not use are
    ignored; a ``model_type`` other than "bert", an unknown activation or a relative position
    embedding raise ValueError); ``to_dict``/``to_json_file`` write one transformers reads.
    ``hidden_act`` "gelu" is the exact erf GELU; "gelu_new" and "gelu_pytorch_tanh" the tanh
    approximation. ``num_labels`` (from ``id2label`` in the file) sizes the classifier.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    classifier_dropout: float = None
    num_labels: int = 2
    problem_type: str = None
    id2label: dict = field(default=None, repr=False)

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size",
                     "num_labels"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"BertConfig: {name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BertConfig: hidden_size={self.hidden_size} must be divisible by "
                             f"num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"BertConfig: hidden_act {self.hidden_act!r} is not supported "
                             f"(use one of {sorted(_ACTIVATIONS)})")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"BertConfig: {name} must be in [0, 1), got "
                                 f"{getattr(self, name)}")
        if self.problem_type not in (None, "regression", "single_label_classification",
                                     "multi_label_classification"):
            raise ValueError(f"BertConfig: unknown problem_type {self.problem_type!r}")

    @classmethod
    def from_dict(cls, d, source="config"):
        r"""A BertConfig from a Hugging Face config dict; ``source`` names it in errors."""
        if d.get("model_type", "bert") != "bert":
            raise ValueError(f"{source}: model_type is {d['model_type']!r}, not 'bert': this "
                             f"is not a BERT checkpoint")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{source}: position_embedding_type "
                             f"{d['position_embedding_type']!r} is not supported (only "
                             f"'absolute')")
        if d.get("is_decoder") or d.get("add_cross_attention"):
            raise ValueError(f"{source}: a BERT decoder (is_decoder, add_cross_attention) is "
                             f"not supported")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if d.get("id2label"):
            kwargs["id2label"] = {str(k): v for k, v in d["id2label"].items()}
            kwargs["num_labels"] = len(d["id2label"])
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from None

    @classmethod
    def from_json_file(cls, path):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"BertConfig: no config file at {path}")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a JSON config file: {e}") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path}: a config file holds a JSON object")
        return cls.from_dict(d, source=str(path))

    def to_dict(self):
        r"""A Hugging Face config dict (``model_type`` "bert", labels as ``id2label``)."""
        d = asdict(self)
        d.pop("num_labels")
        id2label = self.id2label or {str(i): f"LABEL_{i}" for i in range(self.num_labels)}
        d["id2label"] = id2label
        d["label2id"] = {v: int(k) for k, v in id2label.items()}
        d["model_type"] = "bert"
        d["position_embedding_type"] = "absolute"
        return {k: v for k, v in d.items() if v is not None}

    def to_json_file(self, path, architecture=None):
        d = self.to_dict()
        if architecture:
            d["architectures"] = [architecture]
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(d, indent=2, sort_keys=True) + "\n")


@dataclass
class BertModelOutput:
    r"""What BertModel returns: ``last_hidden_state`` (B, T, H) and ``pooler_output`` (B, H)
    (None for a model without its pooler)."""

    last_hidden_state: Tensor
    pooler_output: Tensor = None


@dataclass
class BertHeadOutput:
    r"""What the heads return: ``logits`` ((B, T, V) or (B, K)) and ``loss`` (a scalar, or None
    without labels)."""

    logits: Tensor
    loss: Tensor = None


def extended_attention_mask(attention_mask, dtype, xp=np):
    r"""attention_mask (B, T) of 1 (a token) and 0 (padding) -> the additive bias (B, 1, 1, T):
    0 for a token, finfo(dtype).min for padding, as Hugging Face builds it. Added to the scores
    q k^T / sqrt(hs), it leaves a token's score alone and sends padding's weight to exp(-huge) =
    0, in every head and for every query."""
    mask = xp.asarray(attention_mask)
    bias = (1 - mask.astype(dtype)) * np.finfo(dtype).min                  # (B, T)
    return bias[:, None, None, :].astype(dtype)                            # (B, 1, 1, T)


# ---- the encoder ----------------------------------------------------------------------------
class BertEmbeddings(Module):
    r"""x = dropout(LN(word[input_ids] + position[0..T-1] + token_type[token_type_ids]))."""

    def __init__(self, config):
        super().__init__()
        h = config.hidden_size
        self.word_embeddings = Embedding(config.vocab_size, h)                      # (V, H)
        self.position_embeddings = Embedding(config.max_position_embeddings, h)     # (P, H)
        self.token_type_embeddings = Embedding(config.type_vocab_size, h)           # (2, H)
        self.LayerNorm = LayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        t = input_ids.shape[1]
        xp = backend.get_xp(input_ids.data)
        position_ids = Tensor(xp.arange(t))                                 # (T,) from 0
        x = self.word_embeddings(input_ids)                                 # (B, T, H)
        x = x + self.position_embeddings(position_ids)                      # + (T, H)
        x = x + self.token_type_embeddings(token_type_ids)                  # + (B, T, H)
        return self.dropout(self.LayerNorm(x))                              # (B, T, H)


class BertSelfAttention(Module):
    r"""Multi-head self-attention with separate q, k, v projections (Hugging Face's layout):

        q = x W_q^T + b_q, k = x W_k^T + b_k, v = x W_v^T + b_v      (B, T, H) -> (B, nh, T, hs)
        y = softmax(q k^T / sqrt(hs) + mask) v, dropout on the weights    (B, nh, T, hs)
        heads side by side again                                          (B, T, H)

    ``query``, ``key``, ``value``: Linear(H, H). The attention is the fused Function
    ``tinygrad_llm.ops.attention.Attention`` with the additive mask (B, 1, 1, T) (its readable
    twin: ``tinygrad_llm.reference.attention``).
    """

    def __init__(self, config):
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = h // self.num_heads
        self.dropout_p = config.attention_probs_dropout_prob
        self.query = Linear(h, h)                                           # W_q (H, H)
        self.key = Linear(h, h)                                             # W_k (H, H)
        self.value = Linear(h, h)                                           # W_v (H, H)

    def _heads(self, x):
        b, t, _ = x.shape
        return x.reshape(b, t, self.num_heads, self.head_size).transpose(0, 2, 1, 3)  # (B,nh,T,hs)

    def forward(self, x, mask):
        b, t, h = x.shape
        q = self._heads(self.query(x))                                      # (B, nh, T, hs)
        k = self._heads(self.key(x))                                        # (B, nh, T, hs)
        v = self._heads(self.value(x))                                      # (B, nh, T, hs)
        p = self.dropout_p if self.training else 0.0
        y = _attention.scaled_dot_product_attention(q, k, v, causal=False, dropout_p=p,
                                                    mask=mask)              # (B, nh, T, hs)
        return y.transpose(0, 2, 1, 3).reshape(b, t, h)                     # (B, T, H)


class BertSelfOutput(Module):
    r"""a = LN(x + dropout(y W_o^T + b_o)): the attention's projection, residual and norm."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)         # W_o (H, H)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, y, x):
        return self.LayerNorm(x + self.dropout(self.dense(y)))              # (B, T, H)


class BertAttention(Module):
    r"""``self`` (the attention) then ``output`` (projection, residual, LayerNorm)."""

    def __init__(self, config):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)                           # (B, T, H)


class BertIntermediate(Module):
    r"""u = act(a W_i^T + b_i): the MLP's first half, H -> I."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.intermediate_size)   # W_i (I, H)
        self.approximate = _ACTIVATIONS[config.hidden_act]

    def forward(self, a):
        u = self.dense(a)                                                   # (B, T, I)
        return u.relu() if self.approximate is None else F.gelu(u, self.approximate)


class BertOutput(Module):
    r"""x = LN(a + dropout(u W_out^T + b_out)): the MLP's second half, I -> H, residual, norm."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.intermediate_size, config.hidden_size)   # W_out (H, I)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, u, a):
        return self.LayerNorm(a + self.dropout(self.dense(u)))              # (B, T, H)


class BertLayer(Module):
    r"""One post-LayerNorm encoder layer: a = LN_1(x + attn(x)), x = LN_2(a + mlp(a))."""

    def __init__(self, config):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x, mask):
        a = self.attention(x, mask)                                         # (B, T, H)
        return self.output(self.intermediate(a), a)                         # (B, T, H)


class BertEncoder(Module):
    def __init__(self, config):
        super().__init__()
        self.layer = ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)                                              # (B, T, H)
        return x


class BertPooler(Module):
    r"""pooler_output = tanh(x[:, 0] W_p^T + b_p): the [CLS] position through a Linear and tanh
    (trained on next-sentence prediction in the original BERT)."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)         # W_p (H, H)

    def forward(self, x):
        return self.dense(x[:, 0]).tanh()                                   # (B, H)


# ---- loading and saving, shared by the model and its heads ------------------------------------
class BertPreTrainedModel(Module):
    r"""``from_pretrained(dir)`` and ``save_pretrained(dir)`` in Hugging Face's layout
    (``config.json`` and ``model.safetensors``), and BERT's initialisation: every Linear and
    Embedding weight ~ N(0, initializer_range^2), biases 0, LayerNorms weight 1 and bias 0."""

    # Parameter name prefixes that a checkpoint may lack: freshly initialised, with a warning.
    _head_prefixes = ()
    # Tied aliases: (name, the name whose parameter it shares); written once, loaded once.
    _tied = ()
    # Where the encoder sits in this model's names ("" for BertModel, "bert." in the heads).
    _base = ""

    def _bert(self):
        """The BertModel inside (the model itself for BertModel)."""
        raise NotImplementedError

    def _init_weights(self):
        std = self.config.initializer_range
        for name, p in self.named_parameters():
            if "LayerNorm" in name:
                data = init.ones(p.shape) if name.endswith("weight") else init.zeros(p.shape)
            elif name.endswith("bias"):
                data = init.zeros(p.shape)
            else:                                                           # Linear, Embedding
                data = init.normal(p.shape, std=std)
            p.data = backend.to_device(data, p.device)

    @classmethod
    def from_pretrained(cls, path, dtype="float32", device=None, **kwargs):
        r"""The model stored in the folder ``path`` (``config.json`` and ``model.safetensors``,
        Hugging Face's layout; with or without the ``bert.`` prefix). ``kwargs`` go to the
        constructor (``num_labels`` for the classifier). Tensors of a head the checkpoint lacks
        (the pooler, the classifier, the MLM head) are initialised, with a warning; a missing
        encoder tensor, a tensor of the wrong shape, a missing folder or file raise an error
        naming the file and the tensor. ``pytorch_model.bin`` files are not read (they are
        pickles)."""
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"{cls.__name__}.from_pretrained: no folder {folder}")
        config = BertConfig.from_json_file(folder / CONFIG_NAME)
        weights = folder / WEIGHTS_NAME
        if not weights.is_file():
            hint = (" (only pytorch_model.bin, a pickle, which is never loaded: convert it to "
                    "safetensors)" if (folder / "pytorch_model.bin").exists() else "")
            raise FileNotFoundError(f"{cls.__name__}.from_pretrained: no weights file "
                                    f"{weights}{hint}")
        model = cls(config, **kwargs)
        arrays, _ = load_safetensors(weights)
        model.load_hf_state_dict(arrays, source=str(weights))
        return model.to(device=device, dtype=dtype)

    def load_hf_state_dict(self, arrays, source="state dict"):
        r"""Copy Hugging Face-named arrays into the parameters, with or without ``bert.``;
        ``source`` names the file in errors. Returns the names that were initialised instead."""
        state = {}
        for key, value in arrays.items():
            if key.endswith(".gamma") or key.endswith(".beta"):           # TF-era LayerNorms
                key = key.rsplit(".", 1)[0] + (".weight" if key.endswith("gamma") else ".bias")
            bare = key[len("bert."):] if key.startswith("bert.") else key
            if bare in _BUFFERS:
                continue
            if bare.split(".")[0] in ("embeddings", "encoder", "pooler"):
                key = self._base + bare
            state[key] = value
        for alias, owner in self._tied:             # the alias may stand in for its owner
            if owner not in state and alias in state:
                state[owner] = state[alias]
            state.pop(alias, None)
        own = dict(self.named_parameters())
        fresh = []
        for name, p in own.items():
            if name not in state:
                if name.startswith(self._head_prefixes):
                    fresh.append(name)
                    continue
                raise KeyError(f"{source}: the tensor {name!r} is missing (a BERT checkpoint "
                               f"with {self.config.num_hidden_layers} layers needs it)")
            value = np.asarray(state[name])
            if value.shape != p.shape:
                raise ValueError(f"{source}: the tensor {name!r} has shape {value.shape}, but "
                                 f"the config asks for {p.shape}")
            if value.dtype.kind != "f":
                raise ValueError(f"{source}: the tensor {name!r} has dtype {value.dtype}, not "
                                 f"a floating type")
            p.data = backend.to_device(value.astype(p.dtype), p.device)
        unexpected = [k for k in state if k not in own and not (   # a pooler we left out
            k.startswith(self._base + "pooler.") and self._bert().pooler is None)]
        if fresh:
            warnings.warn(f"{source}: no weights for {', '.join(fresh)}; initialised at random "
                          f"(train them before use)", stacklevel=3)
        if unexpected:
            warnings.warn(f"{source}: ignored tensors this {type(self).__name__} does not use: "
                          f"{', '.join(unexpected[:8])}" + (" ..." if len(unexpected) > 8
                                                             else ""), stacklevel=3)
        return fresh

    def save_pretrained(self, path):
        r"""Write ``config.json`` and ``model.safetensors`` (float32 unless the model is in
        another dtype; tied aliases once) into the folder ``path``, which transformers'
        ``from_pretrained`` reads with the same outputs."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        aliases = {alias for alias, _ in self._tied}
        arrays = {name: p.numpy() for name, p in self.named_parameters(remove_duplicate=False)
                  if name not in aliases}
        save_safetensors(folder / WEIGHTS_NAME, arrays, metadata={"format": "pt"})
        self.config.to_json_file(folder / CONFIG_NAME, architecture=type(self).__name__)

    def _inputs(self, input_ids, attention_mask, token_type_ids):
        r"""Checked (B, T) int64 Tensors on the model's device, and the additive mask."""
        cfg = self.config
        ids = _host_ints(input_ids, "input_ids")
        if ids.ndim != 2:
            raise ValueError(f"{type(self).__name__}: input_ids must be (B, T), got shape "
                             f"{ids.shape}")
        b, t = ids.shape
        if t > cfg.max_position_embeddings:
            raise ValueError(f"{type(self).__name__}: a sequence of {t} tokens is longer than "
                             f"max_position_embeddings={cfg.max_position_embeddings}; truncate "
                             f"it (the tokenizer's truncation=True, max_length=...)")
        if ids.size and (ids.min() < 0 or ids.max() >= cfg.vocab_size):
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise ValueError(f"{type(self).__name__}: input_ids holds the id {bad}, outside the "
                             f"vocabulary of {cfg.vocab_size} tokens (is it the right "
                             f"tokenizer?)")
        types = (np.zeros_like(ids) if token_type_ids is None
                 else _host_ints(token_type_ids, "token_type_ids"))
        mask = (np.ones_like(ids) if attention_mask is None
                else _host_ints(attention_mask, "attention_mask", floats=True))
        for name, a in (("token_type_ids", types), ("attention_mask", mask)):
            if a.shape != ids.shape:
                raise ValueError(f"{type(self).__name__}: {name} must have the shape of "
                                 f"input_ids {ids.shape}, got {a.shape}")
        if types.size and (types.min() < 0 or types.max() >= cfg.type_vocab_size):
            raise ValueError(f"{type(self).__name__}: token_type_ids must be in [0, "
                             f"{cfg.type_vocab_size}), got {int(types.max())}")
        weight = self._bert().embeddings.word_embeddings.weight
        device, xp = weight.device, backend.get_xp(weight.data)
        bias = extended_attention_mask(backend.to_device(mask, device), weight.dtype, xp)
        ids, types = (Tensor(backend.to_device(a, device)) for a in (ids, types))
        return ids, types, bias                                             # bias (B, 1, 1, T)


def _host_ints(x, name, floats=False):
    r"""x (a list, an array or a Tensor) as a NumPy int64 array; ``floats`` admits 0.0 / 1.0."""
    data = x.numpy() if isinstance(x, Tensor) else backend.to_numpy(x) if backend.is_array(x) \
        else np.asarray(x)
    if data.dtype.kind == "f" and floats and np.isin(data, (0, 1)).all():
        return data.astype(np.int64)
    if data.dtype.kind not in "iub":
        raise ValueError(f"BERT: {name} must hold integers" + (" (or 0.0 and 1.0)" if floats
                                                                 else "")
                         + f", got dtype {data.dtype}")
    return data.astype(np.int64, copy=False)


class BertModel(BertPreTrainedModel):
    r"""The BERT encoder: ``model(input_ids, attention_mask=None, token_type_ids=None)`` ->
    ``BertModelOutput(last_hidden_state (B, T, H), pooler_output (B, H))``.

    input_ids (B, T) ints in [0, V); attention_mask (B, T) 1 for tokens, 0 for padding (all
    ones by default); token_type_ids (B, T) in [0, type_vocab_size) (all 0 by default: the
    first segment). Equations and names: the module docstring. ``add_pooling_layer=False``
    leaves the pooler out (the MLM model has none).
    """

    _head_prefixes = ("pooler.",)

    def __init__(self, config, add_pooling_layer=True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self._init_weights()

    def _bert(self):
        return self

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        ids, types, bias = self._inputs(input_ids, attention_mask, token_type_ids)
        return self.encode(ids, types, bias)

    def encode(self, ids, types, bias):
        r"""The forward on checked inputs: ids, types (B, T) Tensors, bias (B, 1, 1, T)."""
        x = self.embeddings(ids, types)                                     # (B, T, H)
        x = self.encoder(x, bias)                                           # (B, T, H)
        pooled = self.pooler(x) if self.pooler is not None else None        # (B, H)
        return BertModelOutput(last_hidden_state=x, pooler_output=pooled)


# ---- the heads ----------------------------------------------------------------------------------
class BertPredictionHeadTransform(Module):
    r"""h = LN_t(act(x W_t^T + b_t)), (B, T, H)."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)         # W_t (H, H)
        self.approximate = _ACTIVATIONS[config.hidden_act]
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x):
        u = self.dense(x)                                                   # (B, T, H)
        u = u.relu() if self.approximate is None else F.gelu(u, self.approximate)
        return self.LayerNorm(u)                                            # (B, T, H)


class BertLMPredictionHead(Module):
    r"""logits = transform(x) word^T + b_mlm: ``decoder`` is a Linear whose weight is the word
    embedding (tied: one Parameter) and whose bias is ``bias`` (V,)."""

    def __init__(self, config, word_embeddings):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = Linear(config.hidden_size, config.vocab_size, bias=False)
        self.decoder.weight = word_embeddings.weight                       # tied (V, H)
        self.bias = Parameter(init.zeros((config.vocab_size,)))            # b_mlm (V,)
        self.decoder.bias = self.bias                                       # tied (V,)

    def forward(self, x):
        return self.decoder(self.transform(x))                              # (B, T, V)


class BertOnlyMLMHead(Module):
    def __init__(self, config, word_embeddings):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, word_embeddings)

    def forward(self, x):
        return self.predictions(x)                                          # (B, T, V)


class BertForMaskedLM(BertPreTrainedModel):
    r"""BERT with its masked-language-model head: ``model(input_ids, attention_mask=None,
    token_type_ids=None, labels=None)`` -> ``BertHeadOutput(logits (B, T, V), loss)``.

    labels (B, T): the original token id at each masked position and -100 elsewhere; the loss
    is the mean cross-entropy over the masked positions. The encoder is ``bert`` (no pooler),
    the head ``cls``; the decoder's weight is ``bert.embeddings.word_embeddings.weight``.
    """

    _head_prefixes = ("cls.",)
    _tied = (("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),
             ("cls.predictions.decoder.bias", "cls.predictions.bias"))
    _base = "bert."

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings)
        self._init_weights()

    def _bert(self):
        return self.bert

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        ids, types, bias = self._inputs(input_ids, attention_mask, token_type_ids)
        x = self.bert.encode(ids, types, bias).last_hidden_state            # (B, T, H)
        logits = self.cls(x)                                                # (B, T, V)
        loss = None
        if labels is not None:
            b, t, v = logits.shape
            labels = _host_ints(labels, "labels")
            if labels.shape != (b, t):
                raise ValueError(f"BertForMaskedLM: labels must have the shape of input_ids "
                                 f"{(b, t)}, got {labels.shape}")
            loss = F.cross_entropy(logits.reshape(b * t, v), labels.reshape(b * t),
                                   ignore_index=-100)                       # mean, masked only
        return BertHeadOutput(logits=logits, loss=loss)


class BertForSequenceClassification(BertPreTrainedModel):
    r"""BERT with a classifier on the pooled [CLS] output: ``model(input_ids,
    attention_mask=None, token_type_ids=None, labels=None)`` -> ``BertHeadOutput(logits (B, K),
    loss)``; logits = dropout(pooler_output) W_c^T + b_c.

    ``num_labels`` K (default: the config's). The loss follows Hugging Face's ``problem_type``:
    "regression" (K = 1, MSE against float labels (B,)), "single_label_classification"
    (cross-entropy against integer labels (B,)), "multi_label_classification" (binary
    cross-entropy with logits against float labels (B, K)); unset, it is regression for K = 1,
    else single-label for integer labels and multi-label for float ones.
    """

    _head_prefixes = ("classifier.", "bert.pooler.")
    _base = "bert."

    def __init__(self, config, num_labels=None):
        super().__init__()
        if num_labels is not None and num_labels != config.num_labels:
            config = BertConfig(**{**asdict(config), "num_labels": num_labels, "id2label": None})
        self.config = config
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        p = config.classifier_dropout
        self.dropout = Dropout(config.hidden_dropout_prob if p is None else p)
        self.classifier = Linear(config.hidden_size, config.num_labels)     # W_c (K, H)
        self._init_weights()

    def _bert(self):
        return self.bert

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        ids, types, bias = self._inputs(input_ids, attention_mask, token_type_ids)
        pooled = self.bert.encode(ids, types, bias).pooler_output           # (B, H)
        logits = self.classifier(self.dropout(pooled))                      # (B, K)
        loss = None if labels is None else self._loss(logits, labels)
        return BertHeadOutput(logits=logits, loss=loss)

    def _loss(self, logits, labels):
        labels = labels.numpy() if isinstance(labels, Tensor) else np.asarray(labels)
        b, k = logits.shape
        kind = self.config.problem_type
        if kind is None:
            kind = ("regression" if k == 1 else "single_label_classification"
                    if labels.dtype.kind in "iu" else "multi_label_classification")
        if kind == "regression":
            target = labels.astype(logits.dtype).reshape(b, -1)             # (B, K)
            return F.mse_loss(logits, Tensor(target, device=logits.device))
        if kind == "single_label_classification":
            return F.cross_entropy(logits, labels.astype(np.int64).reshape(b))
        target = labels.astype(logits.dtype)                                # (B, K)
        return F.binary_cross_entropy_with_logits(logits, Tensor(target, device=logits.device))

