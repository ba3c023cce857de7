"""Private, vectorised helpers shared by the models: path parsing and service joins.

Paths are parsed once per *distinct* value (``pd.factorize``), so the cost does not grow with
the number of flows. The semantics follow the inventory contract: ``path`` is ``""`` for a
direct connection or ``kind:mode>kind:mode`` in client-to-server order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tokenlib.analysis.schema import CLIENT_PATHS, HOP_KINDS, HOP_MODES
from tokenlib.analysis.schema import EXPOSURE_CHANNELS as CHANNELS

FloatArray = npt.NDArray[np.floating[Any]]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


FLOW_COLUMNS = (
    "flow_id",
    "client_id",
    "client_kind",
    "client_type",
    "grant_type",
    "resource_server",
    "audience_restricted",
    "path",
    "key_storage",
    "cert_management",
    "access_token_lifetime_s",
    "refresh_token",
    "refresh_token_lifetime_s",
    "token_format",
    "rs_introspects",
    "binding",
    "binding_enforced",
    "requests_per_day",
    "exposure_channels",
    "forwards_token",
)
SERVICE_COLUMNS = (
    "service_id",
    "sensitivity",
    "supports_mtls",
    "supports_dpop",
    "downstream",
    "instances",
    "jti_cache",
    "requires_nonce",
    "iat_past_s",
)


def require_columns(flows: Any, services: Any) -> None:
    """Fail early, naming the missing columns, when frames do not follow the inventory contract."""
    for frame, cols, name in (
        (flows, FLOW_COLUMNS, "flows"),
        (services, SERVICE_COLUMNS, "services"),
    ):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{name} must be a pandas DataFrame (see the inventory contract)")
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} is missing column(s): {', '.join(missing)}")


def parse_path(path: str) -> list[tuple[str, str]]:
    """Split one path string into ``(kind, mode)`` hops; raises ``ValueError`` if malformed."""
    if path == "" or path is None:
        return []
    hops: list[tuple[str, str]] = []
    for i, hop in enumerate(str(path).split(">")):
        kind, sep, mode = hop.strip().partition(":")
        if not sep or kind not in HOP_KINDS or mode not in HOP_MODES:
            raise ValueError(f"path {path!r}: hop {i + 1} {hop!r} is not kind:mode")
        hops.append((kind, mode))
    return hops


def str_codes(series: Any) -> tuple[IntArray, npt.NDArray[Any]]:
    """Integer code per row and the distinct values (object array), fast for arrow strings."""
    if isinstance(series, np.ndarray):
        c, u = pd.factorize(series, sort=False)
        return np.asarray(c, dtype=np.int64), np.asarray(u, dtype=object)
    s = series if isinstance(series, pd.Series) else pd.Series(series)
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.asarray(s.cat.categories.astype(str), dtype=object)
        codes = np.asarray(s.cat.codes.to_numpy(), dtype=np.int64)
        if (codes < 0).any():
            cats = np.append(cats, "")
            codes = np.where(codes < 0, len(cats) - 1, codes)
        return codes, cats
    codes, uniq = pd.factorize(s.fillna(""), sort=False)
    values = np.asarray(uniq, dtype=object)
    if not isinstance(s.dtype, pd.StringDtype):  # numbers, bytes, mixed objects -> their text
        values = values.astype(str).astype(object)
    return np.asarray(codes, dtype=np.int64), values


def path_codes(flows: pd.DataFrame) -> tuple[IntArray, list[list[tuple[str, str]]]]:
    """Factorize ``flows.path``: integer code per flow and the parsed hops of each distinct path."""
    codes, uniques = str_codes(flows["path"])
    return codes, [parse_path(str(u)) for u in uniques]


def features(flows: pd.DataFrame) -> pd.DataFrame:
    """Per-flow path features; the implementation behind ``inventory.path_features``.

    Paths are parsed once per distinct value, so the cost does not grow with the flows.
    """
    codes, parsed = path_codes(flows)
    n_hops = np.array([len(h) for h in parsed], dtype=np.int64)
    n_fc = np.array(
        [sum(m == "terminate_forward_cert" for _, m in h) for h in parsed], dtype=np.int64
    )
    n_tnf = np.array([sum(m == "terminate" for _, m in h) for h in parsed], dtype=np.int64)
    out = pd.DataFrame(
        {
            "n_hops": n_hops[codes],
            "n_terminating": (n_fc + n_tnf)[codes],
            "n_terminate_no_forward": n_tnf[codes],
            "n_forward_cert": n_fc[codes],
            "all_passthrough": ((n_fc + n_tnf) == 0)[codes],
        },
        index=flows.index,
    )
    term = (n_fc + n_tnf)[codes] > 0
    cp = np.where(
        is_in(flows["client_kind"], "browser_spa"),
        0,
        np.where(is_in(flows["client_kind"], "mobile_app"), 1, np.where(term, 2, 3)),
    ).astype(np.int8)
    out["client_path"] = pd.Categorical.from_codes(cp, categories=list(CLIENT_PATHS))
    return out


def channel_matrix(flows: pd.DataFrame) -> dict[str, BoolArray]:
    """Boolean array per exposure channel (parsed once per distinct ``exposure_channels`` value)."""
    codes, uniques = str_codes(flows["exposure_channels"])
    sets = [set(filter(None, (c.strip() for c in str(u).split(";")))) for u in uniques]
    out: dict[str, BoolArray] = {}
    for ch in CHANNELS:
        present = np.array([ch in s for s in sets], dtype=bool)
        out[ch] = present[codes] if len(present) else np.zeros(len(flows), dtype=bool)
    return out


def service_lookup(flows: pd.DataFrame, services: pd.DataFrame) -> tuple[IntArray, pd.DataFrame]:
    """Row index into ``services`` for each flow's ``resource_server`` (``KeyError`` if unknown)."""
    svc = services.reset_index(drop=True)
    idx = pd.Index(np.asarray(svc["service_id"].astype(str), dtype=object))
    codes, uniq = str_codes(flows["resource_server"])
    pos_u = idx.get_indexer(uniq)
    if (pos_u < 0).any():
        bad = uniq[np.flatnonzero(pos_u < 0)[0]]
        raise KeyError(f"flows.resource_server {bad!r} is not in services.service_id")
    return np.asarray(pos_u, dtype=np.int64)[codes], svc


