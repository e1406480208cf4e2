"""Federated population priors vs the pooled hierarchical fit (issue #26), reduced model.

For each scenario (sites, sizes, protocols, between-site SD η) and each of ``n_seeds``
simulations: the federated prior of each exchange method vs the pooled-data hierarchical
posterior (the same model and priors on all patients), both as the new-patient prior of log θ,
on 20 000 new patients at new sites. Methods (:func:`tdt.inference._federated_sim.
compare_methods`, one pooled fit per seed shared by all): ``statistics`` — site aggregate
statistics of the per-patient estimates (n, mean, scatter, estimation covariance;
:func:`tdt.inference.combine_site_statistics`, the default); ``summaries`` /
``summaries-moments`` — moment-matched site posteriors of (μ, τ)
(:func:`tdt.inference.combine_site_summaries`, ``tau_prior`` "gaussian" / "moments").
Criteria (issue #26): |mean difference| < 0.1 pooled SD, SD within 15 %, 90 % coverage within
±5 points. Rows: share of seeds meeting all three (``tdt``), and the worst mean difference /
SD ratio / coverage difference in ``note``. The model is the reduced (grid) stand-in of
:mod:`tdt.inference._federated_sim`; the NUTS check is the slow test
``test_federated_statistics_nuts_match_pooled_fit_population``.
"""

from __future__ import annotations

import time
import warnings

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


def _passes(r) -> bool:
    diff = r["coverage_federated"] - r["coverage_pooled"]
    return bool(np.all(r["mean_diff_sd"] < 0.1) and np.all(np.abs(r["sd_ratio"] - 1) <= 0.15)
                and np.all(np.abs(diff) <= 0.05))


def _row(case: str, method: str, results: list[dict], seconds: float) -> dict:
    mean_diff = np.array([r["mean_diff_sd"].max() for r in results])
    sd_ratio = np.concatenate([r["sd_ratio"] for r in results])
    cover_diff = [np.abs(r["coverage_federated"] - r["coverage_pooled"]).max() for r in results]
    k_hat = [r["federated"].provenance.get("pareto_k") for r in results]
    k_note = (f"; max Pareto k {max(k_hat):.2f}" if k_hat[0] is not None else "")
    return {
        "case": f"{case} [{method}]", "tdt": float(np.mean([_passes(r) for r in results])),
        "baseline": None, "unit": "share ok", "target": "1.0",
        "note": (f"max|Δmean| {mean_diff.max():.3f} SD (median {np.median(mean_diff):.3f});"
                 f" SD ratio {sd_ratio.min():.2f}-{sd_ratio.max():.2f};"
                 f" max|Δcover90| {np.max(cover_diff):.3f}; cover90 fed"
                 f" {np.mean([r['coverage_federated'].mean() for r in results]):.3f} pooled"
                 f" {np.mean([r['coverage_pooled'].mean() for r in results]):.3f}{k_note};"
                 f" {len(results)} seeds, {seconds:.1f} s (all methods)"),
    }


def scenario_table(n_seeds: int, methods=fs.METHODS) -> list[dict]:
    twin = fs.two_parameter_twin()
    rows = []
    for case, (sizes, sigmas, eta) in SCENARIOS.items():
        start = time.perf_counter()
        per_method = {m: [] for m in methods}
        for seed in range(n_seeds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # k̂ is reported in the row
                out = fs.compare_methods(twin, sizes, sigmas, SHIFT, TAU, [eta, eta], seed=seed,
                                         methods=methods)
            for m in methods:
                per_method[m].append(out[m])
        seconds = time.perf_counter() - start
        rows += [_row(case, m, per_method[m], seconds) for m in methods]
    return rows


def run(quick: bool = False) -> list[dict]:
    return scenario_table(3 if quick else 20)
