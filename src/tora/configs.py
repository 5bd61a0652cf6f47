"""Documented dataclass configs: field docstrings, and conversion to and from JSON-ready dicts.

Configs are plain ``@dataclass`` classes whose fields are each followed by a docstring. This
module reads those docstrings (:func:`field_docs`) and converts configs to and from dicts
(:func:`config_to_dict` / :func:`config_from_dict`) for saving them next to checkpoints and for
reading benchmark suites. The command-line layer (:mod:`tora.cli.config_args`) builds on it;
nothing here knows about argparse.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import math
import textwrap
import types
import typing
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Literal, TypeVar, Union

from tora.errors import ConfigError, ToraError

__all__ = [
    "config_from_dict",
    "config_to_dict",
    "csv_items",
    "field_docs",
    "floats",
    "refuse_repeats",
]

T = TypeVar("T")


# --------------------------------------------------------------------------- docstrings


def _class_docs(klass: type) -> dict[str, str]:
    """Docstrings following annotated assignments in ``klass``'s own body (not its bases)."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
        tree = ast.parse(source)
    except Exception:
        # No source (built in a REPL, by make_dataclass, from a .pyc-only install) or source
        # inspect cannot cut out cleanly: docs are a nicety, so the options still work, only
        # without descriptions.
        return {}
    node = next(
        (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == klass.__name__),
        None,
    )
    if node is None:
        return {}
    docs: dict[str, str] = {}
    for stmt, following in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(following.value.value)
    return docs


def field_docs(cls: type) -> dict[str, str]:
    """``{field name: docstring}`` for the fields of dataclass ``cls``, including inherited ones.

    A subclass's docstring for a field overrides its base's. Fields without a docstring, and
    classes whose source is unavailable, are simply absent from the result.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # bases first, so subclasses override
        if dataclasses.is_dataclass(klass):
            docs.update(_class_docs(klass))
    return {name: doc for name, doc in docs.items() if name in names}


# --------------------------------------------------------------------------- type analysis


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:
        # get_type_hints only sees module globals: a config defined inside a function and
        # annotated with names local to it cannot be resolved under postponed annotations.
        raise TypeError(
            f"cannot resolve the field types of {cls.__qualname__}: {exc}; define the config "
            "and the types it uses at module level"
        ) from exc


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` / ``Optional[X]``, else ``(tp, False)``."""
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(tp)) != 2:
            raise TypeError(f"unsupported union type {tp!r}: only `X | None` is supported")
        return args[0], True
    return tp, False


