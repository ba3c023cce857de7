"""Figures: collected from the notebooks' output folders, titled for captions."""

from __future__ import annotations

import contextlib
import html
import math
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from tokenlib.analysis.report._base import NotebookPage

# ---------------------------------------------------------------------------------------------
# Figures: story order (notebook order, then save order) and captions from their titles.


def _collect_figures(tmp: Path, pages: Sequence[NotebookPage]) -> list[tuple[str, str]]:
    """Move each notebook's figures into ``figures/``; return (name, notebook) in story order."""
    ordered: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    target = tmp / "figures"
    for page in pages:
        folder = tmp / ".figures" / page.name
        if not folder.is_dir():
            continue
        pngs = sorted(folder.glob("*.png"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        for png in pngs:
            for src in folder.glob(f"{png.stem}.*"):
                os.replace(src, target / src.name)
            if png.stem in seen:  # saved again by a later notebook: keep the later place
                ordered.pop(seen[png.stem])
                seen = {n: i for i, (n, _) in enumerate(ordered)}
            seen[png.stem] = len(ordered)
            ordered.append((png.stem, page.name))
        for rest in folder.iterdir():  # figures saved in other formats only
            os.replace(rest, target / rest.name)
    shutil.rmtree(tmp / ".figures", ignore_errors=True)
    known = {n for n, _ in ordered}
    for png in sorted(target.glob("*.png"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        if png.stem not in known:  # saved straight into figures/ (older notebooks)
            ordered.append((png.stem, ""))
    return ordered


_SVG_TEXT_GROUP = re.compile(r'<g id="text_\d+">(.*?)</g>', re.S)
_SVG_TEXT = re.compile(r"<text\b([^>]*)>(.*?)</text>", re.S)


def figure_title(figures_dir: Path, name: str) -> str:
    """A figure's title: SVG ``dc:title`` or PNG ``Title`` metadata when set, else the
    largest top-most text of the SVG (the figure or axes title), else a humanised name."""
    svg_path, png_path = figures_dir / f"{name}.svg", figures_dir / f"{name}.png"
    svg = svg_path.read_text(encoding="utf-8", errors="replace") if svg_path.exists() else ""
    match = re.search(r"<dc:title>(.*?)</dc:title>", svg, re.S)
    if match and not match.group(1).startswith("Matplotlib"):
        return html.unescape(match.group(1)).strip()
    png_title = _png_text(png_path).get("Title") if png_path.exists() else None
    if png_title:
        return png_title
    best: tuple[tuple[float, float], str] | None = None
    for group in _SVG_TEXT_GROUP.finditer(svg):
        size, top, words = 0.0, math.inf, []
        for attrs, body in _SVG_TEXT.findall(group.group(1)):
            if "rotate(-90" in attrs or "rotate(90" in attrs:
                continue
            font = re.search(r"font-size:\s*([\d.]+)px", attrs)
            size = max(size, float(font.group(1)) if font else 0.0)
            y = re.search(r'\by="([-\d.]+)"', attrs)
            top = min(top, float(y.group(1)) if y else math.inf)
            words.append(html.unescape(re.sub(r"<[^>]+>", "", body)).strip())
        text = " ".join(w for w in words if w)
        if text and (best is None or (-size, top) < best[0]):
            best = ((-size, top), text)
    if best is not None:
        return best[1]
    return name.replace("_", " ").replace("-", " ").capitalize()


def _png_text(path: Path) -> dict[str, str]:
    import struct
    import zlib

    out: dict[str, str] = {}
    data = path.read_bytes()
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and b"\0" in chunk:
            key, _, value = chunk.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt" and b"\0" in chunk:
            key, _, rest = chunk.partition(b"\0")
            compressed = rest[:1] == b"\1"
            text = rest[2:].split(b"\0", 2)[-1]
            with contextlib.suppress(zlib.error, UnicodeDecodeError):
                out[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode(
                    "utf-8"
                )
        elif kind == b"IEND":
            break
        pos += 12 + length
    return out
