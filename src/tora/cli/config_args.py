"""Command-line options generated from documented dataclass configs.

Configs are plain ``@dataclass`` classes whose fields are each followed by a docstring::

    @dataclass
    class PretrainConfig:
        steps: int = 2000
        \"\"\"Gradient steps of the denoising loss.\"\"\"

Writing the option list by hand would repeat every name, type, default and description and let
them drift apart; instead this module reads them from the class: :func:`field_docs` (from
:mod:`tora.configs`) parses the docstrings, :func:`add_dataclass_arguments` adds one
``--field-name`` option per field (nested configs become ``--field-sub-field``), and
:func:`dataclass_from_args` builds the instance back. :func:`config_to_dict` /
:func:`config_from_dict` (re-exported) convert configs to and from JSON-ready dicts.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import typing
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, Literal, TypeVar

from tora.configs import (
    _is_dataclass_type,
    _sequence_info,
    _split_optional,
    _type_hints,
    config_from_dict,
    config_to_dict,
    field_docs,
)
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


class _RepeatableList(argparse.Action):
    """A list option that may be given more than once: ``--objective a --objective b`` is
    ``[a, b]``, as ``--objective a b`` is; its first use replaces the default. (argparse's
    own ``store`` would keep only the last use, silently dropping the others.)"""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        current = getattr(namespace, self.dest, None)
        # The namespace holds this action's default object until the option's first use.
        earlier = [] if current is self.default or current is None else list(current)
        setattr(namespace, self.dest, [*earlier, *values])


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
            if nargs == "+":
                kwargs["action"] = _RepeatableList
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
