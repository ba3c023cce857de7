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
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import html
import importlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenlib._atomic import atomic_write_text

__all__ = [
    "NOTEBOOK_NAME_RE",
    "InventoryValidationError",
    "NoNotebooksError",
    "NotebookExecutionError",
    "NotebookPage",
    "Provenance",
    "Report",
    "Takeaway",
    "build_report",
    "clean_stale_builds",
    "find_notebooks",
    "inspect_inventory",
    "main",
    "takeaways",
]

NOTEBOOK_NAME_RE = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NOTEBOOKS = PROJECT_ROOT / "notebooks"
QUICK_N_SIM = 2_000
#: joint uncertainty draws in a quick report (the full report uses each notebook's DRAWS)
QUICK_DRAWS = 20
HEADLINE_CSV = "headline_numbers.csv"
#: environment variable that switches the notebooks' result cache on (``_diskcache``)
CACHE_ENV = "TOKENLIB_CACHE_DIR"
#: the cache folder, next to the report folder
CACHE_DIRNAME = ".tokenlib-cache"
APPENDIX_PAGE = "presentation/appendix_parameters.html"
REFERENCES_PAGE = "presentation/references.html"
REPORT_TITLE = "Token theft and sender-constrained tokens"
#: a temporary build folder whose owner is gone, or older than this, is removed by the next run
STALE_AFTER_S = 3600.0
#: a temporary build folder without an owner file is left alone this long (it is being created)
_UNOWNED_GRACE_S = 300.0
_OWNER_FILE = ".owner.json"
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_WIDGET_NOTE = "[interactive control: open this notebook in JupyterLab to use it]"


class InventoryValidationError(Exception):
    """The inventory failed the loader's validation (or has no flows); one line, file name only."""


class NoNotebooksError(Exception):
    """No notebook matched the requested pattern."""


class NotebookExecutionError(Exception):
    """A notebook raised while executing; names the notebook and the failing cell."""


@dataclass(frozen=True, slots=True)
class NotebookPage:
    """One executed notebook and the pages rendered from it (paths relative to the report)."""

    name: str
    title: str
    summary: str
    page: str
    presentation: str
    notebook: str
    seconds: float
    figures: tuple[str, ...] = ()


_SOURCE_WORDS = {
    "registered": "registered (from the identity provider)",
    "observed": "observed (in access logs)",
    "declared": "declared (your overlay)",
}


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the inventory behind a report is, as a reader may see it (never an absolute path).

    ``kind`` is ``"synthetic"`` (the bundled inventory, with its generator ``profile`` and
    ``seed``) or ``"imported"`` (a user's file: ``name`` is its file name, ``date`` the file's
    modification date, ``default_share`` the share of its values filled by documented defaults
    rather than recorded in the file).
    """

    kind: str
    name: str
    flows: int
    services: int
    authorization_servers: int
    profile: str | None = None
    seed: str | None = None
    date: str | None = None
    default_share: float | None = None
    notes: tuple[str, ...] = ()
    #: share of the cells by source (registered, observed, declared, assumed) when the
    #: inventory has a provenance table (written by ``tokenlib inventory import``)
    sources: tuple[tuple[str, float], ...] = ()

    def sentence(self) -> str:
        """One plain sentence for the banner."""
        counts = (
            f"{_count(self.flows)} flows, {_count(self.services)} resource servers, "
            f"{_count(self.authorization_servers)} authorization servers"
        )
        if self.kind == "synthetic":
            how = ", ".join(
                x
                for x in (
                    f"profile {self.profile}" if self.profile else "",
                    f"seed {self.seed}" if self.seed else "",
                )
                if x
            )
            what = (
                "Bundled synthetic inventory"
                if self.name == "bundled synthetic inventory"
                else f"Synthetic inventory {self.name} (tokenlib inventory generate)"
            )
            return (
                f"{what} ({how}; {counts}): generated for illustration, "
                "not observed in any organisation."
            )
        parts = [f"Imported inventory {self.name}"]
        if self.date:
            parts.append(f"file dated {self.date}")
        parts.append(counts)
        text = ", ".join(parts)
        stated = [(src, x) for src, x in self.sources if src != "assumed" and x > 0]
        if stated:
            text += "; values " + ", ".join(
                f"{_share(x)} {_SOURCE_WORDS.get(src, src)}" for src, x in stated
            )
        if self.default_share is not None:
            text += (
                f"; {_share(self.default_share)} of its values are documented defaults "
                "(assumed, not recorded in the file)"
            )
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Takeaway:
    """One line of the executive summary: a sentence, its range, basis and page."""

    metric_id: str
    sentence: str
    value: str
    basis: str
    page_prefix: str
    holds: bool = True


@dataclass(frozen=True, slots=True)
class Report:
    """A finished report: where it is and what it contains."""

    out_dir: Path
    pages: tuple[NotebookPage, ...]
    figures: tuple[str, ...]
    exports: tuple[str, ...]
    seconds: float
    provenance: Provenance | None = None
    extras: tuple[str, ...] = field(default=())


def find_notebooks(pattern: str | None = None) -> list[Path]:
    """Notebooks to run, sorted by name: ``notebooks/NN_*.ipynb`` or those matching ``pattern``.

    A relative ``pattern`` is tried from the current directory first, then from the project's
    ``notebooks/`` folder (so ``--notebooks '0[0-2]_*.ipynb'`` works from anywhere).
    """
    if pattern is None:
        found = list(DEFAULT_NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    elif Path(pattern).is_absolute():
        anchor = Path(Path(pattern).anchor)
        found = list(anchor.glob(str(Path(pattern).relative_to(anchor))))
    else:
        found = list(Path.cwd().glob(pattern)) or list(DEFAULT_NOTEBOOKS.glob(pattern))
    return sorted((p.resolve() for p in found if p.suffix == ".ipynb"), key=lambda p: p.name)


# ---------------------------------------------------------------------------------------------
# The inventory: validation and provenance.


def _display_name(source: str) -> str:
    return "the bundled inventory" if source == "default" else Path(source).name


def _one_line(exc: BaseException, source: str) -> str:
    """The loader's error as one line, with file names instead of absolute paths."""
    problems = getattr(exc, "problems", None)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if problems:
        errors = [p for p in problems if getattr(p, "severity", "error") == "error"]
        text = lines[0] if lines else f"{len(errors)} problems"
        if len(lines) > 1:
            text += " " + lines[1].removeprefix("error:").strip()
        if len(errors) > 1:
            text += f" (and {len(errors) - 1} more: python -m tokenlib.analysis.inventory validate"
            text += f" {_display_name(source)})"
    else:
        text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return _hide_paths(text, source)


def _hide_paths(text: str, source: str) -> str:
    if source != "default":
        path = Path(source)
        for folder in {str(path.parent), str(path.resolve().parent)}:
            if folder not in {"", "."}:
                text = text.replace(folder.rstrip("/") + "/", "")
    return text.replace(str(PROJECT_ROOT) + "/", "")


def _bundle_metadata() -> dict[str, str]:
    """Profile, seed and flow count of the bundled inventory from data/datapackage.json."""
    from tokenlib.analysis.inventory import data_dir

    meta: dict[str, str] = {"profile": "saas"}
    with contextlib.suppress(OSError, ValueError, FileNotFoundError):
        package = json.loads((data_dir() / "datapackage.json").read_text(encoding="utf-8"))
        for src in package.get("sources") or ():
            title = str(src.get("title", "")) if isinstance(src, dict) else ""
            for key in ("profile", "flows", "seed"):
                match = re.search(rf"--{key}\s+(\S+)", title)
                if match:
                    meta[key] = match.group(1)
    return meta


def _is_bundled(source: str) -> bool:
    if source == "default":
        return True
    with contextlib.suppress(OSError, FileNotFoundError):
        from tokenlib.analysis.inventory import data_dir

        return Path(source).resolve() == (data_dir() / "flows.csv").resolve()
    return False


def _default_share(rep: Any) -> float | None:
    """Share of the inventory's cells the loader filled with documented defaults."""
    from tokenlib.analysis import schema as S

    cells = rep.flows_out * len(S.FLOWS.columns)
    if not rep.services_derived:
        cells += rep.services_out * len(S.SERVICES.columns)
    if not rep.authorization_servers_derived:
        cells += rep.authorization_servers_out * len(S.AUTHORIZATION_SERVERS.columns)
    if cells <= 0:
        return None
    filled = sum(int(n) for _table, _column, n in rep.defaults)
    return float(min(1.0, filled / cells))


