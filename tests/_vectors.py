"""Load known-answer vectors from ``tests/vectors/*.json``.

Each file is ``{"source": ..., "cases": [{"id": ..., "source": ..., ...}, ...]}``:
every case names where its values come from (an RFC section). ``cases(name)`` returns
``pytest.param`` objects with the case ``id`` so a failure names the vector.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parent / "vectors"


@cache
def load(name: str) -> dict[str, Any]:
    """The whole vector file ``tests/vectors/<name>.json``, checked for ids and sources."""
    path = VECTORS / (name if name.endswith(".json") else f"{name}.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise ValueError(f"{path.name}: expected an object with a 'cases' list")
    seen: set[str] = set()
    for case in data["cases"]:
        if not isinstance(case.get("id"), str) or not isinstance(case.get("source"), str):
            raise ValueError(f"{path.name}: every case needs a string 'id' and 'source'")
        if case["id"] in seen:
            raise ValueError(f"{path.name}: duplicate case id {case['id']!r}")
        seen.add(case["id"])
    return data


def case(name: str, case_id: str) -> dict[str, Any]:
    """One case of a vector file by its ``id``."""
    for item in load(name)["cases"]:
        if item["id"] == case_id:
            return dict(item)
    raise KeyError(f"{name}: no case {case_id!r}")


def cases(name: str, **where: Any) -> list[Any]:
    """Every case (optionally those whose fields equal ``where``) as ``pytest.param``."""
    return [
        pytest.param(dict(item), id=item["id"])
        for item in load(name)["cases"]
        if all(item.get(k) == v for k, v in where.items())
    ]


def joined(lines: list[str]) -> str:
    """A header value printed over several lines in an RFC, with the display whitespace
    removed (RFC 9440 App. A: 'line breaks and whitespace have been added ... for display')."""
    return "".join(line.strip() for line in lines)
