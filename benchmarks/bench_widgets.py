"""Scenario-explorer latency: one slider change → recomputed outcomes, table and figure.

Cases (CPU): explorer update median and p95 for 1,000 and 4,000 posterior draws (set through
the activity control, as a user would, synchronously: no kernel loop, so no debounce delay);
the jitted scenario model alone versus a per-draw NumPy/SciPy loop (baseline); the blitted
figure redraw versus a full matplotlib Agg redraw (baseline); and the update with a spread of
tumour radiosensitivity (TCP by quadrature). Target: < 100 ms per update for 1,000 draws.

PBPK case: the explorer on 1,000 draws of the receptor PSMA-617 model (the reference patient of
benchmarks/bench_ligand_plan.py) with the ligand emulator (tdt.widgets.inputs_from_ligand_response):
its construction (grid solves + error check), the update p95 while moving the activity and the
ligand-amount sliders alternately (>= 50 moves) side by side with the reduced-model explorer
(one of its updates after each PBPK update, same load), the evaluator alone, its measured
interpolation error, against the baseline of re-simulating every draw through the PBPK at each
ligand move (LigandResponse.coefficients). The load average is written into the notes.
"""

from __future__ import annotations

import math
import time

import numpy as np


def _explorer(n_draws: int):
    from tdt.widgets import ScenarioExplorer, ScenarioInputs

    return ScenarioExplorer(ScenarioInputs.example(n_draws=n_draws, seed=0), max_draws=n_draws)


def _update_times(explorer, n_updates: int) -> np.ndarray:
    values = np.round(np.linspace(5.0, 10.0, 11), 1)
    for v in values[:3]:  # warm-up (compilation, caches)
        explorer.controls["activity_gbq"].value = float(v)
    times = []
    for i in range(n_updates):
        value = float(values[i % values.size])
        if value == explorer.controls["activity_gbq"].value:
            value += 0.1
        start = time.perf_counter()
        explorer.controls["activity_gbq"].value = value
        times.append(time.perf_counter() - start)
    if explorer.errors:
        raise RuntimeError(f"explorer errors during benchmark: {explorer.errors}")
    return np.asarray(times)


def _numpy_loop(inputs, scenario) -> float:
    """Baseline: the same outcomes draw by draw in Python (Dale BED, exceedance, LKB, TCP)."""
    from scipy.stats import norm

    from tdt.radiobiology import NTCP_PARAMETERS, tissue

    start = time.perf_counter()
    k = inputs.regions.index("kidneys")
    kid, p = tissue("kidneys"), NTCP_PARAMETERS["kidneys"]
    tumour = tissue("tumour")
    exceed, ntcp, tcp = [], [], []
    for d in range(inputs.n_draws):
        for r, region in enumerate(inputs.regions):
            lq = tumour if region.startswith("lesion") else kid
            dose = scenario.activity_mbq * inputs.dose_per_mbq_gy[d, r]
            teff = inputs.effective_half_life_h[d, r]
            bed = scenario.n_cycles * (dose + dose**2 / lq.alpha_beta_gy * lq.repair_half_time_h
                                       / (lq.repair_half_time_h + teff))
            if r == k:
                exceed.append(bed > scenario.kidney_bed_limit_gy)
                eqd2 = bed / (1 + 2 / p.alpha_beta_gy)
                ntcp.append(norm.cdf((eqd2 - p.td50_gy) / (p.m * p.td50_gy)))
            if region.startswith("lesion"):
                tcp.append(math.exp(-scenario.tumour_clonogens
                                    * math.exp(-scenario.tumour_alpha_per_gy * bed)))
    np.mean(exceed), np.mean(ntcp), np.mean(tcp)
    return time.perf_counter() - start


