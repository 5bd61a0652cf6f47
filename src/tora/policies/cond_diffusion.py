"""CondDiffusion(P): one preference-conditioned diffusion planner with classifier-free guidance.

The baseline TORA is measured against when preferences are known at training time: the idea
of MODULI (Yuan et al. 2024) without its sliding adapters. A single denoiser eps(x, t, c) over
windows of H future states is conditioned on c = w, the preference the episode was collected
under (preference only: no return conditioning in this variant). It is trained with the same
denoising loss, windows, normalization and noise schedule as TORA's reference planner, except
that with probability ``p_uncond`` the condition is replaced by a learned null token, so the
same network also learns the unconditional model. At sampling, classifier-free guidance
(Ho & Salimans 2022) combines the two::

    eps = eps(x, t, null) + s * (eps(x, t, w) - eps(x, t, null))

and the plan is sampled by the same DDIM loop as TORA's, with the current state inpainted. An
inverse dynamics model trained exactly as TORA's (same normalizer and stride) turns the first
planned step into an action.

A trained method directory::

    out_dir/
      planner/            the conditioned denoiser (config.json + model.safetensors)
      inverse_dynamics/   a_t = f(s_t, s_{t+m})
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tora.configs import config_from_dict
from tora.data.normalize import Normalizer
from tora.data.trajectories import Trajectories
from tora.data.windows import WindowSpec
from tora.device import resolve_device
from tora.diffusion.samplers import EpsFn, SamplerConfig, sample
from tora.diffusion.schedule import NoiseSchedule
from tora.errors import CheckpointError, DataError
from tora.nn.denoisers import ConditionedDenoiser, DenoiserConfig
from tora.nn.inverse_dynamics import InverseDynamics
from tora.planning.inputs import batch_inputs, check_spaces
from tora.policies.base import Method
from tora.train.checkpoint import load_state_into, read_config
from tora.train.inverse import InverseDynamicsTrainConfig, train_inverse_dynamics
from tora.train.loop import OptimConfig, train_and_save
from tora.train.losses import denoising_loss
from tora.train.planner_io import INVERSE_DIR, PlannerSpec, load_inverse_dynamics
from tora.train.pretrain import noisy_windows, window_tensors

__all__ = [
    "COND_DIFFUSION",
    "PLANNER_DIR",
    "CondDiffusionConfig",
    "CondDiffusionPolicy",
    "combine_guidance",
    "condition_dropout",
    "episode_preferences",
    "guided_eps",
    "load_cond_diffusion",
    "load_conditioned_parts",
    "train_cond_diffusion",
    "train_conditioned_planner",
]

PLANNER_DIR = "planner"
_KIND = "cond_diffusion_planner"
# Rows of dataset preferences may be off the simplex by float32 rounding (D4MORL stores them
# as float32); anything further off is a labelling error, not rounding.
_PREFERENCE_SUM_ATOL = 1e-3


@dataclass
class CondDiffusionConfig:
    """Settings of CondDiffusion(P) training; the defaults match TORA's pretraining."""

    horizon: int = 4
    """States per planned window, H (the same as TORA's planner for a fair comparison)."""
    stride: int = 1
    """Environment steps between planned states, m (also the inverse dynamics' stride)."""
    steps: int = 20000
    """Gradient steps of the planner."""
    batch_size: int = 256
    """Windows per gradient step."""
    diffusion_steps: int = 100
    """Steps of the forward noising process used in training."""
    schedule: Literal["cosine", "linear"] = "cosine"
    """Noise schedule."""
    p_uncond: float = 0.2
    """Probability that a training window's preference is replaced by the learned null token,
    which trains the unconditional model guidance needs (0.1-0.25 is usual)."""
    guidance: float = 1.3
    """Default guidance scale s at sampling (saved with the model; 1 is plain conditional
    sampling, 0 unconditional, above 1 pushes harder towards the preference)."""
    seed: int = 0
    """Seed of initialization, batches, noise and condition dropout: the same seed repeats
    the run exactly."""
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    """Architecture of the wrapped denoiser (a small condition encoder is added to it)."""
    inverse: InverseDynamicsTrainConfig = field(default_factory=InverseDynamicsTrainConfig)
    """Inverse dynamics training, exactly as TORA's."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, checkpoint_every=1000))
    """Optimizer and checkpointing of the planner (TORA's pretraining settings)."""
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(steps=20))
    """Plan sampling at evaluation (saved with the model; TORA's evaluation settings)."""

    def check(self) -> None:
        """Raise ValueError for settings that cannot train a guided model."""
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"p_uncond must lie in [0, 1], got {self.p_uncond}")
        _check_guidance(self.guidance)
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(
                f"need steps >= 0 and batch_size >= 1, got {self.steps} and {self.batch_size}"
            )


