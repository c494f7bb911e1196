"""GPT.generate and GPT.forward_cached (tinygrad_llm/models/gpt.py): the KV cache gives the
logits of recomputing the whole context at every step (float64, 1e-9) for greedy, top-k, top-p,
repetition penalty and beam search, with left-padded batches of different prompt lengths and
past the block size; seeded sampling is reproducible; eos stops rows; bad arguments are named.
Parity with Hugging Face's generate and logits processors skips without transformers."""

import numpy as np
import pytest

from tinygrad_llm.models import GPT, GPTConfig

SIZES = dict(vocab_size=23, block_size=24, n_layer=2, n_head=2, n_embd=16)


def _model(dtype=np.float64, seed=0, **config):
    r"""A GPT with every weight ~ N(0, 0.5^2), biases and LayerNorm parameters non-zero."""
    model = GPT(GPTConfig(**dict(SIZES, **config))).to(dtype=dtype)
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        base = 1.0 if ".ln_" in name and name.endswith("weight") else 0.0
        scale = 0.1 if p.ndim == 1 else 0.5
        p.data = (base + scale * rng.standard_normal(p.shape)).astype(dtype)
    return model.eval()


def _padded(rng, lengths, pad=0):
    r"""Left-padded prompts of the given lengths: ids (B, T) and attention_mask (B, T)."""
    t = max(lengths)
    ids = np.full((len(lengths), t), pad, dtype=np.int64)
    mask = np.zeros((len(lengths), t), dtype=np.int64)
    for row, n in enumerate(lengths):
        ids[row, t - n:] = rng.integers(0, SIZES["vocab_size"], size=n)
        mask[row, t - n:] = 1
    return ids, mask


def _assert_same_run(a, b):
    (ids_a, logits_a), (ids_b, logits_b) = a, b
    np.testing.assert_array_equal(ids_a, ids_b)
    assert len(logits_a) == len(logits_b) > 0
    for za, zb in zip(logits_a, logits_b):
        np.testing.assert_allclose(za, zb, rtol=0, atol=1e-9)


# ---- the cache is exact -----------------------------------------------------------------------
@pytest.mark.parametrize("padded", [False, True])
def test_forward_cached_equals_hidden_states(padded):
    model = _model()
    rng = np.random.default_rng(1)
    ids, mask = _padded(rng, [9, 5, 7]) if padded else _padded(rng, [9, 9, 9])
    full = model.hidden_states(ids, mask if padded else None).numpy()          # (B, 9, C)
    cache, start = model.new_cache(), 0
    for size in (3, 1, 4, 1):
        h, cache = model.forward_cached(ids[:, start:start + size], cache,
                                        mask[:, :start + size] if padded else None)
        real = mask[:, start:start + size].astype(bool)[..., None]
        np.testing.assert_allclose(np.where(real, h.numpy(), 0),
                                   np.where(real, full[:, start:start + size], 0),
                                   rtol=0, atol=1e-12)
        start += size
    assert cache.length == 9 and cache.keys[0].shape == (3, 2, 9, 8)


STRATEGIES = {
    "greedy": dict(temperature=0),
    "top_k": dict(temperature=0.8, top_k=5, seed=3),
    "top_p": dict(temperature=1.2, top_p=0.7, seed=4),
    "penalty": dict(temperature=0, repetition_penalty=1.5),
    "beams": dict(num_beams=3, eos_token_id=5, length_penalty=0.8),
}


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_cached_and_uncached_give_the_same_logits_at_every_step(strategy, padded):
    model = _model()
    ids, mask = _padded(np.random.default_rng(2), [6, 3, 5] if padded else [6, 6, 6])
    kwargs = dict(STRATEGIES[strategy], attention_mask=mask if padded else None,
                  output_logits=True)
    cached = model.generate(ids, 10, use_cache=True, **kwargs)
    uncached = model.generate(ids, 10, use_cache=False, **kwargs)
    _assert_same_run(cached, uncached)


