"""The request header fields the verifiers read, shared by the resource server and the AS.

Field names are case-insensitive (RFC 9110 §5.1). RFC 9449 §4.3 check 1 allows exactly one
``DPoP`` field; a comma inside a value means a proxy merged several fields into one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tokenlib.errors import InvalidDPoPProof, InvalidRequest

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def collect(headers: Headers) -> tuple[list[str], list[str]]:
    """The ``Authorization`` and ``DPoP`` field values, in order (``InvalidRequest`` if a
    name or value is not a string)."""
    items: Iterable[tuple[str, str]]
    if type(headers) is list or type(headers) is tuple:
        items = headers
    else:
        items = headers.items() if isinstance(headers, Mapping) else headers
    authorization: list[str] = []
    dpop: list[str] = []
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidRequest(
                "header names and values must be strings", details={"check": "headers"}
            )
        lowered = name.lower()
        if lowered == "authorization":
            authorization.append(value.strip(" \t"))
        elif lowered == "dpop":
            if "," in value:
                dpop.extend(part.strip(" \t") for part in value.split(","))
            else:
                dpop.append(value.strip(" \t"))
    return authorization, dpop


def multiple_dpop_fields(count: int) -> InvalidDPoPProof:
    """The error for a request carrying ``count`` > 1 ``DPoP`` fields (RFC 9449 §4.3 (1))."""
    return InvalidDPoPProof(
        "more than one DPoP header field",
        details={"check": "dpop_header", "count": count, "rfc": "RFC 9449 §4.3 (1)"},
    )
