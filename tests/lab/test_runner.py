"""The live lab end to end: the scenario table matches the expected outcomes, and
everything (servers, proxies, Redis, temp files) is gone afterwards, also on error."""

from __future__ import annotations

import math
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tokenlib.lab.proxy import PROXY_MODES
from tokenlib.lab.runner import (
    ATTACKS,
    BINDINGS,
    COLUMNS,
    LabEnvironment,
    check_outcomes,
    expected_outcomes,
    plot_lab,
    run_lab,
)

HAS_REDIS = shutil.which("redis-server") is not None


def _lab_threads() -> set[threading.Thread]:
    """Live server/proxy threads (other test modules may hold their own; compare sets)."""
    return {t for t in threading.enumerate() if t.name.startswith("tokenlib-")}


def _children() -> set[int]:
    """PIDs of this process's live child processes (Linux /proc; empty elsewhere)."""
    pids: set[int] = set()
    for path in Path("/proc/self/task").glob("*/children"):
        pids.update(int(p) for p in path.read_text().split())
    return pids


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return True
        return False


# -- expectations (fast, no servers) ---------------------------------------------------------


def test_expected_outcomes_state_the_claims() -> None:
    table = expected_outcomes(redis=True).set_index(
        ["replay_cache", "binding", "proxy_mode", "attack"]
    )["expected_accepted"]
    mem = "per_instance_memory"
    for mode in PROXY_MODES:
        assert table[(mem, "mtls", mode, "baseline")] == (mode != "terminate")
        assert table[(mem, "mtls", mode, "header_injection")] == (mode == "misconfigured_forward")
        assert table[(mem, "dpop", mode, "baseline")]
        assert table[(mem, "bearer", mode, "stolen_token")]
        assert not table[(mem, "dpop", mode, "stolen_token")]
        assert table[(mem, "dpop", mode, "proof_replay_cross_instance")]
        assert not table[("shared_redis", "dpop", mode, "proof_replay_cross_instance")]
    assert len(expected_outcomes(redis=False)) == sum(map(len, ATTACKS.values())) * len(PROXY_MODES)


def test_check_outcomes_reports_each_mismatch() -> None:
    frame = expected_outcomes(redis=False).assign(status=200, error=None)
    frame["accepted"] = frame["expected_accepted"]
    assert check_outcomes(frame) == []
    frame.loc[0, "accepted"] = not frame.loc[0, "expected_accepted"]
    lines = check_outcomes(frame)
    assert len(lines) == 1
    assert lines[0].startswith("per_instance_memory/bearer/passthrough/baseline")


def test_required_redis_missing_fails_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _lab_threads()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    env = LabEnvironment(redis=True)
    with pytest.raises(RuntimeError, match="redis-server"), env:
        pass
    assert env._directory is not None
    assert not env._directory.exists()
    assert _lab_threads() <= before


# -- the live lab (slow: real servers and TLS) -----------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    out = tmp_path_factory.mktemp("lab") / "lab.csv"
    before, children = _lab_threads(), _children()
    results = run_lab(out=out, seed=7, latency_samples=5)
    results.attrs["leftover_threads"] = sorted(t.name for t in _lab_threads() - before)
    results.attrs["leftover_children"] = sorted(_children() - children)
    return results, out


def _row(results: pd.DataFrame, binding: str, mode: str, attack: str, cache: str) -> pd.Series:
    hit = results[
        (results.binding == binding)
        & (results.proxy_mode == mode)
        & (results.attack == attack)
        & (results.replay_cache == cache)
    ]
    assert len(hit) == 1, (binding, mode, attack, cache)
    return hit.iloc[0]


@pytest.mark.slow
def test_scenario_table_matches_expected_outcomes(lab: tuple[pd.DataFrame, Path]) -> None:
    results, _ = lab
    assert list(results.columns) == list(COLUMNS)
    assert check_outcomes(results) == []
    assert results["matches_expected"].all()
    expected = expected_outcomes(redis=HAS_REDIS)
    keys = ["replay_cache", "binding", "proxy_mode", "attack"]
    assert results[keys].equals(expected[keys])
    assert results.attrs["redis"] is HAS_REDIS


@pytest.mark.slow
@pytest.mark.parametrize("mode", PROXY_MODES)
def test_mtls_binding_needs_the_certificate_to_reach_the_rs(
    lab: tuple[pd.DataFrame, Path], mode: str
) -> None:
    row = _row(lab[0], "mtls", mode, "baseline", "per_instance_memory")
    if mode == "terminate":
        assert not row.accepted
        assert row.status == 401
        assert row.error == "invalid_token"
        assert row.flag == "binding_broken"
    else:
        assert row.accepted, row.error_description
        assert row.flag == ""


@pytest.mark.slow
@pytest.mark.parametrize("mode", PROXY_MODES)
def test_client_cert_injection_works_only_through_the_misconfigured_proxy(
    lab: tuple[pd.DataFrame, Path], mode: str
) -> None:
    row = _row(lab[0], "mtls", mode, "header_injection", "per_instance_memory")
    if mode == "misconfigured_forward":
        assert row.accepted
        assert row.flag == "header_injection"
    else:
        assert not row.accepted
        assert row.status == 401
        assert row.flag == ""


