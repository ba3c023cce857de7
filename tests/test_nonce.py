"""tokenlib.nonce: stateless rotating HMAC nonces (RFC 9449 §8, §9, §11.2)."""

from __future__ import annotations

import re

import pytest

from tokenlib.jwk import b64url_decode, b64url_encode
from tokenlib.nonce import NonceManager

NOW = 1_700_000_000
SECRET = b"s" * 32


def make(**kw: object) -> NonceManager:
    return NonceManager(SECRET, **kw)  # type: ignore[arg-type]


def test_issue_is_valid_and_has_nonce_syntax() -> None:
    manager = make()
    nonce = manager.issue(now=NOW)
    assert re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", nonce)  # RFC 9449 §8.1 NQCHAR
    assert manager.verify(nonce, now=NOW)
    assert manager.is_current(nonce, now=NOW)


def test_rotates_every_step_and_expires_after_lifetime() -> None:
    manager = make(lifetime=120, step=60)
    start = NOW - NOW % 60  # beginning of a step
    nonce = manager.issue(now=start)
    assert manager.issue(now=start + 59) == nonce
    assert manager.issue(now=start + 60) != nonce
    assert not manager.is_current(nonce, now=start + 60)
    assert manager.verify(nonce, now=start + 60 + 119)  # within lifetime + step
    assert manager.verify(nonce, now=start + 179)
    assert not manager.verify(nonce, now=start + 180)  # stale
    assert not manager.verify(nonce, now=start + 3600)


def test_accepts_one_step_ahead_for_instance_clock_skew() -> None:
    manager = make(lifetime=120, step=60)
    ahead = manager.issue(now=NOW + 60)
    assert manager.verify(ahead, now=NOW)
    assert not manager.verify(manager.issue(now=NOW + 180), now=NOW)


def test_instances_with_the_same_secret_agree() -> None:
    a, b = make(), make()
    assert a.issue(now=NOW) == b.issue(now=NOW)
    assert b.verify(a.issue(now=NOW), now=NOW + 5)


def test_other_secret_or_context_rejects() -> None:
    nonce = make().issue(now=NOW)
    assert not NonceManager(b"t" * 32).verify(nonce, now=NOW)
    as_nonce = make(context=b"https://as.example.com").issue(now=NOW)
    assert not make(context=b"https://rs.example.com").verify(as_nonce, now=NOW)


def test_secret_rotation() -> None:
    old = NonceManager(b"o" * 32)
    rotated = NonceManager([b"n" * 32, b"o" * 32])
    assert rotated.verify(old.issue(now=NOW), now=NOW)
    assert not old.verify(rotated.issue(now=NOW), now=NOW)


def test_forged_step_is_rejected() -> None:
    manager = make()
    raw = b64url_decode(manager.issue(now=NOW - 3600))
    step = (NOW // 60).to_bytes(8, "big")
    assert not manager.verify(b64url_encode(step + raw[8:]), now=NOW)


@pytest.mark.parametrize(
    "nonce",
    ["", "short", "A" * 32, "!" * 32, "A" * 31 + "=", 12, None, "A" * 33],
)
def test_malformed_nonces_are_false(nonce: object) -> None:
    assert make().verify(nonce, now=NOW) is False  # type: ignore[arg-type]


def test_non_canonical_encoding_is_rejected() -> None:
    manager = make()
    nonce = manager.issue(now=NOW)
    # 24 bytes encode to exactly 32 characters, so a twin spelling is a different nonce
    twin = nonce[:-1] + ("B" if nonce[-1] == "A" else "A")
    assert not manager.verify(twin, now=NOW)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": b"short"},
        {"secret": []},
        {"secret": [b"s" * 32, b"x"]},
        {"secret": SECRET, "step": 0},
        {"secret": SECRET, "step": True},
        {"secret": SECRET, "lifetime": 10, "step": 60},
    ],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - message differs per field
        NonceManager(**kwargs)  # type: ignore[arg-type]


def test_context_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        NonceManager(SECRET, context="origin")  # type: ignore[arg-type]


def test_repr_hides_secret() -> None:
    assert "s" * 32 not in repr(make())


def test_response_headers_send_a_fresh_nonce_only_when_needed() -> None:
    manager = NonceManager.with_random_secret()
    current = manager.issue(now=NOW)
    assert manager.response_headers(current, now=NOW) == {}
    assert manager.response_headers(now=NOW) == {"DPoP-Nonce": current}
    stale = manager.issue(now=NOW - 120)
    assert manager.response_headers(stale, now=NOW) == {"DPoP-Nonce": current}
