"""The agent users act with: objective planners composed per call, then inverse dynamics.

At every step the agent samples a window of future states from the composed denoiser
sum_i w_i eps_i, with the current observation inpainted as the window's first state, and
returns the inverse-dynamics action towards the first planned state (receding horizon: it
replans at the next step). Observations and weights may be batched: row b of ``weights`` is
the preference of environment b, so a whole preference sweep advances as one batch.

Sampling noise comes from one generator shared by the batch (:meth:`Agent.seed`), or from one
stream per row (:meth:`Agent.seed_rows`): then a row's actions do not depend on which other
rows share its batch, so a batched sweep gives each preference the actions it would get
evaluated alone (up to floating-point differences of batched matrix products).

Preference-weighted selection (``candidates`` N > 1, issue 17): the agent samples N windows
per row in one batch of B * N, scores each by the preference's utility of where it leads,
sum_k w_k V_k(last planned state) with one value critic per composed objective
(:mod:`tora.train.critic`; V in reward units, negated for an objective to minimize), and acts
towards the best one. With per-row streams, a row's N candidates draw from that row's stream
only, so selection keeps a row's actions independent of the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tora.device import resolve_device
from tora.diffusion.accel import AccelConfig, AcceleratedEps, accelerate
from tora.diffusion.compose import ComposedDenoiser
from tora.diffusion.samplers import NoiseFn, RowNoise, SamplerConfig, sample
from tora.errors import CheckpointError, ShapeMismatchError
from tora.nn.inverse_dynamics import InverseDynamics
from tora.planning.inputs import batch_inputs, check_spaces
from tora.train.planner_io import (
    INVERSE_DIR,
    PlannerSpec,
    composed_objectives,
    critic_dir,
    load_inverse_dynamics,
    load_planner,
    load_value_critic,
    objective_dir,
    reference_hash,
)


def preference_scores(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, N) utility sum_k w_k v_k of each row's N candidates.

    values: (B, N, K) candidate values per objective, signed so that higher is better;
    weights: (B, K) each row's preference."""
    return (values * weights[:, None, :]).sum(-1)


def within_budget(
    scores: torch.Tensor, cost_to_go: torch.Tensor, budget_left: torch.Tensor
) -> torch.Tensor:
    """(B, N) scores with every candidate predicted to overspend masked out: ``-inf`` where
    ``cost_to_go`` (B, N) exceeds the row's ``budget_left`` (B,). In a row where every
    candidate overspends, the cheapest wins instead (its score is ``-cost_to_go``): the
    planner then spends as little as it can rather than as the preference would."""
    over = cost_to_go > budget_left[:, None]
    none_fit = over.all(dim=1, keepdim=True)
    return torch.where(none_fit, -cost_to_go, scores.masked_fill(over, float("-inf")))


