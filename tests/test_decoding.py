"""tinygrad_llm/decoding.py: greedy decoding and beam search. Hand-made step functions with known
answers (a beam that beats greedy, eos, the length penalty, max_len, batches, the state's
reordering), then a tiny Transformer with and without its KV cache, and a tiny GPT."""

import math

import numpy as np
import pytest

import tinygrad_llm
from tinygrad_llm import Tensor, is_grad_enabled
from tinygrad_llm.decoding import beam_search, greedy_decode, length_penalty_gnmt
from tinygrad_llm.models.gpt import GPT, GPTConfig
from tinygrad_llm.nn import Embedding, Linear, Transformer
from tinygrad_llm.nn import functional as F

BOS, A, B, C, EOS = 0, 1, 2, 3, 4      # the hand-made vocabulary, V = 5


def _table_step(table, v=5):
    r"""A step function from {prefix tuple: {token: p}}; unknown prefixes emit eos. The state is
    each row's prefix so far, so a wrong reordering is caught."""
    def step(ids, state):
        assert not is_grad_enabled()
        if state is not None:
            assert np.array_equal(state, ids[:, :-1]), "the state did not follow its beam"
        out = np.full((len(ids), v), -np.inf)                               # (M, V)
        for i, row in enumerate(ids):
            for token, p in table.get(tuple(row), {EOS: 1.0}).items():
                out[i, token] = math.log(p)
        return out, ids.copy()
    return step


def _reorder(state, index):
    return state[index]


# greedy takes A (0.6) and then at best 0.5: 0.30; the beam finds B (0.4) then C (0.9): 0.36
TABLE = {(BOS,): {A: 0.6, B: 0.4},
         (BOS, A): {A: 0.5, C: 0.5},
         (BOS, B): {C: 0.9, A: 0.1}}


def _start_state(n):
    return np.zeros((n, 0), dtype=np.int64)


def test_beam_beats_greedy_on_a_known_example():
    step = _table_step(TABLE)
    seqs, scores = greedy_decode(step, BOS, max_len=10, eos_id=EOS, state=_start_state(1))
    np.testing.assert_array_equal(seqs[0], [BOS, A, A, EOS])           # ties: the lowest id
    np.testing.assert_allclose(scores, [math.log(0.3)])
    seqs, scores = beam_search(step, BOS, beam_size=2, max_len=10, eos_id=EOS,
                               length_penalty=0.0, state=_start_state(1), reorder=_reorder)
    np.testing.assert_array_equal(seqs[0], [BOS, B, C, EOS])
    np.testing.assert_allclose(scores, [math.log(0.36)])


def _random_step(v, seed):
    r"""A deterministic step whose log-probs are a pseudo-random function of the whole row."""
    def step(ids, state):
        assert not is_grad_enabled()
        assert np.array_equal(state, ids[:, :-1]), "the state did not follow its beam"
        rows = []
        for row in ids:
            rng = np.random.default_rng([seed, *row.tolist()])
            z = 2 * rng.standard_normal(v)                                  # (V,)
            rows.append(z - np.log(np.exp(z).sum()))
        return np.array(rows), ids.copy()
    return step


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 1.0])
def test_beam_size_one_is_greedy(seed, length_penalty):
    step = _random_step(6, seed)
    start = np.array([[0], [1], [2, 3]][:2])                            # two sentences
    g_seqs, g_scores = greedy_decode(step, start, max_len=9, eos_id=5, state=_start_state(2))
    b_seqs, b_scores = beam_search(step, start, beam_size=1, max_len=9, eos_id=5,
                                   length_penalty=length_penalty, state=_start_state(2),
                                   reorder=_reorder)
    for g, b, gs, bs in zip(g_seqs, b_seqs, g_scores, b_scores):
        np.testing.assert_array_equal(g, b)
        np.testing.assert_allclose(bs * length_penalty_gnmt(len(b) - 1, length_penalty), gs)


@pytest.mark.parametrize("seed", range(4))
def test_batched_beam_search_equals_one_sentence_at_a_time(seed):
    step = _random_step(7, seed)
    starts = np.array([[0, 1], [2, 3], [4, 4]])                          # (N, T0) prefixes
    kwargs = dict(beam_size=3, max_len=8, eos_id=6, reorder=_reorder, n_best=3)
    seqs, scores = beam_search(step, starts, state=starts[:, :1], **kwargs)
    for i in range(3):
        one_seqs, one_scores = beam_search(step, starts[i:i + 1],
                                           state=starts[i:i + 1, :1], **kwargs)
        assert len(seqs[i]) == 3 and np.all(np.diff(scores[i]) <= 0)   # best first
        for a, b in zip(seqs[i], one_seqs[0]):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a[:2], starts[i])             # the prefix is kept
        np.testing.assert_allclose(scores[i], one_scores[0])


