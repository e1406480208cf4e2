"""Reduced linear model: exact solution checked against diffrax and SciPy (the analytic one-
and two-compartment solutions are in the solver battery, test_pbpk_solvers.py)."""

from __future__ import annotations

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tdt.errors import InputError
from tdt.pbpk import Administration, Schedule, reduced_linear
from tdt.physics import nuclide

LAMBDA = nuclide("Lu-177").decay_constant_per_h


def _diffrax_reference(model, params, schedule, offsets):
    """Independent solve of the same ODE with diffrax (Kvaerno5, tight tolerances), bolus only.

    Each inter-administration segment is solved separately (state carried across) and saved at
    ``t_k + offsets``; returns (times, states)."""
    g = jnp.asarray(np.asarray(model.generator(params))[:-2, :-2])
    term = diffrax.ODETerm(lambda t, y, args: g @ y)

    @jax.jit
    def segment(y0, t0, t1):
        sol = diffrax.diffeqsolve(
            term, diffrax.Kvaerno5(), t0, t1, 0.01, y0, saveat=diffrax.SaveAt(ts=t0 + offsets),
            stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-9), max_steps=100000)
        return sol.ys

    y = jnp.zeros(g.shape[0])
    times, states = [], []
    admins = schedule.administrations
    for k, admin in enumerate(admins):
        y = y.at[0].add(admin.activity_mbq)
        ys = segment(y, admin.time_h, admin.time_h + float(offsets[-1]))
        times.extend(admin.time_h + np.asarray(offsets))
        states.extend(np.asarray(ys))
        if k + 1 < len(admins):  # carry the state to the next administration
            next_offset = admins[k + 1].time_h - admin.time_h
            assert float(offsets[-1]) == next_offset
        y = ys[-1]
    return np.asarray(times), np.asarray(states)


def test_matches_diffrax_multicycle():
    """Issue 5: matrix-exponential solution equals the diffrax solution (rel 1e-6)."""
    model = reduced_linear(organs=("kidneys", "salivary_glands", "remainder"), lesions=1)
    params = model.default_params()
    schedule = Schedule.repeated(7400.0, 2, 200.0, ligand_nmol=150.0)
    offsets = jnp.array([0.0, 1.0, 5.0, 24.0, 100.0, 199.0, 200.0])
    times, ref = _diffrax_reference(model, params, schedule, offsets)
    # the state at t_k + 200 of segment k is the pre-dose state of segment k+1: compare only
    # points strictly before the next dose
    keep = np.array([not (t in (200.0,) and i < len(offsets)) for i, t in enumerate(times)])
    sim = model.simulate(params, schedule, jnp.asarray(times[keep]))
    for i, name in enumerate(model.compartments):
        np.testing.assert_allclose(sim.activity_mbq[name], ref[keep, i], rtol=1e-6, atol=1e-6,
                                   err_msg=name)


def test_infusion_matches_scipy():
    """Infusion (constant molecule rate, decaying line) vs SciPy Radau with an explicit input."""
    model = reduced_linear(organs=("kidneys",))
    params = {"k_urine": 0.5, "k_in_kidneys": 0.05, "k_out_kidneys": 0.02}
    activity, duration = 7400.0, 0.5
    g = np.asarray(model.generator(params))[:3, :3]

    def rhs(t, y):
        rate = activity / duration * math.exp(-LAMBDA * t) if t < duration else 0.0
        return g @ y + np.array([rate, 0.0, 0.0])

    t_eval = np.array([0.1, 0.25, 0.5, 2.0, 30.0])
    ref = solve_ivp(rhs, (0.0, duration), np.zeros(3), method="Radau", rtol=1e-12, atol=1e-10,
                    dense_output=True)
    ref2 = solve_ivp(rhs, (duration, 30.0), ref.y[:, -1], method="Radau", rtol=1e-12, atol=1e-10,
                     dense_output=True)
    expected = np.array([ref.sol(t) if t <= duration else ref2.sol(t) for t in t_eval])
    sim = model.simulate(params, Schedule([Administration(0.0, activity, 10.0, duration)]),
                         t_eval)
    for i, name in enumerate(model.compartments):
        np.testing.assert_allclose(sim.activity_mbq[name], expected[:, i], rtol=1e-7, atol=1e-7)
    # syringe: A e^{-λt}(1 - t/T) during the infusion, 0 after
    line = np.where(t_eval < duration, activity * np.exp(-LAMBDA * t_eval) * (1 - t_eval / duration),
                    0.0)
    np.testing.assert_allclose(sim.in_syringe_mbq, line, rtol=1e-10, atol=1e-8)


