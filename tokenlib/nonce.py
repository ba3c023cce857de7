"""Stateless, rotating DPoP server nonces (RFC 9449 §8, §9, §11.2, §11.3).

A nonce is ``base64url(step || HMAC-SHA256(secret, context || step)[:16])`` where
``step = floor(now / step_seconds)``. Any instance holding the same secret issues and
accepts the same nonces, so several resource-server instances agree without shared
state. A nonce is accepted for ``lifetime`` seconds (up to one ``step`` more, depending
on when in its step it was issued), and one step early for instance clocks that differ
slightly. Nonces are
unpredictable without the secret (§8 "MUST be unpredictable"); the optional
``context`` (e.g. the server origin) keeps an AS nonce from working at an RS (§9).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import struct
from collections.abc import Sequence
from typing import Final

from tokenlib._time import Now, resolve_now
from tokenlib.jwk import b64url_decode, b64url_encode

__all__ = ["MIN_SECRET_BYTES", "NonceManager"]

MIN_SECRET_BYTES: Final = 32
_MAC_BYTES: Final = 16
_STEP: Final = struct.Struct(">Q")
_NONCE_LENGTH: Final = 32  # base64url of 8 + 16 bytes


class NonceManager:
    """Issue and verify DPoP nonces from a shared secret (HMAC-SHA256, rotating).

    ``secret``: at least 32 bytes, or a sequence of secrets for secret rotation (the
    first issues, all verify). ``lifetime``: seconds a nonce stays acceptable.
    ``step``: rotation interval in seconds (a new nonce every ``step`` seconds).
    ``context``: bytes mixed into the MAC, e.g. ``b"https://rs.example.com"``.
    """

    __slots__ = ("_context", "_keys", "_max_back", "lifetime", "step")

    def __init__(
        self,
        secret: bytes | Sequence[bytes],
        *,
        lifetime: int = 300,
        step: int = 60,
        context: bytes = b"",
    ) -> None:
        secrets_list = [secret] if isinstance(secret, bytes | bytearray) else list(secret)
        if not secrets_list:
            raise ValueError("at least one secret is required")
        for item in secrets_list:
            if not isinstance(item, bytes | bytearray) or len(item) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"nonce secrets must be bytes of at least {MIN_SECRET_BYTES} bytes"
                )
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError("step must be a positive number of seconds")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < step:
            raise ValueError("lifetime must be an int of at least one step")
        if not isinstance(context, bytes):
            raise TypeError("context must be bytes")
        self._keys = tuple(bytes(item) for item in secrets_list)
        self.lifetime = lifetime
        self.step = step
        self._context = context
        # A nonce of step s is accepted up to step s + max_back, i.e. between ``lifetime``
        # and ``lifetime + step`` seconds after it was first issued.
        self._max_back = math.ceil(lifetime / step)

    def __repr__(self) -> str:
        return (
            f"NonceManager(lifetime={self.lifetime}, step={self.step}, secrets={len(self._keys)})"
        )

    def _mac(self, key: bytes, step: int) -> bytes:
        packed = _STEP.pack(step)
        return hmac.new(key, self._context + b"|" + packed, hashlib.sha256).digest()[:_MAC_BYTES]

    def _step(self, now: Now) -> int:
        return math.floor(resolve_now(now) / self.step)

    def issue(self, now: Now = None) -> str:
        """The current nonce (the same on every instance sharing the secret)."""
        step = self._step(now)
        return b64url_encode(_STEP.pack(step) + self._mac(self._keys[0], step))

    def verify(self, nonce: str, now: Now = None) -> bool:
        """True if ``nonce`` was issued by a holder of the secret and is still fresh."""
        if not isinstance(nonce, str) or len(nonce) != _NONCE_LENGTH:
            return False
        try:
            raw = b64url_decode(nonce)  # canonical: one spelling per nonce
        except ValueError:
            return False
        if len(raw) != _STEP.size + _MAC_BYTES:
            return False
        (step,) = _STEP.unpack(raw[: _STEP.size])
        current = self._step(now)
        if not current - self._max_back <= step <= current + 1:
            return False
        presented = raw[_STEP.size :]
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(presented, self._mac(key, step))
        return ok

    def is_current(self, nonce: str, now: Now = None) -> bool:
        """True if ``nonce`` is exactly the nonce :meth:`issue` returns now (so a server
        need not send a fresh ``DPoP-Nonce`` header)."""
        return hmac.compare_digest(nonce.encode(), self.issue(now).encode())

    def response_headers(self, presented: str | None = None, *, now: Now = None) -> dict[str, str]:
        """The ``DPoP-Nonce`` header a server sends: a fresh nonce with an error, or on
        success when the client's ``presented`` nonce is no longer the current one
        (RFC 9449 §8.2, §9); nothing when it is."""
        if presented is not None and self.is_current(presented, now=now):
            return {}
        return {"DPoP-Nonce": self.issue(now)}

    @classmethod
    def with_random_secret(cls) -> NonceManager:
        """A manager with a fresh 32-byte secret: enough for one instance; several
        instances that must agree need one shared secret."""
        return cls(secrets.token_bytes(32))
