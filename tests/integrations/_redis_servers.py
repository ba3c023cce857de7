"""redis-server processes with extra settings for the replay-store tests (eviction policy,
maxmemory, disabled CONFIG/INFO, a one-node cluster), all on 127.0.0.1 in tmp_path."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.lab.conftest import RedisExited, RedisServer, free_port


@dataclass
class ConfiguredRedis(RedisServer):
    """A :class:`RedisServer` that retries its start on a port taken meanwhile."""

    def start(self) -> None:
        """Start; if the port was taken meanwhile (free_port races other processes on a
        shared machine), try again on a new port — except for a restart, which must
        keep its port."""
        fresh = not hasattr(self, "_started_once")
        for attempt in range(5):
            try:
                super().start()
            except RedisExited:
                if attempt == 4:
                    raise
                if fresh:
                    self.port = free_port()
                else:
                    time.sleep(0.2)  # bounded: the old process's port is being released
                continue
            self._started_once = True
            return

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
