"""Notebook 09 · Virtual trial on the receptor-PBPK twin: activity *and* ligand amount planned.

Source of ``notebooks/09_virtual_trial_pbpk.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
    return [
        md('''
# 09 · Virtual trial on the receptor-PBPK twin: fixed 7.4 GBq / 150 nmol versus planned activity *and* ligand amount

`tdt.twin.virtual_trial_pbpk` runs notebook 05's trial with the 177Lu-PSMA-617 **receptor PBPK**
model everywhere: the virtual patients' true kinetics (receptor binding and saturation, the
residual activity and peptide of earlier cycles), the living twin that assimilates each cycle's
images (`Twin(model="psma617", engine="laplace")`, a joint fit of all cycles so far with the
twin's cycle-to-cycle drift), and the planner, which chooses per cycle the activity (GBq) **and
the ligand amount (nmol)** — the decision only a receptor model can inform. This is the
**default virtual trial** (study `virtual_trial`, `studies/virtual_trial.yaml`, since
2026-12-07); notebook 05 runs the powered 1000-patient version on the reduced linear twin
(study `virtual_trial_reduced`).

- **Virtual patients.** Two lesions (2–30 mL); the identifiable PBPK parameters of the imaged
  VOIs drawn from the model's cited priors; between cycles the uptake amplitudes and GFR drift by
  the twin's own drift prior (lesions −0.1 ± 0.2, organs 0 ± 0.05 in log per cycle); a kidney risk
  factor with probability `risk_factor_prevalence` (kidney BED limit 28 Gy with, 40 Gy without;
  Bodei et al., EJNMMI 2008;35:1847; 0.665: NCHS *Health, United States, 2010*, see notebook 05).
- **Calibration to VISION.** The PBPK prior gives kidneys 0.80 ± 0.33 Gy/GBq in cycle 1, about
  twice the VISION dosimetry sub-study's 0.43 ± 0.16 Gy/GBq (Herrmann et al., J Nucl Med
  2024;65:71); most of this model's kidney dose is tubular reabsorption (`f_reabs`, drawn
  from its catalog prior, then scaled). `reabsorption_scale = 0.35` and `population_sd_scale = 0.8` (the prior log-SDs of
  the non-lesion parameters) give 0.43 ± 0.16 Gy/GBq (400 patients,
  `tests/twin/test_twin_trial_pbpk.py`). These change the *truth* only: the twin keeps its
  prior — it samples `f_reabs` under the catalog prior (median 0.04, log-SD 0.4), whose median
  lies 2.6 prior SDs above this cohort's: a misspecified prior, as a real twin's would be. The
  cohort's red-marrow dose (≈ 0.02 Gy/GBq) is below the published 0.030 ± 0.008 Gy/GBq
  (Kabasakal et al., Mol Imaging Radionucl Ther 2017;26:62): the PBPK model has no marrow
  uptake term to scale (notebook 05's linear cohort does), so the marrow constraint rarely binds.
- **Imaging** after every cycle: kidneys, salivary glands, liver, spleen and both lesions at 4,
  24, 48, 96, 168 h; 10 % noise per point, one 3 % calibration error per cycle and one
  recovery-correction error per VOI (log-SD 0.10, kept over the cycles): the twin's own
  measurement model, so that with `reabsorption_scale = population_sd_scale = 1` it is well
  specified.
- **Arms.** *Fixed*: `activity_gbq` × `n_cycles` with `ligand_nmol`. *Guided*: cycle 1 the same,
  then after each cycle's imaging the twin's plan for the remaining cycles (activity in
  [`min_activity_gbq`, `max_activity_gbq`], ligand in [`min_ligand_nmol`, `max_ligand_nmol`],
  P(kidney BED > the patient's limit) ≤ 5 %, P(red-marrow dose > 2 Gy) ≤ 5 %, maximising the
  expected tumour BED); the next cycle gets the plan's first activity and ligand amount.
  *Oracle* (`oracle = True`, a reference): the same per-cycle planner given the patient's *true*
  parameters of every cycle (drift included) from cycle 1 on, its activities then scaled until
  the true schedule meets every limit — what perfect knowledge of the kinetics would give.
- **Outcomes** are *true* doses, as in notebook 05: kidney-BED exceedance at 28 Gy and at the
  patient's own limit (Wilson 95 % CIs, paired bootstrap differences), red-marrow dose > 2 Gy,
  median tumour BED (mean over lesions) with its paired difference and per-patient ratio.

**The twin here is a LAPLACE PREVIEW** of the PBPK posterior (`engine="laplace"`, 300 draws):
NUTS for every patient and cycle would take ~1 min per fit, a cohort days. The preview is
checked against NUTS in `tests/twin/test_twin_pbpk_laplace.py`; notebook 03 runs the PBPK twin
with NUTS and its convergence gate.

Cost: every patient's twins share compiled programs (one per cycle count): ~5 min for the first
patient (compilation), then ~1 min per patient on 2 CPU cores (`n_cycles = 4`).
'''),
        parameters('''
n_patients = 20              # virtual patients (~1 min each after ~5 min of compilation)
n_cycles = 4                 # cycles per arm
n_draws = 300                # Laplace-preview draws per twin
activity_gbq = 7.4           # fixed arm and first guided cycle (GBq)
ligand_nmol = 150.0          # peptide per cycle of the fixed arm and the first guided cycle (nmol)
min_activity_gbq = 3.7       # planner bounds per guided cycle
max_activity_gbq = 9.0
min_ligand_nmol = 20.0
max_ligand_nmol = 1000.0
kidney_bed_limit_gy = 28.0   # reported threshold for everyone (the planner uses each patient's own)
risk_factor_prevalence = 0.665
reabsorption_scale = 0.35    # truth's tubular reabsorption x this (VISION calibration; 1: prior)
population_sd_scale = 0.8    # truth's non-lesion prior log-SDs x this (VISION; 1: prior)
oracle = True                # add the perfect-knowledge reference arm (a few s per patient)
'''),
        code(SETUP),
        code('''
import time

import pandas as pd

from tdt import radiobiology as rb
from tdt.twin import virtual_trial_pbpk
from tdt.units import gbq_to_mbq


def report(done, total, seconds):
    print(f"virtual trial (PBPK twin): patient {done}/{total} assimilated and planned "
          f"in {seconds:.0f} s", flush=True)


start = time.perf_counter()
trial = virtual_trial_pbpk(
    n_patients=n_patients, seed=seed, n_cycles=n_cycles, n_draws=n_draws,
    standard_activity_mbq=gbq_to_mbq(activity_gbq), standard_ligand_nmol=ligand_nmol,
    activity_bounds_mbq=(gbq_to_mbq(min_activity_gbq), gbq_to_mbq(max_activity_gbq)),
    ligand_bounds_nmol=(min_ligand_nmol, max_ligand_nmol),
    kidney_limit_gy=kidney_bed_limit_gy, risk_factor_prevalence=risk_factor_prevalence,
    reabsorption_scale=reabsorption_scale, population_sd_scale=population_sd_scale,
    oracle=oracle, progress=report)
wall_s = time.perf_counter() - start
table, patients, settings = trial.table, trial.patients, trial.settings
print(f"{n_patients} virtual patients x {n_cycles} cycles in {wall_s:.0f} s; twin: "
      f"{settings['twin']}")
print(f"true cycle-1 dose per GBq (mean ± SD): kidneys {settings['mean_kidneys_gy_per_gbq']:.2f} "
      f"± {settings['sd_kidneys_gy_per_gbq']:.2f} (VISION 0.43 ± 0.16), red marrow "
      f"{settings['mean_red_marrow_gy_per_gbq']:.3f} ± {settings['sd_red_marrow_gy_per_gbq']:.3f} "
      f"(published 0.030 ± 0.008), salivary glands "
      f"{settings['mean_salivary_glands_gy_per_gbq']:.2f} Gy/GBq; "
      f"{patients['risk_factor'].mean():.0%} with a kidney risk factor")
'''),
        md('''
## Arm table (true doses; 95 % CIs: Wilson for rates, bootstrap percentile for medians)

With a few dozen patients the intervals are wide: this is a demonstration of the machinery on
the mechanistic twin, not a powered comparison (notebook 05's linear trial runs 1000 patients).
'''),
        code('''
table.set_index("arm").round(3).T
'''),
        md('''
## Distributions per arm, and what the planned arms gave per cycle

Top: true cumulative kidney BED (dashed: 28 Gy, dotted: 40 Gy) and tumour BED (mean of the two
lesions; log scale) per arm. Bottom: the activity and the ligand amount given in each guided cycle
and, when present, the oracle arm (guided cycle 1 is the standard; a missing cycle means no plan
was feasible; dashed: the fixed arm).
'''),
        code('''
import matplotlib.patches as mpatches

fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
arms = [a for a in ("fixed", "guided", "oracle") if f"{a}_kidney_bed_gy" in patients]
labels = [lab.split(",")[0].split(" (")[0] for lab in table["arm"]]
for ax, quantity, ylabel in ((axes[0, 0], "kidney_bed_gy", "kidney BED, cumulative (Gy)"),
                             (axes[0, 1], "tumour_bed_gy", "tumour BED, mean of lesions (Gy)")):
    data = [patients[f"{arm}_{quantity}"].to_numpy() for arm in arms]
    parts = ax.violinplot(data, showmedians=True)
    for body, color in zip(parts["bodies"], plotting.COLORS):
        body.set_facecolor(color)
    ax.set_xticks(range(1, len(arms) + 1), labels, fontsize="small")
    ax.set_ylabel(ylabel)
axes[0, 0].axhline(rb.KIDNEY_BED_LIMIT_RISK_GY, ls="--", color="k", lw=1)
axes[0, 0].axhline(rb.KIDNEY_BED_LIMIT_GY, ls=":", color="k", lw=1)
axes[0, 1].set_yscale("log")
planned = [a for a in ("guided", "oracle") if f"{a}_activities_mbq" in patients]
width = 0.8 / len(planned)
for ax, field, scale, ylabel, fixed in (
        (axes[1, 0], "activities_mbq", 1e-3, "activity (GBq)", activity_gbq),
        (axes[1, 1], "ligand_nmol", 1.0, "ligand amount (nmol)", ligand_nmol)):
    for j, arm in enumerate(planned):
        per_cycle = [[v[c] * scale for v in patients[f"{arm}_{field}"] if len(v) > c]
                     for c in range(n_cycles)]
        positions = np.arange(1, n_cycles + 1) + (j - (len(planned) - 1) / 2) * width
        color = plotting.COLORS[arms.index(arm)]
        ax.boxplot([v if v else [np.nan] for v in per_cycle], positions=positions,
                   widths=0.9 * width, patch_artist=True, showfliers=True,
                   boxprops={"facecolor": color, "edgecolor": color, "alpha": 0.4},
                   medianprops={"color": color, "linewidth": 3},
                   whiskerprops={"color": color}, capprops={"color": color},
                   flierprops={"markeredgecolor": color})
    guided_n = [sum(len(v) > c for v in patients["guided_activities_mbq"]) for c in range(n_cycles)]
    ax.set_xticks(range(1, n_cycles + 1),
                  [f"{c + 1}\\n(guided n={n})" for c, n in enumerate(guided_n)], fontsize="small")
    ax.axhline(fixed, ls="--", color="grey", lw=1)
    ax.set_xlabel("cycle")
    ax.set_ylabel(ylabel)
axes[1, 0].legend(handles=[mpatches.Patch(color=plotting.COLORS[arms.index(a)], label=a)
                           for a in planned], fontsize="small")
axes[1, 1].set_yscale("log")
'''),
        md('''
## Kidney dose per GBq and what guidance does with it

Each point is a patient: the guided arm's total activity against the patient's true cycle-1
kidney dose per GBq (at 150 nmol). Guidance escalates patients with low kidney dose per GBq and
holds back those whose fixed-arm kidney BED would exceed their limit.
'''),
        code('''
fig2, ax2 = plt.subplots(figsize=(6, 4), layout="constrained")
plotting.plot_guided_activity(patients["kidneys_gy_per_gbq"],
                              patients["guided_total_activity_mbq"] / 1000.0,
                              patients["risk_factor"], activity_gbq * n_cycles, ax=ax2,
                              xlabel="true cycle-1 kidney dose per GBq (Gy/GBq)");
'''),
        md('''
## Planner calibration: promised against realised kidney risk

Every guided plan promises P(kidney BED > the patient's limit) ≤ 5 % under the twin's
posterior; each is checked against the truth (would the patient's true cumulative kidney BED
have exceeded the limit had the plan been followed?). With a calibrated twin the count stays
within Binomial(n plans, 5 %) (`binomial_upper_99`, a guide: plans of one patient are correlated).
'''),
        code('''
pd.Series(settings["plan_calibration"]).to_frame("value")
'''),
        md('''
## The twin's posterior against the truth: coverage of every guided cycle's dose

After its last cycle each guided patient's twin holds a joint posterior of all its cycles
(with drift). For every cycle and organ, the PIT is the fraction of posterior draws of that
cycle's absorbed dose below the true dose; a calibrated posterior covers the truth with its
central 50 % / 90 % intervals at those rates (simulation-based calibration; Talts et al. 2018),
and its mean PIT is 0.5 (above: the twin is too low; below: too high). Cycles of one patient are
correlated: the pooled Wilson CI is a guide; `coverage_*_by_cycle` are across patients. An
organ is flagged MISCALIBRATED (and a warning printed) when a nominal rate lies outside the
Wilson 99 % interval of its coverage with the number of *patients* as the sample size.

With `reabsorption_scale ≠ 1` the truth's tubular reabsorption is far from the twin's prior
(the twin samples it, but its prior median is 2.6 prior SDs above this cohort's), so expect the
kidney posterior to lean high (mean PIT below 0.5; docs/twin.md, "The virtual trial on the PBPK
twin"). With
`reabsorption_scale = population_sd_scale = 1` the cohort is the twin's own prior and the check
is a simulation-based calibration of the multi-cycle Laplace preview.
'''),
        code('''
calibration = pd.DataFrame(settings["posterior_calibration"]).T
for organ, flag in calibration["flag"].items():
    if flag:
        print(f"WARNING: the twin's posterior of {organ} doses is {flag} against the truth")
calibration[["n", "n_patients", "mean_pit", "coverage_50", "coverage_50_ci95", "coverage_90",
             "coverage_90_ci95", "coverage_90_by_cycle", "flag"]]
'''),
        code('''
if SAVE:
    results.save_json("virtual_trial_pbpk", {"table": table.to_dict(orient="records"),
                                             "settings": settings, "wall_s": wall_s},
                      output_dir)
    results.save_json("virtual_trial_pbpk_patients", patients.to_dict(orient="list"),
                      output_dir)
    results.save_figure("virtual_trial_pbpk_distributions", fig, output_dir)
    results.save_figure("virtual_trial_pbpk_activity_vs_kidney_dose", fig2, output_dir)
'''),
    ]
