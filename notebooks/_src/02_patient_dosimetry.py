"""Notebook 02 · Patient dosimetry: DICOM → VOIs → TACs → TIA → organ and voxel dose, DVH.

Source of ``notebooks/02_patient_dosimetry.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
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
dataset = "phantom_patient"  # the catalog dataset used when patient_dir is None (if the study
                         # lists it): "phantom_patient" (reduced-model kinetics) or
                         # "phantom_patient_pbpk" (receptor-PBPK kinetics, 150 nmol PSMA-617)
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

if patient_dir is None and dataset in datasets:
    patient_dir = datasets[dataset]
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

from tdt.dosimetry import is_lesion, organ_doses

tia_mbq_h = {n: f.tia_mbq_h for n, f in fits.items()}
lesion_volumes_ml = {n: tacs[n].volume_ml for n in organs if is_lesion(n)}
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

Activity maps × voxel S-value kernel (FFT convolution, `tdt.dosimetry.voxel_dose`), integrated over
time per voxel. DVHs show how uneven the dose is inside each VOI.
'''),
        code('''
dvh_fig = None
if voxel_dose:
    from tdt import dosimetry

    masks = {n: study.masks[n] for n in organs if n in study.masks}
    # TIA map: each VOI's fitted TIA spread over its voxels like the 24 h image (reference
    # method; tdt.dosimetry.tia_map_voxelwise fits every voxel instead, slower and noisier)
    reference = study.time_points[int(np.argmin(np.abs(study.times_h - 24.0)))].activity_mbq
    tia_map = dosimetry.tia_map_from_reference(reference, masks, {n: tia_mbq_h[n] for n in masks})
    voxel_mm = study.geometry.spacing_mm
    dose_map = dosimetry.voxel_dose(tia_map, voxel_mm, hu=study.ct_on_grid())
    ax = plotting.plot_dvh(dose_map, masks)
    ax.set_title("cumulative DVH (voxel dose, kernel convolution)")
    dvh_fig = ax.figure
    display(pd.DataFrame(dosimetry.dvh_table(dose_map, masks, voxel_mm)).T.round(2))
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
        # log-SD of each GTM-corrected VOI (FWHM SD 10 % through the GTM, 1 % floor; None raw)
        "recovery_sd": {n: tacs[n].recovery_sd for n in organs},
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
