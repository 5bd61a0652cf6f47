"""Load test of `tora serve`: requests/s and latency at several client concurrencies, with
micro-batching on and off.

For each server mode it starts `tora serve` in a process of its own, waits for /health, warms
up, then for each concurrency c runs c asynchronous clients, each sending one-observation
/act requests (random observation, random preference) back to back for --seconds. It reports
completed requests per second, the median and 99th-percentile latency seen by the clients,
and the mean rows per agent call (from the server's /health counter): how much batching the
load produced.

Without --run it builds a run of the demo's shapes (MLP 256 x 3, horizon 8, Cruise: obs_dim
3, act_dim 1, K = 2 objective models) trained for a few steps only: serving cost depends on
the shapes, not on how well the models were trained.

    OMP_NUM_THREADS=1 python benchmarks/serve_load.py --seconds 10 --out /tmp/serve_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the client FastAPI's TestClient also uses (dev extra)
import numpy as np

from tora.tables import aligned_table

MODES = {
    "batching on": ["--batch-wait-ms", "2", "--max-batch", "64"],
    "batching off": ["--no-batching"],
}


def demo_shaped_run(root: Path) -> Path:
    """A run with the demo's network shapes and sampler inputs, trained for a few steps."""
    from tora.demo import DemoConfig
    from tora.envs.scripted import collect_cruise
    from tora.pipeline import finetune_run, pretrain_run
    from tora.train.dpo import DPOConfig
    from tora.train.inverse import InverseDynamicsTrainConfig

    demo = DemoConfig(progress=False)
    traj = collect_cruise(20, seed=0, progress=False)
    run = root / "run"
    pretrain = replace(demo.pretrain, steps=20)
    pretrain_run(traj, run, pretrain, InverseDynamicsTrainConfig(steps=20), progress=False)
    finetune_run(traj, run, DPOConfig(steps=5, batch_size=16, num_pairs=200), progress=False)
    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(run: Path, options: list[str], threads: int, log: Path) -> tuple[Any, str]:
    port = free_port()
    command = [
        *(sys.executable, "-m", "tora.cli.main", "serve", str(run)),
        *("--port", str(port), "--device", "cpu", "--sampler-steps", "20", *options),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not answer /health within 60 s:\n{log.read_text()}")


def request_bodies(count: int, seed: int) -> list[dict[str, Any]]:
    """Cruise observations [v, sin(phase), cos(phase)] and preferences on the simplex."""
    rng = np.random.default_rng(seed)
    speed, phase, w = (
        rng.uniform(0, 1.5, count),
        rng.uniform(0, 2 * np.pi, count),
        rng.random(count),
    )
    obs = np.stack([speed, np.sin(phase), np.cos(phase)], axis=1).round(4)
    return [
        {"obs": o.tolist(), "weights": [float(x), 1.0 - float(x)]}
        for o, x in zip(obs, w.round(4), strict=True)
    ]


async def load_level(url: str, clients: int, seconds: float, seed: int) -> dict[str, float]:
    """``clients`` workers posting back to back for ``seconds``; throughput and latency."""
    bodies = request_bodies(1024, seed)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:
        calls_before = (await client.get("/health")).json()["agent_calls"]
        stop = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop:
                start = time.perf_counter()
                response = await client.post("/act", json=bodies[i % len(bodies)])
                latencies.append(time.perf_counter() - start)
                errors += response.status_code != 200
                i += clients

        began = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        elapsed = time.perf_counter() - began
        calls = (await client.get("/health")).json()["agent_calls"] - calls_before
    ms = np.asarray(latencies) * 1000.0
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "rows_per_agent_call": len(latencies) / max(calls, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", default=None, help="Run to serve (default: build one).")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=10.0, help="Per concurrency level.")
    parser.add_argument("--server-threads", type=int, default=1, help="Server torch threads.")
    parser.add_argument("--out", default=None, help="Write the results as JSON here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        run = Path(args.run) if args.run else demo_shaped_run(Path(tmp))
        results = []
        for mode, options in MODES.items():
            process, url = start_server(run, options, args.server_threads, Path(tmp) / "log")
            try:
                asyncio.run(load_level(url, 4, 2.0, seed=99))  # warm-up
                for clients in args.clients:
                    level = asyncio.run(load_level(url, clients, args.seconds, seed=clients))
                    results.append({"mode": mode, **level})
                    print(json.dumps(results[-1]), flush=True)
            finally:
                process.terminate()
                process.wait(timeout=30)
    rows = [
        [
            r["mode"],
            str(r["clients"]),
            f"{r['requests_per_s']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['rows_per_agent_call']:.1f}",
            str(r["errors"]),
        ]
        for r in results
    ]
    header = ["mode", "clients", "requests/s", "p50 ms", "p99 ms", "rows/agent call", "errors"]
    print(aligned_table(header, rows, left=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
