"""Command-line options generated from documented dataclass configs.

Configs are plain ``@dataclass`` classes whose fields are each followed by a docstring::

    @dataclass
    class PretrainConfig:
        steps: int = 2000
        \"\"\"Gradient steps of the denoising loss.\"\"\"

Writing the option list by hand would repeat every name, type, default and description and let
them drift apart; instead this module reads them from the class: :func:`field_docs` parses the
docstrings, :func:`add_dataclass_arguments` adds one ``--field-name`` option per field (nested
configs become ``--field-sub-field``), and :func:`dataclass_from_args` builds the instance back.
:func:`config_to_dict` / :func:`config_from_dict` convert configs to and from JSON-ready dicts
for saving them next to checkpoints.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import inspect
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any, Literal, TypeVar, Union

from tora.errors import ToraError

__all__ = [
    "add_dataclass_arguments",
    "config_from_dict",
    "config_to_dict",
    "dataclass_from_args",
    "field_docs",
]

T = TypeVar("T")

_NONE_WORD = "none"
"""What to type on the command line for ``None`` in an ``X | None`` option."""


class _NoneMarker:
    """Placeholder an optional list option's items become when the user typed ``none``."""

    def __repr__(self) -> str:
        return _NONE_WORD


_NONE = _NoneMarker()


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


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _choice_converter(values: list[Any]) -> Callable[[str], Any]:
    """Map typed text to the choice whose ``str()`` it is (``"3"`` -> ``3`` for ``Literal[3]``)."""
    by_text = {str(v): v for v in values}

    def choice(text: str) -> Any:
        # Unknown text passes through unchanged so that argparse's choices check rejects it
        # with a message listing the valid choices.
        return by_text.get(text, text)

    return choice


def _scalar_converter(tp: Any) -> tuple[Callable[[str], Any], list[Any] | None]:
    """``(str -> value function, choices or None)`` for one command-line token of type ``tp``."""
    if typing.get_origin(tp) is Literal:
        values = list(typing.get_args(tp))
        return _choice_converter(values), values
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        # The namespace holds the enum *values* (what the user types and sees in --help);
        # dataclass_from_args turns them back into members.
        values = [member.value for member in tp]
        return _choice_converter(values), values
    if tp is bool:
        return _parse_bool, None
    if tp in (int, float, str):
        return tp, None
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return tp, None
    raise TypeError(f"unsupported config field type {tp!r}")


def _with_none(convert: Callable[[str], Any], marker: Any) -> Callable[[str], Any]:
    def convert_or_none(text: str) -> Any:
        return marker if text.strip().lower() == _NONE_WORD else convert(text)

    convert_or_none.__name__ = getattr(convert, "__name__", "value")
    return convert_or_none


# --------------------------------------------------------------------------- argparse


def _normalize_prefix(prefix: str) -> str:
    """Option-name prefix with dashes and a trailing dash: ``"model_"`` -> ``"model-"``."""
    prefix = prefix.replace("_", "-")
    if prefix and not prefix.endswith("-"):
        prefix += "-"
    return prefix


def _dest(prefix: str, name: str) -> str:
    return (prefix + name).replace("-", "_")


