"""The HTML of a report: one self-contained page (inline CSS, images as data: URIs, no scripts, no fonts).

Building blocks return HTML strings; every text that comes from a file goes through `esc`. The layout
is one column on a phone and wider on a desktop: tables scroll sideways inside their own box, images
shrink to the screen, and the colours follow the reader's light or dark setting.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import __version__

# What marks a file as an edgepool report (a report may be replaced by a new one without force).
GENERATOR = "edgepool report"
GENERATOR_META = f'<meta name="generator" content="{GENERATOR} {__version__}">'

CSS = """
:root{--fg:#1d2329;--muted:#5b6570;--bg:#fff;--card:#f5f7f9;--line:#d9dee3;--accent:#0b62a4;
--ok:#1a7f37;--warn:#9a6700;--bad:#c62828;--info:#0b62a4;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ec;--muted:#9aa4ae;--bg:#15191d;--card:#1e2429;
--line:#343c44;--accent:#6cb6ff;--ok:#57c26b;--warn:#d9a53c;--bad:#f07167;--info:#6cb6ff}
img.plot{background:#fff}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1120px;margin:0 auto;padding:12px 16px 48px}
header{border-bottom:1px solid var(--line);margin-bottom:8px}
h1{font-size:1.5rem;margin:.6em 0 .2em;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin:1.6em 0 .5em;padding-top:.4em;border-top:1px solid var(--line)}
h3{font-size:1.02rem;margin:1.2em 0 .4em;overflow-wrap:anywhere}
p{margin:.4em 0}
.sub{color:var(--muted);margin:0 0 .8em;overflow-wrap:anywhere}
nav{display:flex;flex-wrap:wrap;gap:6px 14px;margin:.6em 0 1em;font-size:.92rem}
a{color:var(--accent)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px;margin:.8em 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 10px;min-width:0}
.card .k{color:var(--muted);font-size:.8rem}
.card .v{font-size:1.15rem;font-weight:600;overflow-wrap:anywhere}
.tw{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.5em 0 1em;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:.88rem;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;white-space:nowrap}
td.wrap,th.wrap{white-space:normal;min-width:14em}
th{background:var(--card);font-weight:600}
td.n,th.n{text-align:right}
tr:last-child td{border-bottom:0}
table.kv th{width:1%;white-space:nowrap}
table.kv td{white-space:normal;overflow-wrap:anywhere}
figure{margin:.5em 0 1em}
figcaption{color:var(--muted);font-size:.82rem;margin-top:.2em}
img.plot{display:block;max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));gap:12px}
.note{background:var(--card);border-left:4px solid var(--muted);padding:6px 10px;margin:.6em 0;border-radius:4px}
.note.warn{border-left-color:var(--warn)}
.b{display:inline-block;padding:0 7px;border-radius:10px;font-size:.78rem;font-weight:600;border:1px solid currentColor;
line-height:1.5;white-space:nowrap}
.b.ok{color:var(--ok)}.b.warn{color:var(--warn)}.b.bad{color:var(--bad)}.b.info{color:var(--info)}.b.muted{color:var(--muted)}
details{margin:.4em 0 1em}
summary{cursor:pointer;font-weight:600}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em;overflow-wrap:anywhere}
footer{color:var(--muted);font-size:.8rem;margin-top:2em;border-top:1px solid var(--line);padding-top:.6em}
@media (max-width:600px){body{font-size:14px}main{padding:8px 10px 32px}h1{font-size:1.25rem}
th,td{padding:4px 6px}}
@media print{nav{display:none}.tw{overflow:visible}}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class Page:
    """A page being built: its sections, the images in it and the notes about what is missing."""

    title: str
    subtitle: str = ""
    kind: str = "run"
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (id, heading, body html)
    images: int = 0
    notes: list[str] = field(default_factory=list)  # one line per missing or broken piece
    header: str = ""  # summary cards under the title

    def add(self, anchor: str, heading: str, body: str) -> None:
        self.sections.append((anchor, heading, body))

    def image(self, png: bytes, alt: str, caption: str = "") -> str:
        """A figure with the PNG inline (data: URI)."""
        self.images += 1
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
        return f'<figure><img class="plot" src="{uri}" alt="{esc(alt)}">{cap}</figure>'

    def missing(self, text: str, *, warn: bool = False) -> str:
        """A short note in the page for a piece that is not there (also listed in `notes`)."""
        self.notes.append(text)
        return note(text, warn=warn)

    def render(self) -> str:
        nav = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in self.sections)
        body = "".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{b}</section>' for a, h, b in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{GENERATOR_META}<title>{esc(self.title)}</title><style>{CSS}</style></head><body><main>"
            f"<header><h1>{esc(self.title)}</h1><p class=\"sub\">{esc(self.subtitle)}</p>{self.header}"
            f"<nav aria-label=\"sections\">{nav}</nav></header>{body}"
            f"<footer>Written by edgepool {esc(__version__)}: one file, opens offline.</footer>"
            "</main></body></html>\n"
        )


def note(text: str, *, warn: bool = False) -> str:
    return f'<p class="note{" warn" if warn else ""}">{esc(text)}</p>'


def badge(text: str, kind: str = "muted", title: str = "") -> str:
    t = f' title="{esc(title)}"' if title else ""
    return f'<span class="b {kind}"{t}>{esc(text)}</span>'


def cards(items: Iterable[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>' for k, v in items) + "</div>"


@dataclass
class Col:
    name: str
    numeric: bool = False
    wrap: bool = False

    def cls(self) -> str:
        c = [x for x, on in (("n", self.numeric), ("wrap", self.wrap)) if on]
        return f' class="{" ".join(c)}"' if c else ""


def table(cols: Sequence[Col | str], rows: Iterable[Sequence[Any]], *, raw: Sequence[int] = ()) -> str:
    """A table in its own sideways-scrolling box. Cells are escaped except the columns in `raw` (HTML)."""
    cs = [c if isinstance(c, Col) else Col(c) for c in cols]
    head = "".join(f"<th{c.cls()} scope=\"col\">{esc(c.name)}</th>" for c in cs)
    body = []
    for row in rows:
        cells = "".join(f"<td{c.cls()}>{v if i in raw else esc(v)}</td>" for i, (c, v) in enumerate(zip(cs, row, strict=True)))
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="tw"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def kv(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column key / value table; None values are left out."""
    rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in pairs if v is not None and v != "")
    return f'<div class="tw"><table class="kv"><tbody>{rows}</tbody></table></div>'


def grid(*figures: str) -> str:
    return '<div class="grid2">' + "".join(f"<div>{f}</div>" for f in figures if f) + "</div>"


def details(summary: str, body: str, *, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{body}</details>"


# ------------------------------------------------------------------------------------------ number formats


def fmt_bytes(n: Any) -> str:
    if not isinstance(n, int | float) or isinstance(n, bool):
        return "-"
    v = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(v) < 1024 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{v:.1f} GB"


def fmt_pct(x: Any, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%" if isinstance(x, int | float) and not isinstance(x, bool) else "-"


def fmt_ms(x: Any) -> str:
    """1.234 ms, 21.1 µs; '-' when missing."""
    if not isinstance(x, int | float) or isinstance(x, bool):
        return "-"
    if abs(x) < 0.001:
        return f"{x * 1000:.2g} µs"
    return f"{x * 1000:.1f} µs" if abs(x) < 1 else f"{x:,.3f} ms" if abs(x) < 100 else f"{x:,.1f} ms"


def fmt_num(x: Any, spec: str = ",") -> str:
    if not isinstance(x, int | float) or isinstance(x, bool):
        return "-"
    return format(x, spec)
