"""Parsing and validation of inventory tables against :mod:`tokenlib.analysis.schema`.

Work is vectorised: each column is factorised and only its *distinct* values are parsed in
Python, so cost grows with the number of distinct values, not rows. Cross-field rules are
boolean masks. Every problem is collected (never just the first) as a :class:`Problem`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from tokenlib.analysis import schema as S

Severity = Literal["error", "warning"]
BoolArray = npt.NDArray[np.bool_]

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_DURATION = re.compile(r"^(\d+)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days)$")
_UNIT_S = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_MAX_VALUE_CHARS = 80


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in an input file.

    ``row`` is the line number in the file (1-based, header = 1; Parquet rows are numbered the
    same way, first record = 2); ``None`` for problems with the whole file or a column.
    ``code`` is stable and machine-readable; ``expected`` says what would have been valid.
    """

    table: str
    file: str
    row: int | None
    column: str | None
    value: str
    expected: str
    code: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        col = f" column {self.column!r}" if self.column else ""
        val = f" value {self.value!r}:" if self.value != "" else ":"
        return f"{where}:{col}{val} expected {self.expected} [{self.code}]"


def problems_frame(problems: Sequence[Problem]) -> pd.DataFrame:
    """Problems as a DataFrame (one row each, columns = Problem fields)."""
    cols = ["table", "file", "row", "column", "value", "expected", "code", "severity"]
    if not problems:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    frame = pd.DataFrame([asdict(p) for p in problems], columns=cols)
    frame["row"] = frame["row"].astype("Int64")
    return frame


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _norm_name(name: object) -> str:
    return re.sub(r"[\s\-.]+", "_", str(name).strip().lower())


def _norm_token(value: str) -> str:
    return re.sub(r"[\s\-+:/]+", "_", value.strip().lower())


