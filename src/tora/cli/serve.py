"""``tora serve``: a run's agent over HTTP."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tora.cli.common import (
    add_command,
)
from tora.cli.config_args import (
    add_dataclass_arguments,
    dataclass_from_args,
)
from tora.diffusion.samplers import SamplerConfig
from tora.errors import ToraError
from tora.serve.config import TOKEN_ENV, ServeConfig
from tora.serve.service import PolicyService

if TYPE_CHECKING:  # heavy modules: the handlers import them when they run
    pass


SERVE_DESCRIPTION = """\
Serve a run's agent over HTTP (FastAPI + uvicorn, the `serve` extra).

  POST /act        {"obs": [...] or [[...], ...], "weights": [...] or [[...], ...] or
                   {"speed": 0.7, "energy": 0.3}, "seed": 7 (optional)} -> {"actions": ...}
  GET  /objectives objective names (the order of positional weights), directions, sizes
  POST /reload     load the run again, e.g. after `tora finetune` added an objective model;
                   on failure the agent loaded before keeps serving
  GET  /health     liveness (no token needed);  /docs, /openapi.json: the API schema

Concurrent requests are micro-batched: the first waits up to --batch-wait-ms for others,
and up to --max-batch observation rows are planned in one agent call. Every row has its own
noise stream: a request with a "seed" gets the same actions whatever it is batched with.
Bad requests get a 4xx answer with the Python API's message; the server keeps serving.

  tora serve runs/demo/run --port 8000
  curl -s localhost:8000/act -H 'Content-Type: application/json' \\
       -d '{"obs": [0.0, 1.0, 0.0], "weights": {"speed": 0.3, "energy": 0.7}}'
"""


def serve(args: argparse.Namespace) -> int:
    config = dataclass_from_args(ServeConfig, args)
    sampler = dataclass_from_args(SamplerConfig, args, prefix="sampler")
    run = Path(args.run)
    if not run.is_dir():
        raise ToraError(f"{run}: no such run directory")
    try:
        # The optional `serve` extra: imported here, not at the top of a module, so that the
        # library and every other command work without FastAPI and uvicorn installed.
        import uvicorn

        from tora.serve.app import create_app
    except ImportError as exc:
        raise ToraError(
            f"`tora serve` needs FastAPI and uvicorn ({exc.name} is not installed): "
            "pip install 'tora-rl[serve]'"
        ) from exc

    token = config.token if config.token is not None else os.environ.get(TOKEN_ENV) or None
    service = PolicyService.from_config(run, config, sampler)
    about = service.describe()
    print(
        f"serving {run}: objectives {', '.join(about['objectives'])} (obs_dim "
        f"{about['obs_dim']}, act_dim {about['act_dim']}); batching "
        + (
            f"up to {config.max_batch} rows, {config.batch_wait_ms:g} ms"
            if service.batching
            else "off"
        )
        + ("; bearer token required" if token else "")
    )
    if token is None and config.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"tora: warning: listening on {config.host} without a token: anyone who reaches "
            f"this port can use the agent (set {TOKEN_ENV} or pass --token)",
            file=sys.stderr,
        )
    uvicorn.run(
        create_app(service, config.max_body_bytes, token), host=config.host, port=config.port
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's commands on the ``tora`` parser's subcommands."""
    serve_parser = add_command(
        sub,
        "serve",
        "Serve a run's agent over HTTP (FastAPI + uvicorn, the `serve` extra).",
        serve,
    )
    serve_parser.description = SERVE_DESCRIPTION
    serve_parser.add_argument(
        "run", help="Run directory with inverse dynamics and objective models."
    )

    add_dataclass_arguments(serve_parser, ServeConfig)
    add_dataclass_arguments(serve_parser, SamplerConfig, prefix="sampler", group_title="sampler")