def test_past_the_block_size_the_window_slides_and_cache_still_agrees():
    model = _model()
    ids, mask = _padded(np.random.default_rng(3), [7, 4])
    for kwargs in (dict(temperature=0), dict(temperature=0, attention_mask=mask),
                   dict(num_beams=2), dict(top_k=4, seed=1)):
        run = [model.generate(ids, 30, use_cache=c, output_logits=True, **kwargs)
               for c in (True, False)]                                      # 7 + 30 > 24
        _assert_same_run(*run)
        assert run[0][0].shape == (2, 37)
    long_prompt = np.random.default_rng(4).integers(0, 23, size=(1, 30))   # cropped to 24
    run = [model.generate(long_prompt, 3, temperature=0, use_cache=c, output_logits=True)
           for c in (True, False)]
    _assert_same_run(*run)
    np.testing.assert_array_equal(run[0][0][:, :30], long_prompt)


def test_a_left_padded_row_generates_what_it_generates_alone():
    model = _model()
    ids, mask = _padded(np.random.default_rng(5), [8, 3, 5])
    batch, logits = model.generate(ids, 6, temperature=0, attention_mask=mask,
                                   repetition_penalty=1.3, output_logits=True)
    for row in range(3):
        real = ids[row][mask[row] == 1][None]                              # (1, n)
        alone, alone_logits = model.generate(real, 6, temperature=0, repetition_penalty=1.3,
                                             output_logits=True)
        np.testing.assert_array_equal(batch[row, -6:], alone[0, -6:])
        for z, z_alone in zip(logits, alone_logits):
            np.testing.assert_allclose(z[row], z_alone[0], rtol=0, atol=1e-9)


def test_float32_cache_agrees_with_recomputing():
    model = _model(np.float32)
    ids, mask = _padded(np.random.default_rng(6), [5, 2])
    a, b = (model.generate(ids, 8, temperature=0, attention_mask=mask, use_cache=c,
                           output_logits=True) for c in (True, False))
    np.testing.assert_array_equal(a[0], b[0])
    for za, zb in zip(a[1], b[1]):
        np.testing.assert_allclose(za, zb, rtol=0, atol=1e-4)


# ---- decoding behaviour -----------------------------------------------------------------------
def test_seeded_sampling_is_reproducible():
    model = _model()
    ids = np.random.default_rng(7).integers(0, 23, size=(2, 4))
    first = model.generate(ids, 12, temperature=1.0, top_p=0.9, seed=11)
    assert np.array_equal(first, model.generate(ids, 12, temperature=1.0, top_p=0.9, seed=11))
    assert not np.array_equal(first, model.generate(ids, 12, temperature=1.0, top_p=0.9,
                                                    seed=12))


def test_eos_stops_each_row_and_pads_the_rest():
    model = _model()
    ids = np.random.default_rng(8).integers(0, 23, size=(3, 4))
    free = model.generate(ids, 10, temperature=0)
    eos = int(free[0, 6])                                       # row 0 emits it at step 3
    first = [np.flatnonzero(row[4:] == eos) for row in free]
    out = model.generate(ids, 10, temperature=0, eos_token_id=eos, pad_token_id=22)
    for row in range(3):
        if len(first[row]):
            stop = 4 + first[row][0]
            np.testing.assert_array_equal(out[row, :stop + 1], free[row, :stop + 1])
            assert (out[row, stop + 1:] == 22).all()
        else:
            np.testing.assert_array_equal(out[row], free[row, :out.shape[1]])
    if all(len(f) for f in first):                              # all stopped: ends early
        assert out.shape[1] == 4 + 1 + max(f[0] for f in first)


