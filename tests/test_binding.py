"""tokenlib.binding: one definition of binding kinds and the parsed cnf (issue 11)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
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


# -- binding kinds are named through Binding, not string literals (issue 11) ---------------

ROOT = Path(__file__).resolve().parents[1]
#: Modules that name binding kinds through :class:`Binding`.
MIGRATED = (
    "tokenlib/server.py",
    *(
        f"tokenlib/lab/{name}.py"
        for name in (
            "scenarios",
            "topology",
            "runner",
            "results",
            "environment",
            "probe_targets",
            "weak_rs",
        )
    ),
    *(f"tokenlib/probe/{name}.py" for name in ("catalogue", "runner", "build", "report")),
    "tokenlib/cli/token.py",
    "tokenlib/analysis/schema.py",
    "tokenlib/analysis/importers/*.py",
)
_KINDS = frozenset(b.value for b in Binding)
#: Vocabularies that share words with the binding kinds: an authorization scheme
#: (``scheme``), the analysis models' families and mechanisms (``token_binding`` and the
#: DPoP variants are not bindings) and a recommendation. A literal compared with one of
#: these is not a binding kind. A case-folded operand (``x.lower()``) is a protocol name
#: (scheme, header, token_type): binding kinds are never case-folded.
_OTHER_VOCABULARIES = frozenset({"scheme", "fam", "family", "mech", "mechanism", "recommended"})


def _kind_literal(node: ast.expr) -> bool:
    """A binding kind as a string constant, or a tuple/list/set holding one."""
    if isinstance(node, ast.Constant):
        return node.value in _KINDS
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_kind_literal(item) for item in node.elts)
    return False


def _other_vocabulary(node: ast.expr) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("lower", "casefold")
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return node.slice.value in _OTHER_VOCABULARIES
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    return name in _OTHER_VOCABULARIES


def binding_literal_comparisons(source: str) -> list[str]:
    """``line: comparison`` for each comparison of a binding-kind string literal
    (``b == "dpop"``, ``b in ("mtls", "dpop")``) outside the other vocabularies."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if any(map(_kind_literal, operands)) and not any(map(_other_vocabulary, operands)):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def _migrated_files() -> list[Path]:
    files = [path for pattern in MIGRATED for path in sorted(ROOT.glob(pattern))]
    assert len(files) >= len(MIGRATED), "a listed module is missing"
    return files


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ('if binding == "dpop": pass', True),
        ('ok = b != "bearer"', True),
        ('ok = b in ("mtls", "dpop")', True),
        ('ok = "dpop+mtls" == row["binding"]', True),
        ("ok = b == Binding.DPOP", False),
        ('ok = scheme.lower() == "dpop"', False),  # an authorization scheme / header name
        ('ok = scheme not in ("dpop", "bearer")', False),
        ('ok = fam == "mtls"', False),  # the models' family vocabulary
        ('ok = rec["recommended"] == "bearer"', False),
        ('tokens = {"dpop": 1}', False),  # not a comparison
    ],
)
def test_the_literal_detector_flags_comparisons_only(source: str, flagged: bool) -> None:
    assert bool(binding_literal_comparisons(source)) is flagged


def test_migrated_modules_compare_binding_kinds_through_the_enum() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{hit}"
        for path in _migrated_files()
        for hit in binding_literal_comparisons(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "use tokenlib.binding.Binding, not a string literal:\n" + "\n".join(
        offenders
    )


def test_the_resource_server_has_one_check_per_cnf_method() -> None:
    from tokenlib.server import _BINDING_CHECKS

    # DPoP first: a scheme/cnf.jkt mismatch is reported before any certificate problem.
    assert [(c.binding, c.member) for c in _BINDING_CHECKS] == [
        (Binding.DPOP, "jkt"),
        (Binding.MTLS, "x5t#S256"),
    ]
    assert {c.member: c.binding for c in _BINDING_CHECKS} == {
        member: binding for member, (binding, _) in CNF_MEMBERS.items()
    }
    assert [c.scheme for c in _BINDING_CHECKS] == ["DPoP", None]