def test_eos_ends_each_row_on_its_own():
    table = {(BOS,): {A: 0.9, EOS: 0.1}, (BOS, A): {B: 0.9, EOS: 0.1},
             (C,): {EOS: 0.8, A: 0.2}}
    seqs, scores = greedy_decode(_table_step(table), [BOS, C], max_len=10, eos_id=EOS)
    np.testing.assert_array_equal(seqs[0], [BOS, A, B, EOS])          # (BOS, A, B) -> eos
    np.testing.assert_array_equal(seqs[1], [C, EOS])
    np.testing.assert_allclose(scores, [math.log(0.81), math.log(0.8)])
    seqs, _ = beam_search(_table_step(table), [BOS, C], beam_size=2, max_len=10, eos_id=EOS,
                          reorder=_reorder, state=_start_state(2))
    np.testing.assert_array_equal(seqs[0], [BOS, A, B, EOS])
    np.testing.assert_array_equal(seqs[1], [C, EOS])


def test_length_penalty_favours_longer_hypotheses():
    # short: BOS EOS, s = log 0.45 (n = 1); long: BOS A B EOS, s = log(0.55 * 0.9 * 0.9) (n = 3)
    table = {(BOS,): {A: 0.55, EOS: 0.45}, (BOS, A): {B: 0.9, EOS: 0.1},
             (BOS, A, B): {EOS: 0.9, C: 0.1}}
    kwargs = dict(beam_size=2, max_len=10, eos_id=EOS, state=_start_state(1), reorder=_reorder,
                  n_best=2)
    seqs, scores = beam_search(_table_step(table), BOS, length_penalty=0.0, **kwargs)
    np.testing.assert_array_equal(seqs[0][0], [BOS, EOS])
    np.testing.assert_allclose(scores[0], [math.log(0.45), math.log(0.55 * 0.81)])
    seqs, scores = beam_search(_table_step(table), BOS, length_penalty=1.0, **kwargs)
    np.testing.assert_array_equal(seqs[0][0], [BOS, A, B, EOS])
    np.testing.assert_allclose(scores[0], [math.log(0.55 * 0.81) / (8 / 6), math.log(0.45)])


def test_max_len_bounds_every_sequence():
    step = _random_step(5, 0)
    seqs, _ = greedy_decode(step, [0, 1], max_len=6, state=_start_state(2))      # no eos
    assert [len(s) for s in seqs] == [6, 6]
    seqs, _ = beam_search(step, [0, 1], beam_size=3, max_len=6, state=_start_state(2),
                          reorder=_reorder)
    assert [len(s) for s in seqs] == [6, 6]
    seqs, scores = beam_search(step, [[0, 1, 2]], beam_size=3, max_len=3, state=None)
    np.testing.assert_array_equal(seqs[0], [0, 1, 2])                   # nothing to add
    assert scores[0] == 0


def test_bad_arguments_raise():
    step = _table_step(TABLE)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(step, BOS, beam_size=0)
    with pytest.raises(ValueError, match="n_best"):
        beam_search(step, BOS, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="start"):
        greedy_decode(step, np.zeros((1, 0), np.int64), max_len=3)
    with pytest.raises(TypeError, match="reorder"):
        beam_search(_random_step(5, 0), 0, beam_size=2, max_len=4, state=_start_state(1))


# ---- a tiny translation model, with and without its KV cache ------------------------------------
V_SRC, V_TGT, E = 11, 9, 8
T_BOS, T_EOS = 0, 1


class _Seq2Seq(tinygrad_llm.nn.Module):
    def __init__(self, batch_first):
        super().__init__()
        tinygrad_llm.manual_seed(3)
        self.src_emb = Embedding(V_SRC, E)
        self.tgt_emb = Embedding(V_TGT, E)
        self.pos = tinygrad_llm.nn.PositionalEncoding(E, max_len=32, dropout=0.0,
                                                      batch_first=batch_first)
        self.transformer = Transformer(d_model=E, nhead=2, num_encoder_layers=2,
                                       num_decoder_layers=2, dim_feedforward=16, dropout=0.0,
                                       batch_first=batch_first, norm_first=batch_first)
        self.out = Linear(E, V_TGT)
        self.batch_first = batch_first

    def layout(self, x):
        r"""(N, T, E) -> the transformer's layout."""
        return x if self.batch_first else x.transpose(1, 0, 2)

    def encode(self, src, pad):
        x = self.pos(self.layout(self.src_emb(Tensor(src)) * math.sqrt(E)))
        return self.transformer.encode(x, src_key_padding_mask=pad)

    def log_probs(self, y):
        r"""The last position of y (the transformer's layout) -> log p (N, V)."""
        last = y[:, -1] if self.batch_first else y[-1]                      # (N, E)
        return F.log_softmax(self.out(last), axis=-1).numpy()                # (N, V)


