"""Tests for tokenlib.analysis._diskcache: the content-addressed disk cache of analysis results."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from tokenlib.analysis import _diskcache as dc
from tokenlib.analysis.controls import CONTROLS, control_effects
from tokenlib.analysis.headline import headline_numbers
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.recommend import recommend
from tokenlib.analysis.sensitivity import conclusion_robustness

try:
    from tests.analysis.conftest_models import random_inventory
except ImportError:  # pragma: no cover
    from conftest_models import random_inventory  # type: ignore[no-redef,import-not-found,unused-ignore]

P0 = ModelParameters.from_reference()
FLOWS, SERVICES = random_inventory(60, seed=3, n_services=6)


class Counter:
    """A result function that counts its calls."""

    def __init__(self, make: Callable[[], pd.DataFrame]) -> None:
        self.make = make
        self.calls = 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        return self.make()


def sample() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "mechanism": pd.Categorical(["dpop", "mtls", "dpop"], categories=["mtls", "dpop", "x"]),
            "level": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True),
            "value": [0.25, np.nan, 1.0],
            "count": np.array([1, 2, 3], dtype=np.int64),
            "ok": [True, False, True],
            "text": ["a", "", "=cmd"],
        },
        index=pd.Index([10, 20, 30], name="row"),
    )
    df.attrs["model_choice"] = np.array(["mtls", "bearer", "dpop"], dtype=object)
    df.attrs["meta"] = {"draws": 5, "note": "x", "shares": [0.5, 1.0]}
    return df


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(dc.ENV_VAR, str(root))
    return root


def entry_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def test_off_without_the_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dc.ENV_VAR, raising=False)
    fn = Counter(sample)
    for _ in range(3):
        pd.testing.assert_frame_equal(dc.cached("t", fn, key_parts=(FLOWS, 1)), sample())
    assert fn.calls == 3
    monkeypatch.setenv(dc.ENV_VAR, "")
    dc.cached("t", fn, key_parts=(1,))
    assert fn.calls == 4
    assert dc.cache_dir() is None


def test_second_call_is_a_hit_with_categoricals_index_and_attrs(cache: Path) -> None:
    fn = Counter(sample)
    first = dc.cached("t", fn, key_parts=(FLOWS, P0, 5, "today"))
    second = dc.cached("t", fn, key_parts=(FLOWS, P0, 5, "today"))
    assert fn.calls == 1
    fresh = sample()
    pd.testing.assert_frame_equal(first, fresh, check_exact=True)
    pd.testing.assert_frame_equal(second, fresh, check_exact=True, check_index_type=True)
    assert list(second["mechanism"].cat.categories) == ["mtls", "dpop", "x"]
    assert second["level"].cat.ordered
    np.testing.assert_array_equal(second.attrs["model_choice"], fresh.attrs["model_choice"])
    assert second.attrs["model_choice"].dtype == object
    assert second.attrs["meta"] == fresh.attrs["meta"]
    # the hit is a fresh object: changing it does not change the next hit
    second.loc[10, "value"] = 99.0
    assert dc.cached("t", fn, key_parts=(FLOWS, P0, 5, "today")).loc[10, "value"] == 0.25


def test_stored_files_are_parquet_and_json_only(cache: Path) -> None:
    dc.cached("t", sample, key_parts=(1,))
    files = entry_files(cache)
    assert sorted(p.suffix for p in files) == [".json", ".parquet"]
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp file left
    parquet = next(p for p in files if p.suffix == ".parquet")
    assert parquet.read_bytes()[:4] == b"PAR1"
    meta = json.loads(next(p for p in files if p.suffix == ".json").read_text())
    assert meta["format"] == dc.FORMAT
    assert (parquet.stat().st_mode & 0o777) == 0o600


def test_changed_frame_parameter_or_argument_misses(cache: Path) -> None:
    fn = Counter(sample)
    base = (FLOWS, SERVICES, P0, None, 5, 0, "today")
    dc.cached("t", fn, key_parts=base)
    changed = FLOWS.copy()
    changed.loc[changed.index[0], "access_token_lifetime_s"] += 1
    retyped = FLOWS.copy()
    col = next(c for c in FLOWS.columns if isinstance(FLOWS[c].dtype, pd.CategoricalDtype))
    retyped[col] = retyped[col].cat.add_categories(["zz-new"])  # same values, other categories
    reindexed = FLOWS.set_index(FLOWS.index + 1)
    variants = [
        (changed, *base[1:]),
        (retyped, *base[1:]),
        (reindexed, *base[1:]),
        (FLOWS, SERVICES.iloc[:-1], *base[2:]),
        (*base[:2], P0.replace(rho_jwt=P0.rho_jwt / 2), *base[3:]),
        (*base[:4], 6, 0, "today"),
        (*base[:5], 1, "today"),
        (*base[:6], "upgraded"),
        (*base[:3], FLOWS, *base[4:]),
    ]
    for i, parts in enumerate(variants, start=2):
        dc.cached("t", fn, key_parts=parts)
        assert fn.calls == i, f"variant {i - 2} did not miss"
    dc.cached("other", fn, key_parts=base)  # another name
    assert fn.calls == len(variants) + 2
    dc.cached("t", fn, key_parts=(FLOWS.copy(), SERVICES.copy(), *base[2:]))  # equal copies hit
    assert fn.calls == len(variants) + 2


def test_unkeyable_parts_and_unstorable_results_are_computed_every_time(cache: Path) -> None:
    fn = Counter(sample)
    for _ in range(2):
        dc.cached("t", fn, key_parts=(lambda: 1,))
        dc.cached("t", fn, key_parts=(dc.UNKEYABLE,))
    assert fn.calls == 4
    odd = Counter(lambda: sample().assign(cell=[[1], [2], [3]]))  # list cells: not parquet-exact
    attrs = Counter(lambda: sample().pipe(lambda d: d.attrs.update(fn=print) or d))
    for f in (odd, attrs):
        for _ in range(2):
            dc.cached("u", f, key_parts=(1,))
        assert f.calls == 2
    assert not cache.exists() or not entry_files(cache)


@pytest.mark.parametrize("damage", ["truncate", "flip", "json", "delete_json", "wrong_key"])
def test_corrupt_entry_is_recomputed(cache: Path, damage: str) -> None:
    fn = Counter(sample)
    dc.cached("t", fn, key_parts=(7,))
    parquet = next(cache.glob("*.parquet"))
    meta = next(cache.glob("*.json"))
    data = parquet.read_bytes()
    if damage == "truncate":
        parquet.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        mid = len(data) // 2
        parquet.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :])
    elif damage == "json":
        meta.write_text("{not json")
    elif damage == "delete_json":
        meta.unlink()
    else:
        m = json.loads(meta.read_text())
        m["key"] = "0" * 64
        meta.write_text(json.dumps(m))
    out = dc.cached("t", fn, key_parts=(7,))
    assert fn.calls == 2
    pd.testing.assert_frame_equal(out, sample())
    dc.cached("t", fn, key_parts=(7,))  # rewritten: a hit again
    assert fn.calls == 2


def _age(paths: list[Path], seconds: float) -> None:
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t))


def test_pruning_by_age_and_size(cache: Path) -> None:
    for i in range(4):
        dc.cached("t", sample, key_parts=(i,))
    stems = [f"t.{dc.cache_key('t', (i,))}" for i in range(4)]
    files = {s: sorted(cache.glob(f"{s}.*")) for s in stems}
    assert all(len(f) == 2 for f in files.values())
    for i, age in ((0, dc.MAX_AGE_S + 1), (1, 30), (2, 20), (3, 10)):
        _age(files[stems[i]], age)
    unrelated = cache / "keep-me.txt"
    unrelated.write_text("not an entry")
    _age([unrelated], dc.MAX_AGE_S * 2)
    stale_tmp = cache / f".t.{'0' * 64}.parquet.abc.tmp"
    stale_tmp.write_bytes(b"partial")
    _age([stale_tmp], 7200)
    fresh_tmp = cache / f".t.{'1' * 64}.parquet.abc.tmp"
    fresh_tmp.write_bytes(b"being written")

    assert dc.prune(cache) == [stems[0]]  # unused for more than 30 days
    assert not stale_tmp.exists()
    assert fresh_tmp.exists()
    assert unrelated.exists()

    size = sum(p.stat().st_size for s in stems[1:] for p in files[s])
    assert dc.prune(cache, max_bytes=size - 1) == [stems[1]]  # over budget: the oldest goes
    # a hit counts as a use: entry 2 becomes the most recently used
    fn = Counter(sample)
    dc.cached("t", fn, key_parts=(2,))
    assert fn.calls == 0
    assert dc.prune(cache, max_bytes=1) == [stems[3], stems[2]]
    assert entry_files(cache) == [unrelated]


def test_unwritable_cache_still_returns_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(dc.ENV_VAR, str(blocker / "cache"))
    fn = Counter(sample)
    pd.testing.assert_frame_equal(dc.cached("t", fn, key_parts=(1,)), sample())
    dc.cached("t", fn, key_parts=(1,))
    assert fn.calls == 2


def test_bad_name_is_rejected(cache: Path) -> None:
    with pytest.raises(ValueError, match="cache name"):
        dc.cached("../x", sample, key_parts=())


# -- the wrapped analysis functions ----------------------------------------------------------


def _twice(
    call: Callable[[], pd.DataFrame], monkeypatch: pytest.MonkeyPatch, target: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Call twice with the cache on; the second call must not compute (``target`` patched)."""
    first = call()
    module, name = target.rsplit(".", 1)
    mod = __import__(module, fromlist=[name])

    def boom(*args: object, **kwargs: object) -> pd.DataFrame:
        raise AssertionError(f"{target} recomputed on a cache hit")

    with monkeypatch.context() as m:
        m.setattr(mod, name, boom)
        second = call()
    return first, second


