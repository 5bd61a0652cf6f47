"""Checkpoints: round trips, exact resume, clear errors, atomicity and no pickle."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from tora.errors import CheckpointError, ToraError
from tora.io import atomic_write_bytes, atomic_write_json, file_sha256
from tora.train import checkpoint as ckpt


def _mlp(in_dim: int = 4, hidden: int = 8, out_dim: int = 3, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def _train_steps(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=gen)
        loss = model(x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@contextlib.contextmanager
def no_pickle() -> Iterator[None]:
    """Make every pickle-based serializer fail inside the block, so any use fails the test.

    Only wrapped around saving and loading: training itself may lazily import torch modules
    that subclass ``pickle.Pickler``, which must keep working.
    """

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle must not be used for checkpoints")

    class ForbiddenPickler(pickle.Pickler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            forbidden()

    class ForbiddenUnpickler(pickle.Unpickler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            forbidden()

    with pytest.MonkeyPatch.context() as mp:
        for name in ("dump", "dumps", "load", "loads"):
            mp.setattr(pickle, name, forbidden)
        mp.setattr(pickle, "Pickler", ForbiddenPickler)
        mp.setattr(pickle, "Unpickler", ForbiddenUnpickler)
        for module in (torch, torch.serialization):
            mp.setattr(module, "save", forbidden)
            mp.setattr(module, "load", forbidden)
        yield


def test_module_round_trip(tmp_path: Path) -> None:
    model = _mlp(seed=0)
    config = {"hidden": 8, "name": "mlp", "dims": [4, 3]}
    with no_pickle():
        ckpt.save_module(tmp_path / "m", model, config)
        saved = ckpt.read_config(tmp_path / "m")
    weights = tmp_path / "m" / ckpt.MODEL_FILE
    # The config comes back with the weights' own hash and size added, nothing else.
    assert saved == {
        **config,
        ckpt.WEIGHTS_SHA256_KEY: file_sha256(weights),
        ckpt.WEIGHTS_BYTES_KEY: weights.stat().st_size,
    }
    text = (tmp_path / "m" / "config.json").read_text()
    assert text.endswith("\n") and text == json.dumps(saved, sort_keys=True, indent=2) + "\n"

    fresh = _mlp(seed=1)
    assert not torch.equal(fresh[0].weight, model[0].weight)
    with no_pickle():
        assert ckpt.load_state_into(tmp_path / "m", fresh) is fresh
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_save_tensors_metadata_and_tied_weights(tmp_path: Path) -> None:
    shared = torch.arange(6.0).reshape(2, 3)
    # Two names for one storage (tied weights) would make safetensors refuse to save.
    ckpt.save_tensors(tmp_path / "t.safetensors", {"a": shared, "b": shared}, {"k": "v"})
    out = ckpt.load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(out["a"], shared) and torch.equal(out["b"], shared)
    with pytest.raises(CheckpointError, match="str to str"):
        ckpt.save_tensors(tmp_path / "u.safetensors", {"a": shared}, {"k": 1})  # type: ignore[dict-item]


def test_adamw_resume_is_bitwise_exact(tmp_path: Path) -> None:
    model = _mlp(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, betas=(0.8, 0.95))
    ema = _mlp(seed=5)
    _train_steps(model, opt, 3, seed=1)
    rng = torch.get_rng_state()
    with no_pickle():
        ckpt.save_training_state(
            tmp_path / "state",
            step=3,
            model=model,
            optimizer=opt,
            ema=ema,
            extra_tensors={"torch_rng": rng},
            extra_json={"history": [{"step": 3, "loss": 0.5}]},
        )

    model2 = _mlp(seed=7)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0)  # hyper-parameters come from the file
    ema2 = _mlp(seed=8)
    with no_pickle():
        restored = ckpt.load_training_state(tmp_path / "state", model2, opt2, ema2)
    assert restored["step"] == 3
    assert restored["extra_json"] == {"history": [{"step": 3, "loss": 0.5}]}
    assert restored["extra_tensors"]["torch_rng"].dtype == torch.uint8
    assert torch.equal(restored["extra_tensors"]["torch_rng"], rng)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)
    assert opt2.param_groups[0]["lr"] == 1e-2
    for p, q in zip(ema.parameters(), ema2.parameters(), strict=True):
        assert torch.equal(p, q)

    _train_steps(model, opt, 2, seed=2)
    _train_steps(model2, opt2, 2, seed=2)
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)


def test_optimizer_with_non_tensor_state(tmp_path: Path) -> None:
    # SGD with momentum keeps a tensor buffer; Adam-family keeps a tensor step: also check an
    # optimizer whose state holds python values, which must go through JSON.
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train_steps(model, opt, 2, seed=0)
    opt.state[next(iter(model.parameters()))]["note"] = (1, 2.5, None)
    ckpt.save_training_state(tmp_path / "s", step=2, model=model, optimizer=opt, ema=None)
    model2 = _mlp(seed=3)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.5, momentum=0.1)
    ckpt.load_training_state(tmp_path / "s", model2, opt2)
    assert opt2.state[next(iter(model2.parameters()))]["note"] == (1, 2.5, None)
    _train_steps(model, opt, 1, seed=4)
    _train_steps(model2, opt2, 1, seed=4)
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)


def test_shape_mismatch_lists_keys_and_shapes(tmp_path: Path) -> None:
    ckpt.save_module(tmp_path / "m", _mlp(in_dim=12), {"obs_dim": 12})
    with pytest.raises(CheckpointError) as info:
        ckpt.load_state_into(tmp_path / "m", _mlp(in_dim=20))
    message = str(info.value)
    assert "checkpoint has 0.weight (8, 12) but the model expects (8, 20)" in message
    assert "obs_dim" in message
    assert isinstance(info.value, ToraError)


def test_missing_and_unexpected_keys(tmp_path: Path) -> None:
    ckpt.save_module(tmp_path / "m", _mlp(), {})
    bigger = nn.Sequential(*_mlp(), nn.Linear(3, 2))
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: 3\.bias, 3\.weight"):
        ckpt.load_state_into(tmp_path / "m", bigger)


def test_truncated_safetensors_raises(tmp_path: Path) -> None:
    ckpt.save_module(tmp_path / "m", _mlp(), {})
    path = tmp_path / "m" / ckpt.MODEL_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    half = f"truncated \\({len(data) // 2:,} of {len(data):,} bytes\\)"
    with pytest.raises(CheckpointError, match=half):
        ckpt.load_state_into(tmp_path / "m", _mlp())
    # Without a recorded hash (directories saved by older versions) safetensors itself still
    # refuses the half file.
    (tmp_path / "m" / ckpt.CONFIG_FILE).write_text("{}")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        ckpt.load_state_into(tmp_path / "m", _mlp())
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError):
        ckpt.load_tensors(path)
    with pytest.raises(CheckpointError, match="no such"):
        ckpt.load_tensors(tmp_path / "absent.safetensors")


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_byte_in_weights_is_refused_as_corrupt(tmp_path: Path) -> None:
    ckpt.save_module(tmp_path / "m", _mlp(), {})
    path = tmp_path / "m" / ckpt.MODEL_FILE
    # The last byte is inside the tensor data: safetensors alone would load it silently.
    _flip_byte(path, path.stat().st_size - 1)
    with pytest.raises(CheckpointError, match=r"corrupt \(same size as saved.*SHA-256"):
        ckpt.load_state_into(tmp_path / "m", _mlp(), remedy="do X")
    with pytest.raises(CheckpointError, match=r"; do X$"):
        ckpt.verify_weights(tmp_path / "m", remedy="do X")
    _flip_byte(path, path.stat().st_size - 1)  # flipped back: loads again
    ckpt.load_state_into(tmp_path / "m", _mlp())


def test_weights_of_another_size_and_missing_weights(tmp_path: Path) -> None:
    ckpt.save_module(tmp_path / "m", _mlp(), {})
    path = tmp_path / "m" / ckpt.MODEL_FILE
    path.write_bytes(path.read_bytes() + b"extra")
    with pytest.raises(CheckpointError, match="replaced or corrupt"):
        ckpt.verify_weights(tmp_path / "m")
    path.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        ckpt.verify_weights(tmp_path / "m")


def test_config_missing_or_corrupt(tmp_path: Path) -> None:
    ckpt.save_module(tmp_path / "m", _mlp(), {"a": 1})
    (tmp_path / "m" / ckpt.CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        ckpt.read_config(tmp_path / "m")
    (tmp_path / "m" / ckpt.CONFIG_FILE).write_text("{broken")
    with pytest.raises(CheckpointError, match="corrupt JSON"):
        ckpt.read_config(tmp_path / "m")


def test_atomic_writes_leave_no_temp_files(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"one")
    atomic_write_bytes(tmp_path / "a.bin", b"two")
    atomic_write_json(tmp_path / "b.json", {"z": 1, "a": [1, 2]})
    ckpt.save_module(tmp_path / "m", _mlp(), {"x": 1})
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters())
    for step in (1, 2):  # the second save replaces the first through the staging siblings
        ckpt.save_training_state(tmp_path / "s", step=step, model=model, optimizer=opt, ema=None)
    assert (tmp_path / "a.bin").read_bytes() == b"two"
    assert (tmp_path / "b.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "z": 1\n}\n'
    hidden = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert hidden == []
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]


def test_interrupted_swap_is_recovered(tmp_path: Path) -> None:
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters())
    final = tmp_path / "s"
    ckpt.save_training_state(final, step=1, model=model, optimizer=opt, ema=None)
    ckpt.save_training_state(tmp_path / "other", step=2, model=model, optimizer=opt, ema=None)
    # Simulate a kill between "final -> .old" and ".new -> final".
    os.replace(final, tmp_path / ".s.old")
    os.replace(tmp_path / "other", tmp_path / ".s.new")
    assert ckpt.has_training_state(final)
    assert (
        ckpt.load_training_state(final, _mlp(), torch.optim.AdamW(_mlp().parameters()))["step"] == 2
    )
    # A kill while ``.new`` was still being written: only the old state is complete.
    (tmp_path / ".s.new" / ckpt.TRAINING_STATE_FILE).unlink()
    assert (
        ckpt.load_training_state(final, _mlp(), torch.optim.AdamW(model.parameters()))["step"] == 1
    )
    ckpt.save_training_state(final, step=3, model=model, optimizer=opt, ema=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_training_state_errors(tmp_path: Path) -> None:
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters())
    assert not ckpt.has_training_state(tmp_path / "s")
    with pytest.raises(CheckpointError, match="no such training-state directory"):
        ckpt.load_training_state(tmp_path / "s", model, opt)
    ckpt.save_training_state(tmp_path / "s", step=1, model=model, optimizer=opt, ema=None)
    with pytest.raises(CheckpointError, match="has none"):
        ckpt.load_training_state(tmp_path / "s", model, opt, ema=_mlp())
    path = tmp_path / "s" / "optimizer.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a bit flip the safetensors header cannot reveal
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        ckpt.load_training_state(tmp_path / "s", model, opt)


def test_no_pickle_guard_catches_pickle_use(tmp_path: Path) -> None:
    # The guard used above must really trip on pickle, or those tests would prove nothing.
    with no_pickle():
        with pytest.raises(AssertionError):
            torch.save({"a": torch.zeros(1)}, tmp_path / "x.pt")
        with pytest.raises(AssertionError):
            pickle.dumps(1)
        with pytest.raises(AssertionError):
            torch.serialization.save({}, tmp_path / "y.pt")
