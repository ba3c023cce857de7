"""Slide-ready figures for the tokenlib analysis notebooks and report.

Every function takes tidy data (a DataFrame or mapping), returns a matplotlib ``Figure``
and never calls ``plt.show()``: the notebook decides whether to display it, the report saves it.
All figures share one style (:func:`style`, applied through ``matplotlib.rc_context`` so global
rcParams are never mutated), a title, labelled axes with units, and the Okabe-Ito palette, which
stays distinguishable for the common forms of colour-vision deficiency (Okabe & Ito, 2008).
:func:`save_figure` writes PNG and SVG atomically.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    MaxNLocator,
    NullLocator,
    PercentFormatter,
)
from matplotlib.typing import RcKeyType

from tokenlib._atomic import atomic_path

__all__ = [
    "LAB_OUTCOMES",
    "MECHANISM_COLORS",
    "OKABE_ITO",
    "adoption_timeline",
    "blast_radius_before_after",
    "color_for",
    "deployability_matrix",
    "format_duration",
    "format_number",
    "format_usd",
    "incremental_adoption_curve",
    "lab_outcomes",
    "lateral_paths_ranked",
    "replay_window_distributions",
    "replay_window_survival",
    "replay_windows_by_path",
    "save_figure",
    "style",
    "survival_curves",
    "sweep",
    "tornado",
]

OKABE_ITO: tuple[str, ...] = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#000000",  # black
)

# Fixed colours for the mechanisms so every figure uses the same colour for the same thing.
MECHANISM_COLORS: dict[str, str] = {
    "bearer": "#D55E00",
    "mtls": "#0072B2",
    "dpop": "#009E73",
    "dpop_no_cache": "#F0E442",
    "dpop_per_instance_cache": "#E69F00",
    "dpop_per_instance": "#E69F00",
    "dpop_shared_cache": "#009E73",
    "dpop_nonce": "#56B4E9",
    "dpop_nonce_shared_cache": "#006D4F",
    "token_binding": "#CC79A7",
    "current": "#000000",
    "before": "#D55E00",
    "after": "#009E73",
}

_STYLE: dict[RcKeyType, Any] = {
    "figure.figsize": (10.0, 5.6),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 12,
    "axes.titlesize": 15,
    "axes.titleweight": "bold",
    "axes.labelsize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "legend.fontsize": 10,
    "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
    "svg.fonttype": "none",
    "svg.hashsalt": "tokenlib",
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

_DURATION_TICKS: tuple[float, ...] = (
    1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 2 * 3600.0, 3 * 3600.0,
    6 * 3600.0, 12 * 3600.0, 86400.0, 2 * 86400.0, 7 * 86400.0, 30 * 86400.0, 90 * 86400.0,
    365 * 86400.0,
)  # fmt: skip
_COARSE_TICKS: tuple[float, ...] = (
    1.0, 10.0, 60.0, 600.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0,
    365 * 86400.0,
)  # fmt: skip


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Apply the tokenlib figure style for the duration of the block (no global mutation)."""
    with mpl.rc_context(_STYLE):
        yield


def _colour_key(name: str) -> str | None:
    """The :data:`MECHANISM_COLORS` key of an id or a human label (``"Bearer token"``,
    ``"DPoP with a shared jti store (every RS upgraded)"``, ``"Today's mechanisms"``)."""
    from tokenlib.analysis import labels

    text = " ".join(str(name).split())
    candidates = [text, re.sub(r"\s*\([^()]*\)$", "", text)]
    for c in candidates:
        if c.lower() in MECHANISM_COLORS:
            return c.lower()
        for kind in ("mechanism", "family"):
            try:
                return labels.id_for(kind, c)
            except ValueError:
                pass
        if c.lower().startswith("today"):
            return "current"
    return None


def color_for(name: str, index: int = 0) -> str:
    """Colour for a mechanism or series: the fixed mechanism colour (by id, or by its label
    mapped to the id through :mod:`tokenlib.analysis.labels`), else Okabe-Ito by index."""
    key = _colour_key(name)
    if key is not None and key in MECHANISM_COLORS:
        return MECHANISM_COLORS[key]
    return OKABE_ITO[index % len(OKABE_ITO)]


