"""The one label map and the number formats of everything a reader sees.

Notebooks, figures and report pages show people labels, never code identifiers: a mechanism is
"DPoP with a shared jti store", not ``dpop_shared_cache``. :func:`label` maps an id of a given
*kind* to its label; mechanism and scenario labels come from :mod:`tokenlib.analysis.models`
(``Mechanism.label`` / ``Scenario.label``), parameter labels from
:data:`tokenlib.analysis.params.LABELS`, control labels from
:mod:`tokenlib.analysis.controls` (register ids in them replaced by the value). An unknown
value of a known kind is humanised (underscores to spaces, first letter capitalised) rather
than rejected, so a user's inventory with a new category still renders.

The ``fmt_*`` functions format numbers for reading: shares as percentages, counts with
thousands separators, durations in the largest sensible unit ("5 min", "24 h", "30 d"), money
as "$7.0M", and never scientific notation for magnitudes between 1e-6 and 1e12.
:func:`present` turns a DataFrame into a table for readers: chosen columns with human
headers, labelled and formatted values, no index column, long text wrapped (never truncated).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import pandas as pd

__all__ = [
    "KINDS",
    "fmt_count",
    "fmt_hours",
    "fmt_number",
    "fmt_range",
    "fmt_seconds",
    "fmt_share",
    "fmt_usd",
    "fmt_value",
    "fmt_yes_no",
    "humanize",
    "id_for",
    "label",
    "labels",
    "present",
]

#: The kinds :func:`label` knows.
KINDS: tuple[str, ...] = (
    "mechanism",
    "scenario",
    "family",
    "view",
    "client_path",
    "client_kind",
    "key_storage",
    "parameter",
    "metric",
    "basis",
    "control",
)

MINUS = "\u2212"
EN_DASH = "\u2013"
NA = "n/a"

_FAMILY = {
    "bearer": "Bearer token",
    "mtls": "mTLS",
    "dpop": "DPoP",
    "token_binding": "Token Binding",
}
_VIEW = {
    "today": "Today's RS support",
    "upgraded": "Every RS upgraded",
}
_CLIENT_PATH = {
    "browser": "Browser",
    "mobile": "Mobile app",
    "gateway_terminated": "Backend behind a TLS-terminating hop",
    "backend_e2e": "Backend, end-to-end TLS",
}
_CLIENT_KIND = {
    "browser_spa": "Browser app (SPA)",
    "mobile_app": "Mobile app",
    "web_backend": "Web backend",
    "service": "Service (machine to machine)",
    "batch_job": "Batch job",
    "ai_agent": "AI agent",
    "partner_integrator": "Partner integration",
    "cli_tool": "Command-line tool",
}
_KEY_STORAGE = {
    "none": "No key",
    "software": "Software key (file or memory)",
    "webcrypto_non_extractable": "Non-extractable browser key (WebCrypto)",
    "platform_keystore": "Mobile platform keystore",
    "hsm_tpm": "HSM or TPM",
}
_BASIS = {
    "inventory": "Inventory only",
    "sourced": "Sourced",
    "derived": "Derived",
    "assumption": "Rests on assumptions",
}
_METRIC = {
    "usable": "Stolen tokens still usable",
    "hours": "Exposure hours (weighted by what is at stake)",
    "usable_share_today": "Stolen tokens still usable today",
    "exposure_hours_today": "Exposure hours today",
    "credential_store_share_today": "Credential-store share of today's exposure",
    "recommendations_removed_share": "Token-theft exposure removed by the recommendations",
    "token_binding_counterfactual_share": "Token Binding at its best: flows it could reach",
}
_VIEW_SUFFIX = {"today": "today's RS support", "upgraded": "every RS upgraded"}
_REGISTER_ID = re.compile(r"\b([ASD]\d+[a-z]?)\b")


def humanize(value: str) -> str:
    """Fallback label: ``"gateway_terminated"`` -> ``"Gateway terminated"``."""
    return _cap(str(value).replace("_", " ").strip())


def _cap(text: str) -> str:
    """First letter upper-cased, unless the word is an acronym written with a lower-case
    prefix ("mTLS", "iOS")."""
    if text[1:2].isupper():
        return text
    return text[:1].upper() + text[1:]


@lru_cache(maxsize=1)
def _mechanisms() -> dict[str, str]:
    from tokenlib.analysis.models import MECHANISMS

    return {m.id: m.label for m in MECHANISMS}


@lru_cache(maxsize=1)
def _scenarios() -> dict[str, str]:
    from tokenlib.analysis.models import SCENARIOS

    out = {s.id: s.label for s in SCENARIOS}
    out.setdefault("refresh_token_theft", "Refresh token stolen")
    return out


@lru_cache(maxsize=1)
def _parameters() -> dict[str, str]:
    """Parameter name -> label, and register id (``A2``) -> the same label."""
    from tokenlib.analysis.params import LABELS, parameter_specs

    out = {name: _cap(text) for name, text in LABELS.items()}
    for spec in parameter_specs():
        out.setdefault(spec.name, humanize(spec.name))
        out[spec.id] = out[spec.name]
    return out


@lru_cache(maxsize=1)
def _parameter_values() -> dict[str, tuple[float, str]]:
    """Register id -> (reference value, unit)."""
    from tokenlib.analysis.params import parameter_specs

    return {spec.id: (spec.value, spec.unit) for spec in parameter_specs()}


def _resolve_register_ids(text: str) -> str:
    values = _parameter_values()

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            return key
        value, unit = values[key]
        return fmt_value(value, unit)

    return _REGISTER_ID.sub(sub, text)


@lru_cache(maxsize=1)
def _controls() -> dict[str, str]:
    from tokenlib.analysis.controls import CONTROLS

    return {c.id: _resolve_register_ids(c.label) for c in CONTROLS}


def _metric(value: str) -> str:
    if value in _METRIC:
        return _METRIC[value]
    view = ""
    stem = value
    for v in _VIEW_SUFFIX:
        if stem.endswith("_" + v):
            view, stem = v, stem[: -len(v) - 1]
            break
    suffix = f" ({_VIEW_SUFFIX[view]})" if view else ""
    for prefix, text in (
        ("deployable_share_", "Flows that could deploy {}"),
        ("usable_share_", "Stolen tokens still usable with {}"),
        ("token_theft_removed_", "Token-theft exposure removed by {}"),
        ("blast_radius_removed_", "Blast radius removed by {}"),
    ):
        if stem.startswith(prefix):
            rest = stem[len(prefix) :]
            what = _FAMILY.get(rest) or _mechanisms().get(rest) or humanize(rest)
            return text.format(what) + suffix
    return humanize(value)


def _table(kind: str) -> Mapping[str, str]:
    if kind == "mechanism":
        return _mechanisms()
    if kind == "scenario":
        return _scenarios()
    if kind == "parameter":
        return _parameters()
    if kind == "control":
        return _controls()
    return {
        "family": _FAMILY,
        "view": _VIEW,
        "client_path": _CLIENT_PATH,
        "client_kind": _CLIENT_KIND,
        "key_storage": _KEY_STORAGE,
        "basis": _BASIS,
        "metric": _METRIC,
    }[kind]


def label(kind: str, value: str) -> str:
    """The human label of ``value`` (an id) of ``kind`` (one of :data:`KINDS`).

    ``label("mechanism", "dpop_shared_cache")`` -> ``"DPoP with a shared jti store"``.
    Parameters accept the name (``e_rs``) or the register id (``A2``). A value that already is
    a label of that kind is returned unchanged; an unknown value is humanised. ``ValueError``
    for an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown label kind {kind!r}; expected one of {', '.join(KINDS)}")
    key = str(value)
    if kind == "metric":
        return _metric(key)
    table = _table(kind)
    if key in table:
        return table[key]
    if key in set(table.values()):
        return key
    return humanize(key)


