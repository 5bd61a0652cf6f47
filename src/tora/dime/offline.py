"""Offline RL with two objectives, task return and staying close to the data: LS and DiME.

The offline case study of the DiME paper (seeds/003, Sec. 5.2 and 6.2; Table 4): a policy is
trained from a fixed dataset to trade off the task return, through a critic learned from the
data (:mod:`tora.dime.critic`, IQL), against staying close to the behaviour policy, known
through the data's actions alone. ``alpha`` in ``[0, 1]`` is the weight on staying close;
``alpha = 1`` is behaviour cloning. Variants (losses in :mod:`tora.train.losses.dime_offline`):

* ``ls``: CRR-exp / AWAC, ``E_D[exp(A / beta) / Z_0 log pi]`` with ``beta = alpha / (1 -
  alpha)`` (Eq. 10): the trade-off *is* the temperature, so there is nothing for a dual to
  adapt and no way to condition one policy on ``alpha`` (the paper's remark after Eq. 11).
* ``dime_bc``: ``(1 - alpha) E_{a~pi_i}[exp(Q / eta) / Z_1 log pi] + alpha E_D[log pi]``
  (Eq. 11), ``N`` actions sampled per state from the sampling policy ``pi_i``, ``eta`` adapted
  by the dual of ``KL(q || pi_i) <= epsilon`` (Eq. 45), independently of ``alpha``.
* ``dime_awbc``: the same with the prior term weighted by ``exp(A) / Z_0`` (CRR at
  temperature 1).
* ``multi`` (DiME only): one policy ``pi(a | s, alpha)`` for all trade-offs, ``alpha`` an
  extra input, drawn per batch row from the paper's training distribution ``U(0.005, 1)``.

Training follows the paper's improvement/projection scheme as the bandit solvers do
(:mod:`tora.dime.solvers`): every ``target_period`` steps the policy is copied into the frozen
sampling policy ``pi_i`` (the paper's target network, 100 steps, Table 3), whose samples are
scored by the critic; the policy and the temperature take one step per batch. The temperature
has its own Adam step size (the paper's 0.01 for dual variables, Table 3) while the policy uses
the project's shared loop (:func:`tora.train.loop.train_and_save`: AdamW with weight decay as
in the paper's offline runs, gradient clipping, EMA, resumable safetensors checkpoints); so the
dual's Adam moments live in buffers of the trained module, and a resumed run continues exactly.
Not implemented: the paper's decoupled KL trust region on the M-step's mean and covariance
(Table 3's ``beta_mu``, ``beta_Sigma``); the sampling policy's period plays that role.

Evaluation rolls out the policy's mean action (App. C) with the project's batched rollouts; a
multi policy is evaluated at each requested ``alpha`` in one sweep.

A run directory::

    RUN/critic/                      the IQL critic, shared by every policy of the run
    RUN/<variant>/alpha_<a>/         one policy per trade-off (ls, dime_bc, dime_awbc)
    RUN/<variant>_multi/             one trade-off-conditioned policy (dime_bc, dime_awbc)
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tora.configs import config_from_dict, config_to_dict
from tora.data.normalize import Normalizer
from tora.data.trajectories import Objective, Trajectories
from tora.device import resolve_device
from tora.dime.critic import CriticConfig, LoadedCritic, data_fingerprint, load_critic, train_critic
from tora.envs import make_env
from tora.errors import CheckpointError, InvalidWeightsError, ToraError
from tora.evaluate.rollout import rollout_sweep
from tora.io import atomic_write_json, read_json_object
from tora.nn.dime import GaussianPolicy, gaussian_log_prob
from tora.train.checkpoint import CONFIG_FILE, load_state_into, read_config
from tora.train.loop import OptimConfig, train_and_save
from tora.train.losses.dime import temperature_dual
from tora.train.losses.dime_offline import (
    advantage_weights,
    offline_dime_loss,
    offline_ls_loss,
)

__all__ = [
    "CRITIC_DIR",
    "EVAL_ALPHAS",
    "POLICY_KIND",
    "VARIANTS",
    "OfflinePolicy",
    "PolicyConfig",
    "TemperatureDual",
    "check_settings",
    "evaluate_run",
    "find_policies",
    "load_policy",
    "policy_dir",
    "train_offline",
    "train_policy",
]

Stats = dict[str, float]
Variant = Literal["ls", "dime_bc", "dime_awbc"]

VARIANTS: dict[str, str] = {"ls": "LS (CRR)", "dime_bc": "DiME (BC)", "dime_awbc": "DiME (AWBC)"}
"""Variant id -> label in tables."""

POLICY_KIND = "dime_policy"
"""The ``kind`` recorded in a policy directory's config.json."""
CRITIC_DIR = "critic"
SETTINGS_FILE = "settings.json"
"""Written before training starts: resuming with other settings is refused."""

