"""The Redis replay store's shared logic, free of I/O: key layout, the Lua script, settings.

:mod:`tokenlib.integrations.redis` has a blocking and an asyncio client; both build the
same :class:`Call` here, send it in one ``EVALSHA`` round trip, and hand the reply back
to :func:`outcome`. The eviction-policy check on every new connection is the same
:class:`SettingsProbe` for both. Nothing here imports ``redis``.

Key layout (``P`` = prefix, ``bb`` = bucket, two hex digits, ``{bb}`` a Redis Cluster hash
tag so an owner's keys and its bucket's generation marker share one slot)::

    P{bb}:g            hash, no expiry: gen (random id), n (entries written), lost (epoch s)
    P{bb}:j:<key>      string "1", TTL = expires_at - now      (the replay entry)
    P{bb}:o:<owner>    sorted set member <key>[:32], score expires_at; TTL = its longest entry

``bb`` is the first byte of SHA-256(owner) (of the key when there is no owner), so an
owner's quota counter and its entries are in the same slot and one script updates them
atomically; ``<owner>`` is the first 32 hex digits of SHA-256(owner).

Memory (``benchmarks/bench_redis.py``, redis-server 7.0, ``used_memory`` growth per live
entry): about 195 B per entry without an owner, 275 B with one (the sorted-set member
adds ~80 B), ±30 % with allocator rounding; 256 markers of ~300 B per prefix. Entries
live one window, so size ``maxmemory`` as peak proofs/s × window × ~300 B.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from tokenlib.dpop import DPoPPolicy
from tokenlib.errors import ReplayQuotaExceeded, ReplayStateUnavailable

__all__ = [
    "BUCKETS",
    "CHECK_AND_STORE_LUA",
    "SAFE_POLICIES",
    "SPREAD_LOSS_LUA",
    "Call",
    "SettingsProbe",
    "UnsafeRedisSettings",
    "acceptance_window_for",
    "outcome",
]

#: Buckets (hash tags) keys are spread over; one generation marker each.
BUCKETS: Final = 256
_MAX_KEY_LENGTH: Final = 64
#: The only ``maxmemory-policy`` that never drops a key with a TTL (replay entries have one).
SAFE_POLICIES: Final = frozenset({"noeviction"})

# One round trip per proof. KEYS share the hash tag {bb}; ARGV are plain strings.
# Order matters for fail-closed behaviour under maxmemory + noeviction: the first write is
# refused with OOM before anything changed, and Redis lets a script that has written
# finish, so no half-applied state is ever left behind.
CHECK_AND_STORE_LUA: Final = """
-- KEYS[1] generation marker (hash), KEYS[2] replay entry, KEYS[3] owner's sorted set
-- ARGV[1] now, [2] expires_at (epoch seconds), [3] ttl ms, [4] acceptance window s,
-- [5] quota (0 = none), [6] member, [7] fresh generation id,
-- [8] generation the caller saw last ('' = none), [9] entry count it saw with it
local m = redis.call('HMGET', KEYS[1], 'gen', 'n', 'lost')
local gen, n, lost = m[1], tonumber(m[2] or '0'), m[3]
local flag = 0
if not gen then
  -- no marker: restarted empty, failover to a replica without the data, FLUSHALL,
  -- or first use. None can be told apart here, so all count as a loss now.
  flag = 1
elseif gen == ARGV[8] and n < tonumber(ARGV[9]) then
  -- fewer writes than this caller already saw: an older snapshot or a lagging replica.
  flag = 2
end
if flag > 0 then
  gen, n, lost = ARGV[7], 0, ARGV[1]
  redis.call('HSET', KEYS[1], 'gen', gen, 'n', 0, 'lost', lost)
end
if lost and tonumber(ARGV[2]) - tonumber(ARGV[4]) < tonumber(lost) then
  return {-2, gen, n, lost, flag}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, gen, n, '', flag}
