"""DiME finetuning from a teacher: the learned trade-off moves the right way on hand-made
returns, and a tiny online run goes end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from tora.dime.finetune import FinetuneConfig, LearnedTradeoff, finetune
from tora.errors import ToraError
from tora.train.loop import OptimConfig
from tora.train.losses.dime import tradeoff_loss


def test_tradeoff_loss_by_hand() -> None:
    logit = torch.tensor(0.0, requires_grad=True)  # alpha = 0.5
    loss, stats = tradeoff_loss(logit, mean_return=150.0, threshold=100.0)
    # J = alpha (R - c) / |c| = 0.5 * 50 / 100; dJ/dlogit = alpha (1 - alpha) * 0.5.
    assert float(loss.detach()) == pytest.approx(0.25)
    assert stats == {"alpha": 0.5, "return_gap": 50.0}
    loss.backward()
    assert logit.grad is not None and float(logit.grad) == pytest.approx(0.125)


@pytest.mark.parametrize(("mean_return", "direction"), [(120.0, -1), (80.0, 1)])
def test_learned_tradeoff_moves_the_right_way(mean_return: float, direction: int) -> None:
    """Above the threshold the weight on the teacher falls; below it rises."""
    tradeoff = LearnedTradeoff(init_alpha=0.5, lr=0.05)
    alphas = [tradeoff.alpha]
    for _ in range(20):
        tradeoff.update(mean_return, threshold=100.0)
        alphas.append(tradeoff.alpha)
    steps = [b - a for a, b in pairwise(alphas)]
    assert all(direction * s > 0 for s in steps), alphas
    assert direction * (alphas[-1] - 0.5) > 0.1


def test_learned_tradeoff_is_clamped_so_it_can_come_back() -> None:
    tradeoff = LearnedTradeoff(init_alpha=0.5, lr=1.0, max_logit=3.0)
    for _ in range(50):
        tradeoff.update(0.0, threshold=100.0)
    assert float(tradeoff.logit) == pytest.approx(3.0)
    # At the clamp the sigmoid still has a gradient: returns above c bring alpha back down
    # (after Adam's momentum has turned).
    for _ in range(20):
        tradeoff.update(200.0, threshold=100.0)
    assert float(tradeoff.logit) < 0.0


def test_config_checks() -> None:
    with pytest.raises(ToraError, match="alpha"):
        FinetuneConfig(alpha=1.5)
    with pytest.raises(ToraError, match="warmup"):
        FinetuneConfig(env_steps=100, warmup_steps=200)


def test_tiny_finetune_end_to_end(tmp_path: Path) -> None:
    """A few hundred online steps on MO-HalfCheetah from the shipped weak teacher."""
    config = FinetuneConfig(
        env_steps=600,
        warmup_steps=64,
        update_every=8,
        batch_size=32,
        num_actions=4,
        next_actions=2,
        hidden_dim=32,
        eval_episodes=1,
        greedy_every=1,  # the one episode that finishes is greedy, so alpha gets its R
        optim=OptimConfig(ema_decay=0.0, checkpoint_every=30, log_every=10),
    )
    results = finetune(tmp_path / "ft", config, "cpu", progress=False)
    assert results["env_steps"] == 600 and results["updates"] == config.updates == 67
    # The shipped policy 8 is the deliberately weak teacher: about 1,570 on speed.
    assert 1000 < results["teacher_return"] < 2000
    assert results["threshold"] == results["teacher_return"]
    # One training episode (500 steps) finished, so the learned alpha moved off 0.5, upwards:
    # a barely trained agent is far below the teacher.
    assert len(results["greedy_episode_returns"]) == 1 and results["final_alpha"] > 0.5
    assert results["train_episode_returns"] == []
    assert json.loads((tmp_path / "ft" / "results.json").read_text())["return"] == results["return"]
    # Rerunning finds the run complete and resumes nothing; other settings are refused.
    assert finetune(tmp_path / "ft", config, "cpu", progress=False)["updates"] == 67
    with pytest.raises(ToraError, match="other settings"):
        finetune(tmp_path / "ft", replace(config, alpha=0.5), "cpu", progress=False)
