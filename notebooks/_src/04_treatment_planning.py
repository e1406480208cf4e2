"""Notebook 04 · Treatment planning: what would the next cycles do?

Source of ``notebooks/04_treatment_planning.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
    return [
        md('''
# 04 · Treatment planning: what would the next cycles do?

Move the controls: activity per cycle, **ligand amount**, number of cycles, interval, kidney
risk factors and the radiobiology. Every posterior draw of this patient's twin — the receptor
PBPK twin of notebook 03 — is re-evaluated at once (jitted, vectorised); the table shows
absorbed dose and BED per organ and lesion (median and 90 % credible interval, including the
dose already delivered by the imaged cycle), the probability of exceeding each limit, NTCP and
TCP. The *explain* tab says the same in plain words for the patient.

Activity is exact (dose is linear, BED quadratic in the activity for every draw). The ligand
amount changes the shape of every curve (receptor saturation) and needs a PBPK solve of every
draw — seconds, not the 100 ms of a slider — so the explorer uses an **emulator**: d(L) and
q(L) of every draw solved by the PBPK at 9 amounts (20–1000 nmol) when notebook 03 ran,
interpolated in log L (monotone cubic); its largest error against the direct PBPK solve at the
amounts between the grid points is measured then and printed beside the ligand control.

This notebook renders as a standalone app with Voilà (`voila notebooks/04_treatment_planning.ipynb`).
'''),
        parameters('''
source = "auto"        # "auto": notebook 03's twin if present, else the example draws;
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

from tdt.dosimetry import is_lesion
from tdt.units import HOURS_PER_DAY, gbq_to_mbq
from tdt.widgets import Scenario, ScenarioExplorer, ScenarioInputs, inputs_from_posterior

inputs_file = Path(output_dir) / "explorer_inputs.npz" if SAVE else None  # PBPK twin (03)
posterior_file = Path(output_dir) / "posterior.nc" if SAVE else None  # reduced fallback (03)
found = [f for f in (inputs_file, posterior_file) if f is not None and f.is_file()]
if source == "posterior" and not found:
    raise FileNotFoundError("source='posterior': run notebook 03 first (no twin in output_dir)")
if source != "example" and found and found[0] == inputs_file:
    inputs = ScenarioInputs.load(inputs_file)
elif source != "example" and found:
    from tdt.inference import Posterior

    inputs = inputs_from_posterior(Posterior.from_netcdf(posterior_file))
else:
    inputs = ScenarioInputs.example(n_draws=n_draws, seed=seed)
emulator = inputs.ligand_emulator
scenario = Scenario(activity_mbq=gbq_to_mbq(activity_gbq), n_cycles=n_cycles,
                    interval_h=interval_weeks * 7 * HOURS_PER_DAY,
                    kidney_risk_factors=kidney_risk_factors,
                    ligand_nmol=emulator["reference_nmol"] if emulator else None)
print(f"{inputs.n_draws} draws from: {inputs.source}")
for note in inputs.notes:
    print("  ", note)
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
    ax = axes[1] if is_lesion(region) else axes[0]
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
        md('''
## Kidney and tumour BED as functions of the ligand amount (PBPK twin)

The same fan chart over the ligand amount at the initial activity, through the emulator (each
point is one explorer evaluation of all draws).
'''),
        code('''
ligand_fan = None
if inputs.has_ligand_sensitivity:
    amounts = np.geomspace(inputs.ligand_grid_nmol[0], inputs.ligand_grid_nmol[-1], 15)
    runs = [explorer.model(scenario.replace(ligand_nmol=float(x))) for x in amounts]
    lesion = next((i for i, r in enumerate(outcomes.regions) if is_lesion(r)), None)
    _, (kax, tax2) = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
    plotting.plot_fan_chart(amounts, np.stack([o.bed_total_draws_gy[:, k] for o in runs], 1),
                            ax=kax, xlabel="ligand amount per cycle (nmol)",
                            ylabel=f"kidney BED after {n_cycles} cycles (Gy)")
    kax.axhline(scenario.kidney_bed_limit_gy, ls="--", color="k", lw=1)
    if lesion is not None:
        plotting.plot_fan_chart(amounts,
                                np.stack([o.bed_total_draws_gy[:, lesion] for o in runs], 1),
                                ax=tax2, xlabel="ligand amount per cycle (nmol)",
                                ylabel=f"{outcomes.regions[lesion]} BED (Gy)")
    for a in (kax, tax2):
        a.set_xscale("log")
    ligand_fan = kax.figure
    print(f"at {activity_gbq:g} GBq x {n_cycles}: P(kidney BED > limit) "
          + ", ".join(f"{x:.0f} nmol {o.p_exceed[k]:.0%}" for x, o in zip(amounts[::2], runs[::2])))
else:
    print("the ligand amount is not modelled by these draws (reduced model or example)")
'''),
        md("## Optimised plan (tdt.twin): maximise tumour BED subject to P(limit exceeded) ≤ 5 %"),
        code('''
from tdt import twin

plan_file = Path(output_dir) / "ligand_plan.json" if SAVE else None
if inputs.has_ligand_sensitivity and plan_file is not None and plan_file.is_file():
    # the PBPK twin's plan of notebook 03 (activity AND ligand amount), shown in the explorer
    the_plan = results.load_json("ligand_plan", output_dir)
    activity, ligand = the_plan["activities_mbq"][0], the_plan["ligand_nmol"][0]
    explorer.set(activity_gbq=round(activity / 1000.0, 1), ligand_nmol=float(ligand),
                 n_cycles=len(the_plan["activities_mbq"]))
    print(f"PBPK twin plan (notebook 03): {activity / 1000:.2f} GBq with {ligand:.0f} nmol x "
          f"{len(the_plan['activities_mbq'])} cycles; {the_plan['plan']['constraint_probabilities']}")
    print(explorer.plain_summary("kidneys"))
else:
    planned = [i for i, r in enumerate(explorer.inputs.regions)
               if r in ("kidneys", "red_marrow") or is_lesion(r)]
    draws = twin.DoseDraws.from_monoexponential(
        [explorer.inputs.regions[i] for i in planned],
        explorer.inputs.dose_per_mbq_gy[:, planned],
        explorer.inputs.effective_half_life_h[:, planned])
    constraints = [twin.Constraint("kidneys", "bed", scenario.kidney_bed_limit_gy, 0.05)]
    if "red_marrow" in draws.organs:
        constraints.append(twin.Constraint("red_marrow", "dose", 2.0, 0.05))
    plan = twin.plan(draws, n_cycles=n_cycles, constraints=constraints)
    print(f"decision: {plan.decision} — {plan.reason}")
    the_plan = plan.to_dict()
    display(pd.DataFrame({"activity (GBq)": np.asarray(plan.activities_mbq) / 1000.0},
                         index=pd.RangeIndex(1, len(plan.activities_mbq) + 1,
                                             name="cycle")).round(2))
'''),
        code('''
if SAVE:
    results.save_json("scenario_initial", {"scenario": vars(outcomes.scenario),
                                           "outcomes": outcomes.summary(),
                                           "source": inputs.source}, output_dir)
    results.save_json("plan", the_plan, output_dir)
    results.save_figure("bed_over_cycles", fig, output_dir)
    results.save_figure("kidney_bed_fan_chart", fan_ax.figure, output_dir)
    if ligand_fan is not None:
        results.save_figure("bed_vs_ligand_fan_chart", ligand_fan, output_dir)
'''),
    ]
