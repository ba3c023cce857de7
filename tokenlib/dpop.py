"""DPoP proofs (RFC 9449): create them on the client, verify them on the server.

A DPoP proof is a JWT (``typ: dpop+jwt``) signed with a key whose public half travels
in its ``jwk`` header. It covers the HTTP method (``htm``) and URI (``htu``), a
timestamp (``iat``), a unique id (``jti``), optionally a server ``nonce`` and, at a
resource server, the hash of the access token (``ath``). :func:`verify_proof` runs
every check of RFC 9449 §4.3 and §11.1 and raises a :class:`~tokenlib.errors.TokenError`
subclass whose ``details`` say which check failed and which values were compared.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from tokenlib import _jws
from tokenlib._cache import BoundedCache, process_cache
from tokenlib._dpop_jws import (
    DPOP_TYP,
    RFC_4_3,
    b64decode,
    check_header,
    fail,
    parse_json,
)
from tokenlib._htu import normalize_htu, normalize_server_url
from tokenlib._time import Now, resolve_now
from tokenlib.claims import _is_number, _slot_setters
from tokenlib.errors import InvalidDPoPProof, InvalidRequest, ReplayDetected, UseDPoPNonce
from tokenlib.jwk import (
    ALGORITHMS,
    DEFAULT_ALGORITHMS,
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    PrivateKey,
    alg_matches_key,
    b64url_encode,
    check_rsa_key_bounds,
    default_alg_for_key,
    public_jwk,
)
from tokenlib.replay import (
    NO_REPLAY_CHECK,
    NoReplayCheck,
    ReplayCache,
    check_acceptance_window,
)

__all__ = [
    "DPOP_TYP",
    "DPoPPolicy",
    "DPoPProof",
    "NonceValidator",
    "access_token_hash",
    "check_proof",
    "create_proof",
    "normalize_htu",
    "replay_detected",
    "replay_key",
    "verify_proof",
]

# RFC 9110 §5.6.2 tchar: an HTTP method is a token.
_METHOD: Final = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# RFC 6749 NQCHAR (RFC 9449 §8.1 nonce syntax).
_NONCE: Final = re.compile(r"\A[\x21\x23-\x5b\x5d-\x7e]+\Z")
# ints in (-2**62, 2**62) are exact in arithmetic with the server's float clock.
_INT_LIMIT: Final = 2**62
_ABSENT: Final = object()


@dataclass(frozen=True, slots=True)
class DPoPPolicy:
    """What a server accepts in a DPoP proof (RFC 9449 §4.3, §11.1).

    ``iat_past``/``iat_future``: how many seconds a proof's ``iat`` may lie before/after
    the server clock. ``algorithms``: the JWS allowlist (asymmetric only; ``none`` and
    HMAC can never be listed). ``max_proof_length``: proofs longer than this are refused
    before any decoding. ``max_jti_length``: a longer ``jti`` is refused (§11.1 memory
    exhaustion; the replay cache stores only a hash anyway).

    ``iat_past_with_nonce``: RFC 9449 §11.1 lets a server bound a proof's lifetime with
    a server-managed nonce instead of the client's ``iat``. By default (``None``)
    tokenlib does not relax anything: with a nonce both the nonce and ``iat`` must be
    fresh. When set, and the proof carries a nonce that a :class:`NonceValidator`
    (e.g. :class:`~tokenlib.nonce.NonceManager`) accepted, ``iat`` may be up to this
    many seconds old; the replay-cache entry is kept for that longer window too.

    Per-proof CPU differs by algorithm: OpenSSL verifies P-384/P-521 (ES384/ES512) about
    4–5× slower than P-256 or RSA-4096 (``benchmarks/bench_dpop.py``,
    ``es384_vs_rsa4096``). Where proofs arrive before any authentication (a token
    endpoint), :meth:`fapi2` (PS256, ES256, EdDSA) keeps every accepted proof within
    about 2× an honest RSA-4096 verification.

    ``max_rsa_bits``: the largest RSA ``jwk`` accepted (default 4096; at most 8192). With
    the exponent fixed at 65537 (:data:`tokenlib.jwk.RSA_PUBLIC_EXPONENT`) the costliest
    acceptable proof (a never-seen 4096-bit key) costs about 1.7× an honest RSA-4096
    proof; allowing 8192 bits makes that 3.5–4.5× (``benchmarks/bench_dpop.py``,
    ``rsa_worst_vs_rsa4096`` and ``rsa_worst_8192_vs_rsa4096``).
    """

    iat_past: int = 300
    iat_future: int = 60
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    max_proof_length: int = 8192
    max_jti_length: int = 256
    iat_past_with_nonce: int | None = None
    max_rsa_bits: int = 4096

    def __post_init__(self) -> None:
        for name in ("iat_past", "iat_future", "max_proof_length", "max_jti_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.iat_past_with_nonce is not None and (
            isinstance(self.iat_past_with_nonce, bool)
            or not isinstance(self.iat_past_with_nonce, int)
            or self.iat_past_with_nonce < 0
        ):
            raise ValueError("iat_past_with_nonce must be None or a non-negative int")
        if (
            isinstance(self.max_rsa_bits, bool)
            or not isinstance(self.max_rsa_bits, int)
            or not MIN_RSA_BITS <= self.max_rsa_bits <= MAX_RSA_BITS
        ):
            raise ValueError(
                f"max_rsa_bits must be an int in [{MIN_RSA_BITS}, {MAX_RSA_BITS}], "
                f"got {self.max_rsa_bits!r}"
            )
        if not isinstance(self.algorithms, tuple) or not self.algorithms:
            raise ValueError("algorithms must be a non-empty tuple of JWS alg names")
        unknown = [alg for alg in self.algorithms if alg not in ALGORITHMS]
        if unknown:
            raise ValueError(
                f"algorithms {unknown} are not asymmetric signature algorithms tokenlib "
                f"supports ({', '.join(ALGORITHMS)}); none and HMAC are never allowed"
            )

    @classmethod
    def rfc(cls) -> DPoPPolicy:
        """RFC 9449 defaults: ``iat`` up to 300 s old or 60 s ahead ("seconds or
        minutes", §11.1), the default algorithm allowlist."""
        return cls()

    @classmethod
    def fapi2(cls) -> DPoPPolicy:
        """FAPI 2.0 Security Profile: PS256/ES256/EdDSA only; ``iat`` accepted up to 10 s
        in the future (anything beyond is refused, well inside the 60 s ceiling) and at
        most 60 s old."""
        return cls(iat_past=60, iat_future=10, algorithms=("PS256", "ES256", "EdDSA", "Ed25519"))

    @classmethod
    def lenient(cls) -> DPoPPolicy:
        """For devices with poor clocks: ``iat`` up to 10 min old or 5 min ahead, every
        supported asymmetric algorithm. Pair it with server nonces where possible."""
        return cls(iat_past=600, iat_future=300, algorithms=ALGORITHMS)

    @property
    def window(self) -> int:
        """Seconds a proof stays acceptable, clock skew included (replay-cache TTL)."""
        return self.iat_past + self.iat_future

    @property
    def acceptance_window(self) -> int:
        """Seconds from the earliest moment a proof can be accepted (``iat - iat_future``)
        to when its replay entry may be forgotten (``iat`` + the longer of ``iat_past`` and
        ``iat_past_with_nonce`` + ``iat_future``): 420 s for :meth:`rfc`.

        A shared replay store that can lose its state (Redis restarted empty) must refuse
        every proof whose acceptance began before the loss for at least this long (RFC 9449
        §11.1): :class:`~tokenlib.server.ResourceServer` and
        :class:`~tokenlib.token_endpoint.TokenEndpoint` check a store's declared
        ``acceptance_window`` against it (:func:`tokenlib.replay.check_acceptance_window`).
        """
        return max(self.iat_past, self.iat_past_with_nonce or 0) + 2 * self.iat_future


_DEFAULT_POLICY: Final = DPoPPolicy()


@runtime_checkable
class NonceValidator(Protocol):
    """Checks a server-issued nonce (e.g. :class:`tokenlib.nonce.NonceManager`)."""

    def verify(self, nonce: str, now: Now = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A verified DPoP proof: the key thumbprint ``jkt`` (RFC 7638) and the claims.

    ``header`` is read-only (it may be shared between proofs of one key).
    ``replay_expires_at`` is when the proof's replay-cache entry may be forgotten.
    """

    jkt: str
    jti: str
    iat: float
    htm: str
    htu: str
    nonce: str | None
    ath: str | None
    claims: dict[str, Any]
    header: Mapping[str, Any]
    alg: str
    replay_expires_at: float = field(default=0.0, compare=False)


_new: Final = object.__new__
# DPoPProof(...) without the generated __init__'s per-field object.__setattr__ calls.
_PROOF_SLOTS: Final = _slot_setters(
    DPoPProof,
    (
        "jkt",
        "jti",
        "iat",
        "htm",
        "htu",
        "nonce",
        "ath",
        "claims",
        "header",
        "alg",
        "replay_expires_at",
    ),
)


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url(SHA-256(ASCII access token)) (RFC 9449 §4.2)."""
    if not isinstance(access_token, str):
        raise TypeError("access_token must be a str")
    if not access_token.isascii():
        raise ValueError("an access token is ASCII (token68)")
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url_encode(digest)


def replay_key(jkt: str, jti: str) -> str:
    """The replay-cache key of a proof: hex SHA-256 over (``jkt``, ``jti``).

    Scoped to the key (a ``jti`` only has to be unique per client key) but not to
    ``htu``: reusing a ``jti`` with one key at another URI inside the window is refused
    too, which is stricter than RFC 9449 §11.1 requires. The hash bounds memory
    whatever the ``jti`` size (§11.1); ``jkt`` has a fixed length, so the
    concatenation is unambiguous.
    """
    return hashlib.sha256(f"dpop:{jkt}:{jti}".encode()).hexdigest()


# --------------------------------------------------------------------------- creation


# Encoded proof headers by signing key: a client's proofs repeat one ``jwk`` header.
# ``cryptography`` keys support neither weak references nor hashing by value, so entries
# are found by ``id`` and confirmed with ``is`` (the entry holds the key, so its id
# cannot be reused while cached); only the *public* header is derived from the key.
_HEADERS: Final[BoundedCache[tuple[int, str | None], tuple[PrivateKey, str, str]]] = process_cache(
    "dpop.signing_headers", 256
)


def _proof_header(key: PrivateKey, alg: str | None) -> tuple[str, str]:
    """``(alg, encoded header)`` for ``key``; ``alg=None`` picks the key's default."""
    ident = (id(key), alg)
    hit = _HEADERS.get(ident)
    if hit is not None and hit[0] is key:
        return hit[1], hit[2]
    check_rsa_key_bounds(key)  # RFC 7518 §3.3: never sign with RSA < 2048 bits
    if alg is None:
        chosen = default_alg_for_key(key)
    elif alg in ALGORITHMS and alg_matches_key(alg, key):
        chosen = alg
    else:
        raise ValueError(f"algorithm {alg!r} cannot be used with a {type(key).__name__}")
    segment = _jws.encode_segment({"typ": DPOP_TYP, "alg": chosen, "jwk": public_jwk(key)})
    _HEADERS.put(ident, (key, chosen, segment))
    return chosen, segment


def create_proof(
    key: PrivateKey,
    htm: str,
    htu: str,
    *,
    access_token: str | None = None,
    nonce: str | None = None,
    now: Now = None,
    jti: str | None = None,
    alg: str | None = None,
) -> str:
    """A DPoP proof JWT for one request (RFC 9449 §4.2).

    Header ``{typ: dpop+jwt, alg, jwk}`` with the *public* JWK only; claims ``jti``
    (128 random bits unless given), ``htm``, ``htu`` (normalised, without query and
    fragment), ``iat``, and ``ath`` when ``access_token`` is given (§7), ``nonce`` when
    the server supplied one (§8/§9). ``alg`` defaults from the key; an Ed25519 key
    accepts ``EdDSA`` (RFC 8037) or ``Ed25519`` (RFC 9864). An RSA key is refused
    (``ValueError``) below 2048 bits (RFC 7518 §3.3, whatever ``alg``), above 8192 bits
    or with a public exponent other than 65537; note that verifiers accept proof keys
    only up to ``DPoPPolicy.max_rsa_bits`` (4096 by default).
    """
    alg, header_segment = _proof_header(key, alg)
    if not isinstance(htm, str) or _METHOD.match(htm) is None:
        raise ValueError("htm must be an HTTP method token such as 'GET'")
    # Every value below is JSON-safe as is: base64url, an RFC 9110 token, a normalised
    # URI (no '"' or '\\'), an int, an NQCHAR nonce; a caller's jti is JSON-encoded.
    payload = (
        f'{{"jti":{_encode_json(_check_jti(jti)) if jti is not None else _random_jti()},'
        f'"htm":"{htm}","htu":"{normalize_server_url(htu)}","iat":{int(resolve_now(now))}'
    )
    if access_token is not None:
        payload += f',"ath":"{access_token_hash(access_token)}"'
    if nonce is not None:
        if not isinstance(nonce, str) or _NONCE.match(nonce) is None:
            raise ValueError("nonce must be a non-empty string of RFC 9449 §8.1 characters")
        payload += f',"nonce":"{nonce}"'
    signing_input = f"{header_segment}.{b64url_encode((payload + '}').encode())}"
    signature = _jws.sign_raw(key, alg, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


def _random_jti() -> str:
    return f'"{b64url_encode(os.urandom(16))}"'


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _check_jti(jti: str) -> str:
    if not isinstance(jti, str) or not jti:
        raise ValueError("jti must be a non-empty string")
    return jti


def verify_proof(
    proof: str,
    *,
    htm: str,
    htu: str,
    access_token: str | None = None,
    nonce: str | NonceValidator | None = None,
    now: Now = None,
    replay_cache: ReplayCache | NoReplayCheck = NO_REPLAY_CHECK,
    policy: DPoPPolicy | None = None,
    expected_jkt: str | None = None,
) -> DPoPProof:
    """Verify a DPoP proof for a request ``htm htu`` and return its verified content.

    Checks, in this order (RFC 9449 §4.3 numbers in brackets; cheap structural checks
    first, the signature before any claim is compared, the replay cache last):

    1. [2] ``proof`` is a string no longer than ``policy.max_proof_length`` — before any
       decoding — and a single compact JWS: three canonical base64url segments, JSON
       objects without duplicate members, no ``crit``/``b64``.
    2. [3] the header has ``typ``, ``alg``, ``jwk``; [4] ``typ`` is ``dpop+jwt``.
    3. [5] ``alg`` is in ``policy.algorithms`` (asymmetric only; never none/HMAC).
    4. [7] ``jwk`` is a public key (no private members, not ``oct``) fitting ``alg``.
    5. [3] the claims ``jti`` (≤ ``max_jti_length``), ``htm``, ``htu``, ``iat`` exist
       with the right types.
    6. [6] the signature verifies with the ``jwk``.
    7. [8] ``htm`` equals the request method exactly (methods are case-sensitive).
    8. [9] ``htu`` equals the request URI after RFC 3986 §6.2.2/§6.2.3 normalisation of
       both, ignoring query and fragment (:func:`normalize_htu`).
    9. [10] if ``nonce`` is given (an expected string, or a :class:`NonceValidator`),
       the proof's ``nonce`` claim is present and accepted (constant-time compare) —
       otherwise :class:`~tokenlib.errors.UseDPoPNonce`.
    10. [11] ``iat`` lies within ``[now - iat_past, now + iat_future]`` (§11.1).
    11. [12] with ``access_token``: ``ath`` is present and equals
        base64url(SHA-256(token)) (§7); with ``expected_jkt``: the proof key's RFC 7638
        thumbprint equals it (constant-time; §6, §10).
    12. [§11.1] ``jti`` is new: ``replay_cache.check_and_store`` of
        :func:`replay_key` until ``iat + iat_past + iat_future`` (the whole acceptance
        window *including* clock skew) — otherwise
        :class:`~tokenlib.errors.ReplayDetected`. Only a proof that passed every other
        check is recorded, so a forged proof cannot burn a legitimate ``jti``.

    ``replay_cache``: the store of step 12, owner = the proof key's ``jkt``. Leaving it
    out (or passing :data:`~tokenlib.replay.NO_REPLAY_CHECK`) skips step 12 — a
    stateless check, as in the CLI; replay protection is then the caller's job.
    ``None`` is refused (``TypeError``): at a server it means "a private store", here it
    would silently mean "no replay check".

    Also refused (RFC 7519 §4.1.4/§4.1.5): an ``exp`` at or before the server time, an
    ``nbf`` after it (allowing ``policy.iat_future`` of clock skew, as for ``iat``),
    either one not a number; a ``nonce`` (§8.1, ``1*NQCHAR``) or ``ath`` that is present
    but not a non-empty string (``null`` included).

    Check 1 of §4.3 (one ``DPoP`` header) is the caller's: see
    :class:`tokenlib.server.ResourceServer`.
    """
    if isinstance(replay_cache, NoReplayCheck):
        return check_proof(
            proof,
            htm=htm,
            htu=htu,
            access_token=access_token,
            nonce=nonce,
            now=now,
            policy=policy,
            expected_jkt=expected_jkt,
        )
    if replay_cache is None:
        raise TypeError(
            "replay_cache=None is ambiguous: pass a ReplayCache, or "
            "tokenlib.replay.NO_REPLAY_CHECK to skip the replay check on purpose"
        )
    if getattr(replay_cache, "acceptance_window", None) is not None:
        check_acceptance_window(
            replay_cache,
            (_DEFAULT_POLICY if policy is None else policy).acceptance_window,
            server="verify_proof",
        )
    server_time = resolve_now(now)
    result = check_proof(
        proof,
        htm=htm,
        htu=htu,
        access_token=access_token,
        nonce=nonce,
        now=server_time,
        policy=policy,
        expected_jkt=expected_jkt,
    )
    fresh: object = replay_cache.check_and_store(  # an AsyncReplayCache returns a coroutine
        replay_key(result.jkt, result.jti),
        expires_at=result.replay_expires_at,
        now=server_time,
        owner=result.jkt,
    )
    if fresh is True:
        return result
    if fresh is not False and inspect.isawaitable(fresh):
        if inspect.iscoroutine(fresh):
            fresh.close()  # never awaited: no "coroutine was never awaited" warning
        raise TypeError("verify_proof needs a synchronous ReplayCache, not an AsyncReplayCache")
    if not fresh:
        raise replay_detected(result)
    return result


def replay_detected(proof: DPoPProof) -> ReplayDetected:
    """The error for a proof whose replay-cache entry already existed (RFC 9449 §11.1)."""
    return ReplayDetected(
        "the DPoP proof was already used (jti replay)",
        details={
            "check": "replay",
            "jkt": proof.jkt,
            "jti_sha256": hashlib.sha256(proof.jti.encode()).hexdigest()[:16],
            "rfc": "RFC 9449 §11.1",
        },
    )


def check_proof(
    proof: str,
    *,
    htm: str,
    htu: str,
    access_token: str | None = None,
    nonce: str | NonceValidator | None = None,
    now: Now = None,
    policy: DPoPPolicy | None = None,
    expected_jkt: str | None = None,
) -> DPoPProof:
    """Steps 1–11 of :func:`verify_proof`: every check except the replay cache.

    For servers that record the proof themselves once everything else passed (a token
    endpoint after client authentication, an asyncio server with an
    :class:`~tokenlib.replay.AsyncReplayCache`): store
    ``replay_key(result.jkt, result.jti)`` until ``result.replay_expires_at``.
    """
    pol = _DEFAULT_POLICY if policy is None else policy
    # 1. size before anything is decoded, then a strict compact-JWS parse.
    parts = _jws.split_compact(
        proof, max_length=pol.max_proof_length, error=InvalidDPoPProof, what="DPoP proof"
    )
    if not all(parts):
        raise fail(
            "the DPoP proof is not a single compact JWS (three base64url segments)", "syntax"
        )
    # The alphabet of each segment is checked when it is decoded (the header segment is
    # looked up as is: only segments that decoded and passed every check are cached).
    head_b64, body_b64, sig_b64 = parts
    # 2.-4. header: typ, alg allowlist, public jwk.
    head = check_header(head_b64, pol.algorithms, pol.max_rsa_bits)
    claims = parse_json(b64decode(body_b64, "payload"), "payload")
    signature = b64decode(sig_b64, "signature")
    # 5. required claims and their types.
    try:
        jti, claim_htm, claim_htu, iat = claims["jti"], claims["htm"], claims["htu"], claims["iat"]
    except KeyError:
        missing = [name for name in ("jti", "htm", "htu", "iat") if name not in claims]
        raise fail(
            f"the DPoP proof lacks the claim(s) {', '.join(missing)}",
            "claims",
            missing=missing,
            rfc_section="RFC 9449 §4.2",
        ) from None
    if not isinstance(jti, str) or not jti:
        raise fail("the DPoP proof jti is not a non-empty string", "jti")
    if len(jti) > pol.max_jti_length:
        raise fail(
            "the DPoP proof jti is too long",
            "jti",
            length=len(jti),
            limit=pol.max_jti_length,
            rfc_section="RFC 9449 §11.1",
        )
    if not isinstance(claim_htm, str):
        raise fail("the DPoP proof htm is not a string", "htm")
    if not isinstance(claim_htu, str):
        raise fail("the DPoP proof htu is not a string", "htu")
    if not (type(iat) is int and -_INT_LIMIT < iat < _INT_LIMIT) and not _is_number(iat):
        raise fail("the DPoP proof iat is not a number", "iat")
    exp: float | None = None
    nbf: float | None = None
    if "exp" in claims:
        exp = claims["exp"]
        if not _is_number(exp):
            raise fail("the DPoP proof exp is not a number", "exp", rfc_section="RFC 7519 §4.1.4")
    if "nbf" in claims:
        nbf = claims["nbf"]
        if not _is_number(nbf):
            raise fail("the DPoP proof nbf is not a number", "nbf", rfc_section="RFC 7519 §4.1.5")
    # 6. signature with the embedded key (alg already checked against the allowlist
    #    and against the key type in step 3/4).
    signing_input = proof[: len(head_b64) + 1 + len(body_b64)].encode("ascii")
    if not _jws.verify_fitted(head.alg, head.key, signing_input, signature):
        raise fail("the DPoP proof signature is invalid", "signature")
    # 7. htm: exact, case-sensitive (RFC 9110 §9.1).
    if claim_htm != htm:
        raise fail(
            "the DPoP proof htm does not match the request method",
            "htm",
            expected=htm,
            presented=claim_htm[:16],
        )
    # 8. htu after normalisation of both sides.
    try:
        expected_htu = normalize_server_url(htu)
    except ValueError as exc:
        raise InvalidRequest(
            f"the request URI is malformed: {exc}", details={"check": "htu", "rfc": RFC_4_3}
        ) from None
    if claim_htu != expected_htu:
        try:
            presented_htu = normalize_htu(claim_htu)
        except ValueError as exc:
            raise fail(
                f"the DPoP proof htu is not a valid http(s) URI: {exc}",
                "htu",
                expected=expected_htu,
            ) from None
        if presented_htu != expected_htu:
            raise fail(
                "the DPoP proof htu does not match the request URI",
                "htu",
                expected=expected_htu,
                presented=presented_htu,
            )
    # 9. server nonce.
    claim_nonce = claims.get("nonce", _ABSENT)
    if claim_nonce is _ABSENT:
        claim_nonce = None
    elif not isinstance(claim_nonce, str) or _NONCE.match(claim_nonce) is None:
        raise fail(
            "the DPoP proof nonce is not a non-empty string of NQCHAR",
            "nonce",
            presented_type=type(claim_nonce).__name__,
            rfc_section="RFC 9449 §8.1",
        )
    iat_past = pol.iat_past
    if nonce is not None:
        _check_nonce(claim_nonce, nonce, now)
        if pol.iat_past_with_nonce is not None and not isinstance(nonce, str):
            iat_past = max(iat_past, pol.iat_past_with_nonce)
    # 10. iat window.
    server_time = resolve_now(now)
    if not server_time - iat_past <= iat <= server_time + pol.iat_future:
        too_old = iat < server_time - iat_past
        raise fail(
            "the DPoP proof is too old" if too_old else "the DPoP proof iat is in the future",
            "iat",
            iat=iat,
            server_time=server_time,
            offset=iat - server_time,
            window=f"[-{iat_past}s, +{pol.iat_future}s]",
            rfc_section="RFC 9449 §11.1",
        )
    if exp is not None and server_time >= exp:
        raise fail(
            "the DPoP proof has expired (exp)",
            "exp",
            exp=exp,
            server_time=server_time,
            rfc_section="RFC 7519 §4.1.4",
        )
    if nbf is not None and nbf > server_time + pol.iat_future:
        raise fail(
            "the DPoP proof is not valid yet (nbf)",
            "nbf",
            nbf=nbf,
            server_time=server_time,
            rfc_section="RFC 7519 §4.1.5",
        )
    # 11. ath and the expected key.
    claim_ath = claims.get("ath", _ABSENT)
    if claim_ath is _ABSENT:
        claim_ath = None
    elif not isinstance(claim_ath, str) or not claim_ath:
        raise fail("the DPoP proof ath is not a non-empty string", "ath")
    if access_token is not None:
        _check_ath(claim_ath, access_token)
    if expected_jkt is not None and not hmac.compare_digest(
        head.jkt.encode(), expected_jkt.encode()
    ):
        raise fail(
            "the DPoP proof key is not the expected key",
            "jkt",
            expected=expected_jkt,
            presented=head.jkt,
            rfc_section="RFC 9449 §6, §10",
        )
    expires_at = float(iat) + iat_past + pol.iat_future
    result = _new(DPoPProof)
    _set = _PROOF_SLOTS
    _set[0](result, head.jkt)
    _set[1](result, jti)
    _set[2](result, iat)
    _set[3](result, claim_htm)
    _set[4](result, claim_htu)
    _set[5](result, claim_nonce)
    _set[6](result, claim_ath)
    _set[7](result, claims)
    _set[8](result, head.header)
    _set[9](result, head.alg)
    _set[10](result, expires_at)
    return result


def _check_nonce(claim_nonce: str | None, expected: str | NonceValidator, now: Now) -> None:
    if claim_nonce is None:
        raise UseDPoPNonce(
            "the server requires a nonce in the DPoP proof",
            details={"check": "nonce", "presented": None, "rfc": "RFC 9449 §8, §9, §11.3"},
        )
    if isinstance(expected, str):
        ok = hmac.compare_digest(claim_nonce.encode(), expected.encode())
    else:
        ok = expected.verify(claim_nonce, now=now)
    if not ok:
        raise UseDPoPNonce(
            "the DPoP proof nonce is stale or unknown",
            details={"check": "nonce", "presented": "stale or invalid", "rfc": "RFC 9449 §8, §9"},
        )


def _check_ath(claim_ath: str | None, access_token: str) -> None:
    try:
        computed = access_token_hash(access_token)
    except (TypeError, ValueError):
        raise fail("the access token is not ASCII", "ath") from None
    if claim_ath is None:
        raise fail(
            "the DPoP proof has no ath for the presented access token",
            "ath",
            expected=computed,
            presented=None,
            rfc_section="RFC 9449 §7",
        )
    if not hmac.compare_digest(claim_ath.encode(), computed.encode()):
        raise fail(
            "the DPoP proof ath does not match the access token",
            "ath",
            expected=computed,
            presented=claim_ath[:64],
            rfc_section="RFC 9449 §4.3 (12)",
        )