@dataclass(slots=True)
class TableResult:
    """Output of :func:`parse_table`: typed frame, problems and bookkeeping."""

    frame: pd.DataFrame
    rows: npt.NDArray[np.int64]
    problems: list[Problem]
    invalid: dict[str, BoolArray]
    needs_default: dict[str, BoolArray]
    defaults: list[tuple[str, str, int]] = field(default_factory=list)
    aliases: list[tuple[str, str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    fatal: bool = False


class _Ctx:
    def __init__(self, spec: S.TableSpec, file: str, rows: npt.NDArray[np.int64]) -> None:
        self.spec = spec
        self.file = file
        self.rows = rows
        self.problems: list[Problem] = []

    def add(
        self,
        column: str | None,
        value: object,
        expected: str,
        code: str,
        row: int | None = None,
        severity: Severity = "error",
    ) -> None:
        self.problems.append(
            Problem(self.spec.name, self.file, row, column, _short(value), expected, code, severity)
        )

    def add_mask(
        self,
        mask: BoolArray,
        column: str,
        values: Any,
        expected: str,
        code: str,
        severity: Severity = "error",
    ) -> None:
        """One problem per True in ``mask``; ``values`` is a per-row array or a callable."""
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        vals = values(idx) if callable(values) else np.asarray(values, dtype=object)[idx]
        table, file = self.spec.name, self.file
        rows = self.rows[idx].tolist()
        self.problems.extend(
            Problem(table, file, r, column, _short(v), expected, code, severity)
            for r, v in zip(rows, vals, strict=True)
        )


def _as_text(series: pd.Series) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Factorised view of a column as stripped strings: (codes, distinct values)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=False)
    texts = [
        ""
        if (u is None or (isinstance(u, float) and np.isnan(u)) or u is pd.NA)
        else str(u).strip()
        for u in uniques.tolist()  # one conversion: iterating an arrow array is 10x slower
    ]
    return codes.astype(np.int64), texts


def _allowed_text(col: S.Column) -> str:
    return "one of " + ", ".join(col.allowed)


def _parse_category(
    ctx: _Ctx, col: S.Column, series: pd.Series
) -> tuple[npt.NDArray[np.int8], BoolArray, BoolArray]:
    codes, texts = _as_text(series)
    aliases = dict(col.value_aliases)
    lookup = {v: i for i, v in enumerate(col.allowed)}
    mapped = np.full(len(texts) + 1, -1, dtype=np.int64)
    empty = np.zeros(len(texts) + 1, dtype=bool)
    for i, text in enumerate(texts):
        if text == "" and "" not in lookup:
            empty[i] = True
            continue
        token = _norm_token(text)
        token = aliases.get(token, token)
        mapped[i] = lookup.get(token, -1)
    out = mapped[codes]
    is_empty = empty[codes]
    bad = (out < 0) & ~is_empty
    raw = np.array(texts, dtype=object)
    ctx.add_mask(bad, col.name, lambda i: raw[codes[i]], _allowed_text(col), "enum")
    # int8 codes: every allowed list is far below 128 entries (8 bytes a cell saved per column)
    if len(col.allowed) >= 128:  # pragma: no cover - guards a future schema change
        raise ValueError(f"{col.name}: {len(col.allowed)} categories need wider codes")
    codes8: npt.NDArray[np.int8] = np.where(out < 0, 0, out).astype(np.int8)
    return codes8, bad, np.asarray(is_empty, dtype=bool)


def _parse_bool(
    ctx: _Ctx, col: S.Column, series: pd.Series
) -> tuple[BoolArray, BoolArray, BoolArray]:
    if series.dtype == bool:
        arr = series.to_numpy(dtype=bool)
        zeros = np.zeros(len(arr), dtype=bool)
        return arr, zeros, zeros
    codes, texts = _as_text(series)
    val = np.zeros(len(texts) + 1, dtype=bool)
    state = np.zeros(len(texts) + 1, dtype=np.int8)  # 0 ok, 1 empty, 2 bad
    for i, text in enumerate(texts):
        low = text.lower()
        if low == "":
            state[i] = 1
        elif low in _TRUE:
            val[i] = True
        elif low not in _FALSE:
            state[i] = 2
    st = state[codes]
    bad = st == 2
    raw = np.array(texts, dtype=object)
    ctx.add_mask(
        bad, col.name, lambda i: raw[codes[i]], "a boolean (true/false, yes/no, 1/0)", "type"
    )
    return val[codes], bad, st == 1


def _parse_int_text(text: str, seconds: bool) -> int | None:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        pass
    try:
        as_float = float(text)
    except ValueError:
        as_float = float("nan")
    if as_float == as_float and as_float not in (float("inf"), float("-inf")):
        return int(as_float) if as_float.is_integer() else None
    if seconds:
        match = _DURATION.match(text.lower())
        if match:
            return int(match.group(1)) * _UNIT_S[match.group(2)]
    return None


def _parse_int(
    ctx: _Ctx, col: S.Column, series: pd.Series
) -> tuple[npt.NDArray[np.int64], BoolArray, BoolArray]:
    n = len(series)
    if pd.api.types.is_integer_dtype(series.dtype) and not series.isna().any():
        vals = series.to_numpy(dtype=np.int64)
        bad = np.zeros(n, dtype=bool)
        empty = np.zeros(n, dtype=bool)
    else:
        codes, texts = _as_text(series)
        parsed = np.zeros(len(texts) + 1, dtype=np.int64)
        state = np.zeros(len(texts) + 1, dtype=np.int8)
        seconds = col.unit == "seconds"
        for i, text in enumerate(texts):
            if text == "":
                state[i] = 1
                continue
            value = _parse_int_text(text, seconds)
            if value is None:
                state[i] = 2
            else:
                parsed[i] = value
        st = state[codes]
        vals = parsed[codes]
        bad = st == 2
        empty = st == 1
        raw = np.array(texts, dtype=object)
        hint = " or a duration like 90s, 5m, 1h, 30d" if seconds else ""
        ctx.add_mask(bad, col.name, lambda i: raw[codes[i]], f"an integer{hint}", "type")
    ok = ~bad & ~empty
    bounds = []
    out = np.zeros(n, dtype=bool)
    if col.minimum is not None:
        out |= ok & (vals < col.minimum)
        bounds.append(f">= {col.minimum}")
    if col.maximum is not None:
        out |= ok & (vals > col.maximum)
        bounds.append(f"<= {col.maximum}")
    if bounds:
        unit = f" {col.unit}" if col.unit and not col.unit.startswith("ordinal") else ""
        ctx.add_mask(out, col.name, vals, f"an integer {' and '.join(bounds)}{unit}", "range")
    return vals, bad | out, empty


def _parse_string(series: pd.Series) -> tuple[npt.NDArray[np.object_], BoolArray]:
    codes, texts = _as_text(series)
    vals = np.array([*texts, ""], dtype=object)[codes]
    return vals, vals == ""


def _check_list(ctx: _Ctx, col: S.Column, values: npt.NDArray[np.object_]) -> BoolArray:
    """Validate ';'-separated items against ``col.allowed``; returns the bad mask."""
    sep = col.list_sep or ";"
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    allowed = set(col.allowed)
    canon = np.empty(len(uniques), dtype=object)
    bad_u = np.zeros(len(uniques), dtype=bool)
    first_bad = np.empty(len(uniques), dtype=object)
    for i, u in enumerate(uniques):
        items = [_norm_token(x) for x in str(u).split(sep) if x.strip()]
        wrong = [x for x in items if x not in allowed]
        bad_u[i] = bool(wrong)
        first_bad[i] = ", ".join(wrong)
        canon[i] = sep.join(sorted(set(items), key=col.allowed.index)) if not wrong else str(u)
    bad: BoolArray = bad_u[codes]
    ctx.add_mask(
        bad,
        col.name,
        lambda i: first_bad[codes[i]],
        f"{sep!r}-separated items, each one of {', '.join(col.allowed)}",
        "list_item",
    )
    values[:] = canon[codes]
    return bad


def canonical_path(value: str) -> str | None:
    """Normalised path ('kind:mode>...'), or None if ``value`` is not a valid path."""
    text = value.strip()
    if text == "" or text.lower() in ("direct", "none", "-"):
        return ""
    hops = []
    for hop in re.split(r"\s*>\s*", text):
        kind, sep, mode = hop.partition(":")
        kind, mode = _norm_token(kind), _norm_token(mode)
        if mode == "terminate_and_forward_cert" or mode == "forward_cert":
            mode = "terminate_forward_cert"
        if not sep or kind not in S.HOP_KINDS or mode not in S.HOP_MODES:
            return None
        hops.append(f"{kind}:{mode}")
    return ">".join(hops)


def _check_path(ctx: _Ctx, col: S.Column, values: npt.NDArray[np.object_]) -> BoolArray:
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    canon = np.empty(len(uniques), dtype=object)
    bad_u = np.zeros(len(uniques), dtype=bool)
    for i, u in enumerate(uniques):
        c = canonical_path(str(u))
        bad_u[i] = c is None
        canon[i] = str(u) if c is None else c
    bad: BoolArray = bad_u[codes]
    ctx.add_mask(
        bad,
        col.name,
        lambda i: canon[codes[i]],
        "hops 'kind:mode' joined by '>' (kind: "
        + ", ".join(S.HOP_KINDS)
        + "; mode: "
        + ", ".join(S.HOP_MODES)
        + ") or empty for direct",
        "path_syntax",
    )
    values[:] = canon[codes]
    return bad


def resolve_columns(raw: pd.DataFrame, ctx: _Ctx, result: TableResult) -> dict[str, str]:
    """Map canonical name -> raw column name (case-insensitive, with aliases)."""
    amap = ctx.spec.alias_map()
    found: dict[str, str] = {}
    for name in raw.columns:
        key = _norm_name(name)
        canonical = amap.get(key)
        if canonical is None:
            result.unknown.append((ctx.spec.name, str(name)))
            continue
        if canonical in found:
            ctx.add(
                str(name),
                "",
                f"a single column for {canonical!r} (also given as {found[canonical]!r})",
                "duplicate_column",
                severity="warning",
            )
            result.unknown.append((ctx.spec.name, str(name)))
            continue
        found[canonical] = str(name)
        if str(name) != canonical:
            result.aliases.append((ctx.spec.name, str(name), canonical))
    return found


class UniqueIndex:
    """The values of a unique column seen in the earlier blocks of a table parsed block by
    block (see :func:`parse_table`).

    Kept per distinct value: a 64-bit hash and the value's position (0-based record index in
    the table), 16 bytes, in a few sorted runs; the values themselves stay in the caller's
    typed blocks. A hash match is confirmed on the value itself (``value_at(position)`` gives
    ``(value, file row)``), so a hash collision, accidental or crafted, never reports a false
    duplicate.
    """

    def __init__(self, value_at: Callable[[int], tuple[str, int]]) -> None:
        self._value_at = value_at
        self._runs: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]] = []
        self._base = 0

    @staticmethod
    def _hash(values: npt.NDArray[np.object_]) -> npt.NDArray[np.uint64]:
        hashed: npt.NDArray[np.uint64] = pd.util.hash_array(np.asarray(values, dtype=object))
        return hashed

    def lookup(self, values: npt.NDArray[np.object_]) -> npt.NDArray[np.int64]:
        """File row of each value's first occurrence in an earlier block, or -1."""
        out = np.full(len(values), -1, dtype=np.int64)
        if not len(values) or not self._runs:
            return out
        hashes = self._hash(values)
        order = np.argsort(hashes)  # sorted needles: searchsorted walks the run in order
        needles = hashes[order]
        for run_hashes, run_pos in self._runs:
            left = np.empty(len(values), dtype=np.int64)
            right = np.empty(len(values), dtype=np.int64)
            left[order] = np.searchsorted(run_hashes, needles, side="left")
            right[order] = np.searchsorted(run_hashes, needles, side="right")
            for i in np.flatnonzero((right > left) & (out < 0)).tolist():
                for k in range(int(left[i]), int(right[i])):
                    value, row = self._value_at(int(run_pos[k]))
                    if value == values[i]:
                        out[i] = row
                        break
        return out

    def add(self, values: npt.NDArray[np.object_], local: npt.NDArray[np.int64]) -> None:
        """Record first occurrences at positions ``local`` of the current block."""
        if not len(values):
            return
        hashes = self._hash(values)
        order = np.argsort(hashes, kind="stable")
        self._runs.append((hashes[order], (np.asarray(local, dtype=np.int64) + self._base)[order]))
        # merge runs of similar size: O(log n) runs, each value merged O(log n) times
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (h1, p1), (h2, p2) = self._runs[-2], self._runs[-1]
            hashes = np.concatenate([h1, h2])
            order = np.argsort(hashes, kind="stable")
            self._runs[-2:] = [(hashes[order], np.concatenate([p1, p2])[order])]

    def end_block(self, n: int) -> None:
        """The current block had ``n`` records: positions of the next block start after it."""
        self._base += n


