"""Tests for tokenlib.analysis.report (``make report``): build, fail fast, swap, and a real browser.

The full build (every notebook over the bundled inventory, ``--quick``) runs once per session
through ``_report_run.built_report`` and is shared with tests/test_notebooks.py.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from _devtools import DevTools
from _report_run import built_report

from tokenlib.analysis import report
from tokenlib.analysis.report import _build as report_build
from tokenlib.analysis.report import _site as report_site

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
    [
        "/nonexistent/flows.csv",
        "{tmp}/empty.csv",
        "{tmp}/garbage.csv",
        "{tmp}/header_only.csv",
        "{tmp}/all_invalid.csv",
    ],
    ids=["missing-file", "empty-file", "not-an-inventory", "header-only", "all-invalid"],
)
def test_bad_inventory_fails_fast_and_keeps_previous_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "garbage.csv").write_text("a,b\n1,2\n")
    header = (report.PROJECT_ROOT / "data" / "flows.csv").read_text().splitlines()[0]
    (tmp_path / "header_only.csv").write_text(header + "\n")
    n_columns = len(header.split(","))
    (tmp_path / "all_invalid.csv").write_text(
        header + "\n" + "\n".join(",".join(["zz"] * n_columns) for _ in range(3)) + "\n"
    )
    out = tmp_path / "reports"
    out.mkdir()
    (out / "index.html").write_text("previous report")

    def _no_notebooks(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a notebook ran before the inventory was validated")

    monkeypatch.setattr(report_build, "_execute_notebook", _no_notebooks)
    source = bad.format(tmp=tmp_path)
    started = time.perf_counter()
    code = report.main(["--inventory", source, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert time.perf_counter() - started < 10, "stops at validation"
    assert code == 2
    name = Path(source).name
    assert f"invalid inventory {name!r}" in err
    assert len(err.strip().splitlines()) == 1, f"one line: {err!r}"
    assert str(tmp_path) not in err, "file names only"
    assert "/nonexistent/" not in err
    if "header_only" in source:
        assert "no flows" in err
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

    def _fail(src: Path, _dst: Path, _params: Any, **_kw: Any) -> None:
        raise report.NotebookExecutionError(f"{src.name}: cell 3 raised AssertionError: boom")

    monkeypatch.setattr(report_build, "_execute_notebook", _fail)
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
    report_site._swap_in(new, out)
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
def test_shared_build_every_page_says_synthetic_and_has_navigation(built: report.Report) -> None:
    out = built.out_dir
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["presentation"][-2:] == [report.APPENDIX_PAGE, report.REFERENCES_PAGE]
    rels = ["index.html", *manifest["presentation"], *manifest["pages"]]
    for rel in rels:
        text = (out / rel).read_text(encoding="utf-8")
        assert 'class="provenance"' in text, rel
        assert "synthetic" in text, rel
        assert "profile saas" in text, rel
        assert 'class="report-nav"' in text, rel
    for rel, text in _all_text(out).items():
        assert str(out.parent) not in text, f"{rel} shows the build folder"
        assert str(report.PROJECT_ROOT) not in text, f"{rel} shows the project folder"
    index = (out / "index.html").read_text()
    for page in built.pages:
        assert f'<a href="{page.presentation}">{html.escape(page.title)}</a>' in index
        assert page.summary.endswith((".", "?", "!")), page.summary
    story = [f for p in built.pages for f in p.figures]
    assert list(built.figures) == story, "gallery in notebook order"
    captions = re.findall(r"<figcaption>([^<]*)", index)
    assert len(captions) == len(built.figures)
    for name, caption in zip(built.figures, captions, strict=True):
        assert name not in caption, "figure titles, not file names"


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


@pytest.fixture(scope="module")
def chromium() -> Iterator[DevTools]:
    if CHROMIUM is None:
        pytest.skip("no chromium binary (Debian package 'chromium', installed by .ci/run)")
    profile = Path(tempfile.mkdtemp(prefix="tokenlib-chromium-"))
    browser = DevTools(CHROMIUM, profile)
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
    built: report.Report, chromium: DevTools
) -> None:
    out = built.out_dir
    index = _links(out / "index.html")
    pages = ["index.html", *sorted({h for h in index.hrefs if h.endswith(".html")})]
    assert len(pages) >= 1 + 2 * len(built.pages) + 2, pages  # + appendix, references
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


# ---------------------------------------------------------------------------------------------
# Fast builds with tiny fake notebooks: index, banner, navigation, gallery, paths, robustness.

_HEADLINE = "\n".join(
    [
        "metric_id,finding,value,low,high,unit,baseline,basis",
        'deployable_share_dpop_today,"36% of flows could use DPoP.",0.36,0.36,0.36,share,none,'
        "inventory",
        'usable_share_today,"53% still usable (A23a).",0.53,0.29,0.81,share,none,assumption',
        'token_theft_removed_dpop_nonce_shared_cache_today,"8% removed.",0.08,-0.02,0.11,share,'
        "today's inventory,assumption",
        'token_theft_removed_dpop_nonce_shared_cache_upgraded,"33% removed.",0.33,0.13,0.40,'
        "share,today's inventory,assumption",
        'credential_store_share_today,"8.4% of exposure.",0.084,0.009,0.14,share,none,assumption',
        'recommendations_removed_share,"45% removed.",0.45,0.23,0.54,share,today\'s inventory,'
        "assumption",
        'blast_radius_removed_dpop_nonce_shared_cache_today,"4.6% smaller.",0.046,0.02,0.05,'
        "share,today's inventory,assumption",
        'token_theft_removed_token_binding_today,"adds 4.6%.",-0.046,-0.067,-0.029,share,'
        "today's inventory,assumption",
        'token_binding_counterfactual_share,"2% of flows.",0.0196,0.0196,0.0196,share,none,'
        "assumption",
        "",
    ]
)


def _fake_notebook(path: Path, *cells: tuple[str, str]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell(
        'INVENTORY = "default"\nFIGURES_DIR = "../reports/figures"\n'
        'EXPORT_DIR = "../reports/exports"\nSEED = 1\nQUICK = False'
    )
    params.metadata["tags"] = ["parameters"]
    body = []
    for kind, source in cells:
        body.append(
            nbformat.v4.new_markdown_cell(source)
            if kind == "md"
            else nbformat.v4.new_code_cell(source)
        )
    nb.cells = [body[0], params, *body[1:]]
    nbformat.write(nb, path)
    return path


_SAVE = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tokenlib.analysis.plots import save_figure
for name, title in {figs!r}:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_title(title)
    save_figure(fig, name, FIGURES_DIR)
    plt.close(fig)
print("figures in", FIGURES_DIR, "inventory", INVENTORY)
"""


