"""The build: execute every notebook with papermill, render its pages, collect the results."""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenlib._atomic import atomic_write_text
from tokenlib.analysis.report._base import (
    _OWNER_FILE,
    _WIDGET_MIME,
    _WIDGET_NOTE,
    CACHE_DIRNAME,
    CACHE_ENV,
    DEFAULT_NOTEBOOKS,
    PROJECT_ROOT,
    QUICK_DRAWS,
    QUICK_N_SIM,
    NoNotebooksError,
    NotebookExecutionError,
    NotebookPage,
    Provenance,
    Report,
    find_notebooks,
)
from tokenlib.analysis.report._builds import (
    _CHILD_BOOT,
    _CHILDREN,
    _CHILDREN_LOCK,
    _kill,
    _kill_children,
    clean_stale_builds,
)
from tokenlib.analysis.report._figures import _collect_figures
from tokenlib.analysis.report._inventory import inspect_inventory
from tokenlib.analysis.report._references import _write_extra_pages
from tokenlib.analysis.report._site import _Site, _swap_in, _write_bundle, _write_index
from tokenlib.analysis.report._templates import _OFFLINE_TEMPLATE

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
