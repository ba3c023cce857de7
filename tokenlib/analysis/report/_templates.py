"""HTML templates and style sheets of the report's pages."""

from __future__ import annotations

# The lab template loads require.js, MathJax and mermaid from a CDN; a report must work offline,
# and the notebooks use none of them once widget views are replaced (see _strip_widgets).
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

_PAGE_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 0 auto 2em;
       padding: 0 1em; color: #222; }
main { padding: 0 1em; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .45em .5em; text-align: left;
         vertical-align: top; overflow-wrap: break-word; }
th { border-bottom: 2px solid #999; }
td.num { white-space: nowrap; }
.s { color: #555; font-size: .9em; }
code { font-size: .9em; }
li { margin: .3em 0; overflow-wrap: break-word; }
table.params td:nth-child(2), table.params td:nth-child(5) { white-space: nowrap; }
table.params td:first-child { min-width: 16em; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style></head>
<body>
<main>
{body}
</main>
</body></html>
"""

_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 0 auto 2em;
       padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.45em; margin: .3em 0 .1em; }}
body > header.report-top, body > footer.report-bottom {{ padding: 0; max-width: none; }}
h2 {{ margin-top: 1.6em; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .45em .5em; text-align: left;
         vertical-align: top; overflow-wrap: break-word; }}
td.num {{ white-space: nowrap; }}
.s {{ color: #555; font-size: .9em; }}
.meta, .facts {{ color: #555; font-size: .9em; }}
#executive-summary h2 {{ margin: .3em 0 .1em; font-size: 1.15em; }}
.lead {{ margin: .2em 0 .6em; }}
ol.takeaways {{ padding-left: 1.4em; margin: 0; }}
ol.takeaways li {{ margin: 0 0 .45em; }}
ol.takeaways li p {{ margin: 0; }}
ol.takeaways li.does-not-hold > p:first-child {{ color: #7a4b00; }}
.missing {{ background: #fdecea; border: 1px solid #f5c2c0; padding: .6em .8em; }}
.gallery {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
           gap: 1.2em; }}
figure {{ margin: 0; }} figure img {{ width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: .9em; color: #333; }}
{css}
</style></head>
<body>
<header class="report-top">{top}</header>
<main>
<h1>{title}: what this inventory shows</h1>
<!-- report:summary -->
{summary}
<!-- /report:summary -->
<!-- report:downloads -->
<h2 id="pages">Pages</h2>
<table class="pages"><thead><tr><th>Page</th><th colspan="2">For analysts</th><th>Run time</th>
</tr></thead>
<tbody>
{rows}
</tbody></table>
<h2 id="figures">Figures</h2>
<div class="gallery">
{gallery}
</div>
<h2 id="data">Data</h2>
<ul>
{downloads}
</ul>
<p class="facts">{facts}</p>
</main>
<footer class="report-bottom">{bottom}</footer>
</body></html>
"""
