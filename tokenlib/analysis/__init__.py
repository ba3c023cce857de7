"""Exposure, blast-radius and deployability models over OAuth flow inventories.

Needs the ``analysis`` extra (numpy, pandas, pyarrow, matplotlib, scipy). Names are
imported lazily (PEP 562) so ``python -m tokenlib.analysis.<module>`` runs cleanly and
``import tokenlib.analysis`` stays cheap; notebooks write
``from tokenlib.analysis import load_inventory, ...``.
"""

from __future__ import annotations

import importlib
from typing import Any

# `recommend` stays the submodule; its main function is exported as `recommend_flows`.
_ALIASES: dict[str, tuple[str, str]] = {"recommend_flows": ("recommend", "recommend")}

_EXPORTS: dict[str, str] = {
    # inventory: schema, loader, generator
    "DEFAULT_SEED": "inventory",
    "PROFILES": "inventory",
    "Inventory": "inventory",
    "InventoryError": "inventory",
    "Problem": "inventory",
    "ValidationReport": "inventory",
    "derive_authorization_servers": "inventory",
    "exposure_matrix": "inventory",
    "generate_inventory": "inventory",
    "load_inventory": "inventory",
    "path_features": "inventory",
    "summary": "inventory",
    "write_inventory": "inventory",
    # importers (IdP client registrations) and the provenance of each value
    "ImportResult": "importers",
    "import_files": "importers",
    "read_overlay": "importers",
    "write_import": "importers",
    "ProvenanceSummary": "provenance",
    "ObserveError": "observe",
    "observe": "observe",
    "write_observed": "observe",
    "summarise_provenance": "provenance",
    "load_reference": "reference",
    "Profile": "profiles",
    "ModelParameters": "params",
    "ParameterSpec": "params",
    "ParameterError": "params",
    "CryptoCosts": "params",
    "parameter_specs": "params",
    "parameter_table": "params",
    "load_crypto_costs": "params",
    # models: mechanisms, scenarios, per-flow context, closed form, aggregation
    "MECHANISMS": "models",
    "SCENARIOS": "models",
    "TOKEN_THEFT_SCENARIOS": "models",
    "VIEWS": "models",
    "FlowContext": "models",
    "Mechanism": "models",
    "Scenario": "models",
    "TimeToUse": "models",
    "mechanism": "models",
    "scenario": "models",
    "replay_windows": "models",
    "replay_by_client_path": "models",
    "exposure_by_mechanism": "models",
    "exposure_by_scenario": "models",
    "mechanism_comparison": "models",
    "usable_share": "models",
    "flow_exposure": "models",
    "window_survival": "models",
    "current_mechanism": "models",
    "structural_support": "models",
    "simulate": "models.simulation",
    "draw_parameters": "uncertainty",
    "interval": "uncertainty",
    "holds": "uncertainty",
    "headline_numbers": "headline",
    "export_headline_numbers": "headline",
    "CONTROLS": "controls",
    "Control": "controls",
    "control_effects": "controls",
    "rank_controls": "controls",
    "credential_store_exposure": "controls",
    "blast_radius": "blast",
    "blast_before_after": "blast",
    "lateral_paths": "blast",
    "edge_impact": "blast",
    "integrator_blast": "blast",
    "service_graph": "blast",
    "FAMILIES": "deploy",
    "deployability": "deploy",
    "deployable_share": "deploy",
    "token_binding_counterfactual": "deploy",
    "timeline_deployability": "deploy",
    "adoption_curve": "deploy",
    "deployment_cost": "deploy",
    "load_component_support": "deploy",
    "load_adoption_timeline": "deploy",
    "recommendation_summary": "recommend",
    "export_recommendations": "recommend",
    "RECOMMENDATIONS": "recommend",
    "tornado": "sensitivity",
    "sweep": "sensitivity",
    "headline_metrics": "sensitivity",
    "conclusion_checks": "sensitivity",
    "conclusion_robustness": "sensitivity",
    "METRICS": "sensitivity",
    "CONCLUSIONS": "sensitivity",
    "save_figure": "plots",
    "build_report": "report",
}

__all__ = sorted([*_EXPORTS, *_ALIASES])


def __getattr__(name: str) -> Any:
    if name in _ALIASES:
        module, attr = _ALIASES[name]
    elif name in _EXPORTS:
        module, attr = _EXPORTS[name], name
    else:
        raise AttributeError(f"module 'tokenlib.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tokenlib.analysis.{module}"), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