EVAL_ALPHAS: tuple[float, ...] = (0.005, 0.25, 0.5, 0.75, 1.0)
"""Default evaluation trade-offs: five points of the paper's grid ``linspace(0.005, 1)``."""


@dataclass
class PolicyConfig:
    """How an offline LS / DiME policy is trained on a dataset and its critic."""

    variant: Variant = "dime_bc"
    """ls (CRR-exp / AWAC), dime_bc (DiME with a behaviour-cloning prior term) or dime_awbc
    (DiME with an advantage-weighted one)."""
    multi: bool = False
    """Train one policy for all trade-offs, alpha an input drawn per batch row from
    U(alpha_low, 1) (DiME variants only)."""
    hidden_dim: int = 256
    """Width of the policy's hidden layers."""
    depth: int = 2
    """Number of hidden layers of the policy."""
    steps: int = 20000
    """Gradient steps (the paper trains 1M on a TPU)."""
    batch_size: int = 256
    """Dataset transitions (states) per step."""
    num_actions: int = 20
    """Actions sampled per state from the sampling policy for DiME's improvement step (the
    paper: 30, and 20 in its multi-objective runs, Tables 3-4)."""
    epsilon: float = 0.5
    """KL bound of DiME's improved task policy (the paper's 0.5 for RL Unplugged, Table 4).
    The sample estimate of the KL cannot exceed log(num_actions)."""
    init_temperature: float = 10.0
    """Initial temperature eta of the improved task policy (the paper's 10, Table 3)."""
    dual_lr: float = 0.01
    """Adam step size of log eta (the paper's 0.01 for dual variables, Table 3)."""
    target_period: int = 100
    """Steps between copies of the policy into the sampling policy pi_i (Table 3)."""
    alpha_low: float = 0.005
    """Lower end of the multi policies' training distribution U(alpha_low, 1) (Table 4)."""
    min_log_std: float = -5.0
    """Smallest log std, relative to half the action range."""
    max_log_std: float = 0.0
    """Largest log std, relative to half the action range (0: std up to half the range)."""
    seed: int = 0
    """Seed of the initialization, the batches, the trade-offs and the sampled actions."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer, EMA and checkpointing of the policy."""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ToraError(f"unknown variant {self.variant!r}; choose one of {list(VARIANTS)}")
        if self.multi and self.variant == "ls":
            raise ToraError(
                "LS has no multi variant: its trade-off is also its temperature, so the "
                "normalizer Z_0 differs per alpha (the DiME paper's remark after Eq. 11); "
                "use dime_bc or dime_awbc with --multi, or train LS per alpha"
            )
        for name in ("steps", "batch_size", "num_actions", "target_period"):
            if getattr(self, name) < 1:
                raise ToraError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.epsilon < math.log(max(self.num_actions, 2)):
            raise ToraError(
                f"epsilon must lie in (0, log(num_actions)) = (0, {math.log(self.num_actions):.3g})"
                f": the KL estimate from {self.num_actions} samples cannot exceed that"
            )
        if not (self.init_temperature > 0 and self.dual_lr > 0):
            raise ToraError("init_temperature and dual_lr must be positive")
        if not 0 <= self.alpha_low < 1:
            raise ToraError(f"alpha_low must lie in [0, 1), got {self.alpha_low}")


# --------------------------------------------------------------------------- temperature


