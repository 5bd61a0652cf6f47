"""A restricted unpickler for data files (D4MORL ships its datasets as pickles).

``pickle.load`` runs whatever callable a file names, so a downloaded dataset could execute code.
:func:`safe_load` resolves only an allowlist of globals: builtin containers and scalars, and the
few numpy functions needed to rebuild arrays, dtypes and numpy scalars. Any other global
(``os.system``, ``builtins.eval``, ``subprocess.Popen``, a user class, ...) is refused with a
:class:`~tora.errors.FormatError` naming it, before anything is called.

Arrays pickled under numpy 1.x name ``numpy.core.multiarray``; numpy 2.x renamed that package to
``numpy._core``. Both spellings are accepted and resolved to whichever the installed numpy has.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickle
import struct
from collections.abc import Callable
from typing import IO, Any

from tora.data.formats._io import PathLike, require_file
from tora.errors import FormatError

# Builtins that only build plain values.
_BUILTIN_NAMES = frozenset(
    {"list", "dict", "tuple", "set", "frozenset", "str", "bytes", "bytearray"}
    | {"int", "float", "bool", "complex"}
)

# (numpy submodule under numpy._core / numpy.core, attribute) pairs needed to rebuild arrays:
# `_reconstruct` + ndarray + dtype for protocols <= 4, `scalar` for numpy scalars, and
# `numeric._frombuffer`, which numpy uses instead of `_reconstruct` for protocol 5 (the default
# pickle protocol from Python 3.14 on). None of them can run code given crafted arguments.
_NUMPY_CORE_NAMES = frozenset(
    {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}
)
_NUMPY_TOP_NAMES = frozenset({"ndarray", "dtype"})

_LOAD_ERRORS = (
    EOFError,
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    struct.error,
)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``: protocol-2 pickles store ``bytes`` this way.

    Only the latin-1 text -> bytes use is admitted, so no other codec can be invoked.
    """
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise FormatError(f"refused _codecs.encode with encoding {encoding!r} in pickle")
    return text.encode("latin1")


def _numpy_core_attr(submodule: str, name: str) -> Any:
    """``name`` from numpy's core package, whichever of ``numpy._core``/``numpy.core`` exists."""
    # Try the numpy 2 spelling first: importing `numpy.core` under numpy 2 warns.
    for package in ("numpy._core", "numpy.core"):
        try:
            module = importlib.import_module(f"{package}.{submodule}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise FormatError(f"installed numpy has no {submodule}.{name}, needed by this pickle")


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Protocol-2 pickles spell globals the Python 2 way (``__builtin__.eval``,
    ``commands.Popen``); translate as the stdlib unpickler would, so the allowlist and the
    error messages see the Python 3 names."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _resolve(module: str, name: str) -> Callable[..., Any] | None:
    """The allowed object for ``module.name``, or None if it is not on the allowlist."""
    if module == "builtins" and name in _BUILTIN_NAMES:
        return getattr(importlib.import_module("builtins"), name)
    if module == "_codecs" and name == "encode":
        return _latin1_encode
    if module == "numpy" and name in _NUMPY_TOP_NAMES:
        return getattr(importlib.import_module("numpy"), name)
    for package in ("numpy._core.", "numpy.core."):
        if module.startswith(package) and (module[len(package) :], name) in _NUMPY_CORE_NAMES:
            return _numpy_core_attr(module[len(package) :], name)
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose global lookup is limited to :func:`_resolve`'s allowlist."""

    def find_class(self, module: str, name: str) -> Any:
        module, name = _python3_name(module, name)
        obj = _resolve(module, name)
        if obj is None:
            raise FormatError(
                f"refused to load global {module}.{name} from pickle: only numpy arrays, "
                "numpy scalars and builtin containers/numbers/strings are allowed"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise FormatError("refused pickle with persistent ids (not a plain data pickle)")


def _load_stream(stream: IO[bytes], source: str) -> Any:
    # encoding="latin1" lets Python-2 pickles of numpy arrays load: their raw bytes were
    # pickled as `str`, and numpy turns latin-1 text back into the same bytes.
    try:
        return _RestrictedUnpickler(stream, encoding="latin1").load()
    except FormatError:
        raise
    except _LOAD_ERRORS as e:
        raise FormatError(
            f"cannot unpickle {source}: truncated or corrupt pickle ({type(e).__name__}: {e})"
        ) from e


def safe_load(fileobj_or_path: PathLike | IO[bytes] | bytes) -> Any:
    """Unpickle a file, a binary stream or a bytes object, admitting only plain data.

    Raises :class:`FormatError` for a refused global, a truncated or corrupt pickle, or a
    missing file.
    """
    if isinstance(fileobj_or_path, (bytes, bytearray)):
        return _load_stream(io.BytesIO(fileobj_or_path), "bytes")
    if hasattr(fileobj_or_path, "read"):
        return _load_stream(fileobj_or_path, repr(fileobj_or_path))  # type: ignore[arg-type]
    path = require_file(fileobj_or_path, "pickle")  # type: ignore[arg-type]
    with path.open("rb") as f:
        return _load_stream(f, repr(str(path)))