def inspect_inventory(source: str) -> tuple[str, Provenance]:
    """Load ``source``; return the value to pass to the notebooks and its provenance.

    Raises :class:`InventoryValidationError` (one line, file names only) when the loader
    rejects the inventory or when it holds no flow.
    """
    try:
        from tokenlib.analysis.inventory import load_inventory

        inv = load_inventory(source)
    except Exception as exc:  # the loader's own error, surfaced to the user in one line
        raise InventoryValidationError(_one_line(exc, source)) from exc
    name = _display_name(source)
    if len(inv.flows) == 0:
        raise InventoryValidationError(
            f"{name} has no flows (a header without rows, or only comments): add at least one "
            "flow (see data/template_flows.csv)"
        )
    rep = inv.report
    n_servers = len(inv.authorization_servers)
    notes: list[str] = []
    if _is_bundled(source):
        meta = _bundle_metadata()
        prov = Provenance(
            kind="synthetic",
            name="bundled synthetic inventory",
            flows=len(inv.flows),
            services=len(inv.services),
            authorization_servers=n_servers,
            profile=meta.get("profile"),
            seed=meta.get("seed"),
        )
    else:
        path = Path(source)
        date = None
        with contextlib.suppress(OSError):
            date = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d")
        if rep is not None and rep.services_derived:
            notes.append("resource servers derived from the flows (no services file)")
        if rep is not None and rep.authorization_servers_derived:
            notes.append("authorization servers derived from the flows")
        found = _provenance_summary(inv, path)
        summary = found[0] if found is not None else None
        if found is not None and found[0].synthetic:
            return str(path.resolve()), _generated(inv, path, found[0], found[1], n_servers)
        prov = Provenance(
            kind="imported",
            name=path.name,
            flows=len(inv.flows),
            services=len(inv.services),
            authorization_servers=n_servers,
            date=date,
            default_share=(
                summary.assumed_share
                if summary is not None
                else (_default_share(rep) if rep is not None else None)
            ),
            notes=tuple(notes),
            sources=()
            if summary is None
            else tuple((src, summary.share(src)) for src in ("registered", "observed", "declared")),
        )
    if source != "default" and Path(source).exists():
        return str(Path(source).resolve()), prov
    return source, prov


def _provenance_summary(inv: Any, path: Path) -> tuple[Any, str] | None:
    """The provenance table beside the flows file, if any, read once: its summary and the
    detail of its first row (a generator's ``generated:<profile>:...:seed=<n>``)."""
    from tokenlib.analysis import provenance

    found = provenance.find_provenance(path)
    if found is None:
        return None
    table = provenance.load_provenance(found)
    detail = str(table["detail"].iloc[0]) if len(table) else ""
    return provenance.summarise_provenance(inv, table), detail


def _generated(inv: Any, path: Path, summary: Any, detail: str, n_servers: int) -> Provenance:
    """A user's file that ``tokenlib inventory generate`` wrote: synthetic, and said so."""
    fields = dict(part.split("=", 1) for part in detail.split(":") if "=" in part)
    profile = detail.split(":")[1] if detail.startswith("generated:") else None
    return Provenance(
        kind="synthetic",
        name=path.name,
        flows=len(inv.flows),
        services=len(inv.services),
        authorization_servers=n_servers,
        profile=profile,
        seed=fields.get("seed"),
        notes=(f"{summary.n_cells} cells, all generated",),
    )


def validate_inventory(source: str) -> str:
    """Load ``source`` with the inventory loader; return the value to pass to the notebooks.

    Raises :class:`InventoryValidationError` with the loader's message (one line) on failure.
    """
    return inspect_inventory(source)[0]


# ---------------------------------------------------------------------------------------------
# Temporary build folders: owner file, stale clean-up.


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(folder: Path, now: float) -> bool:
    try:
        age = now - folder.stat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    owner: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        owner = json.loads((folder / _OWNER_FILE).read_text(encoding="utf-8"))
    pid = owner.get("pid")
    if pid is None:  # older builds named the folder .<out>.tmp-<random>; .old-<pid>-<hex> too
        match = re.match(r"^\.[^/]*\.(?:tmp|old)-(\d+)-", folder.name)
        pid = int(match.group(1)) if match else None
    if pid is None:
        return age > _UNOWNED_GRACE_S
    if owner.get("host") not in (None, socket.gethostname()):
        return False
    return not _owner_alive(int(pid))


def clean_stale_builds(out_dir: Path) -> list[Path]:
    """Remove ``.<out>.tmp-*`` / ``.<out>.old-*`` folders next to ``out_dir`` left by dead runs.

    A folder is stale when its owner process (``.owner.json`` or the pid in its name) is gone,
    or when it is older than :data:`STALE_AFTER_S`. Returns the folders removed.
    """
    removed: list[Path] = []
    parent = out_dir.parent
    if not parent.is_dir():
        return removed
    now = time.time()
    for pattern in (f".{out_dir.name}.tmp-*", f".{out_dir.name}.old-*"):
        for folder in parent.glob(pattern):
            if folder.is_dir() and not folder.is_symlink() and _stale(folder, now):
                shutil.rmtree(folder, ignore_errors=True)
                if not folder.exists():
                    removed.append(folder)
    return removed


# ---------------------------------------------------------------------------------------------
# Child processes: papermill dies with the build, and is killed when the build stops.

_CHILDREN: set[subprocess.Popen[str]] = set()
_CHILDREN_LOCK = threading.Lock()

# Run papermill with a parent-death signal (Linux prctl PR_SET_PDEATHSIG = 1): if the build is
# killed, even with SIGKILL, papermill is killed too, and its kernel's parent poller (ipykernel
# watches JPY_PARENT_PID) shuts the kernel down within about a second.
_CHILD_BOOT = """\
import os, signal, sys, runpy
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(70)
sys.argv = ["papermill", *sys.argv[2:]]
runpy.run_module("papermill", run_name="__main__", alter_sys=True)
"""


def _kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, OSError):
        proc.kill()


def _kill_children() -> None:
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for proc in children:
        _kill(proc)


# ---------------------------------------------------------------------------------------------
# The build.


def build_report(
    *,
    inventory: str = "default",
    out: str | os.PathLike[str] = "reports",
    seed: int | None = None,
    quick: bool = False,
    notebooks: Sequence[Path] | None = None,
    jobs: int = 2,
    progress: bool = True,
    bundle: bool = True,
    cache: str | os.PathLike[str] | bool = True,
) -> Report:
    """Validate, execute, render and swap in a report at ``out``; see the module docstring.

    ``bundle=False`` skips the single-file HTML and the PDF. ``cache``: the notebooks' costly
    results (joint-uncertainty draws) are kept in ``.tokenlib-cache`` next to ``out`` (or in
    the folder given), keyed by the inventory's content, the parameters and the analysis
    code (``tokenlib.analysis._diskcache``), so a second run reuses them; ``False`` disables it.
    """
    started = time.perf_counter()
    inventory_param, provenance = inspect_inventory(inventory)
    paths = list(notebooks) if notebooks is not None else find_notebooks()
    if not paths:
        raise NoNotebooksError(f"no notebooks matched; expected {DEFAULT_NOTEBOOKS}/NN_*.ipynb")
    out_dir = Path(out).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_builds(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-", dir=out_dir.parent))
    try:
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        atomic_write_text(tmp / _OWNER_FILE, json.dumps(owner) + "\n")
        params = _parameters(tmp, inventory_param, seed=seed, quick=quick)
        cache_dir = (
            None
            if cache is False
            else Path(out_dir.parent / CACHE_DIRNAME if cache is True else cache).resolve()
        )
        context = _Context(
            tmp=tmp, inventory=inventory_param, provenance=provenance, cache_dir=cache_dir
        )
        pages = _execute_all(paths, context, params, jobs=jobs, progress=progress)
        figures = _collect_figures(tmp, pages)
        pages = [
            _with_figures(p, tuple(f for f, owner_page in figures if owner_page == p.name))
            for p in pages
        ]
        figure_names = tuple(f for f, _ in figures)
        exports = tuple(sorted(p.name for p in (tmp / "exports").glob("*.csv")))
        meta = {"inventory": provenance.name, "seed": seed, "quick": quick, **_versions()}
        generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        extras = _write_extra_pages(tmp)
        site = _Site(pages, extras, provenance, generated)
        site.decorate_all(tmp)
        _write_index(tmp, site, figure_names, exports, meta)
        bundled = _write_bundle(tmp) if bundle else ()
        (tmp / _OWNER_FILE).unlink(missing_ok=True)
        os.chmod(tmp, 0o755)  # noqa: S103 - mkdtemp is 0700; a report is meant to be read
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Report(
        out_dir,
        tuple(pages),
        figure_names,
        exports,
        time.perf_counter() - started,
        provenance,
        (*extras, *bundled),
    )


@dataclass(frozen=True, slots=True)
class _Context:
    tmp: Path
    inventory: str
    provenance: Provenance
    cache_dir: Path | None = None


def _with_figures(page: NotebookPage, figures: tuple[str, ...]) -> NotebookPage:
    return NotebookPage(
        page.name,
        page.title,
        page.summary,
        page.page,
        page.presentation,
        page.notebook,
        page.seconds,
        figures,
    )


def _parameters(tmp: Path, inventory: str, *, seed: int | None, quick: bool) -> dict[str, Any]:
    (tmp / "figures").mkdir()
    (tmp / "exports").mkdir()
    params: dict[str, Any] = {
        "INVENTORY": inventory,
        "FIGURES_DIR": str(tmp / "figures"),
        "EXPORT_DIR": str(tmp / "exports"),
        "QUICK": quick,
    }
    if seed is not None:
        params["SEED"] = seed
    if quick:
        params["N_SIM"] = QUICK_N_SIM
        params["DRAWS"] = QUICK_DRAWS
    return params


def _execute_all(
    paths: Sequence[Path],
    context: _Context,
    params: Mapping[str, Any],
    *,
    jobs: int,
    progress: bool,
) -> list[NotebookPage]:
    from tqdm import tqdm

    tmp = context.tmp
    for sub in ("notebooks", "pages", "presentation", ".figures"):
        (tmp / sub).mkdir()
    results: dict[str, NotebookPage] = {}
    bar = tqdm(total=len(paths), desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    with bar, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_run_one, path, context, params): path for path in paths}
        try:
            for future in as_completed(futures):
                page = future.result()
                results[page.name] = page
                bar.set_postfix_str(page.name)
                bar.update()
        except BaseException:
            for pending in futures:
                pending.cancel()
            _kill_children()
            raise
    return [results[p.stem] for p in paths]


