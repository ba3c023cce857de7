"""Tests for tokenlib.analysis.plots: figures are complete, styled locally and saved atomically."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from tokenlib.analysis import plots

PATHS = ["browser", "mobile", "gateway_terminated", "backend_e2e"]


def _replay_frame() -> pd.DataFrame:
    rows = [(p, "bearer", 1800.0) for p in PATHS]
    rows += [(p, "dpop_shared_cache", 0.0) for p in PATHS]
    rows += [(p, "dpop_no_cache", 25.0) for p in PATHS]
    return pd.DataFrame(rows, columns=["client_path", "mechanism", "expected_window_s"])


def _timeline() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": ["2016-01-01", "2017-04-01", "2024-10-17", "2019-01-01", "2025-01-01"],
            "mechanism": ["token_binding"] * 3 + ["dpop"] * 2,
            "share": [0.0, 0.1, 0.0, 0.0, 0.6],
        }
    )


RNG = np.random.default_rng(7)
CASES: dict[str, Callable[[], Figure]] = {
    "replay_windows_by_path": lambda: plots.replay_windows_by_path(_replay_frame()),
    "replay_window_survival": lambda: plots.replay_window_survival(
        {"bearer": RNG.uniform(0, 3600, 200), "dpop": np.maximum(0, 25 - RNG.uniform(0, 60, 200))}
    ),
    "survival_curves": lambda: plots.survival_curves(
        pd.DataFrame(
            {
                "t_s": [1.0, 60.0, 3600.0] * 2,
                "survival": [1.0, 0.9, 0.2, 0.5, 0.1, 0.0],
                "mechanism": ["bearer"] * 3 + ["dpop_shared_cache"] * 3,
            }
        )
    ),
    "replay_window_distributions": lambda: plots.replay_window_distributions(
        pd.DataFrame(
            {"mechanism": ["bearer"] * 50 + ["dpop"] * 50, "window_s": RNG.uniform(0, 99, 100)}
        )
    ),
    "blast_radius_before_after": lambda: plots.blast_radius_before_after(
        pd.DataFrame({"scenario": ["a", "b"], "before": [10.0, 4.0], "after": [2.0, 4.0]})
    ),
    "lateral_paths_ranked": lambda: plots.lateral_paths_ranked(
        pd.DataFrame({"path": [f"s{i}>s{i + 1}" for i in range(30)], "score": np.arange(30.0)}),
        top=10,
    ),
    "deployability_matrix": lambda: plots.deployability_matrix(
        pd.DataFrame(
            [[0.9, 0.0], [0.4, np.nan]], index=PATHS[:2], columns=["dpop", "token_binding"]
        )
    ),
    "adoption_timeline": lambda: plots.adoption_timeline(
        _timeline(),
        events=pd.DataFrame({"date": ["2024-10-17"], "event": ["Edge 130 removes Token Binding"]}),
        threshold=0.5,
    ),
    "incremental_adoption_curve": lambda: plots.incremental_adoption_curve(
        pd.DataFrame(
            {
                "components_changed": [0, 1, 2, 0, 1, 2],
                "exposure_removed": [0, 0.5, 0.8, 0, 0, 1.0],
                "strategy": ["dpop"] * 3 + ["token_binding"] * 3,
            }
        )
    ),
    "tornado": lambda: plots.tornado(
        pd.DataFrame(
            {"parameter": ["[A] e_RS", "[A] p_inj"], "low": [2.0, 9.0], "high": [15.0, 11.0]}
        ),
        base=10.0,
    ),
    "sweep": lambda: plots.sweep(
        pd.DataFrame({"e_rs": [0.5, 1.0, 0.5, 1.0], "w": [4.0, 1.0, 3.0, 3.0], "m": list("aabb")}),
        x_col="e_rs",
        y_col="w",
        series_col="m",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_is_slide_ready_and_leaves_global_state_alone(name: str) -> None:
    before = dict(mpl.rcParams)
    open_before = plt.get_fignums()
    fig = CASES[name]()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title(loc="left").strip(), "every figure has a title"
    assert ax.get_xlabel().strip() or name in {"blast_radius_before_after"}
    assert ax.get_ylabel().strip() or name in {
        "blast_radius_before_after",
        "lateral_paths_ranked",
        "tornado",
    }
    assert plt.get_fignums() == open_before, "plots must not create pyplot-managed figures"
    assert dict(mpl.rcParams) == before, "plots must not mutate global rcParams"


def _rgb(colour: Any) -> tuple[float, float, float]:
    r, g, b, _ = mcolors.to_rgba(colour)
    return (round(r, 3), round(g, 3), round(b, 3))


@pytest.mark.parametrize(
    "name", ["replay_windows_by_path", "incremental_adoption_curve", "sweep", "survival_curves"]
)
def test_series_colours_come_from_okabe_ito(name: str) -> None:
    fig = CASES[name]()
    palette = {_rgb(c) for c in plots.OKABE_ITO}
    legend = fig.axes[0].get_legend()
    assert legend is not None
    handles = legend.legend_handles
    assert handles
    for handle in handles:
        colour = handle.get_facecolor() if isinstance(handle, Patch) else handle.get_color()  # type: ignore[union-attr]
        assert _rgb(colour) in palette


def test_mechanism_colours_are_okabe_ito_and_stable() -> None:
    # Eight Okabe-Ito colours for nine series: the one extra is a darker bluish green for
    # "DPoP with nonces and a shared jti store", next to the shared-store green.
    assert set(plots.MECHANISM_COLORS.values()) <= {*plots.OKABE_ITO, "#006D4F"}
    assert (
        plots.color_for("Bearer") == plots.color_for("bearer") == plots.MECHANISM_COLORS["bearer"]
    )
    assert plots.color_for("unknown", 9) == plots.OKABE_ITO[9 % len(plots.OKABE_ITO)]


def test_zero_replay_window_is_drawn_as_labelled_stub() -> None:
    fig = plots.replay_windows_by_path(_replay_frame())
    ax = fig.axes[0]
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == len(PATHS), "one hatched stub per path for the zero-window mechanism"
    assert sum(t.get_text() == "0" for t in ax.texts) == len(PATHS)


def test_replay_bars_pick_a_log_axis_only_for_wide_ranges() -> None:
    wide = plots.replay_windows_by_path(_replay_frame())  # 25 s next to 30 min
    narrow = plots.replay_windows_by_path(_replay_frame().query("expected_window_s > 100"))
    assert wide.axes[0].get_yscale() == "log"
    assert narrow.axes[0].get_yscale() == "linear"
    assert plots.replay_windows_by_path(_replay_frame(), log=False).axes[0].get_yscale() == "linear"


def test_deployability_matrix_annotates_shares() -> None:
    fig = plots.deployability_matrix(
        pd.DataFrame([[1.0, 0.0]], index=["browser"], columns=["dpop", "tb"])
    )
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0%", "100%"]


def test_timeline_lists_events_under_the_plot() -> None:
    fig = CASES["adoption_timeline"]()
    notes = " ".join(t.get_text() for t in fig.texts)
    assert "2024-10-17: Edge 130 removes Token Binding" in notes


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"missing column\(s\) \['expected_window_s'\]"):
        plots.replay_windows_by_path(_replay_frame().drop(columns="expected_window_s"))
    with pytest.raises(ValueError, match="no rows"):
        plots.tornado(pd.DataFrame(columns=["parameter", "low", "high"]))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0"),
        (12, "12 s"),
        (90, "1.5 min"),
        (3600, "1 h"),
        (86400 * 2, "2 d"),
        (float("inf"), "∞"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert plots.format_duration(seconds) == text


@pytest.mark.parametrize(
    ("usd", "text"), [(0, "$0"), (950, "$950"), (1250, "$1.25k"), (61_500_000, "$61.5M")]
)
def test_format_usd(usd: float, text: str) -> None:
    assert plots.format_usd(usd) == text


@pytest.mark.parametrize(("n", "text"), [(0, "0"), (12.5, "12.5"), (1_363_572, "1.36M")])
def test_format_number(n: float, text: str) -> None:
    assert plots.format_number(n) == text


def test_large_axes_use_compact_numbers_without_offset_text() -> None:
    data = pd.DataFrame({"scenario": ["a"], "before": [1_400_000.0], "after": [900_000.0]})
    fig = plots.blast_radius_before_after(data)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.xaxis.get_offset_text().get_text() == ""
    assert any(t.get_text().endswith("M") for t in ax.get_xticklabels())


def test_incremental_curve_formats_cost_axis() -> None:
    data = pd.DataFrame({"cost": [0.0, 2e6, 4e6], "share": [0.0, 0.1, 0.12]})
    fig = plots.incremental_adoption_curve(
        data, x_col="cost", y_col="share", series_col=None, x_formatter=plots.format_usd
    )
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "$2M" in labels
    assert fig.axes[0].get_ylim()[1] < 0.2, "y axis zooms to the data, not 0-100%"


def test_save_figure_writes_png_and_svg_atomically(tmp_path: Path) -> None:
    out = tmp_path / "figs"
    written = plots.save_figure(CASES["sweep"](), "demo_fig", out)
    assert written == {"png": out / "demo_fig.png", "svg": out / "demo_fig.svg"}
    assert written["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in written["svg"].read_text()
    first = written["svg"].read_bytes()
    plots.save_figure(CASES["sweep"](), "demo_fig", out)  # overwrite in place
    assert written["svg"].read_bytes() == first, "saved figures are reproducible byte for byte"
    assert sorted(os.listdir(out)) == ["demo_fig.png", "demo_fig.svg"], "no temp files left"
    assert oct(written["png"].stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("bad", ["", "Upper", "../escape", "a b", "x.png"])
def test_save_figure_rejects_unsafe_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="figure name"):
        plots.save_figure(CASES["sweep"](), bad, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_save_figure_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    fig = CASES["sweep"]()
    fig.axes[0].set_title("$\\undefinedmacro$")  # mathtext error while rendering
    with pytest.raises(ValueError, match="undefinedmacro"):
        plots.save_figure(fig, "broken", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_colours_follow_the_mechanism_id_when_series_are_labelled() -> None:
    from tokenlib.analysis import labels
    from tokenlib.analysis.models import MECHANISMS

    for m in MECHANISMS:
        assert (
            plots.color_for(m.label, 5) == plots.color_for(m.id, 0) == plots.MECHANISM_COLORS[m.id]
        )
        assert plots.color_for(f"{m.label} (every RS upgraded)") == plots.MECHANISM_COLORS[m.id]
    assert len({plots.MECHANISM_COLORS[m.id] for m in MECHANISMS}) == len(MECHANISMS)
    assert plots.color_for(labels.label("family", "dpop")) == plots.MECHANISM_COLORS["dpop"]


def _tick_texts(fig: Figure) -> list[str]:
    fig.canvas.draw()  # type: ignore[no-untyped-call]
    return [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]


def test_percent_ticks_are_honest() -> None:
    fig = plots.incremental_adoption_curve(
        pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 0.06, 0.125]}),
        x_col="x",
        y_col="y",
        series_col=None,
    )
    ticks = fig.axes[0].get_yticks()
    texts = _tick_texts(fig)
    for value, text in zip(ticks, fig.axes[0].get_yticklabels(), strict=True):
        if text.get_text():
            shown = float(text.get_text().replace("\u2212", "-").rstrip("%")) / 100
            assert abs(shown - value) < 1e-9, (value, text.get_text())
    assert texts
    assert fig.axes[0].get_legend() is None, "a single unnamed series needs no legend"


def test_legend_lists_only_drawn_series_and_identical_series_collapse() -> None:
    t = [1.0, 60.0, 3600.0]
    frame = pd.DataFrame(
        {
            "t_s": t * 4,
            "survival": [1.0, 0.5, 0.1] * 2 + [1.0, 0.9, 0.8] + [np.nan] * 3,
            "mechanism": ["dpop_shared_cache"] * 3
            + ["dpop_nonce_shared_cache"] * 3
            + ["bearer"] * 3
            + ["mtls"] * 3,
        }
    )
    fig = plots.survival_curves(frame)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(ax.lines) == len(legend) == 2
    assert "dpop_shared_cache = dpop_nonce_shared_cache" in legend
    assert not any("mtls" in x for x in legend), "a series with no values is not in the legend"
    assert any("Identical curves" in t.get_text() for t in fig.texts)


def test_identical_bars_collapse_with_a_note() -> None:
    frame = pd.concat(
        [
            _replay_frame(),
            _replay_frame().query("mechanism == 'dpop_no_cache'").assign(mechanism="x"),
        ]
    )
    fig = plots.replay_windows_by_path(frame)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "dpop_no_cache = x" in legend
    assert len(legend) == 3
    assert any("Identical bars" in t.get_text() for t in fig.texts)


def test_sweep_starts_at_zero() -> None:
    fig = plots.sweep(
        pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.1e6, 1.15e6, 1.2e6]}), x_col="x", y_col="y"
    )
    assert fig.axes[0].get_ylim()[0] == 0


def test_timeline_markers_use_the_table_numbers() -> None:
    events = pd.DataFrame(
        {"date": ["2024-10-17", "2016-01-01"], "event": ["late", "early"], "row": [12, 3]}
    )
    fig = plots.adoption_timeline(_timeline(), events=events, event_number_col="row")
    marks = {t.get_text() for t in fig.axes[0].texts}
    assert {"3", "12"} <= marks
    assert any("3. 2016-01-01: early" in t.get_text() for t in fig.texts)


def test_lab_outcomes_separate_rejected_legitimate_from_accepted_attack() -> None:
    results = pd.DataFrame(
        {
            "row": ["mTLS, legitimate", "mTLS, stolen token", "bearer, stolen token"],
            "column": ["TLS terminated"] * 3,
            "is_attack": [False, True, True],
            "accepted": [False, False, True],
            "text": ["401", "401", "accepted"],
        }
    )
    fig = plots.lab_outcomes(results)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [
        "legitimate request rejected (outage)",
        "attack rejected",
        "attack accepted (binding broken)",
    ]
    colours = dict(plots.LAB_OUTCOMES)
    assert (
        colours["legitimate request rejected (outage)"]
        != colours["attack accepted (binding broken)"]
    )


def test_small_numbers_never_use_scientific_notation() -> None:
    for v in (1e-5, 1.5e-4, 0.003):
        assert "e" not in plots.format_number(v)
        assert "e" not in plots.format_duration(v)
        assert "e-" not in plots.format_usd(v)