def test_beams_with_eos_are_padded_and_beat_greedy():
    model = _model()
    ids = np.random.default_rng(9).integers(0, 23, size=(2, 3))
    greedy = model.generate(ids, 6, temperature=0)
    beams = model.generate(ids, 6, num_beams=4, length_penalty=0.0)

    def score(seq):                                             # sum of generated log-probs
        logits = model(seq[None])[0].numpy()[0]                 # (T, V)
        top = logits.max(-1, keepdims=True)
        lp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))  # log_softmax
        return sum(lp[t - 1, seq[t]] for t in range(3, len(seq)))

    for row in range(2):
        assert score(beams[row]) >= score(greedy[row]) - 1e-9
    out = model.generate(ids, 6, num_beams=3, eos_token_id=int(greedy[0, 3]), pad_token_id=21)
    assert out.shape[0] == 2 and out.shape[1] <= 9


def test_bad_arguments_name_the_argument_and_value():
    model = _model()
    ids = np.array([[1, 2, 3]])
    for kwargs, message in ((dict(num_beams=0), "num_beams must be an integer >= 1, got 0"),
                            (dict(top_p=0.0), r"top_p must be in \(0, 1\], got 0.0"),
                            (dict(top_p=1.5), r"top_p must be in \(0, 1\], got 1.5"),
                            (dict(repetition_penalty=0), "repetition_penalty must be > 0, got 0"),
                            (dict(repetition_penalty=-1.0), "repetition_penalty"),
                            (dict(eos_token_id=23), r"eos_token_id=23 is outside the vocab"),
                            (dict(eos_token_id=-1), "eos_token_id=-1"),
                            (dict(pad_token_id=99), "pad_token_id=99"),
                            (dict(temperature=-0.5), "temperature must be >= 0, got -0.5"),
                            (dict(top_k=0), "top_k must be an integer >= 1, got 0"),
                            (dict(attention_mask=[[1, 1, 0]]), "pad on the left"),
                            (dict(attention_mask=[[1, 1]]), r"attention_mask must have shape"),
                            (dict(attention_mask=[[2, 1, 1]]), "only 0"),
                            (dict(max_new_tokens=-1), "max_new_tokens")):
        kwargs = dict(dict(max_new_tokens=2), **kwargs)
        with pytest.raises(ValueError, match=message):
            model.generate(ids, **kwargs)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 23\)"):
        model.generate([[1, 30]], 2)
    with pytest.raises(ValueError, match="exceed the block size"):
        model.forward_cached(np.zeros((1, 25), np.int64), model.new_cache())


# ---- parity with Hugging Face -----------------------------------------------------------------
def test_sampling_rules_match_hugging_faces_logits_processors():
    transformers = pytest.importorskip("transformers")
    import torch

    from tinygrad_llm import sampling
    rng = np.random.default_rng(10)
    z = rng.standard_normal((3, 50)) * 3                                   # (B, V)
    ids = rng.integers(0, 50, size=(3, 12))

    def hf(processor, scores=z):
        return processor(torch.from_numpy(ids), torch.from_numpy(scores.copy())).numpy()

    for penalty in (1.3, 0.7):
        np.testing.assert_allclose(
            sampling.repetition_penalty(z, ids, penalty),
            hf(transformers.RepetitionPenaltyLogitsProcessor(penalty)), rtol=0, atol=1e-12)
    for k in (1, 5, 50):
        np.testing.assert_array_equal(sampling.top_k_filter(z, k),
                                      hf(transformers.TopKLogitsWarper(k)))
    for p in (0.05, 0.5, 0.9, 0.999):
        np.testing.assert_array_equal(sampling.top_p_filter(z, p),
                                      hf(transformers.TopPLogitsWarper(p)))
    np.testing.assert_allclose(z / 0.7, hf(transformers.TemperatureLogitsWarper(0.7)),
                               rtol=1e-15)


def _hf_pair(tmp_path, dtype=np.float64):
    transformers = pytest.importorskip("transformers")
    import torch
    ours = _model(dtype, activation="gelu_new")
    ours.save_pretrained(tmp_path)
    hf = transformers.GPT2LMHeadModel.from_pretrained(
        tmp_path, dtype=torch.float64 if dtype == np.float64 else torch.float32).eval()
    return ours, hf, torch


