"""Smoke tests of the ``tora`` command: every subcommand runs, explains itself and fails cleanly."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tora.cli.main import main

TINY = ["--denoiser-hidden-dim", "32", "--denoiser-depth", "1", "--denoiser-time-dim", "8"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["demo"], "Scripted episodes collected"),
        (["pretrain"], "States per planned window"),
        (["finetune"], "KL strength"),
        (["evaluate"], "One weight vector"),
        (["data", "inspect"], "--json"),
        (["data", "make"], "byte-identical"),
        (["bench", "speed"], "Numbers K of composed objective models"),
    ],
)
def test_help_shows_field_docs(
    command: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert expected in " ".join(capsys.readouterr().out.split())


def test_bench_run_help_names_every_registered_method(capsys: pytest.CaptureFixture[str]) -> None:
    from tora.policies.registry import method_names

    with pytest.raises(SystemExit):
        main(["bench", "run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert [m for m in method_names() if f" {m}," not in help_text] == []


def test_bench_run_refuses_a_seed_the_suite_does_not_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text('methods = ["bc"]\n[[envs]]\nid = "tora/Cruise-v0"\nseeds = [0, 1]\n')
    out = tmp_path / "out"
    assert main(["bench", "run", str(suite), "--out", str(out), "--seed", "3"]) == 2
    assert "seed 3 is not in this suite (its envs list [0, 1])" in capsys.readouterr().err
    assert not list(out.glob("*/bc"))  # refused before any cell was made


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "cruise.h5"
    assert main(["data", "make", "--episodes", "6", "--seed", "1", "--out", str(path)]) == 0
    return path


def test_data_make_is_byte_identical_per_seed(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.h5"
    assert main(["data", "make", "--episodes", "6", "--seed", "1", "--out", str(again)]) == 0
    assert again.read_bytes() == dataset.read_bytes()


def test_data_inspect_json(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["data", "inspect", str(dataset), "--json"], capsys)
    info = json.loads(out)
    assert code == 0
    assert info["format"] == "tora" and info["episodes"] == 6 and info["transitions"] == 600
    assert (info["obs_dim"], info["act_dim"]) == (3, 1)
    assert info["objectives"] == ["speed", "energy"] and info["has_costs"] is False


def test_data_inspect_text(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["data", "inspect", str(dataset)], capsys)
    assert code == 0 and "speed" in out and "600" in out


def test_train_then_evaluate(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    common = ["--data", str(dataset), "--run", str(run), "--device", "cpu", "--no-progress"]
    assert (
        main(
            [
                "pretrain",
                *common,
                "--steps",
                "5",
                "--diffusion-steps",
                "10",
                *TINY,
                "--inverse-steps",
                "5",
            ]
        )
        == 0
    )
    assert (run / "reference" / "model.safetensors").exists()
    assert json.loads((run / "pretrain_command.json").read_text())["pretrain"]["steps"] == 5
    for name in ("speed", "energy"):
        assert (
            main(
                [
                    "finetune",
                    *common,
                    "--objective",
                    name,
                    "--steps",
                    "3",
                    "--num-pairs",
                    "50",
                    "--segment-length",
                    "5",
                ]
            )
            == 0
        )
    capsys.readouterr()
    out_dir = tmp_path / "eval"
    code, out, _ = run_cli(
        [
            "evaluate",
            "--run",
            str(run),
            "--weights",
            "0.25,0.75",
            "--episodes",
            "1",
            "--sampler-steps",
            "2",
            "--out",
            str(out_dir),
            "--device",
            "cpu",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0 and "hypervolume" in out
    results = json.loads((out_dir / "results.json").read_text())
    assert results["sweep"]["weights"] == [[0.25, 0.75]]
    assert (out_dir / "config.json").exists() and (out_dir / "pareto_front.png").exists()

    code, _, err = run_cli(
        ["evaluate", "--run", str(run), "--weights", "0.5,0.6", "--no-progress"], capsys
    )
    assert code == 2 and "sum to 1" in err
    code, _, err = run_cli(
        ["evaluate", "--run", str(run), "--objectives", "comfort", "--no-progress"], capsys
    )
    assert code == 2 and "comfort" in err
    code, _, err = run_cli(["finetune", *common, "--objective", "comfort"], capsys)
    assert code == 2 and "unknown objective 'comfort'" in err


def test_missing_and_malicious_files_are_clean_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["data", "inspect", str(tmp_path / "nope.h5")], capsys)
    assert code == 2 and "nope.h5" in err

    class Exploit:
        def __reduce__(self) -> tuple:
            import os

            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps([Exploit()]))
    code, _, err = run_cli(["data", "inspect", str(evil)], capsys)
    assert code == 2 and "system" in err
    assert not (tmp_path / "pwned").exists()


def test_data_make_without_policies_says_how_to_get_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tora.behavior.shipped as shipped

    monkeypatch.setattr(shipped, "POLICIES_DIR", tmp_path / "none-shipped")
    code, _, err = run_cli(
        ["data", "make", "--env", "MO-Ant-v2", "--out", str(tmp_path / "x.h5")], capsys
    )
    assert code == 2 and "tora behavior train --env tora/MO-Ant-v0" in err


def test_bench_speed_prints_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    code, text, _ = run_cli(
        [
            "bench",
            "speed",
            "--device",
            "cpu",
            "--batch-sizes",
            "1",
            "3",
            "--models",
            "1",
            "2",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--sampler-steps",
            "2",
            *TINY,
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0 and "ms/action" in text
    rows = json.loads(out.read_text())["rows"]
    assert [(r["models"], r["batch"]) for r in rows] == [(1, 1), (1, 3), (2, 1), (2, 3)]


def test_behavior_train_writes_a_resumable_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "set"
    args = [
        "behavior",
        "train",
        "--env",
        "tora/Cruise-v0",
        "--out",
        str(out),
        "--policies",
        "3",
        "--ars-iterations",
        "2",
        "--ars-directions",
        "2",
        "--ars-top",
        "1",
        "--ars-episode-steps",
        "20",
        "--ars-eval-episodes",
        "1",
        "--no-progress",
    ]
    code, text, err = run_cli(args, capsys)
    assert code == 0 and "3 behaviour policies" in text
    assert "policy 1/3" not in err, err  # no bars
    index = json.loads((out / "index.json").read_text())
    assert len(index["policies"]) == 3
    assert json.loads((out / "command.json").read_text())["ars"]["iterations"] == 2
    code, again, _ = run_cli(args, capsys)  # a finished set is loaded, not retrained
    assert code == 0 and again == text


SUITE_COMMANDS = [["bench", "run"], ["safe", "bench"]]
SAFE_TINY = Path(__file__).resolve().parents[1] / "safe" / "tiny.toml"


def suite_file(command: list[str], tmp_path: Path) -> str:
    if command == ["safe", "bench"]:
        return str(SAFE_TINY)
    path = tmp_path / "s.toml"
    path.write_text('methods = ["bc"]\n[[envs]]\nid = "tora/Cruise-v0"\n')
    return str(path)


@pytest.mark.parametrize("command", SUITE_COMMANDS)
@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--address", "auto"], "--address only applies with --ray"),
        (["--ray-cpus", "2", "--cell-cpus", "1"], "--ray-cpus, --cell-cpus only apply with --ray"),
        (["--ray", "--ray-cpus", "0"], "a local Ray needs at least 1 CPU, got 0"),
        (["--ray", "--cell-cpus", "0"], "a cell needs at least 1 CPU, got 0"),
        (["--ray", "--address", "auto", "--ray-cpus", "2"], "give either an address or a CPU"),
    ],
)
def test_suite_ray_options_are_checked_before_anything_runs(
    command: list[str],
    options: list[str],
    error: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    assert main([*command, suite_file(command, tmp_path), "--out", str(out), *options]) == 2
    assert error in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("command", SUITE_COMMANDS)
def test_ray_option_without_ray_says_how_to_install_it(
    command: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    out = tmp_path / "out"
    assert main([*command, suite_file(command, tmp_path), "--out", str(out), "--ray"]) == 2
    assert "pip install 'tora-rl[scale]'" in capsys.readouterr().err
    assert not out.exists()


def test_the_command_needs_no_ray_unless_asked() -> None:
    code = (
        "import sys, tora, tora.cli.main; tora.cli.main.build_parser(); print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("command", SUITE_COMMANDS)
def test_suite_run_help_explains_the_ray_options(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--ray ", "--address ADDR", "--ray-cpus N", "--cell-cpus N", "tora-rl[scale]"):
        assert phrase in help_text


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--address", "auto"], "--address only applies with --ray"),
        (["--address", "auto", "--ray-actors", "2"], "--address, --ray-actors only apply"),
        (["--ray", "--ray-actors", "0"], "--ray-actors must be at least 1, got 0"),
        (["--ray", "--workers", "2"], "--workers applies without --ray"),
        (["--ray", "--address", " "], "the Ray address is empty"),
    ],
)
def test_evaluate_ray_options_are_checked_before_anything_runs(
    options: list[str], error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", "--run", str(tmp_path), "--out", str(out), *options]) == 2
    assert error in capsys.readouterr().err
    assert not out.exists()


def test_finetune_ray_options_are_checked_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["finetune", "--data", str(tmp_path / "none.h5"), "--run", str(tmp_path / "run")]
    assert main([*command, "--objective", "speed", "--address", "auto"]) == 2
    assert "--address only applies with --ray" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("command", "purpose"),
    [
        (["evaluate", "--run", "RUN"], "a preference sweep on Ray"),
        (["finetune", "--data", "DATA", "--run", "RUN", "--objective", "a"], "fine-tuning"),
    ],
)
def test_evaluate_and_finetune_on_ray_without_ray_say_how_to_install_it(
    command: list[str],
    purpose: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    argv = [str(tmp_path / a) if a in ("RUN", "DATA") else a for a in command]
    assert main([*argv, "--ray"]) == 2
    err = capsys.readouterr().err
    assert purpose in err and "pip install 'tora-rl[scale]'" in err


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        (["evaluate"], ("--ray ", "--address ADDR", "--ray-actors N", "contiguous share")),
        (
            ["finetune"],
            ("--ray ", "--address ADDR", "byte for byte", "--objective a --objective b"),
        ),
    ],
)
def test_evaluate_and_finetune_help_explain_the_ray_options(
    command: list[str], phrases: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for phrase in (*phrases, "tora-rl[scale]"):
        assert phrase in help_text


def test_finetune_takes_several_objectives_one_after_another(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    common = ["--data", str(dataset), "--run", str(run), "--device", "cpu", "--no-progress"]
    pretrain = ["pretrain", *common, "--steps", "3", "--diffusion-steps", "10", *TINY]
    assert main([*pretrain, "--inverse-steps", "3"]) == 0
    finetune = ["finetune", *common, "--steps", "2", "--num-pairs", "20", "--segment-length", "5"]
    assert main([*finetune, "--objective", "speed", "--objective", "speed"]) == 2
    assert "--objective names speed more than once" in capsys.readouterr().err
    assert main(finetune) == 2
    assert "--objective is required" in capsys.readouterr().err
    assert main([*finetune, "--objective", "energy", "--objective", "speed"]) == 0
    out = capsys.readouterr().out
    assert out.index("objective model 'energy' saved") < out.index("objective model 'speed' saved")
    for name in ("speed", "energy"):
        record = json.loads((run / "objectives" / name / "finetune_command.json").read_text())
        assert record["options"]["objective"] == name


def test_threads_default_to_one_unless_asked_or_set_in_the_environment() -> None:
    from tora.cli.main import torch_threads

    assert torch_threads(None, {}) == 1
    assert torch_threads(None, {"OMP_NUM_THREADS": "3"}) == 3
    assert torch_threads(None, {"OMP_NUM_THREADS": "junk"}) == 1
    assert torch_threads(None, {"OMP_NUM_THREADS": "0"}) == 1
    assert torch_threads(2, {"OMP_NUM_THREADS": "3"}) == 2


def test_threads_option_runs_the_command_with_that_count_and_restores_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    import tora.cli.data as data_cli

    seen: list[int] = []
    monkeypatch.setattr(data_cli, "data_inspect", lambda args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    target = 3 if before != 3 else 2
    assert main(["--threads", str(target), "data", "inspect", "x.h5"]) == 0
    assert seen == [target] and torch.get_num_threads() == before
    code, _, err = run_cli(["--threads", "0", "data", "inspect", "x.h5"], capsys)
    assert code == 2 and "--threads must be a positive integer" in err
    assert torch.get_num_threads() == before


def test_the_global_threads_option_and_bench_speeds_own_do_not_collide(tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    args = ["bench", "speed", "--device", "cpu", "--batch-sizes", "1", "--models", "1"]
    args += ["--repeats", "1", "--warmup", "0", "--sampler-steps", "2", *TINY]
    out = tmp_path / "speed.json"
    assert main(["--threads", "2", *args, "--threads", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["torch_threads"] == 1  # the subcommand's own wins
    assert main(["--threads", "2", *args, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["torch_threads"] == 2  # 0: the process's setting
    assert torch.get_num_threads() == before