def format_duration(seconds: float) -> str:
    """Human-readable duration for axis ticks and labels: ``90`` -> ``"1.5 min"``."""
    s = float(seconds)
    if not np.isfinite(s):
        return "∞"
    if s == 0:
        return "0"
    for unit, size in (("y", 365 * 86400.0), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(s) >= size:
            return f"{s / size:.3g} {unit}"
    if abs(s) < 1:
        from tokenlib.analysis.labels import fmt_seconds

        return fmt_seconds(s)
    return f"{s:.3g} s"


def format_number(value: float) -> str:
    """Compact number for axis ticks: ``1_250_000`` -> ``"1.25M"`` (no ``1e6`` offset text)."""
    v = float(value)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.3g}{unit}"
    from tokenlib.analysis.labels import fmt_number

    return fmt_number(v).replace("\u2212", "-")


def _compact_axis(axis: Any) -> None:
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: format_number(v)))


def format_usd(value: float) -> str:
    """Compact dollar amount for axis ticks: ``1_250_000`` -> ``"$1.25M"``."""
    v = float(value)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"${v / size:.3g}{unit}"
    if v and abs(v) < 0.01:
        from tokenlib.analysis.labels import fmt_number

        return "$" + fmt_number(v).replace("\u2212", "-")
    return f"${v:.3g}" if v else "$0"


def _figure(**kwargs: Any) -> tuple[Figure, Axes]:
    fig = Figure(**kwargs)
    ax = fig.add_subplot()
    return fig, ax


def _duration_axis(ax: Axes, axis: str, lo: float, hi: float, *, log: bool = True) -> None:
    """Duration axis (seconds) with ticks at round durations and readable labels."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log" if log else "linear")
    candidates = _COARSE_TICKS if hi / max(lo, 1e-9) > 1000 else _DURATION_TICKS
    ticks = [t for t in candidates if lo / 1.5 <= t <= hi * 1.5]
    if len(ticks) < 3:
        ticks = [t for t in _DURATION_TICKS if lo / 1.5 <= t <= hi * 1.5] or [lo, hi]
    if not log:
        unit = next((u for u in (86400.0, 3600.0, 60.0) if hi >= 2 * u), 1.0)
        raw = hi / unit / 5
        step = next(m for m in (0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100, 250, 500, 1e9) if m >= raw)
        ticks = list(np.arange(0.0, hi * 1.15, step * unit))
    target.set_major_locator(FixedLocator(ticks))
    target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda v, _pos: format_duration(v)))


def _finish(
    fig: Figure, ax: Axes, title: str, xlabel: str, ylabel: str, note: str | None
) -> Figure:
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if note:
        fig.text(0.01, -0.02, note, fontsize=9, color="#555555", ha="left", va="top")
    fig.tight_layout()
    return fig


def _finish_survival(
    fig: Figure,
    ax: Axes,
    t_range: tuple[float, float],
    title: str,
    xlabel: str,
    ylabel: str,
    note: str | None,
) -> Figure:
    """Survival-curve axes: log duration x over ``t_range``, probability y, legend, labels."""
    lo, hi = t_range
    _duration_axis(ax, "x", lo, hi)
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="upper right")
    return _finish(fig, ax, title, xlabel, ylabel, note)


def _percent_axis(axis: Any) -> None:
    """Shares (0..1) as percentages with honest ticks: round steps (1, 2, 5, 10...) so no tick
    label is a rounded neighbour of its true value ("12%" for 12.5%); decimals when needed."""
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, equal_nan=True, rtol=1e-9, atol=1e-12))


def _collapse(
    series: list[tuple[str, np.ndarray, np.ndarray]],
) -> tuple[list[tuple[str, np.ndarray, np.ndarray, str]], list[str]]:
    """Merge series that are identical (same x and y): one drawn line labelled with every
    name. Returns ``(label, x, y, colour_name)`` per drawn series and the merged label groups."""
    kept: list[tuple[list[str], np.ndarray, np.ndarray]] = []
    for name, x, y in series:
        if not np.isfinite(y).any():
            continue  # nothing to draw: no legend entry either
        for names, kx, ky in kept:
            if _same(kx, x) and _same(ky, y):
                names.append(name)
                break
        else:
            kept.append(([name], x, y))
    merged = [" = ".join(n) for n, _, _ in kept if len(n) > 1]
    return [(" = ".join(n), x, y, n[0]) for n, x, y in kept], merged


def _series(data: pd.DataFrame, series_col: str | None, label: str) -> Iterable[tuple[Any, Any]]:
    """``(label, rows)`` per series, or the whole frame as one series called ``label``."""
    if not series_col:
        return [(label, data)]
    groups: Iterable[tuple[Any, Any]] = data.groupby(series_col, observed=True, sort=False)
    return groups


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; have {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: no rows to plot")


def save_figure(fig: Figure, name: str, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``fig`` as ``<out_dir>/<name>.png`` and ``.svg``, each atomically (temp + replace).

    ``name`` is a lowercase slug (``[a-z0-9_-]``) so it is safe as a file name and a URL.
    Returns ``{"png": path, "svg": path}``.
    """
    if not _NAME_RE.match(name):
        raise ValueError(f"figure name {name!r} must match {_NAME_RE.pattern}")
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    with style():
        for fmt in ("png", "svg"):
            target = directory / f"{name}.{fmt}"
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, metadata=_metadata(fmt))
            written[fmt] = target
    return written


