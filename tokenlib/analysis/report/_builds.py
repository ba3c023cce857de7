"""Temporary build folders (owner pid, stale clean-up) and the notebook child processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tokenlib.analysis.report._base import _OWNER_FILE, _UNOWNED_GRACE_S, STALE_AFTER_S

# ---------------------------------------------------------------------------------------------
# Temporary build folders: owner file, stale clean-up.


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(folder: Path, now: float) -> bool:
    try:
        age = now - folder.stat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    owner: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        owner = json.loads((folder / _OWNER_FILE).read_text(encoding="utf-8"))
    pid = owner.get("pid")
    if pid is None:  # older builds named the folder .<out>.tmp-<random>; .old-<pid>-<hex> too
        match = re.match(r"^\.[^/]*\.(?:tmp|old)-(\d+)-", folder.name)
        pid = int(match.group(1)) if match else None
    if pid is None:
        return age > _UNOWNED_GRACE_S
    if owner.get("host") not in (None, socket.gethostname()):
        return False
    return not _owner_alive(int(pid))


def clean_stale_builds(out_dir: Path) -> list[Path]:
    """Remove ``.<out>.tmp-*`` / ``.<out>.old-*`` folders next to ``out_dir`` left by dead runs.

    A folder is stale when its owner process (``.owner.json`` or the pid in its name) is gone,
    or when it is older than :data:`STALE_AFTER_S`. Returns the folders removed.
    """
    removed: list[Path] = []
    parent = out_dir.parent
    if not parent.is_dir():
        return removed
    now = time.time()
    for pattern in (f".{out_dir.name}.tmp-*", f".{out_dir.name}.old-*"):
        for folder in parent.glob(pattern):
            if folder.is_dir() and not folder.is_symlink() and _stale(folder, now):
                shutil.rmtree(folder, ignore_errors=True)
                if not folder.exists():
                    removed.append(folder)
    return removed


# ---------------------------------------------------------------------------------------------
# Child processes: papermill dies with the build, and is killed when the build stops.

_CHILDREN: set[subprocess.Popen[str]] = set()
_CHILDREN_LOCK = threading.Lock()

# Run papermill with a parent-death signal (Linux prctl PR_SET_PDEATHSIG = 1): if the build is
# killed, even with SIGKILL, papermill is killed too, and its kernel's parent poller (ipykernel
# watches JPY_PARENT_PID) shuts the kernel down within about a second.
_CHILD_BOOT = """\
import os, signal, sys, runpy
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(70)
sys.argv = ["papermill", *sys.argv[2:]]
runpy.run_module("papermill", run_name="__main__", alter_sys=True)
"""


def _kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, OSError):
        proc.kill()


def _kill_children() -> None:
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for proc in children:
        _kill(proc)
