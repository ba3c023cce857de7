"""Redis replay store: round trips, throughput and memory per entry.

Against a private ``redis-server`` (loopback, no persistence, ``noeviction``) started
here, in one run:

* ``round_trips_per_check``: commands the server ran per ``check_and_store`` (from
  ``INFO commandstats``; 1 = one ``EVALSHA``), for the blocking and the asyncio client;
* ``sync_us`` / ``sync_ops_per_s``: one thread, one ``check_and_store`` (with an owner, so
  the quota path runs) after another; ``set_nx_us``: the pre-hardening store's bare
  ``SET key 1 NX PX`` on the same connection, the floor for one round trip;
* ``async_ops_per_s``: the asyncio client with 16 concurrent callers on one event loop;
* ``bytes_per_entry`` / ``bytes_per_entry_no_owner``: growth of ``used_memory`` per live
  entry with and without an owner (an owner adds a sorted-set member).

``run(quick=False) -> dict`` writes ``benchmarks/results/redis.json`` atomically.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import redis
import redis.asyncio.connection
import redis.connection

from benchmarks._common import machine_info, measure, write_result
from tokenlib.integrations.redis import AsyncRedisReplayCache, RedisReplayCache

NOW = 1_700_000_000.0


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench_redis needs redis-server on PATH")
    port = _port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    argv += ["no", "--dir", directory, "--maxmemory-policy", "noeviction"]
    # The binary found on PATH with fixed arguments: no outside input reaches argv.
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url).ping():
                return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def _keys(n: int, tag: str) -> list[str]:
    return [hashlib.sha256(f"{tag}{i}".encode()).hexdigest() for i in range(n)]


class _Sends:
    """Counts requests the client writes (a round trip each: every write awaits a reply)."""

    def __init__(self, cls: Any) -> None:
        self.cls, self.count = cls, 0
        self.original = cls.send_packed_command

    def __enter__(self) -> _Sends:
        original = self.original

        def counted(conn: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(conn, *args, **kwargs)

        self.cls.send_packed_command = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self.cls.send_packed_command = self.original


def run(quick: bool = False) -> dict[str, Any]:
    n = 2_000 if quick else 20_000
    with tempfile.TemporaryDirectory() as directory:
        proc, url = _start(directory)
        try:
            raw = redis.Redis.from_url(url)
            cache = RedisReplayCache.from_url(url, max_entries_per_owner=None)
            cache.initialize()
            quota_cache = RedisReplayCache.from_url(url, prefix="q:")
            quota_cache.initialize()
            quota_cache.check_and_store("warm", expires_at=NOW + 60, now=NOW, owner="w")

            # Round trips: commands the server executed per check (blocking client).
            with _Sends(redis.connection.Connection) as sends:
                for key in _keys(200, "rt"):
                    quota_cache.check_and_store(key, expires_at=NOW + 300, now=NOW, owner="rt")
            sync_rt = sends.count / 200

            keys = iter(_keys(n * 3, "t"))
            owners = [f"owner-{i}" for i in range(64)]
            counter = iter(range(10**9))
            set_keys = iter(_keys(n * 3, "s"))
            client = redis.Redis.from_url(url)
            per_call = measure(
                {
                    "check_and_store": lambda: quota_cache.check_and_store(
                        next(keys),
                        expires_at=NOW + 300,
                        now=NOW,
                        owner=owners[next(counter) % 64],
                    ),
                    "set_nx": lambda: client.set(next(set_keys), b"1", nx=True, px=300_000),
                },
                number=n // 10,
                repeat=5,
            )
            client.close()

            async def async_part() -> tuple[float, float]:
                acache = AsyncRedisReplayCache.from_url(url, prefix="a:")
                await acache.initialize()
                await acache.check_and_store("warm", expires_at=NOW + 60, now=NOW, owner="w")
                with _Sends(redis.asyncio.connection.Connection) as sends:
                    for key in _keys(200, "art"):
                        await acache.check_and_store(key, expires_at=NOW + 300, now=NOW, owner="a")
                rt = sends.count / 200
                todo = iter(_keys(n, "ak"))

                async def worker(w: int) -> None:
                    for key in todo:
                        await acache.check_and_store(
                            key, expires_at=NOW + 300, now=NOW, owner=f"aw{w}"
                        )

                started = time.perf_counter()
                await asyncio.gather(*(worker(w) for w in range(16)))
                took = time.perf_counter() - started
                await acache.aclose()
                return rt, n / took

            async_rt, async_ops = asyncio.run(async_part())

            # Memory per live entry, with and without an owner, in fresh prefixes.
            m0 = int(raw.info("memory")["used_memory"])
            mem_owner = RedisReplayCache.from_url(url, prefix="m1:", max_entries_per_owner=10**6)
            mem_owner.initialize()
            m1 = int(raw.info("memory")["used_memory"])
            for i, key in enumerate(_keys(n, "mo")):
                mem_owner.check_and_store(key, expires_at=NOW + 300, now=NOW, owner=f"o{i % 100}")
            m2 = int(raw.info("memory")["used_memory"])
            mem_plain = RedisReplayCache.from_url(url, prefix="m2:", max_entries_per_owner=None)
            mem_plain.initialize()
            m3 = int(raw.info("memory")["used_memory"])
            for key in _keys(n, "mp"):
                mem_plain.check_and_store(key, expires_at=NOW + 300, now=NOW)
            m4 = int(raw.info("memory")["used_memory"])
            markers = (m1 - m0) / 256
            for c in (cache, quota_cache, mem_owner, mem_plain):
                c.close()
            raw.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    result = {
        "machine": machine_info(),
        "entries": n,
        "round_trips_per_check": {"sync": sync_rt, "async": async_rt},
        "sync_us": per_call["check_and_store"],
        "sync_ops_per_s": round(1e6 / per_call["check_and_store"]["median"]),
        "set_nx_us": per_call["set_nx"],
        "async_ops_per_s_16_callers": round(async_ops),
        "bytes_per_entry": round((m2 - m1) / n, 1),
        "bytes_per_entry_no_owner": round((m4 - m3) / n, 1),
        "bytes_per_generation_marker": round(markers, 1),
    }
    write_result("redis", result)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
