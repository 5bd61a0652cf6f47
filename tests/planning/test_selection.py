"""Preference-weighted selection (issue 17, item 3): the agent samples N plans per row, scores
each by sum_k w_k V_k(last planned state), and acts towards the best one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tora.bench.config import load_suite, method_config, suite_method
from tora.diffusion.samplers import SamplerConfig, sample
from tora.envs.scripted import collect_cruise
from tora.errors import CheckpointError
from tora.nn.critics import ValueCriticConfig
from tora.nn.denoisers import DenoiserConfig
from tora.pipeline import critic_run, finetune_run, pretrain_run
from tora.planning.agent import Agent, pick_best, preference_scores, within_budget
from tora.policies.tora_planner import ToraConfig, load_tora, train_tora
from tora.train.critic import ValueCriticTrainConfig
from tora.train.dpo import DPOConfig
from tora.train.inverse import InverseDynamicsTrainConfig
from tora.train.loop import OptimConfig
from tora.train.pretrain import PretrainConfig

FEW = SamplerConfig(steps=3)


def tiny_critics() -> ValueCriticTrainConfig:
    return ValueCriticTrainConfig(
        steps=30,
        batch_size=32,
        held_out=0.0,
        network=ValueCriticConfig(hidden_dim=16, depth=1),
        optim=OptimConfig(lr=1e-3, ema_decay=0.0, checkpoint_every=30),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Cruise run with a critic per objective, each trained a handful of steps: enough to
    test plumbing, not quality."""
    traj = collect_cruise(6, seed=1, progress=False)
    out = tmp_path_factory.mktemp("run")
    tiny = DenoiserConfig(hidden_dim=32, depth=1, time_dim=8)
    pretrain = PretrainConfig(horizon=4, steps=5, diffusion_steps=10, denoiser=tiny)
    pretrain_run(traj, out, pretrain, InverseDynamicsTrainConfig(steps=5), progress=False)
    finetune_run(traj, out, DPOConfig(steps=3, num_pairs=50, segment_length=5), progress=False)
    critic_run(traj, out, tiny_critics(), progress=False)
    return out


OBS = collect_cruise(1, seed=9, progress=False).observations[:3]
WEIGHTS = np.array([[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]])


class LinearValue(nn.Module):
    """A hand-made critic: V(s) = coef . s + bias."""

    def __init__(self, coef: list[float], bias: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("coef", torch.tensor(coef))
        self.bias = bias

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return s @ self.coef + self.bias


def with_selection(
    base: Agent, candidates: int, critics: list[nn.Module], signs: list[float] | None = None
) -> Agent:
    """``base``'s models with selection among ``candidates`` by ``critics``."""
    return Agent(
        list(base.composed.models),
        base.objective_names,
        base.spec,
        base.inverse,
        base.sampler,
        base.device,
        0,
        candidates=candidates,
        critics=critics,
        critic_signs=signs,
    )


def recording(agent: Agent) -> list[torch.Tensor]:
    """Every batch of windows the agent samples, in order."""
    seen: list[torch.Tensor] = []
    original = agent._sample

    def record(*args: object, **kwargs: object) -> torch.Tensor:
        out = original(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(out.clone())
        return out

    agent._sample = record  # type: ignore[method-assign]
    return seen


def test_scores_and_pick_by_hand() -> None:
    values = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [0.6, 0.6]]])  # 1 row, 3 candidates, K 2
    for w, best in (([1.0, 0.0], 0), ([0.0, 1.0], 1), ([0.5, 0.5], 1), ([0.8, 0.2], 0)):
        scores = preference_scores(values, torch.tensor([w]))
        assert int(scores.argmax()) == best
    # 0.5 * 0.6 + 0.5 * 0.6 = 0.6 < 1.0 = 0.5 * 0 + 0.5 * 2.
    torch.testing.assert_close(
        preference_scores(values, torch.tensor([[0.5, 0.5]])), torch.tensor([[0.5, 1.0, 0.6]])
    )
    windows = torch.arange(2 * 3 * 2 * 1, dtype=torch.float32).view(2, 3, 2, 1)
    picked = pick_best(windows, torch.tensor([[0.0, 5.0, 1.0], [2.0, 2.0, 1.0]]))
    torch.testing.assert_close(picked, torch.stack([windows[0, 1], windows[1, 0]]))


