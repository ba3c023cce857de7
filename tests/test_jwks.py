"""tokenlib.jwks: parsing a published JWKS and choosing the verification key."""

from __future__ import annotations

from typing import Any

import pytest

from tokenlib.errors import InvalidToken
from tokenlib.jwk import PrivateKey, b64url_encode, jwk_thumbprint, public_jwk
from tokenlib.jwks import JWKSet, as_jwk_set


def _jwk(key: PrivateKey, **extra: Any) -> dict[str, Any]:
    return {**public_jwk(key), **extra}


@pytest.fixture(scope="module")
def mixed(keys: dict[str, PrivateKey]) -> JWKSet:
    """EC P-256 (kid ec), Ed25519 (kid ed), RSA (kid rsa, alg RS256), P-384 (no kid)."""
    return JWKSet.from_dict(
        {
            "keys": [
                _jwk(keys["ES256"], kid="ec", use="sig"),
                _jwk(keys["EdDSA"], kid="ed", alg="EdDSA"),
                _jwk(keys["RS256"], kid="rsa", alg="RS256"),
                _jwk(keys["ES384"]),
            ]
        }
    )


def test_select_by_kid(mixed: JWKSet, keys: dict[str, PrivateKey]) -> None:
    assert mixed.select("ec", "ES256") == keys["ES256"].public_key()
    assert mixed.select("ed", "EdDSA") == keys["EdDSA"].public_key()
    assert mixed.select("ed", "Ed25519") == keys["EdDSA"].public_key()  # RFC 9864 alias
    assert mixed.select("rsa", "RS256") == keys["RS256"].public_key()
    assert mixed.kids == ("ec", "ed", "rsa", None)
    assert len(mixed) == 4


def test_select_without_kid_needs_exactly_one_fitting_key(
    mixed: JWKSet, keys: dict[str, PrivateKey]
) -> None:
    assert mixed.select(None, "ES384") == keys["ES384"].public_key()  # only one P-384 key
    assert mixed.select(None, "ES256") == keys["ES256"].public_key()
    two = JWKSet.from_dict({"keys": [_jwk(keys["ES256"], kid="a"), _jwk(keys["ES256"], kid="b")]})
    with pytest.raises(InvalidToken) as info:
        two.select(None, "ES256")
    assert info.value.check == "kid"
    assert info.value.details["candidates"] == 2


@pytest.mark.parametrize(
    ("kid", "alg", "check", "detail"),
    [
        ("nope", "ES256", "kid", {"presented": "nope", "known": ["ec", "ed", "rsa"]}),
        ("ec", "ES384", "alg", {"presented": "ES384", "kid": "ec", "key_alg": "ES256"}),
        ("ec", "EdDSA", "alg", {"presented": "EdDSA"}),
        ("rsa", "PS256", "alg", {"key_alg": "RS256"}),  # the key declares RS256 only
        ("ed", "ES256", "alg", {"presented": "ES256"}),
        (None, "PS384", "alg", {"presented": "PS384"}),
        (None, "ES512", "alg", {"presented": "ES512"}),
        ("ec", "none", "alg", {"presented": "none"}),
        ("ec", "HS256", "alg", {"presented": "HS256"}),
        ("ec", "", "alg", {}),
        (7, "ES256", "kid", {"presented_type": "int"}),
    ],
)
def test_select_refusals(
    mixed: JWKSet, kid: Any, alg: str, check: str, detail: dict[str, Any]
) -> None:
    with pytest.raises(InvalidToken) as info:
        mixed.select(kid, alg)
    assert info.value.error == "invalid_token"
    assert info.value.check == check
    for name, value in detail.items():
        assert info.value.details[name] == value


