"""Synthetic inventory generation at scale: 1,000,000 flows must take < 15 s on 2 cores.

Measured in one process, on one machine:

* ``generate_s``: ``generate_inventory("saas", N, seed=...)`` wall time (best of ``repeat``);
* ``peak_traced_mb``: peak Python + numpy allocations during one generation (tracemalloc,
  measured in a separate run because tracing slows allocation down);
* ``rss_peak_mb``: the process's peak resident set size after all runs;
* ``write_csv_s`` / ``load_validate_s``: writing the flows + services CSV atomically and
  loading them back through ``load_inventory`` (full type, enum, range and cross-field checks).

``run(quick=False) -> dict`` writes ``benchmarks/results/inventory.json`` atomically;
``quick`` uses 100,000 flows.

Large file (issue 10): a flows CSV of ``large_gb`` GB (default 0.5, quick 0.1; the issue's 2 GB
case: ``--large-gb 2``, several GB of RAM) built by repeating
the generated rows under new flow ids is loaded in a fresh child process; recorded are the
child's peak RSS (``VmHWM``), its RSS before the load (interpreter + imports) and both ratios to
the file size. Target: peak at most 1.5x the file size (such a file is validated block by
block, ``BLOCK_BYTES`` at a time; measured 1.11x for 2.2 GB).
``python -m benchmarks.bench_inventory [--quick] [--large-gb 2]``; ``--large-only 2`` measures
only the large file and records it in ``inventory.json`` (``large_csv`` and, per file size,
``large_csv_runs``).
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS_DIR, machine_info, write_result
from tokenlib.analysis.inventory import (
    BLOCK_BYTES,
    generate_inventory,
    load_inventory,
    write_inventory,
)

TARGET_S = 15.0
TARGET_LARGE_RATIO = 1.5


def _vm(key: str) -> int:
    """A ``/proc/self/status`` value in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def write_large_flows(directory: Path, size_bytes: int, *, seed: int = 20250101) -> Path:
    """A flows CSV of about ``size_bytes``: 1,000,000 generated flows repeated under new flow
    ids (``r<k>-flow-...``), plus the matching services file beside it."""
    inv = generate_inventory("saas", 1_000_000, seed=seed)
    flows_path, _ = write_inventory(inv, directory)
    data = flows_path.read_bytes()
    header, _, body = data.partition(b"\n")
    del inv
    repeats = max(1, -(-size_bytes // len(body)))
    with flows_path.open("wb") as out:
        out.write(header + b"\n")
        for k in range(repeats):
            prefix = f"r{k}-flow-".encode()
            out.write(prefix + body[len(b"flow-") :].replace(b"\nflow-", b"\n" + prefix))
    return flows_path


def _load_child(path: str) -> int:
    import gc as _gc

    import pandas  # noqa: F401 - imports count in the baseline, not in the load
    import pyarrow.csv  # noqa: F401

    from tokenlib.analysis.inventory import load_inventory as _load

    _gc.collect()
    before = _vm("VmRSS")
    start = time.perf_counter()
    inv = _load(path)
    took = time.perf_counter() - start
    print(
        json.dumps(
            {
                "rss_before": before,
                "peak": _vm("VmHWM"),
                "load_s": took,
                "rows": len(inv.flows),
                "ok": bool(inv.report and inv.report.ok),
            }
        )
    )
    return 0


def large_file(size_gb: float) -> dict[str, Any]:
    """Load a ``size_gb`` GB flows CSV in a child process; peak memory against file size."""
    with tempfile.TemporaryDirectory(prefix="bench-inventory-") as tmp:
        start = time.perf_counter()
        path = write_large_flows(Path(tmp), int(size_gb * 1e9))
        write_s = time.perf_counter() - start
        size = path.stat().st_size
        cmd = [sys.executable, "-m", "benchmarks.bench_inventory", "--child", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - our own module
        if proc.returncode != 0:
            raise RuntimeError(f"loading failed: {proc.stderr[-2000:]}")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = int(child["peak"])
    return {
        "file_gb": round(size / 1e9, 3),
        "rows": child["rows"],
        "valid": child["ok"],
        "write_s": round(write_s, 1),
        "load_s": round(child["load_s"], 1),
        "block_bytes": BLOCK_BYTES,
        "peak_rss_mb": round(peak / 2**20, 1),
        "rss_before_load_mb": round(child["rss_before"] / 2**20, 1),
        "peak_over_file": round(peak / size, 2),
        "load_increment_over_file": round((peak - child["rss_before"]) / size, 2),
        "target_ratio": TARGET_LARGE_RATIO,
        "within_target": peak / size <= TARGET_LARGE_RATIO,
    }


def record_large(large: dict[str, Any]) -> dict[str, Any]:
    """Store a ``--large-only`` measurement in ``benchmarks/results/inventory.json``: under
    ``large_csv`` (the latest) and in ``large_csv_runs`` keyed by file size in GB (one per
    size, so the 0.5 GB and 2 GB runs are both kept); other keys are left as they are."""
    path = RESULTS_DIR / "inventory.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault("machine", machine_info())
    data["large_csv"] = large
    runs = data.setdefault("large_csv_runs", {})
    runs[f"{large['file_gb']}"] = large
    write_result("inventory", data)
    return large


def run(quick: bool = False, large_gb: float | None = None) -> dict[str, Any]:
    """Measure and return the timings (seconds) and memory (MB)."""
    n_flows = 100_000 if quick else 1_000_000
    repeat = 1 if quick else 2
    seed = 20250101

    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        inv = generate_inventory("saas", n_flows, seed=seed)
        times.append(time.perf_counter() - start)
    n_services = len(inv.services)

    del inv
    gc.collect()
    tracemalloc.start()
    inv = generate_inventory("saas", n_flows, seed=seed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        flows_path, _ = write_inventory(inv, tmp)
        write_s = time.perf_counter() - start
        size_mb = flows_path.stat().st_size / 1e6
        del inv
        gc.collect()
        start = time.perf_counter()
        loaded = load_inventory(flows_path)
        load_s = time.perf_counter() - start
        assert loaded.report is not None
        assert loaded.report.ok
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    generate_s = min(times)
    result: dict[str, Any] = {
        "machine": machine_info(),
        "n_flows": n_flows,
        "n_services": n_services,
        "profile": "saas",
        "generate_s": round(generate_s, 2),
        "generate_runs_s": [round(t, 2) for t in times],
        "target_s": TARGET_S,
        "within_target": generate_s < TARGET_S,
        "peak_traced_mb": round(peak / 1e6, 1),
        "rss_peak_mb": round(rss_kb / 1024, 1),
        "write_csv_s": round(write_s, 2),
        "flows_csv_mb": round(size_mb, 1),
        "load_validate_s": round(load_s, 2),
    }
    del loaded
    gc.collect()
    result["large_csv"] = large_file(large_gb if large_gb is not None else (0.1 if quick else 0.5))
    path = RESULTS_DIR / "inventory.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    result["large_csv_runs"] = previous.get("large_csv_runs", {})
    write_result("inventory", result)
    record_large(result["large_csv"])
    return result


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        raise SystemExit(_load_child(sys.argv[2]))
    if "--large-only" in sys.argv:
        gb = float(sys.argv[sys.argv.index("--large-only") + 1])
        print(json.dumps(record_large(large_file(gb)), indent=2))
        raise SystemExit(0)
    size = None
    if "--large-gb" in sys.argv:
        size = float(sys.argv[sys.argv.index("--large-gb") + 1])
    print(json.dumps(run(quick="--quick" in sys.argv, large_gb=size), indent=2))