def _default_of(f: dataclasses.Field[Any], defaults: Any) -> Any:
    """The default shown and used for ``f``: from the enclosing default instance if any."""
    if defaults is not None:
        return getattr(defaults, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _format_default(value: Any) -> str:
    """A default as the user would type it on the command line."""
    if value is None:
        return _NONE_WORD
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return " ".join(_format_default(v) for v in value) if value else "empty"
    return str(value)


def _to_namespace_default(value: Any) -> Any:
    """Defaults as the namespace holds parsed values: enums as their values."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_to_namespace_default(v) for v in value]
    return value


def add_dataclass_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str = "",
    group_title: str | None = None,
) -> None:
    """Add one ``--<prefix><field-name>`` option per field of dataclass ``cls`` to ``parser``.

    Help text is the field's docstring plus its default. Supported field types: ``int``,
    ``float``, ``str``, ``Path``, ``bool`` (``--flag`` / ``--no-flag``), ``X | None`` (type
    ``none``), ``Literal[...]`` and ``Enum`` (choices), ``list[X]`` / ``tuple[X, ...]``
    (several values) and nested dataclasses (``--<field>-<sub-field>``, in their own group).
    Fields without a default become required options. Options go into an argument group
    titled ``group_title`` if one is given.
    """
    _add_arguments(parser, cls, _normalize_prefix(prefix), group_title, None, None)


def _add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str,
    group_title: str | None,
    group_description: str | None,
    defaults: Any,
) -> None:
    """:func:`add_dataclass_arguments` taking defaults from ``defaults``, an instance of ``cls``.

    A nested config's defaults are those of the enclosing config's default instance, which may
    differ from the nested class's own (``field(default_factory=lambda: Net(hidden=64))``).
    """
    hints = _type_hints(cls)
    docs = field_docs(cls)
    container: Any = (
        parser.add_argument_group(group_title, group_description) if group_title else parser
    )
    nested: list[tuple[dataclasses.Field[Any], Any]] = []

    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        default = _default_of(f, defaults)
        if _is_dataclass_type(tp):
            nested.append((f, default))  # added after the flat options, each in its own group
            continue

        inner, optional = _split_optional(tp)
        seq, element, nargs = _sequence_info(inner)
        doc = docs.get(f.name, "").replace("%", "%%")  # argparse %-formats help strings
        required = default is dataclasses.MISSING
        if required:
            suffix = "(required)"
        elif default == "" or "(default" in doc:
            suffix = ""  # an empty default says nothing; a docstring may explain its own
        else:
            suffix = f"(default: {_format_default(default)})"
        help_text = f"{doc} {suffix.replace('%', '%%')}".strip()
        option = "--" + prefix + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": _dest(prefix, f.name), "required": required}
        if not required:
            kwargs["default"] = _to_namespace_default(default)

        if inner is bool and not optional:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            convert, choices = _scalar_converter(element)
            if optional:
                # A list option gets a marker per item (checked when rebuilding); a scalar one
                # becomes None directly.
                convert = _with_none(convert, _NONE if seq is not None else None)
                if choices is not None:
                    choices = [*choices, _NONE if seq is not None else None]
            kwargs["type"] = convert
            if choices is not None:
                kwargs["choices"] = choices
                shown = [_NONE_WORD if c is None or c is _NONE else str(c) for c in choices]
                kwargs["metavar"] = "{" + ",".join(shown) + "}"
            if nargs is not None:
                kwargs["nargs"] = nargs
        action = container.add_argument(option, **kwargs)
        # Set afterwards: some Python versions make BooleanOptionalAction append its own
        # "(default: ...)" to the help given to add_argument, which would show it twice.
        action.help = help_text

    for f, default in nested:
        sub_prefix = prefix + f.name.replace("_", "-") + "-"
        # Groups go on the parser itself: argparse deprecates groups nested in groups.
        _add_arguments(
            parser,
            hints[f.name],
            sub_prefix,
            f"--{sub_prefix}* options",
            docs.get(f.name),
            None if default is dataclasses.MISSING else default,
        )


def _from_namespace_value(tp: Any, value: Any) -> Any:
    """Turn a parsed (or default) namespace value into the field's Python type."""
    inner, optional = _split_optional(tp)
    if value is None and optional:
        return None
    seq, element, _ = _sequence_info(inner)
    if seq is not None:
        items = list(value)
        if optional and any(v is _NONE for v in items):
            if len(items) != 1:
                raise ToraError(f"'{_NONE_WORD}' cannot be mixed with other values: {items}")
            return None
        converted = [_from_namespace_value(element, v) for v in items]
        return tuple(converted) if seq is tuple else converted
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return inner(value)
    return value


def dataclass_from_args(cls: type[T], namespace: argparse.Namespace, prefix: str = "") -> T:
    """Build a ``cls`` instance from options added by :func:`add_dataclass_arguments`."""
    prefix = _normalize_prefix(prefix)
    hints = _type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        tp = hints[f.name]
        if _is_dataclass_type(tp):
            kwargs[f.name] = dataclass_from_args(
                tp, namespace, prefix + f.name.replace("_", "-") + "-"
            )
        else:
            kwargs[f.name] = _from_namespace_value(tp, getattr(namespace, _dest(prefix, f.name)))
    return cls(**kwargs)


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
