"""One battery over every solver path of the linear compartment model (issue 20 item 8).

Paths: ``expm`` — the piecewise matrix exponential (:func:`tdt.pbpk.solve_piecewise_linear`, via
``LinearModel.simulate``); ``eigen`` — the bolus eigen-solution (:func:`tdt.pbpk.bolus_response`,
used by tdt.inference's sampler path and tdt.twin); ``eigen_batched`` — the jitted, vmapped
amplitudes/rates of :func:`tdt.pbpk.batched_bolus_exponentials` evaluated by
:func:`tdt.pbpk.exponential_sum` (the twin's dose response); ``sampler`` — the
``TwinModel.simulate`` fast path of tdt.inference. Every path is compared with independent
references, never with another tdt solver:

* the analytic one-compartment solution (plasma + urine) and the analytic two-compartment
  bolus solution with elimination (Gibaldi & Perrier, Pharmacokinetics, 2nd ed. 1982, ch. 2:
  α, β roots of s² − (k10 + k12 + k21) s + k10 k21; the amounts times e^{−λt} for decay),
* SciPy ``solve_ivp`` (Radau, rtol 1e-12) of the ODE written out by hand below (not from the
  model's generator) for a multi-organ, two-bolus schedule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tdt.inference import _fast_pbpk as fast_pbpk
from tdt.inference import reduced_model
from tdt.pbpk import (
    Administration,
    Schedule,
    batched_bolus_exponentials,
    bolus_response,
    exponential_sum,
    is_bolus_schedule,
    psma617,
    reduced_linear,
)
from tdt.pbpk._description import fluxes
from tdt.physics import nuclide

LAMBDA = nuclide("Lu-177").decay_constant_per_h
PATHS = ("expm", "eigen", "eigen_batched", "sampler")


def _solve(path, model, params, schedule, times):
    """(activity (n_comp, n_times) MBq, TIA (n_comp,) MBq·h) for plasma + organs by ``path``."""
    keep = [c for c in model.compartments if c != "urine"]
    rows = [model.compartments.index(c) for c in keep]
    times = jnp.asarray(times, dtype=float)
    if path == "expm":
        sim = model.simulate(params, schedule, times)
        return (np.stack([np.asarray(sim.activity_mbq[c]) for c in keep]),
                np.array([float(sim.tia_mbq_h[c]) for c in keep]))
    if path == "eigen":
        x, tia = jax.jit(lambda p: bolus_response(model, p, schedule, times))(params)
        return np.asarray(x)[rows], np.asarray(tia)[rows]
    if path == "eigen_batched":
        amp, rates = batched_bolus_exponentials(model, {k: np.array([v]) for k, v in params.items()})
        amp, rates = amp[0][rows], rates[0]
        t = np.asarray(times)
        x = sum(float(a) * np.where(t >= t0, exponential_sum(amp, rates, np.maximum(t - t0, 0.0)),
                                    0.0)
                for t0, a in zip(np.asarray(schedule.time_h), np.asarray(schedule.activity_mbq),
                                 strict=True))
        tia = float(np.sum(schedule.activity_mbq)) * (amp / rates).sum(axis=1)
        return x, tia
    twin = reduced_model(model.organs)
    log_theta = jnp.log(jnp.asarray([params[n] for n in twin.sampled]))
    act, tia, ok = twin.simulate(log_theta, schedule, times, keep, fast=True)
    assert bool(ok)
    return np.asarray(act), np.asarray(tia)


@pytest.mark.parametrize("path", PATHS)
def test_one_compartment_analytic(path):
    """Plasma with urinary clearance only (organ uptake 0): P = A e^{−(k_u + λ) t},
    TIA = A / (k_u + λ)."""
    model = reduced_linear(organs=("kidneys",))
    params = {"k_urine": 0.7, "k_in_kidneys": 0.0, "k_out_kidneys": 0.1}
    times = np.array([0.0, 0.5, 2.0, 10.0, 100.0])
    act, tia = _solve(path, model, params, Schedule([Administration(0.0, 1000.0)]), times)
    np.testing.assert_allclose(act[0], 1000.0 * np.exp(-(0.7 + LAMBDA) * times), rtol=1e-11)
    np.testing.assert_allclose(act[1], 0.0, atol=1e-9)
    assert tia[0] == pytest.approx(1000.0 / (0.7 + LAMBDA), rel=1e-11)


@pytest.mark.parametrize("path", PATHS)
def test_two_compartment_bolus_analytic(path):
    """Plasma <-> organ with elimination from plasma (Gibaldi & Perrier ch. 2), with decay."""
    k10, k12, k21 = 0.6, 0.3, 0.05  # urine, plasma -> organ, organ -> plasma (1/h)
    dose = 7400.0
    model = reduced_linear(organs=("kidneys",))
    params = {"k_urine": k10, "k_in_kidneys": k12, "k_out_kidneys": k21}
    total, product = k10 + k12 + k21, k10 * k21
    alpha = 0.5 * (total + np.sqrt(total**2 - 4 * product))
    beta = product / alpha
    t = np.array([0.0, 0.2, 1.0, 4.0, 24.0, 96.0, 400.0])
    decay = np.exp(-LAMBDA * t)
    plasma = dose / (alpha - beta) * ((alpha - k21) * np.exp(-alpha * t)
                                      + (k21 - beta) * np.exp(-beta * t)) * decay
    organ = dose * k12 / (alpha - beta) * (np.exp(-beta * t) - np.exp(-alpha * t)) * decay
    # ∫ e^{-(r+λ)t} = 1/(r+λ)
    tia_plasma = dose / (alpha - beta) * ((alpha - k21) / (alpha + LAMBDA)
                                          + (k21 - beta) / (beta + LAMBDA))
    tia_organ = dose * k12 / (alpha - beta) * (1 / (beta + LAMBDA) - 1 / (alpha + LAMBDA))
    act, tia = _solve(path, model, params, Schedule([Administration(0.0, dose)]), t)
    np.testing.assert_allclose(act[0], plasma, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(act[1], organ, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(tia, [tia_plasma, tia_organ], rtol=1e-10)


def _hand_written_rhs(params, organs):
    """dP/dt, dO/dt of the reduced model, written from its equations (module docstring of
    tdt.pbpk._linear), not from ``model.generator``."""
    k_u = params["k_urine"]
    k_in = np.array([params[f"k_in_{o}"] for o in organs])
    k_out = np.array([params[f"k_out_{o}"] for o in organs])

    def rhs(_t, y):
        p, o = y[0], y[1:]
        dp = -(k_in.sum() + k_u) * p + (k_out * o).sum() - LAMBDA * p
        do = k_in * p - k_out * o - LAMBDA * o
        return np.concatenate([[dp], do])

    return rhs


@pytest.mark.parametrize("path", PATHS)
def test_multi_organ_two_boluses_match_solve_ivp(path):
    """Three organs + a lesion, two cycles 6 weeks apart: activities and TIA vs SciPy Radau."""
    model = reduced_linear(organs=("kidneys", "salivary_glands", "liver"), lesions=1)
    params = model.default_params()
    organs = model.organs
    rhs = _hand_written_rhs(params, organs)
    t_second, doses = 1008.0, (7400.0, 6000.0)
    schedule = Schedule([Administration(0.0, doses[0]), Administration(t_second, doses[1])])
    times = np.array([0.5, 4.0, 24.0, 96.0, 168.0, 1000.0, 1010.0, 1200.0])
    n = 1 + len(organs)
    y0 = np.zeros(n)
    y0[0] = doses[0]
    opts = {"method": "Radau", "rtol": 1e-12, "atol": 1e-9}
    first = solve_ivp(rhs, (0.0, t_second), y0, dense_output=True, **opts)
    y1 = first.y[:, -1].copy()
    y1[0] += doses[1]
    # TIA to infinity: integrate the second segment far out (e^{-λ 2e4} ~ 1e-22) with the
    # integral as extra states
    def rhs_aug(t, y):
        return np.concatenate([rhs(t, y[:n]), y[:n]])

    second = solve_ivp(rhs_aug, (t_second, t_second + 2.0e4), np.concatenate([y1, np.zeros(n)]),
                       dense_output=True, **opts)
    first_integral = solve_ivp(rhs_aug, (0.0, t_second), np.concatenate([y0, np.zeros(n)]),
                               **opts).y[n:, -1]
    expected = np.stack([first.sol(t) if t < t_second else second.sol(t)[:n] for t in times], 1)
    expected_tia = first_integral + second.y[n:, -1]
    act, tia = _solve(path, model, params, schedule, times)
    np.testing.assert_allclose(act, expected, rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(tia, expected_tia, rtol=1e-7)


@pytest.mark.parametrize("path", ("expm", "eigen"))
def test_gradient_matches_finite_differences(path):
    """d(kidney TIA)/d(k_in_kidneys) of both solver kernels against central differences."""
    model = reduced_linear(organs=("kidneys", "liver"))
    base = model.default_params()
    schedule = Schedule([Administration(0.0, 7400.0)])
    times = jnp.asarray([24.0])
    kidney = model.compartments.index("kidneys")

    def tia(k):
        params = {**base, "k_in_kidneys": k}
        if path == "expm":
            return model.simulate(params, schedule, times).tia_mbq_h["kidneys"]
        return bolus_response(model, params, schedule, times)[1][kidney]

    k0 = float(base["k_in_kidneys"])
    grad = float(jax.jit(jax.grad(tia))(k0))
    h = 1e-5 * k0
    value = jax.jit(tia)
    fd = (float(value(k0 + h)) - float(value(k0 - h))) / (2 * h)
    assert grad == pytest.approx(fd, rel=1e-6)


def test_infusions_are_left_to_the_matrix_exponential():
    """The eigen-solution is for boluses only; the sampler path hands infusions to ``expm``."""
    bolus = Schedule([Administration(0.0, 7400.0)])
    infusion = Schedule([Administration(0.0, 7400.0, 100.0, infusion_h=0.5)])
    assert is_bolus_schedule(bolus)
    assert not is_bolus_schedule(infusion)


# ---------------------------------------------------------------- receptor PBPK where it is linear
PBPK_ORGANS = ("plasma", "kidneys", "salivary_glands", "liver")
PBPK_TIMES = np.array([1.0, 4.0, 24.0, 96.0, 300.0])


def _pbpk_path(path, params, schedule):
    """Activities (n_organs, n_times) MBq of the PSMA-617 PBPK by one of its solver paths."""
    times = jnp.asarray(PBPK_TIMES)
    if path == "sampler":
        model = psma617(lesions=0, method="grid")
        act, _, ok = jax.jit(lambda p: fast_pbpk.solve_bolus(model, p, schedule, times,
                                                             PBPK_ORGANS))(params)
        assert bool(ok)
        return np.asarray(act)
    options = {"method": "grid"} if path == "grid" else {"rtol": 1e-10, "atol": 1e-12}
    sim = psma617(lesions=0, **options).simulate(params, schedule, times)
    assert bool(sim.ok)
    return np.stack([np.asarray(sim.activity_mbq[o]) for o in PBPK_ORGANS])


@pytest.mark.slow  # three PBPK compilations (~1-2 min on 2 cores)
@pytest.mark.parametrize(("path", "rtol", "peak_tol"), [
    ("adaptive", 5e-5, 5e-5),  # measured max 8e-6 (occupancy 1e-3 nmol is not exactly zero)
    # fixed grid, no error control: measured max 5.4e-3 pointwise (300 h, 1e-5 of the peak),
    # 1.5e-4 of each compartment's peak (docs/pbpk.md: accuracy set by grid_steps)
    ("grid", 1e-2, 5e-4),
    ("sampler", 1e-2, 5e-4),  # measured 2.4e-3 pointwise, 1.5e-4 of the peak
])
def test_receptor_pbpk_at_trace_ligand_matches_solve_ivp(path, rtol, peak_tol):
    """At a trace ligand amount (1e-3 nmol, receptor occupancy < 1e-3) the receptor PBPK is a
    linear system: hot' = (J − λ I) hot with J the flux Jacobian at zero occupancy. Every PBPK
    solver path (diffrax Kvaerno5, the grid Rosenbrock method, the sampler's structured path)
    against SciPy Radau of that linear system."""
    model = psma617(lesions=0)
    params = model.default_params()
    layout = model.layout
    n = layout.n_sub
    jac = np.asarray(jax.jacfwd(lambda a: fluxes(layout, params, jnp.zeros(n), a))(jnp.zeros(n)))
    matrix = jac - LAMBDA * np.eye(n)
    y0 = np.zeros(n)
    y0[0] = 1.0  # 1 MBq bolus into plasma
    ref = solve_ivp(lambda _t, y: matrix @ y, (0.0, PBPK_TIMES[-1]), y0, method="Radau",
                    rtol=1e-11, atol=1e-14, t_eval=PBPK_TIMES)
    report = np.asarray(layout.report_matrix())
    expected = np.stack([report[layout.reported.index(o)] @ ref.y for o in PBPK_ORGANS])
    schedule = Schedule([Administration(0.0, 1.0, 1e-3)])
    act = _pbpk_path(path, params, schedule)
    np.testing.assert_allclose(act, expected, rtol=rtol)
    peak = expected.max(axis=1, keepdims=True)
    assert np.max(np.abs(act - expected) / peak) < peak_tol
