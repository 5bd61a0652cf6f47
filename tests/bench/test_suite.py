"""The benchmark suite: cells resume, settings cannot silently change, the table is its JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tomllib

from tora.bench.config import (
    EVAL_FILE,
    TRAIN_FILE,
    DataSettings,
    EnvEntry,
    EvalSettings,
    SuiteConfig,
    VariantSpec,
    cell_dir,
    load_suite,
    method_config,
    suite_method,
    with_seed,
)
from tora.bench.suite import mujoco_kind, run_suite
from tora.bench.table import collect_rows, format_markdown
from tora.errors import ToraError
from tora.policies.registry import get_method, method_names
from tora.policies.tora_planner import ToraConfig

SUITES = Path(__file__).resolve().parents[2] / "benchmarks" / "suites"

TINY = {
    "tora": {
        "pretrain": {"steps": 60, "horizon": 4, "optim": {"checkpoint_every": 60}},
        "inverse": {"steps": 60},
        "dpo": {"steps": 10, "batch_size": 16, "num_pairs": 200},
    },
    "bc": {"steps": 60},
    "bc_p": {"steps": 60},
    "morvs_p": {"steps": 60},
    "cond_diffusion": {"steps": 60, "horizon": 4, "inverse": {"steps": 60}},
    "dime_p": {"steps": 30, "batch_size": 32, "num_actions": 4, "critic": {"steps": 30}},
}


def tiny_suite(out: Path, methods: list[str] | None = None) -> SuiteConfig:
    return SuiteConfig(
        name="tiny",
        out=str(out),
        device="cpu",
        methods=methods or method_names(),
        data=DataSettings(episodes=30, seed=0),
        eval=EvalSettings(preferences=3, episodes=1, seed=5),
        settings={k: v for k, v in TINY.items() if k in (methods or method_names())},
        envs=[EnvEntry(id="tora/Cruise-v0", seeds=[0])],
    )


def test_with_seed_sets_every_nested_seed() -> None:
    config = with_seed(ToraConfig(), 7)
    assert config.pretrain.seed == config.inverse.seed == config.dpo.seed == 7


def test_method_config_merges_suite_then_env_then_seed() -> None:
    suite = SuiteConfig(settings={"tora": {"pretrain": {"steps": 5, "batch_size": 3}}})
    entry = EnvEntry(id="tora/Cruise-v0", settings={"tora": {"pretrain": {"steps": 9}}})
    config = method_config(suite, entry, get_method("tora"), 4)
    assert (config.pretrain.steps, config.pretrain.batch_size, config.pretrain.seed) == (9, 3, 4)
    assert config.pretrain.horizon == ToraConfig().pretrain.horizon  # untouched defaults stay


def test_unknown_method_or_setting_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('methods = ["tora", "nope"]\n[[envs]]\nid = "tora/Cruise-v0"\n')
    with pytest.raises(ToraError, match="unknown method 'nope'"):
        load_suite(path)
    path.write_text('[settings.tora]\npretrain = { stepz = 3 }\n[[envs]]\nid = "tora/Cruise-v0"\n')
    with pytest.raises(ToraError, match="stepz"):
        load_suite(path)
    path.write_text("[[envs]\n")
    with pytest.raises(ToraError, match="cannot parse"):
        load_suite(path)


def test_shipped_suite_files_load() -> None:
    files = sorted(SUITES.glob("*.toml"))
    assert files, "benchmarks/suites/*.toml are missing"
    from tora.safe.suite import load_safe_suite

    loaders = {"mujoco": load_suite, "safe": load_safe_suite}
    for path in files:
        loaders[tomllib.loads(path.read_text()).get("kind", "mujoco")](path)


def test_suite_runs_resumes_and_table_matches_json(tmp_path: Path) -> None:
    suite = tiny_suite(tmp_path / "bench")
    results = run_suite(suite, progress=False, log=lambda _: None)
    rows = results["rows"]
    assert [r["method"] for r in rows] == ["behaviour", *method_names()]
    # The behaviour row's steering is the data's own (Cruise records its preferences).
    steering = rows[0]["steering_correlation"]["mean"]
    assert steering is not None and -1 <= steering <= 1
    for row in rows[1:]:
        assert row["seeds"] == [0] and row["hypervolume"]["mean"] >= 0
    # The Markdown is rendered from the JSON rows: every hypervolume in the JSON is in it.
    md = (suite.out_dir / "results.md").read_text()
    on_disk = json.loads((suite.out_dir / "results.json").read_text())
    assert on_disk["rows"] == rows
    assert md == format_markdown(suite, rows)
    table_lines = [line for line in md.splitlines() if line.startswith("| tora/")]
    assert len(table_lines) == len(rows)
    for line, row in zip(table_lines, rows, strict=True):
        assert row["label"] in line
        hv = float(re.sub(r"[*]", "", line.split("|")[4]).split("±")[0])
        assert hv == pytest.approx(row["hypervolume"]["mean"], rel=5e-3)
    assert (suite.out_dir / "front_Cruise-v0.png").is_file()

    # A second run finds every cell evaluated and changes nothing.
    evals = {p: p.stat().st_mtime_ns for p in suite.out_dir.rglob(EVAL_FILE)}
    assert len(evals) == len(method_names())
    again = run_suite(suite, progress=False, log=lambda _: None)
    assert again["rows"] == rows
    assert {p: p.stat().st_mtime_ns for p in suite.out_dir.rglob(EVAL_FILE)} == evals


def test_changed_settings_do_not_mix_with_old_cells(tmp_path: Path) -> None:
    suite = tiny_suite(tmp_path / "bench", ["bc"])
    run_suite(suite, progress=False, log=lambda _: None)
    suite.settings["bc"] = {"steps": 61}
    with pytest.raises(ToraError, match="other settings"):
        run_suite(suite, progress=False, log=lambda _: None)


def test_cell_from_before_a_new_field_counts_it_as_its_default(tmp_path: Path) -> None:
    suite = tiny_suite(tmp_path / "bench", ["tora"])
    run_suite(suite, progress=False, log=lambda _: None)
    cell_file = cell_dir(suite, "tora/Cruise-v0", "tora", 0) / "cell.json"
    saved = json.loads(cell_file.read_text())
    # As if the cell had been made before DPOConfig had pair_matching (default "random").
    del saved["settings"]["config"]["dpo"]["pair_matching"]
    cell_file.write_text(json.dumps(saved))
    assert run_suite(suite, progress=False, log=lambda _: None)["rows"][1]["seeds"] == [0]
    # Asking for a non-default value of the new field is a change the old cell did not have.
    tora = suite.settings["tora"]
    suite.settings["tora"] = {**tora, "dpo": {**tora["dpo"], "pair_matching": "nearest"}}
    with pytest.raises(ToraError, match="other settings"):
        run_suite(suite, progress=False, log=lambda _: None)


def test_partial_suite_reports_seeds_done(tmp_path: Path) -> None:
    suite = tiny_suite(tmp_path / "bench", ["bc"])
    suite.envs[0].seeds = [0, 1]
    run_suite(suite, progress=False, log=lambda _: None)
    (cell_dir(suite, "tora/Cruise-v0", "bc", 1) / EVAL_FILE).unlink()
    rows = collect_rows(suite)
    assert rows[1]["seeds"] == [0] and rows[1]["seeds_planned"] == 2
    assert "| 1/2 |" in format_markdown(suite, rows)


def test_only_seeds_runs_those_seeds(tmp_path: Path) -> None:
    suite = tiny_suite(tmp_path / "bench", ["bc"])
    suite.envs[0].seeds = [0, 1, 2]
    run_suite(suite, progress=False, log=lambda _: None, only_seeds=[1])
    done = [
        cell_dir(suite, "tora/Cruise-v0", "bc", s).joinpath(EVAL_FILE).is_file() for s in (0, 1, 2)
    ]
    assert done == [False, True, False]
    with pytest.raises(
        ToraError, match=r"seed 7 is not in this suite \(its envs list \[0, 1, 2\]\)"
    ):
        run_suite(suite, progress=False, log=lambda _: None, only_seeds=[7])


def test_variants_run_as_methods_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'methods = ["bc", "bc_short"]\n'
        "[settings.bc]\nsteps = 60\nhidden_dim = 32\n"
        '[variants.bc_short]\nmethod = "bc"\nlabel = "BC (30 steps)"\n'
        "settings = { steps = 30 }\n"
        '[[envs]]\nid = "tora/Cruise-v0"\n'
    )
    suite = load_suite(path)
    entry = suite.envs[0]
    variant = suite_method(suite, "bc_short")
    assert (variant.name, variant.label, variant.train) == (
        "bc_short",
        "BC (30 steps)",
        get_method("bc").train,
    )
    # The base method's suite settings apply, then the variant's own.
    config = method_config(suite, entry, variant, 0)
    assert (config.steps, config.hidden_dim) == (30, 32)
    assert method_config(suite, entry, suite_method(suite, "bc"), 0).steps == 60

    suite.out = str(tmp_path / "bench")
    suite.data, suite.eval = DataSettings(episodes=30), EvalSettings(preferences=3, seed=5)
    rows = run_suite(suite, progress=False, log=lambda _: None)["rows"]
    assert [(r["method"], r["label"]) for r in rows[1:]] == [
        ("bc", "BC"),
        ("bc_short", "BC (30 steps)"),
    ]
    assert cell_dir(suite, "tora/Cruise-v0", "bc_short", 0).is_dir()


@pytest.mark.parametrize(
    ("variant", "error"),
    [
        ('[variants.bc]\nmethod = "bc_p"\n', "would hide"),
        ('[variants.x]\nmethod = "nope"\n', "unknown method 'nope'"),
        ('[variants.x]\nmethod = "bc"\nsettings = { stepz = 1 }\n', "stepz"),
    ],
)
def test_bad_variants_are_errors(tmp_path: Path, variant: str, error: str) -> None:
    path = tmp_path / "s.toml"
    name = variant.split("]")[0].split(".")[1]
    path.write_text(f'methods = ["{name}"]\n{variant}[[envs]]\nid = "tora/Cruise-v0"\n')
    with pytest.raises(ToraError, match=error):
        load_suite(path)


def test_variants_reuse_the_stages_they_share_and_train_the_rest(tmp_path: Path) -> None:
    suite = tiny_suite(tmp_path / "bench", ["tora"])
    suite.methods = ["tora", "tora_fast", "tora_beta"]
    suite.variants = {
        # Differs only in how it samples: every trained stage is shared.
        "tora_fast": VariantSpec(method="tora", label="fast", settings={"sampler": {"steps": 5}}),
        # Fewer DPO steps: the reference and inverse dynamics are shared, DPO is not.
        "tora_beta": VariantSpec(method="tora", label="beta", settings={"dpo": {"steps": 5}}),
    }
    logs: list[str] = []
    run_suite(suite, progress=False, log=logs.append)
    marks = {
        m: json.loads((cell_dir(suite, "tora/Cruise-v0", m, 0) / TRAIN_FILE).read_text())
        for m in suite.methods
    }
    assert "reused" not in marks["tora"]
    assert marks["tora_fast"]["reused"] == {
        "reference": "tora",
        "inverse_dynamics": "tora",
        "objectives": "tora",
    }
    assert marks["tora_beta"]["reused"] == {"reference": "tora", "inverse_dynamics": "tora"}
    assert any("reusing reference of tora" in line for line in logs)
    md = (suite.out_dir / "results.md").read_text()
    fast = next(line for line in md.splitlines() if "| fast |" in line)
    assert "†" in fast and "†: these cells trained only what differs" in md
    assert "†" not in next(line for line in md.splitlines() if "| TORA |" in line)

    def weights(method: str, stage: str) -> bytes:
        model = cell_dir(suite, "tora/Cruise-v0", method, 0) / "model"
        return (model / stage / "model.safetensors").read_bytes()

    # A shared stage is the same file; an unshared one was trained by the variant itself.
    assert weights("tora_fast", "objectives/speed") == weights("tora", "objectives/speed")
    assert weights("tora_beta", "reference") == weights("tora", "reference")
    assert weights("tora_beta", "objectives/speed") != weights("tora", "objectives/speed")


def test_a_variant_waits_for_the_earlier_cells_whose_stages_it_can_reuse() -> None:
    suite = SuiteConfig(
        methods=["bc", "tora", "tora_fast", "tora_beta", "tora_stride"],
        variants={
            "tora_fast": VariantSpec(method="tora", settings={"sampler": {"steps": 5}}),
            "tora_beta": VariantSpec(method="tora", settings={"dpo": {"steps": 5}}),
            # Another stride changes what every stage trains: nothing to reuse.
            "tora_stride": VariantSpec(method="tora", settings={"pretrain": {"stride": 2}}),
        },
        envs=[EnvEntry(id="tora/Cruise-v0")],
    )
    depends_on = mujoco_kind(suite).depends_on
    entry = suite.envs[0]
    assert {m: depends_on(entry, m) for m in suite.methods} == {
        "bc": [],  # no stages
        "tora": [],  # the first TORA cell: nothing listed before it to take from
        "tora_fast": ["tora"],  # every stage
        "tora_beta": ["tora", "tora_fast"],  # their reference and inverse dynamics
        "tora_stride": [],
    }
