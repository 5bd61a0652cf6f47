"""``tora text collect | train | evaluate | sweep``: text games, one CPL policy per
objective, mixed at inference."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tora.cli.common import (
    RuntimeOptions,
    add_command,
    add_group,
    required,
    runtime_options,
    write_config,
)
from tora.cli.config_args import add_dataclass_arguments, dataclass_from_args
from tora.device import resolve_device
from tora.io import atomic_write_json
from tora.text.cpl import TextTrainConfig, objective_label, train_text_policy
from tora.text.data import (
    CollectConfig,
    collect,
    file_digest,
    load_text_dataset,
    make_pairs,
    save_text_dataset,
    summarize_dataset,
)
from tora.text.llm import ChatClient, LLMConfig, LLMLabeler, llm_agent_factory
from tora.text.sweep import (
    SweepConfig,
    TextEvalConfig,
    TextEvaluateOptions,
    evaluate_weights,
    format_rows,
    run_sweep,
)

if TYPE_CHECKING:  # heavy modules: the handlers import them when they run
    pass


@dataclass
class TextTrainOptions:
    """Inputs and outputs of ``tora text train``."""

    data: str = ""
    """Trajectory file from `tora text collect`."""
    out: str = ""
    """Policy directory (default: runs/text/<objective>). Rerunning resumes."""


def text_collect(args: argparse.Namespace) -> int:

    config = dataclass_from_args(CollectConfig, args)
    llm = dataclass_from_args(LLMConfig, args, prefix="llm")
    client = ChatClient(llm) if config.agents.uses_llm or config.labels == "llm" else None
    start = time.perf_counter()
    dataset = collect(
        config,
        llm_agent=llm_agent_factory(client) if client else None,
        labeler=LLMLabeler(client) if client and config.labels == "llm" else None,
        progress=lambda line: print(line, flush=True),
    )
    if client is not None:  # provenance without the key
        dataset.header["llm"] = {
            "base_url": client.config.base_url,
            "model": client.config.model,
            "temperature": client.config.temperature,
        }
    out = save_text_dataset(dataset, config.out)
    seconds = time.perf_counter() - start
    print(
        f"wrote {len(dataset.episodes)} episodes ({dataset.num_steps} steps) to {out} "
        f"in {seconds:.1f} s"
    )
    print(f"{'game':<20} {'agent':<12} {'episodes':>8} {'points':>8} {'violations':>10}")
    for row in summarize_dataset(dataset):
        print(
            f"{row['game']:<20} {row['agent']:<12} {row['episodes']:>8} {row['points']:>8.1f} "
            f"{row['violations']:>10.2f}"
        )
    for objective in ("points", "morality"):
        pairs = make_pairs(dataset, objective)
        print(f"{objective} pairs (default settings): {len(pairs)} ({pairs.ties} ties dropped)")
    if client is not None:
        s = client.stats
        print(f"LLM: {s.requests} requests, {s.retries} retries, {s.cache_hits} cache hits")
    return 0


def text_train(args: argparse.Namespace) -> int:

    opts = dataclass_from_args(TextTrainOptions, args)
    runtime = runtime_options(args)
    config = dataclass_from_args(TextTrainConfig, args)
    data = required(opts.data, "--data")
    dataset = load_text_dataset(data)
    out = Path(opts.out or Path("runs/text") / config.objective)
    result, pairs = train_text_policy(
        dataset,
        config,
        out,
        device=resolve_device(runtime.device),
        progress=runtime.progress,
        data_info={"path": str(data), "sha256": file_digest(data)},
    )
    write_config(out / "train_command.json", options=opts, train=config, runtime=runtime)
    last = result.history[-1] if result.history else {}
    loss, accuracy = last.get("cpl_loss", float("nan")), last.get("accuracy", float("nan"))
    print(
        f"policy '{objective_label(config)}' saved in {out}\n"
        f"pairs: {len(pairs)} ({pairs.ties} ties dropped), segments of "
        f"{pairs.preferred.shape[1]} steps; final CPL loss {loss:.4f}, pair accuracy "
        f"{accuracy:.3f}"
    )
    return 0


def text_evaluate(args: argparse.Namespace) -> int:

    opts = dataclass_from_args(TextEvaluateOptions, args)
    config = dataclass_from_args(TextEvalConfig, args)
    k = len(config.runs)
    weights = opts.weights or ([1.0 / k] * k if k else [])
    rows = evaluate_weights(config, weights)
    print(f"{config.game}, {config.episodes} playthroughs per agent:")
    print(format_rows(rows))
    if opts.out:
        atomic_write_json(Path(opts.out), {"rows": [r.to_dict() for r in rows]})
        print(f"rows written to {opts.out}")
    return 0


def text_sweep(args: argparse.Namespace) -> int:
    config = dataclass_from_args(SweepConfig, args)
    rows, names = run_sweep(config)
    write_config(Path(config.out) / "config.json", sweep=config)
    print(
        f"{config.game}, {config.episodes} playthroughs per agent; mixture of {' / '.join(names)}:"
    )
    print(format_rows(rows))
    print(f"results: {Path(config.out) / 'sweep.json'}, plot: {Path(config.out) / 'tradeoff.png'}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's commands on the ``tora`` parser's subcommands."""

    text_sub = add_group(
        sub, "text", "Text games: offline data, CPL policies per objective, weight sweeps."
    )
    collect = add_command(
        text_sub,
        "collect",
        "Play text games with a seeded mix of reference agents and write their trajectories\n"
        "(JSON lines; the held-out evaluation game is left out unless asked for).",
        text_collect,
    )
    add_dataclass_arguments(collect, CollectConfig)
    add_dataclass_arguments(collect, LLMConfig, prefix="llm", group_title="LLM endpoint")
    train = add_command(
        text_sub,
        "train",
        "Train one text policy with CPL on segment pairs labelled by one objective\n"
        "(points, morality, or the scalarized baseline). Resumable.",
        text_train,
    )
    add_dataclass_arguments(train, TextTrainOptions)
    add_dataclass_arguments(train, TextTrainConfig)
    add_dataclass_arguments(train, RuntimeOptions)
    evaluate = add_command(
        text_sub,
        "evaluate",
        "Play a game with the policies mixed at one weight vector; MACHIAVELLI-style metrics\n"
        "normalized by a random agent.",
        text_evaluate,
    )
    add_dataclass_arguments(evaluate, TextEvaluateOptions)
    add_dataclass_arguments(evaluate, TextEvalConfig)
    sweep = add_command(
        text_sub,
        "sweep",
        "Evaluate the mixture over a weight grid next to the random and reference agents;\n"
        "print the table and plot points against violations.",
        text_sweep,
    )
    add_dataclass_arguments(sweep, SweepConfig)
