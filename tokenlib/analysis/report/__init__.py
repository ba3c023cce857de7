"""Build the HTML report: execute every notebook over an inventory and render it (``make report``).

``python -m tokenlib.analysis.report --inventory PATH|default --out reports`` validates the
inventory with :func:`tokenlib.analysis.inventory.load_inventory` first (a bad path, an empty or
an all-invalid file fails with one line naming the file and exit code 2 before any notebook
runs), executes each ``notebooks/NN_*.ipynb`` with papermill (parameters injected into the cell
tagged ``parameters``), renders one HTML page per notebook with code (``pages/``) and a
presentation variant without code (``presentation/``), adds a parameter appendix and a
references page, and writes ``index.html``: an executive summary read from
``exports/headline_numbers.csv``, the headline table, the pages, the figures in story order with
their titles as captions, and the exported CSV files. Every page carries a provenance banner
(synthetic inventory: profile, seed, flows; a user's inventory: file name only, date, share of
values filled by defaults) and previous / index / next navigation. When
:mod:`tokenlib.analysis.report_bundle` is importable, the single-file ``report.html`` and
``report.pdf`` are written too.

Everything is built in a temporary folder next to ``--out`` (``.<out>.tmp-<pid>-*``, owner pid
recorded inside) and swapped in at the end, so a failed run leaves a previous report intact;
temporary folders of runs that died (owner gone, or older than an hour) are removed by the next
run. Notebook processes die with the build: papermill runs with a parent-death signal and is
killed with its process group when the build stops, and its kernel exits when papermill does.

One module per job: ``_base`` (constants, errors, result types), ``_inventory`` (the check
before any notebook runs), ``_builds`` (temporary folders, child processes), ``_build`` (the
notebook runs and pages), ``_figures``, ``_format`` (numbers for reading), ``_takeaways`` (the
executive summary), ``_site`` (index, bundle, swap), ``_references`` (appendix and references
pages), ``_templates`` and ``_cli``.
"""

from __future__ import annotations

from tokenlib.analysis.report._base import (
    APPENDIX_PAGE,
    CACHE_DIRNAME,
    CACHE_ENV,
    DEFAULT_NOTEBOOKS,
    HEADLINE_CSV,
    NOTEBOOK_NAME_RE,
    PROJECT_ROOT,
    QUICK_DRAWS,
    QUICK_N_SIM,
    REFERENCES_PAGE,
    REPORT_TITLE,
    STALE_AFTER_S,
    InventoryValidationError,
    NoNotebooksError,
    NotebookExecutionError,
    NotebookPage,
    Provenance,
    Report,
    Takeaway,
    find_notebooks,
)
from tokenlib.analysis.report._build import build_report
from tokenlib.analysis.report._builds import clean_stale_builds
from tokenlib.analysis.report._cli import main
from tokenlib.analysis.report._figures import figure_title
from tokenlib.analysis.report._inventory import inspect_inventory, validate_inventory
from tokenlib.analysis.report._references import public_source
from tokenlib.analysis.report._takeaways import read_headline, takeaways

__all__ = [
    "APPENDIX_PAGE",
    "CACHE_DIRNAME",
    "CACHE_ENV",
    "DEFAULT_NOTEBOOKS",
    "HEADLINE_CSV",
    "NOTEBOOK_NAME_RE",
    "PROJECT_ROOT",
    "QUICK_DRAWS",
    "QUICK_N_SIM",
    "REFERENCES_PAGE",
    "REPORT_TITLE",
    "STALE_AFTER_S",
    "InventoryValidationError",
    "NoNotebooksError",
    "NotebookExecutionError",
    "NotebookPage",
    "Provenance",
    "Report",
    "Takeaway",
    "build_report",
    "clean_stale_builds",
    "figure_title",
    "find_notebooks",
    "inspect_inventory",
    "main",
    "public_source",
    "read_headline",
    "takeaways",
    "validate_inventory",
]