def _metadata(fmt: str) -> dict[str, Any]:
    # No creation dates in the files, so regenerated figures are byte-identical.
    return {"Date": None} if fmt == "svg" else {"Software": "tokenlib"}


def replay_windows_by_path(
    data: pd.DataFrame,
    *,
    path_col: str = "client_path",
    mechanism_col: str = "mechanism",
    value_col: str = "expected_window_s",
    title: str = "Expected replay window of a stolen token, by client path",
    ylabel: str | None = None,
    log: bool | None = None,
    note: str | None = None,
) -> Figure:
    """Grouped bars: expected replay window (seconds) per client path × mechanism.

    ``log=None`` picks a log axis when windows span more than a factor of 30 (seconds next to
    hours). A window of 0 (replay impossible) is labelled "0"; on a log axis it is drawn as a
    hatched stub at the bottom so "no replay" stays visible.
    """
    _require(data, [path_col, mechanism_col, value_col], "replay_windows_by_path")
    table = data.pivot_table(
        index=path_col, columns=mechanism_col, values=value_col, aggfunc="mean", observed=True
    )
    table = table.loc[:, table.notna().any()]
    groups: list[list[Any]] = []
    for col in table.columns:
        for g in groups:
            if _same(table[g[0]].to_numpy(dtype=float), table[col].to_numpy(dtype=float)):
                g.append(col)
                break
        else:
            groups.append([col])
    merged = [" = ".join(map(str, g)) for g in groups if len(g) > 1]
    keys = {" = ".join(map(str, g)): str(g[0]) for g in groups}
    table = table[[g[0] for g in groups]].set_axis(list(keys), axis=1)
    if merged:
        extra = "Identical bars drawn once: " + "; ".join(merged) + "."
        note = f"{note}\n{extra}" if note else extra
    positive = table.to_numpy(dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    hi = float(positive.max()) if positive.size else 3600.0
    if log is None:
        log = bool(positive.size) and hi / float(positive.min()) > 30
    lo = max(float(positive.min()) / 3 if positive.size else 1.0, 0.1) if log else 0.0
    stub = lo * 1.8 if log else 0.0
    with style():
        fig, ax = _figure()
        n_mech = len(table.columns)
        width = 0.8 / max(n_mech, 1)
        x = np.arange(len(table.index))
        handles = []
        for i, mech in enumerate(table.columns):
            values = table[mech].to_numpy(dtype=float)
            colour = color_for(keys[str(mech)], i)
            zero = ~(values > 0)
            offsets = x + (i - (n_mech - 1) / 2) * width
            ax.bar(
                offsets[~zero], values[~zero], width, color=colour, edgecolor="black", linewidth=0.5
            )
            # A window of 0 cannot sit on a log axis: draw a short hatched stub labelled "0".
            if log:
                ax.bar(
                    offsets[zero],
                    np.full(int(zero.sum()), stub),
                    width,
                    color="white",
                    edgecolor=colour,
                    hatch="///",
                    linewidth=1.0,
                )
            for offset in offsets[zero]:
                ax.annotate("0", (offset, stub), ha="center", va="bottom", fontsize=9)
            handles.append(Patch(facecolor=colour, edgecolor="black", label=str(mech)))
        ax.set_xticks(x, [str(p) for p in table.index])
        _duration_axis(ax, "y", max(lo, 0.1), hi, log=log)
        ax.set_ylim(lo, hi * 8 if log else hi * 1.35)
        ax.legend(handles=handles, ncols=min(n_mech, 2), loc="upper right")
        label = ylabel or (
            "expected replay window (log scale)" if log else "expected replay window"
        )
        return _finish(fig, ax, title, "client path", label, note)


def replay_window_survival(
    samples: Mapping[str, Sequence[float] | np.ndarray],
    *,
    title: str = "How long a stolen artefact stays replayable",
    xlabel: str = "replay window t (log scale)",
    ylabel: str = "P(replay window > t)",
    note: str | None = None,
) -> Figure:
    """Empirical survival curves ``P(W > t)`` of sampled replay windows in seconds, per series."""
    if not samples:
        raise ValueError("replay_window_survival: no series to plot")
    arrays = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
    pos = np.concatenate([a[a > 0] for a in arrays.values()] + [np.array([1.0])])
    lo, hi = max(float(pos.min()) / 2, 0.5), float(pos.max()) * 1.5
    grid = np.geomspace(lo, hi, 400)
    with style():
        fig, ax = _figure()
        for i, (label, arr) in enumerate(arrays.items()):
            if arr.size == 0:
                raise ValueError(f"replay_window_survival: series {label!r} is empty")
            ordered = np.sort(arr)
            survival = 1.0 - np.searchsorted(ordered, grid, side="right") / ordered.size
            ax.step(
                grid,
                survival,
                where="post",
                label=str(label),
                color=color_for(label, i),
                linewidth=2,
            )
        return _finish_survival(fig, ax, (lo, hi), title, xlabel, ylabel, note)


def survival_curves(
    data: pd.DataFrame,
    *,
    t_col: str = "t_s",
    value_col: str = "survival",
    series_col: str = "mechanism",
    title: str = "How long a stolen artefact stays replayable",
    xlabel: str = "replay window t (log scale)",
    ylabel: str = "P(replay window > t)",
    note: str | None = None,
) -> Figure:
    """Precomputed survival curves ``P(W > t)`` (e.g. the closed form), one line per series."""
    _require(data, [t_col, value_col, series_col], "survival_curves")
    t = data[t_col].to_numpy(dtype=float)
    lo, hi = max(float(t[t > 0].min()), 0.5), float(t.max())
    raw = [
        (
            str(label),
            g.sort_values(t_col)[t_col].to_numpy(dtype=float),
            g.sort_values(t_col)[value_col].to_numpy(dtype=float),
        )
        for label, g in data.groupby(series_col, observed=True, sort=False)
    ]
    drawn, merged = _collapse(raw)
    if merged:
        extra = "Identical curves drawn once: " + "; ".join(merged) + "."
        note = f"{note}\n{extra}" if note else extra
    with style():
        fig, ax = _figure()
        for i, (label, x, y, key) in enumerate(drawn):
            ax.plot(x, y, label=label, color=color_for(key, i), linewidth=2)
        return _finish_survival(fig, ax, (lo, hi), title, xlabel, ylabel, note)


def replay_window_distributions(
    data: pd.DataFrame,
    *,
    group_col: str = "mechanism",
    value_col: str = "window_s",
    title: str = "Distribution of replay windows",
    ylabel: str = "replay window (log scale)",
    note: str | None = None,
) -> Figure:
    """Box plots (5th-95th percentile whiskers) of positive replay windows per group.

    The share of samples with no replay possible (window 0) is printed under each box.
    """
    _require(data, [group_col, value_col], "replay_window_distributions")
    groups = [
        (str(k), g[value_col].to_numpy(dtype=float))
        for k, g in data.groupby(group_col, observed=True, sort=False)
    ]
    pos = np.concatenate([v[v > 0] for _, v in groups] + [np.array([1.0])])
    lo, hi = max(float(pos.min()) / 2, 0.5), float(pos.max()) * 2
    with style():
        fig, ax = _figure()
        for i, (label, values) in enumerate(groups):
            positive = values[values > 0]
            if positive.size:
                box = ax.boxplot(
                    [positive],
                    positions=[i],
                    widths=0.6,
                    whis=(5, 95),
                    showfliers=False,
                    patch_artist=True,
                )
                box["boxes"][0].set_facecolor(color_for(label, i))
                box["medians"][0].set_color("black")
            zero = 1.0 - positive.size / max(values.size, 1)
            ax.annotate(f"{zero:.0%} no replay", (i, lo), ha="center", va="bottom", fontsize=9)
        ax.set_xticks(range(len(groups)), [g for g, _ in groups])
        _duration_axis(ax, "y", lo, hi)
        ax.set_ylim(lo, hi)
        return _finish(fig, ax, title, group_col.replace("_", " "), ylabel, note)


def blast_radius_before_after(
    data: pd.DataFrame,
    *,
    label_col: str = "scenario",
    before_col: str = "before",
    after_col: str = "after",
    title: str = "Blast radius of a stolen token, before and after binding",
    xlabel: str = "sensitivity-weighted services reachable",
    note: str | None = None,
) -> Figure:
    """Dumbbell chart: blast radius per scenario before (bearer) and after a mechanism change."""
    _require(data, [label_col, before_col, after_col], "blast_radius_before_after")
    ordered = data.sort_values(before_col)
    y = np.arange(len(ordered))
    with style():
        fig, ax = _figure(figsize=(10.0, max(3.0, 0.5 * len(ordered) + 1.5)))
        before = ordered[before_col].to_numpy(dtype=float)
        after = ordered[after_col].to_numpy(dtype=float)
        ax.hlines(y, after, before, color="#999999", linewidth=2, zorder=1)
        ax.scatter(before, y, s=70, color=color_for("before"), label="before", zorder=2)
        ax.scatter(after, y, s=70, color=color_for("after"), label="after", zorder=3, marker="D")
        ax.set_yticks(y, [str(v) for v in ordered[label_col]])
        _compact_axis(ax.xaxis)
        ax.set_xlim(left=0)
        ax.legend(loc="lower left")
        return _finish(fig, ax, title, xlabel, "", note)


def lateral_paths_ranked(
    data: pd.DataFrame,
    *,
    path_col: str = "path",
    score_col: str = "score",
    top: int = 15,
    title: str = "Lateral paths where possession alone is enough, ranked",
    xlabel: str = "sensitivity-weighted reach × replay window",
    note: str | None = None,
) -> Figure:
    """Horizontal bars of the ``top`` lateral paths by score (largest at the top)."""
    _require(data, [path_col, score_col], "lateral_paths_ranked")
    ranked = data.nlargest(top, score_col).iloc[::-1]
    with style():
        fig, ax = _figure(figsize=(10.0, max(3.0, 0.38 * len(ranked) + 1.5)))
        ax.barh(
            [str(p) for p in ranked[path_col]],
            ranked[score_col].to_numpy(dtype=float),
            color=OKABE_ITO[5],
            edgecolor="black",
            linewidth=0.5,
        )
        ax.tick_params(axis="y", labelsize=9)
        _compact_axis(ax.xaxis)
        ax.grid(axis="y", visible=False)
        return _finish(fig, ax, title, xlabel, "", note)


def deployability_matrix(
    matrix: pd.DataFrame,
    *,
    title: str = "Share of flows where each mechanism is deployable today",
    xlabel: str = "mechanism",
    ylabel: str = "client path",
    colorbar_label: str = "deployable share of flows",
    note: str | None = None,
) -> Figure:
    """Annotated heat map of shares (0..1), e.g. rows = client paths and columns = mechanisms."""
    if matrix.empty:
        raise ValueError("deployability_matrix: empty matrix")
    values = matrix.to_numpy(dtype=float)
    with style():
        fig, ax = _figure(figsize=(max(6.0, 1.6 * matrix.shape[1] + 3), 0.7 * matrix.shape[0] + 2))
        image = ax.imshow(values, cmap="cividis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.grid(False)
        ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns])
        ax.set_yticks(range(matrix.shape[0]), [str(r) for r in matrix.index])
        for (r, c), v in np.ndenumerate(values):
            text = "n/a" if not np.isfinite(v) else f"{v:.0%}"
            ax.text(
                c,
                r,
                text,
                ha="center",
                va="center",
                fontsize=11,
                color="white" if np.isfinite(v) and v < 0.55 else "black",
            )
        colorbar = fig.colorbar(image, ax=ax, fraction=0.04)
        colorbar.set_label(colorbar_label)
        return _finish(fig, ax, title, xlabel, ylabel, note)


