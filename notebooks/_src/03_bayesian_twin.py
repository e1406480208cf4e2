"""Notebook 03 · The Bayesian twin: fit, diagnostics, posterior predictive, doses with credible intervals.

Source of ``notebooks/03_bayesian_twin.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
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
from tdt.dosimetry import is_lesion

tacs_file = Path(output_dir) / "patient_tacs.json" if SAVE else None
if tacs_file is not None and tacs_file.is_file():
    saved = results.load_json("patient_tacs", output_dir)
    pv_corrected = bool(saved.get("partial_volume_corrected", False))
    truth = imaging.load_truth(saved.get("patient_dir"))
    recovery_sd = saved.get("recovery_sd") or {}
    tacs = {n: (saved["times_h"][n], saved["activity_mbq"][n], saved["volume_ml"][n],
                recovery_sd.get(n)) for n in saved["times_h"]}
    administered = saved["administered_activity_mbq"]
else:
    directory = datasets.get("phantom_patient") or imaging.make_phantom_patient(
        Path(tempfile.mkdtemp(prefix="tdt-phantom-")) / "pt", seed=seed, n_lesions=2).directory
    study = imaging.load_study(directory)
    truth = imaging.load_truth(directory)
    pv_corrected = truth is not None  # the phantom's FWHM is known: GTM correction
    extracted = imaging.extract_tacs(study, partial_volume="gtm" if pv_corrected else None,
                                     fwhm_mm=truth["fwhm_mm"] if pv_corrected else None)
    tacs = {n: (t.times_h, t.activity_mbq, t.volume_ml, t.recovery_sd)
            for n, t in extracted.items()}
    administered = study.injected_activity_mbq
modelled = ("kidneys", "liver", "spleen", "salivary_glands", "red_marrow")
# GTM-corrected activities are true VOI totals: recovery 1, with each VOI's own recovery log-SD
# (extract_tacs' default: the FWHM known to 10 % through the GTM, 1 % floor); raw image sums
# get the volume-based recovery coefficient instead
series = {n: inference.OrganSeries(t, a, volume_ml=v, recovery=1.0 if pv_corrected else None,
                                   recovery_sd=sd if pv_corrected else None)
          for n, (t, a, v, sd) in tacs.items() if n in modelled or is_lesion(n)}
data = inference.PatientData(series, administered_activity_mbq=administered)
print("partial-volume corrected data:", pv_corrected, "| phantom truth:", truth is not None)
data.organ_names
'''),
        md("## Fit (NUTS) and diagnostics"),
        code('''
# GTM-corrected data: per-VOI recovery SDs (OrganSeries.recovery_sd); the flat
# inference.GTM_RECOVERY_SD only for VOIs without one
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
rows = pd.DataFrame(prediction.summary())  # one cycle; dose also per GBq administered
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
