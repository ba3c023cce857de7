"""OAuth flow inventories: load and validate a user's own, generate synthetic ones, derive features.

An inventory is three tables (see :mod:`tokenlib.analysis.schema` and ``data/README.md``):
``flows`` (one row per client -> resource server flow along a request path), ``services``
(resource servers and the downstream calls they make with forwarded tokens) and
``authorization_servers`` (the token issuers and which bound tokens they can issue; derived from
the flows by :func:`derive_authorization_servers` when no file is given). The models in
``tokenlib.analysis`` consume :class:`Inventory` objects and the vectorised helpers
:func:`path_features` and :func:`exposure_matrix`.

``python -m tokenlib.analysis.inventory generate|validate|summary|bundle`` is the command line.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gzip
import io
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from tokenlib import _atomic
from tokenlib.analysis import _paths
from tokenlib.analysis import _validate as V
from tokenlib.analysis import schema as S
from tokenlib.analysis._synth import GENERATOR_VERSION, generate_frames
from tokenlib.analysis._validate import Problem
from tokenlib.analysis.profiles import PROFILES, Profile, get_profile
from tokenlib.analysis.provenance import PROVENANCE_FILE, write_provenance

__all__ = [
    "DEFAULT_FLOWS",
    "DEFAULT_PROFILE",
    "DEFAULT_SEED",
    "GENERATOR_VERSION",
    "PROFILES",
    "Inventory",
    "InventoryError",
    "Problem",
    "ValidationReport",
    "data_dir",
    "derive_authorization_servers",
    "exposure_matrix",
    "generate_inventory",
    "load_inventory",
    "path_features",
    "summary",
    "write_inventory",
]

DEFAULT_SEED = 20250101
DEFAULT_PROFILE = "saas"
DEFAULT_FLOWS = 5000
_MAX_LISTED = 25
_COMMENT_OR_BLANK = re.compile(r"^[ \t]*(#|\r?$)", re.MULTILINE)
_FILTERED_LINE = re.compile(rb"\n(?:[#\n \t]|\r\n)")
_SPACED = re.compile(rb",[ \t]")

OnError = Literal["raise", "drop"]
Source: TypeAlias = str | os.PathLike[str] | pd.DataFrame


def data_dir() -> Path:
    """The project's ``data/`` directory (found from the package location, not the CWD)."""
    path = Path(__file__).resolve().parents[2] / "data"
    if not (path / "flows.csv").is_file():
        raise FileNotFoundError(
            f"bundled inventory not found at {path}; install tokenlib from a source checkout "
            "(pip install -e .) or pass the path of your own flows file"
        )
    return path


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What the loader did: problems found, rows dropped, defaults filled, aliases used."""

    source: str
    services_source: str
    flows_in: int
    flows_out: int
    services_in: int
    services_out: int
    problems: tuple[Problem, ...]
    dropped_flow_rows: tuple[int, ...]
    dropped_service_rows: tuple[int, ...]
    defaults: tuple[tuple[str, str, int], ...]
    aliases: tuple[tuple[str, str, str], ...]
    unknown_columns: tuple[tuple[str, str], ...]
    services_derived: bool
    notes: tuple[str, ...]
    authorization_servers_source: str = "<derived from flows>"
    authorization_servers_in: int = 0
    authorization_servers_out: int = 0
    dropped_authorization_server_rows: tuple[int, ...] = ()
    authorization_servers_derived: bool = True

    @property
    def errors(self) -> tuple[Problem, ...]:
        """Problems of severity error (dropped rows, or the reason loading failed)."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """Problems of severity warning (kept rows that look suspicious)."""
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        """True when nothing had to be dropped and no errors were found."""
        return not self.errors

    def to_frame(self) -> pd.DataFrame:
        """All problems as a DataFrame."""
        return V.problems_frame(self.problems)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (used by ``inventory validate --json``)."""
        return {
            "ok": self.ok,
            "source": self.source,
            "services_source": self.services_source,
            "flows_in": self.flows_in,
            "flows_out": self.flows_out,
            "services_in": self.services_in,
            "services_out": self.services_out,
            "services_derived": self.services_derived,
            "authorization_servers_source": self.authorization_servers_source,
            "authorization_servers_in": self.authorization_servers_in,
            "authorization_servers_out": self.authorization_servers_out,
            "authorization_servers_derived": self.authorization_servers_derived,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "dropped_flow_rows": list(self.dropped_flow_rows),
            "dropped_service_rows": list(self.dropped_service_rows),
            "dropped_authorization_server_rows": list(self.dropped_authorization_server_rows),
            "defaults": [{"table": t, "column": c, "filled": n} for t, c, n in self.defaults],
            "aliases": [{"table": t, "given": g, "column": c} for t, g, c in self.aliases],
            "unknown_columns": [{"table": t, "column": c} for t, c in self.unknown_columns],
            "notes": list(self.notes),
            "problems": [asdict(p) for p in self.problems],
        }

    def __str__(self) -> str:
        servers = (
            ""
            if self.authorization_servers_derived
            else f", {self.authorization_servers_out} of {self.authorization_servers_in} "
            "authorization servers"
        )
        lines = [
            f"{self.source}: {self.flows_out} of {self.flows_in} flows, "
            f"{self.services_out} of {self.services_in} services{servers} kept "
            f"({len(self.errors)} errors, {len(self.warnings)} warnings)"
        ]
        lines.extend(f"note: {n}" for n in self.notes)
        lines.extend(_listing(self.problems))
        return "\n".join(lines)


