"""``tora safe bench`` end to end on the toy: cells, resumption, skipped tasks, the table."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tora.bench.runner import EntryCells, cell_sources
from tora.cli.main import main
from tora.errors import ToraError
from tora.safe.bench import run_safe_suite, safe_kind
from tora.safe.suite import METHODS, load_safe_suite
from tora.safe.table import TABLE_JSON, TABLE_MD, cell, write_safe_table

TINY = Path(__file__).with_name("tiny.toml")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("safe") / "tiny"
    assert main(["safe", "bench", str(TINY), "--out", str(out), "--no-progress"]) == 0
    return out


def test_bench_writes_every_cell_and_a_table(finished: Path) -> None:
    results = json.loads((finished / TABLE_JSON).read_text())
    methods = results["tasks"]["SafeDash"]["methods"]
    assert set(methods) == set(METHODS)
    for entry in methods.values():
        assert entry["seeds"] == [0, 1]
        summary = entry["summary"]
        assert [s["threshold"] for s in summary["per_threshold"]] == [2.0, 4.0]
        assert summary["average"]["episodes"] == 4  # 2 episodes x 2 thresholds per seed
    # TORA-safe records the chosen weight per threshold and seed; the adaptive option a reserve.
    assert set(methods["tora"]["weight"]) == {"2.0", "4.0"}
    assert set(methods["tora_adaptive"]["reserve"]["2.0"]) <= {0.3, 0.6}
    # The cost-critic row searches its own weight per threshold, with its budget on.
    for seed in (0, 1):
        cell_eval = json.loads(
            (finished / "SafeDash" / "tora_critic" / f"seed{seed}" / "eval.json").read_text()
        )
        for kappa, entry in cell_eval["thresholds"].items():
            assert entry["selection"]["threshold"] == float(kappa)
            assert entry["weight"] == entry["selection"]["weight"]
    assert "DroneCircle" in results["skipped"]
    assert "DroneCircle" in (finished / TABLE_MD).read_text()


def test_table_matches_its_json(finished: Path) -> None:
    results = json.loads((finished / TABLE_JSON).read_text())
    markdown = (finished / TABLE_MD).read_text()
    section = markdown.split("## SafeDash", 1)[1].split("##", 1)[0]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[3:-2]]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| method")
    }
    for entry in results["tasks"]["SafeDash"]["methods"].values():
        summary = entry["summary"]
        expected = []
        for score in [*summary["per_threshold"], summary["average"]]:
            expected.append(cell(score["reward_mean"], score["reward_std"]))
            expected.append(cell(score["cost_mean"], score["cost_std"], score["cost_mean"] < 1))
        assert rows[entry["label"]] == expected
    bold = re.findall(r"\*\*([0-9.]+) ±", section)
    assert all(float(v) < 1 for v in bold)


def test_rerun_is_read_back_and_changed_settings_are_refused(finished: Path) -> None:
    suite = load_safe_suite(TINY)
    suite.out = str(finished)
    before = (finished / TABLE_JSON).read_text()
    logged: list[str] = []
    run_safe_suite(suite, progress=False, log=logged.append)
    assert not any("training" in line for line in logged)
    assert (finished / TABLE_JSON).read_text() == before
    suite.bc.steps = 21
    with pytest.raises(ToraError, match=r"other settings .*config\.steps: 20 -> 21"):
        run_safe_suite(suite, progress=False, only_methods=["bc"], log=logged.append)


def test_cells_made_from_other_data_are_refused(finished: Path, tmp_path: Path) -> None:
    from tora.data.formats import save_dataset
    from tora.safe.suite import TaskEntry
    from tora.safe.toy import collect_toy

    made = finished / "data" / "SafeDash_40_seed0_scripted.hdf5"
    assert made.is_file()  # a made file is named by what made it
    given = tmp_path / "given.hdf5"
    shutil.copyfile(made, given)
    suite = load_safe_suite(TINY)
    suite.out = str(tmp_path / "out")
    suite.tasks = [TaskEntry("tora/SafeDash-v0", data=str(given))]
    suite.eval.seeds = [0]
    run_safe_suite(suite, progress=False, only_methods=["bc"], log=lambda _: None)
    save_dataset(collect_toy(30, 1), given, format="dsrl")  # same name, other episodes
    with pytest.raises(ToraError, match=r"other settings .*data\.sha256: '"):
        run_safe_suite(suite, progress=False, only_methods=["bc"], log=lambda _: None)


def test_a_partial_run_gives_a_partial_table(finished: Path, tmp_path: Path) -> None:
    suite = load_safe_suite(TINY)
    suite.out = str(tmp_path / "copy")
    shutil.copytree(finished, suite.out)
    shutil.rmtree(Path(suite.out) / "SafeDash" / "cdt" / "seed1")
    results = write_safe_table(suite)
    assert results["tasks"]["SafeDash"]["methods"]["cdt"]["seeds"] == [0]


def test_critic_row_with_tora_safes_weights_takes_them_from_its_cell(
    finished: Path, tmp_path: Path
) -> None:
    """The legacy ``[critic] weights = "tora"``: no search of its own; each threshold acts
    with the weight TORA-safe's cell selected (read back, not re-run)."""
    import dataclasses

    suite = load_safe_suite(TINY)
    suite.out = str(tmp_path / "copy")
    shutil.copytree(finished, suite.out)
    shutil.rmtree(Path(suite.out) / "SafeDash" / "tora_critic")
    suite.critic = dataclasses.replace(suite.critic, weights="tora")
    logged: list[str] = []
    run_safe_suite(suite, progress=False, only_methods=["tora_critic"], log=logged.append)
    for seed in (0, 1):
        cell_dir = Path(suite.out) / "SafeDash"
        tora = json.loads((cell_dir / "tora" / f"seed{seed}" / "eval.json").read_text())
        critic = json.loads((cell_dir / "tora_critic" / f"seed{seed}" / "eval.json").read_text())
        assert "select_s" not in critic
        for kappa, entry in critic["thresholds"].items():
            assert "selection" not in entry
            assert entry["weight"] == tora["thresholds"][kappa]["weight"]


