"""Models of replay windows, blast radius and deployability over OAuth flow inventories.

Needs the ``analysis`` extra (numpy, pandas, pyarrow, matplotlib, scipy). Names are
imported lazily (PEP 562) so ``python -m tokenlib.analysis.<module>`` runs cleanly and
``import tokenlib.analysis`` stays cheap; notebooks write
``from tokenlib.analysis import load_inventory, ...``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # inventory: schema, loader, generator
    "DEFAULT_SEED": "inventory",
    "PROFILES": "inventory",
    "Inventory": "inventory",
    "InventoryError": "inventory",
    "Problem": "inventory",
    "ValidationReport": "inventory",
    "exposure_matrix": "inventory",
    "generate_inventory": "inventory",
    "load_inventory": "inventory",
    "path_features": "inventory",
    "summary": "inventory",
    "write_inventory": "inventory",
    "load_reference": "reference",
    "Profile": "profiles",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenlib.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tokenlib.analysis.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