def _listing(problems: Sequence[Problem]) -> list[str]:
    lines = [f"  {p.severity}: {p}" for p in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        lines.append(f"  ... and {len(problems) - _MAX_LISTED} more (see .problems or .to_frame())")
    return lines


class InventoryError(ValueError):
    """An inventory failed validation. ``.problems`` lists every problem found (not just the
    first), each with file, row (as in the file, header = 1), column, value and expectation."""

    def __init__(self, problems: Sequence[Problem], *, report: ValidationReport | None = None):
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.report = report
        super().__init__(self._message())

    def _message(self) -> str:
        errors = [p for p in self.problems if p.severity == "error"]
        files = sorted({p.file for p in errors})
        head = f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in {', '.join(files)}:"
        return "\n".join([head, *_listing(errors)])

    def to_frame(self) -> pd.DataFrame:
        """Every problem as a DataFrame (table, file, row, column, value, expected, code)."""
        return V.problems_frame(self.problems)


@dataclass(frozen=True, slots=True, eq=False)
class Inventory:
    """A validated inventory: typed ``flows``, ``services`` and ``authorization_servers`` frames
    (dtypes per the schema). ``authorization_servers`` left at ``None`` is derived from the
    flows with :func:`derive_authorization_servers`."""

    flows: pd.DataFrame
    services: pd.DataFrame
    source: str
    report: ValidationReport | None = None
    authorization_servers: pd.DataFrame = None

    def __post_init__(self) -> None:
        if self.authorization_servers is None:
            object.__setattr__(
                self, "authorization_servers", derive_authorization_servers(self.flows)
            )

    def __repr__(self) -> str:
        return (
            f"Inventory(source={self.source!r}, flows={len(self.flows)}, "
            f"services={len(self.services)}, "
            f"authorization_servers={len(self.authorization_servers)})"
        )


# --- reading ----------------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".csv.gz", ".csv", ".parquet", ".pq"):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _file_problem(table: str, file: str, expected: str, code: str, value: str = "") -> Problem:
    return Problem(table, file, None, None, value, expected, code)


#: Largest decompressed size of a ``.csv.gz`` the loader inflates (bytes); a larger one is an
#: :class:`InventoryError` (code ``decompressed_size``). Change per call with
#: ``load_inventory(..., max_decompressed_bytes=...)``.
MAX_DECOMPRESSED_BYTES = 4 * 2**30
#: A ``.csv.gz`` may also inflate to at most this many times its compressed size (inventory
#: CSVs compress 5-30x; a gzip bomb 1000x), with a floor of :data:`GZIP_RATIO_FLOOR` bytes so
#: small files are never refused for their ratio.
MAX_GZIP_RATIO = 100
GZIP_RATIO_FLOOR = 64 * 2**20
#: Inputs larger than this (decompressed) are parsed block by block with pyarrow and held as
#: categorical columns, so peak memory stays near the file size; smaller ones use pandas.
STREAM_THRESHOLD = 64 * 2**20
#: Bytes of CSV per block when a large file is parsed and validated block by block: memory
#: beyond the typed result is about one block's cells as Python objects.
BLOCK_BYTES = 4 * 2**20
_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"


class _Lines:
    """The decompressed bytes of a CSV file in chunks of whole lines, comment (``#``) and
    blank lines removed, with the file line number of every kept line (as runs).

    Reading is bounded (``limit`` decompressed bytes) and every read failure (truncated or
    non-gzip ``.gz``, corrupt deflate data) becomes an :class:`InventoryError` naming the file.
    """

    def __init__(self, path: Path, table: str, limit: int) -> None:
        self.path = path
        self.table = table
        self.limit = limit
        self.gz = _suffix(path) == ".csv.gz"
        self.line = 0
        self.dropped = False
        self.spaced = False  # a delimiter followed by a space or tab somewhere
        self.runs: list[list[int]] = []
        self.size = 0

    def _fail(self, expected: str, code: str, value: str = "") -> InventoryError:
        return InventoryError([_file_problem(self.table, str(self.path), expected, code, value)])

    def _raw(self) -> Iterator[bytes]:
        import zlib

        opener: Any = gzip.open if self.gz else open
        with opener(self.path, "rb") as handle:
            while True:
                try:
                    block = handle.read(_CHUNK)
                except EOFError:
                    raise self._fail(
                        "a complete gzip file (it ends before the end-of-stream marker: "
                        "truncated?)",
                        "gzip_truncated",
                    ) from None
                except gzip.BadGzipFile as exc:
                    raise self._fail(
                        "gzip data (the file is named .gz but is not gzip)", "gzip", str(exc)
                    ) from None
                except zlib.error as exc:
                    raise self._fail("valid gzip data (corrupt)", "gzip", str(exc)[:200]) from None
                if not block:
                    return
                self.size += len(block)
                if self.size > self.limit:
                    raise self._fail(
                        f"at most {self.limit} bytes once decompressed (a larger or gzip-bomb "
                        "file; raise max_decompressed_bytes if it is genuine)",
                        "decompressed_size",
                        f"> {self.limit} bytes",
                    )
                yield block

    def _keep(self, first: int, count: int) -> None:
        if count <= 0:
            return
        if self.runs and self.runs[-1][0] + self.runs[-1][1] == first:
            self.runs[-1][1] += count
        else:
            self.runs.append([first, count])

    def _filter(self, block: bytes) -> bytes:
        if not self.spaced and _SPACED.search(block) is not None:
            self.spaced = True
        n = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        if not _needs_line_filter(block):
            self._keep(self.line + 1, n)
            self.line += n
            return block
        parts = block.split(b"\n")
        if block.endswith(b"\n"):
            parts.pop()
        out = []
        for part in parts:
            self.line += 1
            if part.strip() and not part.lstrip().startswith(b"#"):
                out.append(part)
                self._keep(self.line, 1)
            else:
                self.dropped = True
        return b"".join(p + b"\n" for p in out)

    def chunks(self) -> Iterator[bytes]:
        carry = b""
        first = True
        for block in self._raw():
            if first:
                first = False
                if block.startswith(_BOM):
                    block = block[len(_BOM) :]
            data = carry + block if carry else block
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1 :]
            yield self._filter(data[: cut + 1])
        if carry:
            yield self._filter(carry)

    @property
    def kept(self) -> int:
        return sum(r[1] for r in self.runs)

    def line_numbers(self) -> npt.NDArray[np.int64]:
        """File line number (1-based) of every kept line."""
        if not self.runs:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(a, a + c, dtype=np.int64) for a, c in self.runs]).astype(
            np.int64
        )


class _ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterator of byte chunks (fed to pyarrow)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _gzip_limit(path: Path, limit: int | None) -> int:
    if limit is not None:
        return limit
    if _suffix(path) != ".csv.gz":
        return MAX_DECOMPRESSED_BYTES * 1024  # plain files are read as they are, in blocks
    return min(MAX_DECOMPRESSED_BYTES, max(GZIP_RATIO_FLOOR, MAX_GZIP_RATIO * path.stat().st_size))


