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
    rows.append(_per_cycle_row(100 if quick else 300))
    return rows


def _grid_two_cycles(responses, activities, ligands, constraints):
    """Brute force over (A_1, L_1, A_2, L_2): exact per-cycle coefficients at every grid ligand
    amount, exceedances counted draw by draw; best feasible mean lesion BED (Gy) and its point."""
    organs = responses[0].organs
    tables = [[r.coefficients(lig) for lig in ligands] for r in responses]
    a = np.asarray(activities)[:, None, None, None]  # cycle 1 on axis 0, cycle 2 on axis 1
    b = np.asarray(activities)[None, :, None, None]
    best, point = -np.inf, None
    for i1, i2 in np.ndindex(len(ligands), len(ligands)):
        (d1, q1), (d2, q2) = tables[0][i1], tables[1][i2]
        dose = d1 * a + d2 * b
        bed = dose + q1 * a**2 + q2 * b**2
        feasible = np.all([((bed if c.quantity == "bed" else dose)[..., organs.index(c.organ)]
                            > c.limit_gy).mean(axis=-1) <= c.max_probability
                           for c in constraints], axis=0)
        value = np.where(feasible, bed[..., organs.index("lesion_1")].mean(axis=-1), -np.inf)
        k = np.unravel_index(np.argmax(value), value.shape)
        if value[k] > best:
            best, point = float(value[k]), (activities[k[0]], ligands[i1], activities[k[1]],
                                            ligands[i2])
    return best, point


def _per_cycle_row(n_draws: int) -> dict:
    """Two remaining cycles, each with its own draws (the lesion's receptor density falls by
    40 % in cycle 2, as a drifted PBPK twin's draws may): :func:`tdt.twin.plan_ligand_per_cycle`
    vs a brute-force grid (A 1–12 GBq in 0.5 GBq steps, L 20–1000 nmol at 13 amounts, per cycle)."""
    from tdt.twin import DEFAULT_CONSTRAINTS, LigandResponse, plan_ligand_per_cycle

    lesion_ml = 500.0
    forward, first, _ = reference_patient(n_draws, lesion_ml)
    second = dict(first, R_lesion_1=first["R_lesion_1"] * 0.6)
    volumes = {"lesion_1": lesion_ml}
    plan_ligand_per_cycle(forward, [first, second], lesion_volumes_ml=volumes)  # compile
    start = time.perf_counter()
    result = plan_ligand_per_cycle(forward, [first, second], lesion_volumes_ml=volumes)
    t_plan = time.perf_counter() - start
    start = time.perf_counter()
    responses = [LigandResponse(forward, d, lesion_volumes_ml=volumes) for d in (first, second)]
    grid, point = _grid_two_cycles(responses, np.arange(1000.0, 12001.0, 500.0),
                                   np.geomspace(20.0, 1000.0, 13), DEFAULT_CONSTRAINTS)
    t_grid = time.perf_counter() - start
    plan = ", ".join(f"{a / 1000:.1f} GBq/{lig:.0f} nmol"
                     for a, lig in zip(result.activities_mbq, result.ligand_nmol, strict=True))
    return {"case": f"plan A_c and L_c per cycle, 2 cycles, {n_draws} draws, {lesion_ml:g} mL "
                    "lesion", "tdt": t_plan, "baseline": t_grid, "unit": "s",
            "target": "< grid search, E[BED] >= grid's",
            "note": (f"tdt {plan}, E[BED] {result.expected_objective:.2f} Gy; grid (23 A x 13 L "
                     f"per cycle) {point[0] / 1000:.1f} GBq/{point[1]:.0f} nmol, "
                     f"{point[2] / 1000:.1f} GBq/{point[3]:.0f} nmol, E[BED] {grid:.2f} Gy")}


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
