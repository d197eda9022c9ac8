"""HTML for audit cards and executed audit notebooks, with no asset from the internet.

nbconvert's ``lab`` template loads require.js, MathJax, Mermaid and the widget manager from CDNs;
the audit template below keeps its inline CSS and drops those scripts, so a report opens the same
on an air-gapped machine in ten years. (Widgets need a live kernel anyway: a report shows their
text fallback; audits put their numbers in tables and figures.)
"""
from __future__ import annotations

import html
import json
import re

import pandas as pd

OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

CARD_CSS = """
.wb-card { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1em auto; padding: 1em 1.5em;
  border: 1px solid #c9ced6; border-radius: 6px; background: #fafbfc; color: #1b1f24; }
.wb-card h1 { font-size: 1.5em; margin: 0.2em 0; } .wb-card h2 { font-size: 1.15em; margin-top: 1.2em;
  border-bottom: 1px solid #dde1e6; } .wb-card h3 { font-size: 1em; }
.wb-card table.wb-table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0; }
.wb-card table.wb-table th, .wb-card table.wb-table td { border: 1px solid #dde1e6; padding: 2px 6px;
  text-align: left; } .wb-card table.wb-table th { background: #eef1f4; }
.wb-card .ok { color: #0a6b2d; font-weight: 600; } .wb-card .fail { color: #a4161a; font-weight: 600; }
.wb-card pre { font-size: 0.75em; max-height: 20em; overflow: auto; background: #f1f3f5; padding: 0.5em; }
.wb-card .muted { color: #57606a; font-size: 0.85em; }
"""


def _table(records, columns=None) -> str:
    frame = pd.DataFrame(records, columns=columns)
    if frame.empty:
        return '<p class="muted">(none recorded)</p>'
    return frame.to_html(index=False, escape=True, classes="wb-table", border=0, na_rep="",
                         float_format=lambda x: f"{x:.4g}")


def _details(summary: str, obj) -> str:
    return (f"<details><summary>{html.escape(summary)}</summary>"
            f"<pre>{html.escape(json.dumps(obj, indent=1))}</pre></details>")


def card_html(card: dict) -> str:
    """The card as an HTML fragment (its own scoped CSS): for notebooks and the report page."""
    e = html.escape
    parts = [f"<style>{CARD_CSS}</style>", '<section class="wb-card">',
             f"<p class=\"muted\">Audit card ({e(card['schema'])}), created {e(card['created'])}</p>",
             f"<h1>{e(card['title'])}</h1>"]
    if card.get("question"):
        parts.append(f"<p><b>Question.</b> {e(card['question'])}</p>")
    if card.get("authors"):
        parts.append(f"<p><b>Authors.</b> {e(card['authors'])}</p>")
    parts += ["<h2>Models</h2>", _table(card["models"], ["name", "fingerprint_id", "licence", "source",
                                                         "architecture", "kind"])]
    parts += [_details(f"full fingerprint of {m['name']}", m["fingerprint"]) for m in card["models"]]
    parts.append("<h2>Fidelity check (hooks leave the model's outputs unchanged)</h2>")
    for f in card["fidelity"]:
        verdict = '<span class="ok">passed</span>' if f["ok"] else '<span class="fail">FAILED</span>'
        parts += [f"<h3>{e(f['model'])} ({e(f['fingerprint_id'])}): {verdict}</h3>", _table(f["checks"])]
    if not card["fidelity"]:
        parts.append('<p class="muted">(no fidelity check recorded)</p>')
    parts += ["<h2>Tasks and probes</h2>", _table(card["tasks"])]
    parts.append("<h2>Results</h2>")
    for r in card["results"]:
        parts += [f"<h3>{e(r['name'])}</h3>", f"<p>{e(r['note'])}</p>" if r["note"] else "",
                  _table(r["table"])]
        if r["provenance"]:
            parts.append(_details("provenance", r["provenance"]))
    parts.append("<h2>Limitations</h2><ul>")
    parts += [f"<li><b>{e(x['subject'])}.</b> {e(x['text'])}</li>" for x in card["limitations"]]
    parts.append("</ul>")
    if card.get("report"):
        parts += ["<h2>How this report was made</h2>",
                  _table([{"item": k, "value": v} for k, v in card["report"].items()])]
    parts += ["<h2>Software versions</h2>",
              _table([{"package": k, "version": v} for k, v in card["versions"].items()]),
              "</section>"]
    return "\n".join(parts)


def notebook_html(nb, card_fragment: str, title: str) -> str:
    """One self-contained page: the card, then the executed notebook (images inlined)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[DictLoader({"audit_offline.html.j2": OFFLINE_TEMPLATE})],
                            template_file="audit_offline.html.j2", embed_images=True)
    nb = nb.copy()
    nb.metadata["title"] = title
    nb.metadata.pop("widgets", None)  # widget state is only useful with the CDN widget manager
    body, _ = exporter.from_notebook_node(nb)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + card_fragment, body, count=1)


EXTERNAL_ASSET = re.compile(r"""<script[^>]+src=["']https?:|<link[^>]+href=["']https?:|"""
                            r"""<img[^>]+src=["']https?:|@import\s+url\(["']?https?:|"""
                            r"""from\s+["']https?:|import\(["']https?:""", re.I)


def external_assets(page: str) -> list[str]:
    """Every place a page would fetch something from the internet (should be empty)."""
    return [m.group(0) for m in EXTERNAL_ASSET.finditer(page)]
