"""Finetuning from a teacher policy with DiME, at a fixed or a learned trade-off.

The finetuning case study of the DiME paper (seeds/003, Sec. 5.1 and 6.3): an agent learns
online, trading off the task return against staying close to a teacher ``pi_b``. DiME
(Eq. 7) improves once per objective and projects onto their mixture,

    ``(1 - alpha) q_1 + alpha q_2``,  ``q_1 ∝ pi_i exp(Q / eta_1)``,
    ``q_2 ∝ pi_i exp(log(pi_b / pi_i) / eta_2)``.

The task's temperature ``eta_1`` comes from its KL-bounded dual (Eq. 45). For the teacher this
module takes the paper's Eq. 8, ``eta_2 = 1``, where ``q_2`` is ``pi_b`` itself and its
projection term is the cross-entropy ``-E_s log pi_theta(a_b | s)`` at the teacher's action
(the teachers here are deterministic linear policies, so ``a_b = mu_b(s)``): the same loss as
offline DiME (BC) with the teacher's actions in place of the data's
(:func:`tora.train.losses.dime_offline.offline_dime_loss`). A KL-bounded ``eta_2`` would move the
agent towards the teacher a trust region at a time, far too slowly for a few thousand updates.
``alpha`` is fixed, or learned like a Lagrange multiplier (Sec. 6.3):
``alpha = sigmoid(x)`` minimizes ``J(alpha) = alpha (R - c)``, so ``alpha`` grows (copy the
teacher) while the agent's return ``R`` is below the threshold ``c`` and shrinks (optimize the
task) once it is above; the paper sets ``c`` to the return of imitating the teacher.

Choices of this implementation, and why:

* ``R`` is the mean return of the agent's latest *greedy* episodes, not the paper's
  ``E Q(s, a)``: ``c`` is a return, and the critic's discounted values are on another scale.
  Every :attr:`FinetuneConfig.greedy_every`-th training episode acts with the policy's mean
  action, as the teacher and the evaluation do; compared with the exploring episodes'
  returns, ``c`` would never be reached (a first version did that: the agent matched the
  teacher with its mean action, 1583 against 1561, while its exploring episodes scored about
  1100, so ``alpha`` only ever grew). Greedy episodes feed the replay buffer like the others.
* The policy's standard deviation has a floor (:attr:`FinetuneConfig.min_log_std`): the
  teacher's cross-entropy to a single action would otherwise shrink it to nothing and end
  exploration.
* The critic is a twin Q with Polyak-averaged targets trained by one-step TD towards
  ``r + gamma E_{a' ~ pi_i} min_j Q'_j(s', a')`` on a replay buffer of everything seen; the
  paper's distributional C51 with n-step returns and distributed actors is beyond a 2-core
  CPU. Observations are normalized with the teacher's fixed statistics.
* One "step" of the shared resumable loop (:func:`tora.train.loop.train_and_save`) is
  ``update_every`` environment steps and one gradient update of the policy and the critic.
  The replay buffer, the dual variables and the counters are buffers of the trained module,
  so a killed run resumes from its last checkpoint; the episode in progress restarts.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from tora.behavior.policy import LinearPolicy, load_policy
from tora.behavior.shipped import load_shipped_policies
from tora.configs import config_to_dict
from tora.device import resolve_device
from tora.dime.offline import TemperatureDual, adam_step_, check_settings
from tora.envs import make_env
from tora.errors import ToraError
from tora.io import atomic_write_json
from tora.nn.dime import Critic, GaussianPolicy, gaussian_log_prob
from tora.train.loop import OptimConfig, train_and_save
from tora.train.losses.dime import tradeoff_loss
from tora.train.losses.dime_offline import offline_dime_loss

__all__ = [
    "FinetuneConfig",
    "LearnedTradeoff",
    "evaluate_returns",
    "finetune",
    "load_teacher",
]

Stats = dict[str, float]
RESULTS_FILE = "results.json"


@dataclass
class FinetuneConfig:
    """Online DiME finetuning of a Gaussian policy from a teacher, on one reward objective."""

    env: str = "tora/MO-HalfCheetah-v0"
    """Environment id (a tora MuJoCo task or its D4MORL name)."""
    objective: int = 0
    """Index of the reward objective that is the task (MO-HalfCheetah: 0 = speed)."""
    teacher: str = "shipped:8"
    """The teacher: "shipped:<i>" for the env's shipped behaviour policy i (MO-HalfCheetah's
    8 was trained for preference (0.2, 0.8) and reaches about 65% of the best speed return),
    or the path of a saved linear policy."""
    alpha: float | None = None
    """Fixed trade-off in [0, 1], the weight on the teacher (1: imitate it; 0: ignore it);
    none learns it against the threshold."""
    threshold: float | None = None
    """Return threshold c of the learned trade-off (none: the teacher's own mean return over
    eval_episodes, measured before training)."""
    init_alpha: float = 0.5
    """Starting value of a learned trade-off."""
    alpha_lr: float = 0.001
    """Adam step size of the learned trade-off's logit, one step per update."""
    return_window: int = 3
    """Greedy training episodes averaged into the return R compared with c."""
    greedy_every: int = 2
    """Every n-th training episode acts with the policy's mean action (no exploration noise);
    only those episodes' returns are compared with the threshold (1: all greedy)."""
    env_steps: int = 30000
    """Environment steps of the whole run (the paper: millions on a GPU with many actors)."""
    warmup_steps: int = 1000
    """Environment steps collected before the first update."""
    update_every: int = 4
    """Environment steps per gradient update."""
    batch_size: int = 128
    """Replay transitions per update."""
    num_actions: int = 10
    """Actions sampled per state for the improvement step."""
    next_actions: int = 4
    """Actions sampled per next state for the critic's TD target."""
    epsilon: float = 0.1
    """KL bound of both improved policies (the paper's default 0.1, Table 3)."""
    init_temperature: float = 10.0
    """Initial temperatures (the paper's 10, Table 3)."""
    dual_lr: float = 0.01
    """Adam step size of the log-temperatures (Table 3)."""
    target_period: int = 25
    """Updates between copies of the policy into the sampling policy pi_i (the paper's 100,
    Table 3, over millions of updates; 25 here so that a few thousand updates take enough
    KL-bounded improvement steps)."""
    discount: float = 0.99
    """Discount of the task critic (Table 3)."""
    target_rate: float = 0.005
    """Polyak rate of the critic's target twins."""
    min_log_std: float = -2.0
    """Smallest log std of the policy, relative to half the action range (exploration floor:
    exp(-2) is 14% of it)."""
    hidden_dim: int = 256
    """Width of the hidden layers of the policy and the critic."""
    depth: int = 2
    """Number of hidden layers of the policy and the critic."""
    eval_episodes: int = 3
    """Episodes (mean actions) evaluating the teacher before and the agent after training."""
    seed: int = 0
    """Seed of the networks, the sampled actions and the environment resets."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(ema_decay=0.0, checkpoint_every=2000)
    )
    """Optimizer of the policy and the critic (no EMA: the agent acts with what it trains)."""

    def __post_init__(self) -> None:
        if self.alpha is not None and not 0 <= self.alpha <= 1:
            raise ToraError(f"alpha must lie in [0, 1] or be none (learned), got {self.alpha}")
        if not 0 < self.init_alpha < 1:
            raise ToraError(f"init_alpha must lie in (0, 1), got {self.init_alpha}")
        for name in (
            "update_every",
            "batch_size",
            "num_actions",
            "next_actions",
            "return_window",
            "greedy_every",
        ):
            if getattr(self, name) < 1:
                raise ToraError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_steps < self.env_steps:
            raise ToraError("warmup_steps must lie in [0, env_steps)")
        if self.warmup_steps < self.batch_size:
            raise ToraError("warmup_steps must be at least batch_size")

    @property
    def updates(self) -> int:
        """Gradient updates of the run: one per update_every steps after the warm-up."""
        return max(1, (self.env_steps - self.warmup_steps) // self.update_every)


# --------------------------------------------------------------------------- learned trade-off


class LearnedTradeoff(nn.Module):
    """``alpha = sigmoid(logit)`` adapted by Adam on :func:`tradeoff_loss`; buffers only, so it
    resumes with the module. The logit is clamped to +-``max_logit``: a saturated sigmoid would
    have no gradient left to come back with."""

    def __init__(self, init_alpha: float, lr: float, max_logit: float = 6.0) -> None:
        super().__init__()
        self.lr, self.betas, self.eps, self.max_logit = float(lr), (0.9, 0.999), 1e-8, max_logit
        self.register_buffer("logit", torch.tensor(math.log(init_alpha / (1 - init_alpha))))
        self.register_buffer("exp_avg", torch.zeros(()))
        self.register_buffer("exp_avg_sq", torch.zeros(()))
        self.register_buffer("count", torch.zeros(()))

    @property
    def alpha(self) -> float:
        return float(torch.sigmoid(self.logit))

    def update(self, mean_return: float, threshold: float) -> Stats:
        logit = self.logit.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss, stats = tradeoff_loss(logit, mean_return, threshold)
            (grad,) = torch.autograd.grad(loss, logit)
        adam_step_(self, self.logit, grad)
        with torch.no_grad():
            self.logit.clamp_(-self.max_logit, self.max_logit)
        return stats


# --------------------------------------------------------------------------- teacher, env


def load_teacher(env_id: str, spec: str) -> LinearPolicy:
    """The teacher named by ``spec`` ("shipped:<i>" or a saved policy's path)."""
    if spec.startswith("shipped:"):
        policies = load_shipped_policies(env_id)
        index = int(spec.split(":", 1)[1])
        if not 0 <= index < len(policies):
            raise ToraError(f"{env_id} ships {len(policies)} policies; got index {index}")
        return policies[index]
    return load_policy(spec)


def evaluate_returns(
    act: Any, env_id: str, objective: int, episodes: int, seed: int
) -> list[float]:
    """Task returns of ``act(obs) -> action`` over ``episodes`` episodes (resets
    ``seed + e``), stepping one environment: a few episodes do not pay for worker processes."""
    env = make_env(env_id)
    returns = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(np.asarray(reward).reshape(-1)[objective])
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


class _Replay(nn.Module):
    """A replay buffer of every transition, held in buffers so that checkpoints carry it."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.register_buffer("obs", torch.zeros(capacity, obs_dim))
        self.register_buffer("actions", torch.zeros(capacity, act_dim))
        self.register_buffer("rewards", torch.zeros(capacity))
        self.register_buffer("next_obs", torch.zeros(capacity, obs_dim))
        self.register_buffer("terminals", torch.zeros(capacity))
        self.register_buffer("size", torch.zeros((), dtype=torch.int64))

    def add(self, obs: Any, action: Any, reward: float, next_obs: Any, terminal: bool) -> None:
        i = int(self.size)
        self.obs[i] = torch.as_tensor(obs)
        self.actions[i] = torch.as_tensor(action)
        self.rewards[i] = reward
        self.next_obs[i] = torch.as_tensor(next_obs)
        self.terminals[i] = float(terminal)
        self.size += 1


class _Learner(nn.Module):
    """Everything a finetuning run trains and checkpoints."""

    def __init__(
        self, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray, c: FinetuneConfig
    ) -> None:
        super().__init__()
        self.policy = GaussianPolicy(
            obs_dim,
            act_dim,
            torch.as_tensor(low),
            torch.as_tensor(high),
            c.hidden_dim,
            c.depth,
            min_log_std=c.min_log_std,
        )
        self.sampler = copy.deepcopy(self.policy).requires_grad_(False)
        self.critic = Critic(obs_dim, act_dim, c.hidden_dim, c.depth)
        self.critic.v.requires_grad_(False)  # IQL's V is not used online
        self.dual = TemperatureDual(1, c.init_temperature, c.dual_lr)
        self.tradeoff = LearnedTradeoff(c.init_alpha, c.alpha_lr)
        self.replay = _Replay(c.env_steps, obs_dim, act_dim)
        self.register_buffer("updates_done", torch.zeros((), dtype=torch.int64))
        self.register_buffer("episodes_done", torch.zeros((), dtype=torch.int64))
        self.register_buffer("recent_returns", torch.full((c.return_window,), float("nan")))


class _Actor:
    """Steps the environment with the current policy and feeds the replay buffer."""

    def __init__(self, learner: _Learner, teacher: LinearPolicy, c: FinetuneConfig) -> None:
        self.learner, self.config = learner, c
        self.mean = torch.as_tensor(teacher.mean, dtype=torch.float32)
        self.std = torch.as_tensor(teacher.std, dtype=torch.float32)
        self.env: gym.Env = make_env(c.env)
        self.obs: np.ndarray | None = None
        self.episode_return = 0.0

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std

    def greedy(self) -> bool:
        """Whether the current episode acts with the mean action (its return counts as R)."""
        every = self.config.greedy_every
        return int(self.learner.episodes_done) % every == every - 1

    def step(self, generator: torch.Generator) -> tuple[float, bool] | None:
        """One environment step; the finished episode's task return and whether it was
        greedy, else None."""
        learner, c = self.learner, self.config
        if self.obs is None:  # a fresh run, a finished episode or a resumed run
            seed = c.seed * 1_000_003 + int(learner.episodes_done)
            self.obs, _ = self.env.reset(seed=seed)
            self.episode_return = 0.0
        obs = torch.as_tensor(self.obs, dtype=torch.float32)
        with torch.no_grad():
            mean, std = learner.policy(self.normalize(obs).unsqueeze(0))
            noise = torch.randn(mean.shape, generator=generator)  # drawn either way: the
            # random stream stays the same whichever episodes are greedy
            action = mean[0] if self.greedy() else learner.policy.clip(mean + std * noise)[0]
        next_obs, reward, terminated, truncated, _ = self.env.step(action.numpy())
        r = float(np.asarray(reward).reshape(-1)[c.objective])
        learner.replay.add(obs, action, r, next_obs, bool(terminated))
        self.episode_return += r
        self.obs = next_obs
        if not (terminated or truncated):
            return None
        greedy = self.greedy()
        self.obs = None
        learner.episodes_done += 1
        if greedy:
            learner.recent_returns.copy_(
                torch.cat([learner.recent_returns[1:], torch.tensor([self.episode_return])])
            )
        return self.episode_return, greedy


# --------------------------------------------------------------------------- training


def _update(
    learner: _Learner,
    actor: _Actor,
    teacher: LinearPolicy,
    threshold: float,
    c: FinetuneConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, Stats]:
    """Collect ``update_every`` steps (the warm-up first), then one update of everything."""
    stats: Stats = {}
    replay = learner.replay
    while int(replay.size) < c.warmup_steps:
        actor.step(generator)
    for _ in range(c.update_every):
        if int(replay.size) < c.env_steps:
            finished = actor.step(generator)
            if finished is not None:
                stats["greedy_return" if finished[1] else "episode_return"] = finished[0]
    if int(learner.updates_done) % c.target_period == 0:
        learner.sampler.load_state_dict(learner.policy.state_dict())
    learner.updates_done += 1

    idx = torch.randint(int(replay.size), (c.batch_size,), generator=generator)
    raw_s = replay.obs[idx]
    s, s2 = actor.normalize(raw_s), actor.normalize(replay.next_obs[idx])
    policy, critic = learner.policy, learner.critic
    with torch.no_grad():
        n_mean, n_std = learner.sampler(s2)
        noise = torch.randn((c.batch_size, c.next_actions, policy.act_dim), generator=generator)
        next_a = policy.clip(n_mean.unsqueeze(1) + n_std.unsqueeze(1) * noise)
        next_v = critic.target_q(s2, next_a).mean(dim=1)
        target = replay.rewards[idx] + c.discount * (1 - replay.terminals[idx]) * next_v
        s_mean, s_std = learner.sampler(s)
        noise = torch.randn((c.batch_size, c.num_actions, policy.act_dim), generator=generator)
        sampled = policy.clip(s_mean.unsqueeze(1) + s_std.unsqueeze(1) * noise)
        q = critic.target_q(s, sampled)  # (B, N)
        teacher_actions = torch.as_tensor(teacher.act(raw_s.numpy()), dtype=torch.float32)
    critic.update_target(c.target_rate)
    q_pred = critic.q_values(s, replay.actions[idx])  # (B, 2) online twins
    critic_loss = (q_pred - target.unsqueeze(-1)).pow(2).mean(dim=0).sum()

    if c.alpha is None:
        window = learner.recent_returns[~torch.isnan(learner.recent_returns)]
        if window.numel() > 0:
            stats.update(learner.tradeoff.update(float(window.mean()), threshold))
        alpha = learner.tradeoff.alpha
    else:
        alpha = c.alpha
    mean, std = policy(s)
    policy_loss, policy_stats = offline_dime_loss(
        gaussian_log_prob(sampled, mean, std),
        q,
        gaussian_log_prob(teacher_actions, mean, std),
        alpha,
        learner.dual.temperatures(),
    )
    learner.dual.update(q.unsqueeze(-1), c.epsilon)
    stats.update({f"policy_{k}": v for k, v in policy_stats.items()})
    stats["critic_loss"] = float(critic_loss.detach())
    stats["alpha"] = alpha
    stats["std"] = float(std.detach().mean())
    return critic_loss + policy_loss, stats


def _device(device: torch.device | str) -> torch.device:
    return resolve_device(device) if isinstance(device, str) else torch.device(device)


def finetune(
    out_dir: Path,
    config: FinetuneConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Finetune a policy from the teacher into ``out_dir``; returns (and writes) the results.

    ``results.json``: the teacher's and the agent's evaluation returns (mean actions, the same
    reset seeds), the threshold, the final trade-off, the training episodes' returns and the
    wall time. Resumes an interrupted run; refuses a directory started with other settings.
    Runs on the CPU (``device`` "auto" or "cpu").
    """
    config = FinetuneConfig() if config is None else config
    # "auto" means the CPU here: one environment step at a time would leave a GPU idle.
    if device != "auto" and _device(device).type != "cpu":
        raise ToraError("finetuning steps one environment at a time; run it with --device cpu")
    out_dir = Path(out_dir)
    check_settings(out_dir, config)
    teacher = load_teacher(config.env, config.teacher)
    eval_seed = 10_000 + config.seed
    teacher_returns = evaluate_returns(
        teacher.act, config.env, config.objective, config.eval_episodes, eval_seed
    )
    threshold = float(np.mean(teacher_returns)) if config.threshold is None else config.threshold
    low, high = teacher.low.astype(np.float32), teacher.high.astype(np.float32)
    torch.manual_seed(config.seed)
    learner = _Learner(teacher.obs_dim, teacher.act_dim, low, high, config)
    actor = _Actor(learner, teacher, config)
    generator = torch.Generator().manual_seed(config.seed)
    step_fn = partial(_update, learner, actor, teacher, threshold, config, generator)
    label = "learned" if config.alpha is None else f"{config.alpha:g}"
    start = time.perf_counter()
    result = train_and_save(
        desc=f"DiME finetune (alpha {label})",
        model=learner,
        step_fn=step_fn,
        steps=config.updates,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config={"kind": "dime_finetune", "train": config_to_dict(config)},
        progress=progress,
    )
    train_s = time.perf_counter() - start
    agent = learner.policy.eval()

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        x = actor.normalize(torch.as_tensor(obs, dtype=torch.float32)).unsqueeze(0)
        return agent(x)[0][0].numpy()

    returns = evaluate_returns(act, config.env, config.objective, config.eval_episodes, eval_seed)
    episodes = [h["episode_return"] for h in result.history if "episode_return" in h]
    greedy = [h["greedy_return"] for h in result.history if "greedy_return" in h]
    results = {
        "alpha": "learned" if config.alpha is None else config.alpha,
        "final_alpha": learner.tradeoff.alpha if config.alpha is None else config.alpha,
        "threshold": threshold,
        "teacher_returns": teacher_returns,
        "teacher_return": float(np.mean(teacher_returns)),
        "returns": returns,
        "return": float(np.mean(returns)),
        "env_steps": int(learner.replay.size),
        "updates": int(learner.updates_done),
        "train_episode_returns": episodes,
        "greedy_episode_returns": greedy,
        "train_s": train_s,
    }
    atomic_write_json(out_dir / RESULTS_FILE, json.loads(json.dumps(results)))
    return results
