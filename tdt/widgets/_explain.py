"""Patient-facing "explain" view: the same prediction in plain words and one picture.

Numbers are rounded to what the model can support (whole Gy, whole percent), risks are given as
natural frequencies ("3 out of 100 people like you"), and the picture is an icon array — the
formats recommended for communicating risk to patients (Gigerenzer & Edwards, BMJ
2003;327:741; Galesic et al., Health Psychol 2009;28:210).
"""

from __future__ import annotations

import html
import math

from tdt.plotting import plot_icon_array
from tdt.units import HOURS_PER_DAY, mbq_to_gbq
from tdt.widgets._scenario import Outcomes

_PLAIN_NAMES = {
    "kidneys": "kidneys",
    "salivary_glands": "salivary glands (which make saliva)",
    "red_marrow": "bone marrow (which makes blood cells)",
    "liver": "liver",
    "spleen": "spleen",
}


def plain_name(region: str) -> str:
    if region.startswith("lesion"):
        return f"tumour {region.split('_', 1)[-1]}" if "_" in region else "tumour"
    return _PLAIN_NAMES.get(region, region.replace("_", " "))


def _frequency(p: float) -> str:
    k = int(round(100 * p))
    if k == 0 and p > 0:
        return "fewer than 1 out of 100 people like you"
    return f"about {k} out of 100 people like you"


def focus_region(outcomes: Outcomes) -> str:
    """The organ the explanation leads with: kidneys if present, else the first with a limit."""
    if "kidneys" in outcomes.regions:
        return "kidneys"
    for region, p in zip(outcomes.regions, outcomes.p_exceed, strict=True):
        if not math.isnan(p):
            return region
    return outcomes.regions[0]


def explain_html(outcomes: Outcomes, synthetic: bool = False) -> str:
    """A short plain-language account of ``outcomes`` (HTML, no jargon beyond 'radiation dose')."""
    s = outcomes.scenario
    weeks = s.interval_h / HOURS_PER_DAY / 7.0
    total_weeks = (s.n_cycles - 1) * weeks
    lines = [
        f"<p><b>The plan:</b> {s.n_cycles} treatment{'s' if s.n_cycles > 1 else ''} of "
        f"{mbq_to_gbq(s.activity_mbq):.1f} GBq"
        + (f", one every {weeks:.0f} weeks (about {total_weeks:.0f} weeks from first to last)."
           if s.n_cycles > 1 else ".") + "</p>",
    ]
    region = focus_region(outcomes)
    i = outcomes.index(region)
    lo, med, hi = outcomes.bed_total_gy[:, i]
    lines.append(
        f"<p><b>Your {html.escape(plain_name(region))}:</b> the expected biological radiation "
        f"dose is about <b>{med:.0f} Gy</b>; it could reasonably be anywhere between "
        f"{lo:.0f} and {hi:.0f} Gy.</p>"
    )
    p = outcomes.p_exceed[i]
    if not math.isnan(p):
        limit = outcomes.limit_gy[i]
        lines.append(
            f"<p>The safety limit we use for your {html.escape(plain_name(region))} is "
            f"<b>{limit:.0f} Gy</b>. If 100 people like you had this plan, "
            f"<b>{_frequency(p)}</b> would go over it (orange dots in the picture).</p>"
        )
    for j, other in enumerate(outcomes.regions):
        if other == region or outcomes.regions[j].startswith("lesion"):
            continue
        q = outcomes.p_exceed[j]
        if not math.isnan(q):
            lines.append(
                f"<p>For your {html.escape(plain_name(other))}, {_frequency(q)} would go over "
                f"the limit of {outcomes.limit_gy[j]:.0f} Gy.</p>"
            )
    lesion_tcp = [(r, t) for r, t in zip(outcomes.regions, outcomes.tcp, strict=True)
                  if r.startswith("lesion") and not math.isnan(t)]
    if lesion_tcp:
        parts = ", ".join(f"{html.escape(plain_name(r))}: about {100 * t:.0f} in 100"
                          for r, t in lesion_tcp)
        lines.append(
            "<p><b>Tumours:</b> the model's chance that each tumour is controlled "
            f"(this depends strongly on assumptions about the tumour) — {parts}.</p>"
        )
    if synthetic:
        lines.insert(0, "<p><b>Example only:</b> these numbers come from synthetic example data, "
                        "not from your scans.</p>")
        lines.append("<p><i>Illustrative estimates of a computer model on example data, not "
                     "about you.</i></p>")
    else:
        lines.append(
            "<p><i>These are estimates from a computer model fitted to your scans, not "
            "certainties. Your care team weighs them together with everything else they know "
            "about you.</i></p>")
    return "\n".join(lines)


def plot_explain(outcomes: Outcomes, ax) -> None:
    """The one picture: an icon array of the focus organ's limit-exceedance probability."""
    region = focus_region(outcomes)
    p = outcomes.p_exceed[outcomes.index(region)]
    p = 0.0 if math.isnan(p) else float(p)
    plot_icon_array(p, ax=ax, title=f"{plain_name(region)}: 100 people like you\n"
                                    f"orange = over the safety limit")
