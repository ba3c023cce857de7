"""``make report`` on the bundled inventory: every notebook executed and rendered in < 120 s.

Runs :func:`tokenlib.analysis.report.build_report` (the same code as ``make report``) into a
temporary folder and records the wall time, the per-notebook execution times and the number of
figures and CSV files produced. ``quick`` uses the report's ``--quick`` (small simulations).
``run(quick=False) -> dict`` writes ``benchmarks/results/report.json`` atomically.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tokenlib.analysis.report import build_report

RESULTS = Path(__file__).resolve().parent / "results" / "report.json"
TARGET_S = 120.0


def _machine() -> dict[str, Any]:
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        "machine": _machine(),
    }
    _write_atomic(RESULTS, result)
    return result
