"""Notebook 03 · The Bayesian twin (receptor PBPK or reduced linear model, the ``model``
parameter): fit, diagnostics, predictions, ligand plan.

Source of ``notebooks/03_bayesian_twin.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
    return [
        md('''
# 03 · The Bayesian twin: NUTS fit, doses with credible intervals, ligand amount

Which model this run used is printed right below the parameters (the `model` parameter; the
reference study of `make demo` runs `model = "psma617"`). With `model = "psma617"` (the default
of this notebook) the patient's twin is the **receptor PBPK model** of 177Lu-PSMA-617
(`tdt.Twin(record, model="psma617")`): its identifiable parameters (GFR, receptor densities and release rates of
kidneys, salivary glands, liver, spleen and every lesion) are fitted to the imaged cycle by NUTS
(PyMC model, JAX gradients through the PBPK solve). Every dose comes with a 90 % credible
interval, and a fit that fails the convergence gate (R-hat, ESS, divergences) is marked
**NOT CONVERGED** wherever its numbers appear. Because the model has receptor saturation, the
twin can say what the *ligand amount* (nmol of peptide per cycle) does — the last section.

`model = "reduced"` is the reduced linear model (no receptor saturation, so no ligand amount):
seconds instead of minutes of NUTS. A model's intervals can be checked only against a phantom
whose kinetics it generated: `phantom_patient_pbpk` (receptor-PBPK kinetics at 150 nmol) is the
PBPK twin's truth — `make demo` runs this notebook with `model = "psma617"` on it
(`studies/reference_patient_pbpk.yaml`); `phantom_patient` (same anatomy and images) has the
reduced model's kinetics — `studies/reference_patient.yaml` runs `model = "reduced"` on it.
'''),
        parameters('''
model = "psma617"  # receptor PBPK twin; "reduced": the reduced linear model (see above)
draws = 300        # NUTS draws per chain
chains = 2
tune = 300
max_predictive_draws = 400  # posterior draws used for TAC bands, doses and the ligand sweep
ligand_nmol = 150.0  # peptide given with the imaged cycle (the phantom's: 150 nmol)
plan_cycles = 4      # cycles still to plan (ligand section)
dataset = "phantom_patient"  # catalog dataset when run alone (in a study: notebook 02's TACs);
                             # "phantom_patient_pbpk": the phantom with receptor-PBPK kinetics
'''),
        code(SETUP),
        code('''
from IPython.display import Markdown

from tdt.pbpk import get_model

MODEL_TITLES = {"reduced": "the reduced linear model (no receptor saturation, no ligand amount)"}
model_title = MODEL_TITLES.get(model) or (
    f"the receptor PBPK model {model!r} ({get_model(model).radiopharmaceutical})")
Markdown(f"**Model used in this run:** {model_title}.")
'''),
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
    directory = datasets.get(dataset) or imaging.make_phantom_patient(
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
names = [n for n in tacs if n in modelled or is_lesion(n)]
volumes_ml = {n: tacs[n][2] for n in names}
print("partial-volume corrected data:", pv_corrected, "| phantom truth:", truth is not None)
names
'''),
        md('''
## Fit (NUTS) and diagnostics

PBPK twin: `Twin.assimilate` fits the cycle's VOI activities (GTM-corrected: recovery 1, 10 %
lognormal error, 3 % calibration) by NUTS. Fallback: `inference.fit_patient(model="reduced")`.
'''),
        code('''
import time
import warnings

from tdt import Twin
from tdt.twin import CycleData, PatientRecord

record = PatientRecord("phantom", organ_masses_g=imaging.voi_organ_masses_g(volumes_ml),
                       lesions={n: float(v) for n, v in volumes_ml.items() if is_lesion(n)})
cycle = CycleData(float(administered), {n: (tacs[n][0], tacs[n][1]) for n in names})
start = time.perf_counter()
twin = None
if model == "reduced":  # reduced linear model (fast; no receptor saturation, no ligand amount)
    series = {n: inference.OrganSeries(tacs[n][0], tacs[n][1], volume_ml=tacs[n][2],
                                       recovery=1.0 if pv_corrected else None,
                                       recovery_sd=tacs[n][3] if pv_corrected else None)
              for n in names}
    data = inference.PatientData(series, administered_activity_mbq=administered)
    measurement = inference.MeasurementModel(recovery_sd=inference.GTM_RECOVERY_SD) \\
        if pv_corrected else inference.MeasurementModel()
    posterior = inference.fit_patient(data, model="reduced", draws=draws, chains=chains,
                                      tune=tune, seed=seed, measurement=measurement)
else:
    twin = Twin(record, model=model, n_draws=max_predictive_draws, ligand_nmol=ligand_nmol,
                seed=seed, nuts_options={"draws": draws, "tune": tune, "chains": chains,
                                         "seed": seed})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        qa = twin.assimilate(cycle)
    posterior, data = twin.nuts_posterior, twin.nuts_posterior.data
fit_seconds = time.perf_counter() - start
label = ("receptor PBPK twin (" + model + ", NUTS)" if twin is not None
         else "reduced linear model (NUTS)")
print(f"{label}: fitted in {fit_seconds:.0f} s")
print(posterior.report())
'''),
        md('''
## Posterior predictive time–activity curves (median, 50 % and 90 % bands)

Data and curves are partial-volume corrected (GTM data, true activity curves) for the phantom.
'''),
        code('''
predictive = posterior.predict(max_draws=max_predictive_draws, seed=seed)
fig, axes = plt.subplots(-(-len(names) // 4), 4, figsize=(13, 6), layout="constrained")
for ax, name in zip(axes.flat, names):
    plotting.plot_tac_fit(data.organs[name].times_h, data.organs[name].activity_mbq,
                          predictive["times_h"], predictive["activity_mbq"][name],
                          ax=ax, label=name)
    ax.set_xlim(0, data.organs[name].times_h[-1] * 1.3)
    ax.set_title(name + ("" if posterior.converged else " — NOT CONVERGED"), fontsize="small")
fig.suptitle(f"{label}: data and curves partial-volume corrected (GTM)")
for ax in list(axes.flat)[len(names):]:
    ax.set_visible(False)
'''),
        md('''
## Absorbed doses of the imaged cycle, and of the next cycles, with 90 % credible intervals

PBPK twin: `twin.predict` re-simulates every draw over the whole schedule (the imaged cycle and
`plan_cycles` more at the same activity and ligand amount, with the twin's drift prior between
cycles) and applies the MIRD dosimetry (S-values mass-scaled to the VOI masses, spheres for
lesions) and the BED of each draw's dose-rate history.
'''),
        code('''
import pandas as pd

forecast = None
if twin is not None:
    forecast = twin.predict([float(administered)] * plan_cycles)
    prediction = forecast.cycles[0]  # the imaged cycle
else:
    prediction = posterior.predict_doses(max_draws=max_predictive_draws, seed=seed,
                                         organ_masses_g=record.organ_masses_g)
rows = pd.DataFrame(prediction.summary())  # the imaged cycle; dose also per GBq administered
flag = "" if posterior.converged else " — NOT CONVERGED"
doses = rows[rows.quantity == "dose_gy"].set_index("organ")[["median", "ci90_low", "ci90_high",
                                                              "flag"]]
ax = plotting.plot_dose_intervals({o: (r.ci90_low, r["median"], r.ci90_high)
                                   for o, r in doses.iterrows()},
                                  title=f"absorbed dose of the imaged cycle, median and 90 % CrI{flag}")
doses.rename(columns={"median": "median (Gy)", "ci90_low": "90 % CrI low (Gy)",
                      "ci90_high": "90 % CrI high (Gy)"}).round(3)
'''),
        code('''
if forecast is not None:
    forecast_rows = pd.DataFrame(forecast.summary())

    def median_and_interval(quantity):
        """'median [90 % CrI]' per organ; 'n/a' where the quantity is not defined"""
        r = forecast_rows[forecast_rows.quantity == quantity].set_index("organ")
        return r.apply(lambda x: "n/a" if not np.isfinite(x["median"]) else
                       f"{x['median']:.1f} [{x['ci90_low']:.1f}, {x['ci90_high']:.1f}]", axis=1)

    cumulative = pd.DataFrame({
        "cumulative dose (Gy), median [90 % CrI]": median_and_interval("cumulative_dose_gy"),
        "cumulative BED (Gy), median [90 % CrI]": median_and_interval("cumulative_bed_gy")
    }).fillna("n/a")  # an organ without BED has no row of that quantity
    print(f"{1 + plan_cycles} cycles of {administered / 1000:.2f} GBq with {ligand_nmol:g} nmol"
          + flag)
    display(cumulative)
    no_bed = [o for o, v in cumulative.iloc[:, 1].items() if v == "n/a"]
    if no_bed:
        print("BED n/a for " + ", ".join(no_bed) + ": tdt's radiobiology table has no alpha/beta "
              "and repair half-time for them (tdt.radiobiology.TISSUES); their absorbed dose "
              "is shown")
'''),
        md('''
## Estimate vs truth (phantom input only)

Posterior median, 50 % and 90 % credible intervals of every TIA and dose of the imaged cycle
against the phantom's ground truth; "covered" says whether the interval holds the truth. (On
`phantom_patient` the kinetics are the reduced linear model's, so the PBPK twin fits a
different model there; on `phantom_patient_pbpk` truth and twin share the receptor PBPK.)
'''),
        code('''
truth_table = truth_fig = None
if truth is not None:
    truth_table = pd.DataFrame(
        imaging.truth_rows(truth, "tia_mbq_h", {k: v for k, v in prediction.tia_mbq_h.items()
                                                if k in names})
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
                    f"{int(g.covered90.sum())}/{len(g)}{flag}", fontsize="small")
    display(truth_table[["quantity", "organ", "truth", "median", "ci90_low", "ci90_high",
                         "bias", "covered50", "covered90"]].round(3))
'''),
        md('''
## Ligand amount: how the plan and the risks move with the peptide given

For the next cycle's parameter draws (`twin.pbpk_parameter_draws`), every draw's response to
one cycle, d(L) (dose per MBq) and q(L) (BED coefficient), is solved by the PBPK at each
ligand amount L (`tdt.twin.LigandResponse`; exact in the activity). Per L: the largest activity
per cycle with P(kidney BED > limit) ≤ 5 % and P(marrow dose > 2 Gy) ≤ 5 % over the draws
(with the imaged cycle's dose already delivered), the expected tumour BED at that activity, and
the risks at the standard 7.4 GBq (`tdt.twin.ligand_sweep`, `tdt.plotting.plot_ligand_sweep`,
the code of docs/figures/ligand_plan.png). The dot is the planner's optimum (`twin.plan()`:
gradient in L through the PBPK, exact chance constraints).
'''),
        code('''
ligand_fig = ligand_plan = response = None
if twin is not None:
    from tdt.twin import LigandResponse, ligand_sweep

    response = LigandResponse(twin.pbpk, twin.pbpk_parameter_draws(1)[0],
                              organ_masses_g=record.organ_masses_g,
                              lesion_volumes_ml=dict(record.lesions), phantom=record.phantom)
    delivered = dict(dose=forecast.delivered_dose_gy, bed=forecast.delivered_bed_gy)
    organs = set(response.organs)
    sweep = ligand_sweep(response, np.geomspace(20.0, 1000.0, 9), plan_cycles,
                         twin.default_constraints(),
                         prior_dose_gy={o: v for o, v in delivered["dose"].items() if o in organs},
                         prior_bed_gy={o: v for o, v in delivered["bed"].items() if o in organs})
    # the twin's planner solves its own response (with the blood-based marrow factor)
    ligand_plan = twin.plan(n_cycles=plan_cycles)
    _, lax = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    plotting.plot_ligand_sweep(sweep, lax, label="this patient", optimum=ligand_plan,
                               salivary=True)
    ligand_fig = lax[0].figure
    ligand_fig.suptitle(f"{plan_cycles} further cycles, {response.n_draws} posterior draws"
                        + flag, fontsize="small")
    print(f"plan: {ligand_plan.activities_mbq[0] / 1000:.2f} GBq with "
          f"{ligand_plan.ligand_nmol[0]:.0f} nmol per cycle; "
          f"{ligand_plan.constraint_probabilities}{flag}")
    display(pd.DataFrame([{"ligand (nmol)": r["ligand_nmol"],
                           "admissible activity (GBq)": r["activity_mbq"] / 1000,
                           "E[tumour BED] (Gy)": r["tumour_bed_gy"],
                           **{f"{k} at 7.4 GBq": v for k, v in r["probabilities_fixed"].items()}}
                          for r in sweep]).round(3))
else:
    print("reduced linear model: no receptor saturation, so the ligand amount is not modelled "
          "(run with model='psma617' for the ligand plan).")
'''),
        code('''
if SAVE:
    if truth_table is not None:
        results.save_json("truth_comparison", truth_table.to_dict(orient="records"), output_dir)
        results.save_figure("truth_comparison", truth_fig, output_dir)
    posterior.to_netcdf(Path(output_dir) / "posterior.nc")
    diagnostics = {k: v for k, v in posterior.diagnostics.as_dict().items() if k != "converged"}
    results.record_convergence("bayesian_twin", posterior.converged, **diagnostics)
    from tdt import catalog  # where the twin's population prior came from -> manifest["priors"]
    prior_entry = catalog.entry("pbpk_reduced_linear_psma617" if model == "reduced"
                                else f"pbpk_{model}")
    results.record_prior("patient_prior", {
        "source": "tdt data catalog (population prior of the model, cited per value)",
        "entry": prior_entry.name, "path": prior_entry.path, "sha256": prior_entry.sha256,
        "model": model}, output_dir)
    results.save_json("dose_summary", rows.to_dict(orient="records"), output_dir)
    results.save_figure("posterior_predictive_tacs", fig, output_dir)
    results.save_figure("dose_intervals", ax.figure, output_dir)
    if twin is not None:
        # notebook 04's explorer: the PBPK emulator of d(L), q(L) on these draws
        from tdt.widgets import inputs_from_pbpk_twin

        inputs_from_pbpk_twin(twin, response=response).save(
            Path(output_dir) / "explorer_inputs.npz")
        results.save_json("ligand_plan", ligand_plan.to_dict(), output_dir)
        results.save_json("forecast_summary", forecast_rows.to_dict(orient="records"),
                          output_dir)
        results.save_figure("ligand_plan", ligand_fig, output_dir)
'''),
    ]
