"""Build the request of each catalogue check: the valid request, and every malformed,
replayed or downgraded variant of it, made on purpose with the client's own key.

:class:`RequestBuilder` turns a check id into one or two :class:`PlannedRequest` (the
replay check sends the same proof twice) or ``None`` when the check cannot be built for
this target (e.g. the default-port variant of a URL on a non-default port). It never
sends anything. The user's private key never leaves it: the "private key in ``jwk``"
variant carries a random ``d`` member next to the public key, never the real one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

from tokenlib import _jws
from tokenlib._htu import normalize_htu
from tokenlib.dpop import DPOP_TYP, access_token_hash
from tokenlib.jwk import (
    PrivateKey,
    b64url_encode,
    default_alg_for_key,
    generate_key,
    public_jwk,
)

__all__ = ["CertChoice", "PlannedRequest", "RequestBuilder", "Unbuildable"]

CertChoice = Literal["bound", "none", "other"]
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: alg a proof declares in the ``alg_mismatch`` variant, by the key's real alg.
_MISMATCH: Final = {
    "ES256": "ES384",
    "ES384": "ES256",
    "ES512": "ES256",
    "RS256": "RS384",
    "RS384": "RS256",
    "RS512": "RS256",
    "PS256": "PS384",
    "PS384": "PS256",
    "PS512": "PS256",
    "EdDSA": "ES256",
    "Ed25519": "ES256",
}
UNKNOWN_NONCE: Final = "tokenlib-probe-unknown-nonce"


class Unbuildable(Exception):
    """The check cannot be built for this target; the message says why (not applicable)."""


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One HTTP request the probe would send. ``client_cert``: which TLS client certificate
    goes with it (the bound one, none, or a throwaway self-signed one)."""

    check_id: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    client_cert: CertChoice = "none"
    body: bytes = b""

    def describe(self, token: str) -> str:
        """A printable description with the token abbreviated and each proof decoded."""
        lines = [f"{self.method} {self.url}  (client certificate: {self.client_cert})"]
        for name, value in self.headers:
            shown = value.replace(token, _abbreviate(token)) if token else value
            if name.lower() == "dpop":
                shown = _decode_proof(value)
            lines.append(f"  {name}: {shown}")
        if self.body:
            lines.append(f"  body: {self.body.decode('ascii', 'replace')}")
        return "\n".join(lines)


def _abbreviate(token: str) -> str:
    return f"<token {token[:6]}…{len(token)} chars>"