def adoption_timeline(
    data: pd.DataFrame,
    *,
    date_col: str = "date",
    series_col: str = "mechanism",
    value_col: str = "share",
    events: pd.DataFrame | None = None,
    event_date_col: str = "date",
    event_label_col: str = "event",
    event_number_col: str | None = None,
    threshold: float | None = None,
    title: str = "Token Binding vs DPoP: deployable share over time",
    ylabel: str = "deployable share",
    note: str | None = None,
) -> Figure:
    """Step lines of deployable share per mechanism over time, with dated events as markers.

    ``threshold`` draws a dashed "deployable" line (e.g. 0.5); ``events`` are annotated with
    numbers on the time axis and listed under the plot, so long labels never overlap. The
    numbers are ``event_number_col`` when given (e.g. the row numbers of a table shown next to
    the figure), else 1, 2, ... in date order.
    """
    _require(data, [date_col, series_col, value_col], "adoption_timeline")
    frame = data.assign(**{date_col: pd.to_datetime(data[date_col], format="ISO8601")}).sort_values(
        date_col
    )
    with style():
        fig, ax = _figure(figsize=(11.0, 6.0))
        for i, (label, g) in enumerate(frame.groupby(series_col, observed=True, sort=False)):
            ax.step(
                g[date_col],
                g[value_col],
                where="post",
                label=str(label),
                linewidth=2.5,
                color=color_for(str(label), i),
            )
        if threshold is not None:
            ax.axhline(threshold, linestyle="--", color="#555555", linewidth=1)
            ax.annotate(
                f"deployable threshold {threshold:.0%}",
                (0.01, threshold),
                ha="left",
                va="bottom",
                fontsize=9,
                color="#555555",
                xycoords=("axes fraction", "data"),
            )
        lines: list[str] = []
        if events is not None and not events.empty:
            when_all = pd.to_datetime(events[event_date_col], format="ISO8601")
            ev = events.assign(_when=when_all).sort_values("_when", kind="stable")
            ev = ev.reset_index(drop=True)
            numbers = (
                [str(v) for v in ev[event_number_col]]
                if event_number_col
                else [str(k) for k in range(1, len(ev) + 1)]
            )
            for k, (n, when, raw, label) in enumerate(
                zip(numbers, ev["_when"], ev[event_date_col], ev[event_label_col], strict=True),
                start=1,
            ):
                ax.axvline(when, color="#BBBBBB", linewidth=0.8, zorder=0)
                # Stagger the numbered markers so events close in time stay readable.
                ax.annotate(
                    n,
                    (when, 0.95 - 0.08 * ((k - 1) % 4)),
                    ha="center",
                    va="center",
                    fontsize=9,
                    xycoords=("data", "axes fraction"),
                    bbox={"boxstyle": "circle,pad=0.25", "fc": "white", "ec": "#777777"},
                )
                when_text = raw.date().isoformat() if hasattr(raw, "date") else str(raw)
                lines.append(f"{n}. {when_text}: {label}")
        ax.set_ylim(-0.02, 1.02)
        _percent_axis(ax.yaxis)
        ax.legend(loc="upper left")
        text = "\n".join(lines)
        if note:
            text = f"{text}\n{note}" if text else note
        return _finish(fig, ax, title, "date", ylabel, text or None)