def test_mass_balance_across_cycles_and_infusions():
    """Σ compartments + line + decayed = administered (rel 1e-8), at all times, all cycles."""
    model = reduced_linear(lesions=2)
    schedule = Schedule([Administration(0.0, 7400.0, 150.0, 0.25),
                         Administration(1008.0, 6000.0, 150.0),
                         Administration(2016.0, 7400.0, 100.0, 1.0)])
    times = jnp.linspace(-5.0, 4000.0, 97)
    sim = model.simulate(model.default_params(), schedule, times)
    assert bool(sim.ok)
    assert np.max(np.abs(np.asarray(sim.mass_balance_residual()))) < 1e-8
    # the whole activity eventually decays: λ Σ TIA_inf + decay in the infusion line = total.
    # Line: ∫_0^T A e^{-λτ}(1 - τ/T) dτ = A [1/λ - (1 - e^{-λT})/(λ² T)]
    def line_tia(a, t):
        return a * (1 / LAMBDA - (1 - math.exp(-LAMBDA * t)) / (LAMBDA**2 * t))

    total_tia = sum(float(v) for v in sim.tia_mbq_h.values())
    total_tia += line_tia(7400.0, 0.25) + line_tia(7400.0, 1.0)
    assert LAMBDA * total_tia == pytest.approx(7400.0 + 6000.0 + 7400.0, rel=1e-8)


def test_superposition_and_windows():
    """Linearity: two cycles = sum of two shifted single cycles; windows sum to the total TIA."""
    model = reduced_linear(organs=("kidneys", "remainder"))
    params = model.default_params()
    times = jnp.array([10.0, 300.0, 500.0, 900.0])
    both = model.simulate(params, Schedule([Administration(0.0, 5000.0),
                                            Administration(400.0, 3000.0)]), times)
    first = model.simulate(params, Schedule([Administration(0.0, 5000.0)]), times)
    second = model.simulate(params, Schedule([Administration(400.0, 3000.0)]), times)
    np.testing.assert_allclose(both.activity_mbq["kidneys"],
                               first.activity_mbq["kidneys"] + second.activity_mbq["kidneys"],
                               rtol=1e-10)
    assert float(both.tia_mbq_h["kidneys"]) == pytest.approx(
        float(first.tia_mbq_h["kidneys"] + second.tia_mbq_h["kidneys"]), rel=1e-10)
    windows = np.asarray(both.tia_by_administration_mbq_h["kidneys"])
    assert windows.shape == (2,)
    assert windows.sum() == pytest.approx(float(both.tia_mbq_h["kidneys"]), rel=1e-10)
    # nothing is in the body before the first administration
    early = model.simulate(params, Schedule([Administration(10.0, 100.0)]), jnp.array([0.0, 9.9]))
    assert all(float(np.abs(np.asarray(v)).sum()) == 0.0 for v in early.activity_mbq.values())


def test_grad_matches_finite_differences():
    """jax.grad of kidney TIA w.r.t. every parameter vs central finite differences."""
    model = reduced_linear(organs=("kidneys", "salivary_glands", "remainder"))
    params = model.default_params()
    schedule = Schedule.repeated(7400.0, 2, 1008.0)
    times = jnp.array([1.0, 24.0])

    def kidney_tia(p):
        return model.simulate(p, schedule, times).tia_mbq_h["kidneys"]

    grad = jax.grad(kidney_tia)({k: jnp.asarray(v) for k, v in params.items()})
    for name, value in params.items():
        h = 1e-5 * value
        up = float(kidney_tia(params | {name: value + h}))
        down = float(kidney_tia(params | {name: value - h}))
        fd = (up - down) / (2 * h)
        assert float(grad[name]) == pytest.approx(fd, rel=1e-5, abs=1e-6 * abs(up)), name


