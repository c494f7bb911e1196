r"""Turning next-token logits into a token: the rules of sampling-based decoding.

Dimension letters: B rows (sequences), V vocabulary size, T tokens so far.

Each rule maps logits z (B, V) to new logits, with -inf where a token may not be drawn; the draw
is then from p = softmax(z). In ``sample_next`` they run in Hugging Face's order:

    repetition penalty   z_v <- z_v / theta if z_v > 0 else z_v * theta,  for every v already
                         in the row (theta > 1 discourages repeats, theta < 1 favours them)
    temperature          z <- z / tau                     (tau -> 0: greedy; tau = 1: unchanged)
    top-k                z_v <- -inf unless z_v >= the k-th largest z   (ties at the k-th stay)
    top-p (nucleus)      sort p = softmax(z) descending; keep v while the mass of the tokens
                         before it, sum_{u ranked above v} p_u, is < top_p (the smallest set of
                         most likely tokens with mass >= top_p; the most likely always stays)
    draw                 v ~ p by the inverse CDF: v = #{v' : cumsum(p)_{v'} <= u},  u ~ U[0, 1)
                         (the first v whose cumulative probability passes u: never a token
                         of probability 0)

temperature = 0 is greedy decoding: v = argmax z (after the repetition penalty). Every function
works on NumPy arrays (the logits are brought to the host once per step, (B, V) floats) and
leaves its input unchanged. The formulas, and how they compare with beam search:
docs/generation.md.
"""

import numpy as np

__all__ = ["repetition_penalty", "top_k_filter", "top_p_filter", "sample_next",
           "check_sampling_args"]


def check_sampling_args(temperature=1.0, top_k=None, top_p=None, penalty=1.0, caller="generate"):
    r"""ValueError naming the argument and its value unless temperature >= 0, top_k >= 1,
    top_p in (0, 1] and repetition_penalty > 0."""
    if not temperature >= 0:
        raise ValueError(f"{caller}: temperature must be >= 0, got {temperature}")
    if top_k is not None and (int(top_k) != top_k or top_k < 1):
        raise ValueError(f"{caller}: top_k must be an integer >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"{caller}: top_p must be in (0, 1], got {top_p}")
    if not penalty > 0:
        raise ValueError(f"{caller}: repetition_penalty must be > 0, got {penalty}")


def repetition_penalty(z, ids, penalty, mask=None):
    r"""Hugging Face's repetition penalty: for every token v that occurs in row b of ``ids``
    (B, T) (where ``mask`` (B, T) is true, when given: padding does not count),

        z[b, v] <- z[b, v] / penalty   if z[b, v] > 0,    z[b, v] * penalty   otherwise

    so with penalty > 1 a seen token always becomes less likely, whatever its sign. A token
    seen several times is penalised once. z (B, V) -> (B, V)."""
    if penalty == 1.0:
        return z
    ids = np.asarray(ids)
    seen = np.zeros(z.shape, dtype=bool)                                    # (B, V)
    rows = np.broadcast_to(np.arange(z.shape[0])[:, None], ids.shape)       # (B, T)
    keep = np.ones(ids.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    seen[rows[keep], ids[keep]] = True
    penalised = np.where(z > 0, z / penalty, z * penalty)                   # (B, V)
    return np.where(seen, penalised, z)


def top_k_filter(z, k):
    r"""z (B, V) with -inf everywhere below the k-th largest value of each row."""
    k = min(int(k), z.shape[-1])
    kth = np.partition(z, -k, axis=-1)[:, -k][:, None]                      # (B, 1)
    return np.where(z < kth, -np.inf, z)


def top_p_filter(z, top_p):
    r"""z (B, V) with -inf outside each row's nucleus: the most likely tokens, best first, up to
    and including the first whose cumulative probability reaches ``top_p``."""
    if top_p >= 1:
        return z
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)                                      # (B, V)
    order = np.argsort(-p, axis=-1, kind="stable")                          # most likely first
    sorted_p = np.take_along_axis(p, order, axis=-1)                        # (B, V)
    before = np.cumsum(sorted_p, axis=-1) - sorted_p                        # mass ranked above
    drop_sorted = before >= top_p                                           # (B, V)
    drop_sorted[:, 0] = False                                               # the best stays
    drop = np.zeros_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=-1)                    # (B, V)
    return np.where(drop, -np.inf, z)


def sample_next(z, rng, temperature=1.0, top_k=None, top_p=None):
    r"""One token id per row of logits z (B, V) (repetition penalty already applied): argmax
    for temperature 0, else a draw from softmax of the filtered z / temperature; ``rng`` a
    NumPy Generator (one uniform number per row). Returns int64 (B,)."""
    z = np.asarray(z, dtype=np.float64)
    if temperature == 0:
        return z.argmax(axis=-1).astype(np.int64)                           # (B,)
    z = z / temperature                                                     # (B, V)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)                                      # (B, V)
    cdf = np.cumsum(p, axis=-1)                                             # (B, V)
    u = rng.random((p.shape[0], 1)) * cdf[:, -1:]                           # (B, 1) in [0, 1)
    return (cdf <= u).sum(axis=-1).astype(np.int64)     # (B,) the first v with cdf_v > u
