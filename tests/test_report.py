"""Tests for tokenlib.analysis.report (``make report``): build, fail fast, swap, and a real browser.

The full build (every notebook over the bundled inventory, ``--quick``) runs once per session
through ``_report_run.built_report`` and is shared with tests/test_notebooks.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from _report_run import built_report

from tokenlib.analysis import report

CHROMIUM = shutil.which("chromium") or next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None
)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag == "img" and values.get("src"):
            self.imgs.append(str(values["src"]))


def _links(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


# ---------------------------------------------------------------------------------------------
# Fast tests: no notebook runs.


@pytest.mark.parametrize(
    "bad",
    ["/nonexistent/flows.csv", "{tmp}/empty.csv", "{tmp}/garbage.csv"],
    ids=["missing-file", "empty-file", "not-an-inventory"],
)
def test_bad_inventory_fails_fast_and_keeps_previous_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "garbage.csv").write_text("a,b\n1,2\n")
    out = tmp_path / "reports"
    out.mkdir()
    (out / "index.html").write_text("previous report")

    def _no_notebooks(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a notebook ran before the inventory was validated")

    monkeypatch.setattr(report, "_execute_notebook", _no_notebooks)
    source = bad.format(tmp=tmp_path)
    code = report.main(["--inventory", source, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"invalid inventory {source!r}" in err
    from tokenlib.analysis.inventory import load_inventory

    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever the loader raises
        load_inventory(source)
    assert str(caught.value).splitlines()[0] in err, "the loader's own message is shown"
    assert (out / "index.html").read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cli_exit_code_for_bad_inventory_is_2(tmp_path: Path) -> None:
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenlib.analysis.report",
            "--inventory",
            str(tmp_path / "no.csv"),
            "--out",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "invalid inventory" in proc.stderr
    assert not (tmp_path / "reports").exists()
    assert time.perf_counter() - started < 60


def test_no_matching_notebooks_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = report.main(["--notebooks", str(tmp_path / "*.ipynb"), "--out", str(tmp_path / "r")])
    assert code == 2
    assert "no notebooks matched" in capsys.readouterr().err


def test_failing_notebook_keeps_previous_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    (out / "index.html").write_text("previous report")

    def _fail(src: Path, _dst: Path, _params: Any) -> None:
        raise report.NotebookExecutionError(f"{src.name}: cell 3 raised AssertionError: boom")

    monkeypatch.setattr(report, "_execute_notebook", _fail)
    code = report.main(["--out", str(out), "--no-progress", "--jobs", "1"])
    assert code == 1
    assert "cell 3 raised AssertionError: boom" in capsys.readouterr().err
    assert (out / "index.html").read_text() == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["reports"], "temporary build removed"


def test_swap_in_replaces_previous_report(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    (out / "stale.html").write_text("old")
    new = tmp_path / "new"
    new.mkdir()
    (new / "index.html").write_text("new")
    report._swap_in(new, out)
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


def test_find_notebooks_matches_numbered_notebooks_only() -> None:
    found = report.find_notebooks()
    assert found, "notebooks/NN_*.ipynb exist"
    assert all(report.NOTEBOOK_NAME_RE.match(p.name) for p in found)
    assert [p.name for p in found] == sorted(p.name for p in found)
    assert [p.name for p in report.find_notebooks("0[0-1]_*.ipynb")] == [
        p.name for p in found if p.name[:2] in {"00", "01"}
    ]


# ---------------------------------------------------------------------------------------------
# The shared build (slow).


@pytest.fixture(scope="module")
def built() -> report.Report:
    return built_report()


@pytest.mark.slow
def test_index_links_every_page_figure_and_csv(built: report.Report) -> None:
    out = built.out_dir
    index = _links(out / "index.html")
    notebooks = report.find_notebooks()
    assert [p.name for p in built.pages] == [p.stem for p in notebooks]
    for page in built.pages:
        for rel in (page.page, page.presentation, page.notebook):
            assert rel in index.hrefs, f"index.html links {rel}"
            assert (out / rel).stat().st_size > 0
    assert built.figures, "the notebooks saved figures through plots.save_figure"
    for name in built.figures:
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert "<svg" in (out / "figures" / f"{name}.svg").read_text()
        assert f"figures/{name}.png" in index.imgs
        assert f"figures/{name}.svg" in index.hrefs
    assert "recommendations.csv" in built.exports
    assert "exports/recommendations.csv" in index.hrefs
    header = (out / "exports" / "recommendations.csv").read_text().splitlines()[0]
    assert "flow_id" in header
    index_text = (out / "index.html").read_text()
    assert "Headline numbers" in index_text, "the overview's headline numbers head the index"
    assert "could enforce DPoP today" in index_text
    for name in ("headline_numbers.csv", "flow_exposure.csv", "recommendations.csv"):
        assert name in built.exports, name
    head = (out / "exports" / "headline_numbers.csv").read_text().splitlines()[0]
    assert head == "metric_id,finding,value,low,high,unit,baseline,basis"
    rec_head = (out / "exports" / "recommendations.csv").read_text().splitlines()[0]
    assert {"robustness", "policy_flags"} <= set(rec_head.split(","))
    fe_head = (out / "exports" / "flow_exposure.csv").read_text().splitlines()[0].split(",")
    contract = ("flow_id", "mechanism", "scenario", "expected_window_s", "max_replays", "p_usable")
    assert set(contract) <= set(fe_head)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 12345
    assert manifest["quick"] is True


@pytest.mark.slow
def test_presentation_pages_hide_code_and_work_offline(built: report.Report) -> None:
    for page in built.pages:
        full = (built.out_dir / page.page).read_text(encoding="utf-8")
        slides = (built.out_dir / page.presentation).read_text(encoding="utf-8")
        assert "hl-ipython3" in full, f"{page.page} shows the code"
        assert "hl-ipython3" not in slides, f"{page.presentation} shows code"
        for text in (full, slides):
            assert not re.search(r"<script[^>]+src=\"https?://", text), "no CDN scripts"
            assert "application/vnd.jupyter.widget-view+json" not in text


# ---------------------------------------------------------------------------------------------
# Real headless Chromium through the DevTools protocol.


class _Chromium:
    """Minimal DevTools-protocol driver: navigate, wait for load, evaluate JavaScript."""

    def __init__(self, binary: str, profile: Path) -> None:
        import websocket  # websocket-client, a jupyter dependency

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        browser_ws = self._devtools_url()
        port = int(browser_ws.split(":")[2].split("/")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _devtools_url(self) -> str:
        assert self.proc.stderr is not None
        seen = []
        for line in self.proc.stderr:  # chromium announces its DevTools endpoint on stderr
            seen.append(line)
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                return match.group(1)
        raise RuntimeError(f"chromium exited without a DevTools endpoint: {''.join(seen)[-2000:]}")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def load(self, url: str) -> None:
        self.events = []
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading")
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def chromium() -> Iterator[_Chromium]:
    if CHROMIUM is None:
        pytest.skip("no chromium binary (Debian package 'chromium', installed by .ci/run)")
    profile = Path(tempfile.mkdtemp(prefix="tokenlib-chromium-"))
    browser = _Chromium(CHROMIUM, profile)
    try:
        yield browser
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


_IMAGES = (
    "JSON.stringify(Array.from(document.images).map("
    "i => [i.getAttribute('src').slice(0, 60), i.complete && i.naturalWidth > 0]))"
)


@pytest.mark.slow
@pytest.mark.browser
def test_every_page_and_figure_loads_in_headless_chromium(
    built: report.Report, chromium: _Chromium
) -> None:
    out = built.out_dir
    index = _links(out / "index.html")
    pages = ["index.html", *sorted({h for h in index.hrefs if h.endswith(".html")})]
    assert len(pages) == 1 + 2 * len(built.pages)
    shown = 0
    for rel in pages:
        chromium.load((out / rel).as_uri())
        images = json.loads(chromium.evaluate(_IMAGES))
        broken = [src for src, ok in images if not ok]
        assert not broken, f"{rel}: images that did not load: {broken}"
        title = chromium.evaluate("document.title")
        text_length = chromium.evaluate("document.body.innerText.length")
        assert title, f"{rel} has no title"
        assert text_length > 200, f"{rel} rendered no content"
        if rel == "index.html":
            assert len(images) == len(built.figures)
        shown += len(images)
    assert shown > 2 * len(built.figures), "notebook pages display the figures too"
