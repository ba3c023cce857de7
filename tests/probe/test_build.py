"""Each variant differs from the valid proof in exactly the way its check says."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tokenlib.dpop import access_token_hash, verify_proof
from tokenlib.jwk import generate_key, jwk_thumbprint, public_jwk
from tokenlib.probe.build import UNKNOWN_NONCE, RequestBuilder, Unbuildable

URL = "https://api.example.com/orders/42"
NOW = 1_700_000_000
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
KEY = generate_key("ES256")


def _builder(url: str = URL, method: str = "GET") -> RequestBuilder:
    return RequestBuilder(url, method, TOKEN, KEY, clock=lambda: NOW)


def _decode(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _proof(
    check_id: str, builder: RequestBuilder | None = None
) -> tuple[dict[str, Any], dict[str, Any], str]:
    request = (builder or _builder()).build(check_id)[-1]
    [proof] = [v for k, v in request.headers if k == "DPoP"]
    head, body, signature = proof.split(".")
    return _decode(head), _decode(body), signature


def test_the_valid_proof_verifies() -> None:
    request = _builder().build("dpop.valid")[0]
    headers = dict(request.headers)
    assert headers["Authorization"] == f"DPoP {TOKEN}"
    result = verify_proof(headers["DPoP"], htm="GET", htu=URL, access_token=TOKEN, now=NOW)
    assert result.jkt == jwk_thumbprint(KEY)


CLAIM_CHANGES = [
    ("dpop.jti_missing", "jti", None),
    ("dpop.htm_missing", "htm", None),
    ("dpop.htm_wrong", "htm", "POST"),
    ("dpop.htu_missing", "htu", None),
    ("dpop.htu_wrong_path", "htu", URL + "/tokenlib-probe-other"),
    ("dpop.htu_wrong_host", "htu", "https://probe.invalid/orders/42"),
    ("dpop.htu_wrong_scheme", "htu", "http://api.example.com/orders/42"),
    ("dpop.htu_fragment", "htu", URL + "#tokenlib-probe"),
    ("dpop.htu_default_port", "htu", "https://api.example.com:443/orders/42"),
    ("dpop.htu_case", "htu", "HTTPS://API.EXAMPLE.COM/orders/42"),
    ("dpop.iat_missing", "iat", None),
    ("dpop.iat_past", "iat", NOW - 3600),
    ("dpop.iat_future", "iat", NOW + 3600),
    ("dpop.exp_past", "exp", NOW - 3600),
    ("dpop.ath_missing", "ath", None),
    ("dpop.ath_wrong", "ath", access_token_hash("tokenlib-probe-another-token")),
    ("dpop.nonce_unknown", "nonce", UNKNOWN_NONCE),
]


@pytest.mark.parametrize(("check_id", "claim", "value"), CLAIM_CHANGES)
def test_claim_variants_change_one_claim(check_id: str, claim: str, value: object) -> None:
    _, claims, _ = _proof(check_id)
    _, valid, _ = _proof("dpop.valid")
    if value is None:
        assert claim not in claims
    else:
        assert claims[claim] == value
    others = {k: v for k, v in claims.items() if k not in (claim, "jti")}
    assert others == {k: v for k, v in valid.items() if k not in (claim, "jti")}


HEADER_CHANGES = [
    ("dpop.typ_missing", "typ", None),
    ("dpop.typ_wrong", "typ", "JWT"),
    ("dpop.alg_missing", "alg", None),
    ("dpop.alg_none", "alg", "none"),
    ("dpop.alg_symmetric", "alg", "HS256"),
    ("dpop.alg_mismatch", "alg", "ES384"),
    ("dpop.jwk_missing", "jwk", None),
]


@pytest.mark.parametrize(("check_id", "member", "value"), HEADER_CHANGES)
def test_header_variants_change_one_member(check_id: str, member: str, value: object) -> None:
    header, _, _ = _proof(check_id)
    if value is None:
        assert member not in header
    else:
        assert header[member] == value


def test_alg_none_has_an_empty_signature() -> None:
    assert _proof("dpop.alg_none")[2] == ""


def test_jwk_private_never_carries_the_real_private_key() -> None:
    header, _, _ = _proof("dpop.jwk_private")
    real_d = (
        base64.urlsafe_b64encode(
            KEY.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
        )
        .rstrip(b"=")
        .decode()
    )
    assert "d" in header["jwk"]
    assert header["jwk"]["d"] != real_d
    assert {k: v for k, v in header["jwk"].items() if k != "d"} == public_jwk(KEY)


def test_other_key_and_jwk_other_key() -> None:
    builder = _builder()
    header, _, _ = _proof("dpop.other_key", builder)
    assert jwk_thumbprint(header["jwk"]) != jwk_thumbprint(KEY)
    header2, _, _ = _proof("dpop.jwk_other_key", builder)
    assert header2["jwk"] == header["jwk"]  # same throwaway key, signed by the user's key


def test_signature_wrong_flips_one_bit() -> None:
    _, _, bad = _proof("dpop.signature_wrong")
    assert len(bad) > 40


def test_replay_sends_the_same_proof_twice() -> None:
    first, second = _builder().build("dpop.jti_replayed")
    assert first == second


def test_duplicate_header_sends_two_dpop_fields() -> None:
    [request] = _builder().build("dpop.duplicate_header")
    assert [k for k, _ in request.headers].count("DPoP") == 2


@pytest.mark.parametrize(
    ("check_id", "authorization"),
    [
        ("dpop.bearer_downgrade", f"Bearer {TOKEN}"),
        ("dpop.bearer_downgrade_with_proof", f"Bearer {TOKEN}"),
        ("dpop.no_proof", f"DPoP {TOKEN}"),
        ("dpop.scheme_case", f"dPoP {TOKEN}"),
    ],
)
def test_authorization_variants(check_id: str, authorization: str) -> None:
    [request] = _builder().build(check_id)
    assert dict(request.headers)["Authorization"] == authorization


def test_query_variant_changes_the_request_not_the_htu() -> None:
    [request] = _builder(URL + "?a=1").build("dpop.htu_query")
    assert request.url == URL + "?a=1&tokenlib-probe=1"
    _, claims, _ = _proof("dpop.htu_query", _builder(URL + "?a=1"))
    assert claims["htu"] == URL


def test_default_port_variant() -> None:
    _, claims, _ = _proof("dpop.htu_default_port", _builder("https://api.example.com:443/x"))
    assert claims["htu"] == "https://api.example.com/x"
    with pytest.raises(Unbuildable, match="8443"):
        _builder("https://api.example.com:8443/x").build("dpop.htu_default_port")


def test_nonce_goes_into_every_proof() -> None:
    builder = _builder()
    builder.nonce = "server-nonce"
    assert _proof("dpop.valid", builder)[1]["nonce"] == "server-nonce"


def test_describe_abbreviates_the_token_and_decodes_proofs() -> None:
    [request] = _builder().build("dpop.jwk_private")
    text = request.describe(TOKEN)
    assert TOKEN not in text
    assert "<random, not a real private key>" in text
    assert "dpop+jwt" in text


def test_bad_url_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        RequestBuilder("ftp://x/y", "GET", TOKEN, KEY)