def test_selection_picks_the_highest_weighted_value(run: Path) -> None:
    """Known candidates (sampling replaced) and linear critics: the plan is the candidate a
    hand computation ranks first, for every row's preference and critic sign."""
    base = Agent.load(run, device="cpu", sampler=FEW)
    n, h, d = 5, base.spec.horizon, base.obs_dim
    known = torch.randn(len(OBS), n, h, d, generator=torch.Generator().manual_seed(0))
    coefs = ([1.0, 0.5, 0.0], [-1.0, 0.0, 2.0])
    for signs in ([1.0, 1.0], [1.0, -1.0]):
        agent = with_selection(base, n, [LinearValue(c) for c in coefs], signs)
        agent._sample = lambda first, w, noise_fn=None: known.reshape(-1, h, d)  # type: ignore[method-assign]
        last = known[:, :, -1].numpy()
        values = np.stack([last @ np.array(c) for c in coefs], -1) * signs
        best = (values * WEIGHTS[:, None, :]).sum(-1).argmax(1)
        assert len(set(best.tolist())) > 1  # the rows do not all pick the same candidate
        expected = base.spec.normalizer.unnormalize(known[np.arange(len(OBS)), best])
        np.testing.assert_allclose(agent.plan(OBS, WEIGHTS), expected.numpy(), rtol=0, atol=1e-6)
        chosen = known[np.arange(len(OBS)), best]
        action = base.inverse(chosen[:, 0], chosen[:, 1]).detach().numpy()
        np.testing.assert_allclose(agent.act(OBS, WEIGHTS), action, rtol=0, atol=1e-6)


def test_one_candidate_is_the_plain_agent_exactly(run: Path) -> None:
    plain = Agent.load(run, device="cpu", sampler=FEW, seed=4)
    one = Agent.load(run, device="cpu", sampler=FEW, seed=4, candidates=1)
    # Critics given with one candidate are ignored.
    ignored = with_selection(plain, 1, [LinearValue([1.0, 0, 0]), LinearValue([0, 1.0, 0])])
    assert one.critics is None and ignored.critics is None
    for agent in (one, ignored):
        agent.seed(4)
        plain.seed(4)
        np.testing.assert_array_equal(agent.act(OBS, WEIGHTS), plain.act(OBS, WEIGHTS))
    # Per-row streams too, across several steps (same inputs, same path: exact).
    for agent in (plain, one):
        agent.seed_rows([5, 6, 7])
    for _ in range(3):
        np.testing.assert_array_equal(
            one.act(OBS, WEIGHTS, rows=[2, 0, 1]), plain.act(OBS, WEIGHTS, rows=[2, 0, 1])
        )
    # And what the agent did before selection existed: one sampled window, then its first
    # planned step through inverse dynamics.
    plain.seed(11)
    first = plain.spec.normalizer.normalize(torch.as_tensor(OBS))
    w = torch.as_tensor(WEIGHTS, dtype=torch.float32)
    window = sample(
        lambda x, t: plain.composed(x, t, w),
        plain.spec.schedule,
        (len(OBS), plain.spec.horizon, plain.obs_dim),
        first,
        FEW,
        torch.Generator().manual_seed(11),
    )
    by_hand = plain.inverse(window[:, 0], window[:, 1]).numpy()
    np.testing.assert_array_equal(plain.act(OBS, WEIGHTS), by_hand)


