"""Text-game policies trained per objective with Contrastive Preference Learning.

CPL (Hejna et al., "Contrastive Preference Learning: Learning from Human Feedback without
RL", ICLR 2024) reads the advantage of an action as ``A(s, a) = alpha log pi(a|s)`` and fits
the policy so that the preferred segment of a pair scores higher::

    score(segment) = sum_t discount^t A(s_t, a_t)
    loss = -log sigmoid(score(preferred) - lambda * score(other))

with the conservative bias ``lambda`` in (0, 1] (0.5) and ``alpha`` 0.1. The text-game seed
trains one such policy per objective (points; morality) from pairs labelled by that
objective (:func:`tora.text.data.make_pairs`) and mixes them at inference
(:mod:`tora.text.mixture`). An optional behaviour-cloning warm start fits the data's actions
first (CPL's paper pretrains with BC too).

The policy is categorical over the offered choices: :class:`ChoiceScorer` gives each
(scene text, choice text) pair a logit from their embeddings (:mod:`tora.nn.text_encoder`), and
the softmax runs over the offered choices only. It never sees annotations.

Training runs in the shared loop (:func:`tora.train.loop.train_and_save`): resumable from
``OUT/train_state``, weights in ``OUT/model.safetensors`` and everything needed to rebuild the
policy in ``OUT/config.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tora.configs import config_to_dict
from tora.errors import CheckpointError, DataError, ToraError
from tora.io import atomic_write_json
from tora.nn.choice_scorer import ChoiceScorer
from tora.nn.text_encoder import EncoderConfig, TextEncoder, encoder_dict, make_encoder
from tora.text.data import (
    HELD_OUT_GAME,
    PairConfig,
    SegmentPairs,
    TextDataset,
    make_pairs,
)
from tora.train.checkpoint import load_state_into, read_config
from tora.train.loop import LoopResult, OptimConfig, train_and_save
from tora.train.losses.cpl import cpl_loss, nll_bc_loss

POLICY_FORMAT = "tora-text-policy"
POLICY_VERSION = 1
_PROBS_CACHE_LIMIT = 100_000  # (scene, choices) entries kept by a loaded policy


# ---------------------------------------------------------------------------- step tables
@dataclass
class StepTable:
    """A dataset's steps as tensors over its distinct texts.

    texts: (U, D) embeddings; scene: (S,) text row of each step's scene; choices: (S, C) text
    rows of the offered choices (0-padded); mask: (S, C) bool; action: (S,).
    """

    texts: torch.Tensor
    scene: torch.Tensor
    choices: torch.Tensor
    mask: torch.Tensor
    action: torch.Tensor

    @classmethod
    def build(cls, dataset: TextDataset, encoder: TextEncoder, device: torch.device) -> StepTable:
        steps = [s for e in dataset.episodes for s in e.steps]
        if not steps:
            raise DataError("the dataset has no steps to train on")
        rows: dict[str, int] = {}
        for s in steps:
            for text in (s.text, *s.choices):
                rows.setdefault(text, len(rows))
        width = max(len(s.choices) for s in steps)
        choices = np.zeros((len(steps), width), dtype=np.int64)
        mask = np.zeros((len(steps), width), dtype=bool)
        for i, s in enumerate(steps):
            choices[i, : len(s.choices)] = [rows[c] for c in s.choices]
            mask[i, : len(s.choices)] = True
        return cls(
            texts=torch.from_numpy(encoder.encode(list(rows))).to(device),
            scene=torch.tensor([rows[s.text] for s in steps], device=device),
            choices=torch.from_numpy(choices).to(device),
            mask=torch.from_numpy(mask).to(device),
            action=torch.tensor([s.action for s in steps], device=device),
        )

    def log_probs(self, model: ChoiceScorer, steps: torch.Tensor) -> torch.Tensor:
        """(N,) log pi(a|s) of the recorded action at each step index in ``steps``.

        Only the distinct texts the steps use are projected, once each.
        """
        scene, choices = self.scene[steps], self.choices[steps]
        used, inverse = torch.unique(torch.cat([scene, choices.reshape(-1)]), return_inverse=True)
        emb = self.texts[used]
        scene_h = model.scene_proj(emb)[inverse[: len(steps)]]
        choice_h = model.choice_proj(emb)[inverse[len(steps) :]].view(*choices.shape, -1)
        logits = model.score(scene_h, choice_h, self.mask[steps])
        logp = torch.log_softmax(logits, dim=-1)
        return logp.gather(1, self.action[steps].unsqueeze(1)).squeeze(1)


def segment_log_probs(
    table: StepTable, model: ChoiceScorer, segments: torch.Tensor
) -> torch.Tensor:
    """(N, L) log pi of the actions along ``segments`` (step indices, -1 padding -> 0)."""
    flat = segments.reshape(-1)
    valid = flat >= 0
    out = torch.zeros(flat.shape, dtype=table.texts.dtype, device=flat.device)
    out[valid] = table.log_probs(model, flat[valid])
    return out.view(segments.shape)


# ------------------------------------------------------------------------------- training
def _default_optim() -> OptimConfig:
    return OptimConfig(
        lr=1e-3, weight_decay=1e-4, ema_decay=0.0, checkpoint_every=250, log_every=25
    )


@dataclass
class TextTrainConfig:
    """How ``tora text train`` fits one policy."""

    objective: Literal["points", "morality", "scalarized"] = "points"
    """What labels the pairs: more points wins; fewer/milder violations wins; or the fixed
    scalarization of both (--pairs-scalar-weights), the single-policy baseline."""
    pairs: PairConfig = field(default_factory=PairConfig)
    """How segment pairs are cut and labelled."""
    alpha: float = 0.1
    """CPL temperature: A(s, a) = alpha * log pi(a|s)."""
    conservative_lambda: float = 0.5
    """CPL's conservative bias on the other segment's score, in (0, 1]."""
    discount: float = 1.0
    """Discount of the advantages along a segment."""
    steps: int = 600
    """Gradient steps of the CPL loss."""
    batch_size: int = 32
    """Segment pairs per step."""
    bc_steps: int = 0
    """Behaviour-cloning warm-start steps on the data's actions before CPL (0: none)."""
    hidden: int = 64
    """Hidden units of the choice scorer."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """Text encoder."""
    optim: OptimConfig = field(default_factory=_default_optim)
    """Optimizer and checkpointing."""
    include_held_out: bool = False
    """Also train on the held-out evaluation game's episodes if the data has any (they are
    left out by default, so the evaluation measures generalization)."""
    seed: int = 0
    """Seed of the initial weights, the pairs and the batches."""


def _check_config(config: TextTrainConfig) -> None:
    if not 0 < config.conservative_lambda <= 1:
        raise ToraError(f"conservative_lambda must be in (0, 1], got {config.conservative_lambda}")
    if config.alpha <= 0 or config.steps < 1 or config.batch_size < 1 or config.bc_steps < 0:
        raise ToraError("alpha must be > 0, steps and batch size >= 1, bc_steps >= 0")


def objective_label(config: TextTrainConfig) -> str:
    """The policy's name: its objective, with the weights for the scalarized baseline."""
    if config.objective == "scalarized":
        w = config.pairs.scalar_weights
        return f"scalarized({w[0]:g},{w[1]:g})"
    return config.objective


