"""environment.yml (conda) and pyproject.toml (pip) must list the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from the PyPI distribution name.
CONDA_TO_PYPI = {"redis-py": "redis", "python-duckdb": "duckdb"}
_REQ = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


def _split(req: str) -> tuple[str, str]:
    match = _REQ.match(req.strip())
    assert match, req
    name, spec = match.groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    return dict(_split(r) for r in reqs)


def _environment() -> dict[str, str]:
    out: dict[str, str] = {}
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        if not in_deps:
            continue
        item = re.match(r"^  - ([^\s#].*)$", line)
        if item is None or item.group(1).startswith("pip"):
            continue
        name, spec = _split(item.group(1))
        if name in ("python", "pip"):
            continue
        out[CONDA_TO_PYPI.get(name, name)] = spec
    return out


def test_environment_matches_pyproject() -> None:
    assert _environment() == _pyproject()


def test_python_versions_agree() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert "  - python=3.11" in (ROOT / "environment.yml").read_text().splitlines()


def test_core_depends_only_on_cryptography_and_pyjwt() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(_split(r)[0] for r in project["dependencies"]) == ["cryptography", "pyjwt"]
