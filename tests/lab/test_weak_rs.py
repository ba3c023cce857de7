"""The deliberately weak resource server: each weakness, seeded alone, makes exactly its
probe checks fail; an unknown weakness is refused."""

from __future__ import annotations

import logging

import pytest

from tokenlib.jwk import generate_key
from tokenlib.lab.probe_targets import ProbeTargets
from tokenlib.lab.weak_rs import WEAKNESS_CHECKS, WEAKNESSES, WeakResourceServer


def test_unknown_weakness_is_refused() -> None:
    from tokenlib.bearer import Issuer

    issuer = Issuer("https://as.example", generate_key("ES256"))
    with pytest.raises(ValueError, match="unknown weaknesses"):
        WeakResourceServer(issuer=issuer.issuer, audience="a", jwks=issuer.jwks(),
                           public_base_url="https://x", weaknesses=["typo"])  # fmt: skip


def test_every_weakness_maps_to_checks() -> None:
    assert set(WEAKNESS_CHECKS) == set(WEAKNESSES)
    assert all(WEAKNESS_CHECKS.values())


@pytest.mark.slow
@pytest.mark.parametrize("weakness", [*WEAKNESSES, None])
def test_each_weakness_alone_fails_exactly_its_checks(
    weakness: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tokenlib.integrations.asgi")  # restored afterwards
    seeded = [weakness] if weakness else []
    with ProbeTargets(weaknesses=seeded) as lab:
        binding = "mtls" if weakness == "trusts_client_cert" else "dpop"
        report = lab.probe("weak", binding)  # type: ignore[arg-type]
        if weakness is None:  # nothing seeded: the weak RS is a conforming one
            report_mtls = lab.probe("weak", "mtls")
            assert report.failures == ()
            assert report_mtls.failures == ()
            return
    failed = {r.id for r in report.failures}
    assert failed, f"{weakness} not reported"
    assert failed <= WEAKNESS_CHECKS[weakness]
