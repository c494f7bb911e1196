r"""Greedy decoding and beam search for any model that scores the next token.

Dimension letters: N sentences (independent searches run side by side), K beam size, M rows the
step function scores at once (N for greedy and for beam search's first step, N*K after it),
t the length of every hypothesis so far (the start prefix included), V vocabulary size.

Both searches drive a ``step`` function and know nothing else about the model:

    log_probs, state = step(ids, state)

    ids        (M, t) int64 NumPy array: every hypothesis so far, one per row. A step without a
               cache reads the whole row (a GPT's context); a step with a cache reads only the
               positions it has not seen yet (ids[:, -1:] after the first call, all of ids on the
               first call when the start prefix is longer than one token).
    state      anything the model carries from one step to the next (a KV cache, the encoder's
               output, its padding mask, ...), or None. It is passed in and returned, never kept
               on the model.
    log_probs  (M, V) float array or Tensor: log p(next token | row), normalised (log_softmax of
               the logits, not the logits themselves).

Greedy decoding appends the most likely token to each row:

    y_{t+1} = argmax_v log_probs[row, v],      score = sum over generated tokens of log p

Beam search keeps, per sentence, the K hypotheses y_1..y_t with the largest cumulative score
s(y) = sum_i log p(y_i | y_<i) (the start prefix contributes 0). At each step every live
hypothesis is extended by every token, the K * V candidates are ranked by s, and the best 2K
are read in order: a candidate ending in ``eos_id`` among the first K is finished (it leaves the
beam), the other candidates fill the K live beams. Hypotheses are compared at the end by the
length-normalised score of GNMT (Wu et al., 2016):

    score(y) = s(y) / lp(|y|),      lp(n) = ((5 + n) / 6) ** length_penalty

with |y| the number of generated tokens (eos included, the start prefix not). length_penalty=0
ranks by s alone (short hypotheses win); larger values favour longer ones; lp(1) = 1. A sentence
is finished once it holds K finished hypotheses and its best live hypothesis scores no better
than the K-th of them, s_live / lp(|y_live|) <= score_K (Hugging Face's rule with
early_stopping=False; exact for length_penalty=0, where s can only fall), or when the hypotheses
reach ``max_len``; then its live beams are finished too. The best scores win.

When beams are reordered the state must follow them: ``reorder(state, index)`` returns the state
whose row i is row ``index[i]`` of the given state (``index`` an int64 NumPy array (M',) of old
row numbers; M' may differ from M: after the first step it grows from N to N*K rows, each
sentence's row repeated K times). Rows are sentence-major: row n*K + k is beam k of sentence n.
With ``reorder=None`` the state is None or has a ``reorder(index)`` method (as
tinygrad_llm.nn.transformer.KVCache has).

Both run under no_grad; put the model in eval mode first (dropout off).
"""

import numpy as np

from tinygrad_llm import backend
from tinygrad_llm.autograd import no_grad
from tinygrad_llm.tensor import Tensor

__all__ = ["greedy_decode", "beam_search", "length_penalty_gnmt"]


def length_penalty_gnmt(length, alpha):
    r"""GNMT's length penalty lp(n) = ((5 + n) / 6) ** alpha for n generated tokens."""
    return ((5.0 + length) / 6.0) ** alpha


def _prefix(start):
    r"""The start prefix as an int64 (N, T0) array from an int, (N,) or (N, T0) ids."""
    data = start.numpy() if isinstance(start, Tensor) else np.asarray(start)
    if data.ndim == 0:
        data = data.reshape(1, 1)                                           # (1, 1)
    elif data.ndim == 1:
        data = data.reshape(-1, 1)                                          # (N, 1)
    if data.ndim != 2 or data.shape[1] == 0 or data.dtype.kind not in "iu":
        raise ValueError(f"start must be an int, (N,) or (N, T0) integer ids with T0 >= 1, "
                         f"got shape {data.shape} and dtype {data.dtype}")
    return data.astype(np.int64)                                            # (N, T0)