def _fresh(call: Callable[[], pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    with monkeypatch.context() as m:
        m.delenv(dc.ENV_VAR)
        return call()


@pytest.mark.parametrize(
    ("target", "call"),
    [
        (
            "tokenlib.analysis.recommend._recommend",
            lambda: recommend(FLOWS, SERVICES, P0, draws=3, seed=1),
        ),
        (
            "tokenlib.analysis.controls._control_effects",
            lambda: control_effects(FLOWS, SERVICES, P0, controls=[c.id for c in CONTROLS[:3]]),
        ),
        (
            "tokenlib.analysis.sensitivity._conclusion_robustness",
            lambda: conclusion_robustness(
                FLOWS,
                SERVICES,
                P0,
                draws=3,
                conclusions=iter(
                    ["token_binding_removes_nothing", "dpop_beats_bearer_browser_mobile"]
                ),
            ),
        ),
        (
            "tokenlib.analysis.headline._headline_numbers",
            lambda: headline_numbers(FLOWS, SERVICES, P0, draws=2, slow_draws=1),
        ),
    ],
)
def test_wrapped_functions_hit_and_equal_a_fresh_result(
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    call: Callable[[], pd.DataFrame],
) -> None:
    first, second = _twice(call, monkeypatch, target)
    fresh = _fresh(call, monkeypatch)
    pd.testing.assert_frame_equal(first, fresh, check_exact=True)
    pd.testing.assert_frame_equal(second, fresh, check_exact=True, check_index_type=True)
    assert set(second.attrs) == set(fresh.attrs)
    for k, v in fresh.attrs.items():
        np.testing.assert_array_equal(second.attrs[k], v)
    assert {p.suffix for p in entry_files(cache)} == {".parquet", ".json"}


def test_recommend_keys_on_draws_and_seed(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recommend(FLOWS, SERVICES, P0, draws=2, seed=1)
    n = len(entry_files(cache))
    recommend(FLOWS, SERVICES, P0, draws=2, seed=2)
    recommend(FLOWS, SERVICES, P0, draws=3, seed=1)
    recommend(FLOWS, SERVICES, P0.replace(rho_jwt=0.1), draws=2, seed=1)
    assert len(entry_files(cache)) == n + 6


def test_control_objects_are_keyed_only_when_registered(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    registered = CONTROLS[0]
    control_effects(FLOWS, SERVICES, P0, controls=[registered])
    n = len(entry_files(cache))
    assert n == 2

    def never(
        f: pd.DataFrame, s: pd.DataFrame, a: pd.DataFrame, p: ModelParameters | None = None
    ) -> npt.NDArray[np.bool_]:
        return np.zeros(len(f), dtype=bool)

    custom = dataclasses.replace(registered, applies=never)
    out = control_effects(FLOWS, SERVICES, P0, controls=[custom])
    assert len(entry_files(cache)) == n  # not cached (its functions have no key)
    assert not out["applicable"].any()


def test_calls_inside_a_cached_computation_are_not_cached(cache: Path) -> None:
    inner = Counter(sample)

    def outer() -> pd.DataFrame:
        dc.cached("inner", inner, key_parts=(1,))
        return dc.cached("inner", inner, key_parts=(1,))

    dc.cached("outer", outer, key_parts=(1,))
    assert inner.calls == 2
    assert [p.name.split(".")[0] for p in entry_files(cache)] == ["outer", "outer"]
    dc.cached("inner", inner, key_parts=(1,))  # at top level it is cached
    dc.cached("inner", inner, key_parts=(1,))
    assert inner.calls == 3


def test_recommend_without_draws_is_not_cached(cache: Path) -> None:
    recommend(FLOWS, SERVICES, P0, draws=0)
    recommend(FLOWS, SERVICES, P0, draws=5, parameter_draws=[])
    assert not cache.exists() or not entry_files(cache)
    recommend(FLOWS, SERVICES, P0, draws=0, parameter_draws=[P0, P0.replace(rho_jwt=0.2)])
    assert len(entry_files(cache)) == 2