def incremental_adoption_curve(
    data: pd.DataFrame,
    *,
    x_col: str = "components_changed",
    y_col: str = "exposure_removed",
    series_col: str | None = "strategy",
    title: str = "Replay exposure removed as components adopt binding (cheapest first)",
    xlabel: str = "components changed",
    ylabel: str = "share of replay exposure removed",
    x_formatter: Callable[[float], str] | None = None,
    note: str | None = None,
) -> Figure:
    """Cumulative curve(s): share of exposure removed (0..1) vs components changed or cost.

    ``x_formatter`` formats x ticks, e.g. :func:`format_usd` when x is a cost.
    """
    cols = [x_col, y_col] + ([series_col] if series_col else [])
    _require(data, cols, "incremental_adoption_curve")
    with style():
        fig, ax = _figure()
        top = 0.0
        n_series = 0
        for i, (label, g) in enumerate(_series(data, series_col, "exposure removed")):
            g = g.sort_values(x_col)
            ax.step(
                g[x_col],
                g[y_col],
                where="post",
                label=str(label),
                linewidth=2.5,
                color=color_for(str(label), i),
            )
            top = max(top, float(g[y_col].max()))
            n_series += 1
        ax.set_ylim(0.0, min(1.02, max(0.05, top * 1.15)))
        ax.set_xlim(left=0)
        _percent_axis(ax.yaxis)
        if x_formatter is not None:
            fmt = x_formatter
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v)))
        if series_col and n_series > 1:
            ax.legend(loc="lower right")
        return _finish(fig, ax, title, xlabel, ylabel, note)


