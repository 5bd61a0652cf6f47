"""Linear behaviour policies with running observation normalization (ARS V2's policy class).

Mania, Guy & Recht, "Simple random search of static linear policies is competitive for
reinforcement learning" (NeurIPS 2018) showed that a deterministic linear map of whitened
observations, ``a = M ((s - mean) / std)``, is enough for MuJoCo locomotion when ``mean`` and
``std`` track the states the policy visits. :class:`LinearPolicy` is that map, clipped to the
action box, optionally with a bias ``b`` (``a = M z + b``). The bias matters where the task
needs a constant action and starts from states symmetric about the mean: a ball that must roll
along +x from a start at x ~ U(-0.01, 0.01) at rest. Without ``b``, every M there gives the
mirror image of each rollout from the mirrored start, so the expected progress is 0 for every
M and ARS has nothing to climb (measured on SafetyBallRun: mean return 0 after 60
iterations). The bias is stored as one extra last column of ``M``, so ARS perturbs and updates
it like any other weight; :class:`RunningStat` keeps the normalization as Welford/Chan statistics
(count, mean, sum of squared deviations), which merge exactly and in a fixed order so runs are
reproducible.

File format (no pickle): ``<stem>.safetensors`` holds float64 tensors ``M`` (act, obs),
``mean``, ``std`` (obs), ``count`` (scalar, int64), ``m2`` (obs, so that training can continue
from the file), ``low`` and ``high`` (act); ``<stem>.json`` holds the env id, the preference
weights, the dimensions, free-form training statistics and the SHA-256 of the tensor file. With
a bias ``M`` is (act, obs + 1) and the JSON says ``"bias": true`` (files without the key have
none). The JSON is written last and names the tensor file's digest, so a pair written by two
different saves (a crash between the two writes) is detected instead of loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from tora.errors import CheckpointError, ShapeMismatchError
from tora.io import atomic_write_json, file_sha256, read_json_object
from tora.train.checkpoint import load_tensors, save_tensors

__all__ = [
    "MLP_POLICY_FORMAT",
    "POLICY_FORMAT",
    "LinearPolicy",
    "RunningStat",
    "load_policy",
    "policy_paths",
    "read_policy_files",
    "write_policy_files",
]

POLICY_FORMAT = "tora-linear-policy"
MLP_POLICY_FORMAT = "tora-mlp-policy"
"""The format of :class:`tora.behavior.ppo.MLPPolicy` files (named here so that
:func:`load_behavior_policy` can tell the kinds apart without importing torch networks)."""
FLIGHT_POLICY_FORMAT = "tora-flight-policy"
"""The format of :class:`tora.behavior.flight.FlightPolicy` files (named here for the same
reason)."""
_POLICY_VERSION = 1
_MIN_STD = 1e-8
"""Below this a coordinate is treated as constant and left unscaled (std 1), as dividing by a
near-zero std would turn rounding noise into huge policy inputs."""


@dataclass
class RunningStat:
    """Count, mean and sum of squared deviations (``m2``) of a stream of vectors.

    Merging two summaries with Chan et al.'s pairwise formula gives the same numbers (up to
    rounding) as one pass of Welford's algorithm over both streams, so each rollout can
    summarize its own states and the trainer merges the summaries in a fixed order.
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def zeros(cls, dim: int) -> RunningStat:
        """The empty summary: no samples, normalization is the identity."""
        return cls(0, np.zeros(dim), np.zeros(dim))

    @classmethod
    def from_batch(cls, x: ArrayLike) -> RunningStat:
        """Summary of the rows of ``x`` (n, dim), computed two-pass for accuracy."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2:
            raise ShapeMismatchError(f"expected a (n, dim) batch, got shape {arr.shape}")
        if arr.shape[0] == 0:
            return cls.zeros(arr.shape[1])
        mean = arr.mean(axis=0)
        return cls(int(arr.shape[0]), mean, ((arr - mean) ** 2).sum(axis=0))

    def merge(self, other: RunningStat) -> RunningStat:
        """The summary of both streams (Chan, Golub & LeVeque's parallel update)."""
        if other.count == 0:
            return self.copy()
        if self.count == 0:
            return other.copy()
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return RunningStat(n, mean, m2)

    def copy(self) -> RunningStat:
        return RunningStat(self.count, self.mean.copy(), self.m2.copy())

    @property
    def std(self) -> np.ndarray:
        """Sample standard deviation, 1 where undefined (< 2 samples) or (near) constant."""
        if self.count < 2:
            return np.ones_like(self.mean)
        std = np.sqrt(self.m2 / (self.count - 1))
        return np.where(std < _MIN_STD, 1.0, std)


def linear_action(
    M: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    obs: ArrayLike,
) -> np.ndarray:
    """``clip(M (s - mean) / std, low, high)`` for one observation (obs,) or a batch (B, obs).

    If ``M`` has one column more than the observation, that column is a bias added after the
    product (:class:`LinearPolicy`)."""
    s = np.asarray(obs, dtype=np.float64)
    dim = mean.shape[0]
    if s.shape[-1:] != (dim,) or s.ndim > 2:
        raise ShapeMismatchError(
            f"the policy takes observations of size {dim} (or a batch (B, {dim})), "
            f"got shape {s.shape}"
        )
    z = (s - mean) / std
    if M.shape[1] == dim:
        a = M @ z if z.ndim == 1 else z @ M.T
    else:
        W, b = M[:, :dim], M[:, dim]
        a = (W @ z if z.ndim == 1 else z @ W.T) + b
    return np.clip(a, low, high)


def policy_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(tensor file, JSON file) of a policy given its stem or either file's name."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


@dataclass
class LinearPolicy:
    """``a = clip(M ((s - mean) / std), low, high)``: deterministic, ARS V2's policy.

    ``obs_stat`` holds the normalization; it only changes when a trainer merges new states
    into it, so the policy is a fixed function between updates. With a bias, ``M``'s last
    column is added to the product (module docstring).
    """

    M: np.ndarray
    """(act_dim, obs_dim) float64 weights, or (act_dim, obs_dim + 1) with a bias column."""
    obs_stat: RunningStat
    """Running statistics of the observations the policy was trained on."""
    low: np.ndarray
    """(act_dim,) lower action bounds."""
    high: np.ndarray
    """(act_dim,) upper action bounds."""
    env_id: str = ""
    """The environment the policy acts in."""
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The preference weights it was trained for (scalarized return w . R)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Free-form JSON-ready training statistics (iterations, env steps, return vector, ...)."""

    def __post_init__(self) -> None:
        self.M = np.asarray(self.M, dtype=np.float64)
        self.low = np.broadcast_to(np.asarray(self.low, dtype=np.float64), (self.act_dim,)).copy()
        self.high = np.broadcast_to(np.asarray(self.high, dtype=np.float64), (self.act_dim,)).copy()
        self.weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        if (
            self.M.ndim != 2
            or self.obs_stat.mean.ndim != 1
            or self.M.shape[1] - self.obs_dim not in (0, 1)
        ):
            raise ShapeMismatchError(
                f"M must be (act_dim, obs_dim) or (act_dim, obs_dim + 1) and the statistics "
                f"(obs_dim,); got M {self.M.shape}, mean {self.obs_stat.mean.shape}"
            )

    @classmethod
    def zeros(
        cls,
        obs_dim: int,
        low: ArrayLike,
        high: ArrayLike,
        env_id: str = "",
        weights: ArrayLike = (),
        bias: bool = False,
    ) -> LinearPolicy:
        """The ARS starting point: M = 0 (action 0 everywhere), identity normalization;
        ``bias`` adds the bias column (also 0)."""
        act_dim = np.asarray(low).reshape(-1).size
        return cls(
            np.zeros((act_dim, obs_dim + int(bias))),
            RunningStat.zeros(obs_dim),
            np.asarray(low),
            np.asarray(high),
            env_id,
            np.asarray(weights, dtype=np.float64),
        )

    @property
    def obs_dim(self) -> int:
        return int(self.obs_stat.mean.shape[0])

    @property
    def bias(self) -> bool:
        """Whether ``M``'s last column is a bias."""
        return int(self.M.shape[1]) == self.obs_dim + 1

    @property
    def act_dim(self) -> int:
        return int(self.M.shape[0])

    @property
    def mean(self) -> np.ndarray:
        return self.obs_stat.mean

    @property
    def std(self) -> np.ndarray:
        return self.obs_stat.std

    def act(self, obs: ArrayLike) -> np.ndarray:
        """Action (act_dim,) for one observation, or (B, act_dim) for a batch (B, obs_dim)."""
        return linear_action(self.M, self.mean, self.std, self.low, self.high, obs)

    def __call__(self, obs: ArrayLike) -> np.ndarray:
        return self.act(obs)

    def copy(self) -> LinearPolicy:
        return LinearPolicy(
            self.M.copy(),
            self.obs_stat.copy(),
            self.low.copy(),
            self.high.copy(),
            self.env_id,
            self.weights.copy(),
            json.loads(json.dumps(self.info)),
        )

    # ------------------------------------------------------------------ tensors and files

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The numeric state as float64/int64 tensors (exact round trip)."""
        return {
            "M": torch.from_numpy(self.M.copy()),
            "mean": torch.from_numpy(self.mean.copy()),
            "std": torch.from_numpy(self.std.copy()),
            "count": torch.tensor(self.obs_stat.count, dtype=torch.int64),
            "m2": torch.from_numpy(self.obs_stat.m2.copy()),
            "low": torch.from_numpy(self.low.copy()),
            "high": torch.from_numpy(self.high.copy()),
        }

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[str, torch.Tensor],
        obs_dim: int,
        act_dim: int,
        source: str = "policy tensors",
        bias: bool = False,
    ) -> LinearPolicy:
        """Rebuild from :meth:`to_tensors`, checking every name, shape and value (``M`` has
        one more column with ``bias``).

        Raises CheckpointError naming each problem (missing tensor, wrong shape, non-finite
        weights, std inconsistent with the statistics).
        """
        expected = {
            "M": (act_dim, obs_dim + int(bias)),
            "mean": (obs_dim,),
            "std": (obs_dim,),
            "count": (),
            "m2": (obs_dim,),
            "low": (act_dim,),
            "high": (act_dim,),
        }
        problems = [f"missing tensor {k!r}" for k in expected if k not in tensors]
        problems += [
            f"{k} has shape {tuple(tensors[k].shape)}, expected {shape}"
            for k, shape in expected.items()
            if k in tensors and tuple(tensors[k].shape) != shape
        ]
        if problems:
            raise CheckpointError(f"{source}: " + "; ".join(problems))
        arr = {k: tensors[k].numpy().astype(np.float64) for k in expected if k != "count"}
        count = int(tensors["count"].item())
        bad = [k for k in ("M", "mean", "std", "m2") if not np.isfinite(arr[k]).all()]
        if bad or count < 0 or (arr["m2"] < 0).any():
            raise CheckpointError(f"{source}: non-finite or negative values in {bad or 'stats'}")
        policy = cls(arr["M"], RunningStat(count, arr["mean"], arr["m2"]), arr["low"], arr["high"])
        if not np.array_equal(policy.std, arr["std"]):
            raise CheckpointError(f"{source}: std does not match count and m2 (edited file?)")
        return policy

    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` then ``<stem>.json``; returns both paths."""
        # Written only when true, so policies without a bias keep their old JSON.
        extra = {"bias": True} if self.bias else {}
        tensors = self.to_tensors()
        return write_policy_files(path, tensors, POLICY_FORMAT, _POLICY_VERSION, self, extra)


def write_policy_files(
    path: str | os.PathLike[str],
    tensors: dict[str, torch.Tensor],
    format_name: str,
    version: int,
    policy: Any,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """The one layout every behaviour policy saves to: ``<stem>.safetensors`` with
    ``tensors``, then ``<stem>.json`` with the format, version, the policy's ``env_id``,
    ``weights``, ``obs_dim``, ``act_dim`` and ``info``, ``extra`` fields, and the tensor file's
    name and SHA-256 (written last, so a kill between the two leaves a pair that
    :func:`read_policy_files` refuses). Returns both paths."""
    tensor_path, json_path = policy_paths(path)
    save_tensors(tensor_path, tensors, metadata={"format": format_name})
    doc = {
        "format": format_name,
        "version": version,
        "env_id": policy.env_id,
        "weights": np.asarray(policy.weights, dtype=np.float64).tolist(),
        "obs_dim": int(policy.obs_dim),
        "act_dim": int(policy.act_dim),
        **(extra or {}),
        "tensors": tensor_path.name,
        "sha256": file_sha256(tensor_path),
        "info": policy.info,
    }
    atomic_write_json(json_path, doc)
    return tensor_path, json_path


def read_policy_files(
    path: str | os.PathLike[str], format_name: str, version: int, kind: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path]:
    """The JSON document, the tensors and the tensor file's path of a saved policy, after
    checking the JSON's format and version and the tensor file's SHA-256 against it (so a
    pair from two different saves, or a corrupt file, is refused). ``kind`` names the policy
    in messages ("linear", "MLP")."""
    tensor_path, json_path = policy_paths(path)
    doc = read_json_object(
        json_path,
        missing="no such policy file",
        format_name=format_name,
        version=version,
        what=f"{kind} policy",
    )
    digest = doc.get("sha256")
    if not isinstance(digest, str):
        raise CheckpointError(f"{json_path}: missing or malformed field: 'sha256'")
    if file_sha256(tensor_path) != digest:
        raise CheckpointError(
            f"{tensor_path}: checksum differs from {json_path.name} (corrupt, or from another save)"
        )
    return doc, load_tensors(tensor_path), tensor_path


def load_policy(path: str | os.PathLike[str]) -> LinearPolicy:
    """Load a policy saved by :meth:`LinearPolicy.save` (give the stem or either file).

    Raises CheckpointError if a file is missing, corrupt, from another save, or its tensors do
    not have the shapes its JSON declares.
    """
    doc, tensors, tensor_path = read_policy_files(path, POLICY_FORMAT, _POLICY_VERSION, "linear")
    json_path = policy_paths(path)[1]
    try:
        obs_dim, act_dim = int(doc["obs_dim"]), int(doc["act_dim"])
        bias = bool(doc.get("bias", False))
        env_id, weights, info = str(doc["env_id"]), list(doc["weights"]), dict(doc["info"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{json_path}: missing or malformed field: {exc}") from exc
    policy = LinearPolicy.from_tensors(tensors, obs_dim, act_dim, str(tensor_path), bias)
    policy.env_id, policy.weights, policy.info = env_id, np.asarray(weights, np.float64), info
    return policy
