"""HTML building blocks of the supplement: page, tables, badges, numbers with units."""

from __future__ import annotations

import html
import math
from typing import Any

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;
line-height:1.45}table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;
padding:.25em .6em;text-align:left;vertical-align:top}td.num{text-align:right;
font-variant-numeric:tabular-nums}th{background:#f3f3f3}pre{background:#f6f6f6;padding:.8em;
overflow-x:auto}.bad{color:#fff;background:#b00020;padding:.1em .4em;border-radius:3px}
.good{color:#fff;background:#1b5e20;padding:.1em .4em;border-radius:3px}
.warn{background:#fff3cd;border:1px solid #e0c36b;padding:.5em .8em;border-radius:3px}
.unknown{background:#ddd;padding:.1em .4em;border-radius:3px}img{max-width:100%}
figure{display:inline-block;margin:.5em 1em .5em 0;max-width:48%;vertical-align:top}
figcaption{font-size:.85em;color:#555}code{background:#f1f1f1;padding:0 .2em}
details{margin:.8em 0}summary{cursor:pointer;font-weight:600}p.methods{max-width:60em}
.small{font-size:.85em;color:#555}
"""


def e(value: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(value))


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>\n{body}\n"
            "</body></html>\n")


def badge(converged: bool | None) -> str:
    if converged is None:
        return "<span class='unknown'>no convergence flags</span>"
    return ("<span class='good'>converged</span>" if converged
            else "<span class='bad'>NOT CONVERGED</span>")


def number(value: Any) -> str:
    """A number as a reader wants it: 3 significant digits, thousands grouped, no 15-digit tails."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{value:.3g}"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(rows: list[tuple[Any, ...]], header: tuple[str, ...] | None = None,
          raw: bool = False) -> str:
    """An HTML table; numbers right-aligned and formatted with :func:`number` (unless raw)."""
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for cell in row:
            if not raw and isinstance(cell, int | float) and not isinstance(cell, bool):
                cells.append(f"<td class='num'>{number(cell)}</td>")
            elif cell is None:
                cells.append("<td>—</td>")
            else:
                cells.append(f"<td>{cell if raw else e(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)