def parse_table(
    raw: pd.DataFrame,
    spec: S.TableSpec,
    *,
    file: str,
    rows: npt.NDArray[np.int64],
    seen: Mapping[str, UniqueIndex] | None = None,
) -> TableResult:
    """Type-convert and check one table column by column (no cross-field rules).

    A table read block by block passes the same ``seen`` (unique column -> :class:`UniqueIndex`)
    for every block, so a value repeating one of an earlier block is a ``duplicate`` naming the
    earlier row, exactly as if the whole table had been parsed at once.
    """
    ctx = _Ctx(spec, file, rows)
    n = len(raw)
    result = TableResult(pd.DataFrame(index=pd.RangeIndex(n)), rows, ctx.problems, {}, {})
    found = resolve_columns(raw, ctx, result)
    data: dict[str, Any] = {}
    for col in spec.columns:
        invalid = np.zeros(n, dtype=bool)
        if col.name not in found:
            if col.required:
                ctx.add(
                    col.name,
                    "",
                    f"a column {col.name!r}"
                    + (f" (or one of: {', '.join(col.aliases)})" if col.aliases else ""),
                    "missing_column",
                )
                result.fatal = True
            empty = np.ones(n, dtype=bool)
            data[col.name] = _blank(col, n)
        else:
            series = raw[found[col.name]].reset_index(drop=True)
            series, not_scalar = _check_objects(ctx, col, series)
            if col.kind == "category":
                codes, invalid, empty = _parse_category(ctx, col, series)
                data[col.name] = codes
            elif col.kind == "boolean":
                data[col.name], invalid, empty = _parse_bool(ctx, col, series)
            elif col.kind == "integer":
                data[col.name], invalid, empty = _parse_int(ctx, col, series)
            else:
                values, empty = _parse_string(series)
                if col.name == "path":
                    invalid = _check_path(ctx, col, values)
                elif col.list_sep and col.allowed:
                    invalid = _check_list(ctx, col, values)
                elif (spec.name, col.name) in ID_FORBIDDEN:
                    invalid = _check_id_chars(ctx, col, values)
                data[col.name] = values
            invalid = invalid | not_scalar
            if col.required:
                ctx.add_mask(
                    empty & ~not_scalar,
                    col.name,
                    np.full(n, "", dtype=object),
                    "a value (required)",
                    "missing_value",
                )
                invalid = invalid | empty
        result.invalid[col.name] = invalid
        if col.empty_is_value and col.name in found:
            empty = np.zeros(n, dtype=bool)
        result.needs_default[col.name] = empty & ~np.bool_(col.required)
        if col.unique and col.name in found:
            vals = pd.Series(data[col.name], dtype=object)
            repeat = vals.duplicated(keep="first").to_numpy()
            dup = repeat & ~empty
            earlier: dict[str, int] = {}
            index = seen.get(col.name) if seen is not None else None
            if index is not None:
                firsts = np.flatnonzero(~repeat & ~empty)
                objs = vals.to_numpy()
                prior = index.lookup(objs[firsts])
                hit = prior >= 0
                dup[firsts[hit]] = True
                earlier = dict(zip(objs[firsts[hit]].tolist(), prior[hit].tolist(), strict=True))
                index.add(objs[firsts[~hit]], firsts[~hit])
            if dup.any():
                first = pd.Series(rows, index=vals.to_numpy()).groupby(level=0).first()
                idx = np.flatnonzero(dup)
                ctx.problems.extend(
                    Problem(
                        spec.name,
                        file,
                        int(rows[i]),
                        col.name,
                        _short(vals.iloc[i]),
                        "a unique value (first seen at row "
                        f"{earlier.get(vals.iloc[i], int(first[vals.iloc[i]]))})",
                        "duplicate",
                    )
                    for i in idx
                )
            result.invalid[col.name] = result.invalid[col.name] | dup
    for index in (seen or {}).values():
        index.end_block(n)
    result.frame = pd.DataFrame(data, copy=False)  # no consolidation copy of every column
    extra = [c for c in raw.columns if (spec.name, str(c)) in set(result.unknown)]
    for c in extra:
        if str(c) in result.frame.columns:
            continue
        result.frame[str(c)] = raw[c].reset_index(drop=True)
    return result


