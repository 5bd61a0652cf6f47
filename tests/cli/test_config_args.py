"""Options generated from documented dataclass configs, and config <-> dict conversion."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from tora.cli.config_args import (
    add_dataclass_arguments,
    config_from_dict,
    config_to_dict,
    dataclass_from_args,
    field_docs,
)
from tora.errors import ToraError


class Schedule(enum.Enum):
    LINEAR = "linear"
    COSINE = "cosine"


@dataclass
class NetConfig:
    hidden_dim: int = 256
    """Width of every hidden layer."""
    dims: tuple[int, ...] = (1, 2, 4)
    """Channel multipliers of the U-Net levels."""


@dataclass
class BaseConfig:
    seed: int = 0
    """Random seed; fixes data order and initialization."""


@dataclass
class TrainConfig(BaseConfig):
    steps: int = 2000
    """Gradient steps of the denoising loss."""
    lr: float = 3e-4
    """AdamW learning rate (100% of the base rate)."""
    name: str = "run"
    """Run name."""
    ema: bool = True
    """Keep an exponential moving average
    of the weights."""
    horizon: Optional[int] = None  # noqa: UP045 -- Optional[...] spelling must work too
    """Planning horizon; none means the dataset's default."""
    clip: float | None = 1.0
    """Gradient-norm clip."""
    loss: Literal["l1", "l2"] = "l2"
    """Denoising loss."""
    schedule: Schedule = Schedule.COSINE
    """Noise schedule."""
    widths: list[int] = field(default_factory=lambda: [8, 16])
    """Layer widths."""
    out: Path = Path("runs")
    """Output directory."""
    net: NetConfig = field(default_factory=lambda: NetConfig(hidden_dim=64))
    """Denoiser network."""
    undocumented: int = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tora-test", exit_on_error=False)
    add_dataclass_arguments(parser, TrainConfig, group_title="training")
    return parser


def test_field_docs_exact() -> None:
    docs = field_docs(TrainConfig)
    assert docs["steps"] == "Gradient steps of the denoising loss."
    assert docs["seed"] == "Random seed; fixes data order and initialization."  # from the base
    assert docs["ema"] == "Keep an exponential moving average\nof the weights."
    assert docs["net"] == "Denoiser network."
    assert "undocumented" not in docs
    assert field_docs(NetConfig) == {
        "hidden_dim": "Width of every hidden layer.",
        "dims": "Channel multipliers of the U-Net levels.",
    }


def test_field_docs_without_source_is_empty() -> None:
    made = dataclasses.make_dataclass("Made", [("x", int, dataclasses.field(default=1))])
    assert field_docs(made) == {}
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, made)
    assert dataclass_from_args(made, parser.parse_args(["--x", "3"])).x == 3


def test_help_shows_docs_and_defaults() -> None:
    text = " ".join(_parser().format_help().split())  # undo argparse's line wrapping
    assert "--steps STEPS Gradient steps of the denoising loss. (default: 2000)" in text
    assert "AdamW learning rate (100% of the base rate). (default: 0.0003)" in text
    assert "--ema, --no-ema Keep an exponential moving average of the weights." in text
    assert text.count("(default: true)") == 1
    assert "(default: none)" in text
    assert "{l1,l2}" in text and "{linear,cosine}" in text and "(default: cosine)" in text
    assert "--widths WIDTHS [WIDTHS ...] Layer widths. (default: 8 16)" in text
    # Nested defaults come from the parent's default instance, not NetConfig's own.
    assert "--net-hidden-dim NET_HIDDEN_DIM Width of every hidden layer. (default: 64)" in text
    assert "--net-* options: Denoiser network." in text  # group title and description
    assert "training:" in text


def test_defaults_rebuild_the_default_config() -> None:
    assert dataclass_from_args(TrainConfig, _parser().parse_args([])) == TrainConfig()


