"""redis-server processes with extra settings for the replay-store tests (eviction policy,
maxmemory, disabled CONFIG/INFO, a one-node cluster), all on 127.0.0.1 in tmp_path."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.lab.conftest import RedisServer, free_port


class _PortTaken(Exception):
    pass


@dataclass
class ConfiguredRedis(RedisServer):
    """A :class:`RedisServer` started with ``extra`` command-line settings."""

    extra: tuple[str, ...] = field(default=())

    def start(self) -> None:
        """Start; if the port was taken meanwhile (free_port races other processes on a
        shared machine), try again on a new port — except for a restart, which must
        keep its port."""
        fresh = not hasattr(self, "_started_once")
        for attempt in range(5):
            try:
                self._start_once()
            except _PortTaken:
                if not fresh and attempt < 4:
                    time.sleep(0.2)  # bounded: the old process's port is being released
                    continue
                if fresh and attempt < 4:
                    self.port = free_port()
                    continue
                raise RuntimeError(
                    f"redis-server exited at start {attempt + 1} times (port taken or bad "
                    f"settings {self.extra!r})"
                ) from None
            self._started_once = True
            return

    def _start_once(self) -> None:
        if self.process is not None:
            return
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
            *self.extra,
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise _PortTaken
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)  # bounded wait for the server to start, not a clock dependency
        self.stop()
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def restart_empty(self) -> None:
        """Stop and start again on the same port without persistence: all data gone."""
        self.stop()
        self.start()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the server (a hang: connections stay open, nothing answers)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
        super().stop()