def test_table_states_the_selection_rule(finished: Path, tmp_path: Path) -> None:
    suite = load_safe_suite(TINY)
    suite.out = str(tmp_path / "copy")
    shutil.copytree(finished, suite.out)
    write_safe_table(suite)
    text = (Path(suite.out) / TABLE_MD).read_text()
    assert "safe when the mean selection cost is below (1 - 0.1) x the threshold" in text
    suite.select.cost_z = 1.645
    write_safe_table(suite)
    text = (Path(suite.out) / TABLE_MD).read_text()
    assert "mean selection cost plus 1.645 standard errors is below (1 - 0.1)" in text


def test_unknown_task_and_method_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "safe"\nmethods = ["tora"]\n[[tasks]]\nid = "tora/Cruise-v0"\n')
    with pytest.raises(ToraError, match="not a safe-RL task"):
        load_safe_suite(bad)
    bad.write_text('kind = "safe"\nmethods = ["oasis"]\n[[tasks]]\nid = "SafetyBallRun-v0"\n')
    with pytest.raises(ToraError, match="unknown method"):
        load_safe_suite(bad)
    bad.write_text(
        'kind = "safe"\n[eval]\nthresholds = [0.0]\n[[tasks]]\nid = "SafetyBallRun-v0"\n'
    )
    with pytest.raises(ToraError, match="thresholds"):
        load_safe_suite(bad)


def test_a_suite_of_the_other_kind_names_the_command_that_runs_it(tmp_path: Path) -> None:
    from tora.bench.config import load_suite

    with pytest.raises(ToraError, match="run it with `tora safe bench"):
        load_suite(TINY)
    mujoco = tmp_path / "mujoco.toml"
    mujoco.write_text('methods = ["bc"]\n[[envs]]\nid = "tora/Cruise-v0"\n')
    with pytest.raises(ToraError, match="run it with `tora bench run"):
        load_safe_suite(mujoco)
    mujoco.write_text('kind = "atari"\n')
    with pytest.raises(ToraError, match="unknown suite kind 'atari'"):
        load_safe_suite(mujoco)


