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

from tdt.dosimetry import is_lesion
from tdt.units import HOURS_PER_DAY, gbq_to_mbq
from tdt.widgets import Scenario, ScenarioExplorer, ScenarioInputs, inputs_from_posterior

posterior_file = Path(output_dir) / "posterior.nc" if SAVE else None
use_posterior = source == "posterior" or (
    source == "auto" and posterior_file is not None and posterior_file.is_file())
if use_posterior:
    from tdt.inference import Posterior

    inputs = inputs_from_posterior(Posterior.from_netcdf(posterior_file))
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
        md("## Optimised plan (tdt.twin): maximise tumour BED subject to P(limit exceeded) ≤ 5 %"),
        code('''
from tdt import twin

planned = [i for i, r in enumerate(explorer.inputs.regions)
           if r in ("kidneys", "red_marrow") or is_lesion(r)]
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
