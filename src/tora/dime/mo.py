"""DiME for multi-objective offline RL: one policy ``pi(a | s, w)`` for every preference ``w``.

Item 3 of the DiME issue (seeds/003, Sec. 4 and 5.2): the offline case study's two objectives
(task return, staying close to the data) become the environment's ``K`` reward objectives plus
the data prior. Per batch row a preference ``w`` is drawn uniformly from the simplex and the
policy, which takes ``w`` as an input, is projected onto

    ``(1 - beta) sum_k w_k q_k + beta pi_b``,  ``q_k ∝ pi_i exp(Q_k / eta_k)``,

(:func:`tora.train.losses.dime_offline.offline_mo_dime_loss`): one improved policy per objective,
each from its own IQL critic ``Q_k`` and with its own temperature ``eta_k`` adapted through the
dual of ``KL(q_k || pi_i) <= epsilon`` (Eq. 45), independent of ``w``; ``pi_b`` is known through
the data's actions (a behaviour-cloning term) and weighs a fixed ``beta``
(:attr:`DimePConfig.prior_weight`). This is the paper's "multi" construction with the
trade-off over the reward objectives instead of over (task, prior).

Why the data's preference labels are not used. D4MORL-style datasets record the preference
each episode was collected under; BC(P) and MORvS(P) learn from those labels. DiME needs no
labels: it samples its own preferences and learns what each one should do from the critics, so
it also works on data collected without preferences (a single behaviour policy, logged data).
Its benchmark entry therefore says it does not see preferences, like TORA, which also learns
per objective and composes at inference.

The critics are :mod:`tora.dime.critic`'s IQL critic, one per objective (one-hot
``task_weights``), learned once before the policy from the same data, so each ``Q_k`` is only
queried near the data (where the KL bound and the prior keep the sampled actions). Each
objective's reward is divided by its standard deviation over the dataset: the policy loss does
not care (DiME is invariant to each ``Q_k``'s scale), but the critics' regression then sees
targets of similar size for every objective, so one learning rate fits all.

The training loop is :mod:`tora.dime.offline`'s: every ``target_period`` steps the policy is
copied into the frozen sampling policy ``pi_i``; the temperatures take an Adam step of their
own per batch; the shared resumable loop trains the rest. A trained directory holds::

    OUT/critics/<k>_<objective>/   one IQL critic per objective (resumable on its own)
    OUT/                           the policy: config.json, model.safetensors, history.json
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tora.configs import config_from_dict, config_to_dict
from tora.data.normalize import Normalizer
from tora.data.trajectories import Objective, Trajectories
from tora.device import resolve_device
from tora.dime.critic import CriticConfig, LoadedCritic, data_fingerprint, load_critic, train_critic
from tora.dime.offline import TemperatureDual, check_settings
from tora.errors import CheckpointError, ToraError
from tora.nn.dime import GaussianPolicy, gaussian_log_prob
from tora.planning.inputs import batch_inputs, check_spaces
from tora.train.checkpoint import CONFIG_FILE, load_state_into, read_config
from tora.train.loop import OptimConfig, train_and_save
from tora.train.losses.dime_offline import offline_mo_dime_loss

__all__ = [
    "CRITICS_DIR",
    "MO_POLICY_KIND",
    "DimePConfig",
    "DimePPolicy",
    "critic_dirs",
    "load_dime_p",
    "sample_simplex",
    "train_critics",
    "train_dime_p",
]

Stats = dict[str, float]

MO_POLICY_KIND = "dime_p"
"""The ``kind`` recorded in a policy directory's config.json."""
CRITICS_DIR = "critics"
LABEL = "DiME multi"


def _default_critic() -> CriticConfig:
    # 4,000 IQL steps per objective, as in the offline sweep of BENCHMARKS.md section 8: on
    # 1,000-episode MuJoCo data the critics' losses have flattened by then.
    return CriticConfig(steps=4000)


