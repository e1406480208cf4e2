"""PBPK benchmarks: one forward solve and one gradient (linear and nonlinear), and a
10,000-patient x 4-cycle virtual cohort.

Baseline: what a user writes today — the same ODEs with SciPy ``solve_ivp`` (BDF), patient by
patient, integrating the TIA as extra states to a long horizon; gradients by central finite
differences. Cohort baselines are timed on a subset and scaled linearly (stated in the note).
Times of tdt exclude the one-off JIT compilation (reported separately in the note).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

from tdt.pbpk import Schedule, psma617, reduced_linear, virtual_cohort
from tdt.pbpk._description import fluxes

HORIZON_H = 2000.0


def _timeit(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


# -- SciPy baselines ---------------------------------------------------------------------------
def scipy_linear(model, params: dict, schedule: Schedule) -> dict:
    """TIA per compartment with BDF: x' = G x, ∫x as extra states, to last dose + horizon."""
    g = np.asarray(model.generator(params))[:-2, :-2]
    n = g.shape[0]

    def rhs(t, y):
        return np.concatenate([g @ y[:n], y[:n]])

    y = np.zeros(2 * n)
    admins = schedule.administrations
    for k, admin in enumerate(admins):
        y[0] += admin.activity_mbq
        t1 = admins[k + 1].time_h if k + 1 < len(admins) else admin.time_h + HORIZON_H
        y = solve_ivp(rhs, (admin.time_h, t1), y, method="BDF", rtol=1e-8, atol=1e-8).y[:, -1]
    return dict(zip(model.compartments, y[n:], strict=True))


def scipy_pbpk(model, params: dict, schedule: Schedule, rtol=1e-8, atol=1e-8) -> dict:
    """The receptor PBPK with BDF (NumPy right-hand side, same equations), boluses."""
    layout = model.layout
    n = layout.n_sub
    lam = model.decay_constant_per_h
    report = np.asarray(layout.report_matrix())
    p = {k: float(v) for k, v in params.items()}

    def rhs(t, y):
        total, hot = y[:n], y[n:2 * n]
        return np.concatenate([fluxes(layout, p, total, total, xp=np),
                               fluxes(layout, p, total, hot, xp=np) - lam * hot, report @ hot])

    y = np.zeros(2 * n + report.shape[0])
    admins = schedule.administrations
    for k, admin in enumerate(admins):
        y[0] += admin.ligand_nmol
        y[n] += admin.activity_mbq
        t1 = admins[k + 1].time_h if k + 1 < len(admins) else admin.time_h + HORIZON_H
        y = solve_ivp(rhs, (admin.time_h, t1), y, method="BDF", rtol=rtol, atol=atol).y[:, -1]
    return dict(zip(layout.reported, y[2 * n:], strict=True))


def _fd_gradient(fn, params: dict, names) -> dict:
    out = {}
    for name in names:
        h = 1e-5 * params[name]
        out[name] = (fn(params | {name: params[name] + h}) - fn(params | {name: params[name] - h})) \
            / (2 * h)
    return out


