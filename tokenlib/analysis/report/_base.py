"""Constants, errors and result types of the report build, and the notebook finder."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tokenlib.analysis.report._format import _count, _share

NOTEBOOK_NAME_RE = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")
PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_NOTEBOOKS = PROJECT_ROOT / "notebooks"
QUICK_N_SIM = 2_000
#: joint uncertainty draws in a quick report (the full report uses each notebook's DRAWS)
QUICK_DRAWS = 20
HEADLINE_CSV = "headline_numbers.csv"
#: environment variable that switches the notebooks' result cache on (``_diskcache``)
CACHE_ENV = "TOKENLIB_CACHE_DIR"
#: the cache folder, next to the report folder
CACHE_DIRNAME = ".tokenlib-cache"
APPENDIX_PAGE = "presentation/appendix_parameters.html"
REFERENCES_PAGE = "presentation/references.html"
REPORT_TITLE = "Token theft and sender-constrained tokens"
#: a temporary build folder whose owner is gone, or older than this, is removed by the next run
STALE_AFTER_S = 3600.0
#: a temporary build folder without an owner file is left alone this long (it is being created)
_UNOWNED_GRACE_S = 300.0
_OWNER_FILE = ".owner.json"
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_WIDGET_NOTE = "[interactive control: open this notebook in JupyterLab to use it]"


class InventoryValidationError(Exception):
    """The inventory failed the loader's validation (or has no flows); one line, file name only."""


class NoNotebooksError(Exception):
    """No notebook matched the requested pattern."""


class NotebookExecutionError(Exception):
    """A notebook raised while executing; names the notebook and the failing cell."""


@dataclass(frozen=True, slots=True)
class NotebookPage:
    """One executed notebook and the pages rendered from it (paths relative to the report)."""

    name: str
    title: str
    summary: str
    page: str
    presentation: str
    notebook: str
    seconds: float
    figures: tuple[str, ...] = ()


_SOURCE_WORDS = {
    "registered": "registered (from the identity provider)",
    "observed": "observed (in access logs)",
    "declared": "declared (your overlay)",
}


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the inventory behind a report is, as a reader may see it (never an absolute path).

    ``kind`` is ``"synthetic"`` (the bundled inventory, with its generator ``profile`` and
    ``seed``) or ``"imported"`` (a user's file: ``name`` is its file name, ``date`` the file's
    modification date, ``default_share`` the share of its values filled by documented defaults
    rather than recorded in the file).
    """

    kind: str
    name: str
    flows: int
    services: int
    authorization_servers: int
    profile: str | None = None
    seed: str | None = None
    date: str | None = None
    default_share: float | None = None
    notes: tuple[str, ...] = ()
    #: share of the cells by source (registered, observed, declared, assumed) when the
    #: inventory has a provenance table (written by ``tokenlib inventory import``)
    sources: tuple[tuple[str, float], ...] = ()

    def sentence(self) -> str:
        """One plain sentence for the banner."""
        counts = (
            f"{_count(self.flows)} flows, {_count(self.services)} resource servers, "
            f"{_count(self.authorization_servers)} authorization servers"
        )
        if self.kind == "synthetic":
            how = ", ".join(
                x
                for x in (
                    f"profile {self.profile}" if self.profile else "",
                    f"seed {self.seed}" if self.seed else "",
                )
                if x
            )
            what = (
                "Bundled synthetic inventory"
                if self.name == "bundled synthetic inventory"
                else f"Synthetic inventory {self.name} (tokenlib inventory generate)"
            )
            return (
                f"{what} ({how}; {counts}): generated for illustration, "
                "not observed in any organisation."
            )
        parts = [f"Imported inventory {self.name}"]
        if self.date:
            parts.append(f"file dated {self.date}")
        parts.append(counts)
        text = ", ".join(parts)
        stated = [(src, x) for src, x in self.sources if src != "assumed" and x > 0]
        if stated:
            text += "; values " + ", ".join(
                f"{_share(x)} {_SOURCE_WORDS.get(src, src)}" for src, x in stated
            )
        if self.default_share is not None:
            text += (
                f"; {_share(self.default_share)} of its values are documented defaults "
                "(assumed, not recorded in the file)"
            )
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Takeaway:
    """One line of the executive summary: a sentence, its range, basis and page."""

    metric_id: str
    sentence: str
    value: str
    basis: str
    page_prefix: str
    holds: bool = True


@dataclass(frozen=True, slots=True)
class Report:
    """A finished report: where it is and what it contains."""

    out_dir: Path
    pages: tuple[NotebookPage, ...]
    figures: tuple[str, ...]
    exports: tuple[str, ...]
    seconds: float
    provenance: Provenance | None = None
    extras: tuple[str, ...] = field(default=())


def find_notebooks(pattern: str | None = None) -> list[Path]:
    """Notebooks to run, sorted by name: ``notebooks/NN_*.ipynb`` or those matching ``pattern``.

    A relative ``pattern`` is tried from the current directory first, then from the project's
    ``notebooks/`` folder (so ``--notebooks '0[0-2]_*.ipynb'`` works from anywhere).
    """
    if pattern is None:
        found = list(DEFAULT_NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    elif Path(pattern).is_absolute():
        anchor = Path(Path(pattern).anchor)
        found = list(anchor.glob(str(Path(pattern).relative_to(anchor))))
    else:
        found = list(Path.cwd().glob(pattern)) or list(DEFAULT_NOTEBOOKS.glob(pattern))
    return sorted((p.resolve() for p in found if p.suffix == ".ipynb"), key=lambda p: p.name)