def test_long_kid_is_truncated_in_details(mixed: JWKSet) -> None:
    with pytest.raises(InvalidToken) as info:
        mixed.select("k" * 5000, "ES256")
    shown = info.value.details["presented"]
    assert isinstance(shown, str)
    assert len(shown) < 100


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param([], "JSON object", id="not-object"),
        pytest.param({}, "keys", id="no-keys"),
        pytest.param({"keys": {}}, "keys", id="keys-not-array"),
        pytest.param({"keys": ["x"]}, "#0", id="key-not-object"),
        pytest.param({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "private or symmetric", id="oct"),
        pytest.param({"keys": [{"kty": "oct"}]}, "private or symmetric", id="oct-no-k"),
    ],
)
def test_from_dict_refuses_malformed_sets(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JWKSet.from_dict(document)


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi"])
def test_from_dict_refuses_published_private_members(
    keys: dict[str, PrivateKey], member: str
) -> None:
    good = _jwk(keys["ES256"], kid="good")
    leaked = _jwk(keys["RS256"], kid="leaked", **{member: "AQAB"})
    with pytest.raises(ValueError, match=f"#1.*{member}") as info:
        JWKSet.from_dict({"keys": [good, leaked]})
    assert "AQAB" not in str(info.value)


def test_from_dict_refuses_non_string_kid_and_alg(keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(ValueError, match="kid"):
        JWKSet.from_dict({"keys": [_jwk(keys["ES256"], kid=1)]})
    with pytest.raises(ValueError, match="alg"):
        JWKSet.from_dict({"keys": [_jwk(keys["ES256"], alg=["ES256"])]})
    with pytest.raises(ValueError, match="does not fit"):
        JWKSet.from_dict({"keys": [_jwk(keys["ES256"], alg="ES384")]})


def test_unusable_keys_are_skipped_with_a_reason(keys: dict[str, PrivateKey]) -> None:
    short_n = b64url_encode(((1 << 1023) | 1).to_bytes(128, "big"))
    document = {
        "keys": [
            _jwk(keys["ES256"], kid="ok"),
            _jwk(keys["RS256"], kid="enc", use="enc"),
            _jwk(keys["ES256"], kid="ops", key_ops=["encrypt"]),
            {"kty": "RSA", "kid": "short", "n": short_n, "e": "AQAB"},
            {"kty": "OKP", "kid": "x", "crv": "X25519", "x": "A" * 43},
            _jwk(keys["ES256"], kid="hs", alg="HS256"),
        ]
    }
    jwks = JWKSet.from_dict(document)
    assert jwks.kids == ("ok",)
    assert [kid for kid, _ in jwks.skipped] == ["enc", "ops", "short", "x", "hs"]
    with pytest.raises(InvalidToken) as info:
        jwks.select("short", "RS256")
    assert info.value.check == "kid"
    assert "2048" in str(info.value.details["skipped_because"])


def test_key_ops_with_verify_is_usable(keys: dict[str, PrivateKey]) -> None:
    jwks = JWKSet.from_dict({"keys": [_jwk(keys["ES256"], kid="k", key_ops=["verify"])]})
    assert jwks.select("k", "ES256") == keys["ES256"].public_key()


def test_entries_are_parsed_once(mixed: JWKSet) -> None:
    first = mixed.select("ec", "ES256")
    assert mixed.select("ec", "ES256") is first
    entry = mixed.select_entry("ec", "ES256")
    assert entry.thumbprint == jwk_thumbprint(first)


def test_as_jwk_set_caches_mappings_by_content(keys: dict[str, PrivateKey]) -> None:
    document = {"keys": [_jwk(keys["ES256"], kid="cache-me")]}
    first = as_jwk_set(document)
    assert as_jwk_set({"keys": [dict(document["keys"][0])]}) is first
    assert as_jwk_set(first) is first
    other = as_jwk_set({"keys": [_jwk(keys["ES384"], kid="cache-me")]})
    assert other is not first
    assert other.generation != first.generation


def test_from_keys_and_to_dict_round_trip(keys: dict[str, PrivateKey]) -> None:
    jwks = JWKSet.from_keys(keys["ES256"].public_key(), keys["EdDSA"].public_key())
    assert jwks.kids == (jwk_thumbprint(keys["ES256"]), jwk_thumbprint(keys["EdDSA"]))
    document = jwks.to_dict()
    assert [k["alg"] for k in document["keys"]] == ["ES256", "EdDSA"]
    again = JWKSet.from_dict(document)
    assert again.kids == jwks.kids
    named = JWKSet.from_keys(keys["ES256"].public_key(), kids=["mine"])
    assert named.kids == ("mine",)
    with pytest.raises(ValueError, match="one entry per key"):
        JWKSet.from_keys(keys["ES256"].public_key(), kids=[])


def test_repr_lists_kids_only(mixed: JWKSet) -> None:
    assert repr(mixed) == "JWKSet(kids=('ec', 'ed', 'rsa', None), skipped=0)"


def test_selection_memo_never_remembers_a_refusal(mixed: JWKSet) -> None:
    for _ in range(2):
        with pytest.raises(InvalidToken) as unknown:
            mixed.select("nope", "ES256")
        assert unknown.value.check == "kid"
        with pytest.raises(InvalidToken) as misfit:
            mixed.select("ec", "ES384")
        assert misfit.value.check == "alg"
    assert mixed.select_entry("ec", "ES256") is mixed.select_entry("ec", "ES256")
    assert mixed.select_entry(None, "ES384").kid is None  # the only P-384 key


def test_selection_memo_is_bounded_by_the_set(mixed: JWKSet) -> None:
    for i in range(50):  # unknown kids are refused, so they never enter the memo
        with pytest.raises(InvalidToken):
            mixed.select(f"k{i}", "ES256")
    assert len(mixed._chosen) <= len(mixed) * 11


def test_str_subclass_kid_is_selected_but_not_memoised(mixed: JWKSet) -> None:
    class Kid(str):
        pass

    before = dict(mixed._chosen)
    assert mixed.select(Kid("ec"), "ES256") is mixed.select("ec", "ES256")
    assert all(type(kid) is not Kid for kid, _ in mixed._chosen)
    assert set(before) <= set(mixed._chosen)


def test_rsa_keys_outside_the_bounds_are_skipped_before_use(keys: dict[str, PrivateKey]) -> None:
    """Issue 11: RSA e = 65537 only and 2048-8192-bit moduli, checked on the encoded JWK."""
    good = public_jwk(keys["RS256"])
    big_e = {**good, "e": "AQAD"}  # 65539
    huge_e = {**good, "e": "A" + "Q" * 400}
    long_n = {**good, "n": "r" + "A" * 1400}
    document = {
        "keys": [
            {**big_e, "kid": "e65539"},
            {**huge_e, "kid": "huge-e"},
            {**long_n, "kid": "long-n"},
            {**good, "kid": "ok"},
        ]
    }
    parsed = JWKSet.from_dict(document)
    assert parsed.kids == ("ok",)
    reasons = dict(parsed.skipped)
    assert "65537" in str(reasons["e65539"])
    assert "65537" in str(reasons["huge-e"])
    assert "8192" in str(reasons["long-n"])


def test_from_keys_refuses_rsa_keys_outside_the_bounds() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    e3 = rsa.generate_private_key(public_exponent=3, key_size=2048).public_key()
    with pytest.raises(ValueError, match="65537"):
        JWKSet.from_keys(e3)