def _decode_proof(proof: str) -> str:
    parts = proof.split(".")
    if len(parts) != 3:
        return proof[:60]
    try:
        header = _jws.loads(_b64d(parts[0]).decode("utf-8"))
        claims = _jws.loads(_b64d(parts[1]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return proof[:60]
    if isinstance(header, dict) and isinstance(header.get("jwk"), dict):
        jwk = dict(header["jwk"])
        if "d" in jwk:
            jwk["d"] = "<random, not a real private key>"
        header = {**header, "jwk": jwk}
    return f"<proof header={header} claims={claims}>"


def _b64d(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass
class RequestBuilder:
    """Builds the requests of the RS checks for one target URL, method, token and key.

    ``nonce``: the server's current DPoP nonce (the runner updates it from responses).
    ``clock``: epoch seconds (tests pin it). The throwaway "other" key is generated once.
    """

    url: str
    method: str
    token: str = field(repr=False)
    key: PrivateKey | None = field(default=None, repr=False)
    nonce: str | None = None
    clock: Callable[[], float] = time.time
    _other: PrivateKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._other = generate_key("ES256")
        parts = urlsplit(self.url)
        self.htu = normalize_htu(self.url)  # raises ValueError naming the problem
        self._parts = parts

    # -- proofs ------------------------------------------------------------------------

    @property
    def alg(self) -> str:
        if self.key is None:
            raise Unbuildable("no DPoP key was given")
        return default_alg_for_key(self.key)

    def claims(self, **changes: Any) -> dict[str, Any]:
        """The claims of a correct proof for this request, with ``changes`` applied
        (a value of ``None`` removes the claim)."""
        claims: dict[str, Any] = {
            "jti": b64url_encode(os.urandom(16)),
            "htm": self.method,
            "htu": self.htu,
            "iat": int(self.clock()),
            "ath": access_token_hash(self.token),
        }
        if self.nonce is not None:
            claims["nonce"] = self.nonce
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def header(self, key: PrivateKey | None = None, **changes: Any) -> dict[str, Any]:
        signer = key if key is not None else self.key
        if signer is None:
            raise Unbuildable("no DPoP key was given")
        header: dict[str, Any] = {
            "typ": DPOP_TYP,
            "alg": default_alg_for_key(signer),
            "jwk": public_jwk(signer),
        }
        for name, value in changes.items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return header

    def proof(
        self,
        *,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        signer: PrivateKey | None = None,
        sign_alg: str | None = None,
    ) -> str:
        """A compact JWS of ``header`` and ``claims`` signed by ``signer`` (default: the
        user's key) with ``sign_alg`` (default: the signer's own alg)."""
        key = signer if signer is not None else self.key
        if key is None:
            raise Unbuildable("no DPoP key was given")
        head = header if header is not None else self.header(key)
        body = claims if claims is not None else self.claims()
        signing_input = f"{_jws.encode_segment(head)}.{_jws.encode_segment(body)}"
        alg = sign_alg if sign_alg is not None else default_alg_for_key(key)
        signature = _jws.sign_raw(key, alg, signing_input.encode("ascii"))
        return f"{signing_input}.{b64url_encode(signature)}"

    # -- requests ----------------------------------------------------------------------

    def _request(
        self,
        check_id: str,
        headers: list[tuple[str, str]],
        *,
        url: str | None = None,
        cert: CertChoice = "none",
    ) -> PlannedRequest:
        return PlannedRequest(check_id, self.method, url or self.url, tuple(headers), cert)

    def _dpop(self, check_id: str, proof: str, *, scheme: str = "DPoP") -> PlannedRequest:
        return self._request(
            check_id, [("Authorization", f"{scheme} {self.token}"), ("DPoP", proof)]
        )

    def _with_htu(self, check_id: str, htu: str) -> PlannedRequest:
        return self._dpop(check_id, self.proof(claims=self.claims(htu=htu)))

    def build(self, check_id: str) -> list[PlannedRequest]:
        """The request(s) of ``check_id``; :class:`Unbuildable` when not applicable."""
        method = getattr(self, "_" + check_id.replace(".", "_"), None)
        if method is None:
            raise Unbuildable(f"no request builder for {check_id}")
        result = method(check_id)
        return result if isinstance(result, list) else [result]

    # Each builder below is named after its check id (dots become underscores).

    def _rs_no_token(self, cid: str) -> PlannedRequest:
        return self._request(cid, [])

    def _dpop_valid(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof())

    _dpop_nonce_challenge = _dpop_valid
    _dpop_nonce_retry = _dpop_valid

    def _dpop_nonce_unknown(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(claims=self.claims(nonce=UNKNOWN_NONCE)))

    def _dpop_bearer_downgrade(self, cid: str) -> PlannedRequest:
        return self._request(cid, [("Authorization", f"Bearer {self.token}")])

    def _dpop_bearer_downgrade_with_proof(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(), scheme="Bearer")

    def _dpop_no_proof(self, cid: str) -> PlannedRequest:
        return self._request(cid, [("Authorization", f"DPoP {self.token}")])

    def _dpop_duplicate_header(self, cid: str) -> PlannedRequest:
        return self._request(
            cid,
            [
                ("Authorization", f"DPoP {self.token}"),
                ("DPoP", self.proof()),
                ("DPoP", self.proof()),
            ],
        )

    def _dpop_malformed(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, "not-a-jwt")

    def _dpop_typ_missing(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(header=self.header(typ=None)))

    def _dpop_typ_wrong(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(header=self.header(typ="JWT")))

    def _dpop_alg_missing(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(header=self.header(alg=None), sign_alg=self.alg))

    def _dpop_alg_none(self, cid: str) -> PlannedRequest:
        head = _jws.encode_segment(self.header(alg="none"))
        return self._dpop(cid, f"{head}.{_jws.encode_segment(self.claims())}.")

    def _dpop_alg_symmetric(self, cid: str) -> PlannedRequest:
        # The classic confusion: HMAC keyed with the public key the header carries.
        header = self.header(alg="HS256")
        secret = _jws.encode_segment(header["jwk"]).encode("ascii")
        signing_input = f"{_jws.encode_segment(header)}.{_jws.encode_segment(self.claims())}"
        mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
        return self._dpop(cid, f"{signing_input}.{b64url_encode(mac)}")

    def _dpop_alg_mismatch(self, cid: str) -> PlannedRequest:
        declared = _MISMATCH.get(self.alg, "ES384")
        return self._dpop(cid, self.proof(header=self.header(alg=declared), sign_alg=self.alg))

    def _dpop_jwk_missing(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(header=self.header(jwk=None)))

    def _dpop_jwk_private(self, cid: str) -> PlannedRequest:
        header = self.header()
        jwk = dict(header["jwk"])
        jwk["d"] = b64url_encode(os.urandom(32))  # random: the real private key never leaves
        return self._dpop(cid, self.proof(header={**header, "jwk": jwk}))

    def _dpop_signature_wrong(self, cid: str) -> PlannedRequest:
        proof = self.proof()
        head, _, signature = proof.rpartition(".")
        raw = bytearray(_b64d(signature))
        raw[-1] ^= 0x01
        return self._dpop(cid, f"{head}.{b64url_encode(bytes(raw))}")

    def _dpop_jwk_other_key(self, cid: str) -> PlannedRequest:
        header = self.header(jwk=public_jwk(self._other))
        if header["alg"] != default_alg_for_key(self._other):
            raise Unbuildable("needs an ES256 key (the throwaway key is P-256)")
        return self._dpop(cid, self.proof(header=header))

    def _dpop_other_key(self, cid: str) -> PlannedRequest:
        other = self._other
        return self._dpop(cid, self.proof(header=self.header(other), signer=other))

    def _dpop_jti_missing(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(claims=self.claims(jti=None)))

    def _dpop_jti_replayed(self, cid: str) -> list[PlannedRequest]:
        request = self._dpop(cid, self.proof())
        return [request, request]

    def _dpop_htm_missing(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(claims=self.claims(htm=None)))

    def _dpop_htm_wrong(self, cid: str) -> PlannedRequest:
        other = "POST" if self.method.upper() == "GET" else "GET"
        return self._dpop(cid, self.proof(claims=self.claims(htm=other)))

    def _dpop_htu_missing(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(claims=self.claims(htu=None)))

    def _dpop_htu_wrong_path(self, cid: str) -> PlannedRequest:
        return self._with_htu(cid, self.htu.rstrip("/") + "/tokenlib-probe-other")

    def _dpop_htu_wrong_host(self, cid: str) -> PlannedRequest:
        parts = self._parts
        netloc = "probe.invalid" + (f":{parts.port}" if parts.port is not None else "")
        return self._with_htu(cid, urlunsplit((parts.scheme, netloc, parts.path, "", "")))

    def _dpop_htu_wrong_scheme(self, cid: str) -> PlannedRequest:
        scheme = "http" if self._parts.scheme.lower() == "https" else "https"
        return self._with_htu(cid, scheme + self.htu[self.htu.index(":") :])

    def _dpop_htu_query(self, cid: str) -> PlannedRequest:
        query = (self._parts.query + "&" if self._parts.query else "") + "tokenlib-probe=1"
        url = urlunsplit((self._parts.scheme, self._parts.netloc, self._parts.path, query, ""))
        return self._request(
            cid,
            [("Authorization", f"DPoP {self.token}"), ("DPoP", self.proof())],
            url=url,
        )

    def _dpop_htu_fragment(self, cid: str) -> PlannedRequest:
        return self._with_htu(cid, self.htu + "#tokenlib-probe")

    def _dpop_htu_default_port(self, cid: str) -> PlannedRequest:
        parts = self._parts
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        if parts.port is None:
            netloc = f"{host}:{_DEFAULT_PORTS[scheme]}"
        elif parts.port == _DEFAULT_PORTS[scheme]:
            netloc = host
        else:
            raise Unbuildable(f"the URL uses port {parts.port}, not the default port")
        return self._with_htu(cid, urlunsplit((scheme, netloc, parts.path or "/", "", "")))

    def _dpop_htu_case(self, cid: str) -> PlannedRequest:
        scheme, rest = self.htu.split("://", 1)
        authority, slash, path = rest.partition("/")
        return self._with_htu(cid, f"{scheme.upper()}://{authority.upper()}{slash}{path}")

    def _dpop_iat_missing(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(claims=self.claims(iat=None)))

    def _dpop_iat_past(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(claims=self.claims(iat=int(self.clock()) - 3600)))

    def _dpop_iat_future(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(claims=self.claims(iat=int(self.clock()) + 3600)))

    def _dpop_exp_past(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(claims=self.claims(exp=int(self.clock()) - 3600)))

    def _dpop_ath_missing(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(claims=self.claims(ath=None)))

    def _dpop_ath_wrong(self, cid: str) -> PlannedRequest:
        wrong = access_token_hash("tokenlib-probe-another-token")
        return self._dpop(cid, self.proof(claims=self.claims(ath=wrong)))

    def _dpop_extra_claims(self, cid: str) -> PlannedRequest:
        header = {**self.header(), "tokenlib-probe": "ignored"}
        claims = self.claims(**{"tokenlib_probe": "ignored"})
        return self._dpop(cid, self.proof(header=header, claims=claims))

    def _dpop_scheme_case(self, cid: str) -> PlannedRequest:
        return self._dpop(cid, self.proof(), scheme="dPoP")

    # -- mTLS ----------------------------------------------------------------------------

    def _bearer(self, cid: str, cert: CertChoice) -> PlannedRequest:
        return self._request(cid, [("Authorization", f"Bearer {self.token}")], cert=cert)

    def _mtls_valid(self, cid: str) -> PlannedRequest:
        return self._bearer(cid, "bound")

    def _mtls_no_cert(self, cid: str) -> PlannedRequest:
        return self._bearer(cid, "none")

    def _mtls_other_cert(self, cid: str) -> PlannedRequest:
        return self._bearer(cid, "other")

    def mtls_injected(self, cid: str, client_cert_header: str) -> PlannedRequest:
        """``mtls.injected_client_cert``: no TLS certificate, the bound one in a header."""
        return self._request(
            cid,
            [("Authorization", f"Bearer {self.token}"), ("Client-Cert", client_cert_header)],
        )