class TemperatureDual(nn.Module):
    """Temperatures ``eta_k = exp(log_eta_k)`` adapted by Adam on their dual (Eq. 45).

    Held apart from the policy's optimizer because the dual wants a far larger step (0.01 on
    ``log eta``, Table 3) than the networks, and its gradient ``eta (epsilon - KL)`` must not
    count in the policy's gradient-norm clipping. ``log eta`` and Adam's moments are buffers,
    so they are saved and restored with the module.
    """

    def __init__(
        self,
        num: int,
        init_temperature: float,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        min_temperature: float = 1e-6,
    ) -> None:
        super().__init__()
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.min_log = math.log(min_temperature)
        self.register_buffer("log_temperature", torch.full((num,), math.log(init_temperature)))
        self.register_buffer("exp_avg", torch.zeros(num))
        self.register_buffer("exp_avg_sq", torch.zeros(num))
        self.register_buffer("count", torch.zeros(()))

    def temperatures(self) -> torch.Tensor:
        """``(K,)`` current temperatures (no gradient)."""
        return self.log_temperature.exp()

    def update(self, q_values: torch.Tensor, epsilons: float | Sequence[float]) -> Stats:
        """One Adam step on ``sum_k g_k(log eta_k)`` for ``q_values`` ``(B, N, K)``."""
        log_eta = self.log_temperature.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            dual = temperature_dual(q_values.detach(), log_eta.exp(), epsilons).sum()
            (grad,) = torch.autograd.grad(dual, log_eta)
        adam_step_(self, self.log_temperature, grad)
        with torch.no_grad():
            self.log_temperature.clamp_(min=self.min_log)
        return {"dual_loss": float(dual.detach())}


@torch.no_grad()
def adam_step_(state: nn.Module, value: torch.Tensor, grad: torch.Tensor) -> None:
    """One Adam step on the buffer ``value`` in place, with the moments held as buffers of
    ``state`` (``exp_avg``, ``exp_avg_sq``, ``count``; settings ``lr``, ``betas``, ``eps``), so
    that a dual variable and its optimizer resume exactly from the module's checkpoint."""
    beta1, beta2 = state.betas
    state.count += 1
    state.exp_avg.lerp_(grad, 1 - beta1)
    state.exp_avg_sq.lerp_(grad.square(), 1 - beta2)
    m_hat = state.exp_avg / (1 - beta1**state.count)
    v_hat = state.exp_avg_sq / (1 - beta2**state.count)
    value -= state.lr * m_hat / (v_hat.sqrt() + state.eps)


class _Learner(nn.Module):
    """What a policy run trains and checkpoints: the policy, the frozen sampling policy
    ``pi_i``, the temperature's dual and the step count (for the sampling policy's period)."""

    def __init__(self, policy: GaussianPolicy, config: PolicyConfig) -> None:
        super().__init__()
        self.policy = policy
        self.sampler = copy.deepcopy(policy).requires_grad_(False)
        self.dual = TemperatureDual(1, config.init_temperature, config.dual_lr)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.int64))


# --------------------------------------------------------------------------- training


def _device(device: torch.device | str) -> torch.device:
    return resolve_device(device) if isinstance(device, str) else torch.device(device)


def policy_dir(run: Path, variant: str, multi: bool, alpha: float | None = None) -> Path:
    """Where a run keeps the policy of ``variant`` (and ``alpha``, for a single trade-off)."""
    if multi:
        return Path(run) / f"{variant}_multi"
    if alpha is None:
        raise ToraError("a single-trade-off policy needs its alpha")
    return Path(run) / variant / f"alpha_{alpha:.4g}"


def _check_alpha(alpha: float) -> float:
    if not (math.isfinite(alpha) and 0 <= alpha <= 1):
        raise InvalidWeightsError(f"alpha must lie in [0, 1], got {alpha}")
    return float(alpha)


def check_settings(directory: Path, config: Any, **extra: Any) -> None:
    """Refuse to resume a directory that was started with other settings; else record them.

    ``steps`` is left out of the comparison: rerunning with more steps continues a finished
    or interrupted run, as every trainer of the project does.
    """
    settings = {"train": {k: v for k, v in config_to_dict(config).items() if k != "steps"}}
    settings.update(extra)
    path = directory / SETTINGS_FILE
    if path.exists():
        if read_json_object(path) != json.loads(json.dumps(settings)):
            raise ToraError(
                f"{directory} was started with other settings ({path}); use the same options, "
                "delete it, or choose another output directory"
            )
        return
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, settings)