def pick_best(windows: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """(B, H, D): for each row the window of highest score (the first of equal ones).
    windows: (B, N, H, D); scores: (B, N)."""
    best = scores.argmax(dim=1)
    return windows[torch.arange(windows.shape[0], device=windows.device), best]


class Agent:
    """A TORA agent: K objective planners, their shared spec, and an inverse dynamics model.

    ``candidates`` > 1 turns on preference-weighted selection among that many sampled windows
    per row; it needs ``critics``, one value critic per model in ``names`` order ((B, D)
    normalized states -> (B,) values in reward units), and ``critic_signs`` (+1 for an
    objective to maximize, -1 for one to minimize; default all +1). With ``candidates`` 1
    critics are ignored and the agent acts exactly as without them.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        names: Sequence[str],
        spec: PlannerSpec,
        inverse: InverseDynamics,
        sampler: SamplerConfig | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
        candidates: int = 1,
        critics: Sequence[nn.Module] | None = None,
        critic_signs: Sequence[float] | None = None,
        accel: AccelConfig | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.spec = spec
        self.composed = ComposedDenoiser(list(models), list(names)).to(self.device).eval()
        # The sampling loop's denoiser call, accelerated as asked (bf16, torch.compile or a
        # CUDA graph per batch shape; each falls back to the eager call where unavailable).
        self.accel = accel or AccelConfig()
        self._fast_eps: AcceleratedEps | None = None
        if not self.accel.eager_fp32:
            self._fast_eps = accelerate(
                self.composed, self.accel.precision, self.accel.compile, self.device
            )
        self.inverse = inverse.to(self.device).eval()
        if int(candidates) != candidates or candidates < 1:
            raise ValueError(f"candidates must be a positive integer, got {candidates}")
        self.candidates = int(candidates)
        self.critics: nn.ModuleList | None = None
        self.critic_signs: torch.Tensor | None = None
        if self.candidates > 1:
            if critics is None or len(critics) != len(self.composed.names):
                got = "none" if critics is None else len(critics)
                raise ValueError(
                    f"selection among {self.candidates} candidates needs one value critic per "
                    f"composed objective ({len(self.composed.names)}), got {got}"
                )
            self.critics = nn.ModuleList(critics).to(self.device).eval()
            signs = [1.0] * len(critics) if critic_signs is None else list(critic_signs)
            if len(signs) != len(critics):
                raise ValueError(f"{len(signs)} critic signs for {len(critics)} critics")
            self.critic_signs = torch.tensor(signs, dtype=torch.float32, device=self.device)
        self.sampler = sampler or SamplerConfig()
        self.generator = torch.Generator(device=self.device)
        self._row_noise: RowNoise | None = None
        self.seed(seed)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        objectives: Sequence[str] | None = None,
        device: str = "auto",
        sampler: SamplerConfig | None = None,
        seed: int = 0,
        candidates: int = 1,
        accel: AccelConfig | None = None,
    ) -> Agent:
        """Load the inverse dynamics model and the named objective planners of a run.

        ``objectives`` defaults to every objective model present. Each must have been
        fine-tuned from this run's reference planner (checked by its weights' hash).
        ``candidates`` > 1 also loads the value critic of every named objective from
        ``run_dir/critics/<name>`` (``tora critic`` trains them) and selects among that many
        sampled plans per row.
        """
        run_dir = Path(run_dir)
        dev = resolve_device(device)
        names = composed_objectives(run_dir, objectives)
        ref_hash = reference_hash(run_dir)
        models, spec = [], None
        for name in names:
            model, model_spec, config = load_planner(objective_dir(run_dir, name), dev)
            if config.get("reference_sha256") != ref_hash:
                raise CheckpointError(
                    f"objective model {name!r} was fine-tuned from a different reference "
                    f"planner than {run_dir}/reference (which has changed since); fine-tune "
                    f"it again: `tora finetune --data DATA --run {run_dir} --objective {name} "
                    "--restart`"
                )
            models.append(model)
            spec = spec or model_spec
        assert spec is not None
        inverse = load_inverse_dynamics(run_dir / INVERSE_DIR, spec, dev)
        critics, signs = [], []
        if candidates > 1:
            for name in names:
                critic, config = load_value_critic(critic_dir(run_dir, name), spec, ref_hash, dev)
                critics.append(critic)
                signs.append(-1.0 if config.get("direction") == "minimize" else 1.0)
        return cls(
            models, names, spec, inverse, sampler, dev, seed, candidates, critics, signs, accel
        )

    def planning_alone(self, model: nn.Module, name: str, seed: int = 0) -> Agent:
        """An agent that plans with ``model`` alone (e.g. the run's reference planner) and
        otherwise shares this one's spec, inverse dynamics, sampler and device: what a
        diagnosis compares the composed models against, without loading the run twice."""
        return Agent([model], [name], self.spec, self.inverse, self.sampler, self.device, seed)

    # --------------------------------------------------------------- properties
    @property
    def objective_names(self) -> list[str]:
        return list(self.composed.names)

    @property
    def obs_dim(self) -> int:
        return self.spec.obs_dim

    @property
    def act_dim(self) -> int:
        return int(self.inverse.action_low.numel())

    def seed(self, seed: int) -> None:
        """Reset the sampling noise to one stream shared by the batch (dropping any per-row
        streams): the same seed and inputs give the same actions."""
        self.generator.manual_seed(int(seed))
        self._row_noise = None

    def seed_rows(self, seeds: Sequence[int]) -> None:
        """Give every row its own noise stream: row r draws from a generator seeded with
        ``seeds[r]`` (e.g. :func:`tora.evaluate.rollout.row_seeds`).

        Until the next :meth:`seed` or :meth:`seed_rows`, :meth:`act` and :meth:`plan` take
        ``rows``: the indices into ``seeds`` of their batch's rows (default: all, in order),
        so rows keep their streams when others drop out of the batch. The streams are CPU
        generators (:class:`~tora.diffusion.samplers.RowNoise`), so a row's noise is also the
        same on any device.
        """
        # Blocks of 64 draws' worth of noise: one generator call per row every 64 draws. A
        # draw is one window per candidate, all read from the row's own stream.
        window = self.spec.horizon * self.spec.obs_dim
        self._row_noise = RowNoise(seeds, block=64 * window * self.candidates)

    @property
    def row_streams(self) -> int:
        """Number of per-row noise streams (0: one stream shared by the batch)."""
        return 0 if self._row_noise is None else len(self._row_noise)

    def check_spaces(self, obs_shape: tuple[int, ...], act_shape: tuple[int, ...]) -> None:
        """Raise :class:`ShapeMismatchError` if an environment's spaces do not fit the models."""
        check_spaces(obs_shape, act_shape, self.obs_dim, self.act_dim)

    # ------------------------------------------------------------------ acting
    def _inputs(
        self, obs: np.ndarray, weights: np.ndarray | Sequence[float]
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        o, w, single = batch_inputs(obs, weights, self.obs_dim, self.objective_names)
        return (
            torch.as_tensor(o, device=self.device),
            torch.as_tensor(w, device=self.device, dtype=torch.float32),
            single,
        )

    def _noise_fn(self, batch: int, rows: Sequence[int] | np.ndarray | None) -> NoiseFn | None:
        """The per-row noise of a batch's rows, or None for the shared generator."""
        if self._row_noise is None:
            if rows is not None:
                raise ValueError("rows= needs per-row streams: call agent.seed_rows(seeds) first")
            return None
        if rows is None and batch != len(self._row_noise):
            raise ShapeMismatchError(
                f"a batch of {batch} with {len(self._row_noise)} row streams: pass rows= to say "
                "which streams the batch's rows use"
            )
        if rows is not None and np.size(rows) != batch:
            raise ShapeMismatchError(f"{np.size(rows)} row indices for a batch of {batch}")
        bound = self._row_noise.bind(rows)
        n = self.candidates
        if n == 1:
            return bound

        def candidates_noise(shape: tuple[int, ...]) -> torch.Tensor:
            # Row b's N candidates (rows b*N .. b*N + N - 1 of the sampled batch) take N
            # consecutive windows of row b's stream.
            per_row = bound((shape[0] // n, n * shape[1], *shape[2:]))
            return per_row.reshape(shape)

        return candidates_noise

    @torch.no_grad()
    def plan(
        self,
        obs: np.ndarray,
        weights: np.ndarray | Sequence[float],
        rows: Sequence[int] | np.ndarray | None = None,
        budget_left: np.ndarray | Sequence[float] | float | None = None,
    ) -> np.ndarray:
        """Planned windows (B, H, obs_dim) in environment units, first row = ``obs``.
        ``rows``: see :meth:`seed_rows`; ``budget_left``: see :meth:`act`."""
        o, w, single = self._inputs(obs, weights)
        x = self._plan(o, w, rows, self._budget(budget_left, o.shape[0]))
        out = self.spec.normalizer.unnormalize(x).cpu().numpy()
        return out[0] if single else out

    def _budget(
        self, budget_left: np.ndarray | Sequence[float] | float | None, batch: int
    ) -> torch.Tensor | None:
        """The (B,) budget left per row as a tensor, after checking that this agent can use
        one: candidates to choose among and exactly one objective to minimize (the cost)."""
        if budget_left is None:
            return None
        signs = self.critic_signs
        if self.candidates == 1 or signs is None or int((signs < 0).sum()) != 1:
            raise ValueError(
                "budget_left needs candidates > 1 and value critics with exactly one objective "
                "to minimize (the cost); load the agent with candidates=N from a run whose "
                "critics include its cost objective (`tora critic`)"
            )
        budget = np.broadcast_to(np.asarray(budget_left, dtype=np.float32), (batch,))
        if not np.isfinite(budget).all():
            raise ValueError(f"budget_left must be finite, got {budget.tolist()}")
        return torch.as_tensor(np.array(budget), device=self.device)

    def _plan(
        self,
        o: torch.Tensor,
        w: torch.Tensor,
        rows: Sequence[int] | np.ndarray | None,
        budget: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, H, D) normalized windows: the one sampled window per row, or with candidates
        N > 1 the best of N sampled in one batch of B * N (among those whose predicted
        cost-to-go fits ``budget``, where one is given)."""
        noise_fn = self._noise_fn(o.shape[0], rows)
        first = self.spec.normalizer.normalize(o)
        n = self.candidates
        if n == 1:
            return self._sample(first, w, noise_fn)
        b, h, d = o.shape[0], self.spec.horizon, self.spec.obs_dim
        windows = self._sample(first.repeat_interleave(n, 0), w.repeat_interleave(n, 0), noise_fn)
        windows = windows.view(b, n, h, d)
        values = self.candidate_values(windows)
        scores = preference_scores(values, w)
        if budget is not None:
            assert self.critic_signs is not None  # checked by _budget
            cost = int(torch.nonzero(self.critic_signs < 0)[0, 0])
            scores = within_budget(scores, -values[..., cost], budget)  # values are signed
        return pick_best(windows, scores)

    def candidate_values(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, N, K) value of each candidate's last planned state under each objective's
        critic, in reward units and signed (higher is better). windows: (B, N, H, D)
        normalized."""
        if self.critics is None or self.critic_signs is None:
            raise ValueError("this agent has no value critics (candidates == 1)")
        last = windows[:, :, -1].reshape(-1, windows.shape[-1])
        values = torch.stack([critic(last) for critic in self.critics], dim=-1)
        return (values * self.critic_signs).view(*windows.shape[:2], -1)

    def _sample(
        self,
        first: torch.Tensor,
        w: torch.Tensor,
        noise_fn: NoiseFn | None = None,
    ) -> torch.Tensor:
        shape = (first.shape[0], self.spec.horizon, self.spec.obs_dim)
        fast = self._fast_eps
        x = sample(
            (lambda x, t: fast(x, t, w))
            if fast is not None
            else self.composed.bind(w, validate=False),
            self.spec.schedule,
            shape,
            first,
            self.sampler,
            self.generator,
            noise_fn=noise_fn,
        )
        return self.spec.decode(x)  # normalized windows, whatever the planner generates

    @torch.no_grad()
    def act(
        self,
        obs: np.ndarray,
        weights: np.ndarray | Sequence[float],
        rows: Sequence[int] | np.ndarray | None = None,
        budget_left: np.ndarray | Sequence[float] | float | None = None,
    ) -> np.ndarray:
        """Action(s) for observation(s) ``obs`` (obs_dim,) or (B, obs_dim) under ``weights``
        (K,) shared by the batch or (B, K) one row per observation. ``rows`` (B,): which
        per-row noise streams the batch uses, after :meth:`seed_rows` (default: all, in
        order); an error without per-row streams.

        ``budget_left`` (safe RL; a number or one per row): the cost each row may still
        spend. Candidate plans whose cost critic predicts more cost-to-go from their last
        planned state are discarded before the preference picks among the rest (if none
        fits, the cheapest is taken). Needs candidates > 1 and a critic per objective, one of
        them a cost to minimize. The critic's value is discounted (its ``discount``), so on
        long episodes it predicts less than the undiscounted cost a budget counts."""
        o, w, single = self._inputs(obs, weights)
        plan = self._plan(o, w, rows, self._budget(budget_left, o.shape[0]))
        action = self.inverse(plan[:, 0], plan[:, 1]).cpu().numpy()
        return action[0] if single else action
