"""The methods a benchmark suite can name, looked up by their short id.

Modules are imported on first lookup, so listing the methods does not import every trainer.
"""

from __future__ import annotations

import importlib

from tora.errors import ToraError
from tora.policies.base import Method

_METHODS: dict[str, tuple[str, str]] = {
    # name: (module, attribute); order is the order of table rows and plot legends
    "tora": ("tora.policies.tora_planner", "TORA"),
    "bc": ("tora.policies.supervised", "BC"),
    "bc_p": ("tora.policies.supervised", "BC_P"),
    "morvs_p": ("tora.policies.supervised", "MORVS_P"),
    "cond_diffusion": ("tora.policies.cond_diffusion", "COND_DIFFUSION"),
    "dime_p": ("tora.policies.dime_p", "DIME_P"),
}


def method_names() -> list[str]:
    """Every registered method id, in table order."""
    return list(_METHODS)


def get_method(name: str) -> Method:
    """The :class:`Method` registered as ``name``; :class:`ToraError` names the known ones."""
    if name not in _METHODS:
        raise ToraError(f"unknown method {name!r}; known methods: {', '.join(_METHODS)}")
    module, attr = _METHODS[name]
    method = getattr(importlib.import_module(module), attr)
    assert method.name == name, f"{module}.{attr} is registered as {name!r}"
    return method
