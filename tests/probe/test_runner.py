"""The probe's runner against in-process mock servers (httpx.MockTransport): judging,
not-applicable logic, origin and request bounds, rate limiting and input errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tokenlib.bearer import Issuer
from tokenlib.jwk import generate_key, jwk_thumbprint, write_private_key
from tokenlib.probe import MAX_REQUESTS, RS_CHECKS, ProbeInputError, plan, probe

URL = "https://api.example.com/orders/42"
NOW = 1_700_000_000
KEY = generate_key("ES256")
ISSUER = Issuer("https://as.example.com", generate_key("ES256"))


def _token(**kw: object) -> str:
    return ISSUER.issue(subject="alice", client_id="c", audience="https://api.example.com",
                        now=NOW, **kw)  # type: ignore[arg-type]  # fmt: skip


DPOP_TOKEN = _token(jkt=jwk_thumbprint(KEY))


def _run(
    handler: Callable[[httpx.Request], httpx.Response], **kw: object
) -> tuple[object, list[httpx.Request], list[float]]:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    report = probe(
        URL,
        token=kw.pop("token", DPOP_TOKEN),  # type: ignore[arg-type]
        key=kw.pop("key", KEY),  # type: ignore[arg-type]
        transport=httpx.MockTransport(record),
        clock=lambda: NOW,
        sleep=sleeps.append,
        **kw,  # type: ignore[arg-type]
    )
    return report, seen, sleeps


def _accept_all(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


def _refuse_all(request: httpx.Request) -> httpx.Response:
    return httpx.Response(401, headers={"WWW-Authenticate": 'DPoP error="invalid_token"'})


def test_a_server_that_accepts_everything_fails_every_refusal_check() -> None:
    report, seen, _ = _run(_accept_all)
    failed = {r.id for r in report.failures}  # type: ignore[attr-defined]
    refusals = {c.id for c in RS_CHECKS if c.binding in ("any", "dpop") and c.expect != "accept"}
    nonce = {"dpop.nonce_challenge", "dpop.nonce_unknown"}
    assert failed == refusals - nonce
    assert report.exit_code == 1  # type: ignore[attr-defined]
    assert report.result("rs.no_token").note.endswith("unprotected")  # type: ignore[attr-defined]
    assert all(r.url.host == "api.example.com" for r in seen)
    assert len(seen) == report.requests_sent <= MAX_REQUESTS  # type: ignore[attr-defined]


def test_a_server_that_refuses_the_valid_request_makes_the_rest_not_applicable() -> None:
    report, seen, _ = _run(_refuse_all)
    assert report.result("dpop.valid").status == "failed"  # type: ignore[attr-defined]
    others = [r for r in report.results if r.id.startswith("dpop.") and r.id != "dpop.valid"]  # type: ignore[attr-defined]
    assert all(r.status == "not_applicable" for r in others)
    assert len(seen) == 2  # the unprotected-endpoint check and the valid request, nothing more


def test_redirects_are_never_followed() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://evil.example/steal"})

    report, seen, _ = _run(redirect)
    assert {r.url.host for r in seen} == {"api.example.com"}
    assert report.result("dpop.valid").note == "refused with 302"  # type: ignore[attr-defined]


def test_server_errors_are_not_refusals() -> None:
    def flaky(request: httpx.Request) -> httpx.Response:
        if request.headers.get("DPoP") == "not-a-jwt":
            return httpx.Response(500)
        return _conforming(request)

    report, _, _ = _run(flaky)
    assert report.result("dpop.malformed").status == "failed"  # type: ignore[attr-defined]
    assert "not a 4xx" in report.result("dpop.malformed").note  # type: ignore[attr-defined]


def _conforming(request: httpx.Request) -> httpx.Response:
    """Just enough of a server: the valid request and the must-pass variants succeed."""
    from tokenlib.errors import TokenError
    from tokenlib.server import ResourceServer

    rs = ResourceServer(issuer=ISSUER.issuer, audience="https://api.example.com",
                        jwks=ISSUER.jwks())  # fmt: skip
    global _RS
    rs = _RS = _RS or rs
    try:
        rs.verify(request.method, str(request.url), list(request.headers.multi_items()), now=NOW)
    except TokenError as err:
        return httpx.Response(err.status_code, headers=err.headers, json=err.json_body())
    return httpx.Response(200, json={"ok": True})


_RS = None


def test_rate_is_bounded() -> None:
    import time

    started = time.monotonic()
    report, seen, sleeps = _run(_conforming, rate=5.0)
    elapsed = time.monotonic() - started
    assert report.count("failed") == 0  # type: ignore[attr-defined]
    # The fake sleep does not advance the clock, so the schedule keeps growing: request n
    # is due (n - 1) / rate seconds after the first, minus the time really spent.
    assert len(sleeps) >= len(seen) - 2
    assert max(sleeps) >= (len(seen) - 1) * 0.2 - elapsed - 0.01


def test_rate_limits_are_validated() -> None:
    with pytest.raises(ProbeInputError, match="rate"):
        probe(URL, token=DPOP_TOKEN, key=KEY, rate=0)
    with pytest.raises(ProbeInputError, match="rate"):
        probe(URL, token=DPOP_TOKEN, key=KEY, rate=1000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": DPOP_TOKEN, "key": generate_key("ES256")}, "cnf.jkt"),
        ({"token": DPOP_TOKEN, "key": None}, "--key"),
        ({"token": _token()}, "not sender-constrained"),
        ({"token": "has space"}, "ASCII"),
        ({"token": _token(x5t_s256="A" * 43)}, "--cert"),
        ({"token": DPOP_TOKEN, "key": KEY, "method": "G E T"}, "method"),
        ({"token": DPOP_TOKEN, "key": KEY, "binding": "bearer"}, "binding"),
    ],
)
def test_input_errors_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ProbeInputError, match=message):
        plan(URL, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url", ["ftp://x/y", "https://user:pw@x/y", "/relative", "https://x:99999/"]
)
def test_bad_urls_are_input_errors(url: str) -> None:
    with pytest.raises(ProbeInputError):
        plan(url, token=DPOP_TOKEN, key=KEY)


def test_key_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ProbeInputError, match="cannot read"):
        plan(URL, token=DPOP_TOKEN, key=tmp_path / "missing.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ProbeInputError, match="not a usable private key"):
        plan(URL, token=DPOP_TOKEN, key=bad)
    good = write_private_key(tmp_path / "good.pem", KEY)
    assert plan(URL, token=DPOP_TOKEN, key=good)


def test_plan_sends_nothing_and_covers_the_dpop_checks() -> None:
    requests = plan(URL, token=DPOP_TOKEN, key=KEY)
    ids = {r.check_id for r in requests}
    assert "dpop.valid" in ids
    assert "rs.no_token" in ids
    assert not any(i.startswith("mtls.") for i in ids)
    assert len(requests) <= MAX_REQUESTS
    assert all(r.url.startswith(URL) for r in requests)


def test_opaque_tokens_take_the_binding_from_the_inputs() -> None:
    requests = plan(URL, token="opaque-token", key=KEY)
    assert any(r.check_id == "dpop.valid" for r in requests)


def test_hostile_server_values_are_kept_raw_but_printed_escaped() -> None:
    from tokenlib.probe import render_html, render_junit, render_table

    hostile = 'DPoP error="\x1b]52;c;ZXZpbA==\x07", error_description="<img src=x>\u202e"'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization", "").startswith("Bearer"):
            return httpx.Response(200, text="ok")  # downgrade accepted: a failure to report
        if request.headers.get("DPoP") == "not-a-jwt":
            return httpx.Response(401, headers=[(b"WWW-Authenticate", hostile.encode())])
        return _conforming(request)

    report, _, _ = _run(handler)
    malformed = report.result("dpop.malformed")  # type: ignore[attr-defined]
    assert malformed.www_authenticate == hostile
    for text in (render_table(report), render_html(report), render_junit(report).decode()):  # type: ignore[arg-type]
        assert "\x1b" not in text
        assert "\x07" not in text
        assert "\u202e" not in text
    assert "<img" not in render_html(report)  # type: ignore[arg-type]


def test_the_sender_refuses_any_other_origin() -> None:
    import contextlib

    from tokenlib.probe.build import PlannedRequest
    from tokenlib.probe.runner import _Sender, _target

    seen: list[httpx.Request] = []
    target = _target(URL, token=DPOP_TOKEN, key=KEY, cert=None, cert_key=None, method="GET",
                     binding=None)  # fmt: skip
    with contextlib.ExitStack() as stack:
        sender = _Sender(
            target, verify=True, rate=50.0, timeout=1.0,
            transport=httpx.MockTransport(lambda r: seen.append(r) or _accept_all(r)),
            sleep=lambda s: None, monotonic=lambda: 0.0, stack=stack,
        )  # fmt: skip
        for other in ("https://evil.example/orders/42", "http://api.example.com/orders/42",
                      "https://api.example.com:8443/orders/42"):  # fmt: skip
            with pytest.raises(ProbeInputError, match="another origin"):
                sender.send(PlannedRequest("dpop.valid", "GET", other, ()))
        assert sender.send(PlannedRequest("dpop.valid", "GET", URL + "?q=1", ())).status == 200
    assert [str(r.url) for r in seen] == [URL + "?q=1"]


def test_module_entry_point_prints_help() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "tokenlib.probe", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert "--junit" in done.stdout