# -- benchmark -----------------------------------------------------------------------------------
def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    times = jnp.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0])

    # linear: one forward solve, one gradient
    lin = reduced_linear(lesions=1)
    p_lin = lin.default_params()
    sched4 = Schedule.repeated(7400.0, 4, 1008.0, ligand_nmol=150.0)
    forward = jax.jit(lambda p: lin.simulate(p, sched4, times).tia_mbq_h["kidneys"])
    start = time.perf_counter()
    jax.block_until_ready(forward(p_lin))
    compile_lin = time.perf_counter() - start
    t_tdt = _timeit(lambda: forward(p_lin))
    t_base = _timeit(lambda: scipy_linear(lin, p_lin, sched4), repeat=1)
    rel = abs(float(forward(p_lin)) / scipy_linear(lin, p_lin, sched4)["kidneys"] - 1)
    rows.append(dict(case="linear forward (9 cpt, 4 cycles)", tdt=t_tdt, baseline=t_base,
                     unit="s", target=">1x",
                     note=f"compile {compile_lin:.1f}s; kidney TIA rel diff vs BDF {rel:.1e}"))
    grad = jax.jit(jax.grad(lambda p: lin.simulate(p, sched4, times).tia_mbq_h["kidneys"]))
    pj = {k: jnp.asarray(v) for k, v in p_lin.items()}
    jax.block_until_ready(grad(pj))
    t_tdt = _timeit(lambda: grad(pj))
    t_base = _timeit(lambda: _fd_gradient(lambda q: scipy_linear(lin, q, sched4)["kidneys"],
                                          p_lin, lin.parameter_names), repeat=1)
    rows.append(dict(case=f"linear gradient ({len(p_lin)} params)", tdt=t_tdt, baseline=t_base,
                     unit="s", target=">1x", note="baseline: central finite differences, BDF"))

    # nonlinear: one forward solve, one gradient (1 cycle)
    pb = psma617(lesions=1)
    p_nl = pb.default_params()
    sched1 = Schedule.repeated(7400.0, 1, 1008.0, ligand_nmol=150.0)
    fwd_nl = jax.jit(lambda p: pb._solve(p, sched1, times).tia_mbq_h["kidneys"])
    pj = {k: jnp.asarray(v) for k, v in p_nl.items()}
    start = time.perf_counter()
    jax.block_until_ready(fwd_nl(pj))
    compile_nl = time.perf_counter() - start
    t_tdt = _timeit(lambda: fwd_nl(pj), repeat=2)
    t_base = t_base_fwd_nl = _timeit(lambda: scipy_pbpk(pb, p_nl, sched1), repeat=1)
    rel = abs(float(fwd_nl(pj)) / scipy_pbpk(pb, p_nl, sched1)["kidneys"] - 1)
    rows.append(dict(case="PSMA-617 PBPK forward (1 cycle)", tdt=t_tdt, baseline=t_base, unit="s",
                     target=">1x", note=f"compile {compile_nl:.1f}s; rtol {pb.rtol:g} atol {pb.atol:g} "
                                        f"(BDF 1e-8); kidney TIA rel diff vs BDF {rel:.1e}"))
    fitted = ("R_kidneys", "kint_kidneys", "krel_kidneys", "f_reabs", "GFR", "kon")
    grad_nl = jax.jit(jax.grad(lambda p: pb._solve(p, sched1, times).tia_mbq_h["kidneys"]))
    jax.block_until_ready(grad_nl(pj))
    t_tdt = _timeit(lambda: grad_nl(pj), repeat=1)
    t_base = t_base_grad_nl = _timeit(
        lambda: _fd_gradient(lambda q: scipy_pbpk(pb, q, sched1)["kidneys"], p_nl, fitted),
        repeat=1)
    rows.append(dict(case=f"PSMA-617 PBPK gradient (all {len(p_nl)} params)", tdt=t_tdt,
                     baseline=t_base, unit="s", target=">1x",
                     note=f"baseline: central FD for only {len(fitted)} params"))

    # the same with the fixed-grid method (tdt.pbpk._grid_solver)
    pb_g = psma617(lesions=1, method="grid")
    fwd_g = jax.jit(lambda p: pb_g._solve(p, sched1, times).tia_mbq_h["kidneys"])
    jax.block_until_ready(fwd_g(pj))
    t_tdt = _timeit(lambda: fwd_g(pj), repeat=3)
    rel = abs(float(fwd_g(pj)) / float(psma617(lesions=1, rtol=1e-10, atol=1e-9).simulate(
        p_nl, sched1, times).tia_mbq_h["kidneys"]) - 1)
    rows.append(dict(case="PSMA-617 PBPK grid forward (1 cycle)", tdt=t_tdt,
                     baseline=t_base_fwd_nl, unit="s", target=">1x",
                     note=f"kidney TIA vs rtol-1e-10 reference {rel:.1e}"))
    grad_g = jax.jit(jax.grad(lambda p: pb_g._solve(p, sched1, times).tia_mbq_h["kidneys"]))
    start = time.perf_counter()
    jax.block_until_ready(grad_g(pj))
    compile_g = time.perf_counter() - start
    t_tdt = _timeit(lambda: grad_g(pj), repeat=3)
    rows.append(dict(case=f"PSMA-617 PBPK grid gradient (all {len(p_nl)} params)", tdt=t_tdt,
                     baseline=t_base_grad_nl, unit="s", target=">1x",
                     note=f"compile {compile_g:.0f}s; baseline: central FD for {len(fitted)} "
                          f"params"))

    # cohort: 10,000 patients x 4 cycles, linear model
    n_cohort = 1000 if quick else 10000
    lv = {"lesion_1": 10.0}
    virtual_cohort(lin, n_cohort, sched4, seed=0, lesion_volumes_ml=lv)  # compile
    t_tdt = _timeit(lambda: virtual_cohort(lin, n_cohort, sched4, seed=1,
                                           lesion_volumes_ml=lv).simulation.tia_mbq_h, repeat=1)
    n_sub = 20 if quick else 50
    from tdt.pbpk import draw_parameters

    draws = draw_parameters(lin, n_sub, seed=1)
    start = time.perf_counter()
    for i in range(n_sub):
        scipy_linear(lin, {k: float(v[i]) for k, v in draws.items()}, sched4)
    t_base = (time.perf_counter() - start) * n_cohort / n_sub
    rows.append(dict(case=f"cohort linear {n_cohort} pts x 4 cycles", tdt=t_tdt, baseline=t_base,
                     unit="s", target=">=20x",
                     note=f"baseline timed on {n_sub} patients, scaled; tdt incl. dosimetry"))

    # cohort: nonlinear PSMA-617 PBPK. Baseline: BDF patient by patient at rtol 1e-5 / atol 1e-4
    # (kidney TIA within ~1e-4 of the rtol-1e-10 reference, like the grid method's ~3e-4).
    draws = draw_parameters(pb, 3, seed=1)
    start = time.perf_counter()
    for i in range(3):
        scipy_pbpk(pb, {k: float(v[i]) for k, v in draws.items()}, sched4, rtol=1e-5, atol=1e-4)
    base_per_patient = (time.perf_counter() - start) / 3

    # (a) the fixed-grid Rosenbrock method (tdt.pbpk._grid_solver), the cohort path
    pb_grid = psma617(lesions=1, method="grid")
    n_grid = 256 if quick else 10000
    virtual_cohort(pb_grid, n_grid, sched4, seed=0, lesion_volumes_ml=lv)
    start = time.perf_counter()
    cohort = virtual_cohort(pb_grid, n_grid, sched4, seed=1, lesion_volumes_ml=lv)
    jax.block_until_ready(cohort.simulation.tia_mbq_h)
    t_grid = time.perf_counter() - start
    ref_model = psma617(lesions=1, rtol=1e-10, atol=1e-9)
    one = {k: v[0] for k, v in cohort.params.items()}
    rel = abs(float(cohort.simulation.tia_mbq_h["kidneys"][0])
              / float(ref_model.simulate(one, sched4, times).tia_mbq_h["kidneys"]) - 1)
    rows.append(dict(case=f"cohort PBPK grid {n_grid} pts x 4 cycles", tdt=t_grid,
                     baseline=base_per_patient * n_grid, unit="s", target=">=20x",
                     note=f"ok {float(jnp.mean(cohort.ok)):.3f}; kidney TIA vs rtol-1e-10 "
                          f"{rel:.1e}; baseline BDF {base_per_patient:.2f} s/pt x {n_grid}"))

    # (b) the adaptive diffrax method (error-controlled reference), for comparison
    pb_fast = psma617(lesions=1, rtol=1e-5, atol=1e-4)
    n_nl = 16 if quick else 64
    virtual_cohort(pb_fast, n_nl, sched4, seed=0, lesion_volumes_ml=lv)  # compile
    t_nl = _timeit(lambda: virtual_cohort(pb_fast, n_nl, sched4, seed=1,
                                          lesion_volumes_ml=lv).simulation.tia_mbq_h, repeat=1)
    rows.append(dict(case=f"cohort PBPK adaptive {n_nl} pts x 4 cycles", tdt=t_nl,
                     baseline=base_per_patient * n_nl, unit="s", target="(reference)",
                     note="diffrax Kvaerno5 rtol 1e-5/atol 1e-4 under vmap"))
    return rows


if __name__ == "__main__":  # pragma: no cover
    for row in run(quick=True):
        print(row)
