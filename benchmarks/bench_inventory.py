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
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from typing import Any

from benchmarks._common import machine_info, write_result
from tokenlib.analysis.inventory import generate_inventory, load_inventory, write_inventory

TARGET_S = 15.0


def run(quick: bool = False) -> dict[str, Any]:
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
    write_result("inventory", result)
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
