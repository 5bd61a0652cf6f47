"""Sweep reports: weights pair with returns by objective name, and a report directory is
written as one unit."""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from tora.evaluate import steering_correlation
from tora.evaluate.report import REPORT_FILES, summarize_sweep, write_sweep_report
from tora.evaluate.rollout import SweepResult
from tora.io import PUBLISH_LOCK_FILE, publish_files

W2 = np.array([[1.0, 0.0], [0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0.0, 1.0]])


def sweep(
    weights: np.ndarray,
    rewards: list[str],
    models: list[str] | None,
    episodes: int = 2,
    env_id: str = "test/Env-v0",
) -> SweepResult:
    """A sweep whose return on reward r rises with the weight on the model named r (perfect
    steering); rewards without a model stay flat."""
    n = weights.shape[0]
    means = np.full((n, len(rewards)), 5.0)
    for j, name in enumerate(models if models is not None else rewards):
        if name in rewards:
            means[:, rewards.index(name)] = 10.0 * weights[:, j] + 1.0
    returns = np.repeat(means[:, None, :], episodes, axis=1)
    returns = returns + np.linspace(-0.1, 0.1, episodes)[None, :, None]
    meta = {} if models is None else {"models": models}
    return SweepResult(weights, returns, np.full((n, episodes), 100), rewards, env_id, 0, meta=meta)


def test_reordered_models_pair_weights_with_returns_by_name() -> None:
    # Weights for (energy, speed), returns in the env's (speed, energy) order: pairing by
    # position would see the steering exactly backwards.
    result = sweep(W2, ["speed", "energy"], ["energy", "speed"])
    summary = summarize_sweep(result, [0.0, 0.0])
    assert summary["steering_correlation"] == pytest.approx(1.0)
    assert summary["steering_objectives"] == ["energy", "speed"]
    assert summary["weight_objectives"] == ["energy", "speed"]
    assert summary["objectives"] == ["speed", "energy"]


def test_subset_of_models_steers_over_the_objectives_with_both() -> None:
    w = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    result = sweep(w, ["speed", "jump", "energy"], ["energy", "speed"])
    summary = summarize_sweep(result, [0.0, 0.0, 0.0])
    assert summary["steering_correlation"] == pytest.approx(1.0)
    assert summary["steering_objectives"] == ["energy", "speed"]
    # The maximize flags are per reward objective; only the paired ones count.
    flipped = summarize_sweep(result, [0.0, 0.0, 0.0], maximize=[True, True, False])
    assert flipped["steering_correlation"] == pytest.approx(0.0)  # energy -1, speed +1

    none = sweep(np.ones((1, 1)), ["speed", "energy"], ["comfort"])
    summary = summarize_sweep(none, [0.0, 0.0])
    assert summary["steering_correlation"] is None and summary["steering_objectives"] == []


def test_sweeps_without_model_names_keep_the_reward_order() -> None:
    # The bench suite's sweeps carry no meta["models"]: one weight per reward, in order.
    result = sweep(W2, ["speed", "energy"], None)
    summary = summarize_sweep(result, [0.0, 0.0])
    assert summary["steering_correlation"] == pytest.approx(1.0)
    assert summary["steering_objectives"] == ["speed", "energy"]
    expected = steering_correlation(result.weights, result.mean_returns)
    assert summary["steering_correlation"] == pytest.approx(expected)


def read_csv_header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f))


def test_report_of_a_subset_writes_every_file_with_named_columns(tmp_path: Path) -> None:
    w = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    result = sweep(w, ["speed", "jump", "energy"], ["energy", "speed"])
    summary = summarize_sweep(result, [0.0, 0.0, 0.0])
    paths = write_sweep_report(result, summary, tmp_path / "out")
    assert sorted(paths) == sorted(REPORT_FILES)
    assert all(p.stat().st_size > 0 for p in paths.values())
    assert read_csv_header(paths["csv"]) == [
        "preference",
        "episode",
        "w_energy",
        "w_speed",
        "return_speed",
        "return_jump",
        "return_energy",
        "length",
    ]
    one = sweep(np.ones((1, 1)), ["speed", "energy"], ["energy"])
    paths = write_sweep_report(one, summarize_sweep(one, [0.0, 0.0]), tmp_path / "one")
    assert read_csv_header(paths["csv"])[2:5] == ["w_energy", "return_speed", "return_energy"]
    assert paths["weight_plot"].stat().st_size > 0


def test_publish_replaces_known_files_removes_stale_ones_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    out, staged = tmp_path / "out", tmp_path / "staged"
    out.mkdir()
    staged.mkdir()
    (out / "a.json").write_text("old a")
    (out / "b.png").write_text("old b, not produced this time")
    (out / "notes.txt").write_text("the user's")
    (staged / "a.json").write_text("new a")
    moved = publish_files(staged, out, ["a.json", "b.png"])
    assert moved == [out / "a.json"]
    assert (out / "a.json").read_text() == "new a"
    assert not (out / "b.png").exists()
    assert (out / "notes.txt").read_text() == "the user's"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["a.json", "notes.txt", PUBLISH_LOCK_FILE]
    )
    for bad in ("../x", "sub/x", "", PUBLISH_LOCK_FILE):
        with pytest.raises(ValueError, match="plain file names"):
            publish_files(staged, out, [bad])
    with pytest.raises(ValueError, match="not a directory"):
        publish_files(staged, out / "notes.txt", ["a.json"])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_interleaved_writers_leave_all_files_of_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer A starts, writes some files, and is held just before its last plot while writer
    B writes a whole report into the same directory; then A finishes. Files written in place
    one by one would end as a mix (A's plot next to B's results); the directory must hold
    A's report alone, config.json included."""
    import tora.evaluate.report as report

    results = {
        "A": sweep(W2, ["speed", "energy"], ["speed", "energy"]),
        "B": sweep(W2[::-1] * 1.0, ["speed", "energy"], ["energy", "speed"], episodes=3),
    }
    # What each writer's files look like when written alone.
    alone = {}
    for name, result in results.items():
        paths = write_sweep_report(
            result,
            summarize_sweep(result, [0.0, 0.0]),
            tmp_path / f"alone_{name}",
            title=name,
            json_files={"config.json": {"writer": name}},
        )
        alone[name] = {p.name: digest(p) for p in paths.values()}

    a_waiting, b_done = threading.Event(), threading.Event()
    real_plot = report.plot_weight_sweep

    def held_plot(*args: object, **kwargs: object) -> Path:
        if args[4] == "A":  # the title
            a_waiting.set()
            assert b_done.wait(timeout=30)
        return real_plot(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(report, "plot_weight_sweep", held_plot)
    out = tmp_path / "shared"
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            result = results[name]
            write_sweep_report(
                result,
                summarize_sweep(result, [0.0, 0.0]),
                out,
                title=name,
                json_files={"config.json": {"writer": name}},
            )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread_a = threading.Thread(target=write, args=("A",))
    thread_a.start()
    assert a_waiting.wait(timeout=30)
    write("B")
    b_done.set()
    thread_a.join(timeout=60)
    assert not errors and not thread_a.is_alive()

    assert json.loads((out / "config.json").read_text()) == {"writer": "A"}
    assert json.loads((out / "results.json").read_text())["sweep"]["models"] == ["speed", "energy"]
    assert {name: digest(out / name) for name in alone["A"]} == alone["A"]
    # No staging directory is left behind next to the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone_A", "alone_B", "shared"]
