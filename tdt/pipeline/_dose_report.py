"""``tdt dose DICOM_DIR``: one command from a patient's DICOM folder to an organ-dose report.

The deterministic chain that clinical tools (OLINDA, MIRDcalc) follow, on tdt's own pieces:
DICOM SPECT/CT + RTSTRUCT/SEG, de-identified on ingest (:func:`tdt.imaging.load_study`) → VOI
time–activity curves (:func:`tdt.imaging.extract_tacs`) → a sum-of-exponentials fit per VOI and its
TIA (:func:`tdt.kinetics.fit_tac`) → MIRD organ doses with lesion spheres
(:func:`tdt.dosimetry.organ_doses`) → Gy/GBq, Gy per cycle and the ICRP 103 effective dose
(:func:`tdt.dosimetry.effective_dose`).

Output, written atomically to ``runs/dose/<id>/`` (``id`` = first 16 hex digits of the sha256
of the de-identified TAC data, so the same images give the same folder and no name, path or
date of the patient enters it): ``organ_doses.csv``, ``report.html``, ``report.pdf``,
``tac_fits.png``, ``summary.json`` (every number, with the input checks' warnings).
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdt import imaging, plotting
from tdt._atomic import atomic_directory
from tdt.dosimetry import effective_dose, is_lesion, organ_doses
from tdt.errors import InputError
from tdt.kinetics import fit_tac
from tdt.pipeline._manifest import canonical_json, sha256_text
from tdt.pipeline.report._html import e, number, page, table
from tdt.units import gbq_to_mbq, mbq_to_gbq


@dataclass(frozen=True)
class DoseReport:
    """Where the report went and its rows (one per target or VOI)."""

    directory: Path
    rows: list[dict[str, Any]]
    effective_dose_sv: float
    warnings: list[str]


def _rows(fits, doses_gy, activity_mbq: float, n_cycles: int) -> list[dict[str, Any]]:
    rows = []
    for target, dose in sorted(doses_gy.items(), key=lambda kv: (kv[0] not in fits, kv[0])):
        dose = float(np.asarray(dose))
        fit = fits.get(target)
        rows.append({
            "target": target,
            "source_voi": fit is not None,
            "model": fit.model if fit else "",
            "tia_mbq_h": fit.tia_mbq_h if fit else None,
            "tia_se_mbq_h": fit.tia_se_mbq_h if fit else None,
            "dose_gy_per_cycle": dose,
            "dose_gy_per_gbq": dose / mbq_to_gbq(activity_mbq),
            f"dose_gy_{n_cycles}_cycles": dose * n_cycles,
        })
    return rows


def _figure(tacs, fits, path: Path):
    # matplotlib is heavy and must get the Agg backend first
    import matplotlib

    matplotlib.use("Agg", force=True)
    # matplotlib is heavy and must get the Agg backend first
    import matplotlib.pyplot as plt


    names = list(fits)
    ncols = min(4, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.6 * nrows), squeeze=False,
                             layout="constrained")
    grid = np.linspace(0, max(t.times_h[-1] for t in tacs.values()) * 1.5, 200)
    for ax, name in zip(axes.flat, names, strict=False):
        plotting.plot_tac_fit(tacs[name].times_h, tacs[name].activity_mbq, grid,
                              fits[name].predict(grid), ax=ax, label=name)
        ax.set_title(f"{name} ({fits[name].model})", fontsize="small")
        ax.legend().remove()
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.savefig(path, dpi=110)
    return fig


def _fmt(value: Any) -> str:
    return number(value) if value is not None else "—"


def _write_pdf(path: Path, rows, header: list[str], summary: dict[str, Any], fig) -> None:
    # matplotlib is heavy and must get the Agg backend first
    import matplotlib.pyplot as plt

    # matplotlib is heavy and must get the Agg backend first
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        page = plt.figure(figsize=(8.27, 11.69))
        page.text(0.06, 0.96, "tdt organ-dose report", fontsize=16, weight="bold")
        lines = [f"administered activity {summary['activity_mbq']:.0f} MBq ({summary['nuclide']}); "
                 f"phantom {summary['phantom']}; {summary['n_time_points']} time points",
                 f"effective dose (ICRP 103) {summary['effective_dose_sv']:.3g} Sv per cycle "
                 f"({summary['effective_dose_sv_per_gbq']:.3g} Sv/GBq)",
                 *(f"warning: {w}" for w in summary["warnings"][:4])]
        for i, line in enumerate(lines):
            page.text(0.06, 0.93 - 0.018 * i, line, fontsize=8)
        ax = page.add_axes((0.04, 0.03, 0.92, 0.8))
        ax.axis("off")
        cells = [[r["target"], _fmt(r["tia_mbq_h"]), _fmt(r["dose_gy_per_cycle"]),
                  _fmt(r["dose_gy_per_gbq"])] for r in rows]
        table = ax.table(cellText=cells, colLabels=header, loc="upper center", cellLoc="right")
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        table.scale(1, 1.1)
        pdf.savefig(page)
        plt.close(page)
        pdf.savefig(fig)
        info = pdf.infodict()
        info["Title"] = "tdt organ-dose report"
        info["Creator"] = "tdt"


def _write_html(path: Path, rows, n_cycles: int, summary: dict[str, Any]) -> None:
    cycles_key = f"dose_gy_{n_cycles}_cycles"
    body = ["<h1>Organ-dose report</h1>",
            f"<p>Administered activity <b>{summary['activity_mbq']:.0f} MBq</b> "
            f"({e(summary['nuclide'])}), {summary['n_time_points']} SPECT time points at "
            f"{e(', '.join(f'{t:.1f}' for t in summary['times_h']))} h, S-values of the "
            f"{e(summary['phantom'])} phantom (MIRD; lesions as unit-density spheres). VOI "
            "activities are the sums inside each VOI, without partial-volume correction: small "
            "lesions are underestimated.</p>",
            f"<p>Effective dose (ICRP 103): <b>{summary['effective_dose_sv']:.3g} Sv</b> per "
            f"cycle, {summary['effective_dose_sv_per_gbq']:.3g} Sv/GBq — a reference-person "
            "quantity, for comparison with OLINDA/MIRDcalc, not a risk estimate for this "
            "patient.</p>"]
    if summary["warnings"]:
        body.append("<div class='warn'><b>Input checks</b><ul>"
                    + "".join(f"<li>{e(w)}</li>" for w in summary["warnings"]) + "</ul></div>")
    body.append(table(
        [(r["target"], r["model"] or "—", r["tia_mbq_h"], r["tia_se_mbq_h"],
          r["dose_gy_per_cycle"], r["dose_gy_per_gbq"], r[cycles_key]) for r in rows],
        ("target", "TAC model", "TIA (MBq·h)", "TIA SE (MBq·h)", "dose per cycle (Gy)",
         "Gy/GBq", f"{n_cycles} cycles (Gy)")))
    body += ["<figure style='max-width:100%'><img src='tac_fits.png' alt='TAC fits'>"
             "<figcaption>VOI activity (points) and fitted TACs.</figcaption></figure>",
             "<p class='small'>Files: <a href='organ_doses.csv'>organ_doses.csv</a> · "
             "<a href='report.pdf'>report.pdf</a> · <a href='summary.json'>summary.json</a></p>"]
    path.write_text(page("tdt organ-dose report", "\n".join(body)))


def dose_report(dicom_dir: Path | str, runs_dir: Path | str = "runs",
                phantom: str = "adult-male", n_cycles: int = 1,
                activity_gbq: float | None = None,
                log: Callable[[str], None] = print) -> DoseReport:
    """Run the chain on ``dicom_dir`` and write the report (see the module docstring)."""
    if not isinstance(n_cycles, int) or n_cycles < 1:
        raise InputError(f"n_cycles: {n_cycles!r}; expected a whole number >= 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log("[1/5] read and de-identify the DICOM study")
        study = imaging.load_study(dicom_dir)
        log(f"[2/5] VOI time–activity curves ({len(study.masks)} VOIs, "
            f"{len(study.time_points)} time points)")
        tacs = imaging.extract_tacs(study)
        sources = {n: t for n, t in tacs.items() if n != "urinary_bladder_contents"}
        log("[3/5] kinetic fits and time-integrated activities")
        fits = {n: fit_tac(t.times_h, t.activity_mbq, nuclide=study.nuclide)
                for n, t in sources.items()}
        log("[4/5] MIRD organ doses, Gy/GBq, effective dose")
        lesions = {n: t.volume_ml for n, t in sources.items() if is_lesion(n)}
        doses = organ_doses({n: f.tia_mbq_h for n, f in fits.items()}, phantom=phantom,
                            lesion_volumes_ml=lesions, nuclide=study.nuclide)
    activity_mbq = (gbq_to_mbq(activity_gbq) if activity_gbq is not None
                    else study.injected_activity_mbq)
    if activity_mbq is None or not activity_mbq > 0:
        raise InputError("administered activity: not in the DICOM (RadionuclideTotalDose); "
                         "give it with --activity-gbq")
    organ_only = {k: float(np.asarray(v)) for k, v in doses.items() if not is_lesion(k)}
    effective = effective_dose(organ_only)
    messages = sorted({str(w.message) for w in caught
                       if not issubclass(w.category, DeprecationWarning | FutureWarning)})
    rows = _rows(fits, doses, activity_mbq, n_cycles)
    identity = sha256_text(canonical_json({
        "times_h": {n: np.round(t.times_h, 6).tolist() for n, t in sources.items()},
        "activity_mbq": {n: np.round(t.activity_mbq, 6).tolist() for n, t in sources.items()},
        "activity_mbq_administered": activity_mbq, "phantom": phantom, "n_cycles": n_cycles}))
    summary = {
        "schema": "tdt-dose-report/1", "id": identity[:16], "nuclide": study.nuclide,
        "phantom": phantom, "activity_mbq": activity_mbq, "n_cycles": n_cycles,
        "n_time_points": len(study.time_points), "times_h": [float(t) for t in study.times_h],
        "effective_dose_sv": effective.effective_dose_sv,
        "effective_dose_sv_per_gbq": effective.effective_dose_sv / mbq_to_gbq(activity_mbq),
        "effective_dose_contributions_sv": effective.contributions_sv,
        "effective_dose_missing_tissues": effective.missing_tissues,
        "rows": rows, "warnings": messages,
    }
    log("[5/5] report: HTML, PDF, CSV")
    root = Path(runs_dir) / "dose"
    root.mkdir(parents=True, exist_ok=True)
    target = root / identity[:16]
    with atomic_directory(target) as tmp:
        fig = _figure(sources, fits, tmp / "tac_fits.png")
        with (tmp / "organ_doses.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
        _write_html(tmp / "report.html", rows, n_cycles, summary)
        _write_pdf(tmp / "report.pdf", rows, ["target", "TIA (MBq·h)", "Gy per cycle", "Gy/GBq"],
                   summary, fig)
    return DoseReport(target, rows, effective.effective_dose_sv, messages)