#: Characters an id cannot contain, per (table, column): service ids are joined with '>' into
#: lateral-movement paths (blast radius) and with ';' into downstream lists, so a service id
#: holding either cannot be carried through the models; no id may hold control characters
#: (they would split CSV rows, log lines and terminal output).
ID_FORBIDDEN: Mapping[tuple[str, str], str] = {
    ("services", "service_id"): ">;",
    ("flows", "resource_server"): ">;",
    ("flows", "flow_id"): "",
    ("flows", "client_id"): "",
    ("flows", "authorization_server"): "",
    ("authorization_servers", "as_id"): "",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NESTED = (list, tuple, dict, set, frozenset, np.ndarray)
_BINARY = (bytes, bytearray, memoryview)


def _check_objects(ctx: _Ctx, col: S.Column, series: pd.Series) -> tuple[pd.Series, BoolArray]:
    """Cells that are not scalars (bytes from a binary Parquet column, lists/structs from a
    nested one, or such objects in a DataFrame): one problem per row, cell blanked."""
    n = len(series)
    bad = np.zeros(n, dtype=bool)
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        if not any(isinstance(c, _BINARY + _NESTED) for c in cats):
            return series, bad
        series = series.astype(object)
    elif series.dtype != object:
        return series, bad
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind not in ("bytes", "mixed", "mixed-integer", "unknown-array"):
        return series, bad
    values = series.to_numpy(dtype=object)
    binary = np.fromiter((isinstance(v, _BINARY) for v in values), dtype=bool, count=n)
    nested = np.fromiter((isinstance(v, _NESTED) for v in values), dtype=bool, count=n)
    ctx.add_mask(
        binary,
        col.name,
        lambda idx: np.full(len(idx), "<bytes>", dtype=object),
        "text (a string column; this cell holds bytes, e.g. a binary Parquet column)",
        "bytes",
    )
    ctx.add_mask(
        nested,
        col.name,
        lambda idx: np.array([f"<{type(values[j]).__name__}>" for j in idx], dtype=object),
        "a single value (this cell holds a list or struct, e.g. a nested Parquet column)",
        "nested",
    )
    bad = binary | nested
    if bad.any():
        values = values.copy()
        values[bad] = ""
        series = pd.Series(values, dtype=object)
    return series, bad


def _check_id_chars(ctx: _Ctx, col: S.Column, values: npt.NDArray[np.object_]) -> BoolArray:
    """Refuse ids holding characters the pipeline cannot carry (see :data:`ID_FORBIDDEN`)."""
    forbidden = ID_FORBIDDEN[(ctx.spec.name, col.name)]
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    refused = re.compile(_CONTROL.pattern[:-1] + re.escape(forbidden) + "]")
    bad_u = np.array([refused.search(str(u)) is not None for u in uniques.tolist()], dtype=bool)
    bad: BoolArray = bad_u[codes] if len(bad_u) else np.zeros(len(values), dtype=bool)
    seps = " or ".join(repr(ch) for ch in forbidden)
    expected = "an id without control characters" + (f" or {seps} (separators)" if seps else "")
    ctx.add_mask(
        bad,
        col.name,
        lambda idx: np.array([_CONTROL.sub("?", str(values[j])) for j in idx], dtype=object),
        expected,
        "id_chars",
    )
    return bad


def _blank(col: S.Column, n: int) -> Any:
    if col.kind == "category":
        return np.zeros(n, dtype=np.int64)
    if col.kind == "boolean":
        return np.zeros(n, dtype=bool)
    if col.kind == "integer":
        return np.zeros(n, dtype=np.int64)
    return np.full(n, "", dtype=object)


#: The order in which :func:`fill_flow_defaults` fills (and reports) defaulted columns.
FLOW_DEFAULT_ORDER: tuple[str, ...] = (
    "flow_id",
    "actor",
    "client_type",
    "environment",
    "grant_type",
    "audience_restricted",
    "scopes",
    "path",
    "key_storage",
    "cert_management",
    "access_token_lifetime_s",
    "refresh_token",
    "refresh_token_lifetime_s",
    "token_format",
    "rs_introspects",
    "binding_enforced",
    "requests_per_day",
    "exposure_channels",
    "forwards_token",
    "authorization_server",
    "token_exchange",
)


def fill_flow_defaults(res: TableResult, service_downstream: Mapping[str, str] | None) -> None:
    """Fill documented defaults of optional flow columns (some depend on other columns)."""
    f, need = res.frame, res.needs_default
    spec = S.FLOWS
    kind = np.asarray(f["client_kind"], dtype=np.int64)
    kind_names = np.array(S.CLIENT_KINDS, dtype=object)[kind]
    binding = np.asarray(f["binding"], dtype=np.int64)

    def fill(name: str, values: Any) -> None:
        mask = need[name]
        if mask.any():
            arr = np.asarray(f[name]).copy()
            arr[mask] = np.asarray(values)[mask] if np.ndim(values) else values
            f[name] = arr
            res.defaults.append((spec.name, name, int(mask.sum())))

    n = len(f)
    fill("flow_id", np.char.add("row-", res.rows.astype(str)).astype(object))
    human = np.isin(kind_names, S.HUMAN_KINDS)
    fill("actor", np.where(human, 0, 1))
    fill("client_type", np.where(np.isin(kind_names, S.PUBLIC_KINDS), 0, 1))
    fill("environment", S.ENVIRONMENTS.index("prod"))
    grant_idx = np.array([S.GRANT_TYPES.index(S.DEFAULT_GRANT_BY_KIND[k]) for k in S.CLIENT_KINDS])
    fill("grant_type", grant_idx[kind])
    fill("audience_restricted", False)
    fill("scopes", np.full(n, "", dtype=object))
    fill("path", np.full(n, "", dtype=object))
    fill("key_storage", np.where(binding == 0, 0, S.KEY_STORAGES.index("software")))
    fill("cert_management", np.where(binding == 1, S.CERT_MANAGEMENT.index("manual"), 0))
    fill("access_token_lifetime_s", 3600)
    fill("refresh_token", 0)
    rt = np.asarray(f["refresh_token"], dtype=np.int64)
    fill("refresh_token_lifetime_s", np.where(rt == 0, 0, 7776000).astype(np.int64))
    fill("token_format", 0)
    fill("rs_introspects", False)
    fill("binding_enforced", False)
    fill("requests_per_day", 1000)
    chan = np.array([S.DEFAULT_CHANNELS_BY_KIND[k] for k in S.CLIENT_KINDS], dtype=object)
    fill("exposure_channels", chan[kind])
    if service_downstream is None:
        fill("forwards_token", False)
    else:
        rs = pd.Series(f["resource_server"], dtype=object)
        has = rs.map(lambda s: bool(service_downstream.get(s, ""))).to_numpy(dtype=bool)
        fill("forwards_token", has)
    fill("authorization_server", np.full(n, S.DEFAULT_AS_ID, dtype=object))
    fill("token_exchange", False)


def as_usage(
    as_ids: Sequence[str],
    flow_as: npt.NDArray[np.object_],
    binding: npt.NDArray[np.int64],
    token_exchange: BoolArray,
) -> dict[str, BoolArray]:
    """Per authorization server in ``as_ids``: does any of its flows use binding mtls, binding
    dpop, or token exchange (the derived defaults of the authorization_servers table)."""
    ids = pd.Series(list(as_ids), dtype=object)
    uniq = pd.Index(ids.drop_duplicates())
    codes, flow_uniques = pd.factorize(pd.Series(flow_as, dtype=object), use_na_sentinel=False)
    pos = uniq.get_indexer(pd.Index(flow_uniques, dtype=object))[codes]
    flags = usage_flags(len(uniq), pos, binding, token_exchange)
    row_pos = uniq.get_indexer(ids)
    return {name: values[row_pos] for name, values in flags.items()}


def usage_flags(
    n_servers: int,
    pos: npt.NDArray[np.int64],
    binding: npt.NDArray[np.int64],
    token_exchange: BoolArray,
) -> dict[str, BoolArray]:
    """:func:`as_usage` on positions: ``pos[i]`` is the server of flow i (-1 for none)."""
    hit = pos >= 0
    out: dict[str, BoolArray] = {}
    for name, sel in (
        ("issues_mtls", binding == S.BINDINGS.index("mtls")),
        ("issues_dpop", binding == S.BINDINGS.index("dpop")),
        ("supports_token_exchange", np.asarray(token_exchange, dtype=bool)),
    ):
        flags = np.zeros(n_servers, dtype=bool)
        flags[pos[hit & sel]] = True
        out[name] = flags
    return out


def _flow_usage_inputs(
    flows: TableResult,
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int64], BoolArray]:
    """(authorization_server, binding codes, token_exchange) of the flows whose columns parsed
    cleanly; other rows get an empty authorization_server so they count for no server."""
    f = flows.frame
    bad = (
        flows.invalid["authorization_server"]
        | flows.invalid["binding"]
        | flows.invalid["token_exchange"]
    )
    flow_as = np.asarray(f["authorization_server"], dtype=object).copy()
    flow_as[bad] = ""
    return (
        flow_as,
        np.asarray(f["binding"], dtype=np.int64),
        np.asarray(f["token_exchange"], dtype=bool),
    )


