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

from tokenlib.claims import _slot_setters
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
-- KEYS[1] generation marker (hash) = <tag>:g, KEYS[2] replay entry = <tag>:j:<name>,
-- KEYS[3] owner's sorted set. ARGV[1] now, [2] expires_at (epoch seconds),
-- [3] acceptance window s, [4] fresh generation id, [5] quota (0 = none),
-- [6] generation the caller saw last ('' = none), [7] entry count it saw with it.
-- The TTL (ms, at least 1) and the sorted-set member (<name>[:32]) are derived here, so
-- the client sends two arguments fewer per proof.
local ttl = math.max(1, math.ceil((tonumber(ARGV[2]) - tonumber(ARGV[1])) * 1000))
local m = redis.call('HMGET', KEYS[1], 'gen', 'n', 'lost')
local gen, n, lost = m[1], tonumber(m[2] or '0'), m[3]
local flag = 0
if not gen then
  -- no marker: restarted empty, failover to a replica without the data, FLUSHALL,
  -- or first use. None can be told apart here, so all count as a loss now.
  flag = 1
elseif gen == ARGV[6] and n < tonumber(ARGV[7]) then
  -- fewer writes than this caller already saw: an older snapshot or a lagging replica.
  flag = 2
end
if flag > 0 then
  gen, n, lost = ARGV[4], 0, ARGV[1]
  redis.call('HSET', KEYS[1], 'gen', gen, 'n', 0, 'lost', lost)
end
if lost and tonumber(ARGV[2]) - tonumber(ARGV[3]) < tonumber(lost) then
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
  local name_at = #KEYS[1] + 2
  redis.call('ZADD', KEYS[3], ARGV[2], string.sub(KEYS[2], name_at, name_at + 31))
  if redis.call('PTTL', KEYS[3]) < ttl then
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end
redis.call('SET', KEYS[2], '1', 'PX', ttl)
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
    """:attr:`DPoPPolicy.acceptance_window <tokenlib.dpop.DPoPPolicy.acceptance_window>`:
    seconds from the earliest moment a proof can be accepted (``iat - iat_future``) to its
    replay entry's ``expires_at`` (RFC 9449 §11.1); 420 s for :meth:`DPoPPolicy.rfc`."""
    return policy.acceptance_window


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
        """``seen`` maps a bucket to the (generation, entry count) this client saw last.

        (The stores use :class:`Plan`, which builds the same call with per-store
        constants precomputed; this is its one-off form.)"""
        return Plan(prefix=prefix, window=window, quota=quota).call(
            key, expires_at=expires_at, now=now, owner=owner, seen=seen
        )


#: ARGV entries of :data:`CHECK_AND_STORE_LUA`.
_ARGS: Final = 7


