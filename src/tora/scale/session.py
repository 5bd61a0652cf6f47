"""Starting or joining Ray for one run, the same way for every command that fans out.

Every Ray run of tora goes through :func:`ray_session`: without an address it starts a local
Ray of its own for the run (even when a cluster runs on this machine) and shuts it down
after; with one it joins that cluster; and a Ray this process started before (a test, a
notebook) is used as it is. Ray's own logging is kept quiet, so a run's lines are tora's.

Ray is imported here, inside :func:`import_ray` (which says how to install it when it is
missing), once a Ray run starts; the modules that run work on Ray take the module from the
session, so nothing imports Ray before then.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tora.errors import ToraError

INSTALL_HINT = "pip install 'tora-rl[scale]'"
"""How to get Ray, in every message that needs it."""

Log = Callable[[str], None]
"""Where a run's lines go."""


def import_ray(purpose: str) -> ModuleType:
    """The ``ray`` module, or a :class:`ToraError` saying that ``purpose`` needs it and how
    to install it."""
    try:
        import ray
    except ImportError as error:
        raise ToraError(
            f"{purpose} needs the ray package, which is not installed: {INSTALL_HINT}"
        ) from error
    return ray


def describe(error: BaseException) -> str:
    """An error in one line: its type and message."""
    return f"{type(error).__name__}: {error}"


def describe_ray_error(error: BaseException) -> str:
    """Why a Ray call failed, in one line: the error a task raised (Ray's error carries it as
    its cause), or the first line of Ray's own (a worker or an actor that died...), whose
    full text is a traceback."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return describe(cause)
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def check_address(address: str | None, cpus: int | None) -> None:
    """Refuse what no Ray could start with: an empty address, a local Ray without a CPU, or a
    CPU count for a cluster (whose CPUs are its own)."""
    if address is not None and not address.strip():
        raise ToraError("the Ray address is empty")
    if cpus is not None and cpus < 1:
        raise ToraError(f"a local Ray needs at least 1 CPU, got {cpus}")
    if cpus is not None and address is not None:
        raise ToraError(
            "the CPUs of a Ray cluster are its own: give either an address or a CPU count"
        )


@dataclass(frozen=True)
class RaySession:
    """A Ray a run uses: the module, and whether it is a local Ray this run started (whose
    resources are all it will ever have)."""

    ray: ModuleType
    local: bool

    @property
    def where(self) -> str:
        return "this local Ray" if self.local else "the Ray cluster"

    def check_fits(self, who: str, need: Mapping[str, float], log: Log, waits: str) -> None:
        """Refuse work that asks for more of a resource (``need``: "CPU", "GPU" -> amount)
        than a local Ray has, since it would wait forever; on a cluster, which may grow,
        only say so (``waits``: who waits, e.g. "cells wait")."""
        have = self.ray.cluster_resources()
        for name, amount in need.items():
            if amount > have.get(name, 0):
                message = f"{who} asks for {amount:g} {name}, and {self.where} has "
                message += f"{have.get(name, 0):g}"
                if self.local:
                    raise ToraError(message)
                log(f"ray: {message} now; {waits} until the cluster has them")


@contextmanager
def ray_session(
    address: str | None, cpus: int | None, log: Log, purpose: str
) -> Iterator[RaySession]:
    """Ray for one run (see the module's docstring): a local Ray of ``cpus`` CPUs (default:
    this machine's cores) when there is no ``address``, the cluster at ``address``
    otherwise, or the Ray this process already started. A Ray started here is shut down
    when the run ends, however it ends. ``purpose`` names the run in the message given
    when Ray is not installed."""
    check_address(address, cpus)
    ray = import_ray(purpose)
    owner = not ray.is_initialized()
    if owner:
        _start(ray, address, cpus)
    elif cpus is not None:
        log(f"ray: using the Ray this process started before ({cpus} CPUs not applied)")
    try:
        yield RaySession(ray, local=owner and address is None)
    finally:
        if owner:
            ray.shutdown()


def _start(ray: ModuleType, address: str | None, cpus: int | None) -> None:
    quiet: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        # A run's lines reach the driver through its own channels, unprefixed.
        "log_to_driver": False,
    }
    try:
        if address is not None:
            ray.init(address=address, **quiet)
        else:
            # "local": a new Ray of our own even when a cluster runs on this machine.
            ray.init(address="local", num_cpus=cpus or os.cpu_count() or 1, **quiet)
    except Exception as error:  # Ray raises ConnectionError, ValueError, RuntimeError...
        where = f"reach the Ray cluster at {address}" if address else "start Ray"
        raise ToraError(f"could not {where}: {describe(error)}") from error