def labels(kind: str, values: Any) -> list[str]:
    """:func:`label` of every value of an iterable (a Series, Index or list)."""
    return [label(kind, v) for v in values]


def id_for(kind: str, value: str) -> str:
    """The id behind a label (or the id itself): the inverse of :func:`label`.

    ``id_for("mechanism", "Bearer token")`` -> ``"bearer"``. ``ValueError`` when ``value`` is
    neither an id nor a label of ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown label kind {kind!r}; expected one of {', '.join(KINDS)}")
    key = str(value)
    table = _table(kind)
    if key in table:
        return key
    for k, text in table.items():
        if text == key:
            return k
    raise ValueError(f"{value!r} is neither an id nor a label of kind {kind!r}")


# --------------------------------------------------------------------------- number formats


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _signed(v: float, text: str) -> str:
    return MINUS + text if v < 0 else text


def _plain(v: float, sig: int = 3) -> str:
    """Positive ``v`` with ``sig`` significant digits, thousands separators, never ``e``."""
    if v == 0:
        return "0"
    if v >= 10 ** (sig - 1):
        return f"{round(v):,}"
    decimals = max(0, sig - 1 - math.floor(math.log10(v)))
    text = f"{v:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_number(x: Any, sig: int = 3) -> str:
    """A plain number for reading: ``sig`` significant digits below 100, integers with
    thousands separators above (``1234567.8`` -> ``"1,234,568"``, ``0.000123`` ->
    ``"0.000123"``); never scientific notation. ``"n/a"`` for NaN or non-numbers."""
    v = _finite(x)
    if v is None:
        return NA
    return _signed(v, _plain(abs(v), sig))


def fmt_share(x: Any, digits: int = 0) -> str:
    """A share (fraction of one) as a percentage: ``0.36`` -> ``"36%"``.

    ``digits`` decimals; a non-zero share that would round to zero gets up to two more
    decimals (``0.00098`` -> ``"0.1%"``) and ``"<0.01%"`` below that. Negative shares get a
    minus sign (U+2212). ``"n/a"`` for NaN.
    """
    v = _finite(x)
    if v is None:
        return NA
    pct = abs(v) * 100
    d = max(0, int(digits))
    if pct == 0:
        return f"{0:.{d}f}%"
    extra = d + 2
    while d < extra and round(pct, d) == 0:
        d += 1
    text = f"<{10.0**-d:.{d}f}%" if round(pct, d) == 0 else f"{pct:,.{d}f}%"
    return _signed(v, text)


def fmt_count(n: Any) -> str:
    """A count with thousands separators: ``5000`` -> ``"5,000"`` (rounded to an integer)."""
    v = _finite(n)
    if v is None:
        return NA
    return _signed(v, f"{round(abs(v)):,}")


def _unit(v: float, unit: str) -> str:
    return f"{_plain(v, 2 if v < 10 else 3)} {unit}"


def fmt_seconds(s: Any) -> str:
    """A duration in the largest sensible unit: ``300`` -> ``"5 min"``, ``86400`` ->
    ``"24 h"``, ``2592000`` -> ``"30 d"``, ``0.00015`` -> ``"0.15 ms"``.

    Seconds below a minute, minutes below an hour, hours up to three days, days above.
    """
    v = _finite(s)
    if v is None:
        return NA
    a = abs(v)
    if a == 0:
        text = "0 s"
    elif a < 1e-3:
        text = _unit(a * 1e6, "µs")
    elif a < 1:
        text = _unit(a * 1e3, "ms")
    elif a < 60:
        text = _unit(a, "s")
    elif a < 3600:
        text = _unit(a / 60, "min")
    elif a <= 3 * 86400:
        text = _unit(a / 3600, "h")
    else:
        text = _unit(a / 86400, "d")
    return _signed(v, text)


def fmt_hours(h: Any) -> str:
    """A duration given in hours, formatted like :func:`fmt_seconds` (``24`` -> ``"24 h"``)."""
    v = _finite(h)
    return NA if v is None else fmt_seconds(v * 3600)


def fmt_usd(x: Any) -> str:
    """Money: ``7_000_000`` -> ``"$7.0M"``, ``12_500`` -> ``"$12.5k"``, ``800`` -> ``"$800"``,
    ``0.05`` -> ``"$0.05"``."""
    v = _finite(x)
    if v is None:
        return NA
    a = abs(v)
    if a >= 1e9:
        text = f"${a / 1e9:.1f}B"
    elif a >= 1e6:
        text = f"${a / 1e6:.1f}M"
    elif a >= 1e4:
        text = f"${a / 1e3:.1f}k"
    elif a >= 100:
        text = f"${a:,.0f}"
    elif a >= 1 or a == 0:
        text = f"${a:,.2f}".replace(".00", "")
    else:
        text = "$" + _plain(a, 2)
    return _signed(v, text)


def fmt_yes_no(x: Any) -> str:
    """``True`` -> ``"Yes"``, ``False`` -> ``"No"``, missing -> ``"n/a"``."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return NA
    return "Yes" if bool(x) else "No"