ServerUsage = dict[str, tuple[bool, bool, bool]]


def server_usage(flows: TableResult, into: ServerUsage | None = None) -> ServerUsage:
    """Per distinct ``authorization_server`` of ``flows`` (rows whose columns parsed cleanly):
    (uses mtls, uses dpop, uses token exchange), OR-ed into ``into`` when given, so the usage
    of a table validated block by block is accumulated block by block."""
    out: ServerUsage = {} if into is None else into
    flow_as, binding, tx = _flow_usage_inputs(flows)
    codes, uniques = pd.factorize(pd.Series(flow_as, dtype=object), use_na_sentinel=False)
    flags = usage_flags(len(uniques), np.asarray(codes, dtype=np.int64), binding, tx)
    for i, name in enumerate(uniques):
        new = (
            bool(flags["issues_mtls"][i]),
            bool(flags["issues_dpop"][i]),
            bool(flags["supports_token_exchange"][i]),
        )
        old = out.get(name)
        out[name] = new if old is None else (old[0] | new[0], old[1] | new[1], old[2] | new[2])
    return out


def fill_authorization_server_defaults(
    res: TableResult, flows: TableResult | None, *, usage: ServerUsage | None = None
) -> None:
    """Fill defaults of optional authorization-server columns; the capability columns default to
    what the flows show (documented in the schema's ``default_doc``). ``usage`` (from
    :func:`server_usage`) replaces ``flows`` for flows validated block by block."""
    f, need = res.frame, res.needs_default
    spec = S.AUTHORIZATION_SERVERS
    ids = [str(x) for x in np.asarray(f["as_id"], dtype=object)]
    if usage is None:
        if flows is None:
            raise ValueError("fill_authorization_server_defaults needs flows or usage")
        usage_cols = as_usage(ids, *_flow_usage_inputs(flows))
    else:
        none = (False, False, False)
        got = [usage.get(x, none) for x in ids]
        usage_cols = {
            name: np.array([g[k] for g in got], dtype=bool)
            for k, name in enumerate(("issues_mtls", "issues_dpop", "supports_token_exchange"))
        }

    def fill(name: str, values: Any) -> None:
        mask = need[name]
        if mask.any():
            arr = np.asarray(f[name]).copy()
            arr[mask] = np.asarray(values)[mask] if np.ndim(values) else values
            f[name] = arr
            res.defaults.append((spec.name, name, int(mask.sum())))

    fill("product", np.full(len(f), "", dtype=object))
    fill("issues_dpop", usage_cols["issues_dpop"])
    fill("issues_mtls", usage_cols["issues_mtls"])
    fill("binds_refresh_tokens", np.asarray(f["issues_dpop"], dtype=bool))
    fill("supports_token_exchange", usage_cols["supports_token_exchange"])