def _check_guidance(scale: float) -> float:
    scale = float(scale)
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"guidance scale must be finite and >= 0, got {scale}")
    return scale


# ----------------------------------------------------------------------------------- pieces
def episode_preferences(traj: Trajectories) -> np.ndarray:
    """(E, K) float32 preference of every episode, each row renormalized to sum to exactly 1.

    Raises DataError when the dataset has no preferences or a row is not a preference.
    """
    if traj.preferences is None:
        raise DataError(
            "CondDiffusion(P) conditions on the preference each episode was collected under, "
            "but this dataset has none (Trajectories.preferences is None); use data that "
            "records one per episode (D4MORL files, tora's behaviour or scripted collectors)"
        )
    prefs = np.asarray(traj.preferences, dtype=np.float64)
    sums = prefs.sum(axis=1)
    bad = np.flatnonzero((prefs < 0).any(axis=1) | (np.abs(sums - 1) > _PREFERENCE_SUM_ATOL))
    if bad.size:
        e = int(bad[0])
        raise DataError(
            f"episode {e} has preference {prefs[e].tolist()}: preferences must be "
            f"non-negative and sum to 1 ({bad.size} episodes are not)"
        )
    return (prefs / sums[:, None]).astype(np.float32)


def condition_dropout(
    batch: int, p_uncond: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(batch,) bool: True where the condition is replaced by the null token.

    Always draws ``batch`` numbers, whatever ``p_uncond``, so the rest of a run's random
    stream does not depend on it.
    """
    return torch.rand(batch, generator=generator, device=device) < p_uncond


def combine_guidance(
    eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float
) -> torch.Tensor:
    """eps_null + s (eps_c - eps_null), written as (1 - s) eps_null + s eps_c: the same value,
    but exactly ``eps_cond`` at s = 1 and exactly ``eps_uncond`` at s = 0."""
    return (1.0 - scale) * eps_uncond + scale * eps_cond


def guided_eps(
    model: ConditionedDenoiser,
    x: torch.Tensor,
    t: torch.Tensor,
    cond: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Classifier-free guided noise prediction. x: (B, H, D), t: (B,), cond: (B, C) ->
    (B, H, D).

    At s = 1 (0) only the conditional (unconditional) pass runs, its output returned as is;
    otherwise both run as one doubled batch, one network call per sampler step.
    """
    if scale == 1.0:
        return model(x, t, cond)
    if scale == 0.0:
        return model(x, t, None)
    b = x.shape[0]
    drop = torch.arange(2 * b, device=x.device) >= b  # second half: the null token
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, cond]), drop)
    return combine_guidance(both[b:], both[:b], scale)


# ---------------------------------------------------------------------------------- training
def _device(device: torch.device | str) -> torch.device:
    return resolve_device(device) if isinstance(device, str) else torch.device(device)


