"""tokenlib._htu: RFC 3986 §6.2.2/§6.2.3 normalisation of DPoP ``htu`` (RFC 9449 §4.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib._htu import normalize_htu, normalize_server_url
from tokenlib.dpop import normalize_htu as exported


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # syntax-based (RFC 3986 §6.2.2): case, percent-encoding, dot segments
        ("HTTPS://RS.EXAMPLE.COM/api", "https://rs.example.com/api"),
        ("https://rs.example.com/%7euser", "https://rs.example.com/~user"),
        ("https://rs.example.com/%41%2d%5F%2E", "https://rs.example.com/A-_."),
        ("https://rs.example.com/a%2fb", "https://rs.example.com/a%2Fb"),
        ("https://rs.example.com/a%20b", "https://rs.example.com/a%20b"),
        ("https://rs.example.com/a/./b/../c", "https://rs.example.com/a/c"),
        ("https://rs.example.com/a/b/..", "https://rs.example.com/a/"),
        ("https://rs.example.com/a/b/.", "https://rs.example.com/a/b/"),
        ("https://rs.example.com/../../a", "https://rs.example.com/a"),
        ("https://rs.example.com/%2e%2E/a", "https://rs.example.com/a"),
        ("https://rs.example.com/a/...", "https://rs.example.com/a/..."),
        # scheme-based (RFC 3986 §6.2.3): default port, empty port, empty path
        ("https://rs.example.com:443/api", "https://rs.example.com/api"),
        ("http://rs.example.com:80/api", "http://rs.example.com/api"),
        ("https://rs.example.com:/api", "https://rs.example.com/api"),
        ("https://rs.example.com:0443/api", "https://rs.example.com/api"),
        ("https://rs.example.com:80/api", "https://rs.example.com:80/api"),
        ("http://rs.example.com:443/api", "http://rs.example.com:443/api"),
        ("https://rs.example.com", "https://rs.example.com/"),
        # query and fragment are not part of htu (RFC 9449 §4.2)
        ("https://rs.example.com/api?a=1&b=2", "https://rs.example.com/api"),
        ("https://rs.example.com/api#frag", "https://rs.example.com/api"),
        ("https://rs.example.com/api?a=/../x#f?g", "https://rs.example.com/api"),
        ("https://rs.example.com?x", "https://rs.example.com/"),
        # path case and trailing slash are significant
        ("https://rs.example.com/API/", "https://rs.example.com/API/"),
        # A-labels (compared as lower-case ASCII), IPv4, IPv6
        ("https://XN--BCHER-KVA.example/a", "https://xn--bcher-kva.example/a"),
        ("https://xn--fa-hia.example/", "https://xn--fa-hia.example/"),
        ("https://rs%2Eexample.com/a", "https://rs.example.com/a"),
        ("https://192.0.2.1:8443/a", "https://192.0.2.1:8443/a"),
        ("https://[2001:DB8:0:0:0:0:0:1]/a", "https://[2001:db8::1]/a"),
        ("https://[::1]:443/a", "https://[::1]/a"),
        # non-ASCII path characters: UTF-8 percent-encoded (RFC 3987 §3.1)
        ("https://rs.example.com/ä", "https://rs.example.com/%C3%A4"),
        ("https://rs.example.com/%c3%a4", "https://rs.example.com/%C3%A4"),
    ],
)
def test_normal_forms(url: str, expected: str) -> None:
    assert normalize_htu(url) == expected
    assert normalize_server_url(url) == expected
    assert normalize_htu(expected) == expected  # idempotent


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/api", "absolute"),
        ("rs.example.com/api", "absolute"),
        ("ftp://rs.example.com/", "scheme"),
        ("javascript://rs.example.com/", "scheme"),
        ("https:/api", "authority"),
        ("https:///api", "authority"),
        ("https://user:pw@rs.example.com/", "userinfo"),
        ("https://rs.example.com@evil.example/", "userinfo"),
        ("https://rs.example.com:99999/", "range"),
        ("https://rs.example.com:0/", "range"),
        ("https://rs.example.com:8a/", "number"),
        ("https://rs.example.com:-1/", "number"),
        ("https://rs.example.com/a b", "whitespace"),
        ("https://rs.example.com/a\tb", "whitespace"),
        ("https://rs.example.com/a\x00", "whitespace"),
        ("https://rs.example.com\\evil.example/", "backslash"),
        (" https://rs.example.com/", "whitespace"),
        ("https://rs.example.com/%zz", "percent"),
        ("https://rs.example.com/%4", "percent"),
        ("https://rs.example.com/<script>", "not allowed"),
        ("https://rs.example.com/a|b", "not allowed"),
        ("https://rs!example.com/", "DNS name"),
        ("https://rs_example..com/", "DNS name"),
        ("https://-rs.example.com/", "DNS name"),
        ("https://%ff.example/", "UTF-8"),
        ("https://%zz.example/", "percent"),
        ("https://[::1/", "IPv6"),
        ("https://[::1]x/", "IPv6"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://[v1.x]/", "IPvFuture"),
        ("https://[not-an-ip]/", "IPv6"),
        ("https://" + "a" * 9000 + ".example/", "longer"),
    ],
)
def test_malformed_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_htu(url)


def test_host_laundering_cannot_forge_the_path() -> None:
    """auth0/node-oauth2-jwt-bearer#244: a ``Host`` of ``rs.example.com/intended?``
    glued in front of the real path moves the real path into the query. tokenlib's
    ResourceServer never builds URLs from ``Host`` when ``public_base_url`` is set; the
    normaliser itself keeps query text out of the path."""
    laundered = "https://rs.example.com/intended?/actual/path"
    assert normalize_htu(laundered) == "https://rs.example.com/intended"


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        normalize_htu(b"https://rs.example.com/")  # type: ignore[arg-type]


def test_dpop_reexports_normalize_htu() -> None:
    assert exported is normalize_htu


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_SEGMENT = st.text("abcXYZ019-._~!$&'()*+,;=:@", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)


@st.composite
def _equivalent_pair(draw: st.DrawFn) -> tuple[str, str]:
    scheme = draw(st.sampled_from(["http", "https"]))
    host = ".".join(draw(st.lists(_LABEL, min_size=1, max_size=3)))
    segments = draw(st.lists(_SEGMENT, max_size=4))
    path = "/" + "/".join(segments)
    base = f"{scheme}://{host}{path}"
    # A spelling of the same URI: case, default port, escapes, dot segments, query.
    port = draw(st.sampled_from(["", ":", ":80" if scheme == "http" else ":443"]))
    variant_segments = []
    for segment in segments:
        chars = [f"%{ord(c):02x}" if c.isalnum() and draw(st.booleans()) else c for c in segment]
        if draw(st.booleans()):
            variant_segments.append(".")  # "/./x" is "/x"; a final "/." would add a slash
        variant_segments.append("".join(chars))
    variant_path = "/" + "/".join(variant_segments)
    suffix = draw(st.sampled_from(["", "?q=1", "#f", "?a=/../b#c"]))
    variant = f"{scheme.upper()}://{host.upper()}{port}{variant_path}{suffix}"
    return base, variant


@settings(max_examples=300, deadline=None)
@given(pair=_equivalent_pair())
def test_equivalent_spellings_normalise_alike(pair: tuple[str, str]) -> None:
    base, variant = pair
    normal = normalize_htu(base)
    assert normalize_htu(variant) == normal
    assert normalize_htu(normal) == normal


@settings(max_examples=200, deadline=None)
@given(pair=_equivalent_pair())
def test_trailing_slash_and_other_paths_stay_different(pair: tuple[str, str]) -> None:
    base, _ = pair
    normal = normalize_htu(base)
    slashed = normalize_htu(base + "/x") if base.endswith("/") else normalize_htu(base + "/")
    assert slashed != normal
    assert normalize_htu(base.replace("://", "://other-", 1)) != normal


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_arbitrary_text_is_normalised_or_refused_with_value_error(text: str) -> None:
    for candidate in (text, "https://rs.example.com/" + text, "https://" + text):
        try:
            result = normalize_htu(candidate)
        except ValueError:
            continue
        assert normalize_htu(result) == result


# ----------------------------------------- internationalised hosts (issue 11)


@pytest.mark.parametrize(
    "url",
    [
        "https://faß.example/",
        "https://Bücher.example/a",
        "https://b%C3%BCcher.example/a",  # percent-encoded UTF-8 host
        "https://fa%C3%9F.example/",
        "https://ｅｘａｍｐｌｅ.com/",  # fullwidth: UTS #46 would map it, tokenlib refuses
    ],
)
def test_non_ascii_hosts_are_refused_explicitly(url: str) -> None:
    with pytest.raises(ValueError, match="A-label"):
        normalize_htu(url)
    with pytest.raises(ValueError, match="A-label"):
        normalize_server_url(url)


def test_what_httpx_sends_for_an_idn_host_is_accepted_and_not_the_idna2003_form() -> None:
    """httpx (UTS #46 / IDNA 2008, like browsers) sends faß.example as xn--fa-hia; the
    IDNA 2003 codec the core used to apply made it fass.example — another host."""
    httpx = pytest.importorskip("httpx")
    url = httpx.URL("https://faß.example/api?x=1")
    assert url.raw_host == b"xn--fa-hia.example"
    assert normalize_htu(str(url)) == "https://xn--fa-hia.example/api"
    assert normalize_htu(str(url)) != normalize_htu("https://fass.example/api")
    assert "faß.example".encode("idna") == b"fass.example"  # why the codec is not used