def fill_service_defaults(res: TableResult) -> None:
    """Fill static defaults of optional service columns."""
    f, need = res.frame, res.needs_default
    for col in S.SERVICES.columns:
        mask = need[col.name]
        if col.required or not mask.any():
            continue
        arr = np.asarray(f[col.name]).copy()
        if col.kind == "category":
            arr[mask] = col.allowed.index(col.default)
        else:
            arr[mask] = col.default
        f[col.name] = arr
        res.defaults.append((S.SERVICES.name, col.name, int(mask.sum())))


# --- cross-field rules ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A cross-field rule: rows where ``violates`` is True get a problem with ``code``."""

    code: str
    column: str
    involves: tuple[str, ...]
    expected: str
    violates: Callable[[Mapping[str, Any]], BoolArray]
    severity: Severity = "error"
    reference: str = ""


def _c(name: str, value: str) -> int:
    return S.FLOWS.column(name).allowed.index(value)


def _term_no_fwd(paths: npt.NDArray[np.object_]) -> BoolArray:
    codes, uniques = pd.factorize(pd.Series(paths, dtype=object), use_na_sentinel=False)
    flags = np.array(
        [any(h.endswith(":terminate") for h in str(u).split(">") if h) for u in uniques], dtype=bool
    )
    result: BoolArray = flags[codes]
    return result


def _terminating(paths: npt.NDArray[np.object_]) -> BoolArray:
    codes, uniques = pd.factorize(pd.Series(paths, dtype=object), use_na_sentinel=False)
    flags = np.array([":terminate" in str(u) for u in uniques], dtype=bool)
    result: BoolArray = flags[codes]
    return result


def _has_channel(values: npt.NDArray[np.object_], channel: str) -> BoolArray:
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    flags = np.array([channel in str(u).split(";") for u in uniques], dtype=bool)
    result: BoolArray = flags[codes]
    return result


FLOW_RULES: tuple[Rule, ...] = (
    Rule(
        "browser_client_cert",
        "client_kind",
        ("client_kind", "cert_management", "binding", "key_storage"),
        "browser_spa flows: cert_management none, binding not mtls, key_storage "
        "webcrypto_non_extractable or none (RFC 8705 §6.4; RFC 9449 §1)",
        lambda f: (
            (f["client_kind"] == _c("client_kind", "browser_spa"))
            & (
                (f["cert_management"] != 0)
                | (f["binding"] == _c("binding", "mtls"))
                | ~np.isin(f["key_storage"], [0, _c("key_storage", "webcrypto_non_extractable")])
            )
        ),
    ),
    Rule(
        "public_client_credentials",
        "grant_type",
        ("client_type", "grant_type"),
        "a public client not to use client_credentials (RFC 6749 §4.4: confidential clients only)",
        lambda f: (
            (f["client_type"] == _c("client_type", "public"))
            & (f["grant_type"] == _c("grant_type", "client_credentials"))
        ),
    ),
    Rule(
        "mtls_terminated_path",
        "binding_enforced",
        ("binding", "binding_enforced", "path"),
        "no enforced mtls binding on a path with a hop that terminates TLS without forwarding "
        "the client certificate (RFC 8705 §6.5, RFC 9440)",
        lambda f: (
            (f["binding"] == _c("binding", "mtls"))
            & f["binding_enforced"]
            & _term_no_fwd(f["path"])
        ),
    ),
    Rule(
        "bearer_enforced",
        "binding_enforced",
        ("binding", "binding_enforced"),
        "binding_enforced false when binding is bearer",
        lambda f: (f["binding"] == _c("binding", "bearer")) & f["binding_enforced"],
    ),
    Rule(
        "refresh_token_lifetime",
        "refresh_token_lifetime_s",
        ("refresh_token", "refresh_token_lifetime_s"),
        "refresh_token_lifetime_s 0 exactly when refresh_token is none",
        lambda f: (f["refresh_token"] == 0) != (f["refresh_token_lifetime_s"] == 0),
    ),
    Rule(
        "mtls_without_cert",
        "cert_management",
        ("binding", "cert_management"),
        "cert_management other than none for an mtls binding (RFC 8705 §2)",
        lambda f: (f["binding"] == _c("binding", "mtls")) & (f["cert_management"] == 0),
    ),
    Rule(
        "dpop_without_key",
        "key_storage",
        ("binding", "key_storage"),
        "key_storage other than none for a dpop binding (RFC 9449 §2)",
        lambda f: (f["binding"] == _c("binding", "dpop")) & (f["key_storage"] == 0),
    ),
    Rule(
        "cert_without_key",
        "key_storage",
        ("cert_management", "key_storage"),
        "key_storage other than none when the client has a certificate (it holds its key)",
        lambda f: (f["cert_management"] != 0) & (f["key_storage"] == 0),
    ),
    Rule(
        "human_actor_required",
        "actor",
        ("client_kind", "actor"),
        "actor human for browser_spa and mobile_app flows",
        lambda f: (
            np.isin(
                f["client_kind"],
                [_c("client_kind", "browser_spa"), _c("client_kind", "mobile_app")],
            )
            & (f["actor"] != _c("actor", "human"))
        ),
    ),
    Rule(
        "public_kind_confidential",
        "client_type",
        ("client_kind", "client_type"),
        "client_type public for browser_spa and mobile_app (RFC 6749 §2.1, RFC 8252 §8.4)",
        lambda f: (
            np.isin(
                f["client_kind"],
                [_c("client_kind", "browser_spa"), _c("client_kind", "mobile_app")],
            )
            & (f["client_type"] == _c("client_type", "confidential"))
        ),
        severity="warning",
    ),
    Rule(
        "proxy_logs_without_proxy",
        "exposure_channels",
        ("exposure_channels", "path"),
        "proxy_logs only on a path with a TLS-terminating hop",
        lambda f: _has_channel(f["exposure_channels"], "proxy_logs") & ~_terminating(f["path"]),
        severity="warning",
    ),
    Rule(
        "token_exchange_without_forwarding",
        "token_exchange",
        ("token_exchange", "forwards_token"),
        "token_exchange only on a flow whose resource server forwards the token "
        "(forwards_token true; RFC 8693 exchanges a token before calling downstream)",
        lambda f: f["token_exchange"] & ~f["forwards_token"],
        severity="warning",
    ),
)


