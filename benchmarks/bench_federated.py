"""Federated population priors vs the pooled hierarchical fit (issue #26), reduced model.

For each scenario (sites, sizes, protocols, between-site SD η) and each of ``n_seeds``
simulations: federated prior (:func:`tdt.inference.combine_site_summaries` of the site
summaries) vs the pooled-data hierarchical posterior (the same model and priors on all
patients), both as the new-patient prior of log θ, on 20 000 new patients at new sites.
Criteria (issue #26): |mean difference| < 0.1 pooled SD, SD within 15 %, 90 % coverage within
±5 points. Rows: share of seeds meeting all three (``tdt``), and the worst mean difference /
SD ratio / coverage difference in ``note``. The model is the reduced (grid) stand-in of
:mod:`tdt.inference._federated_sim`; the NUTS check of the same comparison is the slow test
``test_federated_nuts_sites_match_pooled_fit_population``. Each scenario runs with both ways of
dividing out the τ prior (``tau_prior`` of :func:`combine_site_summaries`).
"""

from __future__ import annotations

import time

import numpy as np

import tdt  # noqa: F401  (x64)
from tdt.inference import _federated_sim as fs

SHIFT = (0.2, -0.1)
TAU = (0.3, 0.25)
SCENARIOS = {
    "5 sites 4-12 pts, eta 0.1": ([4, 6, 8, 10, 12], [0.1, 0.15, 0.2, 0.25, 0.3], 0.1),
    "5 sites 4-12 pts, eta 0 (exchangeable)": ([4, 6, 8, 10, 12], [0.1, 0.15, 0.2, 0.25, 0.3], 0.0),
    "3 sites 6/10/20 pts, eta 0.1": ([6, 10, 20], [0.3, 0.15, 0.1], 0.1),
    "8 sites 5-12 pts, eta 0.1": ([5, 6, 7, 8, 9, 10, 11, 12], [0.1, 0.2] * 4, 0.1),
    "tiny: 8 sites x 2 pts, eta 0.1": ([2] * 8, [0.2] * 8, 0.1),
    "strong heterogeneity: 5 sites, eta 0.5": ([4, 6, 8, 10, 12], [0.1, 0.15, 0.2, 0.25, 0.3], 0.5),
}


def scenario_table(n_seeds: int, tau_prior: str = "gaussian") -> list[dict]:
    twin = fs.two_parameter_twin()
    rows = []
    for case, (sizes, sigmas, eta) in SCENARIOS.items():
        start = time.perf_counter()
        ok, mean_diff, sd_ratio, cover_diff, cover_fed, cover_pool = [], [], [], [], [], []
        for seed in range(n_seeds):
            r = fs.run_scenario(twin, sizes, sigmas, SHIFT, TAU, [eta, eta], seed=seed,
                                tau_prior=tau_prior)
            diff = r["coverage_federated"] - r["coverage_pooled"]
            ok.append(bool(np.all(r["mean_diff_sd"] < 0.1) and np.all(np.abs(r["sd_ratio"] - 1)
                                                                      <= 0.15)
                           and np.all(np.abs(diff) <= 0.05)))
            mean_diff.append(r["mean_diff_sd"].max())
            sd_ratio.append(r["sd_ratio"])
            cover_diff.append(np.abs(diff).max())
            cover_fed.append(r["coverage_federated"].mean())
            cover_pool.append(r["coverage_pooled"].mean())
        sd_ratio = np.concatenate(sd_ratio)
        rows.append({
            "case": f"{case} [{tau_prior}]", "tdt": float(np.mean(ok)), "baseline": None, "unit": "share ok",
            "target": "1.0",
            "note": (f"max|Δmean| {np.max(mean_diff):.3f} SD (median {np.median(mean_diff):.3f});"
                     f" SD ratio {sd_ratio.min():.2f}-{sd_ratio.max():.2f};"
                     f" max|Δcover90| {np.max(cover_diff):.3f}; cover90 fed"
                     f" {np.mean(cover_fed):.3f} pooled {np.mean(cover_pool):.3f};"
                     f" {n_seeds} seeds, {time.perf_counter() - start:.1f} s"),
        })
    return rows


def run(quick: bool = False) -> list[dict]:
    n = 3 if quick else 20
    return scenario_table(n) + scenario_table(n, tau_prior="moments")
