"""Key layout and verdicts of the Redis replay store, without a server (properties)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenlib.errors import ReplayQuotaExceeded, ReplayStateUnavailable
from tokenlib.integrations._redis_scripts import Call, Reply, outcome

NOW = 1_700_000_000.0
texts = st.text(min_size=1, max_size=300)


def _call(key: str, owner: str | None, *, expires_at: float = NOW + 360) -> Call:
    return Call.build(
        prefix="p:",
        key=key,
        expires_at=expires_at,
        now=NOW,
        owner=owner,
        window=420.0,
        quota=5,
        seen={},
    )


def _tag(name: str) -> str:
    """The Redis Cluster hash tag: the text between the first '{' and the next '}'."""
    start = name.index("{")
    return name[start + 1 : name.index("}", start)]


@given(key=texts, owner=st.one_of(st.none(), texts))
def test_all_keys_of_a_call_share_one_hash_tag_and_stay_short(key: str, owner: str | None) -> None:
    call = _call(key, owner)
    assert len({_tag(name) for name in call.keys}) == 1
    assert all(name.startswith("p:{") for name in call.keys)
    assert all(len(name) <= len("p:{00}:j:") + 64 for name in call.keys)
    # The same owner always lands in the same bucket, whatever the key.
    if owner is not None:
        assert _tag(_call("other-key", owner).keys[0]) == _tag(call.keys[0])
    # No owner: no quota is sent.
    assert (call.args[4] == "0") == (owner is None)


@given(expires_in=st.floats(min_value=0.001, max_value=10_000), oldest=st.floats(0.001, 10_000))
def test_quota_retry_after_is_the_wait_for_the_oldest_entry(
    expires_in: float, oldest: float
) -> None:
    call = _call("k", "o", expires_at=NOW + expires_in)
    with pytest.raises(ReplayQuotaExceeded) as info:
        outcome(Reply(-1, "g", 1, repr(NOW + oldest), 0), call, window=420.0, details={})
    assert info.value.retry_after == max(1, math.ceil(oldest))
    assert info.value.status_code == 429


@given(lost_after=st.floats(min_value=0, max_value=420), life=st.floats(1, 420))
def test_after_a_loss_retry_after_is_when_a_fresh_proof_passes(
    lost_after: float, life: float
) -> None:
    """A proof made ``retry`` seconds later has expires_at + retry - window >= lost_at."""
    call = _call("k", "o", expires_at=NOW + life)
    lost_at = NOW + lost_after
    with pytest.raises(ReplayStateUnavailable) as info:
        outcome(Reply(-2, "g", 0, repr(lost_at), 1), call, window=420.0, details={})
    retry = int(info.value.headers["Retry-After"])
    assert retry >= 1
    assert NOW + life + retry - 420.0 >= lost_at
    assert retry == 1 or NOW + life + retry - 1 - 420.0 < lost_at


@pytest.mark.parametrize(
    ("key", "owner", "expires_at", "message"),
    [
        ("", None, NOW, "non-empty"),
        ("k", "", NOW, "owner"),
        ("k", None, math.inf, "finite"),
        ("k", None, math.nan, "finite"),
    ],
)
def test_bad_arguments(key: str, owner: str | None, expires_at: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _call(key, owner, expires_at=expires_at)


def test_replay_and_new_verdicts() -> None:
    call = _call("k", None)
    assert outcome(Reply(1, "g", 1, "", 0), call, window=420.0, details={}) is True
    assert outcome(Reply(0, "g", 1, "", 0), call, window=420.0, details={}) is False
    with pytest.raises(ValueError, match="status"):
        outcome(Reply(7, "g", 1, "", 0), call, window=420.0, details={})