def _translation_steps(model, src, pad):
    memory = model.encode(src, pad)
    batch_axis = 0 if model.batch_first else 1

    def uncached(ids, state):
        memory, pad = state
        t = ids.shape[1]
        x = model.pos(model.layout(model.tgt_emb(Tensor(ids)) * math.sqrt(E)))
        mask = Transformer.generate_square_subsequent_mask(t, dtype=np.float64)
        y = model.transformer.decoder(x, memory, tgt_mask=mask, memory_key_padding_mask=pad)
        return model.log_probs(y), state

    def reorder_uncached(state, index):
        memory, pad = state
        memory = memory[index] if batch_axis == 0 else memory[:, index]
        return memory, pad[index]

    def cached(ids, state):
        cache, memory, pad = state
        new = ids[:, cache.length:]                                          # (N, L) unseen
        x = model.tgt_emb(Tensor(new)) * math.sqrt(E)
        x = model.pos(model.layout(x), offset=cache.length)
        y, cache = model.transformer.decoder(x, memory, memory_key_padding_mask=pad,
                                             cache=cache)
        return model.log_probs(y), (cache, None, pad)

    def reorder_cached(state, index):
        cache, _, pad = state
        return cache.reorder(index), None, pad[index]

    return ((uncached, (memory, pad), reorder_uncached),
            (cached, (model.transformer.decoder.new_cache(), memory, pad), reorder_cached))


def _model_and_source(batch_first):
    model = _Seq2Seq(batch_first)
    model.to(dtype="float64")
    model.eval()
    rng = np.random.default_rng(5)
    src = rng.integers(2, V_SRC, size=(3, 6))                                # (N, S)
    pad = np.zeros((3, 6), dtype=bool)
    pad[1, 4:] = True
    pad[2, 2:] = True
    return model, src, pad


@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_cached_beam_equals_uncached_beam(batch_first):
    model, src, pad = _model_and_source(batch_first)
    (step_u, state_u, reorder_u), (step_c, state_c, reorder_c) = _translation_steps(model, src,
                                                                                    pad)
    start = np.full(3, T_BOS)
    kwargs = dict(beam_size=3, max_len=7, eos_id=T_EOS, length_penalty=0.6, n_best=3)
    seqs_u, scores_u = beam_search(step_u, start, state=state_u, reorder=reorder_u, **kwargs)
    seqs_c, scores_c = beam_search(step_c, start, state=state_c, reorder=reorder_c, **kwargs)
    for hyps_u, hyps_c, su, sc in zip(seqs_u, seqs_c, scores_u, scores_c):
        for a, b in zip(hyps_u, hyps_c):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(sc, su, rtol=0, atol=1e-9)
    g_u = greedy_decode(step_u, start, max_len=7, eos_id=T_EOS, state=state_u)
    g_c = greedy_decode(step_c, start, max_len=7, eos_id=T_EOS, state=state_c)
    for a, b in zip(g_u[0], g_c[0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(g_c[1], g_u[1], rtol=0, atol=1e-9)


@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_beam_one_is_greedy(batch_first):
    model, src, pad = _model_and_source(batch_first)
    _, (step, state, reorder) = _translation_steps(model, src, pad)
    start = np.full(3, T_BOS)
    g_seqs, g_scores = greedy_decode(step, start, max_len=8, eos_id=T_EOS, state=state)
    b_seqs, b_scores = beam_search(step, start, beam_size=1, max_len=8, eos_id=T_EOS,
                                   length_penalty=0.0, state=state, reorder=reorder)
    for g, b in zip(g_seqs, b_seqs):
        np.testing.assert_array_equal(g, b)
    np.testing.assert_allclose(b_scores, g_scores, rtol=0, atol=1e-12)


def test_cached_step_with_a_longer_prefix():
    model, src, pad = _model_and_source(True)
    (step_u, state_u, reorder_u), (step_c, state_c, reorder_c) = _translation_steps(model, src,
                                                                                    pad)
    start = np.array([[T_BOS, 3, 4], [T_BOS, 5, 2], [T_BOS, 2, 2]])        # the first call
    kwargs = dict(beam_size=2, max_len=7, eos_id=T_EOS)                   # reads 3 positions
    seqs_u, scores_u = beam_search(step_u, start, state=state_u, reorder=reorder_u, **kwargs)
    seqs_c, scores_c = beam_search(step_c, start, state=state_c, reorder=reorder_c, **kwargs)
    for a, b in zip(seqs_u, seqs_c):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(scores_c, scores_u, rtol=0, atol=1e-9)


def test_gpt_greedy_decode_matches_generate():
    tinygrad_llm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=8))
    model.eval()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])

    def step(ids, state):
        logits, _ = model(Tensor(ids[:, -16:]))                             # (M, T, V)
        return F.log_softmax(logits[:, -1], axis=-1), state

    seqs, _ = greedy_decode(step, prompt, max_len=9)
    np.testing.assert_array_equal(np.stack(seqs), model.generate(prompt, 6, temperature=0))
    beam, _ = beam_search(step, prompt, beam_size=3, max_len=9)
    assert all(len(s) == 9 for s in beam)
    model.train()
    np.testing.assert_array_equal(model.generate(prompt, 6, num_beams=3), np.stack(beam))
    assert model.training                                                   # mode restored
    np.testing.assert_array_equal(model.generate(prompt, 6, num_beams=1, temperature=0),
                                  np.stack(seqs))
    with pytest.raises(ValueError, match="num_beams"):
        model.generate(prompt, 2, num_beams=0)
