"""End-to-end truth: does the chain recover the phantom's ground truth? (issue 18)

A cohort of phantom patients (``make_phantom_patient``: seeds differ in lesion sites and sizes,
kinetics drawn around the reduced PBPK model's rates, Poisson noise), half scanned on schedule A
(4, 24, 48, 96, 168 h), half on schedule B (2, 24, 72, 168 h). For each patient:

- image → VOI TACs with the geometric-transfer-matrix partial-volume correction
  (``extract_tacs(..., partial_volume="gtm")``, the phantom's known 10 mm FWHM);
- deterministic path (what other tools do): ``fit_tac`` per VOI → TIA → MIRD doses;
- Bayesian path: ``fit_patients`` (reduced model, one vmapped NUTS run per schedule) → TIA and
  dose draws → 50 % / 90 % credible intervals.

Both are compared with ``ground_truth.json`` (TIA; MIRD dose with the phantom's organ masses):
coverage of the 50 % and 90 % intervals, median bias and spread (SD of relative error), per
organ and pooled. Targets (issue 18): 90 % coverage 85–95 %, 50 % coverage 40–60 %, median
|bias| of organ doses < 5 %, lesions (all ≥ 2 cm diameter here) < 10 %.
``python -m benchmarks truth`` (full: 30 seeds at nominal times, ~15–20 min on the shared 2-core
VM — 12 seeds took 448 s; ``--quick``: 6 seeds, ~5 min).
Writes docs/figures/truth_coverage.png.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

SCHEDULES = {"A": (4.0, 24.0, 48.0, 96.0, 168.0), "B": (2.0, 24.0, 72.0, 168.0)}
MODELLED = ("kidneys", "liver", "spleen", "salivary_glands", "red_marrow")
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "truth_coverage.png"


def patient_inputs(seed: int, times_h, workdir: Path, fwhm_mm: float = 10.0,
                   time_jitter_h: float = 0.0):
    """Phantom → (PatientData on GTM-corrected TACs, ground truth, deterministic rows)."""
    from tdt import imaging, inference
    from tdt.dosimetry import organ_doses
    from tdt.imaging.truth import truth_rows, voi_organ_masses_g
    from tdt.kinetics import fit_tac

    patient = imaging.make_phantom_patient(workdir / f"seed{seed}", seed=seed, n_lesions=2,
                                           times_h=times_h, time_jitter_h=time_jitter_h,
                                           fwhm_mm=fwhm_mm,
                                           write_segmentation=False, overwrite=True)
    truth = patient.ground_truth
    study = patient.load()
    tacs = imaging.extract_tacs(study, partial_volume="gtm", fwhm_mm=fwhm_mm)
    organs = [n for n in tacs if n in MODELLED or n.startswith("lesion")]
    # volumes stay out of the PatientData (fit_patients batches one protocol; with recovery 1
    # they only matter for lesion doses, which get them in bayesian_rows)
    series = {n: inference.OrganSeries(tacs[n].times_h, tacs[n].activity_mbq, recovery=1.0)
              for n in organs}
    data = inference.PatientData(series, administered_activity_mbq=study.injected_activity_mbq)
    tia = {n: float(fit_tac(tacs[n].times_h, tacs[n].activity_mbq).tia_mbq_h) for n in organs}
    lesions = {n: tacs[n].volume_ml for n in organs if n.startswith("lesion")}
    dose = organ_doses(tia, nuclide="Lu-177", phantom="adult-male", lesion_volumes_ml=lesions,
                       organ_masses_g=voi_organ_masses_g(truth["volume_ml"], organs))
    deterministic = truth_rows(truth, "tia_mbq_h", tia) + truth_rows(
        truth, "dose_gy", {k: float(np.asarray(v)) for k, v in dose.items() if k in organs})
    return data, truth, deterministic


def bayesian_rows(posterior, truth, organs, max_draws: int = 1000):
    """Truth rows of one posterior's TIA and dose draws (doses with the phantom's masses)."""
    from tdt.imaging.truth import truth_rows, voi_organ_masses_g

    lesions = {o: truth["volume_ml"][o] for o in organs if o.startswith("lesion")}
    pred = posterior.predict_doses(max_draws=max_draws, radiobiology=False,
                                   lesion_volumes_ml=lesions,
                                   organ_masses_g=voi_organ_masses_g(truth["volume_ml"], organs))
    return truth_rows(truth, "tia_mbq_h", pred.tia_mbq_h) + truth_rows(
        truth, "dose_gy", {k: v for k, v in pred.dose_gy.items() if k in organs})


def cohort(seeds, draws: int = 500, tune: int = 500, chains: int = 2,
           time_jitter_h: float = 0.0):
    """Run the cohort; returns (bayesian rows, deterministic rows), each row with seed and
    schedule. ``time_jitter_h`` 0: every patient of a schedule is scanned at the nominal times
    and one vmapped ``fit_patients`` run fits them all; > 0: scan times jittered per patient
    (±``time_jitter_h``), one ``fit_patient`` each (slower)."""
    from tdt.inference import GTM_RECOVERY_SD, MeasurementModel, fit_patient, fit_patients

    bayes, determ = [], []
    with tempfile.TemporaryDirectory(prefix="tdt-truth-") as tmp:
        for label, times in SCHEDULES.items():
            group = [s for i, s in enumerate(seeds) if (i % 2 == 0) == (label == "A")]
            if not group:
                continue
            inputs = []
            for seed in group:
                data, truth, rows = patient_inputs(seed, times, Path(tmp),
                                                   time_jitter_h=time_jitter_h)
                inputs.append((seed, data, truth))
                determ += [{**r, "seed": seed, "schedule": label} for r in rows]
            measurement = MeasurementModel(recovery_sd=GTM_RECOVERY_SD)
            if time_jitter_h > 0:
                posteriors = [fit_patient(d, model="reduced", draws=draws, tune=tune,
                                          chains=chains, seed=0, measurement=measurement)
                              for _, d, _ in inputs]
            else:
                posteriors = fit_patients([d for _, d, _ in inputs], model="reduced",
                                          draws=draws, tune=tune, chains=chains, seed=0,
                                          measurement=measurement)
            for (seed, data, truth), post in zip(inputs, posteriors, strict=True):
                rows = bayesian_rows(post, truth, list(data.organ_names))
                bayes += [{**r, "seed": seed, "schedule": label,
                           "converged": bool(post.converged)} for r in rows]
    return bayes, determ


def summarise(rows) -> dict:
    """Coverage, median bias and spread per (quantity, organ class)."""
    out = {}
    for quantity in ("tia_mbq_h", "dose_gy"):
        for cls in ("organ", "lesion"):
            sel = [r for r in rows if r["quantity"] == quantity
                   and r["organ"].startswith("lesion") == (cls == "lesion")]
            if not sel:
                continue
            bias = np.array([r["bias"] for r in sel])
            entry = {"n": len(sel), "median_bias": float(np.median(bias)),
                     "median_abs_bias": float(np.median(np.abs(bias))),
                     "spread": float(np.std(bias))}
            if "covered90" in sel[0]:
                entry["coverage50"] = float(np.mean([r["covered50"] for r in sel]))
                entry["coverage90"] = float(np.mean([r["covered90"] for r in sel]))
            out[(quantity, cls)] = entry
    return out


def figure(bayes, determ, path: Path = FIGURE):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for ax, quantity, title in ((axes[0], "tia_mbq_h", "TIA"), (axes[1], "dose_gy", "dose")):
        organs = sorted({r["organ"] if not r["organ"].startswith("lesion") else "lesions"
                         for r in bayes if r["quantity"] == quantity})
        for k, organ in enumerate(organs):
            def pick(rows, organ=organ, quantity=quantity):
                return [r for r in rows if r["quantity"] == quantity and (
                    r["organ"] == organ or (organ == "lesions" and r["organ"].startswith("lesion")))]
            b = pick(bayes)
            rel = np.array([[r["ci90_low"] / r["truth"] - 1, r["bias"], r["ci90_high"] / r["truth"]
                             - 1] for r in b])
            x = k + np.linspace(-0.3, 0.1, len(b))
            ax.vlines(x, 100 * rel[:, 0], 100 * rel[:, 2], color="C0", lw=0.8)
            ax.plot(x, 100 * rel[:, 1], ".", color="C0", ms=3)
            d = pick(determ)
            ax.plot(k + 0.25 + np.zeros(len(d)), [100 * r["bias"] for r in d], "x", color="C3",
                    ms=3)
            cov = np.mean([r["covered90"] for r in b])
            ax.annotate(f"{100 * cov:.0f}%", (k, 1.0), xycoords=("data", "axes fraction"),
                        ha="center", va="top", fontsize=7)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(organs)), organs, rotation=30, fontsize=7)
        ax.set_ylabel(f"{title}: estimate / truth − 1 (%)")
        ax.set_title(f"{title}: Bayesian 90 % CrI (blue, coverage on top) vs deterministic "
                     "fit_tac (red x)", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool = False) -> list[dict]:
    import time

    seeds = list(range(6 if quick else 30))
    start = time.perf_counter()
    bayes, determ = cohort(seeds, draws=300 if quick else 500, tune=300 if quick else 500)
    elapsed = time.perf_counter() - start
    if not quick:
        figure(bayes, determ)
    sb, sd = summarise(bayes), summarise(determ)
    rows = []
    for (quantity, cls), e in sb.items():
        target90 = "0.85-0.95"
        rows.append({"case": f"{quantity} {cls}s: 90% CrI coverage ({e['n']})",
                     "tdt": e["coverage90"], "baseline": None, "unit": "fraction",
                     "target": target90, "note": f"50%: {e['coverage50']:.2f} (0.40-0.60)"})
        d = sd[(quantity, cls)]
        rows.append({"case": f"{quantity} {cls}s: median |bias|", "tdt": e["median_abs_bias"],
                     "baseline": d["median_abs_bias"], "unit": "fraction",
                     "target": "< 0.05 organs, < 0.10 lesions",
                     "note": f"spread {e['spread']:.3f} (deterministic fit_tac: bias "
                             f"{d['median_bias']:+.3f}, spread {d['spread']:.3f})"})
    rows.append({"case": f"cohort of {len(seeds)} phantoms, 2 schedules", "tdt": elapsed,
                 "baseline": None, "unit": "s", "target": "< 900",
                 "note": "converged: " + f"{np.mean([r['converged'] for r in bayes]):.2f}"})
    return rows
