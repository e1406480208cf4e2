"""Generate the tdt notebooks from code: ``python notebooks/_build.py`` (``--check`` to verify).

The ``.ipynb`` files are build products of this script, kept in git without outputs so that
reviews read this file. Every notebook has one code cell tagged ``parameters`` (papermill);
``tdt run`` injects ``seed``, ``output_dir`` (the run directory) and ``datasets`` after it.
Notebooks stay thin: the logic is in the tdt package, the notebook narrates and plots.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

#: kernel metadata of every notebook (the venv's default "python3" kernel)
METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                   "name": "python3"},
    "language_info": {"name": "python"},
}

COMMON_PARAMETERS = '''seed = 0            # random seed (injected by `tdt run`)
output_dir = None   # run directory: results are saved there when set (injected by `tdt run`)
datasets = {}       # data-catalog name -> path (injected by `tdt run`)'''

SETUP = '''import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# inline figures even when MPLBACKEND=Agg is set (tests, CI): the executed notebook keeps them
%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import tdt
from tdt import plotting
from tdt.pipeline import results

SAVE = output_dir is not None  # interactive use writes nothing unless output_dir is set'''


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: tuple[str, ...] = ()):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def parameters(extra: str):
    return code(COMMON_PARAMETERS + "\n" + extra.strip("\n"), tags=("parameters",))


# --- 01 quickstart ------------------------------------------------------------------------------

def quickstart():
    return [
        md('''
# 01 · Quickstart: from measured activities to a dose table in five minutes

A 177Lu-PSMA-617 patient was imaged (SPECT/CT) 4, 24, 48, 96 and 168 h after 7.4 GBq. Below are
the activities in each volume of interest — here taken from tdt's synthetic phantom patient
(`tdt.imaging.make_phantom_patient`, seed 0), so nothing in this notebook is real patient data.

The steps: fit each time–activity curve (`tdt.kinetics.fit_tac`) → time-integrated activity
(TIA, MBq·h) → absorbed dose with MIRD S-values (`tdt.dosimetry.organ_doses`) → BED over the
planned cycles (`tdt.radiobiology`). Units everywhere: h, MBq, MBq·h, Gy.
'''),
        parameters('''
activity_gbq = 7.4  # administered activity per cycle (GBq)
n_cycles = 6        # planned number of cycles
'''),
        code(SETUP),
        md("## Measured time–activity data (MBq)"),
        code('''
from tdt.units import gbq_to_mbq

times_h = np.array([3.7, 24.1, 48.1, 96.1, 167.9])
measured_mbq = {
    "kidneys": [189.53, 176.95, 103.3, 34.93, 7.19],
    "liver": [143.17, 143.05, 100.43, 47.96, 15.47],
    "spleen": [18.52, 16.67, 11.73, 5.75, 1.9],
    "salivary_glands": [88.03, 81.48, 48.11, 16.37, 3.38],
    "red_marrow": [37.2, 21.47, 8.17, 1.43, 0.21],
    "lesion_1": [13.41, 15.79, 12.3, 7.19, 3.1],
}
lesion_volumes_ml = {"lesion_1": 4.5}
administered_mbq = gbq_to_mbq(7.4)
'''),
        md("## Fit each curve and integrate it (TIA)"),
        code('''
from tdt.kinetics import fit_tac

fits = {organ: fit_tac(times_h, np.asarray(values)) for organ, values in measured_mbq.items()}
tia_mbq_h = {organ: fit.tia_mbq_h for organ, fit in fits.items()}
fig, axes = plt.subplots(2, 3, figsize=(11, 6), layout="constrained")
grid = np.linspace(0, 250, 200)
for ax, (organ, fit) in zip(axes.flat, fits.items()):
    plotting.plot_tac_fit(times_h, measured_mbq[organ], grid, fit.predict(grid), ax=ax, label=organ)
    ax.set_title(f"{organ}: {fit.model}, TIA {fit.tia_mbq_h:,.0f} MBq·h", fontsize="small")
'''),
        md("## Absorbed dose (MIRD) and the dose table"),
        code('''
import pandas as pd

from tdt.dosimetry import organ_doses

doses_gy = organ_doses(tia_mbq_h, lesion_volumes_ml=lesion_volumes_ml)
table = pd.DataFrame({
    "TIA (MBq·h)": pd.Series(tia_mbq_h),
    "TIA SE (MBq·h)": pd.Series({o: f.tia_se_mbq_h for o, f in fits.items()}),
    "dose (Gy)": pd.Series({o: float(d) for o, d in doses_gy.items()}),
})
table["dose per activity (Gy/GBq)"] = table["dose (Gy)"] / 7.4
table = table.dropna(subset=["TIA (MBq·h)"]).round(3)  # source organs and lesions
table
'''),
        md('''
## BED over the planned cycles

Kidney BED per cycle with Dale's closed form (instant uptake, mono-exponential clearance;
α/β and repair half-time from `tdt.radiobiology`), effective half-life T_eff = ln2 · TIA / A(0)
from the fit, cycles summed, scaled linearly to the planned activity.
'''),
        code('''
from tdt.radiobiology import bed_monoexponential
from tdt.radiobiology.parameters import tissue
from tdt.widgets import effective_half_life_from_tia

kidney = tissue("kidneys")
dose_per_cycle = float(doses_gy["kidneys"]) * gbq_to_mbq(activity_gbq) / administered_mbq
t_eff_h = float(effective_half_life_from_tia(fits["kidneys"].tia_mbq_h,
                                             fits["kidneys"].predict(np.array([0.0]))[0]))
bed_cycle = float(bed_monoexponential(dose_per_cycle, kidney.alpha_beta_gy,
                                      kidney.repair_half_time_h, t_eff_h))
cycles = np.arange(1, n_cycles + 1)
ax = plotting.plot_bed_over_cycles(np.vstack([cycles * bed_cycle] * 3), limit_gy=40.0,
                                   label="kidneys")
ax.set_title(f"kidneys: {dose_per_cycle:.2f} Gy and {bed_cycle:.2f} Gy BED per cycle "
             f"(T_eff {t_eff_h:.0f} h)")
print(f"Kidney BED after {n_cycles} cycles of {activity_gbq} GBq: {n_cycles * bed_cycle:.1f} Gy "
      "(limit 40 Gy, 28 Gy with risk factors; Bodei et al. 2008)")
'''),
        code('''
if SAVE:
    results.save_json("dose_table", table.reset_index(names="organ").to_dict(orient="records"),
                      output_dir)
    results.save_figure("kidney_bed_over_cycles", ax.figure, output_dir)
'''),
        md('''
**Next:** `02_patient_dosimetry` does the same from DICOM images (with voxel dose and DVHs),
`03_bayesian_twin` puts credible intervals on every number, and `04_treatment_planning` lets you
change the plan interactively.
'''),
    ]


# --- 02 patient dosimetry -----------------------------------------------------------------------

def patient_dosimetry():
    return [
        md('''
# 02 · Patient dosimetry: DICOM → VOIs → TACs → TIA → organ and voxel dose, DVH

Input: one administration's SPECT/CT time points with an RTSTRUCT/SEG (any folder layout).
Without `patient_dir`, tdt's synthetic phantom patient is generated (DICOM files with known
ground truth), so the result can be checked against the truth it was built from.
Images are de-identified on load (`tdt.imaging.load_study`).
'''),
        parameters('''
patient_dir = None       # folder of DICOM files; None: the catalog's or a generated phantom
n_lesions = 2            # phantom only
phantom = "adult-male"   # S-value phantom for organ doses
voxel_dose = True        # compute a voxel dose map and DVHs (FFT kernel convolution)
fwhm_mm = None           # system resolution (mm) for the partial-volume (GTM) correction;
                         # None: the phantom's, when the input is a phantom; else no correction
'''),
        code(SETUP),
        code('''
import tempfile
from pathlib import Path

from tdt import imaging

if patient_dir is None and "phantom_patient" in datasets:
    patient_dir = datasets["phantom_patient"]
if patient_dir is None:
    base = Path(output_dir) if SAVE else Path(tempfile.mkdtemp(prefix="tdt-phantom-"))
    patient_dir = imaging.make_phantom_patient(base / "phantom_patient", seed=seed,
                                               n_lesions=n_lesions, overwrite=True).directory
study = imaging.load_study(patient_dir)
# every PlausibilityWarning (implausible but valid input) is collected and shown under
# "Input checks" below; load_study records its own in study.warnings
input_warnings = [str(w) for w in study.warnings]
study
'''),
        md('''
## Time–activity curves of every VOI

With a known system resolution (`fwhm_mm`, or the phantom's), the VOI sums are corrected for
partial volume with a geometric transfer matrix (spill-out *and* spill-in between all VOIs and
the body background; `imaging.extract_tacs(..., partial_volume="gtm")`). Without it they are
raw image sums, and notebook 03 puts a recovery coefficient into its measurement model instead.
'''),
        code('''
from tdt.errors import collect_implausible

truth = imaging.load_truth(patient_dir)  # ground truth of a phantom input, else None
if fwhm_mm is None and truth is not None:
    fwhm_mm = truth["fwhm_mm"]
with collect_implausible() as found:
    tacs = imaging.extract_tacs(study, partial_volume=None if fwhm_mm is None else "gtm",
                                fwhm_mm=fwhm_mm)
input_warnings += [str(w) for w in found]
pv_corrected = fwhm_mm is not None
print("partial-volume correction:", f"GTM, FWHM {fwhm_mm} mm" if pv_corrected else "none")
organs = [n for n in tacs if n != "urinary_bladder_contents"]
{name: (np.round(t.times_h, 1).tolist(), np.round(t.activity_mbq, 1).tolist()) for name, t in tacs.items()}
'''),
        md("## Fit and integrate (TIA, MBq·h)"),
        code('''
from tdt.kinetics import fit_tac

with collect_implausible() as found:
    fits = {n: fit_tac(tacs[n].times_h, tacs[n].activity_mbq) for n in organs}
input_warnings += [str(w) for w in found]
grid = np.linspace(0, tacs[organs[0]].times_h[-1] * 1.5, 200)
ncols = 4
fig, axes = plt.subplots(-(-len(organs) // ncols), ncols, figsize=(13, 6), layout="constrained")
for ax, name in zip(axes.flat, organs):
    plotting.plot_tac_fit(tacs[name].times_h, tacs[name].activity_mbq, grid,
                          fits[name].predict(grid), ax=ax, label=name)
    ax.set_title(f"{name} ({fits[name].model})", fontsize="small")
for ax in list(axes.flat)[len(organs):]:
    ax.set_visible(False)
'''),
        md("## Organ and lesion absorbed doses (MIRD)"),
        code('''
import pandas as pd

from tdt.dosimetry import organ_doses

tia_mbq_h = {n: f.tia_mbq_h for n, f in fits.items()}
lesion_volumes_ml = {n: tacs[n].volume_ml for n in organs if n.startswith("lesion")}
# MIRD self-S scaled to the patient's organ masses (VOI volume × 1.03 g/mL)
organ_masses_g = imaging.voi_organ_masses_g({n: tacs[n].volume_ml for n in organs})
with collect_implausible() as found:
    doses_gy = organ_doses(tia_mbq_h, phantom=phantom, lesion_volumes_ml=lesion_volumes_ml,
                           organ_masses_g=organ_masses_g)
input_warnings += [str(w) for w in found]
table = pd.DataFrame({"TIA (MBq·h)": pd.Series(tia_mbq_h),
                      "dose (Gy)": pd.Series({k: float(v) for k, v in doses_gy.items()})})
table = table.dropna(subset=["TIA (MBq·h)"]).round(3)  # source organs and lesions
table
'''),
        md('''
## Estimate vs truth (phantom input only)

A phantom carries its ground truth (`ground_truth.json`): the deterministic chain's TIAs and
doses against it (bias = estimate / truth − 1). docs/imaging.md ("Harmonisation / truth") has
the stage-by-stage decomposition and the cohort coverage study.
'''),
        code('''
truth_fig = truth_table = None
if truth is not None:
    truth_table = pd.DataFrame(
        imaging.truth_rows(truth, "tia_mbq_h", tia_mbq_h)
        + imaging.truth_rows(truth, "dose_gy", {k: float(doses_gy[k]) for k in organs}))
    truth_table = truth_table[["quantity", "organ", "truth", "median", "bias"]].rename(
        columns={"median": "estimate"})
    truth_fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
    for k, (q, g) in enumerate(truth_table.groupby("quantity", sort=False)):
        ax.bar(np.arange(len(g)) + 0.4 * k, 100 * g.bias, width=0.4, label=q)
    ax.set_xticks(np.arange(len(g)) + 0.2, g.organ, rotation=30, fontsize="small")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("estimate / truth − 1 (%)")
    ax.set_title("deterministic chain vs phantom truth"
                 + (" (GTM-corrected TACs)" if pv_corrected else " (uncorrected TACs)"))
    ax.legend(fontsize="small")
    display(truth_table.round(3))
'''),
        md('''
## Voxel dose and dose–volume histograms

Activity maps × voxel S-value kernel (FFT convolution, `tdt.dosimetry.voxel`), integrated over
time per voxel. DVHs show how uneven the dose is inside each VOI.
'''),
        code('''
dvh_fig = None
if voxel_dose:
    from tdt.dosimetry import voxel

    masks = {n: study.masks[n] for n in organs if n in study.masks}
    # TIA map: each VOI's fitted TIA spread over its voxels like the 24 h image (reference
    # method; voxel.tia_map_voxelwise fits every voxel instead, slower and noisier)
    reference = study.time_points[int(np.argmin(np.abs(study.times_h - 24.0)))].activity_mbq
    tia_map = voxel.tia_map_from_reference(reference, masks, {n: tia_mbq_h[n] for n in masks})
    voxel_mm = study.geometry.spacing_mm
    dose_map = voxel.voxel_dose(tia_map, voxel_mm, hu=study.ct_on_grid())
    ax = plotting.plot_dvh(dose_map, masks)
    ax.set_title("cumulative DVH (voxel dose, kernel convolution)")
    dvh_fig = ax.figure
    display(pd.DataFrame(voxel.dvh_table(dose_map, masks, voxel_mm)).T.round(2))
'''),
        md('''
## Input checks: plausibility warnings

Values that are valid but implausible (activity in the field of view vs the administered activity
decayed to the scan, voxel sizes, CT/SPECT alignment, time or activity units that look wrong,
absurd doses; thresholds in docs/imaging.md "Input checks") are listed here, and files that could
not be used with the reason. An empty list means every check passed.
'''),
        code('''
print(f"{len(input_warnings)} plausibility warning(s)")
for text in input_warnings:
    print("  WARNING:", text)
for name, reason in study.skipped:
    print(f"  skipped file {name}: {reason}")
'''),
        code('''
if SAVE:
    results.save_json("input_warnings", {"warnings": input_warnings,
                                         "skipped": [list(s) for s in study.skipped]}, output_dir)
    results.save_json("patient_tacs", {
        "times_h": {n: tacs[n].times_h for n in organs},
        "activity_mbq": {n: tacs[n].activity_mbq for n in organs},
        "volume_ml": {n: tacs[n].volume_ml for n in organs},
        "administered_activity_mbq": study.injected_activity_mbq,
        "partial_volume_corrected": pv_corrected,
        "patient_dir": str(patient_dir),
    }, output_dir)
    if truth_table is not None:
        results.save_json("truth_comparison_deterministic",
                          truth_table.to_dict(orient="records"), output_dir)
        results.save_figure("truth_deterministic", truth_fig, output_dir)
    results.save_json("organ_doses", table.reset_index(names="organ").to_dict(orient="records"),
                      output_dir)
    results.save_figure("tac_fits", fig, output_dir)
    if dvh_fig is not None:
        results.save_figure("dvh", dvh_fig, output_dir)
'''),
    ]


# --- 03 Bayesian twin ---------------------------------------------------------------------------

def bayesian_twin():
    return [
        md('''
# 03 · The Bayesian twin: fit, diagnostics, posterior predictive, doses with credible intervals

The reduced linear kinetic model (`tdt.pbpk.reduced_linear`) is fitted to the patient's TACs
with PyMC + NUTS (`tdt.inference.fit_patient`). Every dose then comes with a 90 % credible
interval, and a fit that fails the convergence gate (R-hat, ESS, divergences) is marked
**NOT CONVERGED** wherever its numbers appear.
'''),
        parameters('''
draws = 500      # NUTS draws per chain
chains = 2
tune = 500
max_predictive_draws = 400  # posterior draws used for TAC bands and doses
'''),
        code(SETUP),
        md("## The patient's data (from notebook 02, or the phantom patient)"),
        code('''
import tempfile
from pathlib import Path

from tdt import imaging, inference

tacs_file = Path(output_dir) / "patient_tacs.json" if SAVE else None
if tacs_file is not None and tacs_file.is_file():
    saved = results.load_json("patient_tacs", output_dir)
    pv_corrected = bool(saved.get("partial_volume_corrected", False))
    truth = imaging.load_truth(saved.get("patient_dir"))
    tacs = {n: (saved["times_h"][n], saved["activity_mbq"][n], saved["volume_ml"][n])
            for n in saved["times_h"]}
    administered = saved["administered_activity_mbq"]
else:
    directory = datasets.get("phantom_patient") or imaging.make_phantom_patient(
        Path(tempfile.mkdtemp(prefix="tdt-phantom-")) / "pt", seed=seed, n_lesions=2).directory
    study = imaging.load_study(directory)
    truth = imaging.load_truth(directory)
    pv_corrected = truth is not None  # the phantom's FWHM is known: GTM correction
    extracted = imaging.extract_tacs(study, partial_volume="gtm" if pv_corrected else None,
                                     fwhm_mm=truth["fwhm_mm"] if pv_corrected else None)
    tacs = {n: (t.times_h, t.activity_mbq, t.volume_ml) for n, t in extracted.items()}
    administered = study.injected_activity_mbq
modelled = ("kidneys", "liver", "spleen", "salivary_glands", "red_marrow")
# GTM-corrected activities are true VOI totals: recovery 1 (its uncertainty stays in the
# measurement model); raw image sums get the volume-based recovery coefficient instead
series = {n: inference.OrganSeries(t, a, volume_ml=v, recovery=1.0 if pv_corrected else None)
          for n, (t, a, v) in tacs.items() if n in modelled or n.startswith("lesion")}
data = inference.PatientData(series, administered_activity_mbq=administered)
print("partial-volume corrected data:", pv_corrected, "| phantom truth:", truth is not None)
data.organ_names
'''),
        md("## Fit (NUTS) and diagnostics"),
        code('''
# GTM-corrected data: only the residual recovery uncertainty stays (inference.GTM_RECOVERY_SD)
measurement = inference.MeasurementModel(recovery_sd=inference.GTM_RECOVERY_SD) if pv_corrected \
    else inference.MeasurementModel()
posterior = inference.fit_patient(data, model="reduced", draws=draws, chains=chains, tune=tune,
                                  seed=seed, measurement=measurement)
print(posterior.report())
'''),
        md('''
## Posterior predictive time–activity curves (median, 50 % and 90 % bands)

Data and curves are drawn on the same footing: both partial-volume corrected (GTM data, true
activity curves), or both as the camera sees them (image sums, curves × the prior recovery
coefficient of the VOI). The title of the figure says which.
'''),
        code('''
predictive = posterior.predict(max_draws=max_predictive_draws, seed=seed)
names = list(data.organ_names)
recovery = dict(zip(names, inference.recovery_coefficients(data, inference.MeasurementModel())))
if pv_corrected:
    recovery = dict.fromkeys(names, 1.0)
fig, axes = plt.subplots(-(-len(names) // 4), 4, figsize=(13, 6), layout="constrained")
for ax, name in zip(axes.flat, names):
    plotting.plot_tac_fit(data.organs[name].times_h, data.organs[name].activity_mbq,
                          predictive["times_h"], predictive["activity_mbq"][name] * recovery[name],
                          ax=ax, label=name)
    ax.set_xlim(0, data.organs[name].times_h[-1] * 1.3)
    ax.set_title(name + ("" if posterior.converged else " — NOT CONVERGED"), fontsize="small")
fig.suptitle("data and curves partial-volume corrected (GTM)" if pv_corrected else
             "data: image VOI sums; curves: model activity × prior recovery coefficient")
for ax in list(axes.flat)[len(names):]:
    ax.set_visible(False)
'''),
        md("## Absorbed doses with 90 % credible intervals"),
        code('''
import pandas as pd

volumes_ml = {n: data.organs[n].volume_ml for n in names}
prediction = posterior.predict_doses(max_draws=max_predictive_draws, seed=seed,
                                     organ_masses_g=imaging.voi_organ_masses_g(volumes_ml))
rows = pd.DataFrame(prediction.summary())
doses = rows[rows.quantity == "dose_gy"].set_index("organ")[["median", "ci90_low", "ci90_high",
                                                              "flag"]]
ax = plotting.plot_dose_intervals({o: (r.ci90_low, r["median"], r.ci90_high)
                                   for o, r in doses.iterrows()},
                                  title="absorbed dose, median and 90 % CrI (one cycle)")
doses.round(3)
'''),
        md('''
## Estimate vs truth (phantom input only)

Posterior median, 50 % and 90 % credible intervals of every TIA and dose against the phantom's
ground truth; "covered" says whether the interval holds the truth. On a cohort of phantoms the
90 % intervals should cover it ~90 % of the time (docs/imaging.md, "Harmonisation / truth").
'''),
        code('''
truth_table = truth_fig = None
if truth is not None:
    truth_table = pd.DataFrame(
        imaging.truth_rows(truth, "tia_mbq_h", prediction.tia_mbq_h)
        + imaging.truth_rows(truth, "dose_gy", {k: v for k, v in prediction.dose_gy.items()
                                                if k in names}))
    truth_fig, tax = plt.subplots(1, 2, figsize=(12, 3.5), layout="constrained")
    for a, (q, g) in zip(tax, truth_table.groupby("quantity", sort=False)):
        x = np.arange(len(g))
        a.vlines(x, 100 * (g.ci90_low / g.truth - 1), 100 * (g.ci90_high / g.truth - 1), lw=1)
        a.vlines(x, 100 * (g.ci50_low / g.truth - 1), 100 * (g.ci50_high / g.truth - 1), lw=4)
        a.plot(x, 100 * g.bias, "o", ms=4)
        a.axhline(0, color="k", lw=0.6, label="truth")
        a.set_xticks(x, g.organ, rotation=30, fontsize="small")
        a.set_ylabel("estimate / truth − 1 (%)")
        a.set_title(f"{q}: 50 % / 90 % CrI vs phantom truth, 90 % covered "
                    f"{int(g.covered90.sum())}/{len(g)}"
                    + ("" if posterior.converged else " — NOT CONVERGED"), fontsize="small")
    display(truth_table[["quantity", "organ", "truth", "median", "ci90_low", "ci90_high",
                         "bias", "covered50", "covered90"]].round(3))
'''),
        code('''
if SAVE:
    if truth_table is not None:
        results.save_json("truth_comparison", truth_table.to_dict(orient="records"), output_dir)
        results.save_figure("truth_comparison", truth_fig, output_dir)
    posterior.to_netcdf(Path(output_dir) / "posterior.nc")
    diagnostics = {k: v for k, v in posterior.diagnostics.as_dict().items() if k != "converged"}
    results.record_convergence("bayesian_twin", posterior.converged, **diagnostics)
    results.save_json("dose_summary", rows.to_dict(orient="records"), output_dir)
    results.save_figure("posterior_predictive_tacs", fig, output_dir)
    results.save_figure("dose_intervals", ax.figure, output_dir)
'''),
    ]


# --- 04 treatment planning ----------------------------------------------------------------------

def treatment_planning():
    return [
        md('''
# 04 · Treatment planning: what would the next cycles do?

Move the controls: activity per cycle, number of cycles, interval, kidney risk factors and the
radiobiology. Every posterior draw of this patient's twin is re-evaluated at once (jitted,
vectorised); the table shows absorbed dose and BED per organ and lesion (median and 90 %
credible interval), the probability of exceeding each limit, NTCP and TCP. The *explain* tab
says the same in plain words for the patient.

This notebook renders as a standalone app with Voilà (`voila notebooks/04_treatment_planning.ipynb`).
'''),
        parameters('''
source = "auto"        # "auto": posterior.nc of notebook 03 if present, else the example draws;
                       # "posterior" (required) or "example" (synthetic, illustrative draws)
n_draws = 1000         # draws used by the explorer
activity_gbq = 7.4     # initial scenario
n_cycles = 6
interval_weeks = 6.0
kidney_risk_factors = False
'''),
        code(SETUP),
        code('''
from pathlib import Path

from tdt.units import HOURS_PER_DAY, gbq_to_mbq
from tdt.widgets import Scenario, ScenarioExplorer, ScenarioInputs

posterior_file = Path(output_dir) / "posterior.nc" if SAVE else None
use_posterior = source == "posterior" or (
    source == "auto" and posterior_file is not None and posterior_file.is_file())
if use_posterior:
    from tdt.inference import Posterior

    inputs = ScenarioInputs.from_posterior(Posterior.from_netcdf(posterior_file))
else:
    inputs = ScenarioInputs.example(n_draws=n_draws, seed=seed)
scenario = Scenario(activity_mbq=gbq_to_mbq(activity_gbq), n_cycles=n_cycles,
                    interval_h=interval_weeks * 7 * HOURS_PER_DAY,
                    kidney_risk_factors=kidney_risk_factors)
print(f"{inputs.n_draws} draws from: {inputs.source}")
'''),
        md("## Scenario explorer"),
        code('''
explorer = ScenarioExplorer(inputs, scenario, max_draws=n_draws, seed=seed)
explorer
'''),
        md('''
## The initial scenario, for the record

The explorer is live only in a running kernel; the run directory keeps the initial scenario's
numbers and figure.
'''),
        code('''
import pandas as pd

outcomes = explorer.outcomes
summary = pd.DataFrame(outcomes.summary()).T
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
for i, region in enumerate(outcomes.regions):
    ax = axes[1] if region.startswith("lesion") else axes[0]
    limit = outcomes.limit_gy[i] if outcomes.limit_kind[i] == "BED" else None
    plotting.plot_bed_over_cycles(outcomes.cumulative_bed_gy[:, :, i], limit_gy=limit, ax=ax,
                                  label=region, color=plotting.COLORS[i % len(plotting.COLORS)],
                                  n_cycles=outcomes.scenario.n_cycles)
for ax in axes:
    ax.legend(fontsize="small")
summary[["dose_total_gy", "bed_total_gy", "bed_total_gy_lo", "bed_total_gy_hi", "p_exceed",
         "ntcp", "tcp"]].round(3)
'''),
        md('''
## Fan chart: kidney BED after all cycles, as a function of the activity per cycle

Nested 50 / 80 / 95 % credible bands over the posterior draws; the dashed line is the limit.
'''),
        code('''
activities_gbq = np.linspace(4.0, 10.0, 13)
k = outcomes.index("kidneys")
kidney_bed = np.stack([explorer.model(scenario.replace(activity_mbq=gbq_to_mbq(a)))
                       .bed_total_draws_gy[:, k] for a in activities_gbq], axis=1)
fan_ax = plotting.plot_fan_chart(activities_gbq, kidney_bed, xlabel="activity per cycle (GBq)",
                                 ylabel=f"kidney BED after {n_cycles} cycles (Gy)")
fan_ax.axhline(scenario.kidney_bed_limit_gy, ls="--", color="k", lw=1)
fan_ax.legend(fontsize="small")
p_over = (kidney_bed > scenario.kidney_bed_limit_gy).mean(axis=0)
pd.Series(p_over, index=pd.Index(np.round(activities_gbq, 1), name="activity per cycle (GBq)"),
          name="P(kidney BED > limit)").round(3).to_frame()
'''),
        md("## Optimised plan (tdt.twin): maximise tumour BED subject to P(limit exceeded) ≤ 5 %"),
        code('''
from tdt import twin

planned = [i for i, r in enumerate(explorer.inputs.regions)
           if r in ("kidneys", "red_marrow") or r.startswith("lesion")]
draws = twin.DoseDraws.from_monoexponential(
    [explorer.inputs.regions[i] for i in planned], explorer.inputs.dose_per_mbq_gy[:, planned],
    explorer.inputs.effective_half_life_h[:, planned])
constraints = [twin.Constraint("kidneys", "bed", scenario.kidney_bed_limit_gy, 0.05)]
if "red_marrow" in draws.organs:
    constraints.append(twin.Constraint("red_marrow", "dose", 2.0, 0.05))
the_plan = twin.plan(draws, n_cycles=n_cycles, constraints=constraints)
print(f"decision: {the_plan.decision} — {the_plan.reason}")
pd.DataFrame({"activity (GBq)": np.asarray(the_plan.activities_mbq) / 1000.0},
             index=pd.RangeIndex(1, len(the_plan.activities_mbq) + 1, name="cycle")).round(2)
'''),
        code('''
if SAVE:
    results.save_json("scenario_initial", {"scenario": vars(outcomes.scenario),
                                           "outcomes": outcomes.summary(),
                                           "source": inputs.source}, output_dir)
    results.save_json("plan", the_plan.to_dict(), output_dir)
    results.save_figure("bed_over_cycles", fig, output_dir)
    results.save_figure("kidney_bed_fan_chart", fan_ax.figure, output_dir)
'''),
    ]


# --- 05 virtual trial ---------------------------------------------------------------------------

def virtual_trial():
    return [
        md('''
# 05 · Virtual trial: fixed 7.4 GBq × 6 versus dosimetry-guided planning with the twin

`tdt.twin.virtual_trial` runs the living twin on a virtual cohort. Each virtual patient has true
kinetics drawn from the population prior of the reduced linear 177Lu-PSMA-617 model (two lesions,
2–30 mL; lesion uptake falling between cycles by the twin's drift model), a kidney risk factor
with probability `risk_factor_prevalence` (kidney BED limit 28 Gy with, 40 Gy without; Bodei et
al., EJNMMI 2008;35:1847; default 0.665: hypertension, measured or treated, in US adults aged
65–74 in NHANES 2005–2008, NCHS *Health, United States, 2010*, data table for Figure 15 — a lower
bound for "any risk factor", since diabetes adds to it). After every cycle the patient is imaged (kidneys, salivary glands,
liver, spleen, red marrow, lesions at 4–168 h; 10 % noise per point, 3 % calibration error per
cycle), the twin assimilates the images (Laplace posterior, `n_draws` draws) and plans the next
cycle: maximise expected tumour BED subject to P(kidney BED > the patient's limit) ≤ 5 % and
P(red-marrow dose > 2 Gy) ≤ 5 %, 3.7 GBq ≤ A ≤ `max_activity_gbq`, up to `max_guided_cycles`
cycles (stopping early when `tumour_bed_target_gy` is reached, when set).

Arms: **fixed** `activity_gbq` × `n_cycles`; **dosimetry-guided** (cycle 1 at `activity_gbq`,
then the twin's plan); optionally **oracle**, the same planner given the patient's true kinetics
(perfect knowledge: a reference, not a realisable arm). Outcomes are *true* doses: the rate of
cumulative kidney BED > `kidney_bed_limit_gy` (28 Gy) and > the patient's own limit, with Wilson
95 % CIs and the difference from the fixed arm with a paired bootstrap 95 % CI, the rate of
cumulative red-marrow absorbed dose > 2 Gy (the planner's second constraint; Wilson 95 % CI), and
the median tumour BED (mean over lesions) with a bootstrap 95 % CI and its paired difference /
per-patient ratio to the fixed arm.

The number of guided cycles is a decision too (`max_guided_cycles`): as in kidney-dosimetry-guided
177Lu-DOTATATE treatment, where 7.4 GBq cycles were given until a predefined kidney dose was
reached (Sundlöv et al., EJNMMI 2022;49(11): median 5 cycles, range 1–9). docs/twin.md reports the trial with up to
8 and 10 guided cycles: more cycles raise the tumour BED of the patients the fixed schedule keeps
within their limits, but cannot raise it for those it overdoses, so the median per-patient ratio
rises only where fewer than half the patients are overdosed by 7.4 GBq × 6.

**The cohort is calibrated to VISION's dosimetry sub-study** (Herrmann et al., J Nucl Med
2024;65:71: 30 patients on the fixed arm's own regimen, 7.4 GBq × up to 6; kidneys 0.43 ± 0.16
Gy/GBq in cycle 1, predicted 6-cycle cumulative 19 ± 7 Gy). The twin's catalog prior is
deliberately wide for inference (kidney dose CV ~0.8); real patients vary less.
`population_sd_scale = 0.45` narrows the virtual patients' organ rate constants to VISION's
kidney CV (0.37) and `kidney_uptake_scale = 0.68` moves the cohort's kidney uptake to its mean
(3000 draws: 0.43 ± 0.15 Gy/GBq, 19.0 ± 6.8 Gy; `tests/twin/test_twin_virtual_cohort.py`).
Lesions keep the catalog's wide spread (`lesion_sd_scale = 1`). The twin's prior is not changed:
the twin does not know the cohort, as a clinic would not. The study's grid repeats the trial at
the catalog's median kidney uptake (1: cohort mean ~0.63 Gy/GBq) and above (1.36: ~0.85 Gy/GBq),
the upper part of the published 0.39–0.82 Gy/GBq (Violet 2019; Delker 2016; Kratochwil 2016),
as a sensitivity analysis: there 45 % and 73 % of the patients are over a limit under
7.4 GBq × 6 and guidance must give them less, so the median tumour BED does not rise
(docs/twin.md).
'''),
        parameters('''
n_patients = 1000              # virtual patients (one twin each; ~0.4 s per patient + ~40 s JIT)
n_draws = 300                  # posterior draws per twin
activity_gbq = 7.4             # fixed arm and first guided cycle (GBq)
max_activity_gbq = 9.0         # cap per guided cycle (GBq)
n_cycles = 6                   # fixed-arm cycles
max_guided_cycles = 6          # guided arm: at most this many cycles (same interval)
tumour_bed_target_gy = None    # guided arm stops early when the median least-treated lesion reaches it
kidney_bed_limit_gy = 28.0     # reported threshold for everyone (the planner uses each patient's own)
risk_factor_prevalence = 0.665 # fraction with a kidney risk factor (28 Gy limit; NCHS 2010, see above)
kidney_uptake_scale = 0.68     # population median kidney uptake x this (truth only; VISION)
population_sd_scale = 0.45     # organ inter-patient spread x this (1: catalog prior; VISION)
lesion_sd_scale = 1.0          # lesion inter-patient spread x this (1: catalog prior)
oracle = True                  # add the perfect-knowledge reference arm
'''),
        code(SETUP),
        code('''
import time

import pandas as pd

from tdt.twin import Policy, virtual_trial
from tdt.units import gbq_to_mbq

policy = Policy(standard_activity_mbq=gbq_to_mbq(activity_gbq),
                max_activity_mbq=gbq_to_mbq(max_activity_gbq),
                tumour_bed_target_gy=tumour_bed_target_gy)
start = time.perf_counter()
trial = virtual_trial(n_patients=n_patients, seed=seed, n_cycles=n_cycles,
                      standard_activity_mbq=gbq_to_mbq(activity_gbq), n_draws=n_draws,
                      policy=policy, kidney_limit_gy=kidney_bed_limit_gy,
                      population_sd_scale=population_sd_scale,
                      lesion_sd_scale=lesion_sd_scale,
                      risk_factor_prevalence=risk_factor_prevalence,
                      kidney_uptake_scale=kidney_uptake_scale,
                      max_guided_cycles=max_guided_cycles, oracle=oracle)
wall_s = time.perf_counter() - start
table, patients = trial.table, trial.patients
print(f"{n_patients} virtual patients in {wall_s:.0f} s; true kidney dose "
      f"{trial.settings['mean_kidney_gy_per_gbq']:.2f} ± {trial.settings['sd_kidney_gy_per_gbq']:.2f} "
      f"Gy/GBq (mean ± SD; VISION 0.43 ± 0.16); "
      f"{patients['risk_factor'].mean():.0%} with a kidney risk factor")
'''),
        md('''
## Arm table (true doses; 95 % CIs: Wilson for rates, bootstrap percentile for medians)
'''),
        code('''
table.set_index("arm").round(3).T
'''),
        md('''
## Distributions per arm, and the guided activities per cycle

Left: true cumulative kidney BED (dashed: 28 Gy, dotted: 40 Gy). Middle: true tumour BED (mean
over the two lesions; log scale). Right: activity given in each guided cycle (cycle 1 is the standard
activity; a missing cycle means the twin stopped).
'''),
        code('''
arms = [a for a in ("fixed", "guided", "oracle") if f"{a}_kidney_bed_gy" in patients]
labels = list(table["arm"])
fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
for ax, quantity, ylabel in ((axes[0], "kidney_bed_gy", "kidney BED, cumulative (Gy)"),
                             (axes[1], "tumour_bed_gy", "tumour BED, mean of lesions (Gy)")):
    data = [patients[f"{a}_{quantity}"].to_numpy() for a in arms]
    parts = ax.violinplot(data, showmedians=True)
    for body, color in zip(parts["bodies"], plotting.COLORS):
        body.set_facecolor(color)
    ax.set_xticks(range(1, len(arms) + 1), [lab.split(" (")[0] for lab in labels],
                  fontsize="small")
    ax.set_ylabel(ylabel)
axes[0].axhline(28.0, ls="--", color="k", lw=1)
axes[0].axhline(40.0, ls=":", color="k", lw=1)
axes[1].set_yscale("log")  # lesion BED spans more than a decade across patients
per_cycle = [[a[c] / 1000.0 for a in patients["guided_activities_mbq"] if len(a) > c]
             for c in range(max_guided_cycles)]
axes[2].boxplot([v if v else [np.nan] for v in per_cycle], showfliers=True)
axes[2].set_xticks(range(1, max_guided_cycles + 1),
                   [f"{c + 1}\\n(n={len(v)})" for c, v in enumerate(per_cycle)], fontsize="small")
axes[2].axhline(activity_gbq, ls="--", color="grey", lw=1)
axes[2].set_xlabel("guided cycle")
axes[2].set_ylabel("activity (GBq)")
'''),
        md('''
## Kidney dose per GBq and what guidance does with it

Each point is a patient: the guided arm's total activity against the patient's true kidney dose
per GBq. Guidance escalates patients with low kidney dose per GBq (up to the cap) and reduces
those whose fixed-arm kidney BED would exceed their limit.
'''),
        code('''
fig2, ax2 = plt.subplots(figsize=(6, 4), layout="constrained")
for risk, marker in ((True, "o"), (False, "^")):
    sel = patients["risk_factor"] == risk
    ax2.scatter(patients.loc[sel, "kidney_gy_per_gbq"],
                patients.loc[sel, "guided_total_activity_mbq"] / 1000.0, marker=marker,
                label="risk factor (28 Gy)" if risk else "no risk factor (40 Gy)")
ax2.axhline(activity_gbq * n_cycles, ls="--", color="grey", lw=1, label="fixed arm")
ax2.set_xlabel("true kidney dose per GBq (Gy/GBq)")
ax2.set_ylabel("guided total activity (GBq)")
ax2.legend(fontsize="small")
'''),
        md('''
## Planner calibration: promised against realised kidney risk

Every guided plan promises P(kidney BED > the patient's limit) ≤ 5 % under the twin's
posterior. Here each plan is checked against the truth: would the patient's true cumulative
kidney BED have exceeded the limit had the plan been followed? With a calibrated twin the count
stays within Binomial(n plans, 5 %) (`binomial_upper_99`: its 99 % quantile; plans of one patient
are correlated, so a guide). `last_plans_exceeded` counts the last plan of each patient (the one
that decides the realised outcome); `exceeded_by_first_cycle` the patients whose first, standard
cycle alone (given before any imaging) took them over their limit — realised exceedances no plan
can prevent.
'''),
        code('''
pd.Series(trial.settings["plan_calibration"]).to_frame("value")
'''),
        code('''
if SAVE:
    results.save_json("virtual_trial", {"table": table.to_dict(orient="records"),
                                        "settings": trial.settings,
                                        "wall_s": wall_s}, output_dir)
    results.save_json("virtual_trial_patients", patients.to_dict(orient="list"), output_dir)
    results.save_figure("virtual_trial_distributions", fig, output_dir)
    results.save_figure("virtual_trial_activity_vs_kidney_dose", fig2, output_dir)
'''),
    ]


# --- 06 single vs multiple time points -----------------------------------------------------------

def stp_vs_mtp():
    return [
        md('''
# 06 · Single-time-point versus multi-time-point dosimetry

How much accuracy is lost when a patient is imaged once instead of 4–5 times? A virtual cohort
(`tdt.pbpk.virtual_cohort`) provides each organ's true TIA; measurements with lognormal noise are
simulated at the imaging times. Multi-time-point (MTP) TIAs come from the batched fit
`tdt.kinetics.fit_tacs`; single-time-point (STP) TIAs from Hänscheid's formula
Ã ≈ A(t)·2t/ln 2 (J Nucl Med 2018;59:75) and Madsen's Ã = A(t)·e^{λt}/λ with the cohort's median
effective half-life (Med Phys 2018;45:2318), both in `tdt.inference`. Self-dose is proportional
to TIA, so the TIA errors are the absorbed-dose errors of each organ's self-dose.
'''),
        parameters('''
n_patients = 50
times_h = [4.0, 24.0, 48.0, 96.0, 168.0]  # MTP imaging times (h)
stp_times_h = [48.0, 96.0]                 # candidate single imaging times (h)
noise_sd = 0.05                            # relative measurement noise (lognormal sd)
'''),
        code(SETUP),
        code('''
from tdt import pbpk
from tdt.inference.predictive import effective_half_life_h
from tdt.inference.single_time_point import haenscheid_tia, madsen_tia
from tdt.kinetics import fit_tacs

times = np.asarray(times_h, dtype=float)
model = pbpk.reduced_linear()
cohort = pbpk.virtual_cohort(model, n_patients, pbpk.Schedule.repeated(7400.0, 1, 1.0),
                             seed=seed, times_h=times, phantom=None)
ok = np.asarray(cohort.ok, dtype=bool)
organs = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow")
rng = np.random.default_rng(seed)
errors = {}
for organ in organs:
    truth = np.asarray(cohort.tia_mbq_h[organ])[ok]
    curves = np.asarray(cohort.simulation.activity_mbq[organ])[ok]
    measured = curves * np.exp(noise_sd * rng.standard_normal(curves.shape))
    errors[(organ, "MTP")] = np.asarray(fit_tacs(times, measured).tia_mbq_h) / truth - 1
    population_t_eff = float(np.median(effective_half_life_h(times, measured, 24.0, 168.0)))
    for t in stp_times_h:
        j = int(np.argmin(np.abs(times - t)))
        errors[(organ, f"Hänscheid {t:g} h")] = haenscheid_tia(measured[:, j], times[j]) / truth - 1
        errors[(organ, f"Madsen {t:g} h")] = (
            madsen_tia(measured[:, j], times[j], population_t_eff) / truth - 1)
print(f"{ok.sum()} of {n_patients} virtual patients")
'''),
        code('''
import pandas as pd

labels = list(dict.fromkeys(m for _, m in errors))
fig, axes = plt.subplots(1, len(organs), figsize=(15, 4), sharey=True, layout="constrained")
for ax, organ in zip(axes, organs):
    ax.boxplot([100 * errors[(organ, m)] for m in labels], showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=60, fontsize="x-small")
    ax.axhline(0, color="grey", lw=1)
    ax.set_title(organ, fontsize="small")
axes[0].set_ylabel("TIA error vs truth (%)")
table = pd.DataFrame({f"{o} / {m}": {"median error (%)": 100 * np.median(e),
                                     "5 % (%)": 100 * np.quantile(e, 0.05),
                                     "95 % (%)": 100 * np.quantile(e, 0.95)}
                      for (o, m), e in errors.items()}).T
table.round(1)
'''),
        code('''
if SAVE:
    results.save_json("stp_vs_mtp", table.to_dict(orient="index"), output_dir)
    results.save_figure("stp_vs_mtp_errors", fig, output_dir)
'''),
    ]

# --- 07 federated prior -------------------------------------------------------------------------

def federated_prior():
    return [
        md("""
