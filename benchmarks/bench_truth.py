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
VM — inputs 254 s + fit 341–794 s per setting on 2026-12-03; ``--quick``: 6 seeds, ~5 min).
Writes docs/figures/truth_coverage.png.

Miscalibration as the model assumes it (issue 18, follow-up): the phantoms are calibrated exactly,
but the measurement model carries a camera-calibration prior ``log c ~ Normal(0, calibration_sd)``
(``PatientData.calibration_sd``, 3 %). With ``calibration_sd > 0`` every phantom gets a true
calibration error ``c`` drawn from that prior (seeded by the phantom's seed) and its
``calibration.json`` says ``cps_per_mbq / c``: image activities are then ``c`` × the true ones,
exactly as the prior says real sites are. Red marrow: the phantom's MIRD truth includes the
remainder-of-body (background) cross-dose, which the twin has no source for; rows
``red_marrow+rem`` add ``Ã_remainder × S(red marrow ← remainder)`` to the twin's marrow draws
(``Ã_remainder`` from the image: field-of-view total minus the GTM structure totals, ``fit_tac``).
``ablation`` refits the same cohort under other measurement-model settings.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

SCHEDULES = {"A": (4.0, 24.0, 48.0, 96.0, 168.0), "B": (2.0, 24.0, 72.0, 168.0)}
MODELLED = ("kidneys", "liver", "spleen", "salivary_glands", "red_marrow")
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "truth_coverage.png"
#: relative SD of the true camera-calibration error drawn per phantom: the model's prior
#: (``tdt.inference.PatientData.calibration_sd`` default, log-normal)
CALIBRATION_SD = 0.03
#: measurement-model settings of the study (GTM-corrected activities) and of the ablation runs
SETTINGS = {
    "model as is": {"recovery_sd": 0.03, "noise_sd_median": 0.10, "calibration_sd": 0.03},
    "recovery_sd 1 %": {"recovery_sd": 0.01, "noise_sd_median": 0.10, "calibration_sd": 0.03},
    "noise median 3 %": {"recovery_sd": 0.03, "noise_sd_median": 0.03, "calibration_sd": 0.03},
    "recovery 1 % + noise 3 %": {"recovery_sd": 0.01, "noise_sd_median": 0.03,
                                 "calibration_sd": 0.03},
}
#: suffix of the red-marrow rows that include the remainder cross-dose
WITH_REMAINDER = "+rem"


def true_calibration_factor(seed: int, sd: float = CALIBRATION_SD) -> float:
    """True calibration error c (image activity / true activity) of phantom ``seed``: one draw
    of the model's prior ``log c ~ Normal(0, sd)``, seeded by ``seed`` (1.0 when ``sd`` is 0)."""
    if sd == 0:
        return 1.0
    return float(np.exp(np.random.default_rng([18, seed]).normal(0.0, sd)))


def miscalibrate(calibration_path: Path, factor: float) -> None:
    """Rewrite ``calibration.json`` so that activities read through it are ``factor`` × true."""
    cal = json.loads(Path(calibration_path).read_text())
    cal["cps_per_mbq"] = cal["cps_per_mbq"] / factor
    Path(calibration_path).write_text(json.dumps(cal, indent=2))


def remainder_marrow_dose_gy(remainder_tia_mbq_h: float, organ_masses_g: dict,
                             source_organs) -> float:
    """Red-marrow cross-dose (Gy) of the remainder of body: Ã_RB × S(red marrow ← RB), with
    S(t ← RB) = [m_TB S(t ← TB) − Σ_i m_i S(t ← i)] / (m_TB − Σ_i m_i) over the VOI source
    organs i (``organ_doses``' remainder correction, MIRD Pamphlet 11; the remainder excludes
    every segmented organ, red marrow included, exactly as in the phantom's MIRD truth)."""
    from tdt.dosimetry import organ_doses

    tia = {o: 0.0 for o in source_organs}
    tia["remainder"] = remainder_tia_mbq_h
    dose = organ_doses(tia, nuclide="Lu-177", phantom="adult-male",
                       organ_masses_g=organ_masses_g, targets=["red_marrow"])
    return float(np.asarray(dose["red_marrow"]))


def image_remainder_tia(study, tacs) -> float:
    """Remainder (body background) TIA (MBq·h) from the image: total activity in the field of
    view minus the GTM-corrected totals of every structure, fitted with ``fit_tac``."""
    from tdt.kinetics import fit_tac

    total = study.activity_stack().reshape(len(study.times_h), -1).sum(axis=1)
    structures = sum(np.asarray(t.activity_mbq) for t in tacs.values())
    background = np.clip(total - structures, 1e-6, None)
    return float(fit_tac(study.times_h, background).tia_mbq_h)


def patient_inputs(seed: int, times_h, workdir: Path, fwhm_mm: float = 10.0,
                   time_jitter_h: float = 0.0, calibration_sd: float = CALIBRATION_SD):
    """Phantom → (PatientData on GTM-corrected TACs, ground truth, deterministic rows, extras).

    ``extras``: true calibration factor, image and true remainder TIA, remainder → red-marrow
    cross-doses (Gy, from the image's and from the true remainder TIA)."""
    from tdt import imaging, inference
    from tdt.dosimetry import organ_doses
    from tdt.imaging import truth_rows, voi_organ_masses_g
    from tdt.kinetics import fit_tac

    patient = imaging.make_phantom_patient(workdir / f"seed{seed}", seed=seed, n_lesions=2,
                                           times_h=times_h, time_jitter_h=time_jitter_h,
                                           fwhm_mm=fwhm_mm,
                                           write_segmentation=False, overwrite=True)
    factor = true_calibration_factor(seed, calibration_sd)
    miscalibrate(patient.calibration_path, factor)
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
    masses = voi_organ_masses_g(truth["volume_ml"], organs)
    dose = organ_doses(tia, nuclide="Lu-177", phantom="adult-male", lesion_volumes_ml=lesions,
                       organ_masses_g=masses)
    remainder_tia = image_remainder_tia(study, tacs)
    sources = [o for o in truth["structures"] if not o.startswith("lesion")]
    true_remainder = float(truth["tia_mbq_h"]["background"])
    extras = {"calibration_factor": factor, "remainder_tia_image": remainder_tia,
              "remainder_tia_true": true_remainder,
              "xdose_image": remainder_marrow_dose_gy(remainder_tia, masses, sources),
              "xdose_true": remainder_marrow_dose_gy(true_remainder, masses, sources),
              "marrow_truth_gy": float(truth["mird_dose_gy"]["red_marrow"]), "masses": masses}
    deterministic = truth_rows(truth, "tia_mbq_h", tia) + truth_rows(
        truth, "dose_gy", {k: float(np.asarray(v)) for k, v in dose.items() if k in organs})
    deterministic += marrow_remainder_rows(truth, float(np.asarray(dose["red_marrow"])), extras)
    return data, truth, deterministic, extras


def marrow_remainder_rows(truth, marrow_dose, extras) -> list[dict]:
    """Red-marrow dose rows with the remainder cross-dose added (``red_marrow+rem``: from the
    image's remainder TIA; ``red_marrow+rem(true)``: from the phantom's true background TIA)."""
    from tdt.imaging import truth_rows

    rows = []
    for label, key in ((WITH_REMAINDER, "xdose_image"), (WITH_REMAINDER + "(true)", "xdose_true")):
        for r in truth_rows(truth, "dose_gy", {"red_marrow": np.asarray(marrow_dose)
                                               + extras[key]}):
            rows.append({**r, "organ": "red_marrow" + label})
    return rows


def bayesian_rows(posterior, truth, organs, extras=None, max_draws: int = 1000):
    """Truth rows of one posterior's TIA and dose draws (doses with the phantom's masses)."""
    from tdt.imaging import truth_rows, voi_organ_masses_g

    lesions = {o: truth["volume_ml"][o] for o in organs if o.startswith("lesion")}
    pred = posterior.predict_doses(max_draws=max_draws, radiobiology=False,
                                   lesion_volumes_ml=lesions,
                                   organ_masses_g=voi_organ_masses_g(truth["volume_ml"], organs))
    rows = truth_rows(truth, "tia_mbq_h", pred.tia_mbq_h) + truth_rows(
        truth, "dose_gy", {k: v for k, v in pred.dose_gy.items() if k in organs})
    if extras is not None and "red_marrow" in organs:
        rows += marrow_remainder_rows(truth, pred.dose_gy["red_marrow"], extras)
    return rows


def build_inputs(seeds, time_jitter_h: float = 0.0, calibration_sd: float = CALIBRATION_SD,
                 workdir: Path | None = None):
    """Phantoms of the cohort, half on schedule A, half on B: {schedule: [(seed, data, truth,
    extras)]} and the deterministic rows (with seed and schedule)."""
    inputs, determ = {}, []
    with tempfile.TemporaryDirectory(prefix="tdt-truth-") as tmp:
        for label, times in SCHEDULES.items():
            group = [s for i, s in enumerate(seeds) if (i % 2 == 0) == (label == "A")]
            for seed in group:
                data, truth, rows, extras = patient_inputs(
                    seed, times, Path(workdir or tmp), time_jitter_h=time_jitter_h,
                    calibration_sd=calibration_sd)
                inputs.setdefault(label, []).append((seed, data, truth, extras))
                determ += [{**r, "seed": seed, "schedule": label} for r in rows]
    return inputs, determ


def fit_cohort(inputs, settings=None, draws: int = 500, tune: int = 500, chains: int = 2,
               jittered: bool = False):
    """Fit every schedule's phantoms (``settings``: recovery_sd, noise_sd_median,
    calibration_sd of the measurement model; default ``SETTINGS["model as is"]``). Returns the
    Bayesian rows (seed, schedule, converged, max R-hat, min bulk ESS with each)."""
    from dataclasses import replace

    from tdt.inference import MeasurementModel, fit_patient, fit_patients

    settings = settings or SETTINGS["model as is"]
    measurement = MeasurementModel(recovery_sd=settings["recovery_sd"],
                                   noise_sd_median=settings["noise_sd_median"])
    bayes = []
    for label, group in inputs.items():
        datasets = [replace(d, calibration_sd=settings["calibration_sd"]) for _, d, _, _ in group]
        if jittered:
            posteriors = [fit_patient(d, model="reduced", draws=draws, tune=tune, chains=chains,
                                      seed=0, measurement=measurement) for d in datasets]
        else:
            posteriors = fit_patients(datasets, model="reduced", draws=draws, tune=tune,
                                      chains=chains, seed=0, measurement=measurement)
        for (seed, data, truth, extras), post in zip(group, posteriors, strict=True):
            diag = post.diagnostics
            rows = bayesian_rows(post, truth, list(data.organ_names), extras)
            bayes += [{**r, "seed": seed, "schedule": label, "converged": bool(post.converged),
                       "max_rhat": float(diag.max_rhat), "min_ess_bulk": float(diag.min_ess_bulk)}
                      for r in rows]
    return bayes


def cohort(seeds, draws: int = 500, tune: int = 500, chains: int = 2,
           time_jitter_h: float = 0.0, calibration_sd: float = CALIBRATION_SD, settings=None):
    """Run the cohort; returns (bayesian rows, deterministic rows), each row with seed and
    schedule. ``time_jitter_h`` 0: every patient of a schedule is scanned at the nominal times
    and one vmapped ``fit_patients`` run fits them all; > 0: scan times jittered per patient
    (±``time_jitter_h``), one ``fit_patient`` each (slower). ``calibration_sd``: SD of the
    true calibration error drawn per phantom (0: exact calibration, as before)."""
    inputs, determ = build_inputs(seeds, time_jitter_h, calibration_sd)
    bayes = fit_cohort(inputs, settings, draws, tune, chains, jittered=time_jitter_h > 0)
    return bayes, determ


def summarise(rows) -> dict:
    """Coverage, median bias and spread per (quantity, organ class)."""
    out = {}
    for quantity in ("tia_mbq_h", "dose_gy"):
        for cls in ("organ", "lesion"):
            sel = [r for r in rows if r["quantity"] == quantity and WITH_REMAINDER not in
                   r["organ"] and r["organ"].startswith("lesion") == (cls == "lesion")]
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


def summarise_by_organ(rows) -> dict:
    """Coverage, median bias and spread per (quantity, organ); lesions pooled as "lesions"."""
    out = {}
    keys = sorted({(r["quantity"], "lesions" if r["organ"].startswith("lesion") else r["organ"])
                   for r in rows})
    for quantity, organ in keys:
        sel = [r for r in rows if r["quantity"] == quantity and (
            r["organ"] == organ or (organ == "lesions" and r["organ"].startswith("lesion")))]
        bias = np.array([r["bias"] for r in sel])
        entry = {"n": len(sel), "median_bias": float(np.median(bias)),
                 "median_abs_bias": float(np.median(np.abs(bias))), "spread": float(np.std(bias))}
        if "covered90" in sel[0]:
            entry["coverage50"] = float(np.mean([r["covered50"] for r in sel]))
            entry["coverage90"] = float(np.mean([r["covered90"] for r in sel]))
        out[(quantity, organ)] = entry
    return out


def gate_pass_rate(bayes) -> float:
    """Fraction of patients whose posterior passed the R-hat/ESS/divergence gate."""
    per_patient = {(r["seed"], r["schedule"]): r["converged"] for r in bayes}
    return float(np.mean(list(per_patient.values())))


def study(seeds, setting_names=tuple(SETTINGS), draws: int = 500, tune: int = 500,
          chains: int = 2, out_json: Path | None = None) -> dict:
    """Coverage study + ablation: the cohort is generated once (miscalibrated per the prior) and
    refitted under each named measurement setting; results (rows, summaries, timings) are
    written to ``out_json`` after every setting (a long run leaves usable partial results)."""
    import time

    start = time.perf_counter()
    inputs, determ = build_inputs(seeds)
    result = {"seeds": list(seeds), "draws": draws, "tune": tune, "chains": chains,
              "calibration_sd_true": CALIBRATION_SD,
              "inputs_s": time.perf_counter() - start, "deterministic": determ,
              "extras": {str(seed): {k: v for k, v in ex.items() if k != "masses"}
                         for group in inputs.values() for seed, _, _, ex in group},
              "runs": {}}
    for name in setting_names:
        t0 = time.perf_counter()
        bayes = fit_cohort(inputs, SETTINGS[name], draws, tune, chains)
        result["runs"][name] = {"settings": SETTINGS[name], "seconds": time.perf_counter() - t0,
                                "gate_pass_rate": gate_pass_rate(bayes), "rows": bayes}
        if out_json is not None:
            Path(out_json).write_text(json.dumps(result, indent=1))
    return result


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
    """The study with the measurement model as is (miscalibrated cohort); the ablation settings
    are run with :func:`study` (docs/imaging.md lists each run's settings)."""
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
    by_organ = summarise_by_organ(bayes)
    for organ in ("red_marrow", "red_marrow" + WITH_REMAINDER):
        e = by_organ[("dose_gy", organ)]
        rows.append({"case": f"dose {organ}: 90% CrI coverage ({e['n']})", "tdt": e["coverage90"],
                     "baseline": None, "unit": "fraction", "target": "0.85-0.95",
                     "note": f"median bias {e['median_bias']:+.3f}, 50%: {e['coverage50']:.2f}"})
    rows.append({"case": f"cohort of {len(seeds)} phantoms, 2 schedules", "tdt": elapsed,
                 "baseline": None, "unit": "s", "target": "< 900",
                 "note": f"R-hat/ESS gate passed: {gate_pass_rate(bayes):.2f} of patients"})
    return rows