def test_parsing_overrides() -> None:
    argv = shlex.split(
        "--steps 10 --lr 1e-3 --name x --no-ema --horizon 32 --clip none --loss l1 "
        "--schedule linear --widths 1 2 3 --out /tmp/o --net-hidden-dim 128 --net-dims 3 "
        "--seed 7"
    )
    args = _parser().parse_args(argv)
    cfg = dataclass_from_args(TrainConfig, args)
    assert cfg == TrainConfig(
        seed=7,
        steps=10,
        lr=1e-3,
        name="x",
        ema=False,
        horizon=32,
        clip=None,
        loss="l1",
        schedule=Schedule.LINEAR,
        widths=[1, 2, 3],
        out=Path("/tmp/o"),
        net=NetConfig(hidden_dim=128, dims=(3,)),
    )
    assert isinstance(cfg.net.dims, tuple) and isinstance(cfg.schedule, Schedule)


def test_a_list_option_given_twice_keeps_both() -> None:
    """``--widths 1 --widths 2 3`` is [1, 2, 3] (argparse alone would keep [2, 3]); the first
    use replaces the default, and the default stays untouched for the next parse."""
    parser = _parser()
    assert dataclass_from_args(
        TrainConfig, parser.parse_args(shlex.split("--widths 1 --widths 2 3"))
    ).widths == [1, 2, 3]
    assert dataclass_from_args(TrainConfig, parser.parse_args(["--widths", "4"])).widths == [4]
    assert dataclass_from_args(TrainConfig, parser.parse_args([])).widths == [8, 16]


def test_prefix_and_optional_sequences() -> None:
    @dataclass
    class Small:
        dims: tuple[int, ...] | None = (2,)
        mode: Literal["a", "b"] | None = None

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Small, prefix="eval")
    cfg = dataclass_from_args(Small, parser.parse_args(["--eval-dims", "none"]), prefix="eval")
    assert cfg == Small(dims=None, mode=None)
    cfg = dataclass_from_args(Small, parser.parse_args(["--eval-mode", "b"]), prefix="eval-")
    assert cfg == Small(dims=(2,), mode="b")


@pytest.mark.parametrize(
    "argv", [["--loss", "l3"], ["--schedule", "exp"], ["--steps", "many"], ["--bogus", "1"]]
)
def test_bad_values_are_argparse_errors(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="tora-test")
    add_dataclass_arguments(parser, TrainConfig)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2
    if argv[0] == "--loss":
        assert "invalid choice: 'l3'" in capsys.readouterr().err


def test_required_field() -> None:
    @dataclass
    class Needs:
        data: str
        """Dataset path."""

    parser = argparse.ArgumentParser(exit_on_error=False)
    add_dataclass_arguments(parser, Needs)
    assert "(required)" in parser.format_help()
    assert dataclass_from_args(Needs, parser.parse_args(["--data", "d.h5"])).data == "d.h5"


def test_dict_round_trip() -> None:
    cfg = TrainConfig(
        horizon=8, schedule=Schedule.LINEAR, net=NetConfig(dims=(3, 5)), out=Path("a/b")
    )
    d = config_to_dict(cfg)
    assert d["schedule"] == "linear" and d["out"] == "a/b" and d["net"]["dims"] == [3, 5]
    assert json.loads(json.dumps(d)) == d  # JSON-ready
    assert config_from_dict(TrainConfig, json.loads(json.dumps(d))) == cfg


def test_missing_keys_take_defaults_and_ints_widen() -> None:
    cfg = config_from_dict(TrainConfig, {"lr": 1, "net": {"hidden_dim": 3}})
    assert cfg == TrainConfig(lr=1.0, net=NetConfig(hidden_dim=3))
    assert isinstance(cfg.lr, float)


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ToraError) as info:
        config_from_dict(TrainConfig, {"stpes": 3})
    message = str(info.value)
    assert "'stpes'" in message
    assert "valid keys: seed, steps, lr, name, ema, horizon" in message
    with pytest.raises(ToraError, match=r"in net: 'width'; valid keys: hidden_dim, dims"):
        config_from_dict(TrainConfig, {"net": {"width": 3}})


def test_bad_dict_values() -> None:
    with pytest.raises(ToraError, match="loss must be one of"):
        config_from_dict(TrainConfig, {"loss": "l3"})
    with pytest.raises(ToraError, match="schedule must be one of"):
        config_from_dict(TrainConfig, {"schedule": "exp"})
    with pytest.raises(ToraError, match="steps must be int"):
        config_from_dict(TrainConfig, {"steps": "10"})
    with pytest.raises(ToraError, match="steps must be int"):
        config_from_dict(TrainConfig, {"steps": True})