def train_policy(
    dataset: Trajectories,
    critic_dir: Path,
    out_dir: Path,
    config: PolicyConfig | None = None,
    alpha: float | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Train one LS / DiME policy on ``dataset`` with the critic in ``critic_dir``.

    ``alpha`` is the trade-off of a single-trade-off policy (ignored, and may be None, for a
    multi one). Resumes an interrupted run; refuses a directory started with other settings
    and a critic learned from other data.
    """
    config = PolicyConfig() if config is None else config
    if not config.multi:
        if alpha is None:
            raise ToraError(f"{VARIANTS[config.variant]} needs a trade-off alpha (or --multi)")
        alpha = _check_alpha(alpha)
    else:
        alpha = None
    dev = _device(device)
    out_dir = Path(out_dir)
    loaded = load_critic(critic_dir, dev)
    fingerprint = data_fingerprint(dataset)
    if loaded.config.get("data_fingerprint") != fingerprint:
        raise ToraError(f"the critic in {critic_dir} was learned from other data than this dataset")
    check_settings(out_dir, config, alpha=alpha, data_fingerprint=fingerprint)

    obs = loaded.normalizer.normalize(torch.as_tensor(dataset.observations, device=dev))
    actions = torch.as_tensor(dataset.actions, device=dev)
    needs_advantages = config.variant in ("ls", "dime_awbc")
    advantages = loaded.advantages(obs, actions) if needs_advantages else None
    # The data's own action range bounds the mean and the sampled actions, as for the
    # supervised baselines: finite even when the env's box is not.
    low, high = dataset.actions.min(0), dataset.actions.max(0)
    high = high + (high <= low) * 1e-6

    torch.manual_seed(config.seed)
    policy = GaussianPolicy(
        dataset.obs_dim,
        dataset.act_dim,
        torch.as_tensor(low),
        torch.as_tensor(high),
        hidden_dim=config.hidden_dim,
        depth=config.depth,
        cond_dim=1 if config.multi else 0,
        min_log_std=config.min_log_std,
        max_log_std=config.max_log_std,
    )
    learner = _Learner(policy, config).to(dev)
    generator = torch.Generator(device=dev).manual_seed(config.seed)
    step_fn = partial(
        _policy_step, learner, loaded, obs, actions, advantages, config, alpha, generator
    )
    label = VARIANTS[config.variant] + (" multi" if config.multi else f" alpha={alpha:g}")
    train_and_save(
        desc=f"train {label}",
        model=learner,
        step_fn=step_fn,
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config={
            "kind": POLICY_KIND,
            "variant": config.variant,
            "label": VARIANTS[config.variant] + (" multi" if config.multi else ""),
            "multi": config.multi,
            "alpha": alpha,
            "obs_dim": dataset.obs_dim,
            "act_dim": dataset.act_dim,
            "action_low": low.tolist(),
            "action_high": high.tolist(),
            "normalizer": loaded.normalizer.to_dict(),
            "objectives": [o.to_dict() for o in dataset.objectives],
            "task_weights": loaded.task_weights.tolist(),
            "data_fingerprint": fingerprint,
            "env_id": dataset.metadata.get("env_id"),
            "train": config_to_dict(config),
        },
        progress=progress,
    )
    return out_dir


def _policy_step(
    learner: _Learner,
    loaded: LoadedCritic,
    obs: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor | None,
    config: PolicyConfig,
    alpha: float | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, Stats]:
    """One batch of the policy loss (and, for DiME, one step of the temperature)."""
    policy, dev = learner.policy, obs.device
    if int(learner.steps_done) % config.target_period == 0:
        learner.sampler.load_state_dict(policy.state_dict())
    learner.steps_done += 1
    idx = torch.randint(obs.shape[0], (config.batch_size,), generator=generator, device=dev)
    s, a = obs[idx], actions[idx]
    cond, tradeoffs = None, alpha
    if config.multi:
        u = torch.rand(config.batch_size, generator=generator, device=dev)
        tradeoffs_t = config.alpha_low + (1.0 - config.alpha_low) * u
        cond, tradeoffs = tradeoffs_t.unsqueeze(-1), tradeoffs_t
    mean, std = policy(s, cond)
    data_log_probs = gaussian_log_prob(a, mean, std)
    if config.variant == "ls":
        assert advantages is not None and alpha is not None
        loss, stats = offline_ls_loss(data_log_probs, advantages[idx], alpha)
    else:
        with torch.no_grad():
            s_mean, s_std = learner.sampler(s, cond)
            noise = torch.randn(
                (config.batch_size, config.num_actions, policy.act_dim),
                generator=generator,
                device=dev,
            )
            sampled = policy.clip(s_mean.unsqueeze(1) + s_std.unsqueeze(1) * noise)
            q = loaded.critic.target_q(s, sampled)  # (B, N)
        prior = advantage_weights(advantages[idx], 1.0) if advantages is not None else None
        assert tradeoffs is not None
        loss, stats = offline_dime_loss(
            gaussian_log_prob(sampled, mean, std),
            q,
            data_log_probs,
            tradeoffs,
            learner.dual.temperatures(),
            prior,
        )
        stats.update(learner.dual.update(q.unsqueeze(-1), config.epsilon))
    stats["std"] = float(std.detach().mean())
    stats["data_log_prob"] = float(data_log_probs.detach().mean())
    return loss, stats


def train_offline(
    dataset: Trajectories,
    run: Path,
    config: PolicyConfig | None = None,
    critic_config: CriticConfig | None = None,
    alphas: Sequence[float] = (0.5,),
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[Path]:
    """Learn (or reuse) the run's critic, then one policy per alpha (one for a multi run).

    The critic lives in ``run/critic`` and serves every variant and trade-off trained into
    the same run; a complete critic is reused if it was learned from the same data with the
    same settings (more ``steps`` continue it), and refused otherwise.
    """
    config = PolicyConfig() if config is None else config
    critic_config = CriticConfig() if critic_config is None else critic_config
    run = Path(run)
    critic_dir = run / CRITIC_DIR
    check_settings(critic_dir, critic_config, data_fingerprint=data_fingerprint(dataset))
    done = (critic_dir / CONFIG_FILE).exists() and (
        read_config(critic_dir).get("train", {}).get("steps") == critic_config.steps
    )
    if not done:  # a fresh critic, an interrupted one, or one to continue for more steps
        train_critic(dataset, critic_dir, critic_config, device, progress)
    targets = [None] if config.multi else [_check_alpha(a) for a in alphas]
    if not targets:
        raise ToraError("give at least one alpha")
    out = []
    for alpha in targets:
        directory = policy_dir(run, config.variant, config.multi, alpha)
        out.append(train_policy(dataset, critic_dir, directory, config, alpha, device, progress))
    return out


# --------------------------------------------------------------------------- loaded policies


class OfflinePolicy:
    """A trained LS / DiME policy: ``act(obs, alpha)`` returns its mean action (App. C).

    obs: ``(obs_dim,)`` or ``(B, obs_dim)``; alpha: a float or ``(B,)``, required for a multi
    policy and ignored by a single-trade-off one (it acts at its own ``alpha``).
    """

    def __init__(
        self,
        policy: GaussianPolicy,
        normalizer: Normalizer,
        config: dict[str, Any],
        device: torch.device,
    ) -> None:
        self.device = torch.device(device)
        self.policy = policy.to(self.device).eval()
        self.normalizer = normalizer
        self.config = config
        self.variant: str = config["variant"]
        self.multi: bool = bool(config["multi"])
        self.alpha: float | None = config.get("alpha")
        self.objectives = tuple(Objective.from_dict(o) for o in config["objectives"])
        self.task_weights = np.asarray(config["task_weights"], dtype=np.float64)

    @property
    def label(self) -> str:
        return str(self.config.get("label", self.variant))

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @torch.no_grad()
    def act(self, obs: np.ndarray, alpha: float | np.ndarray | None = None) -> np.ndarray:
        o = np.asarray(obs, dtype=np.float32)
        single = o.ndim == 1
        o = o[None] if single else o
        x = self.normalizer.normalize(torch.as_tensor(o, device=self.device))
        cond = None
        if self.multi:
            if alpha is None:
                raise InvalidWeightsError("a multi policy needs the trade-off alpha to act")
            a = np.broadcast_to(np.asarray(alpha, dtype=np.float32), (o.shape[0],))
            if not np.all(np.isfinite(a) & (a >= 0) & (a <= 1)):
                raise InvalidWeightsError(f"alpha must lie in [0, 1], got {np.unique(a)[:8]}")
            cond = torch.as_tensor(a.copy(), device=self.device).unsqueeze(-1)
        mean, _ = self.policy(x, cond)
        out = mean.cpu().numpy()
        return out[0] if single else out


def load_policy(out_dir: Path, device: torch.device | str = "cpu") -> OfflinePolicy:
    """Load a policy trained by :func:`train_policy`."""
    out_dir = Path(out_dir)
    config = read_config(out_dir)
    if config.get("kind") != POLICY_KIND:
        raise CheckpointError(f"{out_dir} holds a {config.get('kind')!r} model, not a DiME policy")
    try:
        train = config_from_dict(PolicyConfig, config["train"])
        policy = GaussianPolicy(
            int(config["obs_dim"]),
            int(config["act_dim"]),
            torch.as_tensor(config["action_low"]),
            torch.as_tensor(config["action_high"]),
            hidden_dim=train.hidden_dim,
            depth=train.depth,
            cond_dim=1 if train.multi else 0,
            min_log_std=train.min_log_std,
            max_log_std=train.max_log_std,
        )
        normalizer = Normalizer.from_dict(config["normalizer"])
    except (KeyError, TypeError, ValueError, ToraError) as exc:
        raise CheckpointError(
            f"{out_dir}/{CONFIG_FILE} is missing or has a bad entry: {exc}"
        ) from exc
    learner = _Learner(policy, train)
    load_state_into(out_dir, learner)
    return OfflinePolicy(learner.policy, normalizer, config, _device(device))


def find_policies(run: Path) -> list[Path]:
    """Every complete policy directory of a run, sorted (variant, then alpha)."""
    run = Path(run)
    found = []
    for path in sorted(run.glob("*/config.json")) + sorted(run.glob("*/alpha_*/config.json")):
        try:
            if read_config(path.parent).get("kind") == POLICY_KIND:
                found.append(path.parent)
        except CheckpointError:
            continue
    return found


# --------------------------------------------------------------------------- evaluation


def evaluate_run(
    run: Path,
    env_id: str = "",
    alphas: Sequence[float] = EVAL_ALPHAS,
    episodes: int = 5,
    seed: int = 0,
    variants: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    workers: int = 0,
) -> list[dict[str, Any]]:
    """Roll out every policy of ``run`` (optionally only ``variants``) in ``env_id``.

    A multi policy is evaluated at every ``alphas``; a single-trade-off policy at its own
    alpha. Episode ``e`` of every row starts from the same state (seed ``seed + e``). Returns
    one row per (policy, alpha): variant, label, multi, alpha, the mean return per objective
    and the mean task return (the critic's scalarization, without its ``reward_scale``).
    """

    run = Path(run)
    paths = find_policies(run)
    if variants:
        paths = [p for p in paths if read_config(p)["variant"] in set(variants)]
    if not paths:
        raise ToraError(f"no trained DiME / LS policies in {run}")
    if not env_id:
        env_id = read_config(paths[0]).get("env_id") or ""
        if not env_id:
            raise ToraError("no environment recorded with this run; pass --env")
    rows = []
    for path in paths:
        policy = load_policy(path, device)
        grid = np.asarray(alphas if policy.multi else [policy.alpha], dtype=np.float64)
        result = rollout_sweep(
            lambda o, w, p=policy: p.act(o, w[:, 0]),
            partial(make_env, env_id),
            grid[:, None],
            episodes,
            seed,
            env_id=env_id,
            objective_names=policy.objective_names,
            progress=progress,
            workers=workers,
        )
        signs = np.array([o.sign for o in policy.objectives])
        task = result.returns @ (policy.task_weights * signs)  # (n, E)
        for i, alpha in enumerate(grid):
            rows.append(
                {
                    "variant": policy.variant,
                    "label": policy.label,
                    "multi": policy.multi,
                    "alpha": float(alpha),
                    "objectives": policy.objective_names,
                    "returns": result.mean_returns[i].tolist(),
                    "task_return": float(task[i].mean()),
                    "task_return_std": float(task[i].std()),
                    "episodes": episodes,
                    "path": str(path),
                }
            )
    return rows