def test_select_command_prints_and_writes_its_evidence(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = finished / "SafeDash" / "tora_model" / "seed0"
    out = tmp_path / "evidence.json"
    base = ["safe", "select", "--run", str(run), "--env", "tora/SafeDash-v0", "--no-progress"]
    small = ["--episodes", "2", "--coarse", "3", "--rounds", "1", "--out", str(out)]
    assert main([*base, *small, "--threshold", "2", "4", "--adaptive"]) == 0
    printed = capsys.readouterr().out
    assert "threshold 2" in printed and "threshold 4" in printed and "chosen" in printed
    evidence = json.loads(out.read_text())
    assert set(evidence["thresholds"]) == {"2.0", "4.0"}
    assert evidence["episode_seeds"][0] >= 1_000_000  # the selection range, not the table's
    assert "reserve" in evidence["thresholds"]["2.0"]["adaptive"]
    assert main([*base, *small, "--threshold", "0"]) == 2
    assert "threshold > 0" in capsys.readouterr().err


def test_data_option_points_a_task_at_a_file(tmp_path: Path) -> None:
    """--data TASK=PATH (short names too) sets that task's file; a malformed spec, a task
    the suite does not have and a missing file are refused before anything runs."""
    from tora.safe.suite import with_data_files

    here = Path(__file__).with_name("tiny.toml")
    file = tmp_path / "DroneCircle.hdf5"
    file.write_bytes(b"")
    suite = with_data_files(load_safe_suite(here), [f"DroneCircle={file}"])
    drone = [t for t in suite.tasks if "DroneCircle" in t.id]
    assert [t.data for t in drone] == [str(file)]
    with pytest.raises(ToraError, match="--data takes TASK=PATH"):
        with_data_files(load_safe_suite(here), ["DroneCircle"])
    with pytest.raises(ToraError, match="CarRun is not a task of this suite"):
        with_data_files(load_safe_suite(here), [f"CarRun={file}"])
    with pytest.raises(ToraError, match="is not a file"):
        with_data_files(load_safe_suite(here), [f"SafetyDroneCircle-v0={tmp_path / 'none.h5'}"])


def test_tasks_are_named_by_their_short_names_too() -> None:
    from tora.safe.suite import task_env

    assert task_env("CarRun") == task_env("SafetyCarRun-v0") == task_env("OfflineCarRun-v0")
    with pytest.raises(ToraError, match="not a safe-RL task"):
        task_env("tora/MO-Hopper-v0")


def test_seed_option_runs_one_seed_and_refuses_others(tmp_path: Path) -> None:
    out = tmp_path / "one_seed"
    args = ["safe", "bench", str(TINY), "--out", str(out), "--no-progress", "--method", "bc"]
    assert main([*args, "--seed", "1"]) == 0
    assert sorted(p.name for p in (out / "SafeDash" / "bc").iterdir()) == ["seed1"]
    assert main([*args, "--seed", "7"]) == 2  # not a seed of the suite: refused, nothing run
    assert sorted(p.name for p in (out / "SafeDash" / "bc").iterdir()) == ["seed1"]


def test_cells_that_use_tora_safes_model_wait_for_its_cell() -> None:
    suite = load_safe_suite(TINY)
    kind = safe_kind(suite)
    entry = suite.tasks[0]

    def sources(methods: list[str]) -> dict[str, list[str]]:
        item = EntryCells(entry, entry.id, [(m, 0) for m in methods])
        return {key[1]: [s[1] for s in before] for key, before in cell_sources(kind, item).items()}

    waits = {"tora_adaptive": ["tora"], "tora_critic": ["tora"]}
    assert sources(suite.methods) == {m: waits.get(m, []) for m in suite.methods}
    # Without TORA-safe's own cell, the first cell that needs its model trains it; the
    # critic's cell waits for that one rather than train the same model at the same time.
    assert sources(["tora_adaptive", "tora_critic", "bc"]) == {
        "tora_adaptive": [],
        "tora_critic": ["tora_adaptive"],
        "bc": [],
    }