def _run_one(path: Path, context: _Context, params: Mapping[str, Any]) -> NotebookPage:
    started = time.perf_counter()
    tmp = context.tmp
    executed = tmp / "notebooks" / path.name
    figures_dir = tmp / ".figures" / path.stem  # one folder per notebook: story order
    figures_dir.mkdir(parents=True, exist_ok=True)
    _execute_notebook(
        path, executed, {**params, "FIGURES_DIR": str(figures_dir)}, cache_dir=context.cache_dir
    )
    seconds = time.perf_counter() - started
    nbformat: Any = importlib.import_module("nbformat")
    nb = nbformat.read(executed, as_version=4)
    replacements = [
        (str(figures_dir), "../figures"),
        (str(tmp / "exports"), "../exports"),
        (str(tmp), ".."),
    ]
    if context.inventory != "default":
        replacements.append((context.inventory, context.provenance.name))
    replacements.append((str(PROJECT_ROOT) + "/", ""))
    replacements.append((str(path.parent) + "/", ""))
    nb = _relative_paths(nb, replacements)
    nbformat.write(nb, executed)
    title, summary = _title_and_summary(nb, path.stem)
    _render(nb, tmp / "pages" / f"{path.stem}.html", title, exclude_input=False)
    _render(nb, tmp / "presentation" / f"{path.stem}.html", title, exclude_input=True)
    return NotebookPage(
        name=path.stem,
        title=title,
        summary=summary,
        page=f"pages/{path.stem}.html",
        presentation=f"presentation/{path.stem}.html",
        notebook=f"notebooks/{path.name}",
        seconds=seconds,
    )


def _relative_paths(nb: Any, replacements: Sequence[tuple[str, str]]) -> Any:
    """Replace the build's absolute paths in every cell and text output (papermill's injected
    parameters cell holds FIGURES_DIR / EXPORT_DIR / INVENTORY); mark the injected cell."""

    def fix(text: str) -> str:
        for old, new in replacements:
            if old:
                text = text.replace(old, new)
        return text

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return fix(value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            for key in list(value):
                if not key.startswith("image/"):
                    value[key] = walk(value[key])
            return value
        return value

    walk(nb.metadata)  # papermill records input / output paths and the parameters
    for cell in nb.cells:
        cell["source"] = fix(cell.get("source", ""))
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["source"] = cell["source"].replace(
                "# Parameters",
                "# Parameters injected by the report (paths relative to this page)",
                1,
            )
        for output in cell.get("outputs", []):
            walk(output)
    return nb


def _execute_notebook(
    src: Path, dst: Path, params: Mapping[str, Any], *, cache_dir: Path | None = None
) -> None:
    """Run ``src`` with papermill in a child process, injecting only declared parameters.

    A child process keeps kernel start-up noise and event-loop state out of the caller; its
    output is shown only when the notebook fails. The child dies with this process (see
    ``_CHILD_BOOT``) and is killed with its process group when the build is interrupted.
    """
    import papermill as pm

    declared = set(pm.inspect_notebook(str(src)))
    fd, params_file = tempfile.mkstemp(prefix=f".{src.stem}.", suffix=".json", dir=dst.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({k: v for k, v in params.items() if k in declared}, fh)
    command = [
        sys.executable, "-c", _CHILD_BOOT, str(os.getpid()),
        str(src), str(dst), "-f", params_file,
        "-k", "python3", "--cwd", str(src.parent), "--no-progress-bar", "--start-timeout", "120",
    ]  # fmt: skip
    try:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter running papermill
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=_child_env(cache_dir),
        )
        with _CHILDREN_LOCK:
            _CHILDREN.add(proc)
        try:
            _, stderr = proc.communicate()
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(proc)
            _kill(proc)  # anything left in its process group
    finally:
        os.unlink(params_file)
    if proc.returncode != 0:
        raise NotebookExecutionError(f"{src.name}: {_failure(dst, stderr)}")


def _child_env(cache_dir: Path | None) -> dict[str, str]:
    """The notebook process's environment: ours, with the result cache switched on or off."""
    env = {k: v for k, v in os.environ.items() if k != CACHE_ENV}
    if cache_dir is not None:
        env[CACHE_ENV] = str(cache_dir)
    return env


def _failure(executed: Path, stderr: str) -> str:
    """The failing cell and its exception from the partly executed notebook, else stderr."""
    nbformat: Any = importlib.import_module("nbformat")
    if executed.exists():
        nb = nbformat.read(executed, as_version=4)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    count = cell.get("execution_count")
                    return f"cell {count} raised {output.get('ename')}: {output.get('evalue')}"
    tail = [line for line in stderr.splitlines() if line.strip()][-5:]
    return "papermill failed: " + " | ".join(tail)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_BLURB_CHARS = 320


def _plain_markdown(text: str) -> str:
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"\*\*|__|\*|`", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _whole_sentences(text: str, limit: int = _BLURB_CHARS) -> str:
    """The first sentences of ``text`` up to about ``limit`` characters, never cut mid-sentence."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    kept: list[str] = []
    for sentence in sentences:
        if kept and len(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    if len(kept) > 1 and kept[-1].endswith(":"):  # it introduces a list the blurb leaves out
        kept.pop()
    blurb = " ".join(kept).rstrip(":;, ")
    if blurb and blurb[-1] not in ".!?":
        blurb += "."
    return blurb


def _title_and_summary(nb: Any, fallback: str) -> tuple[str, str]:
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = [line.strip() for line in cell.source.splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            continue
        title = _plain_markdown(lines[0].lstrip("#")) if lines[0].startswith("#") else fallback
        paragraph: list[str] = []
        for line in (
            cell.source.split("\n", 1)[1] if lines[0].startswith("#") else cell.source
        ).splitlines():
            stripped = line.strip()
            if not stripped:
                if paragraph:
                    break
                continue
            if stripped.startswith(("#", "|", ">", "```")) or re.match(
                r"([-*+]|\d+\.)\s", stripped
            ):
                if paragraph:
                    break
                continue
            paragraph.append(stripped)
        return title, _whole_sentences(_plain_markdown(" ".join(paragraph)))
    return fallback, ""


def _strip_widgets(nb: Any) -> Any:
    """Replace widget views with a note: headless HTML cannot run them (no kernel, no CDN)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data and _WIDGET_MIME in data:
                output["data"] = {"text/plain": _WIDGET_NOTE}
    return nb


def _render(nb: Any, target: Path, title: str, *, exclude_input: bool) -> None:
    import copy

    nbconvert: Any = importlib.import_module("nbconvert")
    jinja2: Any = importlib.import_module("jinja2")
    exporter = nbconvert.HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"tokenlib_offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="tokenlib_offline.html.j2",
    )
    exporter.exclude_input = exclude_input
    exporter.exclude_input_prompt = exclude_input
    exporter.exclude_output_prompt = exclude_input
    body, _ = exporter.from_notebook_node(
        _strip_widgets(copy.deepcopy(nb)), resources={"metadata": {"name": title}}
    )
    atomic_write_text(target, body)


