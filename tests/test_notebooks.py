"""Rules for notebooks/NN_*.ipynb: naming, stripped outputs, parameters, thin code, versions.

Static checks read the files on disk. Execution checks reuse the executed copies from the one
report build of the session (``_report_run.built_report``), so the notebooks run only once.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from _report_run import SEED, built_report

from tokenlib.analysis import report

NOTEBOOK_DIR = report.DEFAULT_NOTEBOOKS
ALL = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
NUMBERED = [p for p in ALL if report.NOTEBOOK_NAME_RE.match(p.name)]
REQUIRED_PARAMETERS = {"INVENTORY", "SEED", "N_SIM", "NOW", "FIGURES_DIR"}
MAX_DEF_LINES = 5


def _read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)


def _python(source: str) -> str:
    """Cell source without IPython magics and shell escapes, so ``ast`` can parse it."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )


def _code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_notebooks_exist_and_are_named_nn_snake_case() -> None:
    assert {p.name[:2] for p in NUMBERED} >= {"00", "01", "02", "03", "04", "05"}
    bad = [p.name for p in ALL if not report.NOTEBOOK_NAME_RE.match(p.name)]
    assert not bad, f"notebook names must match {report.NOTEBOOK_NAME_RE.pattern}: {bad}"
    assert len({p.name[:2] for p in NUMBERED}) == len(NUMBERED), "numbers are unique"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_stored_without_outputs(path: Path) -> None:
    nb = _read(path)
    for i, cell in enumerate(_code_cells(nb)):
        assert cell.get("outputs") == [], f"{path.name} code cell {i} has stored outputs"
        assert cell.get("execution_count") is None, f"{path.name} cell {i} has execution_count"
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_exactly_one_parameters_cell_with_the_standard_names(path: Path) -> None:
    nb = _read(path)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    assert tagged[0].cell_type == "code"
    names = {
        t.id
        for node in ast.parse(_python(tagged[0].source)).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }
    missing = REQUIRED_PARAMETERS - names
    assert not missing, f"{path.name}: parameters cell lacks {sorted(missing)}"
    seen_by_papermill = set(papermill.inspect_notebook(str(path)))
    assert names <= seen_by_papermill, (
        f"{path.name}: papermill cannot parse {sorted(names - seen_by_papermill)} "
        "(avoid '=' inside the comments of the parameters cell)"
    )


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_code_is_thin_no_long_functions(path: Path) -> None:
    """Logic belongs in tokenlib.analysis (tested); a notebook may define only tiny helpers."""
    for i, cell in enumerate(_code_cells(_read(path))):
        tree = ast.parse(_python(cell.source), filename=f"{path.name}[{i}]")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                assert length <= MAX_DEF_LINES, (
                    f"{path.name} cell {i}: {node.name} is {length} lines; move it to the package"
                )


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_sections_end_in_asserts_and_last_cell_records_versions(path: Path) -> None:
    nb = _read(path)
    code = _code_cells(nb)
    asserts = sum(
        isinstance(n, ast.Assert) for c in code for n in ast.walk(ast.parse(_python(c.source)))
    )
    assert asserts >= 2, f"{path.name}: findings must be checked with asserts"
    headings = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("#")]
    assert len(headings) >= 2, f"{path.name}: narrate sections with markdown headings"
    last = nb.cells[-1]
    assert last.cell_type == "code"
    for name in ("tokenlib", "numpy", "pandas", "matplotlib", "python"):
        assert re.search(name, last.source, re.IGNORECASE), f"{path.name}: last cell records {name}"


# ---------------------------------------------------------------------------------------------
# Executed by the report build (slow, shared with tests/test_report.py).


@pytest.fixture(scope="module")
def executed() -> dict[str, Any]:
    built = built_report()
    return {p.name: _read(built.out_dir / p.notebook) for p in built.pages}


@pytest.mark.slow
@pytest.mark.parametrize("path", NUMBERED, ids=_ids(NUMBERED))
def test_executes_top_to_bottom_with_small_parameters(path: Path, executed: dict[str, Any]) -> None:
    nb = executed[path.stem]
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1, "papermill injected the report's parameters"
    if "SEED" in injected[0].source:
        assert f"SEED = {SEED}" in injected[0].source
    counts = [c.execution_count for c in _code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), "every cell ran once, in order"
    for cell in _code_cells(nb):
        for output in cell.outputs:
            assert output.output_type != "error" or "raises-exception" in cell.metadata.get(
                "tags", []
            ), f"{path.name}: unexpected error output"
