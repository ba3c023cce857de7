"""Atomic writes: final mode, replace-in-place, and nothing changed or left behind on error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tokenlib._atomic import atomic_file_set, atomic_path, atomic_write_bytes, atomic_write_text


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_write_bytes_sets_mode(tmp_path: Path, mode: int) -> None:
    target = atomic_write_bytes(tmp_path / "f.bin", b"\x00data", mode=mode)
    assert target == tmp_path / "f.bin"
    assert target.read_bytes() == b"\x00data"
    assert target.stat().st_mode & 0o777 == mode
    assert _names(tmp_path) == ["f.bin"]


def test_default_mode_is_0644(tmp_path: Path) -> None:
    assert atomic_write_bytes(tmp_path / "f", b"x").stat().st_mode & 0o777 == 0o644
    with atomic_path(tmp_path / "g") as tmp:
        tmp.write_bytes(b"y")
    assert (tmp_path / "g").stat().st_mode & 0o777 == 0o644


def test_replaces_existing_file_and_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    target.chmod(0o644)
    atomic_write_bytes(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert _names(tmp_path) == ["key.pem"]


def test_write_text_encodes_and_keeps_newlines(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "t.txt", "é\r\nz\n")
    assert target.read_bytes() == "é\r\nz\n".encode()
    latin = atomic_write_text(tmp_path / "l.txt", "é", encoding="latin-1")
    assert latin.read_bytes() == b"\xe9"


def test_atomic_path_yields_temp_in_target_folder(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with atomic_path(target, mode=0o600) as tmp:
        assert tmp.parent == tmp_path
        assert tmp != target
        assert tmp.stat().st_mode & 0o777 == 0o600
        tmp.write_text("a,b\n")
        assert target.read_text() == "old"  # not visible until the block ends
    assert target.read_text() == "a,b\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert _names(tmp_path) == ["out.csv"]


def test_atomic_path_error_leaves_target_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "fig.png"
    target.write_bytes(b"previous")

    def write_half() -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        write_half()
    assert target.read_bytes() == b"previous"
    assert _names(tmp_path) == ["fig.png"]


def test_atomic_path_error_without_existing_target(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "new.svg"):
        raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_replace_failure_leaves_target_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "r.json"
    target.write_text("{}")

    def boom(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b'{"a": 1}')
    assert target.read_text() == "{}"
    assert _names(tmp_path) == ["r.json"]


def test_missing_folder_is_an_error_not_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "absent" / "f", b"x")
    assert _names(tmp_path) == []


def test_accepts_str_paths(tmp_path: Path) -> None:
    target = atomic_write_text(str(tmp_path / "s.txt"), "ok")
    assert isinstance(target, Path)
    assert target.read_text() == "ok"


def test_file_set_replaces_every_file_together(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("old a")
    with atomic_file_set(tmp_path, mode=0o600) as stage:
        first = stage("a.csv")
        first.write_text("new a")
        atomic_write_text(stage("b.csv"), "new b")  # another atomic writer onto a staged path
        assert (tmp_path / "a.csv").read_text() == "old a"  # nothing replaced yet
        assert first.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a.csv").read_text() == "new a"
    assert (tmp_path / "b.csv").read_text() == "new b"
    assert _names(tmp_path) == ["a.csv", "b.csv"]


def test_file_set_failing_midway_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "flows.csv").write_text("old flows")
    (tmp_path / "services.csv").write_text("old services")

    def write_set() -> None:
        with atomic_file_set(tmp_path) as stage:
            stage("flows.csv").write_text("new flows")
            stage("services.csv").write_text("new serv")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_set()
    assert (tmp_path / "flows.csv").read_text() == "old flows"
    assert (tmp_path / "services.csv").read_text() == "old services"
    assert _names(tmp_path) == ["flows.csv", "services.csv"]  # no temporary file left


@pytest.mark.parametrize("name", ["", ".", "..", "sub/x.csv", "../x.csv", "/abs.csv"])
def test_file_set_refuses_names_that_are_not_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"), atomic_file_set(tmp_path) as stage:
        stage(name)
    assert _names(tmp_path) == []


def test_file_set_refuses_a_name_staged_twice_and_creates_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "out"

    def stage_twice() -> None:
        with atomic_file_set(folder) as stage:
            stage("a.csv").write_text("x")
            stage("a.csv")

    with pytest.raises(ValueError, match="staged twice"):
        stage_twice()
    assert _names(folder) == []
