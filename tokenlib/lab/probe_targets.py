"""Targets for :mod:`tokenlib.probe` on loopback: the lab's conforming resource server, the
same with server nonces, and the deliberately weak one, with tokens and keys to probe them.

:class:`ProbeTargets` (a context manager) creates a throwaway PKI and an issuer in a private
temporary folder, mints one DPoP-bound (RFC 9449 §6) and one certificate-bound (RFC 8705
§3) access token for alice, writes her DPoP key (0600) next to her certificate, and serves
over HTTPS on 127.0.0.1:

* ``conforming_url`` — :class:`~tokenlib.integrations.asgi.DPoPMiddleware` over a
  :class:`~tokenlib.server.ResourceServer` with default settings (no trusted proxies);
* ``nonce_url`` — the same with ``require_nonce=True`` (RFC 9449 §9);
* ``weak_url`` — :class:`~tokenlib.lab.weak_rs.WeakResourceServer` with ``weaknesses``.

:meth:`ProbeTargets.probe` runs the probe against one of them; :func:`findings_table`
puts several reports side by side. Everything is stopped and the folder (keys included)
removed on exit, also on error. Loopback only, for experiments.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from tokenlib.binding import Binding
from tokenlib.lab.weak_rs import WEAKNESSES

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from tokenlib.lab._serve import ServedApp
    from tokenlib.lab.pki import LabPKI
    from tokenlib.probe.runner import ProbeReport

__all__ = ["ProbeTargets", "findings_table", "plot_findings"]

Which = Literal["conforming", "nonce", "weak"]
AUDIENCE: Final = "https://rs.lab.invalid"
_PATH: Final = "/orders/42"
TARGET_LABELS: Final[dict[str, str]] = {
    "conforming": "Conforming RS (tokenlib defaults)",
    "nonce": "Conforming RS with server nonces",
    "weak": "Deliberately weak RS",
}


@dataclass
class ProbeTargets:
    """The probe targets (see the module docstring). Paths and tokens after ``__enter__``."""

    weaknesses: Iterable[str] = WEAKNESSES
    token_lifetime: int = 600
    directory: Path = field(init=False, repr=False)
    pki: LabPKI = field(init=False, repr=False)
    dpop_token: str = field(init=False, repr=False, default="")
    mtls_token: str = field(init=False, repr=False, default="")
    dpop_key_file: Path = field(init=False, repr=False)
    urls: dict[str, str] = field(init=False, default_factory=dict)
    _stack: contextlib.ExitStack = field(
        init=False, default_factory=contextlib.ExitStack, repr=False
    )

    def __enter__(self) -> ProbeTargets:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_cert_file

    @property
    def cert_file(self) -> Path:
        return self.pki.clients["alice"].cert_file

    @property
    def cert_key_file(self) -> Path:
        return self.pki.clients["alice"].key_file

    def _start(self) -> None:
        from tokenlib.bearer import Issuer
        from tokenlib.integrations.asgi import DPoPMiddleware
        from tokenlib.jwk import generate_key, jwk_thumbprint, write_private_key
        from tokenlib.lab._serve import ServedApp
        from tokenlib.lab.environment import _rs_app
        from tokenlib.lab.pki import create_pki
        from tokenlib.lab.weak_rs import WeakResourceServer
        from tokenlib.server import ResourceServer

        self.directory = Path(tempfile.mkdtemp(prefix="tokenlib-probe-lab-"))
        self._stack.callback(shutil.rmtree, self.directory, True)
        (self.directory / "pki").mkdir(mode=0o700)
        self.pki = create_pki(self.directory / "pki", clients=("alice",))
        issuer_url = "https://as.lab.invalid"
        issuer = Issuer(issuer_url, generate_key("ES256"), lifetime=self.token_lifetime)
        dpop_key = generate_key("ES256")
        self.dpop_key_file = write_private_key(self.directory / "alice-dpop.key", dpop_key)
        self.dpop_token = issuer.issue(
            subject="alice",
            client_id="alice",
            audience=AUDIENCE,
            scope="orders:read",
            jkt=jwk_thumbprint(dpop_key),
        )
        self.mtls_token = issuer.issue(
            subject="alice",
            client_id="alice",
            audience=AUDIENCE,
            scope="orders:read",
            x5t_s256=self.pki.clients["alice"].x5t_s256,
        )

        def served(app_for: Any) -> ServedApp:
            server = ServedApp(
                app_for, ssl_context=self.pki.server_context(client_auth="optional"), lifespan="off"
            )
            server.bind()
            self._stack.callback(server.stop)
            return server

        for which in ("conforming", "nonce"):
            holder: dict[str, Any] = {}

            async def app(
                scope: Any, receive: Any, send: Any, holder: dict[str, Any] = holder
            ) -> None:
                await holder["app"](scope, receive, send)

            server = served(app)
            holder["app"] = DPoPMiddleware(
                _rs_app(0),
                resource_server=ResourceServer(
                    issuer=issuer_url,
                    audience=AUDIENCE,
                    jwks=issuer.jwks(),
                    require_nonce=which == "nonce",
                ),
                public_base_url=server.url,
            )
            server.start()
            self.urls[which] = server.url + _PATH
        holder = {}

        async def weak_app(scope: Any, receive: Any, send: Any) -> None:
            await holder["app"](scope, receive, send)

        weak = served(weak_app)
        holder["app"] = WeakResourceServer(
            issuer=issuer_url,
            audience=AUDIENCE,
            jwks=issuer.jwks(),
            public_base_url=weak.url,
            weaknesses=self.weaknesses,
        )
        weak.start()
        self.urls["weak"] = weak.url + _PATH

    def probe(
        self,
        which: Which,
        binding: Literal[Binding.DPOP, Binding.MTLS] = Binding.DPOP,
        **options: Any,
    ) -> ProbeReport:
        """Probe target ``which`` with alice's ``binding`` token (options go to
        :func:`tokenlib.probe.probe`, e.g. ``rate=``)."""
        from tokenlib.probe.runner import probe

        if binding == Binding.DPOP:
            return probe(
                self.urls[which], token=self.dpop_token, key=self.dpop_key_file,
                verify=self.ca_file, **options,
            )  # fmt: skip
        return probe(
            self.urls[which], token=self.mtls_token, cert=self.cert_file,
            cert_key=self.cert_key_file, verify=self.ca_file, **options,
        )  # fmt: skip


def findings_table(reports: Mapping[str, ProbeReport | Sequence[ProbeReport]]) -> pd.DataFrame:
    """One row per check, one column per target (``passed`` / ``failed`` / ``not
    applicable``), plus the check's ``title``, ``severity`` and ``rfc``. A target may have
    several reports (its DPoP and its mTLS run): a check keeps the outcome of the report
    where it applied."""
    import pandas as pd

    rows: dict[str, dict[str, Any]] = {}
    for name, given in reports.items():
        for report in [given] if not isinstance(given, Sequence) else given:
            for r in report.results:
                row = rows.setdefault(
                    r.id,
                    {"check": r.id, "title": r.check.title, "severity": r.severity,
                     "rfc": r.check.rfc},
                )  # fmt: skip
                if row.get(name) in (None, "not applicable"):
                    row[name] = r.status.replace("_", " ")
    return pd.DataFrame(list(rows.values()))


_FIGURE_LABELS: Final[dict[str, str]] = {
    "conforming": "Conforming RS\n(tokenlib defaults)",
    "nonce": "Conforming RS\nwith server nonces",
    "weak": "Deliberately\nweak RS",
}
_COLOURS: Final = {"passed": "#009E73", "failed": "#D55E00", "not applicable": "#DDDDDD"}


def plot_findings(table: pd.DataFrame, targets: Iterable[str]) -> Figure:
    """Check × target grid: green passed, vermillion failed, grey not applicable."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from tokenlib.analysis.plots import style

    columns = list(targets)
    order = list(_COLOURS)
    grid = np.array([[order.index(str(v)) for v in table[c]] for c in columns]).T
    with style():
        fig = Figure(figsize=(2.2 * len(columns) + 6.5, 0.26 * len(table) + 2.2))
        ax = fig.add_subplot()
        ax.imshow(grid, cmap=ListedColormap(list(_COLOURS.values())), vmin=-0.5, vmax=2.5,
                  aspect="auto")  # fmt: skip
        labels = [f"{t} [{s}]" for t, s in zip(table["title"], table["severity"], strict=True)]
        ax.set_yticks(range(len(table)), labels, fontsize=8)
        ax.set_xticks(range(len(columns)), [_FIGURE_LABELS.get(c, c) for c in columns])
        ax.grid(False)
        ax.set_xticks(np.arange(-0.5, len(columns), 1), minor=True)
        ax.set_yticks(np.arange(-0.5, len(table), 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        ax.set_title("What each resource server enforces (probe findings)", loc="left")
        ax.set_xlabel("probed resource server")
        ax.set_ylabel("check [severity]")
        ax.legend(
            handles=[Patch(color=c, label=n) for n, c in _COLOURS.items()],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.06),
            ncol=3,
        )
        fig.tight_layout()
    return fig