def _host(log_probs, rows):
    r"""log_probs (M, V) as a float64 NumPy array, checked against the number of rows."""
    data = log_probs.data if isinstance(log_probs, Tensor) else log_probs
    data = backend.to_numpy(data) if backend.is_array(data) else np.asarray(data)
    if data.ndim != 2 or data.shape[0] != rows:
        raise ValueError(f"step must return log_probs of shape (M, V) with M = {rows}, got "
                         f"{data.shape}")
    return data.astype(np.float64)                                          # (M, V)


def _reorder(reorder, state, index):
    if reorder is not None:
        return reorder(state, index)
    if state is None:
        return None
    if not hasattr(state, "reorder"):
        raise TypeError("beam_search: the state has no reorder(index) method; pass "
                        "reorder=(state, index) -> state")
    return state.reorder(index)


def greedy_decode(step, start, max_len, eos_id=None, state=None):
    r"""Extend each start prefix by its most likely next token until ``eos_id`` or ``max_len``.

    Parameters
    ----------
    step : callable ``(ids (M, t), state) -> (log_probs (M, V), state)`` (the module docstring).
    start : int, (N,) start ids, or (N, T0) start prefixes (one sentence per row).
    max_len : the longest sequence returned, the start prefix included (at least T0).
    eos_id : the end-of-sequence id, or None to run every row to max_len. A row that emits it
        stops there (its later steps, while other rows still run, are fed ``eos_id`` and ignored).
    state : the step's initial state for the N rows (None if it needs none).

    Returns
    -------
    sequences : list of N int64 arrays (T_n,): the start prefix, then the generated tokens,
        ending with eos_id where it was emitted.
    scores : (N,) float64, the sum of the generated tokens' log-probabilities.
    """
    ids = _prefix(start)                                                    # (N, T0)
    n, t0 = ids.shape
    scores = np.zeros(n)                                                    # (N,)
    lengths = np.full(n, max(max_len, t0), dtype=np.int64)                  # (N,) final lengths
    done = np.zeros(n, dtype=bool)                                          # (N,)
    with no_grad():
        while ids.shape[1] < max_len and not done.all():
            log_probs, state = step(ids, state)
            log_probs = _host(log_probs, n)                                 # (N, V)
            best = log_probs.argmax(axis=-1)                                # (N,)
            scores += np.where(done, 0.0, log_probs[np.arange(n), best])    # (N,)
            if eos_id is not None:
                best = np.where(done, eos_id, best)                         # (N,)
            ids = np.concatenate([ids, best[:, None]], axis=1)              # (N, t + 1)
            if eos_id is not None:
                newly = ~done & (best == eos_id)                            # (N,)
                lengths[newly] = ids.shape[1]
                done |= newly
    lengths = np.minimum(lengths, ids.shape[1])
    return [ids[i, :lengths[i]].copy() for i in range(n)], scores


