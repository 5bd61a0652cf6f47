"""A run directory cannot hold models that do not belong together: damaged weights are
refused as damaged, training state resumes only on the inputs it was started from, a refused
call changes nothing on disk, and ``--restart`` moves stale work aside instead of deleting it.

Each test replays one way a probe of issue 16 got a run to mix models with exit status 0.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tora
from tora.cli.main import main
from tora.configs import config_from_dict
from tora.errors import CheckpointError, StaleRunError
from tora.io import file_sha256
from tora.train.dpo import DPOConfig
from tora.train.loop import STALE_PREFIX, OptimConfig, check_resumable, run_identity
from tora.train.planner_io import reference_hash
from tora.train.pretrain import PretrainConfig

# Tiny but complete settings: every stage trains, in well under a second each.
PRETRAIN = [
    "--steps", "20", "--batch-size", "16", "--diffusion-steps", "10", "--denoiser-hidden-dim",
    "32", "--denoiser-depth", "1", "--denoiser-time-dim", "8", "--optim-checkpoint-every", "10",
    "--inverse-steps", "20", "--inverse-batch-size", "16", "--inverse-network-hidden-dim", "16",
    "--no-progress", "--device", "cpu",
]  # fmt: skip
FINETUNE = [
    "--steps", "6", "--batch-size", "4", "--num-pairs", "50", "--segment-length", "8",
    "--optim-checkpoint-every", "3", "--no-progress", "--device", "cpu",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_files: tuple[Path, Path]) -> Path:
    """A finished run (reference, inverse dynamics, speed model) made through the CLI."""
    run = tmp_path_factory.mktemp("runs") / "run"
    data = str(data_files[0])
    assert main(["pretrain", "--data", data, "--run", str(run), *PRETRAIN]) == 0
    command = ["finetune", "--data", data, "--run", str(run), "--objective", "speed"]
    assert main([*command, *FINETUNE]) == 0
    return run


@pytest.fixture()
def run(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` by its hash: "nothing changed" is then one comparison."""
    return {
        str(p.relative_to(directory)): file_sha256(p) for p in directory.rglob("*") if p.is_file()
    }


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


