"""A real three-node Redis Cluster: three redis-server processes, the 16,384 slots split
between them (``test_redis_cluster.py`` covers slot routing on one node).

The replay store's keys spread over every node; restarting one node empty (a master without
persistence and without a replica — its cluster configuration survives, its data does not)
loses only that node's buckets: replays whose entries lived there are refused with 503 for
one acceptance window (RFC 9449 §11.1: the store cannot tell a replay from a fresh proof),
replays whose entries live on the other nodes are still refused as replays, and fresh proofs
are accepted again once ``iat_future`` has passed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.integrations._redis_servers import ConfiguredRedis
from tests.lab.conftest import REDIS_SERVER, free_port
from tokenlib.errors import ReplayStateUnavailable
from tokenlib.integrations.redis import DEFAULT_ACCEPTANCE_WINDOW, RedisReplayCache

pytestmark = [pytest.mark.redis, pytest.mark.slow]

NOW = 1_700_000_000.0
SLOTS = ((0, 5460), (5461, 10922), (10923, 16383))
OWNERS = 120  # one proof each; owners' hash tags spread them over the three nodes


@dataclass
class Node:
    server: ConfiguredRedis
    bus_port: int
    first_slot: int
    last_slot: int

    def holds(self, slot: int) -> bool:
        return self.first_slot <= slot <= self.last_slot

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.server.url)


def _wait_ok(nodes: list[Node]) -> None:
    """Until every node reports the cluster ``ok`` and knows all three nodes (bounded)."""
    deadline = time.monotonic() + 30
    while True:
        states = []
        for node in nodes:
            with node.client() as raw:
                info = raw.cluster("info")
            states.append(
                info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == len(nodes)
            )
        if all(states):
            return
        assert time.monotonic() < deadline, f"cluster not ok after 30 s: {states}"
        time.sleep(0.1)  # bounded wait for gossip to settle, not a clock dependency


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server)")
    started: list[Node] = []
    try:
        for index, (first, last) in enumerate(SLOTS):
            folder = tmp_path / f"node{index}"
            folder.mkdir()
            bus = free_port()
            server = ConfiguredRedis(
                binary=REDIS_SERVER,
                directory=folder,
                extra=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(folder / "nodes.conf"),
                    "--cluster-port",
                    str(bus),
                    "--cluster-node-timeout",
                    "5000",
                ),
            )
            server.start()
            started.append(Node(server, bus, first, last))
        for node in started:
            with node.client() as raw:
                raw.execute_command("CLUSTER", "ADDSLOTSRANGE", node.first_slot, node.last_slot)
        with started[0].client() as raw:
            for other in started[1:]:
                raw.execute_command(
                    "CLUSTER", "MEET", "127.0.0.1", other.server.port, other.bus_port
                )
        _wait_ok(started)
        yield started
    finally:
        for node in started:
            node.server.stop()


def _key(i: int) -> str:
    return hashlib.sha256(f"proof{i}".encode()).hexdigest()


def test_entries_spread_over_nodes_and_a_node_restarted_empty_loses_only_its_own(
    nodes: list[Node],
) -> None:
    entries = [(_key(i), f"jkt-{i}") for i in range(OWNERS)]
    expires_at = NOW + 300
    with RedisReplayCache.from_url(nodes[0].server.url, cluster=True) as cache:
        assert cache.initialize() is True
        for key, owner in entries:
            assert cache.check_and_store(key, expires_at=expires_at, now=NOW, owner=owner)
        # Every node holds some of the 256 generation markers and some entries.
        with nodes[0].client() as raw:
            slot_of = {
                (key, owner): raw.cluster("keyslot", cache.redis_key(key, owner=owner))
                for key, owner in entries
            }
        home = {entry: next(n for n in nodes if n.holds(slot)) for entry, slot in slot_of.items()}
        for node in nodes:
            with node.client() as raw:
                assert raw.dbsize() > 0
            assert any(where is node for where in home.values())

        victim = nodes[1]
        victim.server.restart_empty()
        _wait_ok(nodes)
        with victim.client() as raw:
            assert raw.dbsize() == 0  # its slots are back, its data is not

        outcome: dict[str, list[str]] = {"victim": [], "others": []}
        for entry in entries:
            key, owner = entry
            try:
                again = cache.check_and_store(key, expires_at=expires_at, now=NOW + 10, owner=owner)
                result = "accepted" if again else "replay"
            except ReplayStateUnavailable as error:
                result = f"refused {error.status_code}"
            outcome["victim" if home[entry] is victim else "others"].append(result)
        assert outcome["victim"], "no entry lived on the restarted node"
        assert set(outcome["victim"]) == {"refused 503"}  # never "accepted": no replay got in
        assert set(outcome["others"]) == {"replay"}

        # A fresh proof on the restarted node's buckets waits out iat_future (60 s), then
        # passes: its entry would be kept until now + iat_past + iat_future (360 s).
        victim_owner = next(owner for (_, owner), node in home.items() if node is victim)
        lost_at = NOW + 10
        with pytest.raises(ReplayStateUnavailable):
            cache.check_and_store(
                _key(10_000), expires_at=lost_at + 59 + 360, now=lost_at + 59, owner=victim_owner
            )
        assert cache.check_and_store(
            _key(10_001), expires_at=lost_at + 60 + 360, now=lost_at + 60, owner=victim_owner
        )
        assert DEFAULT_ACCEPTANCE_WINDOW == 360 + 60