def _sequence_info(tp: Any) -> tuple[type | None, Any, int | str | None]:
    """For list/tuple types: ``(container, element type, nargs)``; else ``(None, tp, None)``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        return list, (args[0] if args else str), "+"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple, args[0], "+"
        if args and all(a == args[0] for a in args):
            return tuple, args[0], len(args)
        raise TypeError(f"unsupported tuple type {tp!r}: use tuple[X, ...] or tuple[X, X]")
    if tp in (list, tuple):
        return tp, str, "+"
    return None, tp, None


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


# --------------------------------------------------------------------------- dict conversion


def _to_jsonable(value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value, _path=path)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"config value {path} of type {type(value).__name__} is not JSON-ready")


def config_to_dict(obj: Any, *, _path: str = "") -> dict[str, Any]:
    """JSON-ready dict of dataclass instance ``obj``: enums become values, tuples lists, paths
    strings, nested configs dicts."""
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        raise TypeError(f"expected a dataclass instance, got {type(obj).__name__}")
    return {
        f.name: _to_jsonable(getattr(obj, f.name), f"{_path}{f.name}")
        for f in dataclasses.fields(obj)
        if f.init
    }


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _from_json_value(tp: Any, value: Any, path: str) -> Any:
    """``value`` (as read from JSON) converted to field type ``tp``; ToraError if it can't be."""
    inner, optional = _split_optional(tp)
    if value is None:
        if optional:
            return None
        raise ToraError(f"config key {path} must not be null")
    if _is_dataclass_type(inner):
        if not isinstance(value, Mapping):
            raise ToraError(f"config key {path} must be a mapping, got {value!r}")
        return _config_from_dict(inner, value, f"{path}.")
    if typing.get_origin(inner) is dict:
        # dict[str, SomeConfig] holds named sub-configs (e.g. a suite's method variants).
        args = typing.get_args(inner)
        element_type = args[1] if len(args) == 2 else Any
        if not isinstance(value, Mapping):
            raise ToraError(f"config key {path} must be a mapping, got {value!r}")
        return {str(k): _from_json_value(element_type, v, f"{path}.{k}") for k, v in value.items()}
    seq, element, nargs = _sequence_info(inner)
    if seq is not None:
        if not isinstance(value, (list, tuple)):
            raise ToraError(f"config key {path} must be a list, got {value!r}")
        if isinstance(nargs, int) and len(value) != nargs:
            raise ToraError(f"config key {path} needs {nargs} values, got {len(value)}")
        items = [_from_json_value(element, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if seq is tuple else items
    if typing.get_origin(inner) is Literal:
        choices = typing.get_args(inner)
        if value not in choices:
            raise ToraError(f"config key {path} must be one of {list(choices)}, got {value!r}")
        return value
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        try:
            return inner(value)
        except ValueError:
            valid = [m.value for m in inner]
            raise ToraError(f"config key {path} must be one of {valid}, got {value!r}") from None
    if isinstance(inner, type) and issubclass(inner, PurePath):
        if not isinstance(value, (str, PurePath)):
            raise ToraError(f"config key {path} must be a path string, got {value!r}")
        return inner(value)
    if inner is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # JSON written by hand often has 3 where 3.0 is meant
    if inner in (bool, int, float, str):
        # bool is an int subclass: reject True for an int field and 1 for a bool field.
        if not isinstance(value, inner) or (inner is int and isinstance(value, bool)):
            raise ToraError(
                f"config key {path} must be {_type_name(inner)}, got {type(value).__name__} "
                f"{value!r}"
            )
        return value
    return value


def _config_from_dict(cls: type[T], d: Mapping[str, Any], path: str) -> T:
    hints = _type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = sorted(set(d) - set(valid))
    if unknown:
        where = f" in {path.rstrip('.')}" if path else ""
        raise ToraError(
            f"unknown {cls.__name__} key(s){where}: {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(valid)}"
        )
    kwargs = {
        name: _from_json_value(hints[name], value, f"{path}{name}") for name, value in d.items()
    }
    return cls(**kwargs)


def config_from_dict(cls: type[T], d: Mapping[str, Any]) -> T:
    """Rebuild a ``cls`` instance from :func:`config_to_dict` output (e.g. a saved config.json).

    Missing keys take their defaults; unknown keys raise :class:`~tora.errors.ToraError`
    naming them and listing the valid ones, so a typo is not silently ignored.
    """
    if not isinstance(d, Mapping):
        raise ToraError(f"a {cls.__name__} config must be a mapping, got {type(d).__name__}")
    return _config_from_dict(cls, d, "")


LEGACY_ATTR = "LEGACY"
"""Name of a config class's optional ClassVar mapping field -> the value that reproduces the
behaviour from before the field existed, for fields whose default differs from that value."""


def legacy_defaults(cls: type) -> dict[str, Any]:
    """``config_to_dict(cls())`` with each field's :data:`LEGACY_ATTR` value, recursively:
    what a run or cell saved before a field existed used. A default can then change (to what
    the evidence picks) without an older run being read as if it had used the new one."""
    out = config_to_dict(cls())
    return _apply_legacy(cls, out)


def _apply_legacy(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    legacy = getattr(cls, LEGACY_ATTR, {}) or {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in legacy:
            values[f.name] = _to_jsonable(legacy[f.name], f.name)
            continue
        inner, _ = _split_optional(hints.get(f.name, f.type))
        if _is_dataclass_type(inner) and isinstance(values.get(f.name), dict):
            values[f.name] = _apply_legacy(inner, values[f.name])
    return values


def fill_missing(saved: Any, defaults: Any) -> Any:
    """``saved`` with every key it lacks taken from ``defaults``, recursively.

    Settings saved before a config field existed are read as if they held the value that
    reproduces the behaviour from before it (``defaults`` from :func:`legacy_defaults`), so
    old runs and cells compare equal to new ones that ask for that behaviour, and differ from
    ones that ask for anything else."""
    if not isinstance(saved, Mapping) or not isinstance(defaults, Mapping):
        return saved
    out = {k: fill_missing(v, defaults.get(k)) for k, v in saved.items()}
    for k, v in defaults.items():
        out.setdefault(k, v)
    return out


def settings_diff(saved: Any, wanted: Any, limit: int = 5, _path: str = "") -> list[str]:
    """Where two JSON-like settings differ, as ``"a.b: saved -> wanted"`` lines (at most
    ``limit``, keys in sorted order, a key missing on one side shown as ``<missing>``): what a
    refusal to resume names, so the user sees *what* changed, not only that something did."""
    if isinstance(saved, Mapping) and isinstance(wanted, Mapping):
        out: list[str] = []
        for key in sorted(set(saved) | set(wanted), key=str):
            sub = f"{_path}.{key}" if _path else str(key)
            a, b = saved.get(key, _MISSING), wanted.get(key, _MISSING)
            out += settings_diff(a, b, limit - len(out), sub)
            if len(out) >= limit:
                break
        return out[:limit]
    if saved == wanted or limit <= 0:
        return []
    return [f"{_path or '(top)'}: {_short(saved)} -> {_short(wanted)}"]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------- comma-separated option values
# One parser for every front end (the CLI's options, the server's settings), so the same
# value is refused with the same message wherever it is typed.
def refuse_repeats(names: list[str], flag: str) -> None:
    """Refuse an objective named twice: it would be trained, or composed, twice."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"{flag} names {', '.join(repeated)} more than once; name each objective once"
        )


def csv_items(text: str, flag: str) -> list[str]:
    """The items of an option given as comma-separated values. An empty value or item is
    refused rather than skipped: "0.5,,0.5" most likely lost a number, and quietly using
    what is left would answer a different question than the one asked."""
    if not text.strip():
        raise ConfigError(f"{flag} is empty; give comma-separated values or leave the option out")
    items = [s.strip() for s in text.split(",")]
    if "" in items:
        raise ConfigError(f"{flag} has an empty item in {text!r}; give one value between commas")
    return items


def floats(text: str, flag: str) -> list[float]:
    """Comma-separated finite numbers (see :func:`csv_items` for empty items)."""
    items = csv_items(text, flag)
    try:
        values = [float(s) for s in items]
    except ValueError as exc:
        raise ConfigError(f"{flag} must be comma-separated numbers, got {text!r}") from exc
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{flag} must be finite numbers, got {text!r}")
    return values