# ------------------------------------------------------------- 1. stale training state
def test_changed_reference_refuses_the_objectives_leftover_state(
    run: Path, data_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(data_files[0])
    # More pretraining steps continue the same run (allowed) and change the reference...
    assert main(["pretrain", "--data", data, "--run", str(run), *PRETRAIN, "--steps", "30"]) == 0
    assert "resuming from step 20 of 30" in capsys.readouterr().err
    # ... so the objective's state, at its last step, must not be resumed and relabelled.
    before = _snapshot(run / "objectives")
    command = ["finetune", "--data", data, "--run", str(run), "--objective", "speed", *FINETUNE]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "reference_sha256" in err and "--restart" in err
    assert _snapshot(run / "objectives") == before
    with pytest.raises(CheckpointError, match="different reference"):
        tora.Agent.load(run, device="cpu")
    # --restart moves the stale model aside (kept, not deleted) and trains a fresh one.
    assert main([*command, "--restart"]) == 0
    assert "moved the earlier contents" in capsys.readouterr().err
    stale = [p for p in (run / "objectives" / "speed").iterdir() if p.name.startswith(STALE_PREFIX)]
    assert len(stale) == 1 and (stale[0] / "model.safetensors").is_file()
    config = json.loads((run / "objectives" / "speed" / "config.json").read_text())
    assert config["reference_sha256"] == reference_hash(run)
    tora.Agent.load(run, device="cpu")


def test_fewer_steps_than_trained_is_refused(
    run: Path, data_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(data_files[0])
    command = ["finetune", "--data", data, "--run", str(run), "--objective", "speed", *FINETUNE]
    before = _snapshot(run)
    assert main([*command, "--steps", "3"]) == 2
    assert "already trained 6 steps, more than the 3 asked for" in capsys.readouterr().err
    assert _snapshot(run) == before


# --------------------------------------------------------------------- 2. damaged weights
@pytest.mark.parametrize("part", ["objectives/speed", "reference", "inverse_dynamics"])
def test_flipped_byte_is_refused_naming_the_file(run: Path, part: str) -> None:
    _flip_last_byte(run / part / "model.safetensors")
    with pytest.raises(CheckpointError, match=rf"{part}/model.safetensors: corrupt") as info:
        tora.Agent.load(run, device="cpu")
    assert "different reference" not in str(info.value)
    assert "--restart" in str(info.value) or "re-run `tora pretrain" in str(info.value)


def test_truncated_reference_is_reported_as_truncated(run: Path) -> None:
    path = run / "reference" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"reference/model.safetensors: truncated") as info:
        tora.Agent.load(run, device="cpu")
    message = str(info.value)
    assert "different reference" not in message and "tora pretrain" in message


# ------------------------------------------------------------------- 3. other data
def test_finished_run_refuses_other_data_and_changes_nothing(
    run: Path, data_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(run)
    other = str(data_files[1])
    assert main(["pretrain", "--data", other, "--run", str(run), *PRETRAIN]) == 2
    err = capsys.readouterr().err
    assert "data_sha256" in err and "--restart" in err
    assert _snapshot(run) == before  # configs, normalizer and recorded data path untouched
    command = ["finetune", "--data", other, "--run", str(run), "--objective", "speed"]
    assert main([*command, *FINETUNE]) == 2
    assert "data_sha256" in capsys.readouterr().err
    assert _snapshot(run) == before


def test_finished_model_without_state_still_refuses_other_data(
    run: Path, data_files: tuple[Path, Path]
) -> None:
    shutil.rmtree(run / "reference" / "train_state")
    saved = json.loads((run / "reference" / "config.json").read_text())
    settings = config_from_dict(PretrainConfig, saved["train"])
    same = run_identity(settings, data_sha256=tora.load_dataset(data_files[0]).fingerprint())
    assert same.values == saved["trained_from"]
    check_resumable(run / "reference", same)
    other = run_identity(settings, data_sha256=tora.load_dataset(data_files[1]).fingerprint())
    with pytest.raises(StaleRunError, match="the finished model was made from other inputs"):
        check_resumable(run / "reference", other)


def test_fingerprint_ignores_metadata_but_not_values(data_files: tuple[Path, Path]) -> None:
    a = tora.load_dataset(data_files[0])
    b = tora.load_dataset(data_files[0])
    b.metadata["path"] = "elsewhere"
    assert a.fingerprint() == b.fingerprint()
    b.rewards[0, 0] = np.nextafter(b.rewards[0, 0], np.float32(np.inf))
    assert a.fingerprint() != b.fingerprint()


def test_legacy_state_without_identity_resumes_with_a_warning(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run / "objectives" / "speed" / "train_state" / "state.json"
    doc = json.loads(path.read_text())
    del doc["extra_json"]["trained_from"]
    path.write_text(json.dumps(doc))
    check_resumable(run / "objectives" / "speed", {"anything": 1})
    assert "older tora" in capsys.readouterr().err


# ------------------------------------------------------------------ 9. pipes, resume line
def test_resume_says_from_which_step_without_progress_bars(
    run: Path, data_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(data_files[0])
    command = ["finetune", "--data", data, "--run", str(run), "--objective", "speed", *FINETUNE]
    assert main([*command, "--steps", "9"]) == 0
    err = capsys.readouterr().err
    assert err.count("resuming from step 6 of 9") == 1


def test_output_piped_into_a_closed_reader_exits_quietly(data_files: tuple[Path, Path]) -> None:
    # The reader closes before the command writes: deterministic, unlike `| head -1`.
    code = "import sys; from tora.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "data", "inspect", str(data_files[0])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait() == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_setting_added_later_counts_as_its_default(run: Path) -> None:
    # A state saved before the field "warmup_steps" existed: resuming with the default (which
    # reproduces the old behaviour) is the same run; asking for a warm-up is another.
    path = run / "objectives" / "speed" / "train_state" / "state.json"
    doc = json.loads(path.read_text())
    saved = doc["extra_json"]["trained_from"]
    del saved["settings"]["optim"]["warmup_steps"]
    path.write_text(json.dumps(doc))
    config = config_from_dict(
        DPOConfig, json.loads((path.parent.parent / "config.json").read_text())["train"]
    )
    inputs = {k: v for k, v in saved.items() if k != "settings"}
    check_resumable(path.parent.parent, run_identity(config, **inputs))
    warm = DPOConfig(
        **{**vars(config), "optim": OptimConfig(**{**vars(config.optim), "warmup_steps": 5})}
    )
    with pytest.raises(StaleRunError, match="warmup_steps"):
        check_resumable(path.parent.parent, run_identity(warm, **inputs))


def test_bad_settings_with_restart_leave_the_earlier_run_in_place(
    run: Path, data_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(data_files[0])
    command = ["finetune", "--data", data, "--run", str(run), "--objective", "speed", *FINETUNE]
    before = _snapshot(run)
    assert main([*command, "--restart", "--held-out-pairs", "-1"]) == 2
    assert "held_out_pairs" in capsys.readouterr().err
    assert _snapshot(run) == before  # nothing moved aside