# 07 · Federated population prior: sites learn a shared prior without sharing data

Each site fits the hierarchical population model to its own patients and exports only a
**site summary** (`tdt.inference.site_summary`): a moment-matched Gaussian of its posterior of
the population parameters (mean μ of log θ, between-patient SD τ), the number of patients, the
protocol, the radiopharmaceutical and the model — no patient-level arrays, identifiers or dates.
`tdt.inference.combine_site_summaries` divides each site posterior by the shared prior
(Vehtari et al., JMLR 2020;21(17):1–53), estimates a between-site random effect by REML
(Veroniki et al., Res Synth Methods 2016;7:55–79) and returns the prior of a new patient at a
new site, with its provenance (sites, counts, model, file sha256s).

**Reduced model** (labelled as such): each patient's two log-parameters are measured with
Gaussian error whose SD depends on the site's protocol, and site and pooled posteriors are
computed on a grid (`tdt.inference.federated_sim`); the NUTS check with `fit_population` is
the slow test `test_federated_nuts_sites_match_pooled_fit_population`. Truth is known: new
patients at new sites are drawn from the simulated population.
"""),
        parameters("""
site_sizes = [4, 6, 8, 10, 12]          # patients per site
site_noise_sd = [0.1, 0.15, 0.2, 0.25, 0.3]  # per-site measurement SD of log θ (protocol)
between_site_sd = 0.1                   # true between-site SD of the population mean (log)
shift = [0.2, -0.1]                     # true population mean − prior median (log)
between_patient_sd = [0.3, 0.25]        # true between-patient SD (log)
n_new = 20000                           # new patients at new sites for coverage
"""),
        code(SETUP),
        code("""