@pytest.fixture(scope="module")
def fake_notebooks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("fake_notebooks")
    overview = _fake_notebook(
        folder / "00_overview.ipynb",
        (
            "md",
            "# Overview of the findings\n\nThis page sums up the findings. It has a second "
            "sentence, e.g. with an abbreviation and a number like 3.5 in it. "
            + "A long third sentence follows to push the blurb past its limit. "
            * 8,
        ),
        (
            "code",
            _SAVE.format(
                figs=[
                    ("zeta_first", "Zeta is saved first"),
                    ("alpha_second", "Alpha is saved second"),
                ]
            ),
        ),
        (
            "code",
            "from pathlib import Path\n"
            f"Path(EXPORT_DIR, 'headline_numbers.csv').write_text({_HEADLINE!r})",
        ),
    )
    second = _fake_notebook(
        folder / "01_second.ipynb",
        ("md", "# The second page\n\nIt saves one figure."),
        ("code", _SAVE.format(figs=[("middle_one", "The middle figure states its takeaway")])),
    )
    return [overview, second]


def _all_text(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text(encoding="utf-8", errors="replace")
        for p in out.rglob("*")
        if p.is_file() and p.suffix in {".html", ".ipynb", ".json", ".csv"}
    }


@pytest.fixture(scope="module")
def fake_built(
    fake_notebooks: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> report.Report:
    root = tmp_path_factory.mktemp("fake_report")
    return report.build_report(
        out=root / "reports", notebooks=fake_notebooks, progress=False, bundle=False
    )


def test_fake_build_index_opens_on_the_executive_summary(fake_built: report.Report) -> None:
    out = fake_built.out_dir
    text = (out / "index.html").read_text()
    summary = text.index('id="executive-summary"')
    assert summary < text.index("Headline numbers") < text.index('id="pages"')
    items = re.findall(r'<li class="(holds|does-not-hold)"><p>(.*?)</p>', text)
    assert 5 <= len(items) <= 7, items
    sentences = " ".join(s for _, s in items)
    assert "today&#x27;s inventory" in text
    assert "36% of flows" in sentences
    assert "crosses zero" in sentences, "a range that crosses 0 is worded as such"
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", sentences), "no code ids in the takeaways"
    assert "(A23a)" not in text, "register ids dropped from the headline findings"
    for page in ("presentation/00_overview.html",):
        assert f'href="{page}"' in text[summary : text.index("Headline numbers")]
    assert "Range over the assumptions: 29–81%" in text
    assert "Basis: Rests on assumptions" in text


def test_fake_build_every_page_has_banner_and_navigation(fake_built: report.Report) -> None:
    out = fake_built.out_dir
    presentation = ["index.html", *(p.presentation for p in fake_built.pages)]
    presentation += [report.APPENDIX_PAGE, report.REFERENCES_PAGE]
    code = ["index.html", *(p.page for p in fake_built.pages)]
    for order in (presentation, code):
        for i, rel in enumerate(order):
            text = (out / rel).read_text()
            assert 'class="provenance"' in text, rel
            assert "synthetic" in text
            assert "profile saas" in text
            assert "seed 20250101" in text
            assert "5,000 flows" in text
            links = _links(out / rel).hrefs
            here = (out / rel).parent
            for href in links:
                if not href.startswith(("http", "#")):
                    assert (here / href).exists(), f"{rel}: broken link {href}"
            targets = {os.path.normpath(here / h) for h in links}
            assert str(out / "index.html") in targets or rel == "index.html"
            if i + 1 < len(order):
                assert str(out / order[i + 1]) in targets, f"{rel} links next {order[i + 1]}"
            if i > 0:
                assert str(out / order[i - 1]) in targets, f"{rel} links previous"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["presentation"] == presentation[1:]


def test_fake_build_titles_link_presentation_pages_and_blurbs_are_sentences(
    fake_built: report.Report,
) -> None:
    text = (fake_built.out_dir / "index.html").read_text()
    assert '<a href="presentation/00_overview.html">Overview of the findings</a>' in text
    assert '<a href="pages/00_overview.html">with code</a>' in text
    blurb = fake_built.pages[0].summary
    assert blurb.startswith("This page sums up the findings.")
    assert "like 3.5 in it." in blurb, "no cut at a decimal point or abbreviation"
    assert blurb.endswith("."), blurb
    assert len(blurb) < 400


def test_fake_build_gallery_in_story_order_with_titles(fake_built: report.Report) -> None:
    out = fake_built.out_dir
    assert fake_built.figures == ("zeta_first", "alpha_second", "middle_one")
    text = (out / "index.html").read_text()
    captions = re.findall(r"<figcaption>(.*?) ·", text)
    assert captions[:3] == [
        "Zeta is saved first",
        "Alpha is saved second",
        "The middle figure states its takeaway",
    ] or [c.split(" · ")[0] for c in captions][:3] == [
        "Zeta is saved first",
        "Alpha is saved second",
        "The middle figure states its takeaway",
    ]
    assert not (out / ".figures").exists()


def test_fake_build_has_no_absolute_paths(fake_built: report.Report) -> None:
    out = fake_built.out_dir
    parent = str(out.parent)
    for rel, text in _all_text(out).items():
        assert parent not in text, f"{rel} shows the build's absolute path"
        assert str(report.PROJECT_ROOT) not in text, f"{rel} shows the project's absolute path"
    code = (out / "pages" / "01_second.html").read_text()
    assert "../figures" in code, "injected FIGURES_DIR rewritten relative to the page"


def test_fake_build_appendix_and_references(fake_built: report.Report) -> None:
    out = fake_built.out_dir
    appendix = (out / report.APPENDIX_PAGE).read_text()
    from tokenlib.analysis.params import parameter_table

    table = parameter_table()
    for pid in table["id"]:
        assert f"<td>{pid}</td>" in appendix
    body = re.sub(r"<style>.*?</style>", "", appendix, flags=re.S)
    assert not re.search(r"\d[eE][+-]?\d", re.sub(r"<[^>]+>", " ", body)), "no sci notation"
    assert not re.search(r"\bbrief\b|domain-brief", body, re.I), "no internal notes"
    assert "30 d" in appendix, "durations in human form"
    refs = (out / report.REFERENCES_PAGE).read_text()
    for rfc in ("6750", "8705", "8471", "8472", "8473", "9068", "9440", "9449", "9700", "8693",
                "8707", "7591"):  # fmt: skip
        assert f'href="https://www.rfc-editor.org/rfc/rfc{rfc}"' in refs, rfc
    for name in ("FAPI 2.0 Security Profile", "draft-ietf-oauth-browser-based-apps", "OWASP"):
        assert name in refs
    assert "Okta support system HAR files" in refs, "incident write-ups from breaches.csv"
    assert not re.search(r"\bbrief\b|domain-brief", refs, re.I), "no internal notes"
    index = (out / "index.html").read_text()
    assert f'href="{report.APPENDIX_PAGE}"' in index
    assert f'href="{report.REFERENCES_PAGE}"' in index


def test_fake_build_imported_inventory_shows_file_name_only(
    fake_notebooks: list[Path], tmp_path: Path
) -> None:
    import pandas as pd

    flows = pd.read_csv(report.PROJECT_ROOT / "data" / "flows.csv").head(8)
    keep = ["flow_id", "client_id", "client_kind", "resource_server", "binding"]
    inventory = tmp_path / "deep" / "folder" / "my_flows.csv"
    inventory.parent.mkdir(parents=True)
    flows[keep].to_csv(inventory, index=False)
    built = report.build_report(
        inventory=str(inventory),
        out=tmp_path / "reports",
        notebooks=fake_notebooks[1:],  # no overview: no headline numbers
        progress=False,
        bundle=False,
    )
    assert built.provenance is not None
    assert built.provenance.kind == "imported"
    assert built.provenance.default_share is not None
    assert built.provenance.default_share > 0.5
    index = (built.out_dir / "index.html").read_text()
    assert "my_flows.csv" in index
    assert "file dated" in index
    assert "of its values are documented defaults" in index
    assert "No headline numbers" in index, "a missing headline CSV is said, not a crash"
    for rel, text in _all_text(built.out_dir).items():
        assert str(inventory.parent) not in text, f"{rel} shows the inventory's folder"
        assert str(tmp_path) not in text, rel
    assert "synthetic" not in (built.out_dir / "presentation" / "01_second.html").read_text()


# ---------------------------------------------------------------------------------------------
# Robustness: stale temporary folders, killed builds.


def test_stale_build_folders_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f".reports.tmp-{dead.pid}-abc"
    gone.mkdir()
    (gone / ".owner.json").write_text(json.dumps({"pid": dead.pid}))
    old = tmp_path / ".reports.tmp-zzz"
    old.mkdir()
    os.utime(old, (time.time() - 2 * report.STALE_AFTER_S,) * 2)
    live = tmp_path / f".reports.tmp-{os.getpid()}-live"
    live.mkdir()
    (live / ".owner.json").write_text(json.dumps({"pid": os.getpid()}))
    fresh_unowned = tmp_path / ".reports.tmp-new"
    fresh_unowned.mkdir()
    other = tmp_path / ".other.tmp-1-x"
    other.mkdir()
    removed = report.clean_stale_builds(out)
    assert sorted(p.name for p in removed) == sorted([gone.name, old.name])
    assert live.exists()
    assert fresh_unowned.exists()
    assert other.exists()


def _kernel_pids() -> set[int]:
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (proc / "cmdline").read_bytes()
                if b"ipykernel_launcher" in cmd:
                    found.add(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_build_leaves_no_kernel_and_no_temp_folder(
    tmp_path: Path, sig: signal.Signals
) -> None:
    marker = tmp_path / "kernel.pid"
    notebook = _fake_notebook(
        tmp_path / "00_slow.ipynb",
        ("md", "# Slow\n\nSleeps."),
        ("code", f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\n"
                 "time.sleep(120)"),
    )  # fmt: skip
    out = tmp_path / "reports"
    log_path = tmp_path / "build.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokenlib.analysis.report", "--out", str(out),
             "--no-progress", "--no-bundle", "--notebooks", str(notebook)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip
    deadline = time.monotonic() + 90
    while not (marker.exists() and marker.read_text()):
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, "the notebook never started"
        time.sleep(0.2)
    kernel = int(marker.read_text())
    assert list(tmp_path.glob(".reports.tmp-*"))
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while kernel in _kernel_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kernel not in _kernel_pids(), "the kernel outlived the build"
    if sig == signal.SIGTERM:
        assert not list(tmp_path.glob(".reports.tmp-*")), "SIGTERM cleans up at once"
    else:
        report.clean_stale_builds(out)  # what the next run does first
        assert not list(tmp_path.glob(".reports.tmp-*")), "the next run removes it"
    assert not out.exists()


def test_banner_reads_the_provenance_an_import_or_generator_wrote(tmp_path: Path) -> None:
    """An imported inventory's banner gives its shares by source from provenance.csv; a folder
    written by ``inventory generate`` is called synthetic even under a user's file name."""
    from tokenlib.analysis import generate_inventory, write_inventory
    from tokenlib.analysis.provenance import synthetic_provenance, write_provenance

    inv = generate_inventory("saas", 100, seed=3)
    gen = tmp_path / "gen"
    write_inventory(inv, gen)
    write_provenance(synthetic_provenance("generated:saas:n=100:seed=3:v2"), gen / "provenance.csv")
    banner = report.inspect_inventory(str(gen / "flows.csv"))[1]
    assert banner.kind == "synthetic"
    assert banner.seed == "3"
    assert "not observed in any organisation" in banner.sentence()

    imp = tmp_path / "imp"
    write_inventory(inv, imp)
    (imp / "provenance.csv").write_text(
        "table,id,column,source,detail\nflows,*,*,assumed,\nflows,*,binding,registered,keycloak\n"
    )
    banner = report.inspect_inventory(str(imp / "flows.csv"))[1]
    assert banner.kind == "imported"
    shares = dict(banner.sources)
    assert 0 < shares["registered"] < 1
    assert banner.default_share is not None
    assert abs(banner.default_share + shares["registered"] - 1.0) < 1e-9
    assert "registered (from the identity provider)" in banner.sentence()
