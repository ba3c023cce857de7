"""tokenlib.binding: one definition of binding kinds and the parsed cnf (issue 11)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenlib.binding import CNF_MEMBERS, Binding, Confirmation
from tokenlib.claims import parse_cnf
from tokenlib.errors import InvalidToken

JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
X5T = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"


def test_binding_values_are_the_strings_used_everywhere() -> None:
    assert [b.value for b in Binding] == ["bearer", "dpop", "mtls", "dpop+mtls"]
    assert Binding.DPOP == "dpop"
    assert json.dumps({"binding": Binding.MTLS}) == '{"binding": "mtls"}'
    assert f"{Binding.DPOP_MTLS}" == "dpop+mtls"


@pytest.mark.parametrize(
    ("jkt", "x5t", "binding", "methods"),
    [
        (None, None, Binding.BEARER, set()),
        (JKT, None, Binding.DPOP, {Binding.DPOP}),
        (None, X5T, Binding.MTLS, {Binding.MTLS}),
        (JKT, X5T, Binding.DPOP_MTLS, {Binding.DPOP, Binding.MTLS}),
    ],
)
def test_binding_of_cnf_members(
    jkt: str | None, x5t: str | None, binding: Binding, methods: set[Binding]
) -> None:
    assert Binding.of(jkt=jkt, x5t_s256=x5t) is binding
    assert binding.methods == methods
    confirmation = Confirmation(jkt=jkt, x5t_s256=x5t)
    assert confirmation.binding is binding
    assert Confirmation.parse(confirmation.to_cnf()) == confirmation if jkt or x5t else True


def test_parse_tolerates_unknown_members_next_to_a_known_one() -> None:
    parsed = Confirmation.parse({"jkt": JKT, "kc-jkt-type": "x"})
    assert parsed == Confirmation(jkt=JKT)
    assert parse_cnf({"x5t#S256": X5T}) == (None, X5T)


@pytest.mark.parametrize(
    ("cnf", "problem"),
    [
        ("jkt", "type"),
        ([JKT], "type"),
        ({"jkt": "short"}, "syntax"),
        ({"jkt": 5}, "syntax"),
        ({"x5t#S256": JKT + "A"}, "syntax"),
        ({"kid": "k"}, "unsupported"),  # only unknown methods: never silently bearer
        ({}, "unsupported"),
    ],
)
def test_rfc7800_s3_1_bad_cnf_is_refused(cnf: Any, problem: str) -> None:
    with pytest.raises(InvalidToken) as info:
        Confirmation.parse(cnf)
    assert info.value.check == "cnf"
    assert info.value.details["problem"] == problem


def test_cnf_members_name_their_rfc() -> None:
    assert CNF_MEMBERS["jkt"] == (Binding.DPOP, "RFC 9449 §6.1")
    assert CNF_MEMBERS["x5t#S256"] == (Binding.MTLS, "RFC 8705 §3.1")