@pytest.mark.parametrize("kwargs", [dict(), dict(repetition_penalty=1.4), dict(num_beams=3)])
def test_greedy_and_beams_match_hugging_faces_generate(tmp_path, kwargs):
    ours, hf, torch = _hf_pair(tmp_path)
    ids = np.random.default_rng(11).integers(0, 23, size=(2, 5))
    with torch.no_grad():
        theirs = hf.generate(torch.from_numpy(ids), attention_mask=torch.ones(2, 5, dtype=int),
                             max_new_tokens=8, do_sample=False, pad_token_id=0,
                             **kwargs).numpy()
    mine = ours.generate(ids, 8, temperature=0, **kwargs)
    np.testing.assert_array_equal(mine, theirs)


def test_left_padded_greedy_matches_hugging_face(tmp_path):
    ours, hf, torch = _hf_pair(tmp_path)
    ids, mask = _padded(np.random.default_rng(12), [6, 2, 4])
    with torch.no_grad():
        out = hf.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                          max_new_tokens=6, do_sample=False, pad_token_id=0,
                          output_logits=True, return_dict_in_generate=True)
    mine, logits = ours.generate(ids, 6, temperature=0, attention_mask=mask,
                                 output_logits=True)
    np.testing.assert_array_equal(mine, out.sequences.numpy())
    for z, theirs in zip(logits, out.logits):               # Hugging Face returns them float32
        np.testing.assert_allclose(z, theirs.numpy(), rtol=0, atol=1e-6)


def test_padded_forward_gradcheck_every_parameter():
    from tinygrad_llm.testing import module_gradcheck
    model = GPT(GPTConfig(vocab_size=23, block_size=5, n_layer=1, n_head=2, n_embd=4))
    ids, mask = _padded(np.random.default_rng(13), [5, 3], pad=6)
    module_gradcheck(model, lambda: model(ids, attention_mask=mask)[0][mask == 1], [], seed=2)


def test_masked_attention_is_the_reference_without_padding_and_zero_on_dead_rows():
    from tinygrad_llm import Tensor, reference
    from tinygrad_llm.nn.attention import masked_attention
    rng = np.random.default_rng(14)
    q = Tensor(rng.standard_normal((2, 3, 4, 5)))                          # (B, nh, L, hs)
    k, v = (Tensor(rng.standard_normal((2, 3, 6, 5))) for _ in range(2))   # (B, nh, S, hs)
    np.testing.assert_allclose(masked_attention(q, k, v).numpy(),
                               reference.attention(q, k, v, causal=True).numpy(),
                               rtol=0, atol=1e-14)
    mask = np.array([[0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=bool)
    y = masked_attention(q, k, v, mask).numpy()
    assert np.isfinite(y).all() and (y[0, :, 0] == 0).all()   # query 0 of row 0 sees no key
    np.testing.assert_allclose(y[1], reference.attention(q, k, v, causal=True).numpy()[1],
                               rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, S\)"):
        masked_attention(q, k, v, mask[:, :5])


@pytest.mark.parametrize("kwargs", [dict(temperature=0), dict(num_beams=2, eos_token_id=5)])
def test_cached_generation_on_each_device_reads_back_only_the_logits(device, kwargs):
    r"""On "cuda" (the strict CuPy stand-in) a float32 model makes no float64 array on the
    device and reads back one (rows, V) logits array per step, nothing else; both devices
    decode the same tokens."""
    import fake_cupy
    ids, mask = _padded(np.random.default_rng(15), [5, 3])
    expected = _model(np.float32).generate(ids, 6, attention_mask=mask, **kwargs)
    model = _model(np.float32).to(device)
    if device == "cuda":
        fake_cupy.forbid_float64()
    with fake_cupy.counting() as counts:
        out, logits = model.generate(ids, 6, attention_mask=mask, output_logits=True, **kwargs)
    np.testing.assert_array_equal(out, expected)
    if device == "cuda":
        assert counts["sync"] == len(logits)                    # one read-back per step
