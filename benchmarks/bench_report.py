"""``make report`` on the bundled inventory: every notebook executed and rendered in < 120 s.

Runs :func:`tokenlib.analysis.report.build_report` (the same code as ``make report``) into a
temporary folder and records the wall time, the per-notebook execution times and the number of
figures and CSV files produced. ``quick`` uses the report's ``--quick`` (small simulations).
``run(quick=False) -> dict`` writes ``benchmarks/results/report.json`` atomically.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import machine_info, write_result
from tokenlib.analysis.report import build_report

TARGET_S = 120.0


def run(quick: bool = False) -> dict[str, Any]:
    """Build the report once over the bundled inventory and return the timings (seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = build_report(inventory="default", out=Path(tmp) / "reports", quick=quick,
                              progress=False)  # fmt: skip
        total = time.perf_counter() - start
    result: dict[str, Any] = {
        "benchmark": "report",
        "quick": quick,
        "inventory": "default",
        "total_s": round(total, 2),
        "target_s": TARGET_S,
        "meets_target": total < TARGET_S,
        "notebooks_s": {p.name: round(p.seconds, 2) for p in report.pages},
        "figures": len(report.figures),
        "exports": list(report.exports),
        "machine": machine_info(),
    }
    write_result("report", result)
    return result
