"""Notebook 07 · Federated population prior: sites learn a shared prior without sharing data.

Source of ``notebooks/07_federated_prior.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
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
computed on a grid (`tdt.inference.run_federated_scenario`); the NUTS check with `fit_population` is
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

from tdt.inference import (
    SiteSummary,
    combine_site_summaries,
    run_federated_scenario,
    two_parameter_twin,
)

twin = two_parameter_twin()
eta = [between_site_sd] * 2
result = run_federated_scenario(twin, site_sizes, site_noise_sd, shift, between_patient_sd, eta,
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
        r = run_federated_scenario(twin, sizes, noise, shift, between_patient_sd, [het, het],
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
