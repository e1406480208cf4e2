"""Notebook 05 · Virtual trial: fixed 7.4 GBq × 6 versus dosimetry-guided planning with the twin.

Source of ``notebooks/05_virtual_trial.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
    return [
        md('''
# 05 · Virtual trial: fixed 7.4 GBq × 6 versus dosimetry-guided planning with the twin

`tdt.twin.virtual_trial` runs the living *reduced (linear)* twin on a virtual cohort: study
`virtual_trial_reduced` (`studies/virtual_trial_reduced.yaml`), the powered analysis, 1000
patients at ~0.4 s each. The default virtual trial (study `virtual_trial`, notebook 09) runs the
receptor-PBPK twin and plans activity *and* ligand amount, on 20 patients. Each virtual patient has true
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

**Red marrow and lacrimal glands** (issue 23). The catalog's red-marrow uptake gives the cohort
0.020 ± 0.010 Gy/GBq, below published patient dosimetry (0.030 ± 0.008 Gy/GBq, 7 patients,
Kabasakal et al., Mol Imaging Radionucl Ther 2017;26:62); `marrow_uptake_scale = 1.6` moves the
cohort's marrow uptake to that mean (400 patients: 0.030 Gy/GBq) — the truth only, as for the
kidneys. The lacrimal glands (sphere model, two 0.7 g glands; reduced-model uptake CALIBRATED to
2.82 Gy/GBq, Hohberg et al., Mol Imaging Biol 2016;18:437) are reported per arm; they have no
published absorbed-dose limit, so the planner does not constrain them, and they are not imaged
(0.7 g glands are below SPECT resolution): the twin's lacrimal dose is its prior's.
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
marrow_uptake_scale = 1.6      # population median red-marrow uptake x this (truth only; 0.030 Gy/GBq)
oracle = True                  # add the perfect-knowledge reference arm
'''),
        code(SETUP),
        code('''
import time

import pandas as pd

from tdt import radiobiology as rb
from tdt.twin import Policy, virtual_trial
from tdt.units import gbq_to_mbq, mbq_to_gbq

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
                      marrow_uptake_scale=marrow_uptake_scale,
                      max_guided_cycles=max_guided_cycles, oracle=oracle)
wall_s = time.perf_counter() - start
table, patients = trial.table, trial.patients
print(f"{n_patients} virtual patients in {wall_s:.0f} s; true kidney dose "
      f"{trial.settings['mean_kidney_gy_per_gbq']:.2f} ± {trial.settings['sd_kidney_gy_per_gbq']:.2f} "
      f"Gy/GBq (mean ± SD; VISION 0.43 ± 0.16); red marrow "
      f"{trial.settings['mean_marrow_gy_per_gbq']:.3f} Gy/GBq (published 0.030 ± 0.008), "
      f"lacrimal glands {trial.settings['mean_lacrimal_gy_per_gbq']:.2f} Gy/GBq; "
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
axes[0].axhline(rb.KIDNEY_BED_LIMIT_RISK_GY, ls="--", color="k", lw=1)
axes[0].axhline(rb.KIDNEY_BED_LIMIT_GY, ls=":", color="k", lw=1)
axes[1].set_yscale("log")  # lesion BED spans more than a decade across patients
per_cycle = [[mbq_to_gbq(a[c]) for a in patients["guided_activities_mbq"] if len(a) > c]
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
plotting.plot_guided_activity(patients["kidney_gy_per_gbq"],
                              patients["guided_total_activity_mbq"] / 1000.0,
                              patients["risk_factor"], activity_gbq * n_cycles, ax=ax2);
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
