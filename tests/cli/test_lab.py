"""``tokenlib lab run``: outcomes, mismatches, exit codes (the lab itself is mocked here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli._helpers import run, run_json
from tokenlib.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def test_lab_run_reports_mismatches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pd = pytest.importorskip("pandas")
    import tokenlib.lab.runner as runner

    frame = pd.DataFrame(
        [{"binding": "dpop", "proxy_mode": "terminate", "attack": "baseline", "accepted": True}]
    )
    calls: list[dict[str, Any]] = []

    def fake_run_lab(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return frame

    monkeypatch.setattr(runner, "run_lab", fake_run_lab)
    monkeypatch.setattr(runner, "check_outcomes", lambda df: [])
    code, record = run_json(capsys, "lab", "run", "--out", str(tmp_path / "r.csv"), "--no-redis")
    assert code == EXIT_OK
    assert calls == [{"out": str(tmp_path / "r.csv"), "seed": 0, "redis": False}]
    assert record["results"][0]["binding"] == "dpop"
    monkeypatch.setattr(runner, "check_outcomes", lambda df: ["dpop/terminate/baseline"])
    code, _, err = run(capsys, "lab", "run")
    assert code == EXIT_INVALID
    assert "unexpected outcome: dpop/terminate/baseline" in err


def test_lab_run_table_escapes_what_servers_answered(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cells hold server answers (error codes, descriptions): a control sequence in one is
    shown escaped in the table and kept intact in --json."""
    pd = pytest.importorskip("pandas")
    import tokenlib.lab.runner as runner

    evil = "invalid_token\x1b]0;all OK\x07\u202e"
    frame = pd.DataFrame(
        [{"binding": "dpop", "attack": "replay", "accepted": False, "error": evil, "status": 401}]
    )
    monkeypatch.setattr(runner, "run_lab", lambda **kwargs: frame)
    monkeypatch.setattr(runner, "check_outcomes", lambda df: [f"dpop/{evil}"])
    code, out, err = run(capsys, "lab", "run", "--no-redis")
    assert code == EXIT_INVALID
    for text in (out, err):
        assert not [ch for ch in text if ch != "\n" and not ch.isprintable()]
    assert "invalid_token\\x1b]0;all OK\\x07\\u202e" in out
    assert "unexpected outcome: dpop/invalid_token\\x1b]0;all OK" in err
    code, record = run_json(capsys, "lab", "run", "--no-redis")
    assert code == EXIT_INVALID
    assert record["results"][0]["error"] == evil
    assert record["mismatches"] == [f"dpop/{evil}"]


def test_lab_run_without_its_extras_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tokenlib.lab.runner", None)
    code, out, err = run(capsys, "lab", "run", "--json")
    assert code == EXIT_USAGE
    assert out == ""
    assert "the lab needs the 'lab' and 'analysis' extras" in err


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_lab_run_stops_on_sigterm_and_sighup_like_ctrl_c(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, signame: str
) -> None:
    """Issue 11: SIGTERM/SIGHUP left the lab's redis-server and private keys behind, while
    Ctrl-C was clean. Under `tokenlib lab run` both now unwind the lab like Ctrl-C."""
    import os
    import signal

    import tokenlib.lab.runner as runner

    cleaned: list[str] = []

    def fake_run_lab(**kwargs: Any) -> Any:
        try:
            os.kill(os.getpid(), getattr(signal, signame))
            raise AssertionError("the signal did not interrupt the lab")
        finally:
            cleaned.append("servers, redis-server and key folder")

    before = signal.getsignal(getattr(signal, signame))
    monkeypatch.setattr(runner, "run_lab", fake_run_lab)
    code, out, err = run(capsys, "lab", "run", "--no-redis")
    assert code == 130
    assert cleaned == ["servers, redis-server and key folder"]
    assert out == ""
    assert err == "tokenlib: interrupted\n"
    assert signal.getsignal(getattr(signal, signame)) is before  # handler restored


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_real_lab_run_cleans_up_on_signal(tmp_path: Path, signame: str) -> None:
    """The measured failure end to end: `tokenlib lab run` with its private redis-server,
    stopped by SIGTERM/SIGHUP, leaves neither the redis-server nor the key folder."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("uvicorn")
    if shutil.which("redis-server") is None or not Path("/proc").is_dir():
        pytest.skip("needs redis-server and /proc")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    script = "import sys; from tokenlib.cli import main; sys.exit(main(['lab', 'run']))"
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    redis: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            redis = [
                c for c in _children(proc.pid) if "redis" in Path(f"/proc/{c}/cmdline").read_text()
            ]
            if redis and list(tmp_path.glob("tokenlib-lab-*")):
                break
            time.sleep(0.1)
        if not redis:
            pytest.skip("the lab started no private redis-server here")
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-2000:]
        assert err.rstrip().endswith("tokenlib: interrupted")
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in redis) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in redis), "the lab's redis-server was left running"
        assert not list(tmp_path.glob("tokenlib-lab-*")), "the lab's key folder was left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for pid in redis:  # only the redis-server this test's lab started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
