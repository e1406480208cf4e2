"""Notebook 01 · Quickstart: from measured activities to a dose table in five minutes.

Source of ``notebooks/01_quickstart.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
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

Kidney BED per cycle for the fitted time–activity curve itself: the dose rate follows the
activity, R(t) = D · A(t) / TIA with A(t) = Σ cᵢ exp(−λᵢ t) from the fit (uptake phase included),
and Dale's sum-of-exponentials closed form gives the BED (`tdt.radiobiology.bed_sum_of_exponentials`;
α/β and repair half-time from `tdt.radiobiology`). Cycles summed, dose scaled linearly to the
planned activity.
'''),
        code('''
from tdt.radiobiology import (
    KIDNEY_BED_LIMIT_GY,
    KIDNEY_BED_LIMIT_RISK_GY,
    bed_sum_of_exponentials,
    tissue,
)

kidney = tissue("kidneys")
fit = fits["kidneys"]
dose_per_cycle = float(doses_gy["kidneys"]) * gbq_to_mbq(activity_gbq) / administered_mbq
# dose rate ∝ fitted activity, normalised so that it integrates to the dose of one cycle
amplitudes_gy_per_h = dose_per_cycle * fit.coefficients_mbq / np.sum(
    fit.coefficients_mbq / fit.rates_per_h)
bed_cycle = float(bed_sum_of_exponentials(amplitudes_gy_per_h, fit.rates_per_h,
                                          kidney.alpha_beta_gy, kidney.repair_half_time_h))
cycles = np.arange(1, n_cycles + 1)
ax = plotting.plot_bed_over_cycles(np.vstack([cycles * bed_cycle] * 3), limit_gy=KIDNEY_BED_LIMIT_GY,
                                   label="kidneys")
ax.set_title(f"kidneys: {dose_per_cycle:.2f} Gy and {bed_cycle:.2f} Gy BED per cycle "
             f"({fit.model} fit)")
print(f"Kidney BED after {n_cycles} cycles of {activity_gbq} GBq: {n_cycles * bed_cycle:.1f} Gy "
      f"(limit {KIDNEY_BED_LIMIT_GY:g} Gy, {KIDNEY_BED_LIMIT_RISK_GY:g} Gy with risk factors; "
      "Bodei et al. 2008)")
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
