"""CSV exports that are safe to open in a spreadsheet (OWASP "CSV Injection").

A text cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return) is
read by Excel, LibreOffice and Google Sheets as a formula. Inventory values (client ids,
scopes, paths) come from users, so every exported *text* cell with such a first character is
prefixed with a single quote, which spreadsheets show as text. Numeric columns are left
alone, so numbers (negative ones included) still parse as numbers.

Reference: OWASP, "CSV Injection" (https://owasp.org/www-community/attacks/CSV_Injection).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tokenlib._atomic import atomic_path

__all__ = ["FORMULA_PREFIXES", "neutralise_cell", "neutralise_frame", "write_csv"]

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """``value`` with a leading single quote when it is a string starting a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _is_text(series: pd.Series) -> bool:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return not pd.api.types.is_numeric_dtype(dtype.categories.dtype)
    return bool(pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype))


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot start a formula (numbers untouched).

    Text columns are rewritten through their distinct values (categories), so the cost does not
    grow with repeated values.
    """
    out = frame.copy()
    for name in out.columns:
        col = out[name]
        if not _is_text(col):
            continue
        if isinstance(col.dtype, pd.CategoricalDtype):
            cats = [neutralise_cell(c) for c in col.cat.categories]
            if len(set(cats)) == len(cats):
                out[name] = col.cat.rename_categories(cats)
            else:  # pragma: no cover - "'=x" and "=x" both present
                out[name] = col.astype(object).map(neutralise_cell)
            continue
        values = col.to_numpy(dtype=object)
        codes, uniq = pd.factorize(values, use_na_sentinel=True)
        fixed = np.array([neutralise_cell(u) for u in uniq], dtype=object)
        if len(fixed) and any(f is not u for f, u in zip(fixed, uniq, strict=True)):
            res = np.where(codes >= 0, fixed[np.clip(codes, 0, None)] if len(fixed) else None, None)
            out[name] = pd.Series(res, index=out.index, dtype=object).where(col.notna(), col)
    return out


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str], **to_csv: Any) -> Path:
    """Write ``frame`` as UTF-8 CSV atomically (temporary file + rename), text neutralised.

    Keyword arguments go to ``DataFrame.to_csv`` (``index`` defaults to False). The folder is
    created; on any error the previous file is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    safe = neutralise_frame(frame)
    to_csv.setdefault("index", False)
    to_csv.setdefault("encoding", "utf-8")
    with atomic_path(target) as tmp:
        safe.to_csv(tmp, **to_csv)
    return target
