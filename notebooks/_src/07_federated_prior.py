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

Each site fits its patients one by one and exports only **aggregate statistics** of the
per-patient estimates of log θ (`tdt.inference.site_statistics`): the number of patients, the
mean of the estimates, their scatter matrix and the mean estimation covariance — no
patient-level arrays, identifiers or dates; sites of fewer than 3 patients are refused unless
they opt in (then marked). For Gaussian estimates these statistics are sufficient:
`tdt.inference.combine_site_statistics` writes the exact hierarchical likelihood (site mean
~ N(μ + b_s, (Σ + S)/n), scatter ~ Wishart(Σ + S, n − 1), site effect b_s ~ N(0, η²)),
estimates η by REML and the posterior of (μ, τ) under `fit_population`'s priors — the
two-stage analysis that reproduces the pooled one-stage fit (Morris et al., Stat Med 2018,
doi:10.1002/sim.7589; the DataSHIELD principle, Gaye et al., Int J Epidemiol 2014). The
earlier exchange — moment-matched site posteriors of (μ, τ), `combine_site_summaries` — is
compared with it below.

**Reduced model** (labelled as such): each patient's two log-parameters are measured with
Gaussian error whose SD depends on the site's protocol, and the pooled posterior is computed
on a grid (`tdt.inference.compare_federated_methods`); the NUTS checks with `fit_patients` /
`fit_population` are the slow tests of `tests/inference/test_inference_federated.py`. Truth is
known: new patients at new sites are drawn from the simulated population.
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
import hashlib
import json
import tempfile
from pathlib import Path

import pandas as pd

from tdt.inference import combine_site_statistics, compare_federated_methods, two_parameter_twin

twin = two_parameter_twin()
eta = [between_site_sd] * 2
methods = ("statistics", "summaries")
compared = compare_federated_methods(twin, site_sizes, site_noise_sd, shift, between_patient_sd,
                                     eta, seed=seed, n_new=n_new, methods=methods)
result = compared["statistics"]
# exchange by file, as sites would: the combined prior records each file's sha256
exchange = Path(output_dir) / "site_statistics" if SAVE else Path(tempfile.mkdtemp())
exchange.mkdir(parents=True, exist_ok=True)
paths = [s.save(exchange / f"{s.site}.json") for s in result["exchanged"]]
federated = combine_site_statistics(paths)
assert [s["sha256"] for s in federated.provenance["sites"]] == [
    hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
print(paths[0].read_text()[:700], "...")
"""),
        code("""
loc, cov = result["pooled"]
names = list(twin.sampled)
rows = {}
for method in methods:
    r = compared[method]
    fed = federated if method == "statistics" else r["federated"]
    for j, name in enumerate(names):
        rows[(method, name)] = {
            "federated mean (log)": fed.loc[j], "pooled mean (log)": loc[j],
            "|Δmean| / pooled SD": r["mean_diff_sd"][j],
            "federated SD": np.sqrt(fed.cov[j, j]), "pooled SD": np.sqrt(cov[j, j]),
            "SD ratio": r["sd_ratio"][j], "between-site SD (REML)": fed.site_sd[j],
            "90 % coverage federated": r["coverage_federated"][j],
            "90 % coverage pooled": r["coverage_pooled"][j]}
table = pd.DataFrame(rows).T
table.round(3)
"""),
        code("""
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for j, (ax, name) in enumerate(zip(axes, names)):
    for i, s in enumerate(result["exchanged"]):
        # the site mean of the estimates and its SE from the site's own spread and protocol
        var = (s.scatter[j, j] / max(s.n_patients - 1, 1) + s.estimation_cov[j, j]) / s.n_patients
        ax.errorbar(s.mean[j], i, xerr=1.645 * np.sqrt(var), fmt="o", color="C0")
        ax.text(s.mean[j], i + 0.2, f"{s.site} (n={s.n_patients})", fontsize="x-small")
    n = len(result["exchanged"])
    sd_f = np.sqrt(federated.phi_cov[j, j])
    ax.errorbar(federated.population_mean[j], n + 0.5, xerr=1.645 * sd_f, fmt="s", color="C3",
                label="federated μ (90 %)")
    ax.axvline(twin.prior_loc[j] + shift[j], color="k", ls="--", label="truth")
    ax.set_xlabel(f"μ of log {name}")
    ax.set_yticks([])
axes[0].legend(fontsize="small")
fig.suptitle("site means of the per-patient estimates and the federated population mean")
"""),
        code("""
# where it degrades: tiny sites (exported with allow_small, marked), strong heterogeneity
# (3 seeds each); both exchanges against the same pooled fit
scenarios = {
    "reference": (site_sizes, site_noise_sd, between_site_sd),
    "8 sites x 2 patients": ([2] * 8, [0.2] * 8, between_site_sd),
    "between-site SD 0.3": (site_sizes, site_noise_sd, 0.3),
    "between-site SD 0.5": (site_sizes, site_noise_sd, 0.5),
}
rows = []
for label, (sizes, noise, het) in scenarios.items():
    for rep in range(3):
        out = compare_federated_methods(twin, sizes, noise, shift, between_patient_sd,
                                        [het, het], seed=seed + rep, n_new=n_new, methods=methods)
        for method, r in out.items():
            rows.append({"scenario": label, "method": method,
                         "max |Δmean|/SD": r["mean_diff_sd"].max(),
                         "max |SD ratio − 1|": np.abs(r["sd_ratio"] - 1).max(),
                         "coverage federated": r["coverage_federated"].mean(),
                         "coverage pooled": r["coverage_pooled"].mean()})
degradation = pd.DataFrame(rows).groupby(["scenario", "method"], sort=False).mean()
cover = degradation["coverage federated"].unstack("method")
pooled_cover = degradation["coverage pooled"].unstack("method")["statistics"]
fig2, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
x = np.arange(len(cover))
ax.bar(x - 0.27, cover["statistics"], 0.27, label="federated: site statistics")
ax.bar(x, cover["summaries"], 0.27, label="federated: site posteriors")
ax.bar(x + 0.27, pooled_cover, 0.27, label="pooled (ignores sites)")
ax.axhline(0.9, color="k", ls="--", lw=1)
ax.set_xticks(x, cover.index, fontsize="small")
ax.set_ylim(0.5, 1.0)
ax.set_ylabel("90 % interval coverage, new patients")
ax.legend(fontsize="small")
degradation.round(3)
"""),
        code("""
print(json.dumps(federated.provenance, indent=1)[:1500])
if SAVE:
    results.save_json("federated_prior", {
        "comparison": {f"{m} / {p}": v for (m, p), v in table.to_dict(orient="index").items()},
        "degradation": {f"{s} / {m}": v
                        for (s, m), v in degradation.to_dict(orient="index").items()},
        "prior": {"params": names, "loc": federated.loc, "cov": federated.cov},
        "provenance": federated.provenance,
        "model": "reduced (grid) stand-in for fit_population",
    }, output_dir)
    results.record_prior("federated_prior", federated.provenance, output_dir)  # -> manifest
    results.save_figure("federated_site_means", fig, output_dir)
    results.save_figure("federated_degradation", fig2, output_dir)
"""),
    ]
