"""tora.io: atomic writes leave the old file or the new one and nothing else; hashes are known."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tora.errors import CheckpointError
from tora.io import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    file_sha256,
    read_json_object,
    text_sha256,
)

# SHA-256 of b"abc" (FIPS 180-2, appendix B.1).
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_writes_replace_and_leave_no_temporary_files(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "sub" / "a.bin", b"one")  # parents are created
    atomic_write_bytes(tmp_path / "sub" / "a.bin", b"two")
    atomic_write_text(tmp_path / "t.txt", "é\n")
    atomic_write_json(tmp_path / "b.json", {"z": 1, "a": [1, 2]})
    with atomic_write(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"via a path")
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"two"
    assert (tmp_path / "t.txt").read_bytes() == "é\n".encode()
    assert (tmp_path / "b.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "z": 1\n}\n'
    assert (tmp_path / "c.bin").read_bytes() == b"via a path"
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "a.bin",
        "b.json",
        "c.bin",
        "sub",
        "t.txt",
    ]


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    atomic_write_bytes(tmp_path / "a", b"")
    with atomic_write(tmp_path / "b") as tmp:
        tmp.write_bytes(b"")
    mode = (tmp_path / "plain").stat().st_mode & 0o777
    assert (tmp_path / "a").stat().st_mode & 0o777 == mode
    assert (tmp_path / "b").stat().st_mode & 0o777 == mode


def test_a_failed_replace_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"old")

    def failing_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "a.bin", b"new")
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_writer_that_fails_midway_changes_nothing(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"old")
    with pytest.raises(RuntimeError, match="killed"), atomic_write(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="left no file"), atomic_write(tmp_path / "x"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_hashes_are_the_standard_ones(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert file_sha256(tmp_path / "f") == ABC_SHA256
    assert text_sha256("abc") == ABC_SHA256
    with pytest.raises(CheckpointError, match="no such file"):
        file_sha256(tmp_path / "missing")


def test_read_json_object_names_each_fault(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    with pytest.raises(CheckpointError, match="nothing here"):
        read_json_object(p, missing="nothing here")
    p.write_text("{broken")
    with pytest.raises(CheckpointError, match="corrupt JSON"):
        read_json_object(p)
    p.write_text("[1]")
    with pytest.raises(CheckpointError, match="expected a JSON object, got list"):
        read_json_object(p)
    p.write_text('{"format": "other", "version": 1}')
    with pytest.raises(CheckpointError, match="not a tora run"):
        read_json_object(p, format_name="tora-run", what="run")
    p.write_text('{"format": "tora-run", "version": 2}')
    with pytest.raises(CheckpointError, match="version 2 is not supported"):
        read_json_object(p, format_name="tora-run", version=1, what="run")
    assert read_json_object(p, format_name="tora-run", version=2) == {
        "format": "tora-run",
        "version": 2,
    }