def test_one_hot_weights_pick_by_that_objective_only(run: Path) -> None:
    agent = Agent.load(run, device="cpu", sampler=FEW, seed=2, candidates=6)
    assert agent.critics is not None
    seen = recording(agent)
    one_hot = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    plan = agent.plan(OBS, one_hot)
    windows = seen[-1].view(len(OBS), 6, agent.spec.horizon, agent.obs_dim)
    last = windows[:, :, -1]
    for row, k in enumerate((0, 1, 0)):
        best = int(agent.critics[k](last[row]).argmax())
        expected = agent.spec.normalizer.unnormalize(windows[row, best])
        np.testing.assert_allclose(plan[row], expected.numpy(), rtol=0, atol=1e-6)
    # Replacing the critic of the objective with weight 0 changes nothing: its values enter
    # the score multiplied by 0 (exact), and the candidates are the same draws.
    agent.seed(2)
    before = agent.act(OBS, [1.0, 0.0])
    agent.critics[1] = LinearValue([1e6, -1e6, 3e5])
    agent.seed(2)
    np.testing.assert_array_equal(agent.act(OBS, [1.0, 0.0]), before)


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_a_rows_selected_action_does_not_depend_on_its_batch(run: Path, method: str) -> None:
    """With per-row streams, row r's N candidates come from stream r alone: acting on the
    batch or on the row alone gives the same action. Not bit-equal: the networks run on
    batches of different sizes, whose matrix products may round differently (1e-6 here),
    which could only flip a choice between candidates of near-equal score."""
    sampler = SamplerConfig(method=method, steps=3)
    batch = Agent.load(run, device="cpu", sampler=sampler, candidates=4)
    alone = Agent.load(run, device="cpu", sampler=sampler, candidates=4)
    seeds = [21, 22, 23]
    batch.seed_rows(seeds)
    alone.seed_rows(seeds)
    for _ in range(3):  # several steps: each reads the next part of each row's stream
        together = batch.act(OBS, WEIGHTS)
        for r in range(len(OBS)):
            single = alone.act(OBS[r : r + 1], WEIGHTS[r : r + 1], rows=[r])
            np.testing.assert_allclose(single[0], together[r], rtol=0, atol=1e-5)
    # The N candidates of one row are distinct draws, so there is something to select from.
    seen = recording(batch)
    batch.act(OBS, WEIGHTS)
    windows = seen[-1].view(len(OBS), 4, batch.spec.horizon, batch.obs_dim)
    assert torch.unique(windows[0, :, 1:].reshape(4, -1), dim=0).shape[0] == 4


def test_row_noise_block_fits_the_candidates(run: Path) -> None:
    agent = Agent.load(run, device="cpu", sampler=SamplerConfig(method="ddpm"), candidates=100)
    agent.seed_rows([1, 2])
    assert agent.act(OBS[:2], WEIGHTS[:2]).shape == (2, 1)  # 100 windows per draw fit a block


def without_critic(run: Path, tmp: Path, name: str) -> Path:
    copy = tmp / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "critics" / name)
    return copy


def test_missing_critic_is_named_with_its_command(run: Path, tmp_path: Path) -> None:
    copy = without_critic(run, tmp_path, "energy")
    Agent.load(copy, device="cpu")  # no selection: no critic needed
    pattern = r"no value critic for objective 'energy'.*tora critic --data DATA --run .*energy"
    with pytest.raises(CheckpointError, match=pattern):
        Agent.load(copy, device="cpu", candidates=4)
    Agent.load(copy, ["speed"], device="cpu", candidates=4)  # only composed objectives count
    with pytest.raises(ValueError, match="one value critic per composed objective"):
        with_selection(Agent.load(run, device="cpu"), 3, [LinearValue([1.0, 0, 0])])
    with pytest.raises(ValueError, match="positive integer"):
        Agent.load(run, device="cpu", candidates=0)


def test_critic_of_another_reference_is_refused(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    path = copy / "critics" / "speed" / "config.json"
    config = json.loads(path.read_text())
    config["reference_sha256"] = "0" * 64
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"another reference planner.*--objective speed"):
        Agent.load(copy, device="cpu", candidates=2)


def tiny_tora(candidates: int) -> ToraConfig:
    tiny = DenoiserConfig(hidden_dim=32, depth=1, time_dim=8)
    return ToraConfig(
        pretrain=PretrainConfig(horizon=4, steps=5, diffusion_steps=10, denoiser=tiny),
        inverse=InverseDynamicsTrainConfig(steps=5),
        dpo=DPOConfig(steps=3, num_pairs=50, segment_length=5),
        sampler=SamplerConfig(steps=2),
        candidates=candidates,
        critic=tiny_critics(),
    )


def test_tora_method_trains_critics_only_for_selection(tmp_path: Path) -> None:
    traj = collect_cruise(6, seed=1, progress=False)
    out = train_tora(traj, tmp_path / "cell", tiny_tora(1), progress=False)
    assert not (out / "critics").exists()  # plain TORA, as before the option existed
    assert load_tora(out).candidates == 1
    # The same cell with selection resumes the finished stages and adds the critics.
    train_tora(traj, out, tiny_tora(4), progress=False)
    assert sorted(p.name for p in (out / "critics").iterdir()) == ["energy", "speed"]
    agent = load_tora(out, seed=3)
    assert agent.candidates == 4 and agent.act(OBS, WEIGHTS).shape == (3, 1)