@dataclass
class DimePConfig:
    """DiME over the environment's objectives and the data prior, one policy for all w."""

    hidden_dim: int = 256
    """Width of the policy's hidden layers."""
    depth: int = 3
    """Number of hidden layers of the policy (3, like the benchmark's other networks)."""
    steps: int = 3000
    """Policy gradient steps (the paper trains 1M on a TPU; a CPU cell affords a few k)."""
    batch_size: int = 256
    """Dataset states per step, each with its own sampled preference."""
    num_actions: int = 20
    """Actions sampled per state from the sampling policy (the paper's 20 in its
    multi-objective runs, Table 4)."""
    prior_weight: float = 0.1
    """Fixed weight beta of the data prior (behaviour cloning) against the objectives' mixture;
    the objectives share 1 - beta as the preference w divides it. 1 is plain BC; 0 leaves the
    policy free to leave the data, where the critics extrapolate."""
    epsilon: float = 0.5
    """KL bound of each objective's improved policy (the paper's 0.5 offline, Table 4)."""
    init_temperature: float = 10.0
    """Initial temperature eta_k of every objective (the paper's 10, Table 3)."""
    dual_lr: float = 0.01
    """Adam step size of log eta_k (the paper's 0.01 for dual variables, Table 3)."""
    target_period: int = 100
    """Steps between copies of the policy into the sampling policy pi_i (Table 3)."""
    min_log_std: float = -5.0
    """Smallest log std, relative to half the action range."""
    max_log_std: float = 0.0
    """Largest log std, relative to half the action range."""
    normalize_rewards: bool = True
    """Divide each objective's reward by its standard deviation over the dataset before its
    critic learns it (then times critic.reward_scale); the policy loss is scale-free."""
    seed: int = 0
    """Seed of the initialization, the batches, the preferences and the sampled actions (and
    of the critics)."""
    critic: CriticConfig = field(default_factory=_default_critic)
    """The IQL critic learned per objective (its task_weights must stay unset: each critic
    gets its own objective)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer, EMA and checkpointing of the policy."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "num_actions", "target_period"):
            if getattr(self, name) < 1:
                raise ToraError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.prior_weight <= 1:
            raise ToraError(f"prior_weight must lie in [0, 1], got {self.prior_weight}")
        if not 0 < self.epsilon < math.log(max(self.num_actions, 2)):
            raise ToraError(
                f"epsilon must lie in (0, log(num_actions)) = (0, {math.log(self.num_actions):.3g})"
            )
        if not (self.init_temperature > 0 and self.dual_lr > 0):
            raise ToraError("init_temperature and dual_lr must be positive")
        if self.critic.task_weights is not None:
            raise ToraError(
                "dime_p learns one critic per objective; leave critic.task_weights unset"
            )


# --------------------------------------------------------------------------- pieces


def sample_simplex(batch: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``(batch, k)`` preferences uniform on the simplex (Dirichlet(1, ..., 1)).

    Normalized exponentials rather than ``torch.distributions.Dirichlet``, whose sampler takes
    no generator: the batches must follow the run's seed to resume and repeat exactly.
    """
    u = torch.rand((batch, k), generator=generator, device=generator.device)
    e = -torch.log1p(-u)  # Exp(1); log1p(-u) is finite since u < 1
    return e / e.sum(dim=1, keepdim=True)


def critic_dirs(out_dir: Path, objectives: tuple[Objective, ...] | list[Objective]) -> list[Path]:
    """Where each objective's critic lives inside a dime_p directory."""
    return [Path(out_dir) / CRITICS_DIR / f"{k}_{o.name}" for k, o in enumerate(objectives)]


def _objective_critic_config(config: DimePConfig, dataset: Trajectories, k: int) -> CriticConfig:
    """The critic config of objective ``k``: one-hot task weights, reward scaled per objective."""
    onehot = [0.0] * dataset.num_objectives
    onehot[k] = 1.0
    scale = config.critic.reward_scale
    if config.normalize_rewards:
        std = float(np.std(dataset.rewards[:, k]))
        scale /= std if std > 1e-8 else 1.0  # a constant reward keeps its scale
    return dataclasses.replace(
        config.critic, task_weights=onehot, reward_scale=scale, seed=config.seed
    )