import json
import tempfile
from pathlib import Path

import pandas as pd

from tdt.inference import SiteSummary, combine_site_summaries
from tdt.inference import federated_sim as fs

twin = fs.two_parameter_twin()
eta = [between_site_sd] * 2
result = fs.run_scenario(twin, site_sizes, site_noise_sd, shift, between_patient_sd, eta,
                         seed=seed, n_new=n_new)
# exchange by file, as sites would: the combined prior records each file's sha256
exchange = Path(output_dir) / "site_summaries" if SAVE else Path(tempfile.mkdtemp())
exchange.mkdir(parents=True, exist_ok=True)
paths = [s.save(exchange / f"{s.site}.json") for s in result["summaries"]]
federated = combine_site_summaries(paths)
print(paths[0].read_text()[:600], "...")
"""),
        code("""
loc, cov = result["pooled"]
names = list(twin.sampled)
table = pd.DataFrame({
    "federated mean (log)": federated.loc, "pooled mean (log)": loc,
    "|Δmean| / pooled SD": result["mean_diff_sd"],
    "federated SD": np.sqrt(np.diag(federated.cov)), "pooled SD": np.sqrt(np.diag(cov)),
    "SD ratio": result["sd_ratio"], "between-site SD (REML)": federated.site_sd,
    "90 % coverage federated": result["coverage_federated"],
    "90 % coverage pooled": result["coverage_pooled"],
}, index=names)
table.round(3)
"""),
        code("""
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for j, (ax, name) in enumerate(zip(axes, names)):
    for i, s in enumerate(result["summaries"]):
        sd = np.sqrt(s.cov[j, j])
        ax.errorbar(s.mean[j], i, xerr=1.645 * sd, fmt="o", color="C0")
        ax.text(s.mean[j], i + 0.2, f"{s.site} (n={s.n_patients})", fontsize="x-small")
    n = len(result["summaries"])
    sd_f = np.sqrt(federated.phi_cov[j, j])
    ax.errorbar(federated.population_mean[j], n + 0.5, xerr=1.645 * sd_f, fmt="s", color="C3",
                label="federated μ (90 %)")
    ax.axvline(twin.prior_loc[j] + shift[j], color="k", ls="--", label="truth")
    ax.set_xlabel(f"μ of log {name}")
    ax.set_yticks([])
