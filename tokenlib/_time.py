"""Explicit clocks: every public call takes ``now=`` and only the outermost call reads time."""

from __future__ import annotations

import time
from datetime import datetime

Now = int | float | datetime | None


def resolve_now(now: Now) -> float:
    """Epoch seconds for ``now``: an int/float as is, an aware ``datetime`` converted,
    ``None`` the system clock. A naive ``datetime`` is refused: its zone is a guess."""
    if type(now) is float and now - now == 0.0:  # the per-request case: a finite float
        return now
    if now is None:
        return time.time()
    if isinstance(now, bool):
        raise TypeError("now must be epoch seconds or an aware datetime, not bool")
    if isinstance(now, int | float):
        value = float(now)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("now must be a finite number of epoch seconds")
        return value
    if isinstance(now, datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be an aware datetime (with tzinfo), not a naive one")
        return now.timestamp()
    raise TypeError(f"now must be epoch seconds or an aware datetime, got {type(now).__name__}")
