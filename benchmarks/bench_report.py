"""``make report`` on the bundled inventory: a first run (< 120 s) and a second one (< 60 s).

Runs :func:`tokenlib.analysis.report.build_report` (the same code as ``make report``) twice
into one temporary folder: the first run starts with an empty result cache, the second
reuses it (``.tokenlib-cache`` next to the report, as ``make report`` does). Records the wall
times, the per-notebook execution times of both runs and the number of figures and CSV files
produced. ``quick`` uses the report's ``--quick`` (small simulations).
``run(quick=False) -> dict`` writes ``benchmarks/results/report.json`` atomically.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import machine_info, write_result
from tokenlib.analysis.report import build_report

TARGET_FIRST_S = 120.0
TARGET_SECOND_S = 60.0


def _build(out: Path, quick: bool) -> tuple[float, Any]:
    start = time.perf_counter()
    report = build_report(inventory="default", out=out, quick=quick, progress=False)
    return time.perf_counter() - start, report


def run(quick: bool = False) -> dict[str, Any]:
    """Build the report twice over the bundled inventory and return the timings (seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "reports"
        first, report1 = _build(out, quick)
        second, report2 = _build(out, quick)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result: dict[str, Any] = {
        "benchmark": "report",
        "quick": quick,
        "inventory": "default",
        "first_s": round(first, 2),
        "second_s": round(second, 2),
        "target_first_s": TARGET_FIRST_S,
        "target_second_s": TARGET_SECOND_S,
        "meets_target": first < TARGET_FIRST_S and second < TARGET_SECOND_S,
        "notebooks_first_s": {p.name: round(p.seconds, 2) for p in report1.pages},
        "notebooks_second_s": {p.name: round(p.seconds, 2) for p in report2.pages},
        "figures": len(report2.figures),
        "exports": list(report2.exports),
        "machine": {**machine_info(), "load_average_1m": load},
    }
    write_result("report", result)
    return result
