"""The lab stops as cleanly on SIGTERM and SIGHUP as on Ctrl-C: its private redis-server is
stopped and the folder with its private keys removed (a real ``tokenlib lab run`` process),
and :func:`stop_on_signals` restores and re-delivers the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.conftest import REDIS_SERVER
from tokenlib.lab.environment import LabSignal, stop_on_signals


@pytest.fixture
def recorded() -> Iterator[list[int]]:
    seen: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: seen.append(signum))
    try:
        yield seen
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_signal_unwinds_then_reaches_the_previous_handler(recorded: list[int]) -> None:
    cleaned: list[str] = []

    def lab() -> None:
        with stop_on_signals():
            try:
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(5)  # interrupted by the handler long before this ends
            finally:
                cleaned.append("done")

    with pytest.raises(LabSignal) as info:
        lab()
    assert info.value.signum == signal.SIGHUP
    assert cleaned == ["done"]
    assert recorded == [signal.SIGHUP]  # re-delivered after the clean-up
    assert signal.getsignal(signal.SIGHUP) is not None


def test_handlers_are_restored_without_a_signal(recorded: list[int]) -> None:
    before = signal.getsignal(signal.SIGHUP)
    with stop_on_signals():
        assert signal.getsignal(signal.SIGHUP) is not before
    assert signal.getsignal(signal.SIGHUP) is before
    assert recorded == []


def test_ignored_signals_stay_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_other_threads_are_left_alone() -> None:
    seen: list[object] = []

    def worker() -> None:
        with stop_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before]


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        out.update(int(p) for p in path.read_text().split())
    return out


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("entry", ["cli", "run_lab"])
def test_lab_run_stopped_by_a_signal_cleans_up(tmp_path: Path, signum: int, entry: str) -> None:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH")
    temp = tmp_path / "tmp"
    temp.mkdir()
    log = tmp_path / "stderr.txt"
    out = tmp_path / "lab.csv"
    if entry == "cli":  # exactly what the `tokenlib` console script runs (tokenlib.cli:main)
        code_text = "import sys; from tokenlib.cli import main; sys.exit(main())"
        command = [sys.executable, "-c", code_text, "lab", "run", "--out", str(out)]
    else:  # the library call, without the CLI's own handlers
        code_text = f"from tokenlib.lab.runner import run_lab; run_lab(out={str(out)!r})"
        command = [sys.executable, "-c", code_text]
    with log.open("wb") as err:
        process = subprocess.Popen(
            command,
            env={**os.environ, "TMPDIR": str(temp)},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # the signal goes to the lab only, as from `kill PID`
        )
    try:
        deadline = time.monotonic() + 60
        while not list(temp.glob("tokenlib-lab-*/redis.sock")):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the lab did not start redis-server"
            time.sleep(0.05)  # bounded wait for the subprocess to start
        redis_pids = {
            pid
            for pid in _children(process.pid)
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
        }
        assert len(redis_pids) == 1
        assert list(temp.glob("tokenlib-lab-*/pki/*.key"))  # private keys on disk
        process.send_signal(signum)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Ended by the signal after the clean-up: killed by it, or the CLI's "interrupted" (130)
    # when the command line installed its own handler (run_lab re-delivers to it).
    assert code in ((-signum, 130) if entry == "cli" else (-signum,)), log.read_text()
    [pid] = redis_pids
    assert not Path(f"/proc/{pid}").exists()
    assert list(temp.iterdir()) == []  # the lab folder and its private keys are gone
    assert not out.exists()  # nothing half-written
