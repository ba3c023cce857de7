"""Every page of the built report in headless Chromium at 1280 px (issue 9, "Done when").

One browser process opens every HTML page of the shared build (``_report_run.built_report``:
index, ``pages/``, ``presentation/``, ``report.html``) and records console errors, images that
did not load, horizontal overflow, network requests and the rendered text. The tests below
judge those records; each failure lists every offender with its page and a snippet.

The presentation pages and ``report.html`` are for readers, not analysts: their visible text
must not show code identifiers (model ids, parameter names, snake_case names in general,
Python reprs), scientific notation, absolute paths or truncation marks.

The browser is driven through the DevTools protocol over a websocket (``websocket-client``,
already a Jupyter dependency); no other browser tooling is needed.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _devtools import WIDTH, DevTools
from _report_run import built_report

from tokenlib.analysis import models, report
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.report_bundle import SINGLE_HTML, find_chromium

pytestmark = [pytest.mark.slow, pytest.mark.browser]

#: sub-pixel rounding only
TOLERANCE = 2
CHROMIUM = find_chromium()


# ---------------------------------------------------------------------------------------------
# The browser.


# What one page shows, measured in the page.
_MEASURE = """
(async () => {
  const W = %(width)d, TOL = %(tol)d;
  // lazy images load only when scrolled to: load every one, then judge it
  for (const i of document.images) { if (i.loading === 'lazy') i.loading = 'eager'; }
  await Promise.all(Array.from(document.images).map(i => i.complete ? null :
    new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r);
                       setTimeout(r, 10000); })));
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className.trim()
      ? '.' + el.className.trim().split(/\\s+/).slice(0, 2).join('.') : '');
  const snippet = el => ((el.innerText || el.textContent || '').replace(/\\s+/g, ' ')
    .trim().slice(0, 80));
  const scroller = document.scrollingElement || document.documentElement;
  const all = Array.from(document.body.querySelectorAll('*'));
  const wide = [];
  if (scroller.scrollWidth > W + TOL) {
    for (const el of all) {
      const r = el.getBoundingClientRect();
      const parent = el.parentElement;
      if (r.width > 0 && r.right > W + TOL &&
          !(parent && parent !== document.body && parent.getBoundingClientRect().right > W + TOL)) {
        wide.push(name(el) + ' (right edge ' + Math.round(r.right) + ' px): ' + snippet(el));
      }
    }
  }
  const sideways = [];
  for (const el of all) {
    const s = getComputedStyle(el);
    if ((s.overflowX === 'auto' || s.overflowX === 'scroll') && el.clientWidth > 0 &&
        el.scrollWidth > el.clientWidth + TOL) {
      sideways.push(name(el) + ' (' + el.scrollWidth + ' px in ' + el.clientWidth + ' px): ' +
                    snippet(el));
    }
  }
  const images = Array.from(document.images).map(i => ({
    src: (i.getAttribute('src') || '').slice(0, 80), alt: i.alt || '',
    ok: i.complete && i.naturalWidth > 0}));
  return {
    title: document.title,
    scrollWidth: scroller.scrollWidth,
    wide: wide.slice(0, 10),
    sideways: sideways,
    images: images,
    text: document.body.innerText,
  };
})()
"""


@dataclass
class PageRecord:
    rel: str
    title: str
    scroll_width: int
    wide: list[str]
    sideways: list[str]
    images: list[dict[str, Any]]
    text: str
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def _console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
            args = params.get("args", [])
            errors.append(
                "console."
                + params["type"]
                + ": "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            errors.append("uncaught: " + str(exception.get("description") or details.get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
    return errors


def _pages(out: Path) -> list[str]:
    """Every HTML page of the report: index first, then the folders, then report.html."""
    rels = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html"))
    first = [r for r in ("index.html",) if r in rels]
    last = [r for r in (SINGLE_HTML,) if r in rels]
    return first + [r for r in rels if r not in first + last] + last


@pytest.fixture(scope="module")
def built() -> report.Report:
    return built_report()


@pytest.fixture(scope="module")
def records(built: report.Report) -> Iterator[dict[str, PageRecord]]:
    if CHROMIUM is None:
        pytest.skip("no chromium binary (Debian package 'chromium', installed by .ci/run)")
    profile = Path(tempfile.mkdtemp(prefix="tokenlib-chromium-"))
    browser = DevTools(CHROMIUM, profile)
    found: dict[str, PageRecord] = {}
    try:
        for rel in _pages(built.out_dir):
            url = (built.out_dir / rel).as_uri()
            browser.load(url)
            measured = browser.evaluate(_MEASURE % {"width": WIDTH, "tol": TOLERANCE})
            events = list(browser.events)
            found[rel] = PageRecord(
                rel=rel,
                title=measured["title"],
                scroll_width=measured["scrollWidth"],
                wide=measured["wide"],
                sideways=measured["sideways"],
                images=measured["images"],
                text=measured["text"],
                console=_console_errors(events),
                requests=[
                    e["params"]["request"]["url"]
                    for e in events
                    if e.get("method") == "Network.requestWillBeSent"
                ],
            )
        yield found
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


def _presented(records: dict[str, PageRecord]) -> list[PageRecord]:
    """The pages meant for readers: presentation pages and the single file."""
    return [r for k, r in records.items() if k.startswith("presentation/") or k == SINGLE_HTML]


def _report(offenders: list[str], what: str) -> str:
    return f"{len(offenders)} {what}:\n  " + "\n  ".join(offenders)


# ---------------------------------------------------------------------------------------------
# Every page.


def test_the_report_has_every_kind_of_page(
    built: report.Report, records: dict[str, PageRecord]
) -> None:
    rels = set(records)
    assert "index.html" in rels
    for page in built.pages:
        assert page.page in rels, page.page
        assert page.presentation in rels, page.presentation
    assert SINGLE_HTML in rels, "make report writes the single-file report.html"
    for extra in ("presentation/appendix_parameters.html", "presentation/references.html"):
        assert extra in rels, f"{extra} (parameters appendix and references pages)"
    assert (built.out_dir / "report.pdf").is_file() or find_chromium() is None, "report.pdf"


def test_no_console_errors(records: dict[str, PageRecord]) -> None:
    offenders = [f"{r.rel}: {msg[:300]}" for r in records.values() for msg in r.console]
    assert not offenders, _report(offenders, "console errors")


def test_no_broken_images(records: dict[str, PageRecord]) -> None:
    offenders = [
        f"{r.rel}: <img alt={i['alt']!r} src={i['src']!r}>"
        for r in records.values()
        for i in r.images
        if not i["ok"]
    ]
    assert not offenders, _report(offenders, "images that did not load")


def test_no_horizontal_overflow_at_1280px(records: dict[str, PageRecord]) -> None:
    offenders = [
        f"{r.rel}: page is {r.scroll_width} px wide; widest: {'; '.join(r.wide) or '?'}"
        for r in records.values()
        if r.scroll_width > WIDTH + TOLERANCE
    ]
    assert not offenders, _report(offenders, "pages wider than 1280 px")


def test_presented_boxes_do_not_scroll_sideways(records: dict[str, PageRecord]) -> None:
    """A table or figure that needs a sideways scrollbar at 1280 px is cut off in the PDF."""
    offenders = [f"{r.rel}: {box}" for r in _presented(records) for box in r.sideways]
    assert not offenders, _report(offenders, "boxes that scroll sideways at 1280 px")


def test_single_file_loads_nothing_else(records: dict[str, PageRecord]) -> None:
    single = records.get(SINGLE_HTML)
    if single is None:
        pytest.fail(f"{SINGLE_HTML} was not built")
    own = (Path(single.rel).name,)
    outside = [u[:120] for u in single.requests if not (u.startswith("data:") or u.endswith(own))]
    assert not outside, _report(outside, f"requests made by {SINGLE_HTML}")


# ---------------------------------------------------------------------------------------------
# The text readers see.

#: Names defined by the protocols themselves (RFC 6749, 6750, 7523, 8705, 9449 and their
#: registries): a reader meets these in their authorization server's configuration and logs.
PROTOCOL_NAMES = frozenset(
    {
        "access_token",
        "authorization_code",
        "client_assertion",
        "client_credentials",
        "client_id",
        "dpop_jkt",
        "dpop_signing_alg_values_supported",
        "expires_in",
        "grant_type",
        "id_token",
        "insufficient_scope",
        "invalid_client",
        "invalid_dpop_proof",
        "invalid_grant",
        "invalid_request",
        "invalid_token",
        "jwks_uri",
        "private_key_jwt",
        "refresh_token",
        "self_signed_tls_client_auth",
        "tls_client_auth",
        "tls_client_certificate_bound_access_tokens",
        "token_endpoint_auth_method",
        "token_type",
        "unauthorized_client",
        "use_dpop_nonce",
    }
)


#: protocol values that are not identifiers but contain one (RFC 9449 §4.2 ``typ``)
PROTOCOL_VALUES = frozenset({"dpop+jwt"})


def _model_identifiers() -> set[str]:
    """Ids of the models (mechanisms, scenarios, families, views, groups) and parameters."""
    ids = {m.id for m in models.MECHANISMS} | {s.id for s in models.SCENARIOS}
    for collection in (models.FAMILIES, models.VIEWS, models.SCENARIO_GROUPS):
        ids |= {getattr(x, "id", x) for x in collection}
    ids |= set(ModelParameters.names())
    # single plain words ("bearer", "today", "issuer") are English; keep the coded ones
    return {i for i in ids if "_" in i or i in {"mtls", "dpop"}}


_URL = re.compile(r"\b(?:https?|file)://\S+")
_SNAKE = re.compile(r"(?<![\w.#/-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w-])")
_REPR = re.compile(r"\b[A-Za-z_]\w*\((?:[a-z_]\w*=|\))")
_DOTTED = re.compile(r"\btokenlib(?:\.[a-z_]\w*)+")
#: tokenlib's own files are .py/.csv/.json/.ipynb: these extensions name another project's file
_THIRD_PARTY_FILE = re.compile(r"\.(?:js|ts|java|go|cc|cpp|h|rs|rb|cs|md)\b")
_SCIENTIFIC = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?[eE][+-]?\d+(?![\w.])")
_ABSOLUTE = re.compile(
    r"(?<![\w.:/~-])(?:/(?:tmp|work|home|root|Users|var/folders)/\S*|[A-Z]:\\\S+)"
)
_TRUNCATION = re.compile(r"…|\.\.\.")


def _snippet(text: str, start: int, end: int, width: int = 45) -> str:
    before = " ".join(text[max(0, start - width) : start].split())
    after = " ".join(text[end : end + width].split())
    return f"…{before} [{text[start:end]}] {after}…"


def _readable(text: str) -> str:
    """The rendered text with URLs blanked out (a link's address is not prose)."""
    return _URL.sub(lambda m: " " * len(m.group(0)), text)


def _offenders(record: PageRecord, text: str, spans: list[tuple[int, int]]) -> list[str]:
    """One line per distinct offending string of a page: how often, and its first context."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(set(spans)):
        if merged and start < merged[-1][1]:  # overlapping hits are one offence
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    seen: dict[str, list[Any]] = {}
    for start, end in merged:
        word = text[start:end]
        if word in seen:
            seen[word][0] += 1
        else:
            seen[word] = [1, _snippet(text, start, end)]
    return [
        f"{record.rel}: {word!r}{f' ×{n}' if n > 1 else ''} {where}"
        for word, (n, where) in seen.items()
    ]


def _find(records: list[PageRecord], pattern: re.Pattern[str]) -> list[str]:
    offenders = []
    for record in records:
        text = _readable(record.text)
        offenders += _offenders(record, text, [m.span() for m in pattern.finditer(text)])
    return offenders


def test_presented_text_has_no_code_identifiers(
    built: report.Report, records: dict[str, PageRecord]
) -> None:
    exports = {Path(name).stem for name in built.exports}  # "flow_exposure.csv" is a file to open
    known = _model_identifiers()
    offenders = []
    for record in _presented(records):
        text = _readable(record.text)
        hits: list[tuple[int, int]] = []
        for pattern in (_SNAKE, _REPR, _DOTTED):
            for match in pattern.finditer(text):
                word = match.group(0)
                if word in PROTOCOL_NAMES:
                    continue
                if word in exports and text[match.end() : match.end() + 4] == ".csv":
                    continue
                if _THIRD_PARTY_FILE.match(text, match.end()):
                    continue  # a cited source file of another project ("dpop_nonces.js")
                hits.append(match.span())
        for word in known - {"dpop", "mtls"}:  # model ids, also inside paths or longer names
            found = re.finditer(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![a-z0-9])", text)
            hits.extend(m.span() for m in found)
        for word in ("dpop", "mtls"):  # lower-case ids of DPoP / mTLS (not "oauth-dpop")
            found = re.finditer(rf"(?<![\w./-]){word}(?![\w./-])", text)
            hits.extend(m.span() for m in found)
        # a model id inside a protocol value ("use_dpop_nonce", typ "dpop+jwt") is the protocol's
        protocol = [
            m.span()
            for name in (*PROTOCOL_NAMES, *PROTOCOL_VALUES)
            for m in re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
        ]
        hits = [h for h in hits if not any(a <= h[0] and h[1] <= b for a, b in protocol)]
        offenders += _offenders(record, text, hits)
    assert not offenders, _report(offenders, "code identifiers in presented text")


def test_presented_text_has_no_scientific_notation(records: dict[str, PageRecord]) -> None:
    offenders = _find(_presented(records), _SCIENTIFIC)
    assert not offenders, _report(offenders, "numbers in scientific notation")


def test_presented_text_has_no_absolute_paths(records: dict[str, PageRecord]) -> None:
    offenders = _find(_presented(records), _ABSOLUTE)
    assert not offenders, _report(offenders, "absolute paths")


def test_presented_text_has_no_truncation_marks(records: dict[str, PageRecord]) -> None:
    offenders = _find(_presented(records), _TRUNCATION)
    assert not offenders, _report(offenders, "truncation marks")


def test_absolute_paths_appear_on_no_page_at_all(records: dict[str, PageRecord]) -> None:
    """Code pages too: the user's home or temp folders must not leak into a shared report."""
    offenders = _find(list(records.values()), _ABSOLUTE)
    assert not offenders, _report(offenders, "absolute paths")
