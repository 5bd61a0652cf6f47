"""Supervised offline baselines: BC, BC(P) and MORvS(P), one trainer parameterised by its inputs.

All three fit a direct policy ``a = pi(s, c)`` (:class:`tora.nn.policies.MLPPolicy`) to the
dataset's actions by regression; they differ only in the conditioning vector ``c``:

* **BC** (``"bc"``): no conditioning. It imitates the whole dataset, whatever preference each
  episode was collected under, and ignores the weights it is given at evaluation.
* **BC(P)** (``"bc_p"``): ``c = w``, the preference of the episode a transition comes from
  (``Trajectories.preferences``), as in PEDA (Zhu, Dang & Grover 2023).
* **MORvS(P)** (``"morvs_p"``): ``c = [w, g]``, PEDA's multi-objective RvS (Emmons et al. 2022)
  with preference. ``g`` is the per-objective *average reward-to-go*: at step t of an episode
  of length L, ``g_t = (sum_{t' >= t} r_t') / (L - t)``, one entry per objective, normalized
  per objective by its mean and std over all transitions of the dataset. The average rather
  than the sum keeps ``g`` on the scale of one step's reward at every t, so one target serves
  a whole episode. At evaluation the target for a preference ``w`` comes from the dataset:
  among the ``target_neighbors`` episodes whose preference is nearest to ``w`` (Euclidean;
  episodes tied with the farthest one are included), take the one that is best under ``w``
  (largest ``sum_k w_k * sign_k * normalized per-step return_k``, ``sign`` = -1 for an
  objective to minimize), and use its per-step average return, which is its ``g_0``. The
  target is **kept fixed for the whole episode**: ``act(obs, weights)`` is stateless and gets
  no rewards, so it cannot subtract the rewards already earned as PEDA's recurrent rollout
  does; for an average reward-to-go, a fixed target is the natural stationary choice.

Why deterministic MSE regression rather than a tanh-Gaussian likelihood: the conditioning
inputs (preference, return target) already separate the behaviours that a preference-mixed
dataset mixes together, so what is left is mostly noise around one action, where the mean is
the right point estimate; a Gaussian head would only add a variance to tune and sampling noise
at evaluation. MSE is also what TORA's inverse dynamics model is trained with, so the
comparison does not hinge on a different loss. Outputs are squashed into the data's action
range exactly as the inverse dynamics model does. Consequently the policies are
deterministic and :meth:`SupervisedPolicy.seed` changes nothing.

Observations are normalized with a :class:`~tora.data.normalize.Normalizer` fitted on the
dataset; the preference is fed as given. Every policy validates its weights the same way
(:func:`tora.preferences.validate_weights`), even BC which then ignores them, so a malformed
sweep fails identically for every method of a benchmark.

Each trained directory holds ``model.safetensors``, ``config.json`` (with ``"kind"``: the
method's name, checked by the loaders), ``history.json``, the resumable ``train_state/`` and,
for MORvS(P), ``targets.safetensors`` (per-episode preferences and per-step average returns:
the table the evaluation targets are chosen from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tora.configs import config_to_dict
from tora.data.normalize import Normalizer
from tora.data.trajectories import Objective, Trajectories
from tora.device import resolve_device
from tora.errors import CheckpointError, DataError, ToraError
from tora.nn.policies import MLPPolicy
from tora.planning.inputs import batch_inputs, check_spaces
from tora.policies.base import Method
from tora.train.checkpoint import (
    CONFIG_FILE,
    load_state_into,
    load_tensors,
    read_config,
    save_tensors,
)
from tora.train.loop import OptimConfig, train_and_save
from tora.train.losses import behavior_cloning_loss

__all__ = [
    "BC",
    "BC_P",
    "MORVS_P",
    "TARGETS_FILE",
    "BCConfig",
    "BCPConfig",
    "MORvSPConfig",
    "ReturnTargets",
    "SupervisedConfig",
    "SupervisedPolicy",
    "average_returns_to_go",
    "episode_average_rewards",
    "load_bc",
    "load_bc_p",
    "load_morvs_p",
    "train_bc",
    "train_bc_p",
    "train_morvs_p",
]

TARGETS_FILE = "targets.safetensors"
"""MORvS(P) only: the per-episode table evaluation targets are chosen from."""


# --------------------------------------------------------------------------- configs


@dataclass
class SupervisedConfig:
    """Settings shared by the supervised baselines (network, steps, optimizer)."""

    hidden_dim: int = 256
    """Width of the policy MLP's hidden layers (TORA's MLP denoiser uses 256)."""
    depth: int = 3
    """Number of hidden layers of the policy MLP (TORA's MLP denoiser uses 3)."""
    steps: int = 20000
    """Gradient steps."""
    batch_size: int = 256
    """Transitions per gradient step, drawn uniformly with replacement."""
    seed: int = 0
    """Seed of the initialization and of the batches: the same seed gives the same weights."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer, EMA and checkpointing (the EMA weights are the ones saved)."""


@dataclass
class BCConfig(SupervisedConfig):
    """Behaviour cloning s -> a; preferences are not used."""


@dataclass
class BCPConfig(SupervisedConfig):
    """Preference-conditioned behaviour cloning (s, w) -> a."""


@dataclass
class MORvSPConfig(SupervisedConfig):
    """MORvS(P): (s, w, g) -> a with g a per-objective average reward-to-go."""

    target_neighbors: int = 20
    """At evaluation, the target g for preference w is the per-step average return of the
    best episode (under w) among this many dataset episodes with the nearest preferences."""


@dataclass(frozen=True)
class _Spec:
    """What distinguishes one supervised method from another: its inputs."""

    kind: str
    label: str
    config_cls: type[SupervisedConfig]
    preference: bool
    """Condition on the episode's preference w."""
    target: bool
    """Condition on the average reward-to-go g (after w)."""


_SPECS = {
    s.kind: s
    for s in (
        _Spec("bc", "BC", BCConfig, preference=False, target=False),
        _Spec("bc_p", "BC(P)", BCPConfig, preference=True, target=False),
        _Spec("morvs_p", "MORvS(P)", MORvSPConfig, preference=True, target=True),
    )
}


# --------------------------------------------------------------------------- return targets


def average_returns_to_go(traj: Trajectories) -> np.ndarray:
    """(T, K) average reward-to-go: at step t of an episode ending at (exclusive) index e,
    ``sum(rewards[t:e]) / (e - t)``, per objective. Undiscounted, inside each episode."""
    rewards = traj.rewards.astype(np.float64)
    # Prefix sums over the flat array: the sum of rows t..e-1 is csum[e] - csum[t] for any
    # episode, so every return-to-go comes out of one cumsum with no loop over episodes.
    csum = np.concatenate([np.zeros((1, rewards.shape[1])), np.cumsum(rewards, axis=0)])
    ends = np.repeat(traj.episode_bounds[1:], traj.episode_lengths)
    t = np.arange(traj.num_transitions)
    return (csum[ends] - csum[t]) / (ends - t)[:, None]


def episode_average_rewards(traj: Trajectories) -> np.ndarray:
    """(E, K) per-step average return of every episode: its return over its length, which is
    the average reward-to-go at its first step."""
    return traj.episode_returns() / traj.episode_lengths[:, None]


class ReturnTargets:
    """The MORvS(P) evaluation target for a preference, chosen from the dataset's episodes.

    preferences, average_rewards: (E, K) per episode; ``scale`` normalizes per-step returns
    so objectives of different units weigh alike when ranking episodes under w; ``signs``
    (K,) are +1 to maximize and -1 to minimize. See the module docstring for the rule.
    Results are cached per preference row: a sweep repeats the same rows at every step.
    """

    def __init__(
        self,
        preferences: np.ndarray,
        average_rewards: np.ndarray,
        scale: Normalizer,
        signs: np.ndarray,
        neighbors: int,
    ) -> None:
        if neighbors < 1:
            raise ToraError(f"target_neighbors must be at least 1, got {neighbors}")
        self.preferences = np.asarray(preferences, dtype=np.float64)
        self.average_rewards = np.asarray(average_rewards, dtype=np.float64)
        normalized = (self.average_rewards - scale.mean) / scale.std
        self._utility = normalized * np.asarray(signs, dtype=np.float64)  # larger is better
        self.neighbors = min(int(neighbors), self.preferences.shape[0])
        self._cache: dict[bytes, np.ndarray] = {}

    def _one(self, w: np.ndarray) -> np.ndarray:
        key = w.tobytes()
        if key not in self._cache:
            dist = np.square(self.preferences - w).sum(axis=1)
            radius = np.partition(dist, self.neighbors - 1)[self.neighbors - 1]
            # All episodes within the k-th distance: ties (a grid of preferences) are kept
            # together, so the choice does not depend on how a partition orders equal keys.
            candidates = np.flatnonzero(dist <= radius)
            best = candidates[np.argmax(self._utility[candidates] @ w)]
            self._cache[key] = self.average_rewards[best]
        return self._cache[key]

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        """(n, K) validated weights -> (n, K) targets in reward units (per step)."""
        w = np.asarray(weights, dtype=np.float64)
        unique, inverse = np.unique(w, axis=0, return_inverse=True)
        targets = np.stack([self._one(row) for row in unique])
        return targets[inverse.reshape(-1)]


# --------------------------------------------------------------------------- policy


class SupervisedPolicy:
    """A loaded supervised baseline: ``act(obs, weights)``, batched, deterministic.

    obs: (obs_dim,) or (B, obs_dim); weights: (K,) shared by the batch or (B, K), validated
    for every method (BC then ignores them). Returns (act_dim,) or (B, act_dim) float32.
    """

    def __init__(
        self,
        kind: str,
        model: MLPPolicy,
        normalizer: Normalizer,
        objectives: tuple[Objective, ...],
        device: torch.device,
        targets: ReturnTargets | None = None,
        target_normalizer: Normalizer | None = None,
    ) -> None:
        self.kind = kind
        self._spec = _SPECS[kind]
        if self._spec.target and (targets is None or target_normalizer is None):
            raise ToraError(f"a {self._spec.label} policy needs its return targets")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.normalizer = normalizer
        self.objectives = tuple(objectives)
        self.targets = targets
        self.target_normalizer = target_normalizer

    @property
    def label(self) -> str:
        """The method's name in tables, e.g. "BC(P)"."""
        return self._spec.label

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def obs_dim(self) -> int:
        return self.model.obs_dim

    @property
    def act_dim(self) -> int:
        return self.model.act_dim

    def seed(self, seed: int) -> None:
        """No-op: the policy is deterministic (kept for the PreferencePolicy interface)."""

    def check_spaces(self, obs_shape: tuple[int, ...], act_shape: tuple[int, ...]) -> None:
        """Raise :class:`ShapeMismatchError` if an environment's spaces do not fit the model."""
        check_spaces(obs_shape, act_shape, self.obs_dim, self.act_dim, f"the {self.label} policy")

    def _conditioning(self, w: np.ndarray) -> torch.Tensor | None:
        parts = []
        if self._spec.preference:
            parts.append(w)
        if self._spec.target:
            assert self.targets is not None and self.target_normalizer is not None
            g = self.targets(w)
            parts.append((g - self.target_normalizer.mean) / self.target_normalizer.std)
        if not parts:
            return None
        cond = np.concatenate(parts, axis=1).astype(np.float32)
        return torch.as_tensor(cond, device=self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Action(s) for ``obs`` under ``weights``; see the class docstring for shapes."""
        o, w, single = batch_inputs(obs, weights, self.obs_dim, self.objective_names)
        x = self.normalizer.normalize(torch.as_tensor(o, device=self.device))
        action = self.model(x, self._conditioning(w)).cpu().numpy()
        return action[0] if single else action


# --------------------------------------------------------------------------- training


def _device(device: torch.device | str) -> torch.device:
    return resolve_device(device) if isinstance(device, str) else torch.device(device)


def _conditioning_table(spec: _Spec, traj: Trajectories) -> tuple[np.ndarray, Normalizer | None]:
    """(T, C) per-transition conditioning and, for MORvS(P), the normalizer of g."""
    parts: list[np.ndarray] = []
    target_normalizer = None
    if spec.preference:
        if traj.preferences is None:
            raise DataError(
                f"{spec.label} is trained on each episode's preference, but this dataset has "
                "none (Trajectories.preferences is None); collect it with per-episode "
                "preferences (e.g. D4MORL data or tora.behavior.collect) or use plain BC"
            )
        parts.append(np.repeat(traj.preferences, traj.episode_lengths, axis=0))
    if spec.target:
        g = average_returns_to_go(traj)
        target_normalizer = Normalizer.fit(g)
        parts.append((g - target_normalizer.mean) / target_normalizer.std)
    if not parts:
        return np.zeros((traj.num_transitions, 0), np.float32), None
    return np.concatenate(parts, axis=1).astype(np.float32), target_normalizer


def _train(
    spec: _Spec,
    dataset: Trajectories,
    out_dir: Path,
    config: SupervisedConfig | None,
    device: torch.device | str,
    progress: bool,
) -> Path:
    """The one trainer behind train_bc, train_bc_p and train_morvs_p."""
    config = spec.config_cls() if config is None else config
    if not isinstance(config, spec.config_cls):
        raise ToraError(
            f"{spec.label} is configured with {spec.config_cls.__name__}, "
            f"got {type(config).__name__}"
        )
    dev = _device(device)
    out_dir = Path(out_dir)
    cond_np, target_normalizer = _conditioning_table(spec, dataset)
    normalizer = Normalizer.fit(dataset.observations)
    obs = normalizer.normalize(torch.as_tensor(dataset.observations, device=dev))
    cond = torch.as_tensor(cond_np, device=dev) if cond_np.shape[1] > 0 else None
    actions = torch.as_tensor(dataset.actions, device=dev)
    # The data's own action range bounds the output: finite even when the env's box is not.
    low, high = dataset.actions.min(0), dataset.actions.max(0)
    high = high + (high <= low) * 1e-6  # a constant action dimension still needs a range

    extra: dict[str, Any] = {}
    if spec.target:
        assert isinstance(config, MORvSPConfig) and target_normalizer is not None
        assert dataset.preferences is not None
        if config.target_neighbors < 1:  # found now, not after a whole training run
            raise ToraError(f"target_neighbors must be at least 1, got {config.target_neighbors}")
        # Drop a stale config.json first: it marks a complete directory, and must not vouch
        # for a targets file this call is about to replace.
        (out_dir / CONFIG_FILE).unlink(missing_ok=True)
        save_tensors(
            out_dir / TARGETS_FILE,
            {
                "preferences": torch.as_tensor(dataset.preferences, dtype=torch.float32),
                "average_rewards": torch.as_tensor(
                    episode_average_rewards(dataset), dtype=torch.float32
                ),
            },
        )
        extra = {
            "target_normalizer": target_normalizer.to_dict(),
            "target_neighbors": int(config.target_neighbors),
        }

    torch.manual_seed(config.seed)
    model = MLPPolicy(
        dataset.obs_dim,
        dataset.act_dim,
        torch.as_tensor(low),
        torch.as_tensor(high),
        hidden_dim=config.hidden_dim,
        depth=config.depth,
        cond_dim=cond_np.shape[1],
    ).to(dev)
    generator = torch.Generator(device=dev).manual_seed(config.seed)
    n = dataset.num_transitions

    def step_fn() -> tuple[torch.Tensor, dict[str, float]]:
        batch = torch.randint(n, (config.batch_size,), generator=generator, device=dev)
        pred = model(obs[batch], None if cond is None else cond[batch])
        return behavior_cloning_loss(pred, actions[batch])

    train_and_save(
        desc=f"train {spec.label}",
        model=model,
        step_fn=step_fn,
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config={
            "kind": spec.kind,
            "label": spec.label,
            "obs_dim": dataset.obs_dim,
            "act_dim": dataset.act_dim,
            "cond_dim": int(cond_np.shape[1]),
            "objectives": [o.to_dict() for o in dataset.objectives],
            "action_low": low.tolist(),
            "action_high": high.tolist(),
            "normalizer": normalizer.to_dict(),
            "train": config_to_dict(config),
            "env_id": dataset.metadata.get("env_id"),
            **extra,
        },
        progress=progress,
    )
    return out_dir


def _load(spec: _Spec, out_dir: Path, device: torch.device | str, seed: int) -> SupervisedPolicy:
    """The one loader behind load_bc, load_bc_p and load_morvs_p."""
    out_dir = Path(out_dir)
    config = read_config(out_dir)
    kind = config.get("kind")
    if kind != spec.kind:
        raise CheckpointError(
            f"{out_dir} holds a {kind!r} model, not a {spec.kind!r} ({spec.label}) one; "
            "load it with its own method or point at the right directory"
        )
    dev = _device(device)
    try:
        model = MLPPolicy(
            int(config["obs_dim"]),
            int(config["act_dim"]),
            torch.as_tensor(config["action_low"]),
            torch.as_tensor(config["action_high"]),
            hidden_dim=int(config["train"]["hidden_dim"]),
            depth=int(config["train"]["depth"]),
            cond_dim=int(config["cond_dim"]),
        )
        normalizer = Normalizer.from_dict(config["normalizer"])
        objectives = tuple(Objective.from_dict(o) for o in config["objectives"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{out_dir}/{CONFIG_FILE} is missing or has a bad entry: {exc}"
        ) from exc
    load_state_into(out_dir, model)
    targets, target_normalizer = None, None
    if spec.target:
        table = load_tensors(out_dir / TARGETS_FILE)
        try:
            target_normalizer = Normalizer.from_dict(config["target_normalizer"])
            targets = ReturnTargets(
                table["preferences"].numpy(),
                table["average_rewards"].numpy(),
                target_normalizer,
                np.array([o.sign for o in objectives]),
                int(config["target_neighbors"]),
            )
        except KeyError as exc:
            raise CheckpointError(f"{out_dir}: MORvS(P) return targets lack {exc}") from exc
    policy = SupervisedPolicy(
        spec.kind, model, normalizer, objectives, dev, targets, target_normalizer
    )
    policy.seed(seed)
    return policy


def train_bc(
    dataset: Trajectories,
    out_dir: Path,
    config: BCConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Train BC (s -> a) on ``dataset`` into ``out_dir``; resumes an interrupted run."""
    return _train(_SPECS["bc"], dataset, out_dir, config, device, progress)


def train_bc_p(
    dataset: Trajectories,
    out_dir: Path,
    config: BCPConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Train BC(P) ((s, w) -> a) with each episode's preference; DataError if there is none."""
    return _train(_SPECS["bc_p"], dataset, out_dir, config, device, progress)


def train_morvs_p(
    dataset: Trajectories,
    out_dir: Path,
    config: MORvSPConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Train MORvS(P) ((s, w, g) -> a, g the average reward-to-go); needs preferences."""
    return _train(_SPECS["morvs_p"], dataset, out_dir, config, device, progress)


def load_bc(out_dir: Path, device: torch.device | str = "cpu", seed: int = 0) -> SupervisedPolicy:
    """Load a BC policy trained by :func:`train_bc`."""
    return _load(_SPECS["bc"], out_dir, device, seed)


def load_bc_p(out_dir: Path, device: torch.device | str = "cpu", seed: int = 0) -> SupervisedPolicy:
    """Load a BC(P) policy trained by :func:`train_bc_p`."""
    return _load(_SPECS["bc_p"], out_dir, device, seed)


def load_morvs_p(
    out_dir: Path, device: torch.device | str = "cpu", seed: int = 0
) -> SupervisedPolicy:
    """Load a MORvS(P) policy trained by :func:`train_morvs_p`."""
    return _load(_SPECS["morvs_p"], out_dir, device, seed)


BC = Method("bc", "BC", BCConfig, train_bc, load_bc, sees_preferences=False)
BC_P = Method("bc_p", "BC(P)", BCPConfig, train_bc_p, load_bc_p, sees_preferences=True)
MORVS_P = Method(
    "morvs_p", "MORvS(P)", MORvSPConfig, train_morvs_p, load_morvs_p, sees_preferences=True
)
