"""Notebook 06 · Single-time-point versus multi-time-point dosimetry.

Source of ``notebooks/06_stp_vs_mtp.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
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
from tdt.inference import effective_half_life_h, haenscheid_tia, madsen_tia
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
