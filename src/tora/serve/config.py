"""Settings of ``tora serve`` (the command line is generated from them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tora.configs import csv_items, refuse_repeats
from tora.errors import ConfigError

TOKEN_ENV = "TORA_SERVE_TOKEN"
"""Environment variable read for the bearer token when --token is not given."""


@dataclass
class ServeConfig:
    """How ``tora serve`` loads the agent, batches requests and guards the endpoint."""

    host: str = "127.0.0.1"
    """Address to listen on; 127.0.0.1 answers this machine only, 0.0.0.0 every interface."""
    port: int = 8000
    """TCP port to listen on."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Torch device: auto (CUDA if available), cpu or cuda."""
    objectives: str | None = None
    """Comma-separated objective models to compose, in weight order (default: all the run
    has, in the dataset's column order; a reload then also picks up models added since)."""
    seed: int = 0
    """Seed of the server's random stream, which gives the rows of requests without their own
    "seed" their sampling noise (see README, "Serving an agent")."""
    candidates: int = 1
    """Plans sampled per row; above 1 the agent acts towards the one of highest
    sum_i w_i V_i by the run's value critics (`tora critic`); 1: no selection."""
    batching: bool = True
    """Micro-batch concurrent requests into one agent call (--no-batching: one call per
    request)."""
    batch_wait_ms: float = 2.0
    """Longest a request waits for others to share its agent call, in milliseconds; 0 turns
    batching off."""
    max_batch: int = 64
    """Most observation rows in one batched agent call; a request that would overflow a batch
    waits for the next, and a request with more rows than this is served alone."""
    max_body_bytes: int = 1_000_000
    """Largest request body accepted; larger ones are refused with 413."""
    token: str | None = None
    """Bearer token every request but /health and the docs must carry (header
    `Authorization: Bearer TOKEN`), else 401 (default: the TORA_SERVE_TOKEN environment
    variable, which other users cannot read from the process list; unset: no token)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must lie in [0, 65535], got {self.port}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be non-negative, got {self.seed}")
        if self.candidates < 1:
            raise ConfigError(f"--candidates must be at least 1, got {self.candidates}")
        if not self.batch_wait_ms >= 0:  # also refuses NaN
            raise ConfigError(f"--batch-wait-ms must be non-negative, got {self.batch_wait_ms}")
        if self.max_batch < 1:
            raise ConfigError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.max_body_bytes < 1:
            raise ConfigError(f"--max-body-bytes must be positive, got {self.max_body_bytes}")
        names = self.objective_names  # refuses an empty value or item, as every command does
        if names is not None:
            refuse_repeats(names, "--objectives")
        if self.token == "":  # an empty token would let every request in while looking guarded
            raise ConfigError("--token is empty; give a token or leave the option out")

    @property
    def objective_names(self) -> list[str] | None:
        """--objectives as a list of names (None: every model the run has)."""
        if self.objectives is None:
            return None
        return csv_items(self.objectives, "--objectives")

    @property
    def batch_wait_s(self) -> float:
        """The wait for company in seconds; 0 when batching is off."""
        return self.batch_wait_ms / 1000.0 if self.batching else 0.0
