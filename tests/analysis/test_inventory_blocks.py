"""Large flows files validated block by block: the same problems, rows, report and typed frames
as the whole-file path, including checks that span blocks (duplicates, foreign keys, the
authorization servers' defaults, derived services, categories first seen in a later block)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tokenlib.analysis import _validate as V
from tokenlib.analysis import inventory as I
from tokenlib.analysis.inventory import (
    InventoryError,
    Problem,
    generate_inventory,
    load_inventory,
    write_inventory,
)

#: Tiny blocks so a few thousand rows make dozens of blocks.
SMALL_BLOCK = 4096
HEADER = "flow_id,client_id,client_kind,resource_server,binding\n"


def _blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(I, "STREAM_THRESHOLD", 0)
    monkeypatch.setattr(I, "BLOCK_BYTES", SMALL_BLOCK)


def _spy_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of rows of every block the block path validates."""
    sizes: list[int] = []
    original = V.parse_table

    def spy(raw: pd.DataFrame, spec: object, **kw: object) -> V.TableResult:
        if getattr(spec, "name", "") == "flows":
            sizes.append(len(raw))
        return original(raw, spec, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(V, "parse_table", spy)
    return sizes


def _outcome(path: Path, **kw: object) -> tuple[object, ...]:
    """Everything a caller can observe of a load: frames, report, or the error's problems."""
    try:
        inv = load_inventory(path, **kw)  # type: ignore[arg-type]
    except InventoryError as exc:
        report = exc.report.to_dict() if exc.report else None
        return ("error", str(exc), exc.problems, report)
    assert inv.report is not None
    return (
        "ok",
        inv.flows,
        inv.services,
        inv.authorization_servers,
        inv.report.problems,
        inv.report.to_dict(),
    )


def _assert_same_outcome(a: tuple[object, ...], b: tuple[object, ...]) -> None:
    assert a[0] == b[0]
    for left, right in zip(a[1:], b[1:], strict=True):
        if isinstance(left, pd.DataFrame):
            assert isinstance(right, pd.DataFrame)
            pd.testing.assert_frame_equal(left, right, check_dtype=True)
        else:
            assert left == right


def _compare(monkeypatch: pytest.MonkeyPatch, path: Path, **kw: object) -> tuple[object, ...]:
    """Load whole, then block by block; assert identical outcomes; return the block one."""
    whole = _outcome(path, **kw)
    with monkeypatch.context() as m:
        _blocked(m)
        sizes = _spy_blocks(m)
        blocked = _outcome(path, **kw)
    assert len(sizes) > 3, "the test file must span several blocks"
    _assert_same_outcome(whole, blocked)
    return blocked


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


@pytest.fixture
def inventory_dir(tmp_path: Path) -> Path:
    inv = generate_inventory("saas", 2000, seed=3)
    write_inventory(inv, tmp_path)
    return tmp_path


def _edit(path: Path, row: int, column: str, value: str) -> None:
    """Set ``column`` of file row ``row`` (header = 1) of a CSV without quoting."""
    lines = _lines(path)
    names = lines[0].rstrip("\n").split(",")
    cells = lines[row - 1].rstrip("\n").split(",")
    cells[names.index(column)] = value
    lines[row - 1] = ",".join(cells) + "\n"
    path.write_text("".join(lines))


# --- the block-boundary cases ----------------------------------------------------------------


def test_duplicate_id_across_blocks_names_the_first_row(
    monkeypatch: pytest.MonkeyPatch, inventory_dir: Path
) -> None:
    flows = inventory_dir / "flows.csv"
    first_id = _lines(flows)[1].split(",")[0]
    _edit(flows, 1800, "flow_id", first_id)
    _edit(flows, 1900, "flow_id", first_id)
    out = _compare(monkeypatch, flows)
    assert out[0] == "error"
    dups = [p for p in out[2] if p.code == "duplicate"]  # type: ignore[attr-defined]
    assert [(p.row, p.column, p.value) for p in dups] == [
        (1800, "flow_id", first_id),
        (1900, "flow_id", first_id),
    ]
    assert all("first seen at row 2" in p.expected for p in dups)


def test_bad_value_in_a_later_block_has_its_file_row(
    monkeypatch: pytest.MonkeyPatch, inventory_dir: Path
) -> None:
    flows = inventory_dir / "flows.csv"
    _edit(flows, 1500, "binding", "smoke_signals")
    _edit(flows, 1999, "requests_per_day", "lots")
    out = _compare(monkeypatch, flows)
    errors = [(p.code, p.row, p.column) for p in out[2] if p.severity == "error"]  # type: ignore[attr-defined]
    assert errors == [("enum", 1500, "binding"), ("type", 1999, "requests_per_day")]


def test_category_first_seen_in_a_later_block(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "flows.csv"
    rows = [f"f{i},c{i},service,api,bearer\n" for i in range(600)]
    rows[550] = "f550,c550,service,api,dpop\n"
    rows[590] = "f590,c590,service,api,mtls\n"
    path.write_text(HEADER + "".join(rows))
    out = _compare(monkeypatch, path)
    assert out[0] == "ok"
    flows = out[1]
    assert isinstance(flows, pd.DataFrame)
    assert list(flows["binding"].cat.categories) == ["bearer", "mtls", "dpop"]
    assert flows["binding"].iloc[550] == "dpop"
    assert flows["binding"].iloc[590] == "mtls"
    services = out[2]
    assert isinstance(services, pd.DataFrame)  # derived: mtls/dpop support seen in late blocks
    assert services.loc[0, "supports_mtls"]
    assert services.loc[0, "supports_dpop"]


def test_foreign_keys_and_rules_in_every_block(
    monkeypatch: pytest.MonkeyPatch, inventory_dir: Path
) -> None:
    flows = inventory_dir / "flows.csv"
    _edit(flows, 300, "resource_server", "no-such-api")
    _edit(flows, 1700, "authorization_server", "as-nowhere")
    _edit(flows, 1200, "client_type", "public")
    _edit(flows, 1200, "grant_type", "client_credentials")
    out = _compare(monkeypatch, flows, on_error="drop")
    assert out[0] == "ok"
    report = out[5]
    assert isinstance(report, dict)
    assert 300 in report["dropped_flow_rows"]
    assert 1700 in report["dropped_flow_rows"]
    codes = {(p.code, p.row) for p in out[4]}  # type: ignore[attr-defined]
    assert ("unknown_service", 300) in codes
    assert ("unknown_authorization_server", 1700) in codes


def test_authorization_server_defaults_use_flows_of_every_block(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "flows.csv"
    rows = [f"f{i},c{i},service,api,bearer\n" for i in range(600)]
    rows[580] = "f580,c580,service,api,dpop\n"
    path.write_text(HEADER + "".join(rows))
    (tmp_path / "authorization_servers.csv").write_text(
        "as_id,issues_dpop,issues_mtls\nas-default,,false\n"
    )
    out = _compare(monkeypatch, path)
    assert out[0] == "ok"
    servers = out[3]
    assert isinstance(servers, pd.DataFrame)
    assert bool(servers.loc[0, "issues_dpop"])  # from the flow in the last block
    (tmp_path / "authorization_servers.csv").write_text(
        "as_id,issues_dpop,issues_mtls\nas-default,false,false\n"
    )
    out = _compare(monkeypatch, path)
    assert [(p.code, p.row) for p in out[2] if p.severity == "error"] == [  # type: ignore[attr-defined]
        ("unissued_binding", 582)
    ]


def test_fatal_header_still_reports_rows_of_every_block(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "flows.csv"
    rows = [f"f{i},c{i},service,bearer\n" for i in range(600)]
    rows[10] = "f10,c10,toaster,bearer\n"
    rows[500] = "f0,c500,service,bearer\n"
    path.write_text("flow_id,client_id,client_kind,binding\n" + "".join(rows))
    out = _compare(monkeypatch, path)
    codes = [(p.code, p.row) for p in out[2] if p.severity == "error"]  # type: ignore[attr-defined]
    assert codes == [("missing_column", None), ("enum", 12), ("duplicate", 502)]


def test_comment_lines_keep_file_line_numbers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "flows.csv"
    body = []
    for i in range(600):
        if i % 50 == 0:
            body.append(f"# section {i}\n\n")
        body.append(f"f{i},c{i},service,api,{'oops' if i == 570 else 'bearer'}\n")
    path.write_text("# inventory\n" + HEADER + "".join(body))
    out = _compare(monkeypatch, path)
    line = 1 + next(n for n, text in enumerate(_lines(path)) if text.startswith("f570,"))
    assert [(p.code, p.row) for p in out[2] if p.severity == "error"] == [("enum", line)]  # type: ignore[attr-defined]


def test_multiline_cells_with_comments_count_records(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "flows.csv"
    body = [f'f{i},c{i},service,api,bearer,"note\nsecond line"\n' for i in range(400)]
    body[390] = 'f390,c390,service,api,oops,"x\ny"\n'
    path.write_text("# inventory\n" + HEADER.rstrip() + ",note\n" + "".join(body))
    out = _compare(monkeypatch, path)
    assert [(p.code, p.row) for p in out[2] if p.severity == "error"] == [("enum", 392)]  # type: ignore[attr-defined]


def test_identical_on_a_generated_inventory_with_many_problems(
    monkeypatch: pytest.MonkeyPatch, inventory_dir: Path
) -> None:
    flows = inventory_dir / "flows.csv"
    rng = np.random.default_rng(5)
    first_ids = [line.split(",")[0] for line in _lines(flows)[1:40]]
    for row in rng.choice(np.arange(2, 2002), size=60, replace=False).tolist():
        column, value = [
            ("binding", "smoke"),
            ("access_token_lifetime_s", "-5"),
            ("flow_id", str(rng.choice(first_ids))),
            ("flow_id", ""),
            ("resource_server", "a>b"),
            ("path", "cdn:teleport"),
            ("requests_per_day", ""),
            ("client_kind", ""),
            ("binding_enforced", "maybe"),
        ][row % 9]
        _edit(flows, row, column, value)
    for on_error in ("raise", "drop"):
        _compare(monkeypatch, flows, on_error=on_error)


def test_space_after_delimiter_parses_as_the_whole_file_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``a, "b"`` is the value ``b`` (pandas skipinitialspace): such files are parsed by
    pandas block by block instead of pyarrow, which would keep the quotes."""
    path = tmp_path / "flows.csv"
    body = [f'f{i}, c{i}, service, "api",bearer, "x, y"\n' for i in range(500)]
    body[450] = 'f450, c450, service, "api",oops, z\n'
    path.write_text(HEADER.rstrip() + ",note\n" + "".join(body))
    out = _compare(monkeypatch, path, on_error="drop")
    flows = out[1]
    assert isinstance(flows, pd.DataFrame)
    assert flows["resource_server"].iloc[0] == "api"
    assert flows["note"].iloc[0] == "x, y"
    assert [(p.code, p.row) for p in out[4] if p.severity == "error"] == [("enum", 452)]  # type: ignore[attr-defined]


def test_space_after_delimiter_malformed_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "flows.csv"
    body = [f"f{i}, c{i}, service, api, bearer\n" for i in range(800)]
    body[700] = "f700, c700, service, api, bearer, extra\n"
    path.write_text("# c\n" + HEADER + "".join(body))
    out = _compare(monkeypatch, path)
    assert [(p.code, p.row) for p in out[2]] == [("csv_syntax", 703)]  # type: ignore[attr-defined]


# --- the unique index ------------------------------------------------------------------------


def test_unique_index_survives_hash_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value hashes alike: only equal values are duplicates, with the right rows."""
    monkeypatch.setattr(
        V.UniqueIndex, "_hash", staticmethod(lambda v: np.zeros(len(v), dtype=np.uint64))
    )
    blocks = [["a", "b", "c"], ["d", "b", "e"], ["c", "f", "a"]]
    stored: list[list[str]] = []

    def value_at(pos: int) -> tuple[str, int]:
        flat = [v for block in stored for v in block]
        return flat[pos], pos + 2

    index = V.UniqueIndex(value_at)
    found = []
    for block in blocks:
        values = np.array(block, dtype=object)
        prior = index.lookup(values)
        found.append(prior.tolist())
        index.add(values[prior < 0], np.flatnonzero(prior < 0))
        index.end_block(len(block))
        stored.append(block)
    assert found == [[-1, -1, -1], [-1, 3, -1], [4, -1, 2]]


def test_defaults_order_matches_fill_order() -> None:
    """Blocks sum their defaults and list them in FLOW_DEFAULT_ORDER: it must be the order in
    which fill_flow_defaults fills (all optional columns missing: every one is filled)."""
    frame = pd.DataFrame({"client_id": ["a"], "client_kind": ["service"], "resource_server": ["x"]})
    frame["binding"] = "bearer"
    inv = load_inventory(frame)
    assert inv.report is not None
    filled = [column for table, column, _ in inv.report.defaults if table == "flows"]
    assert filled == list(V.FLOW_DEFAULT_ORDER)


def test_problem_records_are_the_public_type(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(HEADER + "".join(f"f{i},c{i},service,api,bearer\n" for i in range(300)))
    _blocked(monkeypatch)
    _edit(path, 250, "binding", "x")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    problem = info.value.problems[-1]
    assert isinstance(problem, Problem)
    assert dataclasses.astuple(problem)[:7] == (
        "flows",
        str(path),
        250,
        "binding",
        "x",
        "one of bearer, mtls, dpop",
        "enum",
    )
