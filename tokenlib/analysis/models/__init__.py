"""Exposure models: what a stolen token, proof or credential store is worth to an attacker
under each binding mechanism, per flow of an inventory.

* :mod:`.mechanisms` — the one typed definition of mechanisms, scenarios and support views;
* :mod:`.context` — :class:`FlowContext`, every per-flow fact the models read;
* :mod:`.support` — which client, AS, RS and path can carry each binding (structural);
* :mod:`._math` — closed-form window distributions; :mod:`.components` — the mechanism x
  scenario semantics (RFC sections in each docstring); :mod:`.time_to_use` — the attacker's
  time-to-use; :mod:`.exposure` — aggregation into the tables the notebooks show;
* :mod:`.simulation` — a discrete-event simulation sharing no code with the closed form.
"""

from __future__ import annotations

from tokenlib.analysis.models.components import components, max_replays, scenario_weight
from tokenlib.analysis.models.context import FlowContext, privilege_class
from tokenlib.analysis.models.exposure import (
    Exposure,
    Metric,
    cell_statistics,
    current_mechanism,
    exposure_arrays,
    exposure_by_mechanism,
    exposure_by_scenario,
    flow_exposure,
    mechanism_comparison,
    replay_by_client_path,
    replay_windows,
    usable_share,
    window_survival,
)
from tokenlib.analysis.models.mechanisms import (
    DPOP_MECHANISMS,
    FAMILIES,
    MECHANISMS,
    SCENARIO_GROUPS,
    SCENARIOS,
    TOKEN_THEFT_SCENARIOS,
    VIEWS,
    Family,
    Mechanism,
    Scenario,
    ScenarioGroup,
    View,
    mechanism,
    scenario,
)
from tokenlib.analysis.models.support import Support, structural_support
from tokenlib.analysis.models.time_to_use import TimeToUse

__all__ = [
    "DPOP_MECHANISMS",
    "FAMILIES",
    "MECHANISMS",
    "SCENARIOS",
    "SCENARIO_GROUPS",
    "TOKEN_THEFT_SCENARIOS",
    "VIEWS",
    "Exposure",
    "Family",
    "FlowContext",
    "Mechanism",
    "Metric",
    "Scenario",
    "ScenarioGroup",
    "Support",
    "TimeToUse",
    "View",
    "cell_statistics",
    "components",
    "current_mechanism",
    "exposure_arrays",
    "exposure_by_mechanism",
    "exposure_by_scenario",
    "flow_exposure",
    "max_replays",
    "mechanism",
    "mechanism_comparison",
    "privilege_class",
    "replay_by_client_path",
    "replay_windows",
    "scenario",
    "scenario_weight",
    "structural_support",
    "usable_share",
    "window_survival",
]
