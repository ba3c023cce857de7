"""What every benchmark records the same way: the machine it ran on and its results file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tokenlib._atomic import atomic_write_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """Processor, core count and Python version, so results from different boxes compare."""
    return {
        "processor": platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def write_result(name: str, data: Mapping[str, Any], *, sort_keys: bool = False) -> Path:
    """Write ``data`` as ``benchmarks/results/<name>.json`` atomically (0644); return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=sort_keys) + "\n"
    return atomic_write_text(RESULTS_DIR / f"{name}.json", text)


def measure(
    cases: Mapping[str, Callable[[], object]], *, number: int, repeat: int, warm_up: bool = False
) -> dict[str, dict[str, float]]:
    """Per-call microseconds for every case: ``best`` (min) and ``median`` over ``repeat``
    rounds of ``number`` calls. Rounds interleave the cases, so a noisy neighbour on a
    shared machine slows all of them alike instead of skewing one ratio. ``warm_up`` calls
    each case once first (leave it off for cases that hand out a fixed supply of inputs)."""
    if warm_up:
        for fn in cases.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.perf_counter_ns()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter_ns() - start) / number / 1000)
    return {
        name: {"best": round(min(values), 2), "median": round(statistics.median(values), 2)}
        for name, values in samples.items()
    }
