"""Sampler path of the PBPK fit for several boluses (tdt.inference._fast_pbpk.solve_boluses)
against independent references: the general grid solver of tdt.pbpk (full 64-state model,
hot activity integrated as its own state) on 2- and 4-cycle schedules, and SciPy's Radau on the
full right-hand side of tdt.pbpk._description, integrated piecewise between the boluses, with
parameters that change from cycle to cycle (the twin's drift). Its gradient against finite
differences: tests/inference/test_inference_fast_pbpk.py (one test over 1 and 3 cycles)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tdt.errors import InputError
from tdt.inference import _fast_pbpk as fast_pbpk
from tdt.inference import pbpk_model
from tdt.pbpk import Schedule, psma617
from tdt.pbpk._description import rhs

ORGANS = ("kidneys", "salivary_glands", "liver", "lesion_1", "plasma", "red_marrow")
#: imaging times after each administration; 300 h is after the 168 h switch (late branch)
AFTER = np.array([0.5, 4.0, 24.0, 96.0, 168.0, 300.0])


@pytest.fixture(scope="module")
def model():
    return psma617(lesions=1, method="grid")


def _times(schedule, after=AFTER):
    starts = np.asarray(schedule.time_h)
    return jnp.asarray(np.sort(np.concatenate([s + after for s in starts])))


def _fast(model, params, schedule, times):
    return jax.jit(lambda p: fast_pbpk.solve_boluses(model, p, schedule, times, ORGANS,
                                                     by_administration=True))(params)


def _check_against_grid(model, schedule, after=AFTER):
    params = model.default_params()
    times = _times(schedule, after)
    activity, tia, ok = _fast(model, params, schedule, times)
    assert bool(ok)
    sim = model.simulate(params, schedule, times)
    reference = np.stack([np.asarray(sim.activity_mbq[o]) for o in ORGANS])
    windows = np.stack([np.asarray(sim.tia_by_administration_mbq_h[o]) for o in ORGANS], 1)
    # same tolerances as the one-bolus path against the grid solver (measured: 3.7e-3 pointwise,
    # 4.7e-4 for the TIAs of 2 and 4 cycles)
    np.testing.assert_allclose(np.asarray(activity), reference, rtol=1e-2, atol=1e-6 * 7400.0)
    np.testing.assert_allclose(np.asarray(tia), windows, rtol=2e-3)
    total = jax.jit(lambda p: fast_pbpk.solve_boluses(model, p, schedule, times, ORGANS)[1])(params)
    np.testing.assert_allclose(np.asarray(total), np.asarray(tia).sum(0), rtol=1e-12)


def test_several_boluses_are_on_the_sampler_path(model):
    assert fast_pbpk.applicable(model, Schedule.repeated(7400.0, 4, 1008.0, ligand_nmol=100.0))
    infusions = Schedule.repeated(7400.0, 2, 1008.0, infusion_h=0.5)
    assert fast_pbpk.applicable(model, infusions, AFTER)
    assert not fast_pbpk.applicable(model, infusions)  # sample times unknown: the model's solver
    # an infusion reaching the 168 h switch: the model's solver (Schedule refuses overlaps)
    long = Schedule.repeated(7400.0, 1, 1008.0, infusion_h=168.0)
    assert not fast_pbpk.applicable(model, long, AFTER)

    def traced(x):  # sample times made inside jit are tracers: the model's solver, no error
        assert not fast_pbpk.applicable(model, infusions, jnp.asarray(AFTER))
        return x

    jax.jit(traced)(1.0)
    with pytest.raises(InputError, match="infusion durations"):
        fast_pbpk.solve_boluses(model, model.default_params(),
                                Schedule.repeated(7400.0, 1, 1008.0, infusion_h=168.0),
                                jnp.asarray(AFTER), ORGANS)
    twin = pbpk_model(organs=("kidneys",))
    assert fast_pbpk.applicable(twin.forward, Schedule.repeated(7400.0, 2, 1008.0))


def test_two_cycles_match_the_grid_solver(model):
    """Different activities and ligand amounts per cycle (the labelled fraction differs), data
    in both cycles, before and after the occupancy switch."""
    schedule = Schedule.repeated([7400.0, 5000.0], 2, 1008.0, ligand_nmol=[100.0, 400.0])
    _check_against_grid(model, schedule)


def test_infusions_match_the_grid_solver(model):
    """Infusions of 0.5 h (two cycles, other activity and ligand in the second) and of 2 h with
    a saturating 2000 nmol: the grid solver integrates the decaying infusion line as its own
    states (tdt.pbpk, docs/pbpk.md); here the peptide enters as a source over the infusion
    (W = c y + D unchanged). Samples during the infusions. Measured: 3.6e-3 pointwise, 1.1e-3
    for the TIAs (the bolus path's 3.7e-3 and 4.7e-4)."""
    during = np.concatenate([[0.1, 0.25, 1.0, 1.5], AFTER])
    _check_against_grid(model, Schedule.repeated([7400.0, 5000.0], 2, 1008.0,
                                                 ligand_nmol=[100.0, 400.0], infusion_h=0.5),
                        during)
    schedule = Schedule.repeated(7400.0, 1, 1008.0, ligand_nmol=2000.0, infusion_h=2.0)
    _check_against_grid(model, schedule, during)
    bolus = Schedule.repeated(7400.0, 1, 1008.0, ligand_nmol=2000.0)
    infused = _fast(model, model.default_params(), schedule, jnp.asarray([0.25]))[0]
    at_once = _fast(model, model.default_params(), bolus, jnp.asarray([0.25]))[0]
    assert float(infused[ORGANS.index("plasma"), 0]) < 0.5 * float(at_once[4, 0])  # not a bolus


@pytest.mark.slow
def test_four_cycles_with_uneven_intervals_match_the_grid_solver(model):
    """Four cycles, one of them 120 h after the previous (shorter than the 168 h switch: no
    frozen-occupancy phase in that window), strong saturation in one cycle."""
    schedule = Schedule([
        *Schedule.repeated([7400.0, 6000.0], 2, 1008.0, ligand_nmol=[100.0, 2000.0])
        .administrations,
        *Schedule.repeated([7400.0, 3000.0], 2, 120.0, ligand_nmol=[150.0, 50.0],
                           start_h=2016.0).administrations])
    _check_against_grid(model, schedule)


def _radau_reference(model, per_cycle, schedule, times, horizon_h=30000.0):
    """SciPy Radau (rtol 1e-10) on the full state of tdt.pbpk._description, piecewise between
    the boluses, with the parameters of each cycle; activities at ``times`` and the TIA of each
    administration's window (the last to ``horizon_h`` later: e^{-λ·30000 h} ≈ 1e-57)."""
    layout = model.layout
    n, n_rep = layout.n_sub, len(layout.reported)
    f = rhs(layout, model.decay_constant_per_h)
    starts = np.asarray(schedule.time_h)
    ligand = np.maximum(np.asarray(schedule.ligand_nmol),
                        np.asarray(schedule.activity_mbq) / model.specific_activity_mbq_per_nmol())
    ends = np.append(starts[1:], starts[-1] + horizon_h)
    report = np.asarray(layout.report_matrix())
    rows = [layout.reported.index(o) for o in ORGANS]
    y = np.zeros(layout.n_state)
    i0 = layout.integral_start
    activity = np.zeros((len(ORGANS), len(times)))
    windows = []
    for k, (t0, t1) in enumerate(zip(starts, ends, strict=True)):
        params = {name: jnp.asarray(v[k]) for name, v in per_cycle.items()}
        fun = jax.jit(lambda t, yy, p=params: f(t, yy, (p, 0.0)))
        jac = jax.jit(jax.jacfwd(lambda t, yy, p=params: f(t, yy, (p, 0.0)), argnums=1))
        y = y.copy()
        y[0] += ligand[k]
        y[n] += float(schedule.activity_mbq[k])
        start_integrals = y[i0:i0 + n_rep].copy()
        inside = (np.asarray(times) >= t0) & (np.asarray(times) < t1)
        sol = solve_ivp(lambda t, yy, fun=fun: np.asarray(fun(t, yy)), (t0, t1), y, method="Radau",
                        jac=lambda t, yy, jac=jac: np.asarray(jac(t, yy)), rtol=1e-10, atol=1e-10,
                        t_eval=np.append(np.asarray(times)[inside], t1))
        assert sol.success
        activity[:, inside] = report[rows] @ sol.y[n:2 * n, :-1]
        y = sol.y[:, -1]
        windows.append((y[i0:i0 + n_rep] - start_integrals)[rows])
    return activity, np.stack(windows)


@pytest.mark.slow
def test_drifting_parameters_match_scipy_radau(model):
    """Receptor density and GFR change between cycles (piecewise constant parameters, switched
    at each bolus): the carried-over total and hot activity of cycle 1 meet cycle 2's receptors.
    Reference: SciPy Radau on the full 64-state right-hand side (independent of both the grid
    solver and the sampler path)."""
    schedule = Schedule.repeated([7400.0, 6000.0], 2, 1008.0, ligand_nmol=[100.0, 300.0])
    base = model.default_params()
    per_cycle = {k: np.array([v, v]) for k, v in base.items()}
    per_cycle["GFR"] = base["GFR"] * np.array([1.0, 0.8])
    per_cycle["R_kidneys"] = base["R_kidneys"] * np.array([1.0, 1.3])
    per_cycle["R_lesion_1"] = base["R_lesion_1"] * np.array([1.0, 0.6])
    times = _times(schedule)
    activity, tia, ok = _fast(model, {k: jnp.asarray(v) for k, v in per_cycle.items()},
                              schedule, times)
    assert bool(ok)
    ref_activity, ref_tia = _radau_reference(model, per_cycle, schedule, np.asarray(times))
    # measured: 3.5e-3 pointwise, 4.6e-4 TIA (the grid scheme's accuracy, docs/pbpk.md)
    np.testing.assert_allclose(np.asarray(activity), ref_activity, rtol=1e-2,
                               atol=1e-6 * 7400.0)
    np.testing.assert_allclose(np.asarray(tia), ref_tia, rtol=2e-3)
    # the drift matters: with cycle 1's parameters throughout, cycle 2's kidney TIA differs
    _, same, _ = _fast(model, base, schedule, times)
    assert abs(float(same[1, 0]) / float(ref_tia[1, 0]) - 1.0) > 0.05


def test_known_times_give_the_same_solution_as_the_traced_path(model):
    """Sample and administration times known at trace time (the sampler's case) take the
    unrolled path (each window solves only its own samples, no zero-length steps, no propagator
    after the last bolus); traced times take the lax.scan path over every sample. The two are
    different code paths of the same scheme (zero steps are the identity): equal to rounding,
    values and gradient. Samples before the first bolus are zero in both."""
    schedule = Schedule.repeated([7400.0, 5000.0, 6000.0], 3, 1008.0,
                                 ligand_nmol=[100.0, 400.0, 150.0])
    times = np.concatenate([[-1.0], np.asarray(_times(schedule))])
    params = model.default_params()

    def solve(p, t):
        return fast_pbpk.solve_boluses(model, p, schedule, t, ORGANS, by_administration=True)

    known = jax.jit(lambda p: solve(p, times))(params)
    traced = jax.jit(solve)(params, jnp.asarray(times))
    assert bool(known[2]) and bool(traced[2])
    np.testing.assert_allclose(np.asarray(known[0]), np.asarray(traced[0]), rtol=1e-10,
                               atol=1e-12)
    assert np.all(np.asarray(known[0])[:, 0] == 0.0)
    np.testing.assert_allclose(np.asarray(known[1]), np.asarray(traced[1]), rtol=1e-10)

    def loss(p, t):
        activity, tia, _ = fast_pbpk.solve_boluses(model, p, schedule, t, ORGANS)
        return jnp.sum(jnp.log(activity[:, 1:])) + jnp.sum(jnp.log(tia))

    g_known = jax.jit(jax.grad(lambda p: loss(p, times)))(params)
    g_traced = jax.jit(jax.grad(loss))(params, jnp.asarray(times))
    for name in ("GFR", "R_kidneys", "kon"):
        np.testing.assert_allclose(float(g_known[name]), float(g_traced[name]), rtol=1e-8)