def _versions() -> dict[str, str]:
    import tokenlib

    return {"tokenlib": tokenlib.__version__, "python": platform.python_version()}


# ---------------------------------------------------------------------------------------------
# Figures: story order (notebook order, then save order) and captions from their titles.


def _collect_figures(tmp: Path, pages: Sequence[NotebookPage]) -> list[tuple[str, str]]:
    """Move each notebook's figures into ``figures/``; return (name, notebook) in story order."""
    ordered: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    target = tmp / "figures"
    for page in pages:
        folder = tmp / ".figures" / page.name
        if not folder.is_dir():
            continue
        pngs = sorted(folder.glob("*.png"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        for png in pngs:
            for src in folder.glob(f"{png.stem}.*"):
                os.replace(src, target / src.name)
            if png.stem in seen:  # saved again by a later notebook: keep the later place
                ordered.pop(seen[png.stem])
                seen = {n: i for i, (n, _) in enumerate(ordered)}
            seen[png.stem] = len(ordered)
            ordered.append((png.stem, page.name))
        for rest in folder.iterdir():  # figures saved in other formats only
            os.replace(rest, target / rest.name)
    shutil.rmtree(tmp / ".figures", ignore_errors=True)
    known = {n for n, _ in ordered}
    for png in sorted(target.glob("*.png"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        if png.stem not in known:  # saved straight into figures/ (older notebooks)
            ordered.append((png.stem, ""))
    return ordered


_SVG_TEXT_GROUP = re.compile(r'<g id="text_\d+">(.*?)</g>', re.S)
_SVG_TEXT = re.compile(r"<text\b([^>]*)>(.*?)</text>", re.S)


def figure_title(figures_dir: Path, name: str) -> str:
    """A figure's title: SVG ``dc:title`` or PNG ``Title`` metadata when set, else the
    largest top-most text of the SVG (the figure or axes title), else a humanised name."""
    svg_path, png_path = figures_dir / f"{name}.svg", figures_dir / f"{name}.png"
    svg = svg_path.read_text(encoding="utf-8", errors="replace") if svg_path.exists() else ""
    match = re.search(r"<dc:title>(.*?)</dc:title>", svg, re.S)
    if match and not match.group(1).startswith("Matplotlib"):
        return html.unescape(match.group(1)).strip()
    png_title = _png_text(png_path).get("Title") if png_path.exists() else None
    if png_title:
        return png_title
    best: tuple[tuple[float, float], str] | None = None
    for group in _SVG_TEXT_GROUP.finditer(svg):
        size, top, words = 0.0, math.inf, []
        for attrs, body in _SVG_TEXT.findall(group.group(1)):
            if "rotate(-90" in attrs or "rotate(90" in attrs:
                continue
            font = re.search(r"font-size:\s*([\d.]+)px", attrs)
            size = max(size, float(font.group(1)) if font else 0.0)
            y = re.search(r'\by="([-\d.]+)"', attrs)
            top = min(top, float(y.group(1)) if y else math.inf)
            words.append(html.unescape(re.sub(r"<[^>]+>", "", body)).strip())
        text = " ".join(w for w in words if w)
        if text and (best is None or (-size, top) < best[0]):
            best = ((-size, top), text)
    if best is not None:
        return best[1]
    return name.replace("_", " ").replace("-", " ").capitalize()


def _png_text(path: Path) -> dict[str, str]:
    import struct
    import zlib

    out: dict[str, str] = {}
    data = path.read_bytes()
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and b"\0" in chunk:
            key, _, value = chunk.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt" and b"\0" in chunk:
            key, _, rest = chunk.partition(b"\0")
            compressed = rest[:1] == b"\1"
            text = rest[2:].split(b"\0", 2)[-1]
            with contextlib.suppress(zlib.error, UnicodeDecodeError):
                out[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode(
                    "utf-8"
                )
        elif kind == b"IEND":
            break
        pos += 12 + length
    return out


# ---------------------------------------------------------------------------------------------
# Numbers for reading (tokenlib.analysis.labels is the one label map and number format).


def _labels() -> Any:
    return importlib.import_module("tokenlib.analysis.labels")


def _share(x: float) -> str:
    return str(_labels().fmt_value(x, "share"))


def _count(n: float) -> str:
    return str(_labels().fmt_count(n))


def _span(low: float, high: float, unit: str = "share") -> str:
    """``"29–81%"`` (the interval alone)."""
    fmt = _labels().fmt_value
    a, b = str(fmt(low, unit)), str(fmt(high, unit))
    if unit == "share" and a.endswith("%") and b.endswith("%"):
        a = a[:-1]
    return f"{a}\u2013{b}"


def _basis_label(basis: str) -> str:
    return str(_labels().label("basis", basis)) if basis else ""


# ---------------------------------------------------------------------------------------------
# Executive summary: five to seven takeaways read from exports/headline_numbers.csv.

#: metric-id prefix -> notebook prefix of the page that shows it
_METRIC_PAGES = (
    ("deployable_share_", "04"),
    ("token_binding_", "04"),
    ("usable_share_", "02"),
    ("token_theft_removed_", "02"),
    ("exposure_hours_", "02"),
    ("credential_store_", "00"),
    ("blast_radius_", "03"),
    ("recommendations_", "05"),
)


def _page_for(metric_id: str) -> str:
    for prefix, page in _METRIC_PAGES:
        if metric_id.startswith(prefix):
            return page
    return "00"


def read_headline(path: Path) -> dict[str, dict[str, Any]] | None:
    """Rows of ``headline_numbers.csv`` by metric id (numbers as floats, NaN when empty)."""
    if not path.exists():
        return None
    rows: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            item: dict[str, Any] = {k: (v or "").lstrip("'") for k, v in row.items() if k}
            for key in ("value", "low", "high"):
                try:
                    item[key] = float(item.get(key, ""))
                except ValueError:
                    item[key] = math.nan
            rows[str(item.get("metric_id", ""))] = item
    return rows


def _finite(row: Mapping[str, Any] | None) -> bool:
    return row is not None and all(math.isfinite(row[k]) for k in ("value", "low", "high"))


def _ranged(row: Mapping[str, Any]) -> str:
    if row["low"] == row["high"] == row["value"]:
        return _share(row["value"])
    return f"{_share(row['value'])} (range {_span(row['low'], row['high'])})"


def _change(row: Mapping[str, Any], what: str, *, ranged: bool = False) -> tuple[str, bool]:
    """How a "removed" share reads: removes / adds / either way (the range crosses zero)."""
    v, lo, hi = row["value"], row["low"], row["high"]
    if lo > 0:
        return f"removes {_ranged(row) if ranged else _share(v)} of {what}", True
    if hi < 0:
        span = _span(-hi, -lo) if lo != hi else _share(-v)
        return f"adds {_share(-v)} (range {span}) to {what} instead of removing any", False
    if lo == hi == v == 0:
        return f"changes nothing in {what}", False
    return (
        f"may remove or add to {what}: the central estimate is {_share(v)}, but the range "
        f"({_span(lo, hi)}) crosses zero, so this does not hold across the assumptions",
        False,
    )


def takeaways(rows: Mapping[str, Mapping[str, Any]], *, flows: int | None = None) -> list[Takeaway]:
    """Five to seven plain-language takeaways, each against today's inventory, from the rows of
    ``headline_numbers.csv`` (:func:`read_headline`); a takeaway whose metric is missing is
    left out, one that cannot be computed or does not hold is worded as such."""
    out: list[Takeaway] = []

    def add(mid: str, sentence: str, row: Mapping[str, Any], *, holds: bool = True) -> None:
        value = _ranged(row) if _finite(row) else "n/a"
        out.append(Takeaway(mid, sentence, value, str(row.get("basis", "")), _page_for(mid), holds))

    def missing(mid: str, what: str) -> None:
        row = rows[mid]
        out.append(
            Takeaway(
                mid,
                f"{what} could not be computed on this inventory.",
                "n/a",
                str(row.get("basis", "")),
                _page_for(mid),
                False,
            )
        )

    dpop, mtls = rows.get("deployable_share_dpop_today"), rows.get("deployable_share_mtls_today")
    if dpop is not None:
        if not _finite(dpop):
            missing("deployable_share_dpop_today", "The share of flows that could use DPoP today")
        else:
            v = dpop["value"]
            n = f" ({_count(round(v * flows))} of {_count(flows)})" if flows else ""
            if v > 0:
                text = (
                    f"{_share(v)} of flows{n} could enforce DPoP today: their client, "
                    "authorization server and resource server already support it."
                )
            else:
                text = "No flow could enforce DPoP today: each lacks support at the client, "
                text += "the authorization server or the resource server."
            if _finite(mtls):
                assert mtls is not None
                text += f" {_share(mtls['value'])} could enforce mTLS-bound tokens."
            add("deployable_share_dpop_today", text, dpop, holds=v > 0)

    usable = rows.get("usable_share_today")
    if usable is not None:
        if not _finite(usable):
            missing("usable_share_today", "The share of stolen tokens still usable")
        else:
            add(
                "usable_share_today",
                f"{_share(usable['value'])} of stolen access and refresh tokens would still "
                "work when the attacker uses them.",
                usable,
            )

    up = rows.get("token_theft_removed_dpop_nonce_shared_cache_upgraded")
    today = rows.get("token_theft_removed_dpop_nonce_shared_cache_today")
    if up is not None or today is not None:
        mid = (
            "token_theft_removed_dpop_nonce_shared_cache_upgraded"
            if up is not None
            else "token_theft_removed_dpop_nonce_shared_cache_today"
        )
        main = up if up is not None else today
        assert main is not None
        if not _finite(main):
            missing(mid, "The token-theft exposure DPoP removes")
        else:
            phrase, holds = _change(main, "today's token-theft exposure")
            who = "once every resource server is upgraded" if up is not None else "today"
            text = (
                "Moving every flow to DPoP with server nonces and a shared replay store "
                f"{phrase} {who}"
            )
            if up is not None and _finite(today):
                assert today is not None
                phrase_today, _ = _change(today, "it", ranged=True)
                text += f"; with today's resource-server support it {phrase_today}"
            add(mid, text + ".", main, holds=holds)

    store = rows.get("credential_store_share_today")
    if store is not None:
        if not _finite(store):
            missing("credential_store_share_today", "The credential-store share of exposure")
        else:
            add(
                "credential_store_share_today",
                f"{_share(store['value'])} of today's exposure comes from copies of a client's "
                "credential store (private key, certificate or client secret); no token "
                "binding stops those, so they need their own controls.",
                store,
            )

    recs = rows.get("recommendations_removed_share")
    if recs is not None:
        if not _finite(recs):
            missing("recommendations_removed_share", "The effect of the recommendations")
        else:
            phrase, holds = _change(recs, "today's token-theft exposure")
            add(
                "recommendations_removed_share",
                f"Following every recommendation of this report {phrase}.",
                recs,
                holds=holds,
            )

    blast = rows.get("blast_radius_removed_dpop_nonce_shared_cache_today")
    if blast is not None:
        if not _finite(blast):
            missing("blast_radius_removed_dpop_nonce_shared_cache_today", "The blast radius")
        else:
            phrase, holds = _change(blast, "the blast radius")
            add(
                "blast_radius_removed_dpop_nonce_shared_cache_today",
                "With today's resource-server support, DPoP with server nonces and a shared "
                f"replay store {phrase} (the services a stolen token reaches, weighted by "
                "what is at stake).",
                blast,
                holds=holds,
            )

    tb = rows.get("token_binding_counterfactual_share")
    if tb is not None:
        if not _finite(tb):
            missing("token_binding_counterfactual_share", "Token Binding's reach")
        else:
            text = (
                "Token Binding is not an option: even at its best historical client support "
                f"it could reach {_share(tb['value'])} of flows, because it needs every hop to "
                "pass TLS through untouched"
            )
            worse = rows.get("token_theft_removed_token_binding_today")
            if _finite(worse) and worse is not None and worse["high"] < 0:
                text += (
                    f"; moving to it today would add {_share(-worse['value'])} to "
                    "today's token-theft exposure"
                )
            add("token_binding_counterfactual_share", text + ".", tb)
    return out[:7]


# ---------------------------------------------------------------------------------------------
# Navigation and provenance banner on every page.


class _Site:
    """Page order, titles, banner and navigation of one report."""

    def __init__(
        self,
        pages: Sequence[NotebookPage],
        extras: Sequence[str],
        provenance: Provenance,
        generated: str,
    ) -> None:
        self.pages = list(pages)
        self.provenance = provenance
        self.generated = generated
        self.titles: dict[str, str] = {"index.html": "Summary"}
        for p in pages:
            self.titles[p.presentation] = p.title
            self.titles[p.page] = f"{p.title} (with code)"
        self.titles[APPENDIX_PAGE] = "Appendix: model parameters"
        self.titles[REFERENCES_PAGE] = "References"
        self.presentation = ["index.html", *(p.presentation for p in pages), *extras]
        self.code = ["index.html", *(p.page for p in pages)]
        self.extras = list(extras)
        self.variant = {p.presentation: p.page for p in pages}
        self.variant.update({p.page: p.presentation for p in pages})

    def banner(self) -> str:
        prov = self.provenance
        notes = "".join(f" Note: {html.escape(n)}." for n in prov.notes)
        return (
            f'<div class="provenance" role="note"><strong>Inventory:</strong> '
            f"{html.escape(prov.sentence())}{notes} "
            f'<span class="generated">Report generated {html.escape(self.generated)}.</span>'
            "</div>"
        )

    def nav(self, rel: str) -> str:
        order = self.code if rel.startswith("pages/") else self.presentation
        here = os.path.dirname(rel) or "."

        def link(target: str, text: str, cls: str) -> str:
            href = os.path.relpath(target, here).replace(os.sep, "/")
            return f'<a class="{cls}" href="{html.escape(href)}">{text}</a>'

        i = order.index(rel) if rel in order else -1
        prev = (
            link(order[i - 1], f"\u2190 {html.escape(self.titles[order[i - 1]])}", "prev")
            if i > 0
            else '<span class="prev"></span>'
        )
        nxt = (
            link(order[i + 1], f"{html.escape(self.titles[order[i + 1]])} \u2192", "next")
            if 0 <= i < len(order) - 1
            else '<span class="next"></span>'
        )
        middle = [link("index.html", "Index", "index")] if rel != "index.html" else []
        if rel in self.variant:
            other = self.variant[rel]
            middle.append(
                link(
                    other, "with code" if other.startswith("pages/") else "without code", "variant"
                )
            )
        return (
            f'<nav class="report-nav" aria-label="pages">{prev}'
            f'<span class="middle">{" · ".join(middle)}</span>{nxt}</nav>'
        )

    def decorate(self, rel: str, text: str) -> str:
        """Insert the style, navigation and banner into a rendered page."""
        head = f"<style>{_SITE_CSS}</style>"
        text = text.replace("</head>", head + "\n</head>", 1) if "</head>" in text else head + text
        top = f'<header class="report-top">{self.nav(rel)}\n{self.banner()}</header>'
        bottom = f'<footer class="report-bottom">{self.nav(rel)}</footer>'
        match = re.search(r"<body[^>]*>", text)
        at = match.end() if match else 0
        text = text[:at] + "\n" + top + text[at:]
        cut = text.rfind("</body>")
        return text[:cut] + bottom + "\n" + text[cut:] if cut >= 0 else text + bottom

    def decorate_all(self, tmp: Path) -> None:
        for rel in [*self.presentation[1:], *self.code[1:]]:
            path = tmp / rel
            if path.exists():
                atomic_write_text(path, self.decorate(rel, path.read_text(encoding="utf-8")))


_SITE_CSS = """
.report-top, .report-bottom { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px;
  margin: 0 auto; padding: 0 1em; box-sizing: border-box; }
.report-nav { display: flex; justify-content: space-between; gap: 1em; align-items: baseline;
  padding: .6em 0; border-bottom: 1px solid #ddd; }
.report-bottom .report-nav { border-bottom: 0; border-top: 1px solid #ddd; margin-top: 2em; }
.report-nav a { color: #0b57d0; text-decoration: none; }
.report-nav a:hover { text-decoration: underline; }
.report-nav .prev, .report-nav .next { flex: 1 1 0; } .report-nav .next { text-align: right; }
.report-nav .middle { flex: 0 0 auto; }
.provenance { background: #fff8e1; border: 1px solid #ecd9a0; border-radius: 4px;
  padding: .5em .8em; margin: .6em 0 1em; color: #3b3b3b; overflow-wrap: anywhere; }
.provenance .generated { color: #666; }
"""


# ---------------------------------------------------------------------------------------------
# Index page.


def _summary_html(rows: Mapping[str, Mapping[str, Any]] | None, site: _Site) -> str:
    """The executive summary (takeaways) and the full headline table."""
    e = html.escape
    if rows is None:
        return (
            '<section id="executive-summary"><h2>Summary</h2>'
            '<p class="missing">No headline numbers: <code>exports/headline_numbers.csv</code> '
            "was not written (the overview notebook did not run, or it failed). The pages "
            "below are complete; rerun the report with every notebook for the summary.</p>"
            "</section>"
        )
    pages = {p.name[:2]: p for p in site.pages}
    items = []
    for t in takeaways(rows, flows=site.provenance.flows):
        page = pages.get(t.page_prefix)
        see = (
            f' · <a href="{e(page.presentation)}" title="{e(page.title)}">'
            f"See page {e(page.name[:2])} \u2192</a>"
            if page
            else ""
        )
        row = rows[t.metric_id]
        span = (
            f"Range over the assumptions: {_span(row['low'], row['high'])}"
            if _finite(row) and row["low"] != row["high"]
            else "No range: counted from the inventory"
            if row.get("basis") == "inventory"
            else "No range"
        )
        cls = "holds" if t.holds else "does-not-hold"
        items.append(
            f'<li class="{cls}"><p>{e(t.sentence)}</p><p class="meta">{e(span)} · '
            f"Basis: {e(_basis_label(t.basis))}{see}</p></li>"
        )
    body = "\n".join(items) or "<li>No takeaway could be computed on this inventory.</li>"
    return (
        '<section id="executive-summary"><h2>Summary</h2>'
        '<p class="lead">Every number compares with <strong>today\'s inventory</strong> (the '
        "flows as they are). Ranges cover 90% of outcomes when every assumption varies over its "
        "range; <em>Basis</em> says whether a number is counted from the inventory, sourced, or "
        "rests on assumptions.</p>"
        f'<ol class="takeaways">\n{body}\n</ol></section>\n' + _headline_table(rows)
    )


def _clean_finding(text: str) -> str:
    """A headline sentence without register ids (``(A23a)``, ``A23a-c``)."""
    text = re.sub(r"\s*\((?:[ASD]\d+[a-z]?(?:[-\u2013][a-z])?(?:,\s*)?)+\)", "", text)
    text = re.sub(r",?\s*[^,;()]*\b[ASD]\d+[a-z]?[-\u2013][a-z]\b", "", text)
    return re.sub(r"\s+([,;.)])", r"\1", text)


def _headline_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    e = html.escape
    cells = []
    for row in rows.values():
        unit = str(row.get("unit", "share"))
        if _finite(row):
            value = _labels().fmt_range(row["value"], row["low"], row["high"], unit)
        else:
            value = "not computed"
        baseline = str(row.get("baseline", ""))
        baseline = baseline if baseline and baseline != "none" else "a level, not a change"
        cells.append(
            f"<tr><td>{e(_clean_finding(str(row.get('finding', ''))))}</td>"
            f'<td class="num">{e(str(value))}</td>'
            f"<td>{e(baseline)}</td>"
            f"<td>{e(_basis_label(str(row.get('basis', ''))))}</td></tr>"
        )
    return (
        '<h2 id="headline-numbers">Headline numbers</h2>\n<table class="headline">\n'
        "<thead><tr><th>Finding</th><th>Value (range over the assumptions)</th>"
        "<th>Compared with</th><th>Basis</th></tr></thead>\n<tbody>\n"
        + "\n".join(cells)
        + "\n</tbody></table>"
    )


def _write_index(
    tmp: Path,
    site: _Site,
    figures: Sequence[str],
    exports: Sequence[str],
    meta: Mapping[str, Any],
) -> None:
    e = html.escape
    rows = read_headline(tmp / "exports" / HEADLINE_CSV)
    titles = {name: figure_title(tmp / "figures", name) for name in figures}
    owner = {f: p for p in site.pages for f in p.figures}
    page_rows = "\n".join(
        f'<tr><td><a href="{e(p.presentation)}">{e(p.title)}</a>'
        f'<div class="s">{e(p.summary)}</div></td>'
        f'<td><a href="{e(p.page)}">with code</a></td>'
        f'<td><a href="{e(p.notebook)}">notebook (.ipynb)</a></td>'
        f'<td class="num">{p.seconds:.0f} s</td></tr>'
        for p in site.pages
    )
    extra_rows = "\n".join(
        f'<tr><td><a href="{e(rel)}">{e(site.titles[rel])}</a></td><td></td><td></td><td></td></tr>'
        for rel in site.extras
    )
    gallery = []
    for name in figures:
        page = owner.get(name)
        source = f' · from <a href="{e(page.presentation)}">{e(page.title)}</a>' if page else ""
        gallery.append(
            f'<figure><a href="figures/{e(name)}.svg"><img src="figures/{e(name)}.png" '
            f'alt="{e(titles[name])}"></a>'
            f"<figcaption>{e(titles[name])}{source} · "
            f'<a href="figures/{e(name)}.png">PNG</a> · <a href="figures/{e(name)}.svg">SVG</a>'
            "</figcaption></figure>"
        )
    downloads = "\n".join(f'<li><a href="exports/{e(x)}">{e(x)}</a></li>' for x in exports)
    facts = " · ".join(
        f"{e(str(k))} {e(str(v))}" for k, v in meta.items() if v is not None and k != "inventory"
    )
    text = _INDEX.format(
        title=e(REPORT_TITLE),
        css=_SITE_CSS,
        top=site.nav("index.html") + "\n" + site.banner(),
        bottom=site.nav("index.html"),
        facts=facts,
        summary=_summary_html(rows, site),
        rows=page_rows + ("\n" + extra_rows if extra_rows else ""),
        gallery="\n".join(gallery) or "<p>No figures.</p>",
        downloads=downloads or "<li>none</li>",
    )
    atomic_write_text(tmp / "index.html", text)
    manifest = {
        "title": REPORT_TITLE,
        "generated": site.generated,
        **meta,
        "provenance": site.provenance.to_dict(),
        "pages": [p.page for p in site.pages],
        "presentation": site.presentation[1:],
        "figures": list(figures),
        "figure_titles": titles,
        "exports": list(exports),
    }
    atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")


def _write_bundle(tmp: Path) -> tuple[str, ...]:
    """report.html and report.pdf via tokenlib.analysis.report_bundle (when importable); then
    link them from the index."""
    try:
        bundle: Any = importlib.import_module("tokenlib.analysis.report_bundle")
    except ImportError:
        return ()
    written: list[str] = []
    try:
        single = Path(bundle.write_single_html(tmp, title=REPORT_TITLE))
        written.append(single.name)
        pdf = bundle.write_pdf(single, tmp / "report.pdf")
        if pdf is not None:
            written.append(Path(pdf).name)
    except Exception as exc:  # the page folder is the report; the bundle is a convenience
        print(
            f"warning: single-file report incomplete: {type(exc).__name__}: {exc}", file=sys.stderr
        )
    if written:
        index = tmp / "index.html"
        links = " · ".join(
            f'<a href="{html.escape(name)}">{"PDF" if name.endswith(".pdf") else "one HTML file"}'
            f" ({html.escape(name)})</a>"
            for name in written
        )
        text = index.read_text(encoding="utf-8").replace(
            "<!-- report:downloads -->", f'<p class="send">To send: {links}</p>', 1
        )
        atomic_write_text(index, text)
    return tuple(written)


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp`` with two renames; restore the old report if one fails."""
    old: Path | None = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.rename(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Appendix (model parameters) and references.

_BRIEF_REF = re.compile(
    r"""\s*\((?:see\s+)?(?:domain[- ])?brief\s+§[^()]*\)
    |(?:domain[- ])?brief\s+§[\d.]+
      (?:(?:\s*(?:,|and|/)\s*§?[\d.]+)|\s+A\d+[a-z]?|\s+model\s+defaults
         |\s+assumption(?:\s+A\d+[a-z]?)?)*\s*[:;,]?\s*
    |\bper\s+§[\d.]+
    |\s*;?\s*ecosystem-\d{4}-\d{2}\s+§[\d.]+""",
    re.X | re.I,
)


def public_source(text: str) -> str:
    """A source text without internal notes (references to the unpublished domain brief)."""
    s = _BRIEF_REF.sub(" ", str(text))
    s = re.sub(r"\(\s*[;,:]?\s*\)", "", s)
    s = re.sub(r"\(\s*[;,:]\s*", "(", s)
    s = re.sub(r"[;,:]\s*\)", ")", s)
    s = re.sub(r"\s+([;,:)])", r"\1", s)
    s = re.sub(r"([;,:])(\s*[;,:])+", r"\1", s)
    s = re.sub(r"\s{2,}", " ", s).strip(" ;,:")
    s = re.sub(r"^\(([^()]*)\)", r"\1", s).strip(" ;,:")
    if s.count("(") > s.count(")"):
        s += ")"
    return s[:1].upper() + s[1:] if s else s


_RFC_TITLES = {
    "6749": "The OAuth 2.0 Authorization Framework",
    "6750": "The OAuth 2.0 Authorization Framework: Bearer Token Usage",
    "7591": "OAuth 2.0 Dynamic Client Registration Protocol",
    "8471": "The Token Binding Protocol Version 1.0",
    "8472": "Transport Layer Security (TLS) Extension for Token Binding Protocol Negotiation",
    "8473": "Token Binding over HTTP",
    "8693": "OAuth 2.0 Token Exchange",
    "8705": "OAuth 2.0 Mutual-TLS Client Authentication and Certificate-Bound Access Tokens",
    "8707": "Resource Indicators for OAuth 2.0",
    "9068": "JSON Web Token (JWT) Profile for OAuth 2.0 Access Tokens",
    "9440": "Client-Cert HTTP Header Field",
    "9449": "OAuth 2.0 Demonstrating Proof of Possession (DPoP)",
    "9700": "Best Current Practice for OAuth 2.0 Security",
}
#: every report cites these, whether or not a reference table names them
_CORE_RFCS = ("6750", "8705", "8471", "8472", "8473", "9068", "9440", "9449", "9700", "8693",
              "8707", "7591")  # fmt: skip
_OTHER_STANDARDS = (
    (
        "FAPI 2.0 Security Profile",
        "OpenID Foundation",
        "https://openid.net/specs/fapi-security-profile-2_0-final.html",
    ),
    (
        "OAuth 2.0 for Browser-Based Applications (draft-ietf-oauth-browser-based-apps)",
        "IETF OAuth working group draft",
        "https://datatracker.ietf.org/doc/draft-ietf-oauth-browser-based-apps/",
    ),
    (
        "OWASP Non-Human Identities Top 10",
        "OWASP",
        "https://owasp.org/www-project-non-human-identities-top-10/",
    ),
)
_LINKABLE = re.compile(
    r"(?P<url>https?://[^\s<>\"')]+)"
    r"|(?P<rfced>rfc-editor\.org/info/rfc\d{4})"
    r"|\bRFC\s?(?P<rfc>\d{4})"
    r"|\b(?P<draft>draft-[a-z0-9]+(?:-[a-z0-9]+)+)"
    r"|\b(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9])(?:\s+PR\s+#(?P<pr>\d+)|#(?P<issue>\d+))"
)


def _linked(text: str) -> str:
    """HTML-escaped ``text`` with links for URLs, RFCs, drafts and GitHub issues / PRs."""
    out: list[str] = []
    pos = 0
    for m in _LINKABLE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        label = html.escape(m.group(0))
        if m.group("url"):
            href = m.group("url")
        elif m.group("rfced"):
            href = "https://www." + m.group("rfced")
        elif m.group("rfc"):
            href = f"https://www.rfc-editor.org/rfc/rfc{m.group('rfc')}"
        elif m.group("draft"):
            href = f"https://datatracker.ietf.org/doc/{m.group('draft')}/"
        elif m.group("pr"):
            href = f"https://github.com/{m.group('repo')}/pull/{m.group('pr')}"
        else:
            href = f"https://github.com/{m.group('repo')}/issues/{m.group('issue')}"
        out.append(f'<a href="{html.escape(href)}">{label}</a>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _reference_tables() -> dict[str, list[dict[str, str]]]:
    from tokenlib.analysis.inventory import data_dir

    tables: dict[str, list[dict[str, str]]] = {}
    with contextlib.suppress(FileNotFoundError):
        for path in sorted((data_dir() / "reference").glob("*.csv")):
            with path.open(encoding="utf-8", newline="") as fh:
                tables[path.stem] = [dict(r) for r in csv.DictReader(fh)]
    return tables


_NOT_A_REFERENCE = re.compile(
    r"^(derived|model assumption|date and|share is|no |documented default|policy assumption|"
    r"probability|services\.|authorization_servers\.|bearer|certificate management|nothing|"
    r"headers|forward|an AS|RS must|TLS end)",
    re.I,
)


def _drop_shared_unit(a: str, b: str) -> str:
    """``"1 engineer-day"``, ``"20 engineer-days"`` -> ``"1"`` (the range says the unit once)."""
    ma = re.match(r"^([-\u2212$]?[\d.,]+)\s+(\D.*)$", a)
    mb = re.match(r"^([-\u2212$]?[\d.,]+)\s+(\D.*)$", b)
    if ma and mb:
        ua, ub = ma.group(2), mb.group(2)
        if ua == ub or ub.replace("days", "day").replace("hops", "hop") == ua:
            return ma.group(1)
        if ua.split(" ", 1)[-1] == ub.split(" ", 1)[-1] and " " in ua and " " in ub:
            return f"{ma.group(1)} {ua.split(' ', 1)[0]}"
    return a


def _appendix_page() -> str:
    from tokenlib.analysis.params import parameter_table

    lab = _labels()
    table = parameter_table()
    rows = []
    for r in table.to_dict("records"):
        unit = str(r["unit"])
        value = lab.fmt_value(r["current"], unit)
        if r.get("overridden"):
            value += f" (reference {lab.fmt_value(r['value'], unit)})"
        low, high = r["low"], r["high"]
        if low == high:
            span = "fixed"
        else:
            a, b = lab.fmt_value(low, unit), lab.fmt_value(high, unit)
            if a.endswith("%") and b.endswith("%"):
                a = a[:-1]
            a = _drop_shared_unit(a, b)
            span = f"{a}\u2013{b}"
        source = public_source(str(r["source"])) or (
            "No published source" if r["status"] == "assumption" else ""
        )
        rows.append(
            f"<tr><td><strong>{html.escape(str(lab.label('parameter', r['name'])))}</strong>"
            f'<div class="s">{html.escape(public_source(str(r["description"])))}</div></td>'
            f"<td>{html.escape(str(r['id']))}</td>"
            f'<td class="num">{html.escape(value)}</td><td class="num">{html.escape(span)}</td>'
            f"<td>{html.escape(str(r['status']).capitalize())}</td>"
            f"<td>{_linked(source)}</td></tr>"
        )
    counts = table["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    body = (
        "<h1>Appendix: model parameters</h1>"
        f"<p>Every parameter of the models ({len(table)}: {html.escape(summary)}), with the value "
        "used for the point estimates and the range each one is varied over for the ranges "
        "shown in this report. An <em>assumption</em> has no published value; its range is "
        "what the report tests. The project ships the same table as a CSV file for "
        "spreadsheets.</p>"
        '<table class="params"><thead><tr><th>Parameter</th><th>Id</th><th>Value</th>'
        "<th>Range</th><th>Status</th><th>Source</th></tr></thead><tbody>"
        + "\n".join(rows)
        + "</tbody></table>"
    )
    return _PAGE.format(title="Appendix: model parameters", css=_PAGE_CSS, body=body)


def _references_page() -> str:
    tables = _reference_tables()
    texts = [
        str(row.get(col, ""))
        for rows in tables.values()
        for row in rows
        for col in ("source", "note", "description")
    ]
    joined = " ".join(texts)
    rfcs = list(_CORE_RFCS)
    for number in sorted(set(re.findall(r"\bRFC\s?(\d{4})", joined))):
        if number not in rfcs:
            rfcs.append(number)
    standards = [
        f'<li><a href="https://www.rfc-editor.org/rfc/rfc{n}">RFC {n}</a>: '
        f"{html.escape(_RFC_TITLES.get(n, 'IETF RFC'))}</li>"
        for n in sorted(rfcs)
    ]
    standards += [
        f'<li><a href="{html.escape(url)}">{html.escape(title)}</a> ({html.escape(who)})</li>'
        for title, who, url in _OTHER_STANDARDS
    ]
    drafts = sorted(
        set(re.findall(r"\bdraft-[a-z0-9]+(?:-[a-z0-9]+)+", joined))
        - {"draft-ietf-oauth-browser-based-apps", "draft-dpop"}
    )
    standards += [
        f'<li><a href="https://datatracker.ietf.org/doc/{d}/">{d}</a> (IETF draft, expired or '
        "superseded)</li>"
        for d in drafts
    ]
    incidents = []
    for row in tables.get("breaches", []):
        period = " to ".join(x for x in (row.get("start", ""), row.get("detected", "")) if x)
        incidents.append(
            f"<li><strong>{html.escape(row.get('incident', ''))}</strong> "
            f"({html.escape(period)}): {_linked(public_source(row.get('source', '')))}</li>"
        )
    seen: set[str] = set()
    vendor = []
    subjects = {
        "token_lifetimes": ("product", "setting"),
        "dpop_implementations": ("implementation", "where"),
        "token_binding_timeline": ("actor", "date"),
        "adoption_timeline": ("component", "date"),
    }
    for table_name, (a, b) in subjects.items():
        for row in tables.get(table_name, []):
            source = public_source(row.get("source", ""))
            if not source or source in seen or _NOT_A_REFERENCE.match(source):
                continue
            seen.add(source)
            subject = " · ".join(
                str(row.get(k, "")).replace("_", " ") for k in (a, b) if row.get(k)
            )
            vendor.append(f"<li><strong>{html.escape(subject)}</strong>: {_linked(source)}</li>")
    body = (
        "<h1>References</h1>"
        "<p>Standards, vendor documentation and incident write-ups behind the numbers of this "
        "report. Each row of the project's reference tables names its source; links are "
        "given where the source has a stable address.</p>"
        "<h2>Standards and specifications</h2><ul>" + "\n".join(standards) + "</ul>"
        "<h2>Incidents</h2><ul>" + ("\n".join(incidents) or "<li>none</li>") + "</ul>"
        "<h2>Vendor documentation, release notes and source code</h2><ul>"
        + ("\n".join(vendor) or "<li>none</li>")
        + "</ul>"
    )
    return _PAGE.format(title="References", css=_PAGE_CSS, body=body)


def _write_extra_pages(tmp: Path) -> list[str]:
    """The parameter appendix and the references page (presentation variant only)."""
    (tmp / "presentation").mkdir(exist_ok=True)
    atomic_write_text(tmp / APPENDIX_PAGE, _appendix_page())
    atomic_write_text(tmp / REFERENCES_PAGE, _references_page())
    return [APPENDIX_PAGE, REFERENCES_PAGE]


# The lab template loads require.js, MathJax and mermaid from a CDN; a report must work offline,
# and the notebooks use none of them once widget views are replaced (see _strip_widgets).
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

_PAGE_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 0 auto 2em;
       padding: 0 1em; color: #222; }
main { padding: 0 1em; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .45em .5em; text-align: left;
         vertical-align: top; overflow-wrap: break-word; }
th { border-bottom: 2px solid #999; }
td.num { white-space: nowrap; }
.s { color: #555; font-size: .9em; }
code { font-size: .9em; }
li { margin: .3em 0; overflow-wrap: break-word; }
table.params td:nth-child(2), table.params td:nth-child(5) { white-space: nowrap; }
table.params td:first-child { min-width: 16em; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style></head>
<body>
<main>
{body}
</main>
</body></html>
"""

_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 0 auto 2em;
       padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.45em; margin: .3em 0 .1em; }}
body > header.report-top, body > footer.report-bottom {{ padding: 0; max-width: none; }}
h2 {{ margin-top: 1.6em; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .45em .5em; text-align: left;
         vertical-align: top; overflow-wrap: break-word; }}
td.num {{ white-space: nowrap; }}
.s {{ color: #555; font-size: .9em; }}
.meta, .facts {{ color: #555; font-size: .9em; }}
#executive-summary h2 {{ margin: .3em 0 .1em; font-size: 1.15em; }}
.lead {{ margin: .2em 0 .6em; }}
ol.takeaways {{ padding-left: 1.4em; margin: 0; }}
ol.takeaways li {{ margin: 0 0 .45em; }}
ol.takeaways li p {{ margin: 0; }}
ol.takeaways li.does-not-hold > p:first-child {{ color: #7a4b00; }}
.missing {{ background: #fdecea; border: 1px solid #f5c2c0; padding: .6em .8em; }}
.gallery {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
           gap: 1.2em; }}
figure {{ margin: 0; }} figure img {{ width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: .9em; color: #333; }}
{css}
</style></head>
<body>
<header class="report-top">{top}</header>
<main>
<h1>{title}: what this inventory shows</h1>
<!-- report:summary -->
{summary}
<!-- /report:summary -->
<!-- report:downloads -->
<h2 id="pages">Pages</h2>
<table class="pages"><thead><tr><th>Page</th><th colspan="2">For analysts</th><th>Run time</th>
</tr></thead>
<tbody>
{rows}
</tbody></table>
<h2 id="figures">Figures</h2>
<div class="gallery">
{gallery}
</div>
<h2 id="data">Data</h2>
<ul>
{downloads}
</ul>
<p class="facts">{facts}</p>
</main>
<footer class="report-bottom">{bottom}</footer>
</body></html>
"""


def _parse_args(argv: Sequence[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m tokenlib.analysis.report",
        description="Execute the analysis notebooks over an inventory and render an HTML report.",
    )
    parser.add_argument(
        "--inventory", default="default", help='flows CSV path (absolute or relative) or "default"'
    )
    parser.add_argument("--out", default="reports", help="report folder (replaced atomically)")
    parser.add_argument("--seed", type=int, default=None, help="override every notebook's SEED")
    parser.add_argument(
        "--quick", action="store_true", help=f"small simulations (N_SIM={QUICK_N_SIM})"
    )
    parser.add_argument("--notebooks", default=None, metavar="GLOB", help="notebooks to run")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--no-bundle", action="store_true", help="skip the single-file report.html and the PDF"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help=f"recompute everything (the result cache lives in {CACHE_DIRNAME}/ next to --out)",
    )
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM / SIGHUP stop the build like Ctrl-C: children killed, temporary folder removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for s in previous:
        signal.signal(s, _raise_interrupt)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(
    argv: Sequence[str] | None = None,
    *,
    echo: Callable[[str], None] | None = None,
    prog: str | None = None,
) -> int:
    """Command-line entry point; returns 0 on success, 2 for bad input, 1 if a notebook fails.

    ``prog`` is the program name in usage and ``--help`` (``tokenlib report`` from the CLI)."""
    args = _parse_args(argv, prog)
    say = echo or (lambda msg: print(msg, file=sys.stderr))
    shown = args.inventory if args.inventory == "default" else Path(args.inventory).name
    try:
        with _interruptible():
            report = build_report(
                inventory=args.inventory,
                out=args.out,
                seed=args.seed,
                quick=args.quick,
                notebooks=find_notebooks(args.notebooks),
                jobs=args.jobs,
                progress=not args.no_progress,
                bundle=not args.no_bundle,
                cache=not args.no_cache,
            )
    except InventoryValidationError as exc:
        say(f"error: invalid inventory {shown!r}: {exc}")
        return 2
    except NoNotebooksError as exc:
        say(f"error: {exc} (--notebooks {args.notebooks!r})")
        return 2
    except NotebookExecutionError as exc:
        say(f"error: notebook failed, previous report left untouched: {exc}")
        return 1
    extras = "".join(f", {x}" for x in report.extras if x.endswith((".pdf", "report.html")))
    say(
        f"report: {report.out_dir / 'index.html'} ({len(report.pages)} notebooks, "
        f"{len(report.figures)} figures, {len(report.exports)} CSV{extras}) in "
        f"{report.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
