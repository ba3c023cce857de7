"""README's code blocks run, so the documented example cannot drift from the library."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
# Only ```python blocks run; ```py / ```console blocks are illustrations (servers, shells).
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_quickstart_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make test" in text
    assert "make report" in text


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_python_block_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = _blocks()[index]
    exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})  # noqa: S102


def test_readme_example_shows_replay_and_downgrade_rejected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exec(compile(_blocks()[0], "README.md", "exec"), {"__name__": "__readme__"})  # noqa: S102
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith('401 DPoP error="invalid_dpop_proof"')
    assert out[1].startswith('401 Bearer error="invalid_token"')


_ILLUSTRATION = re.compile(r"^```py\n(.*?)^```", re.S | re.M)


def test_readme_illustrations_compile_and_import_real_names() -> None:
    """```py blocks start servers, so they are not run; they must still compile and every
    name they import must exist, so a rename in the library breaks this test."""
    import ast
    import importlib

    blocks = _ILLUSTRATION.findall(README.read_text(encoding="utf-8"))
    assert blocks
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