def train_critics(
    dataset: Trajectories,
    out_dir: Path,
    config: DimePConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[Path]:
    """One IQL critic per objective into ``out_dir/critics/`` (each resumable, a complete one
    with the same settings reused)."""
    dirs = critic_dirs(out_dir, dataset.objectives)
    fingerprint = data_fingerprint(dataset)
    for k, directory in enumerate(dirs):
        critic_config = _objective_critic_config(config, dataset, k)
        check_settings(directory, critic_config, data_fingerprint=fingerprint)
        done = (directory / CONFIG_FILE).exists() and (
            read_config(directory).get("train", {}).get("steps") == critic_config.steps
        )
        if not done:
            train_critic(dataset, directory, critic_config, device, progress)
    return dirs


class _Learner(nn.Module):
    """What a dime_p run trains and checkpoints: the policy, the frozen sampling policy, one
    temperature per objective and the step count (for the sampling policy's period)."""

    def __init__(self, policy: GaussianPolicy, num_objectives: int, config: DimePConfig) -> None:
        super().__init__()
        self.policy = policy
        self.sampler = copy.deepcopy(policy).requires_grad_(False)
        self.dual = TemperatureDual(num_objectives, config.init_temperature, config.dual_lr)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.int64))


def _policy(
    obs_dim: int, act_dim: int, low: Any, high: Any, k: int, c: DimePConfig
) -> GaussianPolicy:
    """The policy network; the preference ``w`` (``k`` values) is its conditioning input."""
    return GaussianPolicy(
        obs_dim,
        act_dim,
        torch.as_tensor(low, dtype=torch.float32),
        torch.as_tensor(high, dtype=torch.float32),
        hidden_dim=c.hidden_dim,
        depth=c.depth,
        cond_dim=k,
        min_log_std=c.min_log_std,
        max_log_std=c.max_log_std,
    )


# --------------------------------------------------------------------------- training


def _device(device: torch.device | str) -> torch.device:
    return resolve_device(device) if isinstance(device, str) else torch.device(device)