def _describe(frame: pd.DataFrame, names: Sequence[str], idx: npt.NDArray[np.int64]) -> list[str]:
    parts: list[npt.NDArray[np.object_]] = []
    for name in names:
        col = S.FLOWS.column(name) if name in S.FLOWS.names else None
        raw = np.asarray(frame[name])[idx]
        if col is not None and col.kind == "category":
            vals = np.array(col.allowed, dtype=object)[raw.astype(np.int64)]
        elif col is not None and col.kind == "boolean":
            vals = np.where(raw.astype(bool), "true", "false").astype(object)
        else:
            vals = raw.astype(str).astype(object)
        parts.append((name + "=" + vals).astype(object))
    out = parts[0]
    for p in parts[1:]:
        out = out + ", " + p
    return list(out)


class _RuleColumns(Mapping[str, Any]):
    """The flows columns as arrays, converted only when a rule reads them (a string column of
    millions of rows costs a Python object per cell once converted; most rules need none)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self._names = [n for n in frame.columns if n in S.FLOWS.names]
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            if name not in self._names:
                raise KeyError(name)
            self._cache[name] = np.asarray(self._frame[name])
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def apply_rules(res: TableResult, rules: Iterable[Rule], file: str) -> None:
    """Evaluate cross-field rules on rows whose involved columns parsed cleanly."""
    frame = res.frame
    cols = _RuleColumns(frame)
    for rule in rules:
        skip = np.zeros(len(frame), dtype=bool)
        for name in rule.involves:
            skip |= res.invalid[name]
        mask = np.asarray(rule.violates(cols), dtype=bool) & ~skip
        idx = np.flatnonzero(mask)
        if not len(idx):
            continue
        values = _describe(frame, rule.involves, idx)
        rows = res.rows[idx].tolist()
        res.problems.extend(
            Problem(
                "flows", file, r, rule.column, _short(v), rule.expected, rule.code, rule.severity
            )
            for r, v in zip(rows, values, strict=True)
        )
        if rule.severity == "error":
            res.invalid[rule.column] = res.invalid[rule.column] | mask


def _foreign_key(
    flows: TableResult, column: str, ids: pd.Series, file: str, expected: str, code: str
) -> tuple[pd.Series, npt.NDArray[np.int64], BoolArray, BoolArray, _Ctx]:
    """Resolve ``flows.<column>`` against ``ids`` (first occurrence wins) and report the
    values that are not there: ``(values, row of each flow or -1, known, unknown, ctx)``."""
    values = pd.Series(flows.frame[column], dtype=object)
    index = pd.Index(ids.astype(object))
    first = ~index.duplicated(keep="first")
    pos = index[first].get_indexer(values)
    kept = np.flatnonzero(first)
    pos = np.where(pos >= 0, kept[np.maximum(pos, 0)] if len(kept) else -1, -1)
    known = pos >= 0
    unknown = ~known & ~flows.invalid[column]
    ctx = _Ctx(S.FLOWS, file, flows.rows)
    ctx.add_mask(unknown, column, np.asarray(values, dtype=object), expected, code)
    return values, np.asarray(pos, dtype=np.int64), known, unknown, ctx


def check_references(
    flows: TableResult,
    services: pd.DataFrame,
    file: str,
    services_file: str,
    *,
    services_derived: bool = False,
) -> None:
    """Foreign key flows.resource_server -> services.service_id; binding support; and (with a
    real services table) forwards_token only where the resource server has downstream calls."""
    f = flows.frame
    rs, pos, known, unknown, ctx = _foreign_key(
        flows,
        "resource_server",
        services["service_id"],
        file,
        f"a service_id listed in {services_file}",
        "unknown_service",
    )
    binding = np.asarray(f["binding"], dtype=np.int64)
    sup = np.stack([services[f"supports_{b}"].to_numpy(dtype=bool) for b in S.BINDINGS])
    ok = np.ones(len(f), dtype=bool)
    ok[known] = sup[binding[known], pos[known]]
    unsupported = ~ok & ~flows.invalid["binding"]
    names = np.array(S.BINDINGS, dtype=object)
    ctx.add_mask(
        unsupported,
        "binding",
        lambda i: [f"binding={names[binding[j]]}, resource_server={rs.iloc[j]}" for j in i],
        "a binding the resource server supports (services.supports_<binding> true)",
        "unsupported_binding",
    )
    fwd = np.asarray(f["forwards_token"], dtype=bool) & (not services_derived)
    has_down = np.zeros(len(f), dtype=bool)
    down = services["downstream"].to_numpy(dtype=object) != ""
    has_down[known] = down[pos[known]]
    ctx.add_mask(
        fwd & known & ~has_down,
        "forwards_token",
        lambda i: [f"forwards_token=true, resource_server={rs.iloc[j]}" for j in i],
        "forwards_token false when the resource server has no downstream services",
        "forward_without_downstream",
        severity="warning",
    )
    flows.problems.extend(ctx.problems)
    flows.invalid["resource_server"] = flows.invalid["resource_server"] | unknown
    flows.invalid["binding"] = flows.invalid["binding"] | unsupported


def check_authorization_servers(
    flows: TableResult,
    servers: pd.DataFrame,
    file: str,
    servers_file: str,
    servers_invalid: Mapping[str, BoolArray] | None = None,
) -> None:
    """Foreign key flows.authorization_server -> authorization_servers.as_id; the flow's binding
    must be one its authorization server issues (RFC 9449 §5, RFC 8705 §3); token_exchange only
    where the server supports RFC 8693 (warning). ``servers_invalid`` marks server cells that
    did not parse: flows are not judged against them (the server row already has a problem)."""
    f = flows.frame
    flow_as, pos, known, unknown, ctx = _foreign_key(
        flows,
        "authorization_server",
        servers["as_id"],
        file,
        f"an as_id listed in {servers_file}",
        "unknown_authorization_server",
    )
    binding = np.asarray(f["binding"], dtype=np.int64)
    issues = np.stack(
        [
            np.ones(len(servers), dtype=bool),
            servers["issues_mtls"].to_numpy(dtype=bool),
            servers["issues_dpop"].to_numpy(dtype=bool),
        ]
    )
    n_servers = len(servers)
    none = np.zeros(n_servers, dtype=bool)
    bad_cell = servers_invalid or {}
    unknown_cell = np.stack(
        [
            none,
            np.asarray(bad_cell.get("issues_mtls", none), dtype=bool),
            np.asarray(bad_cell.get("issues_dpop", none), dtype=bool),
        ]
    )
    ok = np.ones(len(f), dtype=bool)
    ok[known] = issues[binding[known], pos[known]] | unknown_cell[binding[known], pos[known]]
    unissued = ~ok & ~flows.invalid["binding"]
    names = np.array(S.BINDINGS, dtype=object)
    ctx.add_mask(
        unissued,
        "binding",
        lambda i: [
            f"binding={names[binding[j]]}, authorization_server={flow_as.iloc[j]}" for j in i
        ],
        "a binding the authorization server issues (authorization_servers.issues_<binding> "
        "true; RFC 9449 §5, RFC 8705 §3)",
        "unissued_binding",
    )
    tx = np.asarray(f["token_exchange"], dtype=bool) & known & ~flows.invalid["token_exchange"]
    supports = np.zeros(len(f), dtype=bool)
    supports[known] = (
        servers["supports_token_exchange"].to_numpy(dtype=bool)
        | np.asarray(bad_cell.get("supports_token_exchange", none), dtype=bool)
    )[pos[known]]
    ctx.add_mask(
        tx & ~supports,
        "token_exchange",
        lambda i: [f"token_exchange=true, authorization_server={flow_as.iloc[j]}" for j in i],
        "token_exchange only with an authorization server that supports it "
        "(authorization_servers.supports_token_exchange true, RFC 8693)",
        "token_exchange_unsupported",
        severity="warning",
    )
    flows.problems.extend(ctx.problems)
    flows.invalid["authorization_server"] = flows.invalid["authorization_server"] | unknown
    flows.invalid["binding"] = flows.invalid["binding"] | unissued


def check_service_graph(res: TableResult, file: str) -> None:
    """downstream items must be known service_ids, no self-loops, and the graph a DAG."""
    f = res.frame
    ids = pd.Series(f["service_id"], dtype=object)
    index = {s: i for i, s in enumerate(ids) if s}
    ctx = _Ctx(S.SERVICES, file, res.rows)
    bad = np.zeros(len(f), dtype=bool)
    edges: list[tuple[int, int]] = []
    cleaned = np.asarray(f["downstream"], dtype=object).copy()
    for i, text in enumerate(cleaned):
        if not text:
            continue
        items = [x.strip() for x in str(text).split(";") if x.strip()]
        for item in items:
            j = index.get(item)
            if j is None:
                ctx.add(
                    "downstream",
                    item,
                    "a service_id in the services table",
                    "unknown_downstream",
                    row=int(res.rows[i]),
                )
                bad[i] = True
            elif j == i:
                ctx.add(
                    "downstream",
                    item,
                    "no self-loop (a service calling itself)",
                    "self_loop",
                    row=int(res.rows[i]),
                )
                bad[i] = True
            else:
                edges.append((i, j))
        cleaned[i] = ";".join(dict.fromkeys(items))
    f["downstream"] = cleaned
    cyclic = _cycle_members(len(f), edges)
    for i in np.flatnonzero(cyclic).tolist():
        ctx.add(
            "downstream",
            f["downstream"].iloc[i],
            "downstream calls forming a DAG (this service is on a cycle)",
            "cycle",
            row=int(res.rows[i]),
        )
    res.problems.extend(ctx.problems)
    res.invalid["downstream"] = res.invalid["downstream"] | bad | cyclic


def _cycle_members(n: int, edges: Sequence[tuple[int, int]]) -> BoolArray:
    """Nodes left after repeatedly removing nodes without incoming or outgoing edges: the
    nodes on a cycle (and any node on a path between two cycles)."""
    if not edges:
        return np.zeros(n, dtype=bool)
    src = np.array([e[0] for e in edges], dtype=np.int64)
    dst = np.array([e[1] for e in edges], dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    # Repeatedly strip nodes without incoming or without outgoing edges among alive nodes.
    while True:
        live = alive[src] & alive[dst]
        indeg = np.bincount(dst[live], minlength=n)
        outdeg = np.bincount(src[live], minlength=n)
        strip = alive & ((indeg == 0) | (outdeg == 0))
        if not strip.any():
            return alive
        alive &= ~strip
