"""The catalogue is data: unique ids, an RFC section and texts on every row, the FAPI 2.0
conformance suite's DPoP resource-server negatives all present, and a request builder for
every resource-server check."""

from __future__ import annotations

import re

import pytest

from tokenlib.jwk import generate_key
from tokenlib.probe import AS_CHECKS, CHECKS, RS_CHECKS, Check, check_by_id
from tokenlib.probe.build import RequestBuilder, Unbuildable

# The DPoP RS negatives named in issue 13 (from the OpenID FAPI 2.0 conformance suite's
# resource-server tests), and the variants that must pass.
ISSUE_13_DPOP = {
    "dpop.duplicate_header", "dpop.malformed", "dpop.typ_missing", "dpop.typ_wrong",
    "dpop.alg_missing", "dpop.alg_none", "dpop.alg_mismatch", "dpop.jwk_missing",
    "dpop.jwk_private", "dpop.signature_wrong", "dpop.other_key", "dpop.jti_missing",
    "dpop.jti_replayed", "dpop.htm_missing", "dpop.htm_wrong", "dpop.htu_missing",
    "dpop.htu_wrong_path", "dpop.iat_missing", "dpop.iat_past", "dpop.iat_future",
    "dpop.ath_missing", "dpop.ath_wrong", "dpop.htu_query", "dpop.htu_fragment",
    "dpop.htu_default_port", "dpop.htu_case", "dpop.bearer_downgrade", "dpop.no_proof",
    "dpop.extra_claims", "dpop.scheme_case", "dpop.nonce_challenge", "dpop.nonce_retry",
    "dpop.nonce_unknown", "mtls.no_cert", "mtls.other_cert", "mtls.injected_client_cert",
    "rs.no_token",
}  # fmt: skip
MUST_PASS = {"dpop.htu_query", "dpop.htu_fragment", "dpop.htu_default_port", "dpop.htu_case",
             "dpop.extra_claims", "dpop.scheme_case"}  # fmt: skip


def test_ids_are_unique_and_namespaced() -> None:
    ids = [c.id for c in CHECKS]
    assert len(ids) == len(set(ids))
    for check in RS_CHECKS:
        assert check.target == "rs"
        assert check.id.split(".")[0] in ("rs", "dpop", "mtls")
    for check in AS_CHECKS:
        assert check.target == "as"
        assert check.id.startswith("as.")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_every_check_documents_its_source_section(check: Check) -> None:
    assert re.search(r"RFC \d{4} §\d", check.rfc), check.rfc
    assert check.severity in ("must", "should", "info")
    assert check.title
    assert check.sends
    assert check.expects


def test_issue_13_cases_are_covered() -> None:
    assert {c.id for c in RS_CHECKS} >= ISSUE_13_DPOP
    for check_id in MUST_PASS:
        assert check_by_id(check_id).expect == "accept"


def test_check_by_id_names_an_unknown_id() -> None:
    with pytest.raises(KeyError, match="nope"):
        check_by_id("nope")


def test_a_check_without_source_is_refused() -> None:
    with pytest.raises(ValueError, match="RFC section"):
        Check("x.y", "t", "", "must", "any", "s", "e", "reject")
    with pytest.raises(ValueError, match="severity"):
        Check("x.y", "t", "RFC 1 §1", "may", "any", "s", "e", "reject")  # type: ignore[arg-type]


@pytest.mark.parametrize("check", RS_CHECKS, ids=lambda c: c.id)
def test_every_rs_check_has_a_request_builder(check: Check) -> None:
    builder = RequestBuilder("https://api.example.com/orders/42", "GET", "tok.en.x",
                             generate_key("ES256"))  # fmt: skip
    if check.id == "mtls.injected_client_cert":
        assert builder.mtls_injected(check.id, ":AAAA:").headers
        return
    try:
        requests = builder.build(check.id)
    except Unbuildable:
        assert check.id == "dpop.htu_default_port"  # only for non-default ports
        return
    assert requests
    assert all(r.check_id == check.id for r in requests)
