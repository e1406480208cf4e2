"""Benchmark of planning activity AND ligand amount through the PSMA-617 PBPK.

tdt: :func:`tdt.twin.plan_activity_and_ligand` (exact order-statistic activity at each ligand
amount, ascent in log L with JAX forward-mode derivatives through the PBPK solve, 1 % in L).
Baseline: a grid search over (A, L) on the same draws — 41 ligand amounts 20–1000 nmol (10 %
steps), exact activity at each (what one writes without derivatives). Both after compilation.

``python -m benchmarks.bench_ligand_plan --figure`` also draws docs/figures/ligand_plan.png: how
the admissible activity, the expected tumour BED and the constraint probabilities move with
the ligand amount for the reference patient and for one with a 500 mL lesion.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

N_CYCLES = 4
IDENTIFIABLE = ("GFR", "R_kidneys", "krel_kidneys", "R_lesion_1", "krel_lesion_1",
                "R_salivary_glands", "krel_salivary_glands")


def _compilation_cache() -> None:
    """Share compiled solves between the two patients and with reruns (same shapes, same
    program: the draws are arguments) through JAX's persistent cache, as the tests do."""
    import jax

    if jax.config.jax_compilation_cache_dir is None:
        cache = Path(__file__).resolve().parents[1] / ".cache" / "jax"
        cache.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def reference_patient(n_draws: int, lesion_ml: float = 10.0, seed: int = 2026):
    """Prior-median PSMA-617 patient, posterior-like spread: 30 % log-SD on the identifiable
    parameters (the rest at the literature values); one lesion of ``lesion_ml`` mL."""
    from tdt.pbpk import draw_parameters, get_model
    from tdt.twin import LigandResponse

    forward = get_model("psma617").build(lesions=1, method="grid")
    sd = {n: (0.3 if n in IDENTIFIABLE else 0.0) for n in forward.parameter_names}
    params = draw_parameters(forward, n_draws, seed=seed, sd_log=sd,
                             median={"V_lesion_1": lesion_ml})
    params = {k: np.asarray(v) for k, v in params.items()}
    return forward, params, LigandResponse(forward, params,
                                           lesion_volumes_ml={"lesion_1": lesion_ml})


def sweep(response, ligands, constraints=None):
    """Per ligand amount: the uniform plan (:func:`tdt.twin.ligand_sweep`) as flat rows."""
    from tdt.twin import DEFAULT_CONSTRAINTS, ligand_sweep

    rows = ligand_sweep(response, ligands, N_CYCLES, tuple(constraints or DEFAULT_CONSTRAINTS),
                        activity_bounds_mbq=(0.0, 12000.0))
    return [{k: v for k, v in r.items() if not k.startswith("probabilities")}
            | r["probabilities"] for r in rows]


def run(quick: bool = False) -> list[dict]:
    from tdt.twin import plan_activity_and_ligand

    _compilation_cache()
    n = 100 if quick else 300
    rows = []
    for lesion_ml in (10.0, 500.0):
        forward, params, response = reference_patient(n, lesion_ml)
        response.coefficients(150.0)  # compile both paths before timing
        response.coefficients_and_derivatives(150.0)
        start = time.perf_counter()
        result = plan_activity_and_ligand(forward, params, N_CYCLES, response=response)
        t_grad = time.perf_counter() - start
        start = time.perf_counter()
        grid = sweep(response, np.geomspace(20.0, 1000.0, 41))
        t_grid = time.perf_counter() - start
        best = max(grid, key=lambda r: r["tumour_bed_gy"])
        rows.append({
            "case": f"plan A and L, {n} draws, {lesion_ml:g} mL lesion", "tdt": t_grad,
            "baseline": t_grid, "unit": "s", "target": "< grid search",
            "note": (f"gradient L {result.ligand_nmol[0]:.0f} nmol, A {result.activities_mbq[0]:.0f} "
                     f"MBq, E[BED] {result.expected_objective:.2f} Gy, {result.n_solves} solves; "
                     f"grid (41 L) L {best['ligand_nmol']:.0f}, A {best['activity_mbq']:.0f}, "
                     f"E[BED] {best['tumour_bed_gy']:.2f}")})
    return rows


def figure(path: Path, n_draws: int = 300) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tdt.plotting import plot_ligand_sweep
    from tdt.twin import ligand_sweep, plan_activity_and_ligand

    _compilation_cache()
    ligands = np.geomspace(20.0, 1000.0, 31)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for lesion_ml, colour in ((10.0, "C0"), (500.0, "C3")):
        forward, params, response = reference_patient(n_draws, lesion_ml)
        rows = ligand_sweep(response, ligands, N_CYCLES, activity_bounds_mbq=(0.0, 12000.0))
        best = plan_activity_and_ligand(forward, params, N_CYCLES, response=response)
        # at the admissible activity the kidney constraint binds (5 % at every L); at the
        # standard 7.4 GBq the risks move with L
        plot_ligand_sweep(rows, axes, label=f"{lesion_ml:g} mL lesion", color=colour,
                          optimum=best, salivary=lesion_ml == 10.0)
    axes[2].set_ylabel(f"probability at 7.4 GBq x {N_CYCLES} (%)")
    fig.suptitle(f"177Lu-PSMA-617, {N_CYCLES} cycles, {n_draws} draws: uniform plan per ligand "
                 "amount (admissible activity: kidney risk 5 %; shaded: standard 100-200 µg)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    import jax

    jax.config.update("jax_enable_x64", True)
    if "--figure" in sys.argv:
        figure(Path(__file__).resolve().parents[1] / "docs" / "figures" / "ligand_plan.png")
    else:
        for row in run(quick="--quick" in sys.argv):
            print(row)