def train_text_policy(
    dataset: TextDataset,
    config: TextTrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
    data_info: dict[str, Any] | None = None,
) -> tuple[LoopResult, SegmentPairs]:
    """Fit one policy on pairs labelled by ``config.objective``; save it in ``out_dir``.

    Rerunning with the same arguments resumes an interrupted run (and does nothing for a
    finished one).
    """

    _check_config(config)
    device = torch.device(device)
    out_dir = Path(out_dir)
    data = dataset if config.include_held_out else dataset.without_games([HELD_OUT_GAME])
    if not data.episodes:
        raise DataError(
            f"no episodes to train on: the data holds only the held-out game {HELD_OUT_GAME!r} "
            "(pass --include-held-out to train on it anyway)"
        )
    pairs = make_pairs(data, config.objective, config.pairs, seed=config.seed)
    encoder = make_encoder(config.encoder)
    table = StepTable.build(data, encoder, device)
    torch.manual_seed(config.seed)
    model = ChoiceScorer(int(table.texts.shape[1]), config.hidden).to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    if config.bc_steps > 0:
        num_steps = int(table.action.shape[0])

        def bc_step() -> tuple[torch.Tensor, dict[str, float]]:
            idx = torch.randint(
                num_steps, (config.batch_size * 8,), generator=generator, device=device
            )
            return nll_bc_loss(table.log_probs(model, idx))

        warm = train_and_save(
            desc="BC warm start",
            model=model,
            step_fn=bc_step,
            steps=config.bc_steps,
            config=config.optim,
            out_dir=out_dir / "bc_warm_start",
            generator=generator,
            saved_config={"stage": "bc_warm_start"},
            progress=progress,
        )
        model.load_state_dict(warm.model.state_dict())

    preferred = torch.from_numpy(pairs.preferred).to(device)
    other = torch.from_numpy(pairs.other).to(device)

    def cpl_step() -> tuple[torch.Tensor, dict[str, float]]:
        idx = torch.randint(len(pairs), (config.batch_size,), generator=generator, device=device)
        logp = segment_log_probs(table, model, torch.stack([preferred[idx], other[idx]]))
        return cpl_loss(
            logp[0],
            logp[1],
            alpha=config.alpha,
            conservative_lambda=config.conservative_lambda,
            discount=config.discount,
        )

    saved = {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "objective": objective_label(config),
        "encoder": encoder_dict(config.encoder),
        "network": {"text_dim": int(table.texts.shape[1]), "hidden": config.hidden},
        "train": config_to_dict(config),
        "data": {**(data_info or {}), "games": data.games, "episodes": len(data.episodes)},
        "pairs": pairs.summary(),
    }
    atomic_write_json(out_dir / "pairs.json", pairs.summary())
    result = train_and_save(
        desc=f"CPL {objective_label(config)}",
        model=model,
        step_fn=cpl_step,
        steps=config.steps,
        config=config.optim,
        out_dir=out_dir,
        generator=generator,
        saved_config=saved,
        progress=progress,
    )
    return result, pairs


