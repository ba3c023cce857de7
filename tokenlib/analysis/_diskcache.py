"""A small content-addressed disk cache for expensive analysis results (DataFrames).

The report's notebooks each run in their own kernel and several of them ask for the same
costly results (joint-uncertainty draws); a second ``make report`` asks for all of them again.
:func:`cached` stores such a result on disk once and hands it back to every later caller with
the same inputs.

* **Off by default.** Active only when the environment variable :data:`ENV_VAR`
  (``TOKENLIB_CACHE_DIR``) names a folder; otherwise :func:`cached` just calls the function.
* **Content-addressed.** The key is a SHA-256 over the result's name, ``tokenlib.__version__``,
  a fingerprint of the code and data the results depend on (every ``tokenlib/analysis/**/*.py``
  file, the bundled ``data/reference/*.csv`` tables and the pandas, NumPy and pyarrow versions;
  computed once per process) and every key part: DataFrames by
  :func:`pandas.util.hash_pandas_object` (index included) plus their column names, dtypes and
  categories, :class:`~tokenlib.analysis.params.ModelParameters` by their sorted values,
  numbers, strings, ``None`` and containers of them by ``repr``. A key part whose ``repr``
  names a memory address (a function, an arbitrary object) cannot be keyed: the call is then
  not cached at all.
* **No code in a cache file.** An entry is a Parquet file (the frame) and a JSON sidecar (the
  frame's ``attrs``, the key and the Parquet file's SHA-256); nothing is unpickled. An entry
  that is missing, unreadable, corrupt or of another format is ignored and recomputed. A result
  is stored only if it reads back identical (:func:`pandas.testing.assert_frame_equal`, exact,
  dtypes and categories included) and its ``attrs`` are JSON values or NumPy arrays of them.
* **Atomic and bounded.** Files are written atomically (:mod:`tokenlib._atomic`), mode 0600;
  entries unused for :data:`MAX_AGE_S` (30 days) go first, then the least recently used until
  the folder holds at most :data:`MAX_BYTES` (200 MB) of entries. Only files named like an
  entry are ever removed. Failing to write (read-only or full disk) only costs the speed-up.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import tokenlib
from tokenlib._atomic import atomic_path, atomic_write_text
from tokenlib.analysis.params import ModelParameters, reference_dir

__all__ = [
    "ENV_VAR",
    "FORMAT",
    "MAX_AGE_S",
    "MAX_BYTES",
    "UNKEYABLE",
    "cache_dir",
    "cache_key",
    "cached",
    "code_fingerprint",
    "prune",
]

#: Environment variable naming the cache folder; unset or empty: no caching.
ENV_VAR = "TOKENLIB_CACHE_DIR"
#: Version of the on-disk layout (part of every sidecar; another value is a miss).
FORMAT = 1
#: Entries not used for this many seconds are removed (30 days).
MAX_AGE_S = 30 * 24 * 3600.0
#: Total size the entries may take; beyond it the least recently used go first (200 MB).
MAX_BYTES = 200 * 1024 * 1024
#: Temporary files of an interrupted write older than this are removed (1 hour).
_STALE_TMP_S = 3600.0

_log = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ENTRY = re.compile(r"^(?P<name>[a-z][a-z0-9_]{0,63})\.(?P<key>[0-9a-f]{64})\.(?:parquet|json)$")
_TMP = re.compile(r"^\.[a-z][a-z0-9_]{0,63}\.[0-9a-f]{64}\.(?:parquet|json)\..+\.tmp$")
_ANALYSIS_DIR = Path(__file__).resolve().parent
# True while a cached function computes: the calls it makes are not cached themselves (the
# outer result is, so storing every inner one would only cost time and space).
_COMPUTING: contextvars.ContextVar[bool] = contextvars.ContextVar("_COMPUTING", default=False)


class _Uncacheable(Exception):
    """A key part or a result the cache cannot represent faithfully."""


class _Unkeyable:
    def __repr__(self) -> str:
        return "UNKEYABLE"


#: A key part that makes the call uncached (for an argument with no stable key, such as an
#: object holding functions).
UNKEYABLE = _Unkeyable()


def cache_dir() -> Path | None:
    """The cache folder named by :data:`ENV_VAR`, or ``None`` (caching off)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    return Path(raw).expanduser() if raw else None


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 of the code and data the cached results depend on (once per process).

    Every ``tokenlib/analysis/**/*.py`` file and every bundled ``data/reference/*.csv`` table
    (relative path and bytes), plus ``tokenlib.__version__`` and the pandas, NumPy and pyarrow
    versions (Parquet and hashing behaviour).
    """
    import pyarrow

    h = hashlib.sha256()
    versions = (tokenlib.__version__, pd.__version__, np.__version__, pyarrow.__version__)
    h.update(repr(versions).encode())
    files = [(p.relative_to(_ANALYSIS_DIR).as_posix(), p) for p in _ANALYSIS_DIR.rglob("*.py")]
    ref = reference_dir()
    if ref.is_dir():
        files += [(f"data/reference/{p.name}", p) for p in ref.glob("*.csv")]
    for rel, path in sorted(files):
        data = path.read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _frame_digest(df: pd.DataFrame) -> bytes:
    h = hashlib.sha256()
    h.update(repr((df.shape, list(df.columns), list(df.index.names))).encode())
    h.update(repr([str(t) for t in df.dtypes]).encode())
    for col in df.columns:
        dtype = df[col].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            h.update(repr((col, bool(dtype.ordered), list(dtype.categories))).encode())
    if isinstance(df.index.dtype, pd.CategoricalDtype):
        h.update(repr(list(df.index.dtype.categories)).encode())
    try:
        rows = pd.util.hash_pandas_object(df, index=True)
    except TypeError as exc:  # unhashable cells (lists, dicts)
        raise _Uncacheable(f"frame cells cannot be hashed: {exc}") from None
    h.update(np.ascontiguousarray(rows.to_numpy(dtype=np.uint64)).tobytes())
    return h.digest()


def _part_bytes(part: object) -> bytes:
    """A canonical, type-tagged encoding of one key part (raises :class:`_Uncacheable`)."""
    if part is UNKEYABLE:
        raise _Uncacheable("an argument has no stable key")
    if isinstance(part, pd.DataFrame):
        return b"frame:" + _frame_digest(part)
    if isinstance(part, pd.Series):
        return b"series:" + _frame_digest(part.to_frame(name="__series__"))
    if isinstance(part, ModelParameters):
        return b"params:" + repr(sorted(part.as_dict().items())).encode()
    if part is None or isinstance(part, bool | int | float | str | bytes | np.generic):
        return f"{type(part).__name__}:{part!r}".encode()
    if isinstance(part, list | tuple):
        inner = b"".join(_length_prefixed(_part_bytes(x)) for x in part)
        return f"{type(part).__name__}[{len(part)}]:".encode() + inner
    if isinstance(part, dict):
        items = sorted(((repr(k), v) for k, v in part.items()), key=lambda kv: kv[0])
        inner = b"".join(_length_prefixed(k.encode() + b"=" + _part_bytes(v)) for k, v in items)
        return f"dict[{len(items)}]:".encode() + inner
    text = repr(part)
    if " at 0x" in text or text.startswith("<"):
        raise _Uncacheable(f"key part {type(part).__name__} has no stable repr")
    return f"{type(part).__module__}.{type(part).__qualname__}:{text}".encode()


def _length_prefixed(data: bytes) -> bytes:
    return f"{len(data)}:".encode() + data


def cache_key(name: str, key_parts: Sequence[object]) -> str:
    """The hex SHA-256 key of ``name`` and ``key_parts`` (module docstring).

    Raises ``ValueError`` for a bad name and :class:`_Uncacheable` (internal) for a key part
    without a stable representation.
    """
    if not _NAME.match(name):
        raise ValueError(f"cache name must match {_NAME.pattern}, got {name!r}")
    h = hashlib.sha256()
    for piece in (f"tokenlib-diskcache/{FORMAT}", name, tokenlib.__version__, code_fingerprint()):
        h.update(_length_prefixed(piece.encode()))
    for part in key_parts:
        h.update(_length_prefixed(_part_bytes(part)))
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# attrs <-> JSON
# --------------------------------------------------------------------------------------------


def _json_value(value: object) -> Any:
    """``value`` as JSON data (NumPy arrays tagged); :class:`_Uncacheable` when not possible."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float) and not isinstance(value, np.generic):
        if isinstance(value, float) and not math.isfinite(value):
            raise _Uncacheable("non-finite float in attrs")
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            items = value.tolist()
            flat = np.asarray(value, dtype=object).ravel().tolist()
            if not all(isinstance(x, str) for x in flat):
                raise _Uncacheable("object array in attrs holds non-strings")
            return {"__ndarray__": {"dtype": "object", "shape": list(value.shape), "v": items}}
        if value.dtype.kind in "biuf" and (value.dtype.kind != "f" or np.isfinite(value).all()):
            return {
                "__ndarray__": {
                    "dtype": value.dtype.str,
                    "shape": list(value.shape),
                    "v": value.tolist(),
                }
            }
        raise _Uncacheable(f"array of dtype {value.dtype} in attrs")
    if isinstance(value, list):
        return [_json_value(x) for x in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        if "__ndarray__" in value:
            raise _Uncacheable("reserved key in attrs")
        return {k: _json_value(v) for k, v in value.items()}
    raise _Uncacheable(f"attrs value of type {type(value).__name__}")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(x) for x in value]
    if isinstance(value, dict):
        spec = value.get("__ndarray__")
        if isinstance(spec, dict):
            dtype = object if spec["dtype"] == "object" else np.dtype(spec["dtype"])
            arr = np.array(spec["v"], dtype=dtype)
            return arr.reshape(tuple(spec["shape"]))
        return {k: _from_json(v) for k, v in value.items()}
    return value


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------


def _paths(root: Path, name: str, key: str) -> tuple[Path, Path]:
    stem = f"{name}.{key}"
    return root / f"{stem}.parquet", root / f"{stem}.json"


def _load(root: Path, name: str, key: str) -> pd.DataFrame | None:
    """The stored frame of ``key``, or ``None`` when absent, unreadable or corrupt."""
    data_path, meta_path = _paths(root, name, key)
    if not meta_path.is_file() or not data_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not (
            isinstance(meta, dict)
            and meta.get("format") == FORMAT
            and meta.get("name") == name
            and meta.get("key") == key
        ):
            raise ValueError("sidecar of another format or entry")
        data = data_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("parquet_sha256"):
            raise ValueError("parquet digest does not match its sidecar")
        df = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        attrs = _from_json(meta.get("attrs", {}))
        if not isinstance(attrs, dict):
            raise ValueError("attrs are not a mapping")
        df.attrs = attrs
    except Exception as exc:  # any unreadable entry is a miss, never an error
        _log.debug("tokenlib cache: ignoring entry %s (%s)", meta_path.name, exc)
        return None
    now = time.time()
    for p in (data_path, meta_path):
        try:
            os.utime(p, (now, now))  # least recently *used* is pruned first
        except OSError:
            _log.debug("tokenlib cache: could not touch %s", p.name)
    return df


def _serialise(result: pd.DataFrame) -> tuple[bytes, Any]:
    """Parquet bytes and JSON attrs of ``result``, checked to read back identical."""
    if not all(isinstance(c, str) for c in result.columns):
        raise _Uncacheable("non-string column names")
    attrs = _json_value(dict(result.attrs))
    plain = result.copy(deep=False)
    plain.attrs = {}  # attrs go to the sidecar, not to pandas' own Parquet metadata
    buf = io.BytesIO()
    plain.to_parquet(buf, engine="pyarrow")  # a RangeIndex as metadata, any other as columns
    data = buf.getvalue()
    back = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    try:
        pd.testing.assert_frame_equal(
            back, plain, check_exact=True, check_index_type=True, check_column_type=True
        )
    except AssertionError as exc:
        raise _Uncacheable(f"frame does not survive parquet: {exc}") from None
    if not _same(_from_json(json.loads(json.dumps(attrs))), dict(result.attrs)):
        raise _Uncacheable("attrs do not survive JSON")
    return data, attrs


def _store(root: Path, name: str, key: str, result: pd.DataFrame) -> None:
    data, attrs = _serialise(result)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_path, meta_path = _paths(root, name, key)
    with atomic_path(data_path, mode=0o600) as tmp:
        tmp.write_bytes(data)
    meta = {
        "format": FORMAT,
        "name": name,
        "key": key,
        "tokenlib": tokenlib.__version__,
        "created": time.time(),
        "parquet_sha256": hashlib.sha256(data).hexdigest(),
        "attrs": attrs,
    }
    atomic_write_text(meta_path, json.dumps(meta, allow_nan=False), mode=0o600)


@dataclass
class _Entry:
    paths: list[Path]
    size: int = 0
    used: float = 0.0


def prune(
    root: Path,
    *,
    max_age_s: float = MAX_AGE_S,
    max_bytes: int = MAX_BYTES,
    now: float | None = None,
) -> list[str]:
    """Remove entries unused for ``max_age_s``, then the least recently used until the entries
    take at most ``max_bytes``; also temp files of interrupted writes older than an hour.
    Only files named like an entry are touched. Return the removed entries' stems."""
    t = time.time() if now is None else now
    entries: dict[str, _Entry] = {}
    try:
        listing = list(root.iterdir())
    except OSError:
        return []
    for p in listing:
        try:
            st = p.stat()
        except OSError:
            continue
        if _TMP.match(p.name):
            if t - st.st_mtime > _STALE_TMP_S:
                p.unlink(missing_ok=True)
            continue
        m = _ENTRY.match(p.name)
        if m is None:
            continue
        e = entries.setdefault(f"{m['name']}.{m['key']}", _Entry([]))
        e.paths.append(p)
        e.size += st.st_size
        e.used = max(e.used, st.st_mtime)
    removed: list[str] = []
    total = sum(e.size for e in entries.values())
    for stem, e in sorted(entries.items(), key=lambda kv: kv[1].used):
        if t - e.used <= max_age_s and total <= max_bytes:
            continue
        for p in e.paths:
            try:
                p.unlink(missing_ok=True)
            except OSError:
                _log.debug("tokenlib cache: could not remove %s", p.name)
        total -= e.size
        removed.append(stem)
    return removed


def cached(
    name: str, fn: Callable[[], pd.DataFrame], *, key_parts: Sequence[object]
) -> pd.DataFrame:
    """``fn()``, from the disk cache when :data:`ENV_VAR` is set and an entry for ``name`` and
    ``key_parts`` exists (module docstring); otherwise computed and, when possible, stored.

    ``key_parts`` must list everything that influences the result besides the code (frames,
    parameters, draws, seed, options). Caching off, an unkeyable key part or a result that
    cannot be stored faithfully all fall back to calling ``fn`` -- never to a wrong result.
    Calls made while another cached function computes are not cached (only the outer result).
    """
    root = cache_dir()
    if root is None or _COMPUTING.get():
        return fn()
    try:
        key = cache_key(name, key_parts)
    except _Uncacheable as exc:
        _log.debug("tokenlib cache: %s not cached (%s)", name, exc)
        return fn()
    hit = _load(root, name, key)
    if hit is not None:
        _log.debug("tokenlib cache: %s hit", name)
        return hit
    token = _COMPUTING.set(True)
    try:
        result = fn()
    finally:
        _COMPUTING.reset(token)
    try:
        _store(root, name, key, result)
        prune(root)
    except Exception as exc:  # unstorable result, pyarrow or disk error: only the speed-up lost
        _log.debug("tokenlib cache: %s not stored (%s: %s)", name, type(exc).__name__, exc)
    return result