def tornado(
    data: pd.DataFrame,
    *,
    parameter_col: str = "parameter",
    low_col: str = "low",
    high_col: str = "high",
    base: float | None = None,
    title: str = "Which assumptions move the result (tornado)",
    xlabel: str = "outcome",
    note: str | None = None,
) -> Figure:
    """Tornado chart: outcome at each parameter's low and high value, widest swing on top."""
    _require(data, [parameter_col, low_col, high_col], "tornado")
    frame = data.assign(_swing=(data[high_col] - data[low_col]).abs()).sort_values("_swing")
    centre = (
        float(base)
        if base is not None
        else float(
            np.median(np.r_[frame[low_col].to_numpy(float), frame[high_col].to_numpy(float)])
        )
    )
    y = np.arange(len(frame))
    with style():
        fig, ax = _figure(figsize=(10.0, max(3.0, 0.55 * len(frame) + 1.5)))
        low = frame[low_col].to_numpy(dtype=float)
        high = frame[high_col].to_numpy(dtype=float)
        ax.barh(y, low - centre, left=centre, color=OKABE_ITO[4], label="parameter at low value")
        ax.barh(y, high - centre, left=centre, color=OKABE_ITO[0], label="parameter at high value")
        ax.axvline(centre, color="black", linewidth=1)
        ax.set_yticks(y, [str(p) for p in frame[parameter_col]])
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower right")
        return _finish(fig, ax, title, xlabel, "", note)


