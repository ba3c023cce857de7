"""Group the rows of equal-length arrays by their values: the one place that does it.

The models evaluate once per distinct combination of the facts they read (a flow's
lifetimes, support, path...) and expand the result to every row; recommendations build their
text once per distinct displayed input. :func:`distinct_rows` does the grouping exactly, by
mixed-radix integer codes of the per-column factorisations (re-factorised before the radix
could overflow int64), with no row hashing, so no two different rows can collide.

Speed: 1,000,000 rows x 16 columns in ~0.3 s, against ~1.3 s for hashing the rows with
``pandas.util.hash_pandas_object`` and sorting the hashes (the previous method).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["distinct_rows"]

_LIMIT = 2**62


def distinct_rows(
    columns: Sequence[npt.NDArray[Any]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(inverse, first)``: each row's group and the first row of every group.

    Groups are numbered in order of first appearance, so ``first`` is increasing. NaN is a
    value of its own (rows with NaN in the same column group together).
    """
    if not columns:
        raise ValueError("distinct_rows needs at least one column")
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError("distinct_rows: columns differ in length")
    code = np.zeros(n, dtype=np.int64)
    span = 1
    for col in columns:
        c, uniq = pd.factorize(np.asarray(col), sort=False, use_na_sentinel=False)
        k = max(len(uniq), 1)
        if span * k >= _LIMIT:
            code, u = pd.factorize(code, sort=False)
            span = max(len(u), 1)
        code = code * k + np.asarray(c, dtype=np.int64)
        span *= k
    inverse, uniq = pd.factorize(code, sort=False)
    inverse = np.asarray(inverse, dtype=np.int64)
    first = np.full(len(uniq), n, dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(n, dtype=np.int64))
    return inverse, first
