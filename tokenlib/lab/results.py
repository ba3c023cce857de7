"""The live lab's results: one row per scenario, the CSV export and the figures.

Columns (:data:`COLUMNS`, a user contract — names stay stable): ``replay_cache``,
``binding``, ``proxy_mode``, ``attack`` (the scenario); ``accepted``, ``status``,
``error``, ``error_description`` (what the RS answered); ``expected_accepted``,
``matches_expected``, ``expectation`` (from :mod:`tokenlib.lab.scenarios`); ``flag`` (a
finding: ``bearer_replay``, ``binding_broken``, ``header_injection``, ``proof_replay``,
``stolen_token_accepted`` or empty); ``rs_instance`` (which instance answered 200);
``latency_ms`` (baseline: median on a kept-alive connection; attack: one request on a
fresh connection) and ``added_latency_ms`` (baselines only: the gap to bearer on the same
path and phase). The CSV is written atomically (never half-written).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pandas as pd

from tokenlib._atomic import atomic_path
from tokenlib.binding import Binding
from tokenlib.lab.proxy import PROXY_MODES
from tokenlib.lab.scenarios import expectation, flag_for

if TYPE_CHECKING:
    import httpx
    from matplotlib.figure import Figure

__all__ = ["COLUMNS", "plot_lab"]

_ERROR_PARAM: Final = re.compile(r'error="([^"]+)"')

COLUMNS: Final = (
    "replay_cache",
    "binding",
    "proxy_mode",
    "attack",
    "accepted",
    "status",
    "error",
    "error_description",
    "expected_accepted",
    "matches_expected",
    "flag",
    "rs_instance",
    "latency_ms",
    "added_latency_ms",
    "expectation",
)


@dataclass
class _Outcome:
    accepted: bool
    status: int
    error: str | None
    error_description: str | None
    rs_instance: int | None
    latency_ms: float


def _outcome(response: httpx.Response, latency: float) -> _Outcome:
    error = description = None
    instance = None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and isinstance(body, dict):
        instance = body.get("instance")
    elif isinstance(body, dict):
        error = body.get("error")
        description = body.get("error_description")
    if error is None and response.status_code != 200:
        match = _ERROR_PARAM.search(response.headers.get("www-authenticate", ""))
        error = match.group(1) if match else f"http_{response.status_code}"
    return _Outcome(
        response.status_code == 200, response.status_code, error, description, instance, latency
    )


def _frame(
    order: Sequence[tuple[str, str, str, str]],
    results: Mapping[int, _Outcome],
    bearer_ms: Mapping[tuple[str, str], float],
) -> pd.DataFrame:
    rows = []
    for index, (cache, binding, mode, attack) in enumerate(order):
        outcome = results[index]
        expected, why = expectation(binding, mode, attack, cache)
        rows.append(
            {
                "replay_cache": cache,
                "binding": str(binding),  # the plain value, also for a Binding member
                "proxy_mode": mode,
                "attack": attack,
                "accepted": outcome.accepted,
                "status": outcome.status,
                "error": outcome.error,
                "error_description": outcome.error_description,
                "expected_accepted": expected,
                "matches_expected": outcome.accepted == expected,
                "flag": flag_for(binding, attack, outcome.accepted),
                "rs_instance": outcome.rs_instance,
                "latency_ms": round(outcome.latency_ms, 3),
                "expectation": why,
            }
        )
    frame = pd.DataFrame(rows)
    reference = pd.Series(
        [
            bearer_ms[(c, m)]
            for c, m in zip(frame["replay_cache"], frame["proxy_mode"], strict=True)
        ],
        index=frame.index,
    )
    added = frame["latency_ms"] - reference.round(3)
    frame["added_latency_ms"] = added.where(frame["attack"] == "baseline").round(3)
    frame["rs_instance"] = frame["rs_instance"].astype("Int64")
    return frame[list(COLUMNS)]


def _write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# -- figures ---------------------------------------------------------------------------------


_MODE_LABELS: Final = {
    "passthrough": "passthrough",
    "terminate": "terminate",
    "terminate_forward_cert": "terminate +\nforward cert",
    "misconfigured_forward": "misconfigured\nforward",
}
#: Outcome categories of the matrix figure: (legend label, colour).
_CATEGORIES: Final = (
    ("legitimate request accepted", "#56B4E9"),
    ("attack rejected", "#009E73"),
    ("finding (attack accepted, binding broken)", "#D55E00"),
)


def plot_lab(results: pd.DataFrame) -> tuple[Figure, Figure]:
    """Two slide-ready figures: the outcome matrix (per scenario and proxy mode: accepted
    or the error code, findings in vermillion) and the median latency per request of each
    binding per proxy mode (the added cost of a binding is its gap to bearer)."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from tokenlib.analysis.plots import color_for, style

    suffix = np.where(results["replay_cache"] == "shared_redis", " (shared Redis)", "")
    rows = results.assign(
        label=results["binding"] + " · " + results["attack"].str.replace("_", " ") + suffix
    )
    labels = list(dict.fromkeys(rows["label"]))
    modes = list(PROXY_MODES)
    grid = np.full((len(labels), len(modes)), np.nan)
    with style():
        fig1 = Figure(figsize=(11.5, 0.45 * len(labels) + 2.6))
        ax = fig1.add_subplot()
        for r in rows.itertuples():
            category = 2 if r.flag else (0 if r.attack == "baseline" else 1)
            grid[labels.index(r.label), modes.index(r.proxy_mode)] = category
        cmap = ListedColormap([colour for _, colour in _CATEGORIES])
        ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=2.5, aspect="auto")
        for r in rows.itertuples():
            text = "accepted" if r.accepted else f"{r.status} {r.error or ''}".strip()
            ax.text(
                modes.index(r.proxy_mode),
                labels.index(r.label),
                text,
                ha="center",
                va="center",
                fontsize=9,
                color="white" if r.flag or r.attack != "baseline" else "black",
                fontweight="bold" if r.flag else "normal",
            )
        ax.set_xticks(range(len(modes)), [_MODE_LABELS[m] for m in modes])
        ax.set_yticks(range(len(labels)), labels)
        ax.grid(False)
        ax.set_title("Live lab: what the resource server accepted", loc="left")
        ax.set_xlabel("proxy mode in front of the resource server")
        ax.set_ylabel("binding · attack")
        ax.legend(
            handles=[Patch(color=colour, label=name) for name, colour in _CATEGORIES],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncol=3,
        )
        fig1.tight_layout()

        base = results[results["attack"] == "baseline"]
        fig2 = Figure(figsize=(10.0, 5.2))
        ax2 = fig2.add_subplot()
        series = [
            (Binding.BEARER, "per_instance_memory", "bearer", "bearer"),
            (Binding.MTLS, "per_instance_memory", "mTLS", "mtls"),
            (
                Binding.DPOP,
                "per_instance_memory",
                "DPoP, per-instance cache",
                "dpop_per_instance_cache",
            ),
            (Binding.DPOP, "shared_redis", "DPoP, shared Redis cache", "dpop_shared_cache"),
        ]
        series = [s for s in series if ((base.binding == s[0]) & (base.replay_cache == s[1])).any()]
        width = 0.8 / max(len(series), 1)
        for i, (binding, cache, name, colour_key) in enumerate(series):
            part = base[(base.binding == binding) & (base.replay_cache == cache)]
            part = part.set_index("proxy_mode").reindex(modes)
            xs = np.arange(len(modes)) + (i - (len(series) - 1) / 2) * width
            ax2.bar(xs, part["latency_ms"], width, label=name, color=color_for(colour_key, i))
        ax2.set_xticks(range(len(modes)), [_MODE_LABELS[m] for m in modes])
        ax2.set_title("Latency per request by binding and path (median)", loc="left")
        ax2.set_xlabel("proxy mode")
        ax2.set_ylabel("request latency (ms)")
        ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
        fig2.text(
            0.01,
            -0.02,
            "Loopback HTTPS, kept-alive connections; DPoP includes creating the proof on the "
            "client. The added cost of a binding is its gap to bearer on the same path. The "
            "rejected mTLS request behind 'terminate' is timed too.",
            fontsize=9,
            color="#555555",
            ha="left",
            va="top",
            wrap=True,
        )
        fig2.tight_layout()
    return fig1, fig2
