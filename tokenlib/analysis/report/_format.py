"""Numbers for reading: one label map and number format (:mod:`tokenlib.analysis.labels`)."""

from __future__ import annotations

import importlib
from typing import Any

# ---------------------------------------------------------------------------------------------
# Numbers for reading (tokenlib.analysis.labels is the one label map and number format).


def _labels() -> Any:
    return importlib.import_module("tokenlib.analysis.labels")


def _share(x: float) -> str:
    return str(_labels().fmt_value(x, "share"))


def _count(n: float) -> str:
    return str(_labels().fmt_count(n))


def _span(low: float, high: float, unit: str = "share") -> str:
    """``"29–81%"`` (the interval alone)."""
    fmt = _labels().fmt_value
    a, b = str(fmt(low, unit)), str(fmt(high, unit))
    if unit == "share" and a.endswith("%") and b.endswith("%"):
        a = a[:-1]
    return f"{a}\u2013{b}"


def _basis_label(basis: str) -> str:
    return str(_labels().label("basis", basis)) if basis else ""
