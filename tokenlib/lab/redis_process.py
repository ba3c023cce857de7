"""A private ``redis-server`` for the live lab: Unix socket only, no persistence.

:class:`RedisProcess` starts the binary with ``--port 0`` (no TCP listener), a socket
readable only by the current user (``--unixsocketperm 700``) inside the lab's private
folder, and no RDB/AOF files, then waits until it answers ``PING``. :meth:`stop` is
idempotent and escalates from SIGTERM to SIGKILL. The lab's environment registers
``stop`` on its exit stack, so the process ends with the lab — on success, error, Ctrl-C,
and SIGTERM/SIGHUP (see :func:`tokenlib.lab.environment.stop_on_signals`).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

__all__ = ["RedisProcess"]


class RedisProcess:
    """A private ``redis-server`` on a Unix socket (no TCP port), without persistence."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.socket_path = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = f"pid={self.process.pid}" if self.process is not None else "stopped"
        return f"RedisProcess({state}, socket={str(self.socket_path)!r})"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait (bounded) until it answers; ``RuntimeError`` when it
        exits or does not answer within ``timeout`` seconds (the process is stopped)."""
        import redis

        self.process = subprocess.Popen(  # noqa: S603 (absolute path from shutil.which)
            [
                self.binary,
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"redis-server exited with code {code}")
            if self.socket_path.exists():
                client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                finally:
                    client.close()
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)  # bounded start-up poll

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
