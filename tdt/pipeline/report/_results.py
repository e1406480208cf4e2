"""Results of a run as tables a reader can read: JSON outputs rendered, not dumped.

- a list of flat records (``[{"organ": ..., "median": ..., "ci90_low": ...}, ...]``) becomes a
  table; ``median``/``ci90_low``/``ci90_high`` (and ``mean``/``sd``) columns merge into one
  "median [90 % CrI]" column; a ``unit`` column stays next to it;
- a flat mapping becomes a two-column table, a mapping of flat mappings a matrix;
- a mapping whose values are record lists or flat mappings renders each as a sub-table;
- anything else is linked as a download only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tdt.pipeline.report._html import e, number, table

MAX_ROWS = 60
_SCALAR = (str, int, float, bool, type(None))


def _is_records(value: Any) -> bool:
    return (isinstance(value, list) and 0 < len(value)
            and all(isinstance(r, dict) and all(isinstance(v, _SCALAR) for v in r.values())
                    for r in value))


def _is_flat(value: Any) -> bool:
    return isinstance(value, dict) and value and all(isinstance(v, _SCALAR)
                                                     for v in value.values())


def _records_table(records: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for record in records:
        columns += [k for k in record if k not in columns]
    if {"median", "ci90_low", "ci90_high"} <= set(columns):
        columns = [c for c in columns if c not in ("ci90_low", "ci90_high")]
        columns[columns.index("median")] = "median [90 % CrI]"
    # labels (text) first, then values, then unit and flag columns
    def rank(column: str) -> int:
        if column in ("unit", "flag"):
            return 2
        texts = [r.get(column) for r in records if r.get(column) is not None]
        return 0 if texts and all(isinstance(t, str) for t in texts) else 1
    columns.sort(key=rank)
    rows = []
    for record in records[:MAX_ROWS]:
        row = []
        for column in columns:
            if column == "median [90 % CrI]":
                row.append(f"{number(record.get('median'))} "
                           f"[{number(record.get('ci90_low'))}–{number(record.get('ci90_high'))}]")
            else:
                row.append(record.get(column, ""))
        rows.append(tuple(row))
    html_table = table(rows, tuple(c.replace("_", " ") for c in columns))
    if len(records) > MAX_ROWS:
        html_table += f"<p class='small'>… {len(records) - MAX_ROWS} more rows in the file.</p>"
    return html_table


def render_value(value: Any) -> str | None:
    """HTML for one JSON value, or None when it has no readable tabular form."""
    if _is_records(value):
        return _records_table(value)
    if _is_flat(value):
        return table([(k.replace("_", " "), v) for k, v in value.items()], ("quantity", "value"))
    if isinstance(value, dict) and value and all(_is_flat(v) for v in value.values()):
        columns: list[str] = []
        for inner in value.values():
            columns += [k for k in inner if k not in columns]
        rows = [(key, *(inner.get(c, "") for c in columns)) for key, inner in value.items()]
        return table(rows[:MAX_ROWS], ("", *(c.replace("_", " ") for c in columns)))
    if isinstance(value, dict) and value:
        parts = []
        for key, inner in value.items():
            rendered = render_value(inner) if isinstance(inner, dict | list) else None
            if rendered:
                parts.append(f"<h4>{e(key.replace('_', ' '))}</h4>{rendered}")
        scalars = {k: v for k, v in value.items() if isinstance(v, _SCALAR)}
        if scalars:
            parts.insert(0, table([(k.replace("_", " "), v) for k, v in scalars.items()],
                                  ("quantity", "value")))
        return "\n".join(parts) if parts else None
    return None


def results_section(run_dir: Path, json_files: list[str], heading_level: int = 3) -> str:
    """Every JSON result rendered as tables, each with a link to the raw file."""
    parts = []
    for rel in json_files:
        try:
            value = json.loads((run_dir / rel).read_text())
        except (OSError, ValueError):
            continue
        rendered = render_value(value)
        title = Path(rel).stem.replace("_", " ")
        link = f"<a class='small' href='files/{e(rel)}'>{e(rel)}</a>"
        parts.append(f"<h{heading_level}>{e(title)} {link}</h{heading_level}>"
                     + (rendered or "<p class='small'>nested data: see the file.</p>"))
    return "\n".join(parts)


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            out.update(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and len(value) <= 50:
        for index, inner in enumerate(value):
            label = inner.get("arm") or inner.get("organ") or inner.get("name") \
                if isinstance(inner, dict) else None
            out.update(_leaves(inner, f"{prefix}[{label or index}]"))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out[prefix] = value
    return out


def grid_comparison(run_dir: Path, points: list[dict[str, Any]], json_files: list[str],
                    limit: int = 40) -> str:
    """For a grid study: one column per point, one row per numeric result that differs."""
    if len(points) < 2:
        return ""
    per_point = []
    for point in points:
        leaves: dict[str, Any] = {}
        prefix = "" if point["dir"] == "." else point["dir"] + "/"
        for rel in json_files:
            if not rel.startswith(prefix) or rel.endswith("convergence.json"):
                continue
            try:
                value = json.loads((run_dir / rel).read_text())
            except (OSError, ValueError):
                continue
            leaves.update(_leaves(value, Path(rel).stem))
        per_point.append(leaves)
    keys = [k for k in per_point[0] if all(k in p for p in per_point[1:])
            and len({repr(p[k]) for p in per_point}) > 1]
    if not keys:
        return ""
    header = ("result", *(", ".join(f"{k}={v}" for k, v in sorted(p["parameters"].items())
                                    if k in _varying(points)) or p["dir"] for p in points))
    rows = [(key, *(p[key] for p in per_point)) for key in keys[:limit]]
    more = (f"<p class='small'>… {len(keys) - limit} more differing results in the files.</p>"
            if len(keys) > limit else "")
    return table(rows, header) + more


def _varying(points: list[dict[str, Any]]) -> set[str]:
    names = set().union(*(p["parameters"] for p in points))
    return {n for n in names if len({repr(p["parameters"].get(n)) for p in points}) > 1}
