"""tokenlib._jws: the strict compact-JWS parser and the allowlisted signature check.

Every refusal asserts the error code *and* the failed check. Tokens are forged by hand
(header and payload JSON spelled out) so the parser sees exactly the bytes under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import string
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib import _jws
from tokenlib.errors import InvalidDPoPProof, InvalidToken
from tokenlib.jwk import DEFAULT_ALGORITHMS, PrivateKey, b64url_decode, b64url_encode


def _seg(raw: str | bytes) -> str:
    return b64url_encode(raw.encode() if isinstance(raw, str) else raw)


def _compact(header: str | bytes, payload: str | bytes, signature: bytes = b"sig") -> str:
    return f"{_seg(header)}.{_seg(payload)}.{b64url_encode(signature)}"


_PAYLOAD = '{"sub":"alice"}'


@pytest.mark.parametrize(
    ("token", "check"),
    [
        pytest.param(None, "syntax", id="not-a-string"),
        pytest.param(b"a.b.c", "syntax", id="bytes"),
        pytest.param("", "syntax", id="empty"),
        pytest.param("a.b", "syntax", id="two-segments"),
        pytest.param("a.b.c.d.e", "syntax", id="jwe-five-segments"),
        pytest.param("a.b.c.d", "syntax", id="four-segments"),
        pytest.param(_compact('{"alg":"ES256"}', _PAYLOAD) + "=", "syntax", id="padded"),
        pytest.param("eyJ+.eyJ.c2ln", "syntax", id="std-base64-char"),
        pytest.param("e.eyJzdWIiOiJ4In0.c2ln", "syntax", id="bad-length"),
        pytest.param("eyJhbGciOiJFUzI1NiJ9.eyJz dWIiOiJ4In0.c2ln", "syntax", id="space"),
        pytest.param("éé.eyJ.c2ln", "syntax", id="non-ascii"),
        pytest.param(_compact("not json", _PAYLOAD), "syntax", id="header-not-json"),
        pytest.param(_compact('{"alg":"ES256"}', "not json"), "syntax", id="payload-not-json"),
        pytest.param(_compact('["alg"]', _PAYLOAD), "syntax", id="header-array"),
        pytest.param(_compact('{"alg":"ES256"}', "[1,2]"), "syntax", id="payload-array"),
        pytest.param(_compact('{"alg":"ES256"}', '"sub"'), "syntax", id="payload-string"),
        pytest.param(_compact('{"alg":"ES256"}', '{"exp":NaN}'), "syntax", id="nan"),
        pytest.param(_compact('{"alg":"ES256"}', '{"exp":Infinity}'), "syntax", id="infinity"),
        pytest.param(_compact(b'{"alg":"ES256"}', b'{"sub":"\xff"}'), "syntax", id="bad-utf8"),
        pytest.param(_compact('{"alg":"ES256","alg":"none"}', _PAYLOAD), "syntax", id="dup-hdr"),
        pytest.param(
            _compact('{"alg":"ES256"}', '{"sub":"a","sub":"b"}'), "syntax", id="dup-claim"
        ),
        pytest.param(
            _compact('{"alg":"ES256"}', '{"cnf":{"jkt":"a","jkt":"b"}}'), "syntax", id="dup-nested"
        ),
        pytest.param(_compact("{}", _PAYLOAD), "alg", id="no-alg"),
        pytest.param(_compact('{"alg":null}', _PAYLOAD), "alg", id="alg-null"),
        pytest.param(_compact('{"alg":["ES256"]}', _PAYLOAD), "alg", id="alg-array"),
        pytest.param(_compact('{"alg":"ES256","crit":["exp"]}', _PAYLOAD), "crit", id="crit"),
        pytest.param(_compact('{"alg":"ES256","crit":[]}', _PAYLOAD), "crit", id="crit-empty"),
        pytest.param(
            _compact('{"alg":"ES256","b64":false,"crit":["b64"]}', _PAYLOAD), "crit", id="b64"
        ),
        pytest.param(_compact('{"alg":"ES256","b64":true}', _PAYLOAD), "crit", id="b64-alone"),
    ],
)
def test_parse_rejects(token: object, check: str) -> None:
    with pytest.raises(InvalidToken) as info:
        _jws.parse(token)
    assert info.value.error == "invalid_token"
    assert info.value.check == check


def test_parse_rejects_deep_nesting_as_syntax() -> None:
    payload = '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(InvalidToken) as info:
        _jws.parse(_compact('{"alg":"ES256"}', payload), max_length=10**7)
    assert info.value.check == "syntax"


def test_size_limit_is_checked_before_decoding() -> None:
    token = "!" * (_jws.MAX_TOKEN_LENGTH + 1)  # not even base64: size must win
    with pytest.raises(InvalidToken) as info:
        _jws.parse(token)
    assert info.value.check == "size"
    assert info.value.details["limit"] == _jws.MAX_TOKEN_LENGTH
    with pytest.raises(InvalidToken) as small:
        _jws.parse(_compact('{"alg":"ES256"}', _PAYLOAD), max_length=10)
    assert small.value.check == "size"


def test_parse_uses_the_callers_error_and_wording() -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        _jws.parse("x.y", error=InvalidDPoPProof, what="DPoP proof")
    assert info.value.error == "invalid_dpop_proof"
    assert "DPoP proof" in info.value.description


def test_parse_accepts_a_well_formed_token() -> None:
    token = _compact('{"alg":"ES256","typ":"at+jwt"}', _PAYLOAD, b"\x01\x02")
    parsed = _jws.parse(token)
    assert parsed.header == {"alg": "ES256", "typ": "at+jwt"}
    assert parsed.payload == {"sub": "alice"}
    assert parsed.signature == b"\x01\x02"
    assert parsed.signing_input == token.rsplit(".", 1)[0].encode()


# --- signatures -----------------------------------------------------------------------


def _signed(key: PrivateKey, alg: str, payload: dict[str, Any] | None = None) -> str:
    return _jws.sign({"alg": alg, "typ": "at+jwt"}, payload or {"sub": "alice"}, key)


@pytest.mark.parametrize(
    ("alg", "key_alg"),
    [
        ("ES256", "ES256"),
        ("ES384", "ES384"),
        ("ES512", "ES512"),
        ("EdDSA", "EdDSA"),
        ("Ed25519", "EdDSA"),  # RFC 9864 fully-specified name
        ("RS256", "RS256"),
        ("PS256", "PS256"),
    ],
)
def test_sign_and_verify_round_trip(keys: dict[str, PrivateKey], alg: str, key_alg: str) -> None:
    key = keys[key_alg]
    parsed = _jws.parse(_signed(key, alg))
    assert _jws.verify_signature(parsed, key.public_key(), algorithms=(alg,)) == alg


def test_sign_refuses_alg_that_does_not_fit_the_key(keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        _signed(keys["ES384"], "ES256")
    with pytest.raises(ValueError, match="unsupported"):
        _signed(keys["ES256"], "HS256")
    with pytest.raises(ValueError, match="unsupported"):
        _signed(keys["ES256"], "none")


def test_alg_none_is_refused(es256_key: PrivateKey) -> None:
    token = _compact('{"alg":"none"}', _PAYLOAD, b"")
    parsed = _jws.parse(token)
    pub = es256_key.public_key()
    with pytest.raises(InvalidToken) as info:
        _jws.verify_signature(parsed, pub, algorithms=DEFAULT_ALGORITHMS)
    assert info.value.check == "alg"
    with pytest.raises(InvalidToken) as forced:  # even if a caller lists it
        _jws.verify_signature(parsed, pub, algorithms=("none",))
    assert forced.value.check == "alg"


@pytest.mark.parametrize("key_alg", ["ES256", "RS256", "EdDSA"])
@pytest.mark.parametrize("encoding", ["pem", "der", "jwk-x"])
def test_hmac_with_the_public_key_as_secret_is_refused(
    keys: dict[str, PrivateKey], key_alg: str, encoding: str
) -> None:
    # Algorithm confusion (RFC 8725 §2.1): an attacker signs HS256 with the public key bytes.
    pub = keys[key_alg].public_key()
    if encoding == "pem":
        secret = pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    elif encoding == "der":
        secret = pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        secret = repr(pub).encode()
    head_body = _seg('{"alg":"HS256","typ":"at+jwt"}') + "." + _seg(_PAYLOAD)
    mac = hmac.new(secret, head_body.encode(), hashlib.sha256).digest()
    parsed = _jws.parse(f"{head_body}.{b64url_encode(mac)}")
    for allowlist in (DEFAULT_ALGORITHMS, ("HS256",), ("HS256", "ES256")):
        with pytest.raises(InvalidToken) as info:
            _jws.verify_signature(parsed, pub, algorithms=allowlist)
        assert info.value.check == "alg"
        assert info.value.error == "invalid_token"


def test_alg_not_in_allowlist(keys: dict[str, PrivateKey]) -> None:
    parsed = _jws.parse(_signed(keys["ES384"], "ES384"))
    with pytest.raises(InvalidToken) as info:
        _jws.verify_signature(parsed, keys["ES384"].public_key(), algorithms=("ES256",))
    assert info.value.check == "alg"
    assert info.value.details["presented"] == "ES384"
    assert info.value.details["allowed"] == "ES256"


@pytest.mark.parametrize(
    ("alg", "signer", "verifier"),
    [
        ("ES256", "ES256", "ES384"),  # curve mismatch: P-384 key cannot verify ES256
        ("ES384", "ES384", "ES256"),
        ("ES256", "ES256", "EdDSA"),
        ("EdDSA", "EdDSA", "ES256"),
        ("RS256", "RS256", "ES256"),
        ("ES256", "ES256", "RS256"),
    ],
)
def test_alg_must_fit_the_verification_key(
    keys: dict[str, PrivateKey], alg: str, signer: str, verifier: str
) -> None:
    parsed = _jws.parse(_signed(keys[signer], alg))
    with pytest.raises(InvalidToken) as info:
        _jws.verify_signature(parsed, keys[verifier].public_key(), algorithms=(alg,))
    assert info.value.check == "alg"


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: bytes([s[0] ^ 1]) + s[1:], id="flipped-bit"),
        pytest.param(lambda s: s[:-1], id="one-byte-short"),
        pytest.param(lambda s: s + b"\x00", id="one-byte-long"),
        pytest.param(lambda s: b"", id="empty"),
        pytest.param(lambda s: b"\x00" * len(s), id="zeros"),
        pytest.param(lambda s: s[32:] + s[:32], id="r-s-swapped"),
    ],
)
@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "PS256"])
def test_bad_signatures(keys: dict[str, PrivateKey], alg: str, mangle: Any) -> None:
    good = _jws.parse(_signed(keys[alg], alg))
    bad = _jws.ParsedJWS(good.header, good.payload, good.signing_input, mangle(good.signature))
    with pytest.raises(InvalidToken) as info:
        _jws.verify_signature(bad, keys[alg].public_key(), algorithms=(alg,))
    assert info.value.check == "signature"


def test_signature_over_other_content_fails(es256_key: PrivateKey) -> None:
    one = _jws.parse(_signed(es256_key, "ES256", {"sub": "alice"}))
    two = _jws.parse(_signed(es256_key, "ES256", {"sub": "mallory"}))
    spliced = _jws.ParsedJWS(two.header, two.payload, two.signing_input, one.signature)
    with pytest.raises(InvalidToken) as info:
        _jws.verify_signature(spliced, es256_key.public_key(), algorithms=("ES256",))
    assert info.value.check == "signature"


def test_verify_uses_the_callers_error(es256_key: PrivateKey) -> None:
    parsed = _jws.parse(_compact('{"alg":"none"}', _PAYLOAD, b""))
    with pytest.raises(InvalidDPoPProof) as info:
        _jws.verify_signature(
            parsed, es256_key.public_key(), algorithms=("ES256",), error=InvalidDPoPProof
        )
    assert info.value.error == "invalid_dpop_proof"


def test_header_segment_reuse_signs_the_same_header(es256_key: PrivateKey) -> None:
    header = {"alg": "ES256", "typ": "dpop+jwt"}
    segment = _jws.encode_segment(header)
    token = _jws.sign(header, {"n": 1}, es256_key, header_segment=segment)
    assert token.split(".")[0] == segment
    parsed = _jws.parse(token)
    assert parsed.header == header
    assert _jws.verify_signature(parsed, es256_key.public_key(), algorithms=("ES256",))


# --- the per-request fast paths ------------------------------------------------------


def _reference_decode(segment: str) -> bytes | None:
    """An independent strict decoder: alphabet regex, stdlib decode, canonical re-encode."""
    if re.fullmatch(r"[A-Za-z0-9_-]*", segment) is None or len(segment) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return raw if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == segment else None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "-_+/= .é", max_size=24))
def test_b64url_decode_agrees_with_an_independent_strict_reference(segment: str) -> None:
    # b64url_decode checks the alphabet in C: same bytes and same refusals as the reference.
    try:
        got: bytes | None = b64url_decode(segment)
    except ValueError:
        got = None
    assert got == _reference_decode(segment)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=70))
def test_b64url_round_trips(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert encoded == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert b64url_decode(encoded) == data


@pytest.mark.parametrize("size", [32, 48, 66])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_ecdsa_der_matches_cryptography(size: int, data: st.DataObject) -> None:
    def integer() -> bytes:
        value = data.draw(st.integers(min_value=0, max_value=2 ** (8 * size) - 1))
        return value.to_bytes(size, "big")

    r, s = integer(), integer()
    expected = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    assert _jws.ecdsa_der(r + s, size) == expected


@pytest.mark.parametrize(
    "edge",
    [
        bytes(64),  # r = s = 0
        b"\x80" + bytes(63),  # high bit: a leading zero byte is needed
        bytes(31) + b"\x01" + b"\xff" * 32,  # r = 1, s all ones
        b"\x00\x7f" + b"\x11" * 62,  # a leading zero to strip
    ],
)
def test_ecdsa_der_edges(edge: bytes) -> None:
    r, s = int.from_bytes(edge[:32], "big"), int.from_bytes(edge[32:], "big")
    assert _jws.ecdsa_der(edge, 32) == encode_dss_signature(r, s)


@pytest.mark.parametrize(
    "text",
    ['{"a":1}', ' {"a":1}', '{"a":1} ', '\n{"a": [1, {"b": 2}]}\t', "[1]", '"s"', "3"],
)
def test_loads_is_json_loads(text: str) -> None:
    assert _jws.loads(text) == json.loads(text)


@pytest.mark.parametrize(
    "text", ['{"a":1}x', '{"a":1} {}', '{"a":1,"a":2}', '{"a":NaN}', '{"a":-Infinity}', "", " "]
)
def test_loads_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)expecting|extra data|duplicate|constant"):
        _jws.loads(text)


def test_cached_header_is_a_copy_every_time() -> None:
    token = _compact('{"alg":"ES256","typ":"at+jwt","kid":"cache-copy"}', _PAYLOAD)
    first = _jws.parse(token)
    first.header["alg"] = "none"
    first.header["crit"] = ["exp"]
    second = _jws.parse(token)
    assert second.header == {"alg": "ES256", "typ": "at+jwt", "kid": "cache-copy"}
    assert second.header is not first.header


def test_headers_with_nested_values_are_not_shared() -> None:
    token = _compact('{"alg":"ES256","jwk":{"kty":"EC","crv":"P-256"},"x5c":["a"]}', _PAYLOAD)
    first = _jws.parse(token)
    first.header["jwk"]["kty"] = "oct"
    first.header["x5c"].append("b")
    second = _jws.parse(token)
    assert second.header["jwk"] == {"kty": "EC", "crv": "P-256"}
    assert second.header["x5c"] == ["a"]


def test_refused_headers_stay_refused() -> None:
    token = _compact('{"alg":"ES256","crit":["x"]}', _PAYLOAD)
    for _ in range(2):  # a refusal is never cached as a success
        with pytest.raises(InvalidToken) as info:
            _jws.parse(token)
        assert info.value.check == "crit"


def test_only_small_scalar_headers_are_cached() -> None:
    small = _compact('{"alg":"ES256","kid":"k1"}', _PAYLOAD)
    large = _compact('{"alg":"ES256","kid":"' + "k" * 1100 + '"}', _PAYLOAD)
    nested = _compact('{"alg":"ES256","jwk":{"kty":"EC"}}', _PAYLOAD)
    for token in (small, large, nested):
        _jws.parse(token)
    assert _jws._HEADERS.get(small.split(".")[0]) == {"alg": "ES256", "kid": "k1"}
    assert _jws._HEADERS.get(large.split(".")[0]) is None
    assert _jws._HEADERS.get(nested.split(".")[0]) is None


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"])
def test_verify_fitted_agrees_with_verify_signature(keys: dict[str, PrivateKey], alg: str) -> None:
    key = keys[alg]
    parsed = _jws.parse(_signed(key, alg))
    pub = key.public_key()
    assert _jws.verify_fitted(alg, pub, parsed.signing_input, parsed.signature)
    flipped = parsed.signature[:-1] + bytes([parsed.signature[-1] ^ 1])
    assert not _jws.verify_fitted(alg, pub, parsed.signing_input, flipped)
    assert not _jws.verify_fitted(alg, pub, parsed.signing_input + b"x", parsed.signature)
    assert not _jws.verify_fitted(alg, pub, parsed.signing_input, parsed.signature[:-1])