@pytest.mark.slow
@pytest.mark.parametrize("mode", PROXY_MODES)
def test_dpop_survives_every_proxy_mode_and_stolen_tokens_fail(
    lab: tuple[pd.DataFrame, Path], mode: str
) -> None:
    results = lab[0]
    assert _row(results, "dpop", mode, "baseline", "per_instance_memory").accepted
    stolen = _row(results, "dpop", mode, "stolen_token", "per_instance_memory")
    assert not stolen.accepted
    assert stolen.status == 401
    assert stolen.error in ("invalid_token", "invalid_dpop_proof")
    bearer = _row(results, "bearer", mode, "stolen_token", "per_instance_memory")
    assert bearer.accepted
    assert bearer.flag == "bearer_replay"
    assert not _row(results, "mtls", mode, "stolen_token", "per_instance_memory").accepted


@pytest.mark.slow
@pytest.mark.parametrize("mode", PROXY_MODES)
def test_proof_replay_across_instances_needs_a_shared_cache(
    lab: tuple[pd.DataFrame, Path], mode: str
) -> None:
    results = lab[0]
    same = _row(results, "dpop", mode, "proof_replay_same_instance", "per_instance_memory")
    assert not same.accepted
    assert same.error == "invalid_dpop_proof"
    cross = _row(results, "dpop", mode, "proof_replay_cross_instance", "per_instance_memory")
    assert cross.accepted
    assert cross.rs_instance == 1  # it really reached the other instance
    assert cross.flag == "proof_replay"
    if not HAS_REDIS:
        pytest.skip("no redis-server binary: the shared-cache runs were skipped")
    shared = _row(results, "dpop", mode, "proof_replay_cross_instance", "shared_redis")
    assert not shared.accepted
    assert shared.error == "invalid_dpop_proof"
    assert _row(results, "dpop", mode, "baseline", "shared_redis").accepted


@pytest.mark.slow
def test_latency_columns(lab: tuple[pd.DataFrame, Path]) -> None:
    results = lab[0]
    base = results[results.attack == "baseline"]
    assert (base.latency_ms > 0).all()
    assert base["added_latency_ms"].notna().all()
    bearer = base[base.binding == "bearer"]
    assert (bearer["added_latency_ms"] == 0).all()
    assert results.loc[results.attack != "baseline", "added_latency_ms"].isna().all()
    assert all(math.isfinite(v) for v in results.latency_ms)


@pytest.mark.slow
def test_csv_is_the_same_table(lab: tuple[pd.DataFrame, Path]) -> None:
    results, out = lab
    back = pd.read_csv(out)
    assert list(back.columns) == list(COLUMNS)
    assert back["accepted"].tolist() == results["accepted"].tolist()
    assert back["status"].tolist() == results["status"].tolist()
    assert not list(out.parent.glob(".*.tmp"))


@pytest.mark.slow
def test_no_threads_or_processes_left_after_a_run(lab: tuple[pd.DataFrame, Path]) -> None:
    assert lab[0].attrs["leftover_threads"] == []
    assert lab[0].attrs["leftover_children"] == []


@pytest.mark.slow
def test_plot_lab_gives_two_labelled_figures(lab: tuple[pd.DataFrame, Path]) -> None:
    outcome, latency = plot_lab(lab[0])
    for fig in (outcome, latency):
        ax = fig.axes[0]
        assert ax.get_title(loc="left")
        assert ax.get_xlabel()
        assert ax.get_ylabel()
    labels = [t.get_text() for t in outcome.axes[0].get_yticklabels()]
    assert len(labels) == len({(r.binding, r.attack, r.replay_cache) for r in lab[0].itertuples()})


def _start_then_fail(env: LabEnvironment, seen: dict[str, Any]) -> None:
    with env:
        seen["ports"] = list(env.ports)
        seen["redis"] = env.redis_process.process if env.redis_process else None
        seen["directory"] = env._directory
        seen["listening"] = [_listening(p) for p in env.ports]
        seen["threads"] = _lab_threads()
        raise RuntimeError("boom")


@pytest.mark.slow
def test_everything_is_stopped_on_error() -> None:
    seen: dict[str, Any] = {}
    before = _lab_threads()
    with pytest.raises(RuntimeError, match="boom"):
        _start_then_fail(LabEnvironment(), seen)
    assert len(seen["ports"]) == len(PROXY_MODES) * 3 + 1  # proxies, 2 RS listeners each, AS
    assert all(seen["listening"])
    assert seen["threads"] - before
    assert not any(_listening(p) for p in seen["ports"])
    assert _lab_threads() <= before
    assert seen["directory"] is not None
    assert not seen["directory"].exists()
    if HAS_REDIS:
        assert seen["redis"] is not None
        assert seen["redis"].poll() is not None


def test_bindings_and_attacks_cover_the_issue() -> None:
    assert BINDINGS == ("bearer", "mtls", "dpop")
    assert "header_injection" in ATTACKS["mtls"]
    assert {"proof_replay_same_instance", "proof_replay_cross_instance"} <= set(ATTACKS["dpop"])


def test_lab_package_exports_resolve() -> None:
    import tokenlib.lab

    for name in tokenlib.lab.__all__:
        assert getattr(tokenlib.lab, name) is not None
    with pytest.raises(AttributeError):
        _ = tokenlib.lab.nope
