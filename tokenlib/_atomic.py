"""Atomic file writes: a temporary file in the target folder, fsync, then ``os.replace``.

A reader sees the old file or the complete new one, never a half-written one. The temporary
file gets its final mode before any byte is written, so a private key (0600) is never
briefly readable by others; on any error the temporary file is removed and the target is
left untouched. Standard library only, so the core may use it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_file_set", "atomic_path", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def _temp_beside(target: Path, mode: int) -> Iterator[tuple[int, Path]]:
    """The open descriptor and path of a ``mode`` temp file beside ``target``; see module doc."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, mode)
            yield fd, tmp
            os.fsync(fd)  # the inode the caller wrote, by this descriptor or by name
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    For writers that need a file name (``DataFrame.to_csv``, ``Figure.savefig``): they write
    the yielded path, which already has ``mode``. If the block raises, the temporary file is
    removed and ``path`` is not touched.
    """
    with _temp_beside(Path(path), mode) as (_, tmp):
        yield tmp


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically with file mode ``mode``; return the path."""
    target = Path(path)
    with _temp_beside(target, mode) as (fd, _), open(fd, "wb", closefd=False) as fh:
        fh.write(data)
    return target


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, mode: int = 0o644, encoding: str = "utf-8"
) -> Path:
    """Write ``text`` to ``path`` atomically (``encoding``, newlines as given); return the path."""
    return atomic_write_bytes(path, text.encode(encoding), mode=mode)


@contextlib.contextmanager
def atomic_file_set(
    folder: str | os.PathLike[str], *, mode: int = 0o644
) -> Iterator[Callable[[str], Path]]:
    """Write several files of ``folder`` as one change (an inventory's tables must match).

    Yields ``stage(name) -> Path``: a temporary path beside ``folder/name``, already with
    ``mode``, for the caller to write (by name or through another atomic writer). When
    the block ends without error every staged file is fsynced and only then renamed onto
    its name; if the block raises, every temporary file is removed and no file in
    ``folder`` has changed. A failure while writing (disk full, a table that does not
    render) therefore leaves the old set whole; only a crash during the renames
    themselves could mix old and new files. ``folder`` is created if missing.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    staged: dict[str, Path] = {}

    def stage(name: str) -> Path:
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"a staged file needs a plain file name, got {name!r}")
        if name in staged:
            raise ValueError(f"{name!r} is staged twice")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=target)
        staged[name] = Path(tmp)
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return staged[name]

    try:
        yield stage
        for tmp in staged.values():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        raise
    for name, tmp in staged.items():
        os.replace(tmp, target / name)