def train_dime_p(
    dataset: Trajectories,
    out_dir: Path,
    config: DimePConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Learn the per-objective critics, then the preference-conditioned policy (resumable).

    Refuses a directory started with other settings. Needs no preference labels in the data.
    """
    config = DimePConfig() if config is None else config
    if not isinstance(config, DimePConfig):
        raise ToraError(f"{LABEL} is configured with DimePConfig, got {type(config).__name__}")
    dev = _device(device)
    out_dir = Path(out_dir)
    fingerprint = data_fingerprint(dataset)
    check_settings(out_dir, config, data_fingerprint=fingerprint)
    critics = [load_critic(d, dev) for d in train_critics(dataset, out_dir, config, dev, progress)]
    normalizer = critics[0].normalizer  # fitted on the same observations by every critic

    obs = normalizer.normalize(torch.as_tensor(dataset.observations, device=dev))
    actions = torch.as_tensor(dataset.actions, device=dev)
    low, high = dataset.actions.min(0), dataset.actions.max(0)
    high = high + (high <= low) * 1e-6  # a constant action dimension still needs a range
    k = dataset.num_objectives

    torch.manual_seed(config.seed)
    learner = _Learner(_policy(dataset.obs_dim, dataset.act_dim, low, high, k, config), k, config)
    learner = learner.to(dev)
    generator = torch.Generator(device=dev).manual_seed(config.seed)
    train_and_save(
        desc=f"train {LABEL}",
        model=learner,
        step_fn=partial(_step, learner, critics, obs, actions, config, generator),
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config={
            "kind": MO_POLICY_KIND,
            "label": LABEL,
            "obs_dim": dataset.obs_dim,
            "act_dim": dataset.act_dim,
            "action_low": low.tolist(),
            "action_high": high.tolist(),
            "normalizer": normalizer.to_dict(),
            "objectives": [o.to_dict() for o in dataset.objectives],
            "data_fingerprint": fingerprint,
            "env_id": dataset.metadata.get("env_id"),
            "train": config_to_dict(config),
        },
        progress=progress,
    )
    return out_dir


def _step(
    learner: _Learner,
    critics: list[LoadedCritic],
    obs: torch.Tensor,
    actions: torch.Tensor,
    config: DimePConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, Stats]:
    """One batch: sample preferences and actions, score them per objective, project."""
    policy, dev = learner.policy, obs.device
    if int(learner.steps_done) % config.target_period == 0:
        learner.sampler.load_state_dict(policy.state_dict())
    learner.steps_done += 1
    idx = torch.randint(obs.shape[0], (config.batch_size,), generator=generator, device=dev)
    s, a = obs[idx], actions[idx]
    w = sample_simplex(config.batch_size, len(critics), generator)
    with torch.no_grad():
        s_mean, s_std = learner.sampler(s, w)
        noise = torch.randn(
            (config.batch_size, config.num_actions, policy.act_dim),
            generator=generator,
            device=dev,
        )
        sampled = policy.clip(s_mean.unsqueeze(1) + s_std.unsqueeze(1) * noise)
        q = torch.stack([c.critic.target_q(s, sampled) for c in critics], dim=-1)  # (B, N, K)
    mean, std = policy(s, w)
    loss, stats = offline_mo_dime_loss(
        gaussian_log_prob(sampled, mean, std),
        q,
        gaussian_log_prob(a, mean, std),
        w,
        learner.dual.temperatures(),
        config.prior_weight,
    )
    stats.update(learner.dual.update(q, config.epsilon))
    stats["std"] = float(std.detach().mean())
    return loss, stats


# --------------------------------------------------------------------------- loaded policy


class DimePPolicy:
    """A trained dime_p policy: ``act(obs, weights)`` returns the mean action of
    ``pi(a | s, w)`` (the paper evaluates the mean, App. C), batched, deterministic.

    obs: ``(obs_dim,)`` or ``(B, obs_dim)``; weights: ``(K,)`` shared by the batch or
    ``(B, K)``, validated like every preference of the project.
    """

    label = LABEL

    def __init__(
        self,
        policy: GaussianPolicy,
        normalizer: Normalizer,
        objectives: tuple[Objective, ...],
        device: torch.device,
    ) -> None:
        self.device = torch.device(device)
        self.policy = policy.to(self.device).eval()
        self.normalizer = normalizer
        self.objectives = tuple(objectives)

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def obs_dim(self) -> int:
        return self.policy.obs_dim

    @property
    def act_dim(self) -> int:
        return self.policy.act_dim

    def seed(self, seed: int) -> None:
        """No-op: the policy acts with its mean (kept for the PreferencePolicy interface)."""

    def check_spaces(self, obs_shape: tuple[int, ...], act_shape: tuple[int, ...]) -> None:
        """Raise :class:`ShapeMismatchError` if an environment's spaces do not fit the model."""
        check_spaces(obs_shape, act_shape, self.obs_dim, self.act_dim, f"the {LABEL} policy")

    @torch.no_grad()
    def act(self, obs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        o, w, single = batch_inputs(obs, weights, self.obs_dim, self.objective_names)
        x = self.normalizer.normalize(torch.as_tensor(o, device=self.device))
        cond = torch.as_tensor(np.asarray(w, dtype=np.float32), device=self.device)
        mean, _ = self.policy(x, cond)
        out = mean.cpu().numpy()
        return out[0] if single else out


def load_dime_p(out_dir: Path, device: torch.device | str = "cpu", seed: int = 0) -> DimePPolicy:
    """Load a policy trained by :func:`train_dime_p` (the critics are not needed to act)."""
    out_dir = Path(out_dir)
    config = read_config(out_dir)
    if config.get("kind") != MO_POLICY_KIND:
        raise CheckpointError(
            f"{out_dir} holds a {config.get('kind')!r} model, not a {MO_POLICY_KIND!r} one"
        )
    try:
        train = config_from_dict(DimePConfig, config["train"])
        objectives = tuple(Objective.from_dict(o) for o in config["objectives"])
        policy = _policy(
            int(config["obs_dim"]),
            int(config["act_dim"]),
            config["action_low"],
            config["action_high"],
            len(objectives),
            train,
        )
        normalizer = Normalizer.from_dict(config["normalizer"])
    except (KeyError, TypeError, ValueError, ToraError) as exc:
        raise CheckpointError(
            f"{out_dir}/{CONFIG_FILE} is missing or has a bad entry: {exc}"
        ) from exc
    learner = _Learner(policy, len(objectives), train)
    load_state_into(out_dir, learner)
    loaded = DimePPolicy(learner.policy, normalizer, objectives, _device(device))
    loaded.seed(seed)
    return loaded