def _moves(explorer, reduced, n_updates: int, ligands, activities):
    """Alternate activity and ligand-slider moves of ``explorer``, each followed by an activity
    move of the ``reduced`` explorer (same load conditions); times (s) and which control moved."""
    times, kinds, reduced_times = [], [], []
    for i in range(n_updates):
        name, values = (("ligand_nmol", ligands) if i % 2 else ("activity_gbq", activities))
        value = float(values[(i // 2) % values.size])
        if value == explorer.controls[name].value:
            value += 0.1
        start = time.perf_counter()
        explorer.controls[name].value = value
        times.append(time.perf_counter() - start)
        kinds.append(name)
        value = float(activities[i % activities.size])
        if value == reduced.controls["activity_gbq"].value:
            value += 0.1
        start = time.perf_counter()
        reduced.controls["activity_gbq"].value = value
        reduced_times.append(time.perf_counter() - start)
    for ex in (explorer, reduced):
        if ex.errors:
            raise RuntimeError(f"explorer errors during benchmark: {ex.errors}")
    return np.asarray(times), np.asarray(kinds), np.asarray(reduced_times)


def _pbpk_case(n_draws: int, n_updates: int) -> list[dict]:
    """The PBPK explorer and, in the same run, the reduced-model explorer and the direct PBPK
    re-solve of every draw (the baseline of a ligand move)."""
    import os

    from benchmarks.bench_ligand_plan import _compilation_cache, reference_patient
    from tdt.widgets import ScenarioExplorer, inputs_from_ligand_response

    _compilation_cache()
    _, _, response = reference_patient(n_draws)
    response.coefficients(150.0)  # compile the PBPK solve before timing
    start = time.perf_counter()
    inputs = inputs_from_ligand_response(response, source="PSMA-617 reference patient")
    t_build = time.perf_counter() - start
    explorer = ScenarioExplorer(inputs, max_draws=n_draws)
    ligands = np.geomspace(25.0, 900.0, 7)
    activities = np.round(np.linspace(5.0, 10.0, 11), 1)
    for v in (30.0, 60.0):  # warm-up (compilation)
        explorer.controls["ligand_nmol"].value = v
    # side by side: the reduced-model explorer (example draws; activity moves only, it has no
    # ligand control), one of its updates after each PBPK update
    reduced = _explorer(n_draws)
    _update_times(reduced, 3)
    load = os.getloadavg()[0]
    layers_before = explorer._bed_plot.n_scale_draws
    times, kinds, reduced_times = _moves(explorer, reduced, n_updates, ligands, activities)
    layers = explorer._bed_plot.n_scale_draws - layers_before
    # the evaluator alone (no table, no figure): a ligand move and an activity move
    scenario = explorer.scenario
    evaluator = {"ligand": [], "activity": []}
    for i in range(n_updates // 2):
        for kind, changed in (("ligand", scenario.replace(ligand_nmol=float(ligands[i % 7]))),
                              ("activity", scenario.replace(activity_mbq=5000.0 + 100.0 * i))):
            start = time.perf_counter()
            explorer.model(changed)
            evaluator[kind].append(time.perf_counter() - start)
    direct = []
    for ligand in ligands[:3]:
        start = time.perf_counter()
        response.coefficients(float(ligand))
        direct.append(time.perf_counter() - start)
    load = max(load, os.getloadavg()[0])
    e = inputs.ligand_emulator
    error = (f"max error vs direct PBPK at {len(e['check_nmol'])} off-grid L: dose "
             f"{100 * e['max_rel_error_dose']:.3f} %, BED {100 * e['max_rel_error_bed']:.3f} %")
    p95, median = float(np.quantile(times, 0.95)), float(np.median(times))
    ligand_moves = times[kinds == "ligand_nmol"]
    where = f"load average {load:.1f} on {os.cpu_count()} cores"
    return [
        {"case": f"PBPK explorer update {n_draws} draws (p95)", "tdt": p95,
         "baseline": float(np.median(direct)), "unit": "s", "target": "< 0.1 s",
         "note": f"{n_updates} moves, activity and ligand alternately; baseline: PBPK re-solve "
                 f"of all draws per ligand move; {where}"},
        {"case": f"PBPK explorer update {n_draws} draws (median)", "tdt": median,
         "baseline": None, "unit": "s", "target": "",
         "note": f"ligand moves: median {1000 * np.median(ligand_moves):.1f} ms, p95 "
                 f"{1000 * np.quantile(ligand_moves, 0.95):.1f} ms; {layers} y-scale layers "
                 "drawn (first visits of a scale)"},
        {"case": f"PBPK vs reduced explorer {n_draws} draws (p95)", "tdt": p95,
         "baseline": float(np.quantile(reduced_times, 0.95)), "unit": "s", "target": "",
         "note": f"baseline: reduced-model explorer, moves interleaved (median "
                 f"{1000 * np.median(reduced_times):.1f} ms); ratio < 1: PBPK slower"},
        {"case": f"PBPK evaluator alone {n_draws} draws (median)",
         "tdt": float(np.median(evaluator["ligand"])), "baseline": float(np.median(direct)),
         "unit": "s", "target": "",
         "note": f"ligand move (emulator + scenario model); activity move "
                 f"{1000 * np.median(evaluator['activity']):.1f} ms"},
        {"case": f"PBPK emulator construction {n_draws} draws", "tdt": t_build, "baseline": None,
         "unit": "s", "target": "",
         "note": f"{len(e['grid_nmol'])} grid + {len(e['check_nmol'])} check solves; {error}"},
    ]


def run(quick: bool = False) -> list[dict]:
    from tdt.widgets import Scenario

    n_updates = 10 if quick else 40
    rows = _pbpk_case(300 if quick else 1000, 10 if quick else 60)
    for n_draws in (1000, 4000):
        explorer = _explorer(n_draws)
        times = _update_times(explorer, n_updates)
        for stat, value in (("median", np.median(times)), ("p95", np.quantile(times, 0.95))):
            rows.append({"case": f"explorer update {n_draws} draws ({stat})", "tdt": float(value),
                         "baseline": None, "unit": "s", "target": "< 0.1 s (1,000 draws)",
                         "note": f"{n_updates} slider moves, table + figure"})
        if n_draws == 1000:
            # model alone vs a per-draw Python loop
            scenario = Scenario(activity_mbq=7400.0)
            explorer.model(scenario)
            model_times = []
            for i in range(n_updates):
                start = time.perf_counter()
                explorer.model(scenario.replace(activity_mbq=6000.0 + i))
                model_times.append(time.perf_counter() - start)
            rows.append({"case": "scenario model 1000 draws (median)",
                         "tdt": float(np.median(model_times)),
                         "baseline": _numpy_loop(explorer.inputs, scenario), "unit": "s",
                         "target": "", "note": "baseline: per-draw Python/SciPy loop"})
            # blitted redraw vs full Agg redraw of the same figure
            outcomes = explorer.outcomes
            blit = []
            for _ in range(n_updates):
                start = time.perf_counter()
                explorer._render_plot(outcomes)
                blit.append(time.perf_counter() - start)
            full = []
            from tdt.plotting import figure_png

            for _ in range(max(3, n_updates // 5)):
                start = time.perf_counter()
                figure_png(explorer._fig)
                full.append(time.perf_counter() - start)
            rows.append({"case": "figure redraw (median)", "tdt": float(np.median(blit)),
                         "baseline": float(np.median(full)), "unit": "s", "target": "",
                         "note": "blitted vs full matplotlib Agg redraw"})
            # TCP with a spread of alpha: quadrature instead of the closed form
            explorer.controls["tumour_alpha_sd_per_gy"].value = 0.03
            spread = _update_times(explorer, max(5, n_updates // 4))
            rows.append({"case": "update 1000 draws, alpha spread (median)",
                         "tdt": float(np.median(spread)), "baseline": None, "unit": "s",
                         "target": "", "note": "TCP by quadrature (tdt.radiobiology)"})
    return rows