axes[0].legend(fontsize="small")
fig.suptitle("site posteriors of the population mean and the federated combination")
"""),
        code("""
# where it degrades: tiny sites, strong heterogeneity (3 seeds each)
scenarios = {
    "reference": (site_sizes, site_noise_sd, between_site_sd),
    "8 sites x 2 patients": ([2] * 8, [0.2] * 8, between_site_sd),
    "between-site SD 0.3": (site_sizes, site_noise_sd, 0.3),
    "between-site SD 0.5": (site_sizes, site_noise_sd, 0.5),
}
rows = []
for label, (sizes, noise, het) in scenarios.items():
    for rep in range(3):
        r = fs.run_scenario(twin, sizes, noise, shift, between_patient_sd, [het, het],
                            seed=seed + rep, n_new=n_new)
        rows.append({"scenario": label, "max |Δmean|/SD": r["mean_diff_sd"].max(),
                     "max |SD ratio − 1|": np.abs(r["sd_ratio"] - 1).max(),
                     "coverage federated": r["coverage_federated"].mean(),
                     "coverage pooled": r["coverage_pooled"].mean()})
degradation = pd.DataFrame(rows).groupby("scenario", sort=False).mean()
fig2, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
x = np.arange(len(degradation))
ax.bar(x - 0.2, degradation["coverage federated"], 0.4, label="federated")
ax.bar(x + 0.2, degradation["coverage pooled"], 0.4, label="pooled (ignores sites)")
ax.axhline(0.9, color="k", ls="--", lw=1)
ax.set_xticks(x, degradation.index, fontsize="small")
ax.set_ylim(0.5, 1.0)
ax.set_ylabel("90 % interval coverage, new patients")
ax.legend(fontsize="small")
degradation.round(3)
"""),
        code("""
