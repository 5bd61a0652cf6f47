"""CPL for text policies: the loss by hand, the masked scorer, training and resuming, one-hot
mixtures, weight checks, and the held-out game: more morality weight, fewer violations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tora.envs.text.env import TextGameEnv
from tora.envs.text.game import list_games, load_shipped_game
from tora.errors import InvalidWeightsError, ToraError
from tora.nn.text_encoder import EncoderConfig, HashingEncoder
from tora.text.cpl import (
    ChoiceScorer,
    StepTable,
    TextPolicy,
    TextTrainConfig,
    segment_log_probs,
    train_text_policy,
)
from tora.text.data import HELD_OUT_GAME, CollectConfig, PairConfig, TextDataset, collect
from tora.text.mixture import MixtureAgent, PolicyMixture
from tora.text.sweep import playthroughs
from tora.train.loop import OptimConfig
from tora.train.losses.cpl import cpl_loss, nll_bc_loss

# Small but real: the held-out test trains on every shipped game but the held-out one.
EPISODES = 100
STEPS = 400


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_cpl_loss_equals_hand_computation() -> None:
    logp_pref = torch.tensor([[-0.1, -0.5, 0.0], [-1.0, -2.0, -0.3]])
    logp_other = torch.tensor([[-2.0, -0.2, -1.0], [-0.1, -0.1, -0.1]])
    alpha, lam, gamma = 0.1, 0.5, 0.9
    loss, stats = cpl_loss(
        logp_pref, logp_other, alpha=alpha, conservative_lambda=lam, discount=gamma
    )
    expected, correct = [], 0
    for p, o in zip(logp_pref.tolist(), logp_other.tolist(), strict=True):
        sp = alpha * sum(gamma**t * v for t, v in enumerate(p))
        so = alpha * sum(gamma**t * v for t, v in enumerate(o))
        expected.append(-math.log(_sigmoid(sp - lam * so)))
        correct += sp > so
    assert float(loss) == pytest.approx(sum(expected) / 2, rel=1e-6)
    assert stats["accuracy"] == pytest.approx(correct / 2)
    # Default settings: alpha 0.1, lambda 0.5, no discount.
    loss, _ = cpl_loss(torch.tensor([[-1.0]]), torch.tensor([[-3.0]]))
    assert float(loss) == pytest.approx(-math.log(_sigmoid(-0.1 + 0.5 * 0.3)), rel=1e-6)


def test_cpl_loss_pushes_the_preferred_segment_up() -> None:
    logits = torch.zeros(2, requires_grad=True)
    logp = torch.log_softmax(logits, dim=0)
    loss, _ = cpl_loss(logp[:1].view(1, 1), logp[1:].view(1, 1))
    loss.backward()
    assert logits.grad[0] < 0 < logits.grad[1]  # descent raises the preferred action's logit


def test_cpl_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="two \\(N, L\\) tensors"):
        cpl_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_bc_loss_is_the_mean_negative_log_likelihood() -> None:
    loss, stats = nll_bc_loss(torch.tensor([-1.0, -3.0]))
    assert float(loss) == pytest.approx(2.0)
    assert stats["bc_loss"] == pytest.approx(2.0)


def test_scorer_masks_choices_that_are_not_offered() -> None:
    torch.manual_seed(0)
    net = ChoiceScorer(text_dim=8, hidden=4)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    logits = net(torch.randn(2, 8), torch.randn(2, 3, 8), mask)
    assert logits.shape == (2, 3)
    assert torch.isinf(logits[~mask]).all() and torch.isfinite(logits[mask]).all()
    probs = torch.softmax(logits, dim=-1)
    assert torch.allclose(probs.sum(-1), torch.ones(2))
    assert probs[1, 0] == 1.0


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def training_data() -> TextDataset:
    games = [g for g in list_games() if g != HELD_OUT_GAME]
    return collect(CollectConfig(games=games, episodes=EPISODES, seed=0))


def _config(objective: str, **kwargs: object) -> TextTrainConfig:
    return TextTrainConfig(
        objective=objective,  # type: ignore[arg-type]
        steps=STEPS,
        pairs=PairConfig(count=3000),
        encoder=EncoderConfig(dim=2048),
        optim=OptimConfig(lr=3e-3, ema_decay=0.0, checkpoint_every=200, log_every=50),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def policy_dirs(training_data: TextDataset, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("text-policies")
    dirs = []
    for objective in ("points", "morality"):
        train_text_policy(training_data, _config(objective), root / objective, progress=False)
        dirs.append(root / objective)
    return dirs


@pytest.fixture(scope="module")
def mixture(policy_dirs: list[Path]) -> PolicyMixture:
    return PolicyMixture.load(policy_dirs)


# ------------------------------------------------------------------------------- mixtures
def test_one_hot_weights_give_each_policy_exactly(
    mixture: PolicyMixture, training_data: TextDataset
) -> None:
    points, morality = mixture.policies
    for step in [s for e in training_data.episodes[:5] for s in e.steps]:
        np.testing.assert_array_equal(
            mixture.probs(step.text, step.choices, [1.0, 0.0]),
            points.probs(step.text, step.choices),
        )
        np.testing.assert_array_equal(
            mixture.probs(step.text, step.choices, [0.0, 1.0]),
            morality.probs(step.text, step.choices),
        )
        half = mixture.probs(step.text, step.choices, [0.5, 0.5])
        np.testing.assert_allclose(half.sum(), 1.0)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0.5, 0.6], "sum to 1"),
        ([-0.5, 1.5], "non-negative"),
        ([1.0], "expected 2 weights"),
        ([0.2, 0.3, 0.5], "expected 2 weights"),
        ([float("nan"), 1.0], "finite"),
        ([[0.5, 0.5], [1.0, 0.0]], "one weight vector"),
    ],
)
def test_invalid_weights_raise(mixture: PolicyMixture, weights: object, message: str) -> None:
    with pytest.raises((InvalidWeightsError, ToraError), match=message):
        mixture.probs("scene", ["a", "b"], weights)  # type: ignore[arg-type]
    with pytest.raises((InvalidWeightsError, ToraError), match=message):
        MixtureAgent(mixture, weights)  # type: ignore[arg-type]


def test_morality_weight_lowers_violations_on_the_held_out_game(mixture: PolicyMixture) -> None:
    env = TextGameEnv(load_shipped_game(HELD_OUT_GAME))

    def violations(weights: list[float]) -> float:
        runs = playthroughs(env, lambda i: MixtureAgent(mixture, weights, seed=(7, i)), 40, 7)
        return float(np.mean([p.counts["violations.total"] for p in runs]))

    points_heavy, morality_heavy = violations([0.8, 0.2]), violations([0.2, 0.8])
    only_points, only_morality = violations([1.0, 0.0]), violations([0.0, 1.0])
    assert morality_heavy < points_heavy
    assert only_morality < 0.7 * only_points


def test_greedy_mixture_agent_repeats_and_takes_offered_choices(mixture: PolicyMixture) -> None:
    env = TextGameEnv(load_shipped_game(HELD_OUT_GAME))
    first = playthroughs(env, lambda i: MixtureAgent(mixture, [0.3, 0.7], greedy=True), 2, 0)
    assert first[0].actions == first[1].actions


# ------------------------------------------------------------------------------- training
def test_training_saves_a_loadable_policy(policy_dirs: list[Path]) -> None:
    policy = TextPolicy.load(policy_dirs[1])
    assert policy.name == "morality"
    assert policy.config["pairs"]["pairs"] == 3000
    assert HELD_OUT_GAME not in policy.config["data"]["games"]
    p = policy.probs("A scene.", ["Steal the money.", "Return the money."])
    assert p.dtype == np.float64 and p.shape == (2,) and p.sum() == pytest.approx(1.0)


def test_training_resumes_and_repeats(training_data: TextDataset, tmp_path: Path) -> None:
    small = TextDataset(training_data.episodes[:30], training_data.header)
    config = _config("morality", bc_steps=10)
    config.steps = 40
    whole, _ = train_text_policy(small, config, tmp_path / "whole", progress=False)
    # Stop after 20 steps (a checkpoint), then run the same command to 40.
    config.optim.checkpoint_every = 20
    config.steps = 20
    train_text_policy(small, config, tmp_path / "resumed", progress=False)
    config.steps = 40
    resumed, _ = train_text_policy(small, config, tmp_path / "resumed", progress=False)
    assert resumed.resumed_from == 20
    for (name, a), b in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)


def test_step_table_log_probs_match_the_scorer(training_data: TextDataset) -> None:
    small = TextDataset(training_data.episodes[:3], training_data.header)
    encoder = HashingEncoder(dim=64)
    table = StepTable.build(small, encoder, torch.device("cpu"))
    torch.manual_seed(0)
    net = ChoiceScorer(64, 8)
    steps = [s for e in small.episodes for s in e.steps]
    got = table.log_probs(net, torch.arange(len(steps)))
    for i, step in enumerate(steps):
        emb = torch.from_numpy(encoder.encode([step.text, *step.choices]))
        logits = net(
            emb[:1], emb[1:].unsqueeze(0), torch.ones(1, len(step.choices), dtype=torch.bool)
        )
        expected = torch.log_softmax(logits, -1)[0, step.action]
        torch.testing.assert_close(got[i], expected, rtol=1e-5, atol=1e-5)
    padded = segment_log_probs(table, net, torch.tensor([[0, 1, -1]]))
    assert padded[0, 2] == 0 and torch.allclose(padded[0, :2], got[:2])


def test_training_refuses_data_of_the_held_out_game_only(tmp_path: Path) -> None:
    data = collect(CollectConfig(games=[HELD_OUT_GAME], episodes=2))
    with pytest.raises(ToraError, match="held-out"):
        train_text_policy(data, _config("points"), tmp_path, progress=False)