end
local quota = tonumber(ARGV[5])
if quota > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[3]) >= quota then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {-1, gen, n, first[2], flag}
  end
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[6])
  if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
  end
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
n = redis.call('HINCRBY', KEYS[1], 'n', 1)
return {1, gen, n, '', flag}
"""


# After one bucket found its marker gone, the other buckets of the same loss get the same
# loss time at once (instead of each at its own first use, which would hold back fresh
# proofs once per bucket). Markers that exist are left alone.
SPREAD_LOSS_LUA: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'n', 0, 'lost', ARGV[2])
  return 1
end
return 0
"""


class UnsafeRedisSettings(ReplayStateUnavailable):
    """Redis is configured so that it may forget replay entries (an evicting
    ``maxmemory-policy``), or its policy cannot be read. Refused: fail closed (HTTP 503)."""


def acceptance_window_for(policy: DPoPPolicy) -> int:
    """Seconds from the earliest moment a proof can be accepted to its replay entry's
    ``expires_at`` under ``policy`` (RFC 9449 §11.1).

    :func:`tokenlib.dpop.verify_proof` keeps an entry until ``iat + iat_past +
    iat_future`` (``iat_past_with_nonce`` instead of ``iat_past`` when that is longer),
    and a server accepts the proof from ``iat - iat_future`` on, so the span is
    ``iat_past + 2 × iat_future``: 420 s for :meth:`DPoPPolicy.rfc`.
    """
    past = max(policy.iat_past, policy.iat_past_with_nonce or 0)
    return past + 2 * policy.iat_future


def bucket_of(text: str) -> str:
    """The two-hex-digit bucket (hash tag) of an owner or key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:2]


def entry_name(key: str) -> str:
    """``key`` as stored: itself when short, its SHA-256 when longer than 64 characters."""
    if not isinstance(key, str) or not key:
        raise ValueError("replay cache key must be a non-empty string")
    if len(key) > _MAX_KEY_LENGTH:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key


def marker_key(prefix: str, bucket: str) -> str:
    return f"{prefix}{{{bucket}}}:g"


@dataclass(frozen=True, slots=True)
class Call:
    """One ``EVALSHA`` of :data:`CHECK_AND_STORE_LUA`: its keys and arguments."""

    bucket: str
    keys: tuple[str, str, str]
    args: tuple[str, ...]
    now: float
    expires_at: float
    owner: str | None

    @classmethod
    def build(
        cls,
        *,
        prefix: str,
        key: str,
        expires_at: float,
        now: float,
        owner: str | None,
        window: float,
        quota: int | None,
        seen: Mapping[str, tuple[str, int]],
    ) -> Call:
        """``seen`` maps a bucket to the (generation, entry count) this client saw last."""
        if not (math.isfinite(expires_at) and math.isfinite(now)):
            raise ValueError("expires_at and now must be finite epoch seconds")
        name = entry_name(key)
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise ValueError("owner must be None or a non-empty string")
        bucket = bucket_of(owner if owner is not None else name)
        tag = f"{prefix}{{{bucket}}}"
        owner_id = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32] if owner else "-"
        ttl_ms = max(1, math.ceil((expires_at - now) * 1000.0))
        seen_gen, seen_n = seen.get(bucket, ("", 0))
        return cls(
            bucket=bucket,
            keys=(f"{tag}:g", f"{tag}:j:{name}", f"{tag}:o:{owner_id}"),
            args=(
                repr(float(now)),
                repr(float(expires_at)),
                str(ttl_ms),
                repr(float(window)),
                str(quota if (quota is not None and owner is not None) else 0),
                name[:32],
                secrets.token_hex(8),
                seen_gen,
                str(seen_n),
            ),
            now=now,
            expires_at=expires_at,
            owner=owner,
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """The script's answer, decoded."""

    status: int
    generation: str
    count: int
    extra: str
    flag: int


def decode(raw: object) -> Reply:
    if not isinstance(raw, Sequence) or len(raw) != 5:
        raise ValueError(f"unexpected replay script reply {raw!r:.80}")
    status, gen, count, extra, flag = raw

    def text(value: object) -> str:
        return value.decode("ascii") if isinstance(value, bytes) else str(value)

    return Reply(int(status), text(gen), int(count), text(extra), int(flag))


