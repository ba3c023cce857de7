"""Headline numbers and the executive summary's takeaways (only claims that survive their
ranges)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokenlib.analysis.report._base import Takeaway
from tokenlib.analysis.report._format import _count, _share, _span

# ---------------------------------------------------------------------------------------------
# Executive summary: five to seven takeaways read from exports/headline_numbers.csv.

#: metric-id prefix -> notebook prefix of the page that shows it
_METRIC_PAGES = (
    ("deployable_share_", "04"),
    ("token_binding_", "04"),
    ("usable_share_", "02"),
    ("token_theft_removed_", "02"),
    ("exposure_hours_", "02"),
    ("credential_store_", "00"),
    ("blast_radius_", "03"),
    ("recommendations_", "05"),
)


def _page_for(metric_id: str) -> str:
    for prefix, page in _METRIC_PAGES:
        if metric_id.startswith(prefix):
            return page
    return "00"


def read_headline(path: Path) -> dict[str, dict[str, Any]] | None:
    """Rows of ``headline_numbers.csv`` by metric id (numbers as floats, NaN when empty)."""
    if not path.exists():
        return None
    rows: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            item: dict[str, Any] = {k: (v or "").lstrip("'") for k, v in row.items() if k}
            for key in ("value", "low", "high"):
                try:
                    item[key] = float(item.get(key, ""))
                except ValueError:
                    item[key] = math.nan
            rows[str(item.get("metric_id", ""))] = item
    return rows


def _finite(row: Mapping[str, Any] | None) -> bool:
    return row is not None and all(math.isfinite(row[k]) for k in ("value", "low", "high"))


def _ranged(row: Mapping[str, Any]) -> str:
    if row["low"] == row["high"] == row["value"]:
        return _share(row["value"])
    return f"{_share(row['value'])} (range {_span(row['low'], row['high'])})"


def _change(row: Mapping[str, Any], what: str, *, ranged: bool = False) -> tuple[str, bool]:
    """How a "removed" share reads: removes / adds / either way (the range crosses zero)."""
    v, lo, hi = row["value"], row["low"], row["high"]
    if lo > 0:
        return f"removes {_ranged(row) if ranged else _share(v)} of {what}", True
    if hi < 0:
        span = _span(-hi, -lo) if lo != hi else _share(-v)
        return f"adds {_share(-v)} (range {span}) to {what} instead of removing any", False
    if lo == hi == v == 0:
        return f"changes nothing in {what}", False
    return (
        f"may remove or add to {what}: the central estimate is {_share(v)}, but the range "
        f"({_span(lo, hi)}) crosses zero, so this does not hold across the assumptions",
        False,
    )


def takeaways(rows: Mapping[str, Mapping[str, Any]], *, flows: int | None = None) -> list[Takeaway]:
    """Five to seven plain-language takeaways, each against today's inventory, from the rows of
    ``headline_numbers.csv`` (:func:`read_headline`); a takeaway whose metric is missing is
    left out, one that cannot be computed or does not hold is worded as such."""
    out: list[Takeaway] = []

    def add(mid: str, sentence: str, row: Mapping[str, Any], *, holds: bool = True) -> None:
        value = _ranged(row) if _finite(row) else "n/a"
        out.append(Takeaway(mid, sentence, value, str(row.get("basis", "")), _page_for(mid), holds))

    def missing(mid: str, what: str) -> None:
        row = rows[mid]
        out.append(
            Takeaway(
                mid,
                f"{what} could not be computed on this inventory.",
                "n/a",
                str(row.get("basis", "")),
                _page_for(mid),
                False,
            )
        )

    dpop, mtls = rows.get("deployable_share_dpop_today"), rows.get("deployable_share_mtls_today")
    if dpop is not None:
        if not _finite(dpop):
            missing("deployable_share_dpop_today", "The share of flows that could use DPoP today")
        else:
            v = dpop["value"]
            n = f" ({_count(round(v * flows))} of {_count(flows)})" if flows else ""
            if v > 0:
                text = (
                    f"{_share(v)} of flows{n} could enforce DPoP today: their client, "
                    "authorization server and resource server already support it."
                )
            else:
                text = "No flow could enforce DPoP today: each lacks support at the client, "
                text += "the authorization server or the resource server."
            if _finite(mtls):
                assert mtls is not None
                text += f" {_share(mtls['value'])} could enforce mTLS-bound tokens."
            add("deployable_share_dpop_today", text, dpop, holds=v > 0)

    usable = rows.get("usable_share_today")
    if usable is not None:
        if not _finite(usable):
            missing("usable_share_today", "The share of stolen tokens still usable")
        else:
            add(
                "usable_share_today",
                f"{_share(usable['value'])} of stolen access and refresh tokens would still "
                "work when the attacker uses them.",
                usable,
            )

    up = rows.get("token_theft_removed_dpop_nonce_shared_cache_upgraded")
    today = rows.get("token_theft_removed_dpop_nonce_shared_cache_today")
    if up is not None or today is not None:
        mid = (
            "token_theft_removed_dpop_nonce_shared_cache_upgraded"
            if up is not None
            else "token_theft_removed_dpop_nonce_shared_cache_today"
        )
        main = up if up is not None else today
        assert main is not None
        if not _finite(main):
            missing(mid, "The token-theft exposure DPoP removes")
        else:
            phrase, holds = _change(main, "today's token-theft exposure")
            who = "once every resource server is upgraded" if up is not None else "today"
            text = (
                "Moving every flow to DPoP with server nonces and a shared replay store "
                f"{phrase} {who}"
            )
            if up is not None and _finite(today):
                assert today is not None
                phrase_today, _ = _change(today, "it", ranged=True)
                text += f"; with today's resource-server support it {phrase_today}"
            add(mid, text + ".", main, holds=holds)

    store = rows.get("credential_store_share_today")
    if store is not None:
        if not _finite(store):
            missing("credential_store_share_today", "The credential-store share of exposure")
        else:
            add(
                "credential_store_share_today",
                f"{_share(store['value'])} of today's exposure comes from copies of a client's "
                "credential store (private key, certificate or client secret); no token "
                "binding stops those, so they need their own controls.",
                store,
            )

    recs = rows.get("recommendations_removed_share")
    if recs is not None:
        if not _finite(recs):
            missing("recommendations_removed_share", "The effect of the recommendations")
        else:
            phrase, holds = _change(recs, "today's token-theft exposure")
            add(
                "recommendations_removed_share",
                f"Following every recommendation of this report {phrase}.",
                recs,
                holds=holds,
            )

    blast = rows.get("blast_radius_removed_dpop_nonce_shared_cache_today")
    if blast is not None:
        if not _finite(blast):
            missing("blast_radius_removed_dpop_nonce_shared_cache_today", "The blast radius")
        else:
            phrase, holds = _change(blast, "the blast radius")
            add(
                "blast_radius_removed_dpop_nonce_shared_cache_today",
                "With today's resource-server support, DPoP with server nonces and a shared "
                f"replay store {phrase} (the services a stolen token reaches, weighted by "
                "what is at stake).",
                blast,
                holds=holds,
            )

    tb = rows.get("token_binding_counterfactual_share")
    if tb is not None:
        if not _finite(tb):
            missing("token_binding_counterfactual_share", "Token Binding's reach")
        else:
            text = (
                "Token Binding is not an option: even at its best historical client support "
                f"it could reach {_share(tb['value'])} of flows, because it needs every hop to "
                "pass TLS through untouched"
            )
            worse = rows.get("token_theft_removed_token_binding_today")
            if _finite(worse) and worse is not None and worse["high"] < 0:
                text += (
                    f"; moving to it today would add {_share(-worse['value'])} to "
                    "today's token-theft exposure"
                )
            add("token_binding_counterfactual_share", text + ".", tb)
    return out[:7]
