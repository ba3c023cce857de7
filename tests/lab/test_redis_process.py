"""The lab's private redis-server: Unix socket only (mode 0700 on the socket), no TCP
port, answers PING, stops idempotently; a binary that exits at once is a clear error."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.lab.conftest import REDIS_SERVER
from tokenlib.lab.redis_process import RedisProcess


@pytest.mark.redis
def test_start_ping_and_stop(tmp_path: Path) -> None:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH")
    import redis

    process = RedisProcess(REDIS_SERVER, tmp_path)
    process.start()
    try:
        assert process.url == f"unix://{tmp_path / 'redis.sock'}"
        mode = stat.S_IMODE(process.socket_path.stat().st_mode)
        assert mode & 0o077 == 0  # only the owner may connect
        client = redis.Redis(unix_socket_path=str(process.socket_path))
        assert client.ping()
        assert client.config_get("port")["port"] == "0"
        client.close()
        running = process.process
        assert running is not None
    finally:
        process.stop()
    assert running.poll() is not None
    process.stop()  # idempotent
    assert "stopped" in repr(process)


def test_a_binary_that_exits_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited with code"):
        RedisProcess("/bin/false", tmp_path).start()
