"""Property tests: mutated DPoP proofs (and proof + token pairs through ResourceServer)
only ever raise TokenError subclasses and are never accepted."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tokenlib._jws import sign_raw
from tokenlib.bearer import Issuer
from tokenlib.dpop import DPoPPolicy, create_proof, verify_proof
from tokenlib.errors import TokenError
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.replay import MemoryReplayCache
from tokenlib.server import ResourceServer

NOW = 1_700_000_000
URL = "https://rs.example.com/api"
KEYS = {alg: generate_key(alg) for alg in ("ES256", "EdDSA")}
ISSUER = Issuer("https://as.example.com", generate_key("ES256"))
TOKEN = ISSUER.issue(
    subject="alice",
    client_id="c",
    audience="https://rs.example.com",
    jkt=jwk_thumbprint(KEYS["ES256"]),
    now=NOW,
)
PROOFS = {
    alg: create_proof(key, "GET", URL, access_token=TOKEN, nonce="n0nce", now=NOW)
    for alg, key in KEYS.items()
}
ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ !"{}\x00é'
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, original: str) -> str:
    """One to three edits: replace, insert or delete a character, or truncate."""
    text = original
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "swap"]))
        pos = draw(st.integers(0, max(len(text) - 1, 0)))
        char = draw(st.sampled_from(ALPHABET))
        if op == "replace":
            text = text[:pos] + char + text[pos + 1 :]
        elif op == "insert":
            text = text[:pos] + char + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1 :]
        elif op == "truncate":
            text = text[:pos]
        else:
            parts = text.split(".")
            i, j = draw(st.integers(0, len(parts) - 1)), draw(st.integers(0, len(parts) - 1))
            parts[i], parts[j] = parts[j], parts[i]
            text = ".".join(parts)
    return text


def _verify(proof: str) -> None:
    verify_proof(
        proof,
        htm="GET",
        htu=URL,
        access_token=TOKEN,
        nonce="n0nce",
        now=NOW,
        replay_cache=MemoryReplayCache(),
        policy=DPoPPolicy.lenient(),
    )


def test_originals_verify() -> None:
    for proof in PROOFS.values():
        _verify(proof)


@SETTINGS
@given(data=st.data(), alg=st.sampled_from(sorted(PROOFS)))
def test_mutated_proofs_are_never_accepted(data: st.DataObject, alg: str) -> None:
    original = PROOFS[alg]
    proof = data.draw(mutated(original))
    assume(proof != original)
    try:
        _verify(proof)
    except TokenError:
        return
    raise AssertionError("a mutated proof was accepted")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@SETTINGS
@given(claim=st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), value=JSON)
def test_resigned_proofs_with_arbitrary_claim_values_fail_cleanly(claim: str, value: Any) -> None:
    """Re-signed with the right key: only a value equal to the original can pass."""
    key = KEYS["ES256"]
    head, body, _ = create_proof(key, "GET", URL, access_token=TOKEN, nonce="n0nce", now=NOW).split(
        "."
    )
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    original = claims[claim]
    claims[claim] = value
    payload = _b64(json.dumps(claims).encode())
    signature = sign_raw(key, "ES256", f"{head}.{payload}".encode())
    assert signature is not None
    proof = f"{head}.{payload}.{_b64(signature)}"
    try:
        _verify(proof)
    except TokenError:
        return
    assert (
        claim == "jti" or value == original or (claim == "iat" and isinstance(value, int | float))
    )


@SETTINGS
@given(data=st.data(), target=st.sampled_from(["token", "proof", "scheme"]))
def test_mutated_requests_through_resource_server_are_never_accepted(
    data: st.DataObject, target: str
) -> None:
    rs = ResourceServer(
        issuer=ISSUER.issuer,
        audience="https://rs.example.com",
        jwks=ISSUER.jwks(),
        policy=DPoPPolicy.lenient(),
        token_cache=False,
    )
    token, proof, scheme = TOKEN, PROOFS["ES256"], "DPoP"
    if target == "token":
        token = data.draw(mutated(TOKEN))
        assume(token != TOKEN)
    elif target == "proof":
        proof = data.draw(mutated(proof))
        assume(proof != PROOFS["ES256"])
    else:
        scheme = data.draw(st.sampled_from(["Bearer", "Basic", "DPoP,", "", "DPoP DPoP"]))
    headers = [("Authorization", f"{scheme} {token}"), ("DPoP", proof)]
    try:
        rs.verify("GET", URL, headers, now=NOW)
    except TokenError:
        return
    raise AssertionError("a mutated request was accepted")
