"""``tokenlib probe`` on the command line: dry run, JSON, JUnit, HTML, exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenlib.bearer import Issuer
from tokenlib.jwk import generate_key, jwk_thumbprint, write_private_key
from tokenlib.lab.probe_targets import ProbeTargets
from tokenlib.probe._cli import main

URL = "https://api.example.com/orders/42"


@pytest.fixture
def dpop_inputs(tmp_path: Path) -> tuple[str, Path]:
    key = generate_key("ES256")
    token = Issuer("https://as.example.com", generate_key("ES256")).issue(
        subject="alice", client_id="c", audience="x", jkt=jwk_thumbprint(key)
    )
    return token, write_private_key(tmp_path / "k.pem", key)


def test_dry_run_prints_and_sends_nothing(
    dpop_inputs: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token, key = dpop_inputs
    # api.example.com is never contacted: a real send would fail (no network).
    assert main([URL, "--token", token, "--key", str(key), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[dpop.bearer_downgrade]" in out
    assert "nothing was sent" in out
    assert token not in out


@pytest.mark.parametrize(
    "argv",
    [
        [URL, "--token", "t"],  # opaque token, no key or cert: no binding
        [URL],  # no token
        ["ftp://x", "--token", "t", "--key", "k"],
        [URL, "--token-file", "/nonexistent/token"],
        [URL, "--mode", "as", "--key", "k"],
        [URL, "--bogus"],
    ],
)
def test_usage_and_input_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err


def test_error_messages_escape_control_characters(
    dpop_inputs: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token, _ = dpop_inputs
    assert main([URL, "--token", token, "--key", "/nonexistent/\x1b[2Jk.pem"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "\\x1b" in err


def test_register_adds_the_command() -> None:
    import argparse

    from tokenlib.probe._cli import register, run

    parser = argparse.ArgumentParser(prog="tokenlib")
    sub = parser.add_subparsers(dest="command")
    probe_parser = register(sub)
    assert isinstance(probe_parser, argparse.ArgumentParser)
    args = parser.parse_args(["probe", URL, "--token", "t", "--dry-run"])
    assert args.func is run


@pytest.fixture(scope="module")
def targets() -> Iterator[ProbeTargets]:
    with ProbeTargets() as lab:
        yield lab


@pytest.mark.slow
def test_json_junit_html_and_exit_codes(
    targets: ProbeTargets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--token", targets.dpop_token, "--key", str(targets.dpop_key_file),
              "--ca", str(targets.ca_file)]  # fmt: skip
    junit, page = tmp_path / "probe.xml", tmp_path / "probe.html"
    code = main([targets.urls["conforming"], *common, "--json", "--junit", str(junit),
                 "--html", str(page)])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["summary"]["must_failed"] == 0
    assert {c["status"] for c in data["checks"]} <= {"passed", "failed", "not_applicable"}
    suite = ET.parse(junit).getroot().find("testsuite")  # noqa: S314 (our own output)
    assert suite is not None
    assert suite.get("failures") == "0"
    assert "<table>" in page.read_text(encoding="utf-8")

    code = main([targets.urls["weak"], *common])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL dpop.bearer_downgrade (must)" in out


@pytest.mark.slow
def test_mtls_on_the_command_line(
    targets: ProbeTargets, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([targets.urls["weak"], "--token", targets.mtls_token, "--cert",
                 str(targets.cert_file), "--cert-key", str(targets.cert_key_file), "--ca",
                 str(targets.ca_file), "--json"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    failed = [c["id"] for c in data["checks"] if c["status"] == "failed"]
    assert failed == ["mtls.injected_client_cert"]
