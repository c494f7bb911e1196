"""tinygrad_llm.checkpoint: a save either completes or leaves the old file as it was."""

import numpy as np
import pytest

from tinygrad_llm.checkpoint import atomic_write, load_npz, save_npz


def test_save_npz_round_trips_arrays_and_meta(tmp_path):
    path = tmp_path / "ckpt.npz"
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.array([3, 1])}
    save_npz(path, arrays, {"iter": 7, "name": "été"})
    meta, loaded = load_npz(path)
    assert meta == {"iter": 7, "name": "été"}
    assert loaded.keys() == arrays.keys()
    for k in arrays:
        np.testing.assert_array_equal(loaded[k], arrays[k])
        assert loaded[k].dtype == arrays[k].dtype


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_npz(path, {"w": np.ones(3)}, {"iter": 1})
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_write(path) as f:
            f.write(b"half a checkpoint")
            raise RuntimeError("crash mid-save")
    assert load_npz(path)[0] == {"iter": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_load_npz_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta_json=np.frombuffer(b"{}", dtype=np.uint8),
             obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_npz(path)


def test_load_checkpoint_says_what_is_wrong(tmp_path):
    from tinygrad_llm.checkpoint import CheckpointError, load_checkpoint
    path = tmp_path / "ckpt.npz"
    with pytest.raises(CheckpointError, match="no checkpoint at .*check --out-dir"):
        load_checkpoint(path, "demo", 1, "demo.py")
    path.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable checkpoint .*corrupt or truncated"):
        load_checkpoint(path, "demo", 1, "demo.py")
    save_npz(path, {"w": np.ones(2)}, {"format": "other", "version": 1})
    with pytest.raises(CheckpointError, match="is not a demo.py checkpoint"):
        load_checkpoint(path, "demo", 1, "demo.py")
    save_npz(path, {"w": np.ones(2)}, {"format": "demo", "version": 2})
    with pytest.raises(CheckpointError, match="version 2; this script reads version 1"):
        load_checkpoint(path, "demo", 1, "demo.py")
    save_npz(path, {"w": np.arange(3.0)}, {"format": "demo", "version": 1, "step": 7})
    meta, arrays = load_checkpoint(path, "demo", 1, "demo.py")
    assert meta["step"] == 7
    np.testing.assert_array_equal(arrays["w"], [0.0, 1.0, 2.0])


def test_safetensors_round_trips_names_dtypes_shapes_and_metadata(tmp_path):
    from tinygrad_llm.checkpoint import load_safetensors, save_safetensors
    rng = np.random.default_rng(0)
    arrays = {"h.0.attn.c_attn.weight": rng.standard_normal((4, 12)).astype(np.float32),
              "wte": rng.standard_normal((5, 4)),
              "ids": np.arange(7, dtype=np.int64),
              "t": rng.standard_normal((3, 2)).T}             # not contiguous: saved as values
    path = tmp_path / "model.safetensors"
    save_safetensors(path, arrays, {"format": "pt"})
    loaded, meta = load_safetensors(path)
    assert meta == {"format": "pt"}
    assert set(loaded) == set(arrays)
    for k, a in arrays.items():
        assert loaded[k].dtype == a.dtype and loaded[k].shape == a.shape
        np.testing.assert_array_equal(loaded[k], a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_safetensors_bad_input_says_which_file_or_tensor(tmp_path):
    from tinygrad_llm.checkpoint import CheckpointError, load_safetensors, save_safetensors
    with pytest.raises(CheckpointError, match="no safetensors file at .*missing"):
        load_safetensors(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="bad.safetensors is not a readable safetensors"):
        load_safetensors(bad)
    with pytest.raises(TypeError, match="'w' is a list"):
        save_safetensors(tmp_path / "x.safetensors", {"w": [1.0]})
    assert not (tmp_path / "x.safetensors").exists()


def test_optimizer_state_round_trips_through_arrays_and_json(tmp_path):
    import json

    from tinygrad_llm.checkpoint import optimizer_from_arrays, optimizer_to_arrays
    state = {"state": {0: {"step": 3, "exp_avg": np.arange(4.0)}, 1: {"step": 3}},
             "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0, 1]}]}
    arrays, meta = optimizer_to_arrays(state)
    assert set(arrays) == {"optim.0.exp_avg"}
    save_npz(tmp_path / "s.npz", arrays, {"optim": json.loads(json.dumps(meta))})
    meta2, arrays2 = load_npz(tmp_path / "s.npz")
    back = optimizer_from_arrays(meta2["optim"], arrays2)
    assert back["state"][0]["step"] == 3 and back["state"][1] == {"step": 3}
    np.testing.assert_array_equal(back["state"][0]["exp_avg"], np.arange(4.0))
    assert back["param_groups"] == [{"lr": 0.1, "betas": [0.9, 0.99], "params": [0, 1]}]
