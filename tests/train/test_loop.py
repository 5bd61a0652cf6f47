"""The shared loop's learning-rate schedule and held-out measurements, by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tora.envs.scripted import collect_cruise
from tora.nn.denoisers import DenoiserConfig
from tora.pipeline import finetune_run, pretrain_run
from tora.train.dpo import DPOConfig
from tora.train.inverse import InverseDynamicsTrainConfig
from tora.train.loop import OptimConfig, learning_rate, run_loop
from tora.train.pretrain import PretrainConfig


def test_learning_rate_warmup_then_cosine_by_hand() -> None:
    config = OptimConfig(lr=1.0, warmup_steps=4, lr_schedule="cosine")
    assert [learning_rate(config, s, 12) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    # 8 steps after warm-up: step 4 is the top, step 8 half-way down, step 12 would be 0.
    assert learning_rate(config, 4, 12) == pytest.approx(1.0)
    assert learning_rate(config, 8, 12) == pytest.approx(0.5)
    assert learning_rate(config, 10, 12) == pytest.approx(0.5 * (1 + math.cos(0.75 * math.pi)))
    assert learning_rate(OptimConfig(lr=0.1), 7, 12) == 0.1  # constant, no warm-up


def test_loop_sets_each_steps_learning_rate_and_resumes_on_it(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 1)
    optimizer_lrs: list[float] = []

    def step_fn() -> tuple[torch.Tensor, dict[str, float]]:
        loss = model(torch.ones(1, 2)).pow(2).sum()
        return loss, {}

    config = OptimConfig(lr=0.4, warmup_steps=2, checkpoint_every=3, ema_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    original = torch.optim.AdamW.step

    def spy(self: torch.optim.AdamW, *args: object, **kwargs: object) -> object:
        optimizer_lrs.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.AdamW, "step", spy)
        run_loop(
            desc="t", model=model, step_fn=step_fn, steps=3, config=config,
            state_dir=tmp_path / "s", generator=gen, progress=False,
        )  # fmt: skip
        run_loop(
            desc="t", model=model, step_fn=step_fn, steps=5, config=config,
            state_dir=tmp_path / "s", generator=gen, progress=False,
        )  # fmt: skip
    # Warm-up 0.2, 0.4, then constant; the resumed steps 3 and 4 use the schedule, not the
    # learning rate the optimizer state was saved with.
    assert optimizer_lrs == pytest.approx([0.2, 0.4, 0.4, 0.4, 0.4])


def test_dpo_logs_held_out_measurements_starting_from_the_reference(tmp_path: Path) -> None:
    data = collect_cruise(8, seed=3, progress=False)
    net = DenoiserConfig(hidden_dim=32, depth=1, time_dim=8)
    pretrain = PretrainConfig(steps=20, batch_size=16, diffusion_steps=10, denoiser=net)
    pretrain_run(data, tmp_path, pretrain, InverseDynamicsTrainConfig(steps=5), progress=False)
    dpo = DPOConfig(
        steps=20,
        batch_size=8,
        num_pairs=400,
        segment_length=8,
        held_out_pairs=64,
        evaluate_every=10,
        optim=OptimConfig(lr=1e-3, ema_decay=0.0, log_every=5),
    )
    finetune_run(data, tmp_path, dpo, ["speed"], progress=False)
    out = tmp_path / "objectives" / "speed"
    history = json.loads((out / "history.json").read_text())["history"]
    measured = [h for h in history if "val_winner_error" in h]
    assert [h["step"] for h in measured] == [0, 10, 20]
    # At step 0 the model is the reference: equal errors, a zero margin on every pair.
    start = measured[0]
    assert start["val_winner_error"] == 1.0 and start["val_loser_error"] == 1.0
    assert start["val_implicit_accuracy"] == 0.0
    assert start["val_dpo_loss"] == pytest.approx(math.log(2), rel=1e-6)
    # The planned next state: the same sampling noise at every measurement, so the reference
    # itself scores exactly 1.
    assert start["val_state_error"] == 1.0 and start["val_state_error_abs"] > 0
    # Training moves them (the guard against drifting reads these numbers).
    assert measured[-1]["val_winner_error"] != 1.0
    pairs = json.loads((out / "pairs.json").read_text())
    assert 0 < pairs["held_out"] <= 64


def test_drift_guard_names_the_first_limit_passed() -> None:
    from tora.train.dpo import _drift_guard

    assert _drift_guard(DPOConfig()) is None  # both limits off by default
    guard = _drift_guard(DPOConfig(max_winner_error=3.0, max_state_error=1.5))
    assert guard is not None
    assert guard({"val_winner_error": 2.9, "val_state_error": 1.5}) is None  # at a limit: kept
    assert "next-state error 1.60x" in (guard({"val_state_error": 1.6}) or "")
    assert "winner error 3.10x" in (guard({"val_winner_error": 3.1}) or "")
    only_state = _drift_guard(DPOConfig(max_state_error=2.0))
    assert only_state is not None and only_state({"val_winner_error": 50.0}) is None


def test_beta_per_element_scales_with_the_generated_elements() -> None:
    from tora.train.dpo import effective_beta

    # MO-HalfCheetah: horizon 4, 17-D states: the first state is given, 3 x 17 generated.
    assert effective_beta(DPOConfig(beta=100.0, beta_per_element=0.0), 4, 17) == 100.0
    assert effective_beta(DPOConfig(beta_per_element=0.3), 4, 17) == pytest.approx(15.3)
    assert effective_beta(DPOConfig(beta_per_element=0.3), 8, 3) == pytest.approx(6.3)
    with pytest.raises(ValueError, match="non-negative"):
        effective_beta(DPOConfig(beta_per_element=-1.0), 4, 17)


def test_guard_stops_and_keeps_the_last_accepted_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One weight w, lr 0.1, loss -w: AdamW's first steps move w up by ~lr each. The held-out
    # "drift" is w itself; the guard accepts w <= 0.45, so it accepts the measurements at steps
    # 0, 2 and 4 (w ~ 0, 0.2, 0.4) and stops at step 6 (w ~ 0.6), keeping step 4's weights.
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)

    def step_fn() -> tuple[torch.Tensor, dict[str, float]]:
        return -model.weight.sum(), {}

    def evaluate() -> dict[str, float]:
        return {"drift": float(model.weight)}

    def guard(values: dict[str, float]) -> str | None:
        return "too far" if values["val_drift"] > 0.45 else None

    config = OptimConfig(lr=0.1, weight_decay=0.0, grad_clip=0.0, ema_decay=0.0, log_every=1)
    kwargs = dict(
        desc="t", model=model, step_fn=step_fn, steps=10, config=config,
        state_dir=tmp_path / "s", generator=torch.Generator(), progress=False,
        evaluate=evaluate, evaluate_every=2, guard=guard,
    )  # fmt: skip
    result = run_loop(**kwargs)  # type: ignore[arg-type]
    assert result.stopped == {"step": 6, "reason": "too far", "kept_step": 4}
    kept = float(result.model.weight.detach())
    drifts = {h["step"]: h["val_drift"] for h in result.history if "val_drift" in h}
    assert kept == pytest.approx(drifts[4]) and drifts[6] > 0.45 >= drifts[4]
    # A rerun, even asking for more steps, does not train past the stop.
    assert "stopped at step 6 (too far); keeping the weights of step 4" in capsys.readouterr().err
    again = run_loop(**{**kwargs, "steps": 20})  # type: ignore[arg-type]
    assert float(again.model.weight.detach()) == kept and again.stopped == result.stopped
    assert "ended by its guard at step 6" in capsys.readouterr().err


def test_identity_keeps_steps_only_under_a_decaying_schedule() -> None:
    from tora.train.loop import run_identity

    constant = run_identity(DPOConfig(steps=100))
    assert "steps" not in constant.values["settings"]
    assert run_identity(DPOConfig(steps=200)).values == constant.values  # more steps: same run
    cosine = OptimConfig(lr_schedule="cosine")
    decaying = run_identity(DPOConfig(steps=100, optim=cosine))
    # Under cosine decay the step count set every earlier step's learning rate.
    assert decaying.values["settings"]["steps"] == 100
    assert run_identity(DPOConfig(steps=200, optim=cosine)).values != decaying.values
    assert "checkpoint_every" not in decaying.values["settings"]["optim"]