def test_suite_variant_with_selection(tmp_path: Path) -> None:
    """The variant reported for benchmarks/suites: TORA with 16 candidates."""
    path = tmp_path / "s.toml"
    path.write_text(
        'methods = ["tora", "tora_select"]\n'
        "[variants.tora_select]\n"
        'method = "tora"\n'
        'label = "TORA + selection"\n'
        "settings = { candidates = 16 }\n"
        '[[envs]]\nid = "tora/Cruise-v0"\n'
    )
    suite = load_suite(path)
    entry = suite.envs[0]
    select = method_config(suite, entry, suite_method(suite, "tora_select"), 2)
    plain = method_config(suite, entry, suite_method(suite, "tora"), 2)
    assert (select.candidates, plain.candidates) == (16, 1)
    assert select.critic.seed == 2 and select.dpo == plain.dpo


# ------------------------------------------------- budget-aware selection (safe RL)
def test_within_budget_by_hand() -> None:
    scores = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    cost = torch.tensor([[5.0, 1.0, 0.5], [5.0, 4.0, 3.0], [0.0, 0.0, 0.0]])
    budget = torch.tensor([2.0, 2.0, 1.0])
    out = within_budget(scores, cost, budget)
    inf = float("-inf")
    # Row 0: candidate 0 overspends; row 1: all do, the cheapest (cost 3) wins; row 2: none do.
    torch.testing.assert_close(
        out, torch.tensor([[inf, 2.0, 1.0], [-5.0, -4.0, -3.0], [3.0, 2.0, 1.0]])
    )
    assert out.argmax(1).tolist() == [1, 2, 0]


def test_budget_discards_candidates_that_would_overspend(run: Path) -> None:
    """Known candidates and linear critics, objective 1 a cost: with an ample budget the agent
    picks as without one; with a budget between the candidates' predicted costs, the best of
    those that fit; with none fitting, the cheapest."""
    base = Agent.load(run, device="cpu", sampler=FEW)
    n, h, d = 6, base.spec.horizon, base.obs_dim
    known = torch.randn(len(OBS), n, h, d, generator=torch.Generator().manual_seed(1))
    # Reward and cost rise together (both read the last state's third coordinate, as a
    # faster run both earns and costs more), so the preferred plans are costly ones and a
    # median budget changes the choice (asserted below, so an ignored budget cannot pass).
    reward, cost = [0.5, 0.0, 1.0], [0.0, 0.0, 1.0]
    agent = with_selection(base, n, [LinearValue(reward), LinearValue(cost)], [1.0, -1.0])
    agent._sample = lambda first, w, noise_fn=None: known.reshape(-1, h, d)  # type: ignore[method-assign]
    last = known[:, :, -1].numpy()
    r, c = last @ np.array(reward), last @ np.array(cost)  # (B, N) predicted reward and cost
    weights = np.array([[0.8, 0.2]] * len(OBS))
    scores = 0.8 * r - 0.2 * c
    rows = np.arange(len(OBS))

    def expect(best: np.ndarray) -> np.ndarray:
        return base.spec.normalizer.unnormalize(known[rows, best]).numpy()

    middle = np.median(c, axis=1)
    fits = c <= middle[:, None]
    cases = [
        (1e9, scores.argmax(1)),
        (middle, np.where(fits, scores, -np.inf).argmax(1)),
        (c.min() - 1.0, c.argmin(1)),
    ]
    for budget, best in cases:
        got = agent.plan(OBS, weights, budget_left=budget)
        np.testing.assert_allclose(got, expect(best), rtol=0, atol=1e-6)
    # The middle budget changes every row's choice: a budget that is ignored fails above.
    assert (cases[1][1] != cases[0][1]).all()


def test_budget_needs_candidates_and_one_cost_critic(run: Path) -> None:
    base = Agent.load(run, device="cpu", sampler=FEW)
    critics = [LinearValue([1.0, 0.0, 0.0]), LinearValue([0.0, 0.0, 1.0])]
    no_cost = with_selection(base, 3, critics, [1.0, 1.0])
    with pytest.raises(ValueError, match="exactly one objective to minimize"):
        no_cost.act(OBS, [0.5, 0.5], budget_left=1.0)
    with pytest.raises(ValueError, match="candidates > 1"):
        base.act(OBS, [0.5, 0.5], budget_left=1.0)
    with_cost = with_selection(base, 3, critics, [1.0, -1.0])
    with pytest.raises(ValueError, match="finite"):
        with_cost.act(OBS, [0.5, 0.5], budget_left=float("nan"))