def as_str(series: Any) -> npt.NDArray[Any]:
    """Object array of the values as ``str`` (via distinct values, so fast on 1M rows)."""
    codes, uniq = str_codes(series)
    return np.asarray(uniq[codes]) if len(uniq) else np.array([], dtype=object)


def categorical(values: Any, categories: Any = None) -> pd.Categorical:
    """Categorical from an array of strings without per-row string conversion."""
    codes, uniq = str_codes(
        values if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    )
    if categories is None:
        return pd.Categorical.from_codes(codes, categories=pd.Index(uniq, dtype=object))
    cats = list(categories)
    pos = pd.Index(cats).get_indexer(uniq)
    return pd.Categorical.from_codes(np.asarray(pos, dtype=np.int64)[codes], categories=cats)


def rows_where(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    """``frame[frame[column] == value]`` without converting a categorical column to strings."""
    col = frame[column]
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        if value not in cats:
            return frame.iloc[0:0]
        return frame[col.cat.codes.to_numpy() == cats.index(value)]
    return frame[is_in(col, value)]


def is_in(series: Any, *values: str) -> BoolArray:
    """Vectorised ``series in values`` through the distinct values (no per-row strings)."""
    codes, uniq = str_codes(series)
    mask = np.isin(uniq.astype(str), list(values))
    return np.asarray(mask[codes], dtype=bool) if len(uniq) else np.zeros(0, dtype=bool)


def map_values(series: Any, mapping: dict[str, float], default: float) -> FloatArray:
    """Vectorised ``mapping.get(value, default)`` through the distinct values."""
    codes, uniq = str_codes(series)
    vals = np.array([mapping.get(str(u), default) for u in uniq], dtype=float)
    return np.asarray(vals[codes]) if len(uniq) else np.zeros(0)
