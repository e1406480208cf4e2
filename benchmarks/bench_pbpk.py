"""PBPK benchmarks: one forward solve and one gradient (linear and nonlinear), a
10,000-patient x 4-cycle virtual cohort, and the multi-cycle PBPK fit (``multicycle_rows``: a
4-cycle PSMA-617 patient with data after cycles 1 and 2, 4 chains x (1000 + 1000); baseline: the
general grid solver's gradient of the same log density, on a gradient-evaluation basis).

Baseline: what a user writes today — the same ODEs with SciPy ``solve_ivp`` (BDF), patient by
patient, integrating the TIA as extra states to a long horizon; gradients by central finite
differences. Cohort baselines are timed on a subset and scaled linearly (stated in the note).
Times of tdt exclude the one-off JIT compilation (reported separately in the note).
"""

from __future__ import annotations

import dataclasses
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
    rows += multicycle_rows(quick)
    return rows


# -- multi-cycle PBPK fit (issue 21 item 3) ---------------------------------------------------
MULTICYCLE_TIMES_H = np.array([4.0, 24.0, 48.0, 96.0, 168.0])  # after each imaged cycle


def multicycle_patient(n_cycles: int = 4, imaged_cycles: int = 2, seed: int = 1,
                       infusion_h: float = 0.0):
    """A PSMA-617 patient (standard organs, two lesions) on ``n_cycles`` x 7.4 GBq / 100 nmol
    every 6 weeks (``infusion_h`` > 0: each an infusion of that duration), imaged at 4-168 h
    after each of the first ``imaged_cycles`` cycles (one calibration session per cycle), 10 %
    lognormal noise around the sampler-path solution at a prior draw. Returns (twin model,
    PatientData, schedule)."""
    from tdt.inference import OrganSeries, PatientData, pbpk_model

    organs, lesions = ("kidneys", "salivary_glands", "liver"), ("lesion_1", "lesion_2")
    twin = pbpk_model(organs=organs, lesions=lesions)
    schedule = Schedule.repeated(7400.0, n_cycles, 1008.0, ligand_nmol=100.0,
                                 infusion_h=infusion_h)
    times = np.concatenate([MULTICYCLE_TIMES_H + k * 1008.0 for k in range(imaged_cycles)])
    rng = np.random.default_rng(seed)
    truth = twin.prior_loc + twin.prior_chol @ rng.normal(0.0, 0.5, twin.n_params)
    at = jnp.asarray(times)  # made outside jit: known at trace time (the sampler's path)
    activity, _, ok = jax.jit(lambda x: twin.simulate(x, schedule, at, organs + lesions))(
        jnp.asarray(truth))
    assert bool(ok)
    sessions = [f"cycle{k + 1}" for k in range(imaged_cycles) for _ in MULTICYCLE_TIMES_H]
    volumes = {"lesion_1": 10.0, "lesion_2": 4.0}
    series = {o: OrganSeries(times, np.asarray(activity[i]) * np.exp(rng.normal(0, 0.1, times.size)),
                             volume_ml=volumes.get(o), sessions=sessions)
              for i, o in enumerate(organs + lesions)}
    return twin, PatientData(series, calibration_sd=0.03, schedule=schedule), schedule


class GeneralSolver:
    """The PBPK model without ``layout``: TwinModel.simulate then uses the model's own general
    grid solver (64 states, dense LU per step) instead of the sampler path."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        if name == "layout":
            raise AttributeError(name)
        return getattr(self.model, name)


def _logdensity_gradient(twin, data, schedule, forward=None):
    """(seconds per gradient of the sampler's log density at the initial point, compile s)."""
    from tdt.inference import MeasurementModel
    from tdt.inference._nuts import _flat_logdensity
    from tdt.inference._pymc_models import build_patient_model

    model = build_patient_model(data, twin, MeasurementModel(), schedule, forward=forward)
    flat0, _, logdensity = _flat_logdensity(model)
    grad = jax.jit(jax.value_and_grad(logdensity))
    start = time.perf_counter()
    jax.block_until_ready(grad(flat0))
    compile_s = time.perf_counter() - start
    return _timeit(lambda: grad(flat0), repeat=10), compile_s


def multicycle_rows(quick: bool = False, baseline: bool = True) -> list[dict]:
    """4-cycle PSMA-617 fit, data after cycles 1-2: per-gradient cost (sampler path with the
    likelihood over the imaged cycles only; all 4 cycles in the likelihood, as before; the
    general grid solver) and the fit 4 x (1000 + 1000) (compilation included)."""
    from tdt.inference import fit_patient
    from tdt.inference._bridge import wrapped_forward

    twin, data, schedule = multicycle_patient()
    rows = []
    t_fast, c_fast = _logdensity_gradient(twin, data, schedule)
    t_all, c_all = _logdensity_gradient(twin, data, schedule,
                                        forward=wrapped_forward(twin, data, schedule))
    rows.append(dict(case="4-cycle PBPK log-density gradient", tdt=t_fast, baseline=t_all,
                     unit="s", target="(breakdown)",
                     note=f"baseline: all 4 cycles in the likelihood (before); compile "
                          f"{c_fast:.0f} s vs {c_all:.0f} s"))
    if baseline and not quick:  # the general grid solver: compile ~5 min
        slow = dataclasses.replace(twin, forward=GeneralSolver(twin.forward))
        t_slow, c_slow = _logdensity_gradient(slow, data, schedule)
        rows.append(dict(case="4-cycle PBPK gradient vs general grid solver", tdt=t_fast,
                         baseline=t_slow, unit="s", target=">1x",
                         note=f"baseline compile {c_slow:.0f} s (64-state solver, 4 cycles)"))
    draws = 50 if quick else 1000
    for infusion_h in (0.0, 0.5):  # boluses; 30-min infusions (the sampler path since 12-07)
        if infusion_h:
            twin, data, schedule = multicycle_patient(infusion_h=infusion_h)
            t_inf, c_inf = _logdensity_gradient(twin, data, schedule)
            rows.append(dict(case="4-cycle PBPK gradient, 0.5-h infusions vs boluses",
                             tdt=t_inf, baseline=t_fast, unit="s", target="~1x",
                             note=f"sampler path both (infusions used the general solver "
                                  f"before, row above); compile {c_inf:.0f} s"))
        start = time.perf_counter()
        post = fit_patient(data, model=twin, schedule=schedule, draws=draws, tune=draws,
                           chains=4, seed=0)
        wall = time.perf_counter() - start
        d = post.diagnostics
        kind = f", {infusion_h:g}-h infusions" if infusion_h else ""
        rows.append(dict(case=f"4-cycle PBPK fit{kind}, data cycles 1-2, 4x({draws}+{draws})",
                         tdt=wall, baseline=None, unit="s", target="<= 180 s, converged",
                         note=f"converged {post.converged}; {d}; min ESS/s "
                              f"{d.min_ess_per_s:.3g}; steps/draw "
                              f"{float(post.idata.sample_stats['n_steps'].mean()):.1f}"))
    return rows


if __name__ == "__main__":  # pragma: no cover
    for row in run(quick=True):
        print(row)