def beam_search(step, start, beam_size=5, max_len=50, eos_id=None, length_penalty=0.6,
                state=None, reorder=None, n_best=1):
    r"""Beam search with GNMT's length penalty (the module docstring has the rules).

    Parameters
    ----------
    step : callable ``(ids (M, t), state) -> (log_probs (M, V), state)``.
    start : int, (N,) start ids, or (N, T0) start prefixes (one sentence per row).
    beam_size : K, the hypotheses kept per sentence. K = 1 is greedy decoding.
    max_len : the longest hypothesis, the start prefix included.
    eos_id : the end-of-sequence id, or None (every hypothesis runs to max_len).
    length_penalty : alpha in lp(n) = ((5 + n) / 6) ** alpha; 0 = the plain sum of log-probs.
    state : the step's initial state for the N sentences' rows (None if it needs none).
    reorder : callable ``(state, index (M',)) -> state`` selecting rows of the state (row i of
        the result is row index[i]), or None to call ``state.reorder(index)``.
    n_best : how many hypotheses to return per sentence, best first.

    Returns
    -------
    sequences : list of N int64 arrays (T_n,) (start prefix included, ending with eos_id when it
        was emitted); with n_best > 1, a list of N lists of up to n_best such arrays.
    scores : (N,) float64 length-normalised scores s(y) / lp(|y|) of those hypotheses; with
        n_best > 1, a list of N float64 arrays.
    """
    if beam_size < 1:
        raise ValueError(f"beam_search: beam_size must be >= 1, got {beam_size}")
    if n_best < 1 or n_best > beam_size:
        raise ValueError(f"beam_search: n_best must be in [1, beam_size={beam_size}], got "
                         f"{n_best}")
    ids = _prefix(start)                                                    # (N, T0)
    n, t0 = ids.shape
    k_live = 1                                    # hypotheses per sentence now: 1, then K
    sums = np.zeros(n)                                                      # (N*k,) s(y)
    finished = [[] for _ in range(n)]             # per sentence: (score, tokens)
    done = np.zeros(n, dtype=bool)                                          # (N,)

    def finish(b, s, tokens):
        length = len(tokens) - t0
        finished[b].append((s / length_penalty_gnmt(length, length_penalty), tokens))

    with no_grad():
        while ids.shape[1] < max_len and not done.all():
            log_probs, state = step(ids, state)
            log_probs = _host(log_probs, n * k_live)                        # (N*k, V)
            v = log_probs.shape[1]
            cand = (sums[:, None] + log_probs).reshape(n, k_live * v)       # (N, k*V)
            order = np.argsort(-cand, axis=1, kind="stable")                # (N, k*V) best first
            k_new = min(beam_size, k_live * (v - (eos_id is not None and eos_id < v)))
            if k_new < 1:
                raise ValueError("beam_search: the vocabulary holds nothing but eos_id")
            rows, tokens, new_sums = [], [], []
            new_len = ids.shape[1] + 1 - t0                # tokens generated after this step
            for b in range(n):
                kept = 0
                for rank, flat in enumerate(order[b]):
                    if kept == k_new and rank >= beam_size:
                        break
                    beam, token = divmod(int(flat), v)
                    row = b * k_live + beam
                    s = cand[b, flat]
                    if eos_id is not None and token == eos_id:
                        if rank < beam_size and not done[b]:
                            finish(b, s, np.append(ids[row], token))
                    elif kept < k_new:
                        rows.append(row)
                        tokens.append(token)
                        new_sums.append(s)
                        kept += 1
                if not done[b] and len(finished[b]) >= beam_size:
                    kth = sorted(score for score, _ in finished[b])[-beam_size]
                    live = max(new_sums[-kept:]) if kept else -np.inf
                    done[b] = live / length_penalty_gnmt(new_len, length_penalty) <= kth
            index = np.asarray(rows, dtype=np.int64)                        # (N*k_new,)
            chosen = np.asarray(tokens, dtype=np.int64)[:, None]            # (N*k_new, 1)
            ids = np.concatenate([ids[index], chosen], axis=1)              # (N*k_new, t + 1)
            sums = np.asarray(new_sums, dtype=np.float64)                   # (N*k_new,)
            k_live = k_new
            if ids.shape[1] < max_len and not done.all():
                state = _reorder(reorder, state, index)
        for b in range(n):
            if not done[b]:
                for k in range(k_live):
                    finish(b, sums[b * k_live + k], ids[b * k_live + k].copy())
    sequences, scores = [], []
    for b in range(n):
        ranked = sorted(finished[b], key=lambda hyp: -hyp[0])[:n_best]     # stable: first wins
        sequences.append([tokens for _, tokens in ranked])
        scores.append(np.array([score for score, _ in ranked]))
    if n_best == 1:
        return [seqs[0] for seqs in sequences], np.array([s[0] for s in scores])
    return sequences, scores