print(json.dumps(federated.provenance, indent=1)[:1500])
if SAVE:
    results.save_json("federated_prior", {
        "comparison": table.to_dict(orient="index"),
        "degradation": degradation.to_dict(orient="index"),
        "prior": {"params": names, "loc": federated.loc, "cov": federated.cov},
        "provenance": federated.provenance,
        "model": "reduced (grid) stand-in for fit_population",
    }, output_dir)
    results.save_figure("federated_site_posteriors", fig, output_dir)
    results.save_figure("federated_degradation", fig2, output_dir)
"""),
    ]


NOTEBOOKS = {
    "01_quickstart.ipynb": quickstart,
    "02_patient_dosimetry.ipynb": patient_dosimetry,
    "03_bayesian_twin.ipynb": bayesian_twin,
    "04_treatment_planning.ipynb": treatment_planning,
    "05_virtual_trial.ipynb": virtual_trial,
    "06_stp_vs_mtp.ipynb": stp_vs_mtp,
    "07_federated_prior.ipynb": federated_prior,
}


def build(name: str):
    """The notebook ``name`` as an nbformat node (no outputs, deterministic cell ids)."""
    nb = new_notebook(cells=NOTEBOOKS[name](), metadata=METADATA)
    for i, cell in enumerate(nb.cells):
        cell.id = f"{Path(name).stem[:2]}-{i:02d}"
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = render(name)
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python notebooks/_build.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