class Plan:
    """Builds a store's :class:`Call` and its RESP bytes, with everything that does not
    change per proof computed once: the 256 bucket tags, the script's SHA-1 and the
    ``EVALSHA`` head, the window and quota arguments.

    Measured (this box): :meth:`call` ≈ 1.5 µs + :meth:`pack` ≈ 1.2 µs per proof, where
    the former per-call ``Call.build`` plus redis-py's argument encoding (12 arguments
    through its encoder, ~2.5 ``execute_command`` layers) cost ≈ 66 µs under cProfile.
    """

    __slots__ = (
        "_gen_count",
        "_gen_prefix",
        "_head",
        "_owners",
        "_quota_arg",
        "_tags",
        "_window_arg",
        "prefix",
        "quota",
        "sha",
        "window",
    )

    #: Owners whose (bucket, id) digest is remembered (jkt values repeat per client).
    OWNER_MEMO: ClassVar[int] = 4096

    def __init__(self, *, prefix: str, window: float, quota: int | None) -> None:
        self.prefix = prefix
        self.window = float(window)
        self.quota = quota
        self.sha = hashlib.sha1(CHECK_AND_STORE_LUA.encode("utf-8")).hexdigest()  # noqa: S324
        self._tags = [f"{prefix}{{{b:02x}}}" for b in range(BUCKETS)]
        self._window_arg = repr(self.window)
        self._quota_arg = str(quota) if quota is not None else "0"
        # A fresh generation id is only used when a marker is (re)created; unique per call
        # without a system call each time: random per Plan + a counter.
        self._gen_prefix = secrets.token_hex(8)
        self._gen_count = 0
        self._owners: dict[str, tuple[str, str]] = {}
        # EVALSHA, sha, numkeys, then the 3 keys and 7 arguments of every call.
        self._head = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%b\r\n$1\r\n3\r\n" % (
            3 + 3 + _ARGS,
            self.sha.encode(),
        )

    def _owner_digest(self, owner: str) -> tuple[str, str]:
        if not isinstance(owner, str) or not owner:
            raise ValueError("owner must be None or a non-empty string")
        memo = self._owners.get(owner)
        if memo is None:
            digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()
            memo = (digest[:2], digest[:32])
            if len(self._owners) >= self.OWNER_MEMO:
                self._owners.clear()
            self._owners[owner] = memo
        return memo

    def call(
        self,
        key: str,
        *,
        expires_at: float,
        now: float,
        owner: str | None,
        seen: Mapping[str, tuple[str, int]],
    ) -> Call:
        """The call recording ``key`` for ``owner`` (see :meth:`Call.build`)."""
        if not (math.isfinite(expires_at) and math.isfinite(now)):
            raise ValueError("expires_at and now must be finite epoch seconds")
        name = entry_name(key)
        if owner is not None:
            bucket, owner_id = self._owner_digest(owner)
            quota = self._quota_arg
        else:
            bucket, owner_id, quota = bucket_of(name), "-", "0"
        tag = self._tags[int(bucket, 16)]
        seen_gen, seen_n = seen.get(bucket, ("", 0))
        self._gen_count += 1
        call = _new_call(Call)
        _CALL_SLOTS[0](call, bucket)
        _CALL_SLOTS[1](call, (f"{tag}:g", f"{tag}:j:{name}", f"{tag}:o:{owner_id}"))
        _CALL_SLOTS[2](
            call,
            (
                repr(float(now)),
                repr(float(expires_at)),
                self._window_arg,
                f"{self._gen_prefix}{self._gen_count:x}",
                quota,
                seen_gen,
                str(seen_n),
            ),
        )
        _CALL_SLOTS[3](call, now)
        _CALL_SLOTS[4](call, expires_at)
        _CALL_SLOTS[5](call, owner)
        return call

    def pack(self, call: Call) -> bytes:
        """``call`` as one RESP ``EVALSHA`` command, ready to write to the socket.

        One f-string and one encode when every part is ASCII (hex keys and digests, the
        usual prefixes): ~1.5 µs, against ~5 µs encoding part by part (kept for the rest,
        since RESP lengths count bytes)."""
        if len(call.keys) != 3 or len(call.args) != _ARGS:
            raise ValueError("a replay call has 3 keys and 7 arguments")
        k1, k2, k3 = call.keys
        a1, a2, a3, a4, a5, a6, a7 = call.args
        text = (
            f"${len(k1)}\r\n{k1}\r\n${len(k2)}\r\n{k2}\r\n${len(k3)}\r\n{k3}\r\n"
            f"${len(a1)}\r\n{a1}\r\n${len(a2)}\r\n{a2}\r\n${len(a3)}\r\n{a3}\r\n"
            f"${len(a4)}\r\n{a4}\r\n${len(a5)}\r\n{a5}\r\n${len(a6)}\r\n{a6}\r\n"
            f"${len(a7)}\r\n{a7}\r\n"
        )
        if text.isascii():
            return self._head + text.encode("ascii")
        out = [self._head]
        for part in (*call.keys, *call.args):
            data = part.encode("utf-8")
            out.append(b"$%d\r\n%b\r\n" % (len(data), data))
        return b"".join(out)


_new_call: Final = object.__new__
# Call(...) without the generated __init__'s per-field object.__setattr__ (frozen).
_CALL_SLOTS: Final = _slot_setters(Call, ("bucket", "keys", "args", "now", "expires_at", "owner"))


@dataclass(frozen=True, slots=True)
class Reply:
    """The script's answer, decoded."""

    status: int
    generation: str
    count: int
    extra: str
    flag: int


def _text(value: object) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def decode(raw: object) -> Reply:
    # ``type(raw) is list`` first: the reply redis-py gives, without the ABC isinstance check.
    if not ((type(raw) is list or isinstance(raw, Sequence)) and len(raw) == 5):
        raise ValueError(f"unexpected replay script reply {raw!r:.80}")
    status, gen, count, extra, flag = raw
    return Reply(int(status), _text(gen), int(count), _text(extra), int(flag))


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