def train_cond_diffusion(
    traj: Trajectories,
    out_dir: Path,
    config: CondDiffusionConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Train the conditioned planner and the inverse dynamics model into ``out_dir``.

    Resumes either part if killed (each keeps its own ``train_state``); raises DataError if
    ``traj`` has no per-episode preferences.
    """
    config = config or CondDiffusionConfig()
    config.check()
    prefs = episode_preferences(traj)
    # Windows are indexed by transition, episode after episode, so repeating each episode's
    # preference over its length lines condition b up with window b.
    cond = np.repeat(prefs, traj.episode_lengths, axis=0)
    return train_conditioned_planner(
        traj, out_dir, config, cond, "preference", {}, device, progress
    )


def train_conditioned_planner(
    traj: Trajectories,
    out_dir: Path,
    config: CondDiffusionConfig,
    cond: np.ndarray,
    condition: str,
    extra: dict[str, Any],
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Path:
    """Train a planner conditioned on ``cond`` (T, C), one row per transition of ``traj``
    (the condition of the window starting there), with condition dropout for guidance, and
    the inverse dynamics model. ``condition`` names what ``cond`` holds (saved as
    ``"condition"``); ``extra`` is saved in the planner's config (e.g. condition scales).
    CondDiffusion(P) is this with the episode's preference as condition."""
    config.check()
    device = _device(device)
    out_dir = Path(out_dir)
    spec = PlannerSpec(
        horizon=config.horizon,
        stride=config.stride,
        obs_dim=traj.obs_dim,
        denoiser=config.denoiser,
        schedule=NoiseSchedule(config.diffusion_steps, config.schedule),
        normalizer=Normalizer.fit(traj.observations),
    )
    states, rows = window_tensors(
        traj, WindowSpec(config.horizon, config.stride), spec.normalizer, device
    )
    cond_t = torch.as_tensor(np.asarray(cond, dtype=np.float32), device=device)
    if cond_t.ndim != 2 or cond_t.shape[0] != rows.shape[0]:
        raise DataError(
            f"need one condition row per transition ({rows.shape[0]}), got {tuple(cond_t.shape)}"
        )
    cond_dim = int(cond_t.shape[1])
    torch.manual_seed(config.seed)
    model = ConditionedDenoiser(config.horizon, traj.obs_dim, cond_dim, config.denoiser)
    model = model.to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    def step_fn() -> tuple[torch.Tensor, dict[str, float]]:
        batch = torch.randint(
            rows.shape[0], (config.batch_size,), generator=generator, device=device
        )
        x0 = spec.encode(states[rows[batch]])
        xt, t, noise = noisy_windows(x0, spec.schedule, generator)
        drop = condition_dropout(config.batch_size, config.p_uncond, generator, device)
        loss, stats = denoising_loss(model(xt, t, cond_t[batch], drop), noise)
        stats["uncond_frac"] = float(drop.float().mean())  # logged: the null token's real rate
        return loss, stats

    train_and_save(
        desc=f"train {condition}-conditioned planner",
        model=model,
        step_fn=step_fn,
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir / PLANNER_DIR,
        generator=generator,
        saved_config={
            "kind": _KIND,
            "planner": spec.to_dict(),
            "condition": condition,
            "cond_dim": cond_dim,
            "p_uncond": config.p_uncond,
            "guidance": config.guidance,
            "sampler": asdict(config.sampler),
            "env_id": traj.metadata.get("env_id"),
            "objectives": [o.to_dict() for o in traj.objectives],
            "act_dim": traj.act_dim,
            "train": asdict(config),
            **extra,
        },
        progress=progress,
    )
    train_inverse_dynamics(
        traj,
        out_dir / INVERSE_DIR,
        config.inverse,
        spec.normalizer,
        config.stride,
        device,
        progress,
    )
    return out_dir


# ----------------------------------------------------------------------------------- acting
class CondDiffusionPolicy:
    """A loaded CondDiffusion(P) planner plus inverse dynamics: ``act(obs, weights)``.

    Row b of ``obs`` is planned under row b of ``weights``, so a whole preference sweep is one
    batch. ``guidance`` and ``sampler`` are plain attributes and may be changed between calls.
    """

    def __init__(
        self,
        model: ConditionedDenoiser,
        spec: PlannerSpec,
        inverse: InverseDynamics,
        objective_names: Sequence[str],
        guidance: float,
        sampler: SamplerConfig | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        if model.cond_dim != len(objective_names):
            raise CheckpointError(
                f"planner takes {model.cond_dim} preference weights but {len(objective_names)} "
                f"objectives are named: {list(objective_names)}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.spec = spec
        self.inverse = inverse.to(self.device).eval()
        self.objective_names = list(objective_names)
        self.guidance = _check_guidance(guidance)
        self.sampler = sampler or SamplerConfig()
        self.generator = torch.Generator(device=self.device)
        self.seed(seed)

    @property
    def obs_dim(self) -> int:
        return self.spec.obs_dim

    @property
    def act_dim(self) -> int:
        return int(self.inverse.action_low.numel())

    def seed(self, seed: int) -> None:
        """Reset the sampling noise: the same seed and inputs give the same actions."""
        self.generator.manual_seed(int(seed))

    def check_spaces(self, obs_shape: tuple[int, ...], act_shape: tuple[int, ...]) -> None:
        """Raise :class:`ShapeMismatchError` if an environment's spaces do not fit the model."""
        check_spaces(
            obs_shape, act_shape, self.obs_dim, self.act_dim, "the planner and inverse dynamics"
        )

    def eps_fn(self, weights: torch.Tensor) -> EpsFn:
        """The guided (x, t) -> eps for validated (B, K) ``weights`` on the policy's device."""
        scale = _check_guidance(self.guidance)
        return lambda x, t: guided_eps(self.model, x, t, weights, scale)

    def _inputs(
        self, obs: np.ndarray, weights: np.ndarray | Sequence[float]
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        o, w, single = batch_inputs(obs, weights, self.obs_dim, self.objective_names)
        return (
            torch.as_tensor(o, device=self.device),
            torch.as_tensor(w, device=self.device, dtype=torch.float32),
            single,
        )

    def _sample(self, first: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        shape = (first.shape[0], self.spec.horizon, self.spec.obs_dim)
        x = sample(self.eps_fn(w), self.spec.schedule, shape, first, self.sampler, self.generator)
        return self.spec.decode(x)

    @torch.no_grad()
    def plan(self, obs: np.ndarray, weights: np.ndarray | Sequence[float]) -> np.ndarray:
        """Planned windows (B, H, obs_dim) in environment units, first row = ``obs``."""
        o, w, single = self._inputs(obs, weights)
        x = self._sample(self.spec.normalizer.normalize(o), w)
        out = self.spec.normalizer.unnormalize(x).cpu().numpy()
        return out[0] if single else out

    @torch.no_grad()
    def act(self, obs: np.ndarray, weights: np.ndarray | Sequence[float]) -> np.ndarray:
        """Action(s) for observation(s) ``obs`` (obs_dim,) or (B, obs_dim) under ``weights``
        (K,) shared by the batch or (B, K) one row per observation."""
        o, w, single = self._inputs(obs, weights)
        plan = self._sample(self.spec.normalizer.normalize(o), w)
        action = self.inverse(plan[:, 0], plan[:, 1]).cpu().numpy()
        return action[0] if single else action


def load_conditioned_parts(
    out_dir: Path, device: torch.device | str = "cpu", condition: str = "preference"
) -> tuple[ConditionedDenoiser, PlannerSpec, InverseDynamics, dict[str, Any]]:
    """The conditioned denoiser, its spec, the inverse dynamics model and the saved config of
    a directory written by :func:`train_conditioned_planner` with ``condition``."""
    out_dir = Path(out_dir)
    dev = _device(device)
    config = read_config(out_dir / PLANNER_DIR)
    if config.get("kind") != _KIND:
        raise CheckpointError(
            f"{out_dir / PLANNER_DIR} holds a {config.get('kind')!r}, not a CondDiffusion(P) "
            "planner; train one with train_cond_diffusion"
        )
    saved = config.get("condition", "preference")
    if saved != condition:
        raise CheckpointError(
            f"{out_dir / PLANNER_DIR} is conditioned on {saved!r}, not {condition!r}"
        )
    spec = PlannerSpec.from_dict(config.get("planner", {}))
    try:
        cond_dim = int(config["cond_dim"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{out_dir / PLANNER_DIR}/config.json is malformed: {exc!r}") from exc
    model = ConditionedDenoiser(spec.horizon, spec.obs_dim, cond_dim, spec.denoiser)
    load_state_into(out_dir / PLANNER_DIR, model)
    inverse = load_inverse_dynamics(out_dir / INVERSE_DIR, spec, dev)
    return model, spec, inverse, config


def load_cond_diffusion(
    out_dir: Path,
    device: torch.device | str = "cpu",
    seed: int = 0,
    sampler: SamplerConfig | None = None,
    guidance: float | None = None,
) -> CondDiffusionPolicy:
    """Load a directory written by :func:`train_cond_diffusion`.

    ``sampler`` overrides the sampler saved at training; ``guidance`` overrides the scale
    saved at training.
    """
    out_dir = Path(out_dir)
    dev = _device(device)
    model, spec, inverse, config = load_conditioned_parts(out_dir, dev)
    try:
        names = [str(o["name"]) for o in config["objectives"]]
        saved_guidance = float(config["guidance"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{out_dir / PLANNER_DIR}/config.json is malformed: {exc!r}") from exc
    scale = saved_guidance if guidance is None else guidance
    if sampler is None and isinstance(config.get("sampler"), dict):
        sampler = config_from_dict(SamplerConfig, config["sampler"])
    return CondDiffusionPolicy(model, spec, inverse, names, scale, sampler, dev, seed)


COND_DIFFUSION = Method(
    name="cond_diffusion",
    label="CondDiffusion(P)",
    config_cls=CondDiffusionConfig,
    train=train_cond_diffusion,
    load=load_cond_diffusion,
    sees_preferences=True,
)