def outcome(reply: Reply, call: Call, *, window: float, details: Mapping[str, object]) -> bool:
    """True (new), False (replay), or raise for a quota or a quarantine after state loss."""
    if reply.status == 1:
        return True
    if reply.status == 0:
        return False
    if reply.status == -1:
        retry = max(1, math.ceil(float(reply.extra) - call.now))
        raise ReplayQuotaExceeded(
            "this client already holds its quota of live DPoP proofs in the replay store; "
            f"retry in {retry} s",
            retry_after=retry,
            details={**details, "check": "replay_quota", "retry_after": retry},
        )
    if reply.status == -2:
        lost_at = float(reply.extra)
        retry = max(1, math.ceil(lost_at + window - call.expires_at))
        raise ReplayStateUnavailable(
            "the replay store lost its state; proofs that could have been accepted before "
            "the loss are refused for one acceptance window rather than risk a replay",
            headers={"Retry-After": str(retry)},
            details={
                **details,
                "check": "replay_state_lost",
                "lost_at": lost_at,
                "acceptance_window": window,
                "retry_after": retry,
            },
        )
    raise ValueError(f"unexpected replay script status {reply.status}")


# ----------------------------------------------------------------------------- settings


class SettingsProbe:
    """Reads ``maxmemory-policy`` with ``CONFIG GET``, else from ``INFO memory`` (managed
    Redis often disables ``CONFIG``), and judges it. Drivers send :attr:`COMMANDS` in
    order and pass each reply (or the ``Exception`` it raised) to :meth:`policy_from`."""

    COMMANDS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("CONFIG", "GET", "maxmemory-policy"),
        ("INFO", "memory"),
    )

    @staticmethod
    def policy_from(step: int, reply: object) -> str | None:
        """The policy a reply names, or None when this step could not tell."""
        if isinstance(reply, Exception):
            return None
        if step == 0 and isinstance(reply, Sequence) and not isinstance(reply, (str, bytes)):
            items = [x.decode() if isinstance(x, bytes) else str(x) for x in reply]
            pairs = dict(zip(items[::2], items[1::2], strict=False))
            return pairs.get("maxmemory-policy")
        if step == 0 and isinstance(reply, Mapping):
            value = reply.get(b"maxmemory-policy", reply.get("maxmemory-policy"))
            return value.decode() if isinstance(value, bytes) else value
        if step == 1 and isinstance(reply, (str, bytes)):
            text = reply.decode() if isinstance(reply, bytes) else reply
            for line in text.splitlines():
                name, _, value = line.strip().partition(":")
                if name == "maxmemory_policy":
                    return value.strip()
        return None

    @staticmethod
    def refusal(policy: str | None, *, server: str) -> UnsafeRedisSettings | None:
        """None if ``policy`` keeps replay entries; else the error to fail closed with."""
        if policy in SAFE_POLICIES:
            return None
        details = {
            "check": "redis_settings",
            "backend": "redis",
            "server": server,
            "maxmemory_policy": policy or "unknown",
            "required": "noeviction",
            "rfc": "RFC 9449 §11.1",
        }
        if policy is None:
            return UnsafeRedisSettings(
                "cannot read Redis maxmemory-policy (CONFIG GET and INFO memory both "
                "refused); replay protection needs 'noeviction', so the store refuses "
                "to run (pass check_eviction_policy=False only after checking it yourself)",
                details=details,
            )
        kind = "any key" if policy.startswith("allkeys-") else "keys with a TTL"
        return UnsafeRedisSettings(
            f"Redis maxmemory-policy is {policy!r}, which may evict {kind} — replay "
            "entries carry a TTL, so an evicted entry lets a replayed DPoP proof in. "
            "Set 'maxmemory-policy noeviction' (memory full then refuses new proofs, 503, "
            "instead of forgetting old ones)",
            details=details,
        )
