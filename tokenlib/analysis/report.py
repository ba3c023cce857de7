"""Build the HTML report: execute every notebook over an inventory and render it (``make report``).

``python -m tokenlib.analysis.report --inventory PATH|default --out reports`` validates the
inventory with :func:`tokenlib.analysis.inventory.load_inventory` first (a bad path or file
fails with the loader's error and exit code 2 before any notebook runs), executes each
``notebooks/NN_*.ipynb`` with papermill (parameters injected into the cell tagged
``parameters``), renders one HTML page per notebook with code and a presentation variant
without code, and writes ``index.html`` linking them, the figures (PNG and SVG, saved by the
notebooks through :func:`tokenlib.analysis.plots.save_figure`) and the exported CSV files.
Everything is built in a temporary folder next to ``--out`` and swapped in at the end, so a
failed run leaves a previous report intact.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import html
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
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
    "Report",
    "build_report",
    "find_notebooks",
    "main",
]

NOTEBOOK_NAME_RE = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NOTEBOOKS = PROJECT_ROOT / "notebooks"
QUICK_N_SIM = 2_000
#: joint uncertainty draws in a quick report (the full report uses each notebook's DRAWS)
QUICK_DRAWS = 20
HEADLINE_CSV = "headline_numbers.csv"
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_WIDGET_NOTE = "[interactive control: open this notebook in JupyterLab to use it]"


class InventoryValidationError(Exception):
    """The inventory failed the loader's validation; carries the loader's message."""


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


@dataclass(frozen=True, slots=True)
class Report:
    """A finished report: where it is and what it contains."""

    out_dir: Path
    pages: tuple[NotebookPage, ...]
    figures: tuple[str, ...]
    exports: tuple[str, ...]
    seconds: float


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


def validate_inventory(source: str) -> str:
    """Load ``source`` with the inventory loader; return the value to pass to the notebooks.

    Raises :class:`InventoryValidationError` with the loader's own message on any failure.
    """
    try:
        from tokenlib.analysis.inventory import load_inventory

        load_inventory(source)
    except Exception as exc:  # the loader's own error, surfaced verbatim to the user
        raise InventoryValidationError(f"{type(exc).__name__}: {exc}") from exc
    if source != "default" and Path(source).exists():
        return str(Path(source).resolve())
    return source


def build_report(
    *,
    inventory: str = "default",
    out: str | os.PathLike[str] = "reports",
    seed: int | None = None,
    quick: bool = False,
    notebooks: Sequence[Path] | None = None,
    jobs: int = 2,
    progress: bool = True,
) -> Report:
    """Validate, execute, render and swap in a report at ``out``; see the module docstring."""
    started = time.perf_counter()
    inventory_param = validate_inventory(inventory)
    paths = list(notebooks) if notebooks is not None else find_notebooks()
    if not paths:
        raise NoNotebooksError(f"no notebooks matched; expected {DEFAULT_NOTEBOOKS}/NN_*.ipynb")
    out_dir = Path(out).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        params = _parameters(tmp, inventory_param, seed=seed, quick=quick)
        pages = _execute_all(paths, tmp, params, jobs=jobs, progress=progress)
        figures = tuple(sorted(p.stem for p in (tmp / "figures").glob("*.png")))
        exports = tuple(sorted(p.name for p in (tmp / "exports").glob("*.csv")))
        meta = {"inventory": inventory, "seed": seed, "quick": quick, **_versions()}
        _write_index(tmp, pages, figures, exports, meta)
        os.chmod(tmp, 0o755)  # noqa: S103 - mkdtemp is 0700; a report is meant to be read
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Report(out_dir, tuple(pages), figures, exports, time.perf_counter() - started)


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
    paths: Sequence[Path], tmp: Path, params: Mapping[str, Any], *, jobs: int, progress: bool
) -> list[NotebookPage]:
    from tqdm import tqdm

    for sub in ("notebooks", "pages", "presentation"):
        (tmp / sub).mkdir()
    results: dict[str, NotebookPage] = {}
    bar = tqdm(total=len(paths), desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    with bar, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_run_one, path, tmp, params): path for path in paths}
        try:
            for future in as_completed(futures):
                page = future.result()
                results[page.name] = page
                bar.set_postfix_str(page.name)
                bar.update()
        except BaseException:
            for pending in futures:
                pending.cancel()
            raise
    return [results[p.stem] for p in paths]


def _run_one(path: Path, tmp: Path, params: Mapping[str, Any]) -> NotebookPage:
    started = time.perf_counter()
    executed = tmp / "notebooks" / path.name
    _execute_notebook(path, executed, params)
    seconds = time.perf_counter() - started
    nbformat: Any = importlib.import_module("nbformat")
    nb = nbformat.read(executed, as_version=4)
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


def _execute_notebook(src: Path, dst: Path, params: Mapping[str, Any]) -> None:
    """Run ``src`` with papermill in a child process, injecting only declared parameters.

    A child process keeps kernel start-up noise and event-loop state out of the caller; its
    output is shown only when the notebook fails.
    """
    import papermill as pm

    declared = set(pm.inspect_notebook(str(src)))
    fd, params_file = tempfile.mkstemp(prefix=f".{src.stem}.", suffix=".json", dir=dst.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({k: v for k, v in params.items() if k in declared}, fh)
    command = [
        sys.executable, "-m", "papermill", str(src), str(dst), "-f", params_file,
        "-k", "python3", "--cwd", str(src.parent), "--no-progress-bar", "--start-timeout", "120",
    ]  # fmt: skip
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    finally:
        os.unlink(params_file)
    if proc.returncode != 0:
        raise NotebookExecutionError(f"{src.name}: {_failure(dst, proc.stderr)}")


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


def _title_and_summary(nb: Any, fallback: str) -> tuple[str, str]:
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = [line.strip() for line in cell.source.splitlines() if line.strip()]
        if not lines:
            continue
        title = lines[0].lstrip("#").strip() if lines[0].startswith("#") else fallback
        rest = [line for line in lines[1:] if not line.startswith("#")]
        return title, re.sub(r"\*\*|\*|`", "", rest[0]) if rest else ""
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


def _write_index(
    tmp: Path,
    pages: Sequence[NotebookPage],
    figures: Sequence[str],
    exports: Sequence[str],
    meta: Mapping[str, Any],
) -> None:
    e = html.escape
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(
        f'<tr><td><a href="{e(p.page)}">{e(p.title)}</a><div class="s">{e(p.summary)}</div></td>'
        f'<td><a href="{e(p.presentation)}">presentation</a></td>'
        f'<td><a href="{e(p.page)}">with code</a></td>'
        f'<td><a href="{e(p.notebook)}">.ipynb</a></td><td>{p.seconds:.1f} s</td></tr>'
        for p in pages
    )
    gallery = "\n".join(
        f'<figure><a href="figures/{e(f)}.svg"><img src="figures/{e(f)}.png" alt="{e(f)}"></a>'
        f'<figcaption>{e(f)} · <a href="figures/{e(f)}.png">PNG</a> · '
        f'<a href="figures/{e(f)}.svg">SVG</a></figcaption></figure>'
        for f in figures
    )
    downloads = "\n".join(f'<li><a href="exports/{e(x)}">{e(x)}</a></li>' for x in exports)
    facts = " · ".join(f"{e(str(k))}: {e(str(v))}" for k, v in meta.items() if v is not None)
    headline = _headline_table(tmp / "exports" / HEADLINE_CSV)
    page = _INDEX.format(
        generated=e(generated),
        facts=facts,
        rows=rows,
        gallery=gallery or "<p>No figures.</p>",
        downloads=downloads or "<li>none</li>",
        headline=headline,
    )
    atomic_write_text(tmp / "index.html", page)
    manifest = {
        "generated": generated,
        **meta,
        "pages": [p.page for p in pages],
        "presentation": [p.presentation for p in pages],
        "figures": list(figures),
        "exports": list(exports),
    }
    atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")


def _headline_table(path: Path) -> str:
    """The overview notebook's ``headline_numbers.csv`` (``tokenlib.analysis.headline``) as an
    HTML table: each finding, its value with the joint-uncertainty range, and its basis."""
    if not path.exists():
        return ""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cells = "\n".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(r.get("finding", "").lstrip("'")),
            html.escape(_value_range(r)),
            html.escape(r.get("basis", "")),
        )
        for r in rows
    )
    return (
        '<h2>Headline numbers</h2>\n<table class="headline">\n'
        "<tr><th>Finding</th><th>Value (range over the assumptions)</th><th>Basis</th></tr>\n"
        f"{cells}\n</table>"
    )


def _value_range(row: Mapping[str, str]) -> str:
    unit = row.get("unit", "")
    value, low, high = (_number(row.get(k, ""), unit) for k in ("value", "low", "high"))
    return value if low == high == value else f"{value} ({low} to {high})"


def _number(text: str, unit: str = "") -> str:
    try:
        value = float(text)
    except ValueError:
        return text
    if unit == "share":
        return f"{value:.1%}"
    return f"{value:,.0f}" if value.is_integer() or abs(value) >= 100 else f"{value:.3g}"


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp`` with two renames; restore the old report if one fails."""
    old: Path | None = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.rename(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# The lab template loads require.js, MathJax and mermaid from a CDN; a report must work offline,
# and the notebooks use none of them once widget views are replaced (see _strip_widgets).
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tokenlib report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .5em; text-align: left; vertical-align: top; }}
.s {{ color: #555; font-size: .9em; }}
.meta {{ color: #555; }}
table.headline {{ width: auto; }} table.headline td:last-child {{ text-align: right; }}
.gallery {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
           gap: 1em; }}
figure {{ margin: 0; }} figure img {{ width: 100%; border: 1px solid #eee; }}
</style></head>
<body>
<h1>tokenlib report: replay windows, blast radius and deployability</h1>
<p class="meta">Generated {generated} · {facts}</p>
{headline}
<h2>Notebooks</h2>
<table><thead><tr><th>Notebook</th><th colspan="3">Pages</th><th>Run time</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<h2>Figures</h2>
<div class="gallery">
{gallery}
</div>
<h2>Data</h2>
<ul>
{downloads}
</ul>
</body></html>
"""


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tokenlib.analysis.report",
        description="Execute the analysis notebooks over an inventory and render an HTML report.",
    )
    parser.add_argument("--inventory", default="default", help='flows CSV path or "default"')
    parser.add_argument("--out", default="reports", help="report folder (replaced atomically)")
    parser.add_argument("--seed", type=int, default=None, help="override every notebook's SEED")
    parser.add_argument(
        "--quick", action="store_true", help=f"small simulations (N_SIM={QUICK_N_SIM})"
    )
    parser.add_argument("--notebooks", default=None, metavar="GLOB", help="notebooks to run")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, echo: Callable[[str], None] | None = None) -> int:
    """Command-line entry point; returns 0 on success, 2 for bad input, 1 if a notebook fails."""
    args = _parse_args(argv)
    say = echo or (lambda msg: print(msg, file=sys.stderr))
    try:
        report = build_report(
            inventory=args.inventory,
            out=args.out,
            seed=args.seed,
            quick=args.quick,
            notebooks=find_notebooks(args.notebooks),
            jobs=args.jobs,
            progress=not args.no_progress,
        )
    except InventoryValidationError as exc:
        say(f"error: invalid inventory {args.inventory!r}: {exc}")
        return 2
    except NoNotebooksError as exc:
        say(f"error: {exc} (--notebooks {args.notebooks!r})")
        return 2
    except NotebookExecutionError as exc:
        say(f"error: notebook failed, previous report left untouched: {exc}")
        return 1
    say(
        f"report: {report.out_dir / 'index.html'} ({len(report.pages)} notebooks, "
        f"{len(report.figures)} figures, {len(report.exports)} CSV) in {report.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
