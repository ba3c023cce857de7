"""One report build per test session, shared by tests/test_report.py and tests/test_notebooks.py.

Building the report executes every notebook, so both modules reuse this single run (small
parameters via ``--quick``) instead of executing the notebooks twice.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from tokenlib.analysis import report

SEED = 12345
_BUILT: dict[str, report.Report] = {}


def built_report() -> report.Report:
    """Build the report over the bundled inventory once; later calls return the same result."""
    if "report" not in _BUILT:
        root = Path(tempfile.mkdtemp(prefix="tokenlib-report-test-"))
        atexit.register(shutil.rmtree, root, True)
        _BUILT["report"] = report.build_report(
            inventory="default",
            out=root / "reports",
            seed=SEED,
            quick=True,
            progress=False,
        )
    return _BUILT["report"]