def test_vmap_over_params_equals_loop():
    model = reduced_linear(organs=("kidneys", "remainder"))
    base = model.default_params()
    scales = jnp.array([0.5, 1.0, 2.0])
    batch = {k: v * scales for k, v in base.items()}
    schedule = Schedule.repeated(7400.0, 2, 1008.0)
    times = jnp.array([2.0, 48.0])
    run = jax.jit(jax.vmap(lambda p: model.simulate(p, schedule, times)))
    sims = run(batch)
    assert sims.activity_mbq["kidneys"].shape == (3, 2)
    for i, s in enumerate(np.asarray(scales)):
        single = model.simulate({k: v * s for k, v in base.items()}, schedule, times)
        np.testing.assert_allclose(sims.tia_mbq_h["kidneys"][i], single.tia_mbq_h["kidneys"],
                                   rtol=1e-12)


def test_defaults_priors_bounds_sources():
    model = reduced_linear(lesions=1)
    names = set(model.parameter_names)
    assert set(model.default_params()) == names == set(model.priors()) == set(
        model.parameter_bounds()) == set(model.sources())
    for name, (lo, hi) in model.parameter_bounds().items():
        assert 0 < lo <= model.default_params()[name] <= hi
        assert model.sources()[name]
        assert model.priors()[name][1] > 0


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: reduced_linear(organs=("kidney_x",)), "kidney_x"),
        (lambda: reduced_linear(organs=("kidneys", "kidneys")), "duplicate"),
        (lambda: reduced_linear(organs=("plasma",)), "plasma"),
        (lambda: Schedule([Administration(10.0, 1.0), Administration(5.0, 1.0)]), "time order"),
        (lambda: Schedule([Administration(0.0, 1.0, 0.0, 2.0), Administration(1.0, 1.0)]),
         "infusion"),
        (lambda: Administration(0.0, -5.0), "activity_mbq"),
        (lambda: Administration(0.0, 5.0, -1.0), "ligand_nmol"),
        (lambda: Schedule.repeated(100.0, 0, 10.0), "n_cycles"),
        (lambda: Schedule([]), "at least one"),
    ],
)
def test_bad_construction(build, match):
    with pytest.raises(InputError, match=match):
        build()


def test_bad_params_and_times():
    model = reduced_linear(organs=("kidneys",))
    params = model.default_params()
    schedule = Schedule([Administration(0.0, 100.0)])
    with pytest.raises(InputError, match="k_out_kidneys"):
        model.simulate(params | {"k_out_kidneys": -0.1}, schedule, [1.0])
    with pytest.raises(InputError, match="k_in_liver"):
        model.simulate(params | {"k_in_liver": 0.1}, schedule, [1.0])
    missing = dict(params)
    del missing["k_urine"]
    with pytest.raises(InputError, match="k_urine"):
        model.simulate(missing, schedule, [1.0])
    with pytest.raises(InputError, match="times_h"):
        model.simulate(params, schedule, [[1.0, 2.0]])
    with pytest.raises(InputError, match="schedule"):
        model.simulate(params, [Administration(0.0, 1.0)], [1.0])


def test_schedule_is_a_pytree_gradient_wrt_activity():
    """TIA is linear in each activity: d TIA / d A_k = window response (sums to TIA / A)."""
    model = reduced_linear(organs=("kidneys", "remainder"))
    params = model.default_params()
    schedule = Schedule.repeated(5000.0, 2, 1008.0)

    def kidney_tia(s):
        return model.simulate(params, s, jnp.array([2.0, 48.0])).tia_mbq_h["kidneys"]

    grad = jax.jit(jax.grad(kidney_tia))(schedule)
    total = float(kidney_tia(schedule))
    # identical activities: Σ_k A_k dTIA/dA_k = TIA (Euler's theorem for a linear function)
    assert float(jnp.sum(grad.activity_mbq * schedule.activity_mbq)) == pytest.approx(total,
                                                                                      rel=1e-10)
    assert float(jnp.sum(jnp.abs(grad.ligand_nmol))) == 0.0  # the linear model ignores ligand