# ------------------------------------------------------------------------------- policies
class TextPolicy:
    """A trained policy: its encoder and scorer, giving pi(.|scene) over offered choices."""

    def __init__(self, network: ChoiceScorer, encoder: TextEncoder, config: dict[str, Any]) -> None:
        self.network = network.eval()
        self.encoder = encoder
        self.config = config
        self.name = str(config.get("objective", "policy"))
        self._cache: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> TextPolicy:
        """The policy saved in ``directory`` by :func:`train_text_policy`."""

        config = read_config(directory)
        if config.get("format") != POLICY_FORMAT:
            raise CheckpointError(
                f"{directory} holds no text-game policy (format {config.get('format')!r}; "
                "train one with `tora text train`)"
            )
        network = ChoiceScorer(int(config["network"]["text_dim"]), int(config["network"]["hidden"]))
        load_state_into(directory, network)
        return cls(network, make_encoder(config["encoder"]), config)

    @torch.no_grad()
    def probs(self, scene: str, choices: Sequence[str]) -> np.ndarray:
        """pi(.|scene) over ``choices`` as float64 (C,); cached per (scene, choices)."""
        key = (scene, tuple(choices))
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _PROBS_CACHE_LIMIT:
                self._cache.clear()
            if not choices:
                raise ToraError("a policy was asked for choice probabilities with no choices")
            emb = torch.from_numpy(self.encoder.encode([scene, *choices]))
            mask = torch.ones(1, len(choices), dtype=torch.bool)
            logits = self.network(emb[:1], emb[1:].unsqueeze(0), mask)
            found = torch.softmax(logits.double(), dim=-1)[0].numpy()
            self._cache[key] = found
        return found.copy()


__all__ = [
    "POLICY_FORMAT",
    "ChoiceScorer",
    "StepTable",
    "TextPolicy",
    "TextTrainConfig",
    "objective_label",
    "segment_log_probs",
    "train_text_policy",
]