def _read_parquet(path: Path, table: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    file = str(path)
    try:
        pfile = pq.ParquetFile(path)
        schema = pfile.schema_arrow
        strings = [f.name for f in schema if str(f.type) in ("string", "large_string")]
        frame = pfile.read(use_threads=False).to_pandas(
            strings_to_categorical=bool(strings), self_destruct=True
        )
    except Exception as exc:
        raise InventoryError(
            [_file_problem(table, file, "a readable Parquet file", "file", str(exc)[:200])]
        ) from None
    return frame


def _read(
    path: Path, table: str, max_decompressed_bytes: int | None = None
) -> tuple[pd.DataFrame, npt.NDArray[np.int64], list[str]]:
    """Raw table (all cells as read) and the file row number of each record."""
    opened = _open(path, table, max_decompressed_bytes)
    if isinstance(opened, _Blocks):
        return _rows_of(opened.lines, opened.read_categorical())
    return opened


class _Renumber(Exception):
    """Raised mid-way through a block read whose line-based row numbers proved wrong (quoted
    multi-line cells in a file with comment lines): the caller restarts counting records."""


@dataclass(slots=True)
class _Blocks:
    """A large CSV (over :data:`STREAM_THRESHOLD`) after its first bounded pass, read again
    block by block (:meth:`frames`) or whole into categorical columns."""

    lines: _Lines
    first: bytes
    table: str

    def _source(self) -> tuple[_Lines, Any]:
        import pyarrow as pa

        if self.lines.dropped:  # comment or blank lines: parse the filtered stream
            again = _Lines(self.lines.path, self.table, self.lines.limit)
            return again, _buffered(again.chunks())
        path = self.lines.path
        src = pa.CompressedInputStream(pa.OSFile(str(path)), "gzip") if self.lines.gz else str(path)
        return self.lines, src

    def read_categorical(self) -> pd.DataFrame:
        if self.lines.spaced:
            return pd.concat(list(self._pandas_frames()), ignore_index=True)
        lines, source = self._source()
        return _read_stream(lines, source, self.first, self.table)

    def frames(self, *, by_line: bool) -> Iterator[tuple[pd.DataFrame, npt.NDArray[np.int64]]]:
        """Blocks of records as frames of ``str`` columns, with each record's file row: its
        line (``by_line``, when comment lines were removed) or its record number + 1."""
        line_no = self.lines.line_numbers() if by_line else None
        done = 0
        names: list[str] = []
        for frame in self._pandas_frames() if self.lines.spaced else self._arrow_frames(names):
            n = len(frame)
            if line_no is not None:
                if done + n > len(line_no) - 1:
                    raise _Renumber
                rows = line_no[1 + done : 1 + done + n]
            else:
                rows = np.arange(done + 2, done + n + 2, dtype=np.int64)
            done += n
            yield frame, rows
            del frame
        if line_no is not None and done != len(line_no) - 1:
            raise _Renumber
        if done == 0:
            yield (
                pd.DataFrame({n: pd.array([], dtype="str") for n in names}),
                np.zeros(0, dtype=np.int64),
            )

    def _arrow_frames(self, names: list[str]) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        lines, source = self._source()
        for batch in _csv_batches(lines, source, self.first, self.table, names):
            yield pa.Table.from_batches([batch]).to_pandas(memory_pool=_stream_pool())
            del batch

    def _pandas_frames(self) -> Iterator[pd.DataFrame]:
        """Blocks parsed by pandas, as the whole-file path parses: used when a delimiter is
        followed by a space (``skipinitialspace``: ``a, "b"`` is the value ``b``, which
        pyarrow would read as `` "b"``)."""
        lines = _Lines(self.lines.path, self.table, self.lines.limit)
        per_row = max(1, self.lines.size // max(1, self.lines.kept))
        reader = pd.read_csv(
            io.TextIOWrapper(_buffered(lines.chunks()), encoding="utf-8", newline=""),
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            skipinitialspace=True,
            index_col=False,
            chunksize=max(64, BLOCK_BYTES // per_row),
        )
        with reader:
            while True:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("error", pd.errors.ParserWarning)
                        frame = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    raise InventoryError(
                        [
                            _file_problem(
                                self.table, str(lines.path), "UTF-8 text", "encoding", str(exc)
                            )
                        ]
                    ) from None
                except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as exc:
                    raise _pandas_syntax(exc, self.lines, self.table) from None
                yield frame


def _rows_of(
    lines: _Lines, frame: pd.DataFrame
) -> tuple[pd.DataFrame, npt.NDArray[np.int64], list[str]]:
    """``frame`` with the file row of each record (line numbers when lines were removed)."""
    file = str(lines.path)
    if not lines.dropped:
        return frame, np.arange(2, len(frame) + 2, dtype=np.int64), []
    line_no = lines.line_numbers()
    if len(frame) == len(line_no) - 1:
        return frame, line_no[1:], []
    return frame, np.arange(2, len(frame) + 2, dtype=np.int64), [_multiline_note(file)]


def _multiline_note(file: str) -> str:
    return f"{file}: quoted multi-line cells; row numbers count records, not lines"


def _open(
    path: Path, table: str, max_decompressed_bytes: int | None = None
) -> tuple[pd.DataFrame, npt.NDArray[np.int64], list[str]] | _Blocks:
    """A small table read whole (as :func:`_read`), or a large CSV ready to be read in
    blocks."""
    suffix = _suffix(path)
    file = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{table} file not found: {path}")
    if suffix in (".parquet", ".pq"):
        frame = _read_parquet(path, table)
        return frame, np.arange(2, len(frame) + 2, dtype=np.int64), []
    if suffix not in (".csv", ".csv.gz"):
        raise InventoryError(
            [_file_problem(table, file, "a .csv, .csv.gz or .parquet file", "file", suffix)]
        )
    lines = _Lines(path, table, _gzip_limit(path, max_decompressed_bytes))
    chunks = lines.chunks()
    head: list[bytes] = []
    size = 0
    streaming = False
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size > STREAM_THRESHOLD:
            streaming = True
            break
    if streaming:
        first = head[0]
        del head
        for _ in chunks:  # finish the pass: size cap, gzip errors, comment lines
            pass
        return _Blocks(lines, first, table)
    if lines.kept == 0:
        raise InventoryError([_file_problem(table, file, "a header line", "empty")])
    return _rows_of(lines, _read_small(b"".join(head), lines, table))


def _csv_syntax(table: str, file: str, row: int | None, message: str) -> InventoryError:
    return InventoryError(
        [
            Problem(
                table,
                file,
                row,
                None,
                message[:200],
                "well-formed CSV (every row has as many fields as the header)",
                "csv_syntax",
            )
        ]
    )


def _read_small(data: bytes, lines: _Lines, table: str) -> pd.DataFrame:
    file = str(lines.path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(
            [_file_problem(table, file, "UTF-8 text", "encoding", str(exc)[:200])]
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.StringIO(text),
                dtype=object,
                keep_default_na=False,
                na_filter=False,
                skipinitialspace=True,
                index_col=False,
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as exc:
        raise _pandas_syntax(exc, lines, table) from None


def _pandas_syntax(exc: Exception, lines: _Lines, table: str) -> InventoryError:
    """A pandas parser error as an :class:`InventoryError` naming the file line."""
    message = str(exc)
    match = re.search(r"line (\d+)", message)
    row = None
    if match:
        line = int(match.group(1))
        if lines.dropped:
            keep = lines.line_numbers()
            row = int(keep[line - 1]) if line <= len(keep) else line
        else:
            row = line
    return _csv_syntax(table, str(lines.path), row, message)


def _mangle(names: Sequence[str]) -> list[str]:
    """Duplicate header names as pandas reads them (``a``, ``a.1``, ...)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            candidate = f"{name}.{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}.{seen[name]}"
            seen[candidate] = 0
            out.append(candidate)
        else:
            seen[name] = 0
            out.append(name)
    return out


def _stream_pool() -> Any:
    """Arrow memory pool for block parsing: jemalloc returning freed pages at once (the
    default mimalloc pool keeps the blocks' pages, about the file size again), else the
    default pool."""
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # pragma: no cover - pyarrow built without jemalloc
        return pa.default_memory_pool()
    return pool


def _csv_batches(
    lines: _Lines, source: Any, first: bytes, table: str, names_out: list[str] | None = None
) -> Iterator[Any]:
    """Record batches (all columns ``string``) of a large CSV, parsed by pyarrow in blocks of
    :data:`BLOCK_BYTES`; the header comes from ``first`` (duplicate names as pandas reads
    them, also put into ``names_out``). Malformed input is an :class:`InventoryError`."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pacsv

    file = str(lines.path)
    pool = _stream_pool()
    try:
        header = next(csv.reader(io.StringIO(first.decode("utf-8")), skipinitialspace=True))
    except (UnicodeDecodeError, StopIteration, csv.Error) as exc:
        raise InventoryError(
            [_file_problem(table, file, "a UTF-8 CSV header line", "encoding", str(exc)[:200])]
        ) from None
    names = _mangle(list(header))
    if names_out is not None:
        names_out[:] = names
    bad_rows: list[tuple[int, int]] = []

    def invalid(row: Any) -> str:
        bad_rows.append((int(row.expected_columns), int(row.actual_columns)))
        return "skip"

    try:
        reader = pacsv.open_csv(
            source,
            memory_pool=pool,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, block_size=BLOCK_BYTES, use_threads=False
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        batches = iter(reader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            if bad_rows:
                break
            yield batch
            del batch
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message:
            raise InventoryError(
                [_file_problem(table, file, "UTF-8 text", "encoding", message[:200])]
            ) from None
        raise _csv_syntax(table, file, None, message) from None
    if bad_rows:
        expected, actual = bad_rows[0]
        row = _locate_bad_row(lines.path, table, lines.limit, expected)
        raise _csv_syntax(table, file, row, f"expected {expected} fields, saw {actual}")


def _read_stream(lines: _Lines, source: Any, first: bytes, table: str) -> pd.DataFrame:
    """Parse a large CSV block by block (pyarrow); every column dictionary-encoded per block
    and returned as a pandas Categorical, so memory grows with distinct values, not cells
    (used for the services and authorization-servers tables; flows are validated per block)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pool = _stream_pool()
    names: list[str] = []
    columns: list[list[Any]] = []
    dict_type = pa.dictionary(pa.int32(), pa.string())
    # most columns hold few distinct values: 2-byte indices until a block proves otherwise
    small_type = pa.dictionary(pa.int16(), pa.string())
    narrow: list[bool] = []
    for batch in _csv_batches(lines, source, first, table, names):
        if not columns:
            columns = [[] for _ in names]
            narrow = [True] * len(names)
        for i in range(len(names)):
            enc = pc.dictionary_encode(batch.column(i), memory_pool=pool)
            if narrow[i] and len(enc.dictionary) <= 32767:
                enc = enc.cast(small_type)
            elif narrow[i]:  # a high-cardinality column: widen what was narrowed
                narrow[i] = False
                columns[i] = [c.cast(dict_type) for c in columns[i]]
            columns[i].append(enc)
        del batch
    if not columns:
        columns = [[] for _ in names]
        narrow = [True] * len(names)
    data = {}
    for i, (name, chunks_i) in enumerate(zip(names, columns, strict=True)):
        if narrow[i] and sum(len(c.dictionary) for c in chunks_i) > 32767:
            chunks_i[:] = [c.cast(dict_type) for c in chunks_i]  # the union may not fit
            narrow[i] = False
        arr = pa.chunked_array(chunks_i, type=small_type if narrow[i] else dict_type)
        data[name] = arr.to_pandas(memory_pool=pool)
        chunks_i.clear()
    return pd.DataFrame(data)


def _locate_bad_row(path: Path, table: str, limit: int, n_fields: int) -> int | None:
    """File line of the first record whose field count differs from the header's (a second,
    streaming pass; only run when the fast parser reported such a record)."""
    import csv

    lines = _Lines(path, table, limit)
    text = io.TextIOWrapper(_buffered(lines.chunks()), encoding="utf-8", newline="")
    reader = csv.reader(text, skipinitialspace=True)
    for index, record in enumerate(reader):
        if index and len(record) != n_fields:
            keep = lines.line_numbers()
            line = reader.line_num
            return int(keep[line - 1]) if lines.dropped and line <= len(keep) else line
    return None


def _buffered(chunks: Iterator[bytes]) -> io.BufferedReader:
    return io.BufferedReader(_ChunkReader(chunks), _CHUNK)


def _needs_line_filter(data: bytes) -> bool:
    """True if a block of whole lines has comment or blank lines (cheap byte scans first)."""
    if not data.strip(b"\r\n"):
        return True
    if data[:1] in (b"#", b"\n", b"\r", b" ", b"\t"):
        return True
    # one scan instead of five: a line starting with '#', ' ', tab, or an empty line
    return _FILTERED_LINE.search(data.rstrip(b"\r\n")) is not None


def _sibling(flows_path: Path, table: str) -> Path | None:
    """The ``table`` file beside ``flows_path``: ``<name with flows→table>`` or ``<table>``, with
    the flows file's suffix first, then .csv, .parquet, .csv.gz."""
    suffix = _suffix(flows_path)
    stem = flows_path.name[: -len(suffix)] if suffix else flows_path.name
    names = []
    if "flows" in stem:
        names.append(stem.replace("flows", table))
    names.append(table)
    for name in names:
        for suf in (suffix, ".csv", ".parquet", ".csv.gz"):
            candidate = flows_path.with_name(name + suf)
            if candidate.is_file():
                return candidate
    return None


# --- typed frames -----------------------------------------------------------------------------


def _typed(frame: pd.DataFrame | Mapping[str, Any], spec: S.TableSpec) -> pd.DataFrame:
    """Frame with schema dtypes from columns whose category columns hold integer codes."""
    out: dict[str, Any] = {}
    for col in spec.columns:
        values = frame[col.name]
        if col.kind == "category":
            out[col.name] = pd.Categorical.from_codes(
                np.asarray(values, dtype=np.int64), categories=list(col.allowed)
            )
        elif col.kind == "boolean":
            out[col.name] = np.asarray(values, dtype=bool)
        elif col.kind == "integer":
            out[col.name] = np.asarray(values, dtype=np.int64)
        elif isinstance(values, pd.Series) and values.dtype == "str":
            out[col.name] = values.array  # already the target dtype: no per-cell round trip
        else:
            out[col.name] = pd.array(np.asarray(values, dtype=object), dtype="str")
    typed = pd.DataFrame(out)
    for extra in list(frame):
        if extra not in typed.columns:
            typed[extra] = np.asarray(frame[extra])
    return typed


def _derive_services(flows: pd.DataFrame) -> pd.DataFrame:
    """Minimal services table: one row per resource server, bindings seen in its flows."""
    rs = pd.Series(flows["resource_server"], dtype=object)
    binding = np.asarray(flows["binding"], dtype=np.int64)
    ids = sorted(set(rs[rs != ""]))
    data: dict[str, Any] = {"service_id": np.array(ids, dtype=object)}
    for col in S.SERVICE_COLUMNS[1:]:
        default = col.allowed.index(col.default) if col.kind == "category" else col.default
        data[col.name] = np.full(len(ids), default, dtype=object if col.kind == "string" else None)
    frame = pd.DataFrame(data)
    pos = pd.Index(ids).get_indexer(rs)
    for b, name in ((1, "supports_mtls"), (2, "supports_dpop")):
        hit = np.zeros(len(ids), dtype=bool)
        sel = (binding == b) & (pos >= 0)
        hit[pos[sel]] = True
        frame[name] = hit
    return frame


def _binding_codes(values: Any) -> npt.NDArray[np.int64]:
    """Binding as schema codes (bearer 0, mtls 1, dpop 2; -1 unknown) from codes or labels."""
    series = pd.Series(values)
    if pd.api.types.is_integer_dtype(series.dtype):
        ints: npt.NDArray[np.int64] = series.to_numpy(dtype=np.int64)
        return ints
    if isinstance(series.dtype, pd.CategoricalDtype):
        known = [str(c) for c in series.cat.categories]
        lookup = np.array([S.BINDINGS.index(c) if c in S.BINDINGS else -1 for c in known] + [-1])
        cat_codes = series.cat.codes.to_numpy(dtype=np.int64)  # -1 (missing) -> last entry
        mapped: npt.NDArray[np.int64] = lookup[cat_codes].astype(np.int64)
        return mapped
    labels = series.astype(object).where(series.notna(), "").astype(str)
    codes: npt.NDArray[np.int64] = pd.Categorical(labels, categories=list(S.BINDINGS)).codes.astype(
        np.int64
    )
    return codes


def derive_authorization_servers(flows: pd.DataFrame) -> pd.DataFrame:
    """The authorization_servers table implied by ``flows``: one row per distinct
    ``authorization_server`` (sorted), with the documented derived defaults.

    ``issues_dpop`` / ``issues_mtls``: true if any flow of that server uses binding dpop / mtls
    (RFC 9449 §5, RFC 8705 §3); ``binds_refresh_tokens`` equals ``issues_dpop``;
    ``supports_token_exchange``: true if any of its flows has ``token_exchange`` (RFC 8693);
    ``product`` empty. A missing ``authorization_server`` column or an empty cell counts as
    ``"as-default"``; a missing ``token_exchange`` column as false. ``binding`` may hold labels
    (typed frames) or schema codes. Columns have the schema dtypes.
    """
    n = len(flows)
    if "authorization_server" in flows.columns:
        codes, uniques = pd.factorize(
            pd.Series(flows["authorization_server"]), use_na_sentinel=False
        )
        names = [
            "" if u is None or u is pd.NA or (isinstance(u, float) and u != u) else str(u).strip()
            for u in uniques
        ]
        clean = [x or S.DEFAULT_AS_ID for x in names]
    else:
        codes, clean = np.zeros(n, dtype=np.int64), [S.DEFAULT_AS_ID]
    binding = _binding_codes(flows["binding"]) if "binding" in flows.columns else np.zeros(n)
    if "token_exchange" in flows.columns:
        tx = pd.Series(flows["token_exchange"]).fillna(False).to_numpy(dtype=bool)
    else:
        tx = np.zeros(n, dtype=bool)
    ids = sorted(set(clean)) if n else []
    pos = pd.Index(ids, dtype=object).get_indexer(pd.Index(clean, dtype=object))[codes]
    usage = V.usage_flags(len(ids), pos, np.asarray(binding, dtype=np.int64), tx)
    data = {
        "as_id": np.array(ids, dtype=object),
        "product": np.full(len(ids), "", dtype=object),
        "issues_dpop": usage["issues_dpop"],
        "issues_mtls": usage["issues_mtls"],
        "binds_refresh_tokens": usage["issues_dpop"].copy(),
        "supports_token_exchange": usage["supports_token_exchange"],
    }
    return _typed(data, S.AUTHORIZATION_SERVERS)


def _derived_as_note(flows_file: str, n: int) -> str:
    return (
        f"no authorization_servers file found next to {flows_file}: derived {n} authorization "
        "server(s) from flows.authorization_server (issues_dpop/issues_mtls true where a flow "
        "uses that binding, binds_refresh_tokens = issues_dpop, supports_token_exchange where "
        "a flow has token_exchange)"
    )


@dataclass(frozen=True, slots=True)
class _Sides:
    """The services and authorization-servers tables beside a flows source, read and parsed
    (the same for the whole-file and the block-by-block loader)."""

    svc_res: V.TableResult | None
    as_res: V.TableResult | None
    services_file: str
    servers_file: str
    services_in: int
    servers_in: int
    fatal: list[Problem]


def _fatal(res: V.TableResult) -> list[Problem]:
    """The problems of a table that stop the load at once (errors not tied to a row)."""
    return [p for p in res.problems if p.row is None and p.severity == "error"]


def _read_sides(
    services: Source | None,
    authorization_servers: Source | None,
    flows_path: Path | None,
    max_decompressed_bytes: int | None,
    notes: list[str],
) -> _Sides:
    """Read and parse the services and authorization-servers tables (given, or the siblings
    of ``flows_path``); their read notes go to ``notes``."""
    raw_services, service_rows, services_file, more = _read_source(
        services,
        _sibling(flows_path, "services") if flows_path is not None else None,
        "services",
        "services",
        max_decompressed_bytes,
    )
    notes.extend(more)
    raw_servers, server_rows, servers_file, more = _read_source(
        authorization_servers,
        _sibling(flows_path, "authorization_servers") if flows_path is not None else None,
        "authorization_servers",
        "authorization_servers",
        max_decompressed_bytes,
    )
    notes.extend(more)
    fatal: list[Problem] = []
    svc_res: V.TableResult | None = None
    if raw_services is not None:
        svc_res = V.parse_table(raw_services, S.SERVICES, file=services_file, rows=service_rows)
        fatal += _fatal(svc_res)
    as_res: V.TableResult | None = None
    if raw_servers is not None:
        as_res = V.parse_table(
            raw_servers, S.AUTHORIZATION_SERVERS, file=servers_file, rows=server_rows
        )
        fatal += _fatal(as_res)
    return _Sides(
        svc_res,
        as_res,
        services_file,
        servers_file,
        len(raw_services) if raw_services is not None else 0,
        len(raw_servers) if raw_servers is not None else 0,
        fatal,
    )


def _services_table(
    svc_res: V.TableResult | None, services_file: str, on_error: OnError, notes: list[str]
) -> tuple[npt.NDArray[np.bool_], pd.DataFrame | None, dict[str, str] | None]:
    """A given services table defaulted and checked: its bad rows, the frame the flows are
    checked against (bad rows dropped with ``on_error="drop"``) and each service's
    ``downstream`` (for the flows' defaults); all ``None`` when the services are derived."""
    if svc_res is None:
        return np.zeros(0, dtype=bool), None, None
    V.fill_service_defaults(svc_res)
    V.check_service_graph(svc_res, services_file)
    svc_bad = _bad_rows(svc_res)
    frame = svc_res.frame
    if on_error == "drop" and svc_bad.any():
        frame = _drop_services(frame, svc_bad, notes)
    downstream = dict(zip(frame["service_id"], frame["downstream"], strict=True))
    return svc_bad, frame, downstream


def _read_source(
    given: Source | None,
    sibling: Path | None,
    table: str,
    label: str,
    max_decompressed_bytes: int | None = None,
) -> tuple[pd.DataFrame | None, npt.NDArray[np.int64], str, list[str]]:
    """(raw frame or None, file row numbers, file label, notes) of an optional second table."""
    if isinstance(given, pd.DataFrame):
        rows = np.arange(2, len(given) + 2, dtype=np.int64)
        return given.reset_index(drop=True), rows, f"<{label} DataFrame>", []
    path = Path(given) if given is not None else sibling
    if path is None:
        return None, np.zeros(0, dtype=np.int64), "<derived from flows>", []
    raw, rows, notes = _read(path, table, max_decompressed_bytes)
    return raw, rows, str(path), notes


def load_inventory(
    source: Source = "default",
    *,
    services: Source | None = None,
    on_error: OnError = "raise",
    authorization_servers: Source | None = None,
    max_decompressed_bytes: int | None = None,
) -> Inventory:
    """Load, normalise and validate an inventory.

    ``source`` is ``"default"`` (the bundled ``data/flows.csv``), a CSV/``.csv.gz``/Parquet
    path, or a DataFrame. ``services`` is a path or DataFrame; if omitted, a sibling
    ``services.*`` (or ``<name with flows→services>``) is used, and if there is none a minimal
    services table is derived from the flows (noted in the report). ``authorization_servers``
    is found the same way (``authorization_servers.*`` or ``<name with
    flows→authorization_servers>``); without one it is derived with
    :func:`derive_authorization_servers`. Column names are
    case-insensitive with documented aliases; unknown columns are kept; optional columns get
    documented defaults. With ``on_error="raise"`` any error raises :class:`InventoryError`
    listing every problem; with ``"drop"`` bad rows are dropped and listed in ``.report``
    (problems with a whole file or a required column still raise). Input files are only read.

    Large and hostile files: CSV is read in blocks (inputs over :data:`STREAM_THRESHOLD` are
    parsed with pyarrow into categorical columns, so memory follows the distinct values); a
    ``.csv.gz`` inflates to at most ``max_decompressed_bytes`` (default the smaller of
    :data:`MAX_DECOMPRESSED_BYTES` and :data:`MAX_GZIP_RATIO` x its compressed size, at least
    :data:`GZIP_RATIO_FLOOR`); truncated or non-gzip ``.gz`` files, binary or nested (list,
    struct) cells and ids holding characters the models cannot carry (``>`` or ``;`` in a
    service id, control characters in any id) are each an :class:`InventoryError` naming the
    file, row and column.
    """
    if on_error not in ("raise", "drop"):
        raise ValueError("on_error must be 'raise' or 'drop'")
    notes: list[str] = []
    if isinstance(source, pd.DataFrame):
        raw_flows, flow_rows, flows_file = (
            source.reset_index(drop=True),
            np.arange(2, len(source) + 2, dtype=np.int64),
            "<flows DataFrame>",
        )
        flows_path: Path | None = None
    else:
        if str(source) == "default":
            flows_path = data_dir() / "flows.csv"
            if services is None:
                services = flows_path.with_name("services.csv")
        else:
            flows_path = Path(source)
        opened = _open(flows_path, "flows", max_decompressed_bytes)
        flows_file = str(flows_path)
        if isinstance(opened, _Blocks):
            return _load_blocks(
                opened,
                label="default" if str(source) == "default" else flows_file,
                services=services,
                authorization_servers=authorization_servers,
                on_error=on_error,
                max_decompressed_bytes=max_decompressed_bytes,
            )
        raw_flows, flow_rows, more = opened
        notes.extend(more)
    label = "default" if str(source) == "default" and flows_path is not None else flows_file

    sides = _read_sides(services, authorization_servers, flows_path, max_decompressed_bytes, notes)
    svc_res, as_res = sides.svc_res, sides.as_res
    services_file, servers_file = sides.services_file, sides.servers_file

    flows_res = V.parse_table(raw_flows, S.FLOWS, file=flows_file, rows=flow_rows)
    n_raw_flows = len(raw_flows)
    del raw_flows  # parsed: free the raw cells before validation allocates more
    fatal = _fatal(flows_res) + sides.fatal

    def all_problems() -> list[Problem]:
        return (
            flows_res.problems
            + (svc_res.problems if svc_res else [])
            + (as_res.problems if as_res else [])
        )

    if fatal:
        raise InventoryError(_sorted(all_problems()))

    svc_bad, services_frame, downstream = _services_table(svc_res, services_file, on_error, notes)

    V.fill_flow_defaults(flows_res, downstream)
    V.apply_rules(flows_res, V.FLOW_RULES, flows_file)
    as_bad = np.zeros(0, dtype=bool)
    servers_frame: pd.DataFrame | None = None
    servers_invalid: dict[str, npt.NDArray[np.bool_]] = {}
    if as_res is not None:
        V.fill_authorization_server_defaults(as_res, flows_res)
        as_bad = _bad_rows(as_res)
        servers_frame = as_res.frame
        servers_invalid = dict(as_res.invalid)
        if on_error == "drop" and as_bad.any():
            servers_frame = servers_frame.loc[~as_bad].reset_index(drop=True)
            servers_invalid = {k: v[~as_bad] for k, v in servers_invalid.items()}
    if services_frame is None:
        services_frame = _derived_services(flows_res.frame, flows_file, notes)
    V.check_references(
        flows_res, services_frame, flows_file, services_file, services_derived=svc_res is None
    )
    if servers_frame is not None:
        V.check_authorization_servers(
            flows_res, servers_frame, flows_file, servers_file, servers_invalid
        )
    flow_bad = _bad_rows(flows_res)

    problems = _sorted(all_problems())
    errors = [p for p in problems if p.severity == "error"]
    flows_frame = flows_res.frame
    if on_error == "drop":
        flows_frame = flows_frame.loc[~flow_bad].reset_index(drop=True)
    else:
        services_frame = services_frame.reset_index(drop=True)
    return _assemble(
        typed_flows=_typed(flows_frame, S.FLOWS),
        flows_in=n_raw_flows,
        flow_defaults=flows_res.defaults,
        flow_aliases=flows_res.aliases,
        flow_unknown=flows_res.unknown,
        dropped_flow_rows=(tuple(flows_res.rows[flow_bad].tolist()) if on_error == "drop" else ()),
        services_frame=services_frame,
        sides=sides,
        svc_bad=svc_bad,
        servers_frame=servers_frame,
        as_bad=as_bad,
        problems=problems,
        errors=errors,
        notes=notes,
        label=label,
        flows_file=flows_file,
        on_error=on_error,
    )


def _load_blocks(
    src: _Blocks,
    *,
    label: str,
    services: Source | None,
    authorization_servers: Source | None,
    on_error: OnError,
    max_decompressed_bytes: int | None,
) -> Inventory:
    """:func:`load_inventory` for a large flows CSV, validated block by block (see
    :func:`_load_blocks_once`); restarted with record numbers as rows if line numbers prove
    wrong (quoted multi-line cells in a file with comment lines), as the whole-file path does."""
    kw: dict[str, Any] = {
        "label": label,
        "services": services,
        "authorization_servers": authorization_servers,
        "on_error": on_error,
        "max_decompressed_bytes": max_decompressed_bytes,
    }
    with _arrow_pool():
        if not src.lines.dropped:
            return _load_blocks_once(src, by_line=False, notes=[], **kw)
        try:
            return _load_blocks_once(src, by_line=True, notes=[], **kw)
        except _Renumber:
            note = _multiline_note(str(src.lines.path))
            return _load_blocks_once(src, by_line=False, notes=[note], **kw)


@contextlib.contextmanager
def _arrow_pool() -> Iterator[None]:
    """Arrow's default memory pool set to :func:`_stream_pool` while a large file loads: the
    default mimalloc pool keeps the pages of every block's transient arrays (measured: 0.25x
    the file size more peak memory). Restored afterwards; arrays keep their own pool."""
    import pyarrow as pa

    previous = pa.default_memory_pool()
    pa.set_memory_pool(_stream_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


class _Sink:
    """The typed flows, filled block by block: category codes, booleans and integers in arrays
    sized once from the first pass's line count (grown if ever short), string columns as the
    blocks' arrow arrays; plus each record's file row, the rows found bad, and the invalid
    marks the deferred authorization-server check reads. No block stays a frame: freed block
    memory is reused instead of fragmenting around long-lived small objects."""

    TRACKED = ("authorization_server", "binding", "token_exchange")
    _DTYPES: Mapping[str, Any] = {"category": np.int8, "boolean": np.bool_, "integer": np.int64}

    def __init__(self, capacity: int, *, track: bool) -> None:
        self.n = 0
        self.capacity = max(capacity, 1)
        self.track = track
        self.fixed: dict[str, npt.NDArray[Any]] = {}
        self.strings: dict[str, list[Any]] = {}
        for col in S.FLOWS.columns:
            dtype = self._DTYPES.get(col.kind)
            if dtype is None:
                self.strings[col.name] = []
            else:
                self.fixed[col.name] = np.empty(self.capacity, dtype=dtype)
        self.fixed[" rows"] = np.empty(self.capacity, dtype=np.int64)
        self.fixed[" bad"] = np.empty(self.capacity, dtype=bool)
        for name in self.TRACKED if track else ():
            self.fixed[" invalid " + name] = np.empty(self.capacity, dtype=bool)
        self.extras: dict[str, list[npt.NDArray[np.object_]]] = {}
        self.starts: list[int] = []

    def _grow(self, need: int) -> None:
        if need <= self.capacity:
            return
        self.capacity = max(need, 2 * self.capacity)
        for name, old in self.fixed.items():
            new = np.empty(self.capacity, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            self.fixed[name] = new

    def add(self, res: V.TableResult) -> None:
        """Append a validated block (its typed columns, rows, bad rows and marks)."""
        frame = res.frame
        start, m = self.n, len(frame)
        self._grow(start + m)
        stop = start + m
        for col in S.FLOWS.columns:
            if col.name in self.strings:
                values = np.asarray(frame[col.name], dtype=object)
                self.strings[col.name].append(pd.array(values, dtype="str"))
            else:
                self.fixed[col.name][start:stop] = np.asarray(frame[col.name])
        for name in frame.columns:
            if name not in self.fixed and name not in self.strings:
                self.extras.setdefault(str(name), []).append(np.asarray(frame[name]))
        self.fixed[" rows"][start:stop] = res.rows
        self.fixed[" bad"][start:stop] = _bad_rows(res)
        for name in self.TRACKED if self.track else ():
            self.fixed[" invalid " + name][start:stop] = res.invalid[name]
        self.starts.append(start)
        self.n = stop

    @property
    def rows(self) -> npt.NDArray[np.int64]:
        return self.fixed[" rows"][: self.n]

    @property
    def bad(self) -> npt.NDArray[np.bool_]:
        return self.fixed[" bad"][: self.n]

    def value_at(self, name: str, pos: int) -> tuple[str, int]:
        """(value of string column ``name``, file row) of record ``pos``."""
        b = bisect.bisect_right(self.starts, pos) - 1
        return str(self.strings[name][b][pos - self.starts[b]]), int(self.fixed[" rows"][pos])

    def as_check(self, b: int) -> V.TableResult:
        """Block ``b`` as the flows table the authorization-server check reads (views)."""
        start = self.starts[b]
        stop = self.starts[b + 1] if b + 1 < len(self.starts) else self.n
        light = pd.DataFrame(
            {
                "authorization_server": pd.Series(self.strings["authorization_server"][b]),
                "binding": self.fixed["binding"][start:stop],
                "token_exchange": self.fixed["token_exchange"][start:stop],
            },
            copy=False,
        )
        invalid = {name: self.fixed[" invalid " + name][start:stop] for name in self.TRACKED}
        return V.TableResult(light, self.fixed[" rows"][start:stop], [], invalid, {})

    def mark_bad(self, b: int, bad: npt.NDArray[np.bool_]) -> None:
        start = self.starts[b]
        self.fixed[" bad"][start : start + len(bad)] |= bad

    def finish(self, *, drop: bool) -> pd.DataFrame:
        """The typed flows frame (rows found bad left out with ``drop``); the sink is emptied
        column by column, so at most one column exists twice."""
        n = self.n
        keep = ~self.fixed[" bad"][:n] if drop else None
        out: dict[str, Any] = {}
        for col in S.FLOWS.columns:
            if col.name in self.strings:
                parts = self.strings.pop(col.name)
                if parts:
                    series = pd.concat([pd.Series(p) for p in parts], ignore_index=True)
                else:
                    series = pd.Series(pd.array([], dtype="str"))
                del parts
                if keep is not None:
                    series = series[keep].reset_index(drop=True)
                out[col.name] = series.array
                continue
            arr = self.fixed.pop(col.name)[:n]
            if keep is not None:
                arr = arr[keep]
            if col.kind == "category":
                out[col.name] = pd.Categorical.from_codes(arr, categories=list(col.allowed))
            else:
                out[col.name] = arr
        for name, chunks in self.extras.items():
            arr = np.concatenate(chunks) if chunks else np.zeros(0, dtype=object)
            out[name] = arr[keep] if keep is not None else arr
        self.extras.clear()
        return pd.DataFrame(out, copy=False)


def _load_blocks_once(
    src: _Blocks,
    *,
    by_line: bool,
    notes: list[str],
    label: str,
    services: Source | None,
    authorization_servers: Source | None,
    on_error: OnError,
    max_decompressed_bytes: int | None,
) -> Inventory:
    """Validate a large flows CSV block by block (:data:`BLOCK_BYTES` of CSV each), so memory
    is the typed result (categorical codes, numpy numbers, arrow strings) plus one block.

    Each block is parsed, defaulted, checked against the cross-field rules and the services
    table, converted to its final dtypes, and its raw cells freed before the next block. What
    spans blocks: unique columns (a :class:`~tokenlib.analysis._validate.UniqueIndex`: a
    duplicate names the first row even in an earlier block), the flows' usage of each
    authorization server (accumulated; it fills the servers' defaults), the services derived
    from the flows, and the authorization-server foreign key, checked after the last block
    against the completed servers table. The problems, typed frames and report equal those of
    the whole-file path.
    """
    flows_path = src.lines.path
    flows_file = str(flows_path)
    sides = _read_sides(services, authorization_servers, flows_path, max_decompressed_bytes, notes)
    svc_res, as_res = sides.svc_res, sides.as_res
    services_file, servers_file = sides.services_file, sides.servers_file

    sink = _Sink(src.lines.kept - 1, track=as_res is not None)
    # unique columns across blocks: the index confirms a hash match on the value in the sink
    seen = {
        c.name: V.UniqueIndex(functools.partial(sink.value_at, c.name))
        for c in S.FLOWS.columns
        if c.unique
    }

    frames = src.frames(by_line=by_line)
    raw, rows = next(frames)
    first = V.parse_table(raw, S.FLOWS, file=flows_file, rows=rows, seen=seen)
    del raw
    fatal = _fatal(first) + sides.fatal
    flow_problems: list[Problem] = list(first.problems)

    def other_problems() -> list[Problem]:
        return (svc_res.problems if svc_res else []) + (as_res.problems if as_res else [])

    if fatal:  # as the whole-file path: report every parse problem of every block, then raise
        sink.add(first)
        del first
        for raw, rows in frames:
            res = V.parse_table(raw, S.FLOWS, file=flows_file, rows=rows, seen=seen)
            del raw
            flow_problems.extend(p for p in res.problems if p.row is not None)
            sink.add(res)
        raise InventoryError(_sorted(flow_problems + other_problems()))

    svc_bad, services_frame, downstream = _services_table(svc_res, services_file, on_error, notes)

    usage: V.ServerUsage = {}
    derived_pairs: list[pd.DataFrame] = []
    defaults: dict[str, int] = {}

    def validate(res: V.TableResult, is_first: bool) -> None:
        V.fill_flow_defaults(res, downstream)
        V.apply_rules(res, V.FLOW_RULES, flows_file)
        if as_res is not None:
            V.server_usage(res, usage)
        if services_frame is None:
            pairs = pd.DataFrame(
                {
                    "resource_server": np.asarray(res.frame["resource_server"], dtype=object),
                    "binding": np.asarray(res.frame["binding"], dtype=np.int64),
                }
            ).drop_duplicates()
            derived_pairs.append(pairs)
            V.check_references(
                res, _derive_services(pairs), flows_file, services_file, services_derived=True
            )
        else:
            V.check_references(res, services_frame, flows_file, services_file)
        if not is_first:
            flow_problems.extend(p for p in res.problems if p.row is not None)
        for _, column, count in res.defaults:
            defaults[column] = defaults.get(column, 0) + count
        sink.add(res)

    validate(first, True)
    flow_problems[:] = list(first.problems)  # the first block's, incl. file-level ones
    aliases, unknown = first.aliases, first.unknown
    del first
    for raw, rows in frames:
        res = V.parse_table(raw, S.FLOWS, file=flows_file, rows=rows, seen=seen)
        del raw
        validate(res, False)
        del res

    as_bad = np.zeros(0, dtype=bool)
    servers_frame: pd.DataFrame | None = None
    servers_invalid: dict[str, npt.NDArray[np.bool_]] = {}
    if as_res is not None:
        V.fill_authorization_server_defaults(as_res, None, usage=usage)
        as_bad = _bad_rows(as_res)
        servers_frame = as_res.frame
        servers_invalid = dict(as_res.invalid)
        if on_error == "drop" and as_bad.any():
            servers_frame = servers_frame.loc[~as_bad].reset_index(drop=True)
            servers_invalid = {k: v[~as_bad] for k, v in servers_invalid.items()}
    if services_frame is None:
        pairs = pd.concat(derived_pairs, ignore_index=True)
        services_frame = _derived_services(pairs, flows_file, notes)
    derived_pairs.clear()
    if servers_frame is not None:
        for b in range(len(sink.starts)):
            check = sink.as_check(b)
            V.check_authorization_servers(
                check, servers_frame, flows_file, servers_file, servers_invalid
            )
            flow_problems.extend(check.problems)
            sink.mark_bad(b, check.invalid["authorization_server"] | check.invalid["binding"])

    problems = _sorted(flow_problems + other_problems())
    errors = [p for p in problems if p.severity == "error"]
    n_in = sink.n
    dropped: tuple[int, ...] = ()
    if on_error == "drop":
        dropped = tuple(sink.rows[sink.bad].tolist())
    else:
        services_frame = services_frame.reset_index(drop=True)
    typed_flows = sink.finish(drop=on_error == "drop")
    sink.fixed.clear()
    order = {name: i for i, name in enumerate(V.FLOW_DEFAULT_ORDER)}
    return _assemble(
        typed_flows=typed_flows,
        flows_in=n_in,
        flow_defaults=[
            ("flows", c, n)
            for c, n in sorted(defaults.items(), key=lambda kv: order.get(kv[0], len(order)))
        ],
        flow_aliases=aliases,
        flow_unknown=unknown,
        dropped_flow_rows=dropped,
        services_frame=services_frame,
        sides=sides,
        svc_bad=svc_bad,
        servers_frame=servers_frame,
        as_bad=as_bad,
        problems=problems,
        errors=errors,
        notes=notes,
        label=label,
        flows_file=flows_file,
        on_error=on_error,
    )


def _derived_services(pairs: pd.DataFrame, flows_file: str, notes: list[str]) -> pd.DataFrame:
    """Services derived from the flows' (resource_server, binding) pairs, noted as derived."""
    services = _derive_services(pairs)
    notes.append(
        f"no services file found next to {flows_file}: derived {len(services)} services "
        "from flows.resource_server (supports_bearer true, supports_mtls/supports_dpop true "
        "where a flow uses that binding, other columns at their documented defaults)"
    )
    return services


def _assemble(
    *,
    typed_flows: pd.DataFrame,
    flows_in: int,
    flow_defaults: Sequence[tuple[str, str, int]],
    flow_aliases: Sequence[Any],
    flow_unknown: Sequence[Any],
    dropped_flow_rows: tuple[int, ...],
    services_frame: pd.DataFrame,
    sides: _Sides,
    svc_bad: npt.NDArray[np.bool_],
    servers_frame: pd.DataFrame | None,
    as_bad: npt.NDArray[np.bool_],
    problems: tuple[Problem, ...],
    errors: Sequence[Problem],
    notes: list[str],
    label: str,
    flows_file: str,
    on_error: OnError,
) -> Inventory:
    """The report and the :class:`Inventory` from the validated tables: one place for both the
    whole-file and the block-by-block loader, so their results cannot drift apart."""
    if servers_frame is None:
        typed_servers = derive_authorization_servers(typed_flows)
        notes.append(_derived_as_note(flows_file, len(typed_servers)))
    else:
        typed_servers = _typed(servers_frame.reset_index(drop=True), S.AUTHORIZATION_SERVERS)
    drop = on_error == "drop"
    svc_res, as_res = sides.svc_res, sides.as_res
    report = ValidationReport(
        source=label,
        services_source=sides.services_file,
        flows_in=flows_in,
        flows_out=len(typed_flows),
        services_in=sides.services_in,
        services_out=len(services_frame),
        problems=problems,
        dropped_flow_rows=dropped_flow_rows,
        dropped_service_rows=tuple(svc_res.rows[svc_bad].tolist()) if drop and svc_res else (),
        defaults=tuple(
            [*flow_defaults]
            + (svc_res.defaults if svc_res else [])
            + (as_res.defaults if as_res else [])
        ),
        aliases=tuple(
            [*flow_aliases]
            + (svc_res.aliases if svc_res else [])
            + (as_res.aliases if as_res else [])
        ),
        unknown_columns=tuple(
            [*flow_unknown]
            + (svc_res.unknown if svc_res else [])
            + (as_res.unknown if as_res else [])
        ),
        services_derived=svc_res is None,
        notes=tuple(notes),
        authorization_servers_source=sides.servers_file,
        authorization_servers_in=sides.servers_in,
        authorization_servers_out=len(typed_servers),
        dropped_authorization_server_rows=(
            tuple(as_res.rows[as_bad].tolist()) if drop and as_res else ()
        ),
        authorization_servers_derived=as_res is None,
    )
    if errors and on_error == "raise":
        raise InventoryError(problems, report=report)
    return Inventory(
        flows=typed_flows,
        services=_typed(services_frame.reset_index(drop=True), S.SERVICES),
        source=label,
        report=report,
        authorization_servers=typed_servers,
    )


_TABLE_ORDER = {"services": 0, "authorization_servers": 1}


def _sorted(problems: Sequence[Problem]) -> tuple[Problem, ...]:
    """Problems in file order: services file first, then authorization servers, then flows; by
    row within a file (file-level first)."""
    return tuple(
        sorted(
            problems,
            key=lambda p: (_TABLE_ORDER.get(p.table, 2), p.row if p.row is not None else 0),
        )
    )


def _bad_rows(res: V.TableResult) -> npt.NDArray[np.bool_]:
    bad = np.zeros(len(res.frame), dtype=bool)
    for mask in res.invalid.values():
        bad |= mask
    return bad


def _drop_services(
    frame: pd.DataFrame, bad: npt.NDArray[np.bool_], notes: list[str]
) -> pd.DataFrame:
    dropped = set(frame.loc[bad, "service_id"])
    kept = frame.loc[~bad].reset_index(drop=True)
    down = kept["downstream"].to_numpy(dtype=object)
    pruned = np.array(
        [";".join(x for x in str(d).split(";") if x and x not in dropped) for d in down],
        dtype=object,
    )
    changed = int((pruned != down).sum())
    if changed:
        notes.append(f"removed calls to dropped services from {changed} downstream lists")
    kept["downstream"] = pruned
    return kept


# --- generating and writing ------------------------------------------------------------------


def generate_inventory(
    profile: str | Profile = DEFAULT_PROFILE,
    n_flows: int = DEFAULT_FLOWS,
    *,
    seed: int = DEFAULT_SEED,
) -> Inventory:
    """A synthetic inventory for an organisation ``profile`` (see :data:`PROFILES`).

    Same (profile, n_flows, seed) ⇒ byte-identical output. ``n_flows`` must lie in
    100..1,000,000. Consistency rules of the validator hold by construction.
    """
    prof = get_profile(profile)
    flows, services, servers = generate_frames(prof, n_flows, seed)
    return Inventory(
        flows=_typed(flows, S.FLOWS),
        services=_typed(services, S.SERVICES),
        source=f"generated:{prof.name}:n={n_flows}:seed={seed}:v{GENERATOR_VERSION}",
        report=None,
        authorization_servers=_typed(servers, S.AUTHORIZATION_SERVERS),
    )


def _csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == bool:
            out[name] = np.where(out[name].to_numpy(), "true", "false")
    return out


def table_bytes(frame: pd.DataFrame) -> bytes:
    """Canonical CSV bytes of a typed table (LF line ends, booleans as true/false)."""
    text: str = _csv_frame(frame).to_csv(index=False, lineterminator="\n")
    return text.encode("utf-8")


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (temp + os.replace), creating missing folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic.atomic_write_bytes(path, data, mode=mode)


def write_inventory(
    inventory: Inventory,
    out_dir: str | os.PathLike[str],
    *,
    fmt: Literal["csv", "parquet"] = "csv",
    provenance: pd.DataFrame | None = None,
) -> tuple[Path, Path]:
    """Write ``flows.<fmt>``, ``services.<fmt>`` and ``authorization_servers.<fmt>`` (and
    ``provenance.csv`` when given) into ``out_dir`` as one set: every table is rendered and
    written before any file is replaced, so a failure leaves the old set whole
    (:func:`tokenlib._atomic.atomic_file_set`). Returns the paths of the flows and services
    files (the others are beside them, where :func:`load_inventory` finds them)."""
    if fmt not in ("csv", "parquet"):
        raise ValueError("fmt must be 'csv' or 'parquet'")
    out = Path(out_dir)
    names = (f"flows.{fmt}", f"services.{fmt}", f"authorization_servers.{fmt}")
    frames = (inventory.flows, inventory.services, inventory.authorization_servers)
    with _atomic.atomic_file_set(out) as stage:
        for frame, name in zip(frames, names, strict=True):
            if fmt == "csv":
                data = table_bytes(frame)
            else:
                buf = io.BytesIO()
                frame.to_parquet(buf, index=False)
                data = buf.getvalue()
            stage(name).write_bytes(data)
        if provenance is not None:
            write_provenance(provenance, stage(PROVENANCE_FILE))
    return out / names[0], out / names[1]


# --- derived features -------------------------------------------------------------------------


def path_features(flows: pd.DataFrame) -> pd.DataFrame:
    """Per-flow path features (vectorised over distinct paths).

    ``n_hops``; ``n_terminating`` (terminate + terminate_forward_cert);
    ``n_terminate_no_forward``; ``n_forward_cert``; ``all_passthrough`` (no terminating hop,
    including direct); ``client_path``: browser (browser_spa), mobile (mobile_app), else
    gateway_terminated if any hop terminates TLS, else backend_e2e (end-to-end TLS).
    A missing path counts as direct; a malformed one raises ``ValueError``.
    """
    return _paths.features(flows)


def exposure_matrix(flows: pd.DataFrame) -> pd.DataFrame:
    """Boolean matrix: one column per exposure channel, True where the flow lists it."""
    return pd.DataFrame(_paths.channel_matrix(flows), index=flows.index)


def summary(inventory: Inventory) -> dict[str, Any]:
    """Counts by client kind, client path, binding, environment and authorization server (and
    the enforced share of bound flows)."""
    flows = inventory.flows
    feats = path_features(flows)

    def counts(series: pd.Series) -> dict[str, int]:
        vc = series.value_counts(sort=False)
        return {str(k): int(v) for k, v in vc.items()}

    bound = flows["binding"].astype(str) != "bearer"
    return {
        "source": inventory.source,
        "n_flows": len(flows),
        "n_clients": int(flows["client_id"].nunique()),
        "n_services": len(inventory.services),
        "n_authorization_servers": len(inventory.authorization_servers),
        "by_client_kind": counts(flows["client_kind"]),
        "by_client_path": counts(feats["client_path"]),
        "by_binding": counts(flows["binding"]),
        "by_environment": counts(flows["environment"]),
        "by_authorization_server": (
            counts(flows["authorization_server"])
            if "authorization_server" in flows.columns
            else {S.DEFAULT_AS_ID: len(flows)}
        ),
        "binding_enforced_share": float(flows.loc[bound, "binding_enforced"].mean())
        if bound.any()
        else 0.0,
        "terminating_path_share": float((feats["n_terminating"] > 0).mean()) if len(flows) else 0.0,
    }


def provenance(profile: str, n_flows: int, seed: int) -> Mapping[str, str]:
    """How the bundled inventory was produced (recorded in data/README.md)."""
    return {
        "generator": f"tokenlib.analysis.inventory v{GENERATOR_VERSION}",
        "profile": profile,
        "n_flows": str(n_flows),
        "seed": str(seed),
        "schema": S.SCHEMA_VERSION,
        "command": (
            f"python -m tokenlib.analysis.inventory bundle --profile {profile} "
            f"--flows {n_flows} --seed {seed}"
        ),
    }


if __name__ == "__main__":  # pragma: no cover - exercised via the CLI tests
    from tokenlib.analysis._inventory_cli import main

    raise SystemExit(main())