def sweep(
    data: pd.DataFrame,
    *,
    x_col: str,
    y_col: str,
    series_col: str | None = None,
    title: str = "Sensitivity sweep",
    xlabel: str | None = None,
    ylabel: str | None = None,
    percent_y: bool = False,
    zero: bool = True,
    note: str | None = None,
) -> Figure:
    """Line plot of an outcome over one swept parameter, one line per series.

    ``zero``: the y axis starts at 0 when every value is non-negative (no 1.1M baseline that
    exaggerates a small change). Identical series are drawn once, with every name in the legend.
    """
    cols = [x_col, y_col] + ([series_col] if series_col else [])
    _require(data, cols, "sweep")
    raw = [
        (
            str(label),
            g.sort_values(x_col)[x_col].to_numpy(dtype=float),
            g.sort_values(x_col)[y_col].to_numpy(dtype=float),
        )
        for label, g in _series(data, series_col, y_col)
    ]
    drawn, _merged = _collapse(raw)
    with style():
        fig, ax = _figure()
        for i, (label, x, y, key) in enumerate(drawn):
            ax.plot(x, y, marker="o", linewidth=2, label=label, color=color_for(key, i))
        _compact_axis(ax.yaxis)
        if percent_y:
            _percent_axis(ax.yaxis)
        values = data[y_col].to_numpy(dtype=float)
        if zero and values.size and np.nanmin(values) >= 0:
            ax.set_ylim(bottom=0, top=max(float(np.nanmax(values)) * 1.08, 1e-12))
        if series_col and drawn:
            ax.legend()
        return _finish(
            fig,
            ax,
            title,
            xlabel or x_col.replace("_", " "),
            ylabel or y_col.replace("_", " "),
            note,
        )


