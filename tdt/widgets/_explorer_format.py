"""HTML of the explorer's clinician view: the outcomes table and the notes under it."""

from __future__ import annotations

import html
import math

from tdt.widgets._inputs import ScenarioInputs, is_lesion
from tdt.widgets._scenario import Outcomes


def fmt(value: float, digits: int = 1) -> str:
    """A number with ``digits`` decimals, or an en dash when missing or not finite."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def pct(p: float) -> str:
    """A probability as a whole percentage (HTML: ``&lt;1 %`` for small non-zero values)."""
    if p is None or not math.isfinite(p):
        return "–"
    if 0 < p < 0.005:
        return "&lt;1 %"
    return f"{100 * p:.0f} %"


def _cell(region: str, quantity: str, value: str, extra: str = "") -> str:
    # data-region / data-quantity let code and tests read what is shown (ScenarioExplorer.displayed)
    return (f'<td style="text-align:right"><span class="tdt-value" '
            f'data-region="{region}" data-quantity="{quantity}">{value}</span>{extra}</td>')


def _interval(q, i: int) -> str:
    return f" <small>[{fmt(q[0, i])}–{fmt(q[2, i])}]</small>"


def _row(o: Outcomes, i: int, region: str) -> str:
    kind = o.limit_kind[i]
    limit = f"{kind} {o.limit_gy[i]:.0f} Gy" if kind else "–"
    risk = o.tcp[i] if is_lesion(region) else o.ntcp[i]
    label = "TCP" if is_lesion(region) else "NTCP"
    warn = (' style="background:#fde0dc"'
            if math.isfinite(o.p_exceed[i]) and o.p_exceed[i] >= 0.05 else "")
    return (
        f"<tr{warn}><td>{html.escape(region)}</td>"
        + _cell(region, "dose_per_cycle_gy", fmt(o.dose_per_cycle_gy[1, i], 2),
                _interval(o.dose_per_cycle_gy, i))
        + _cell(region, "dose_total_gy", fmt(o.dose_total_gy[1, i]),
                _interval(o.dose_total_gy, i))
        + _cell(region, "bed_total_gy", fmt(o.bed_total_gy[1, i]),
                _interval(o.bed_total_gy, i))
        + f"<td style=\"white-space:nowrap\">{limit}</td>"
        + _cell(region, "p_exceed", pct(o.p_exceed[i]))
        + _cell(region, "risk", (f"{label} {pct(risk)}" if math.isfinite(risk) else "–"))
        + "</tr>")


def outcomes_table_html(o: Outcomes) -> str:
    """Dose per cycle, total dose and BED (median [90 % CrI]), limit, P(over limit), NTCP/TCP."""
    head = ("<tr><th>region</th><th>dose / cycle (Gy)</th><th>total dose (Gy)</th>"
            "<th>total BED (Gy)</th><th>limit</th><th>P(over limit)</th>"
            "<th>NTCP / TCP</th></tr>")
    rows = [_row(o, i, region) for i, region in enumerate(o.regions)]
    caption = ("<caption style='caption-side:bottom;text-align:left'><small>median "
               "[90 % credible interval] over posterior draws; P(over limit) = fraction of "
               "draws above the limit.</small></caption>")
    return (f"<table class='tdt-outcomes' style='border-collapse:collapse'>{caption}"
            f"{head}{''.join(rows)}</table>")


def notes_html(o: Outcomes, inputs: ScenarioInputs) -> str:
    """Warnings (failed diagnostics, overlapping cycles), the inputs' notes and the method."""
    notes = []
    if inputs.converged is False:
        notes.append("<b style='color:#a00'>Posterior FAILED sampler diagnostics — do not "
                     "use these numbers for decisions.</b>")
    if o.overlap_bound > 0.01:
        notes.append(f"Cycles overlap: up to {100 * o.overlap_bound:.0f} % of a cycle's dose "
                     "rate is left at the next administration; the summed-cycle BED "
                     "neglects that interaction.")
    notes.extend(html.escape(n) for n in inputs.notes)
    notes.append("BED per cycle: Dale closed form (instant uptake, mono-exponential "
                 "clearance); cycles summed. Kidney limits: Bodei et al. EJNMMI 2008.")
    return "<small>" + "<br>".join(notes) + "</small>"
