"""The restricted unpickler: plain data loads, numpy 1.x and 2.x arrays load, code never runs."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess

import numpy as np
import pytest

from tora.data.formats.safe_pickle import safe_load
from tora.errors import FormatError

NEW_NAME = b"numpy._core.multiarray"
OLD_NAME = b"numpy.core.multiarray"


def protocol2_bytes(obj: object, module: bytes) -> bytes:
    """``obj`` pickled with protocol 2, its numpy globals spelled as ``module``.

    Protocol 2 writes globals as newline-terminated text with no length prefix, so swapping
    the module name gives exactly what the other numpy major version would have written.
    """
    data = pickle.dumps(obj, protocol=2)
    for name in (NEW_NAME, OLD_NAME):
        data = data.replace(name + b"\n", module + b"\n")
    return data


class Exploit:
    """Pickles as a call of ``func(*args)``: what a malicious dataset file would contain."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


@pytest.mark.parametrize("module", [NEW_NAME, OLD_NAME], ids=["numpy2", "numpy1"])
def test_arrays_load_under_either_numpy_module_name(module: bytes) -> None:
    obj = {
        "obs": np.arange(12, dtype=np.float32).reshape(3, 4),
        "flags": np.array([True, False]),
        "idx": np.arange(3, dtype=np.int64),
        "scalar": np.float64(2.5),
    }
    data = protocol2_bytes(obj, module)
    other = OLD_NAME if module == NEW_NAME else NEW_NAME
    assert module + b"\n" in data and other + b"\n" not in data
    out = safe_load(data)
    np.testing.assert_array_equal(out["obs"], obj["obs"])
    assert out["obs"].dtype == np.float32
    np.testing.assert_array_equal(out["flags"], obj["flags"])
    assert out["scalar"] == 2.5 and isinstance(out["scalar"], np.float64)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_data_loads_under_every_protocol(protocol: int) -> None:
    obj = [
        {"a": (1, 2.5, True, None), "b": {1, 2}, "c": frozenset({"x"})},
        b"\x00\xffbytes",
        1 + 2j,
        "text",
        np.linspace(0, 1, 5),
        np.array(["ab", "c"]),
    ]
    out = safe_load(pickle.dumps(obj, protocol=protocol))
    assert out[:4] == obj[:4]
    np.testing.assert_array_equal(out[4], obj[4])
    np.testing.assert_array_equal(out[5], obj[5])


def test_loads_from_path_and_stream(tmp_path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps([np.ones(2)], protocol=4))
    np.testing.assert_array_equal(safe_load(path)[0], np.ones(2))
    np.testing.assert_array_equal(safe_load(str(path))[0], np.ones(2))
    with path.open("rb") as f:
        np.testing.assert_array_equal(safe_load(f)[0], np.ones(2))


def test_os_system_is_refused_and_not_run(tmp_path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps([Exploit(os.system, f"touch {marker}")], protocol=4)
    with pytest.raises(FormatError, match=r"refused.*system"):
        safe_load(data)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("func", "arg", "name"),
    [
        (builtins.eval, "1 + 1", "builtins.eval"),
        (builtins.exec, "x = 1", "builtins.exec"),
        (builtins.getattr, "x", "builtins.getattr"),
        (subprocess.Popen, "true", "subprocess.Popen"),
    ],
)
def test_dangerous_globals_are_refused_by_name(func: object, arg: object, name: str) -> None:
    for protocol in (2, 4):
        with pytest.raises(FormatError, match=name.replace(".", r"\.")):
            safe_load(pickle.dumps(Exploit(func, arg), protocol=protocol))


def test_codecs_encode_only_latin1() -> None:
    # _codecs.encode is admitted for protocol-2 bytes; any other codec use is refused.
    data = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(FormatError, match="rot13"):
        safe_load(data)


def test_truncated_and_garbage_pickles_raise_format_error(tmp_path) -> None:
    data = pickle.dumps([np.arange(100.0)] * 3, protocol=4)
    with pytest.raises(FormatError, match="truncated or corrupt"):
        safe_load(data[: len(data) // 2])
    with pytest.raises(FormatError):
        safe_load(b"")
    with pytest.raises(FormatError):
        safe_load(io.BytesIO(b"\x80\x04this is not a pickle at all"))
    with pytest.raises(FormatError, match="does not exist"):
        safe_load(tmp_path / "missing.pkl")