#: Outcome categories of a live-lab request and their colours: a rejected legitimate request
#: (an outage) and an accepted attack (a broken binding) must never share a colour.
LAB_OUTCOMES: tuple[tuple[str, str], ...] = (
    ("legitimate request accepted", "#56B4E9"),
    ("legitimate request rejected (outage)", "#E69F00"),
    ("attack rejected", "#009E73"),
    ("attack accepted (binding broken)", "#D55E00"),
)


def lab_outcomes(
    results: pd.DataFrame,
    *,
    row_col: str = "row",
    column_col: str = "column",
    attack_col: str = "is_attack",
    accepted_col: str = "accepted",
    text_col: str | None = "text",
    title: str = "Live lab: what the resource server accepted",
    xlabel: str = "",
    ylabel: str = "",
    note: str | None = None,
) -> Figure:
    """Outcome matrix of live-lab requests: one cell per row x column, coloured by one of
    :data:`LAB_OUTCOMES` (legitimate or attack x accepted or rejected) and labelled with
    ``text_col``. The legend lists only the categories that occur."""
    _require(results, [row_col, column_col, attack_col, accepted_col], "lab_outcomes")
    rows = list(dict.fromkeys(map(str, results[row_col])))
    cols = list(dict.fromkeys(map(str, results[column_col])))
    grid = np.full((len(rows), len(cols)), np.nan)
    from matplotlib.colors import ListedColormap

    with style():
        fig, ax = _figure(figsize=(11.5, 0.45 * len(rows) + 2.8))
        for r in results.itertuples(index=False):
            d = r._asdict()
            cat = 2 * bool(d[attack_col]) + (
                bool(d[accepted_col]) if d[attack_col] else not bool(d[accepted_col])
            )
            grid[rows.index(str(d[row_col])), cols.index(str(d[column_col]))] = cat
            if text_col:
                ax.text(
                    cols.index(str(d[column_col])),
                    rows.index(str(d[row_col])),
                    str(d[text_col]),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if cat in (2, 3) else "black",
                    fontweight="bold" if cat in (1, 3) else "normal",
                )
        cmap = ListedColormap([c for _, c in LAB_OUTCOMES])
        ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=3.5, aspect="auto")
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.grid(False)
        used = sorted({int(v) for v in grid[np.isfinite(grid)]})
        ax.legend(
            handles=[Patch(color=LAB_OUTCOMES[k][1], label=LAB_OUTCOMES[k][0]) for k in used],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12),
            ncol=2,
        )
        return _finish(fig, ax, title, xlabel, ylabel, note)