_SECONDS_UNITS = {"s", "seconds", "second", "sec", "s per request"}
_SHARE_UNITS = {
    "share",
    "probability",
    "probability per edge",
    "probability per hop",
    "fraction",
    "%",
}


def fmt_value(value: Any, unit: str) -> str:
    """Format ``value`` by its unit as written in the data (``share``, ``probability``, ``s``,
    ``hours``, ``count``, ``USD``, ``engineer-days``, ``days``...); other units follow a plain
    number (``"2 hops"``)."""
    u = (unit or "").strip()
    low = u.lower()
    if low in _SHARE_UNITS:
        v = _finite(value)
        text = fmt_share(value, 1 if v is not None and 0 < abs(v) < 0.1 else 0)
        return text.replace(".0%", "%")
    if low in _SECONDS_UNITS:
        text = fmt_seconds(value)
        return text + " per request" if low == "s per request" and text != NA else text
    if low in {"hours", "hour", "h"}:
        return fmt_hours(value)
    if low in {"count", "flows", "n"}:
        return fmt_count(value)
    if low in {"usd", "$"}:
        return fmt_usd(value)
    if low in {"days", "d"}:
        v = _finite(value)
        return NA if v is None else fmt_seconds(v * 86400)
    text = fmt_number(value)
    if text == NA or low in {"", "unit", "factor", "exponent", "relative weight", "ratio"}:
        return text
    if text == "1" and u.endswith("s"):
        u = u[:-1]
    return f"{text} {u}"


def fmt_range(value: Any, low: Any, high: Any, unit: str = "share") -> str:
    """A value with its interval: ``fmt_range(0.45, 0.23, 0.72, "share")`` ->
    ``"45% (23–72%)"``; just the value when the interval is a point or missing."""
    v, lo, hi = _finite(value), _finite(low), _finite(high)
    main = fmt_value(value, unit)
    if lo is None or hi is None or (lo == hi and (v is None or lo == v)):
        return main
    a, b = fmt_value(lo, unit), fmt_value(hi, unit)
    if (unit or "").strip().lower() in _SHARE_UNITS and a.endswith("%") and a[:1] != "<":
        a = a[:-1]
    return f"{main} ({a}{EN_DASH}{b})"


# --------------------------------------------------------------------------- tables

_WRAP_CSS = [
    {"selector": "", "props": [("border-collapse", "collapse"), ("max-width", "100%")]},
    {
        "selector": "th",
        "props": [
            ("text-align", "left"),
            ("vertical-align", "bottom"),
            ("white-space", "normal"),
            ("padding", "4px 8px"),
            ("border-bottom", "1px solid #999"),
        ],
    },
    {
        "selector": "td",
        "props": [
            ("text-align", "left"),
            ("vertical-align", "top"),
            ("white-space", "normal"),
            ("overflow-wrap", "break-word"),
            ("max-width", "32em"),
            ("padding", "4px 8px"),
            ("border-bottom", "1px solid #e5e5e5"),
        ],
    },
    {"selector": "caption", "props": [("caption-side", "top"), ("text-align", "left")]},
]


def _default_format(series: pd.Series) -> Callable[[Any], str]:
    if pd.api.types.is_bool_dtype(series):
        return fmt_yes_no
    if pd.api.types.is_integer_dtype(series):
        return fmt_count
    if pd.api.types.is_float_dtype(series):
        return fmt_number
    return _text


def _text(x: Any) -> str:
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, bool):
        return fmt_yes_no(x)
    if isinstance(x, float):
        return fmt_number(x)
    return str(x)


def present(
    df: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    *,
    kinds: Mapping[str, str] | None = None,
    caption: str | None = None,
    styler: bool = True,
) -> Any:
    """A table for readers: a pandas ``Styler`` (a formatted ``DataFrame`` of strings with
    ``styler=False`` or when jinja2 is missing).

    ``columns`` maps column id -> header and picks and orders the columns (all columns with
    humanised headers when ``None``). ``formats`` maps a column id (or its header) to a
    callable giving the cell text (e.g. :func:`fmt_share`). Columns named like a label kind
    (``mechanism``, ``scenario``, ``view``, ``client_path``...) or listed in ``kinds``
    (column -> kind) show labels instead of ids. Other columns get a default format: booleans
    Yes/No, integers with separators, floats without scientific notation. The index is
    dropped, headers are human, long text wraps (no truncation).
    """
    cols = dict(columns) if columns is not None else {c: humanize(str(c)) for c in df.columns}
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"present(): no column {', '.join(map(repr, missing))} in the table")
    fmts = dict(formats or {})
    kind_of = {c: c for c in cols if c in KINDS}
    kind_of.update(kinds or {})
    out = pd.DataFrame(index=range(len(df)))
    for col, header in cols.items():
        series = df[col].reset_index(drop=True)
        fn = fmts.get(col) or fmts.get(header)
        if fn is None and col in kind_of:
            kind = kind_of[col]

            def fn(x: Any, kind: str = kind) -> str:
                return (
                    "" if x is None or (isinstance(x, float) and math.isnan(x)) else label(kind, x)
                )

        if fn is None:
            fn = _default_format(series)
        out[header] = [fn(x) for x in series]
    if not styler:
        return out
    try:
        styled = out.style.hide(axis="index").set_table_styles(_WRAP_CSS)
    except ImportError:  # pragma: no cover - jinja2 is a pandas optional dependency
        return out
    # Break long words (URLs, thumbprints) anywhere, but keep short ones ("$25.6k",
    # "sender-constraining") whole: a column whose words are all short breaks at spaces only.
    long_words = [h for h in out.columns if _longest_word(out[h]) > _WHOLE_WORD]
    if long_words:
        styled = styled.set_properties(subset=long_words, **{"overflow-wrap": "anywhere"})
    if caption:
        styled = styled.set_caption(caption)
    return styled


#: Words up to this many characters are never broken inside a table cell.
_WHOLE_WORD = 22


def _longest_word(cells: pd.Series) -> int:
    return max((len(w) for cell in cells for w in str(cell).split()), default=0)
