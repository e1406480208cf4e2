"""Fixed-grid PBPK solver (tdt.pbpk._grid_solver): the ROS34PW2 tableau against the matrix
exponential, the whole method against the adaptive diffrax reference (rtol 1e-10), mass
balance, gradients against finite differences, bad input, and the cohort solver cache."""

from __future__ import annotations

import gc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

from tdt.errors import InputError
from tdt.pbpk import Schedule, psma617, virtual_cohort
from tdt.pbpk._grid_solver import rosenbrock_steps

TIMES = jnp.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0, 500.0])


def test_ros34pw2_is_third_order_and_l_stable_on_a_stiff_linear_system():
    """Uniform steps on y' = A y (eigenvalues −1000, −1, −0.1): error vs scipy expm falls by
    ~2³ per halving (order 3, Rang & Angermann 2005), with h·1000 ≫ 1 (no instability)."""
    a = np.array([[-1000.0, 0.0, 0.0], [999.0, -1.0, 0.0], [0.0, 1.0, -0.1]])
    y0 = np.array([1.0, 0.0, 0.0])
    exact = expm(a * 10.0) @ y0
    errors = []
    for n in (40, 80, 160):
        _, y_end = rosenbrock_steps(lambda y: jnp.asarray(a) @ y, jnp.asarray(y0),
                                    jnp.full(n, 10.0 / n))
        errors.append(np.max(np.abs(np.asarray(y_end) - exact)))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 2.6), orders
    assert errors[-1] < 1e-5


@pytest.fixture(scope="module")
def reference():
    """Adaptive Kvaerno5 at rtol 1e-10 — the reference the grid method is measured against."""
    model = psma617(lesions=1, rtol=1e-10, atol=1e-9)
    params = model.default_params()

    def run(ligand):
        schedule = Schedule.repeated(7400.0, 2, 1008.0, ligand_nmol=ligand)
        return schedule, model.simulate(params, schedule, TIMES)

    return params, run


@pytest.mark.parametrize(("ligand_nmol", "tia_tol"), [
    (150.0, 1e-3), pytest.param(2000.0, 5e-3, marks=pytest.mark.slow)])
def test_grid_method_matches_adaptive_reference(reference, ligand_nmol, tia_tol):
    """TIA per compartment and activities (relative to each compartment's peak), 2 cycles."""
    params, run = reference
    schedule, ref = run(ligand_nmol)
    grid = psma617(lesions=1, method="grid").simulate(params, schedule, TIMES)
    assert bool(grid.ok)
    for name in ref.compartments:
        assert float(grid.tia_mbq_h[name] / ref.tia_mbq_h[name]) == pytest.approx(1.0,
                                                                                  abs=tia_tol)
        err = jnp.max(jnp.abs(grid.activity_mbq[name] - ref.activity_mbq[name]))
        assert float(err / jnp.max(ref.activity_mbq[name])) < tia_tol, name
        np.testing.assert_allclose(grid.tia_by_administration_mbq_h[name],
                                   ref.tia_by_administration_mbq_h[name], rtol=3 * tia_tol)


def test_grid_method_mass_balance_with_infusion_across_cycles():
    model = psma617(lesions=1, method="grid")
    schedule = Schedule.repeated(7400.0, 3, 1008.0, ligand_nmol=150.0, infusion_h=0.5)
    times = jnp.array([0.25, 0.5, 2.0, 300.0, 1008.2, 1100.0, 2016.1, 2500.0])
    sim = model.simulate(model.default_params(), schedule, times)
    assert bool(sim.ok)
    assert float(jnp.max(jnp.abs(sim.mass_balance_residual()))) < 1e-8


@pytest.mark.slow  # reverse mode through the Jacobian of every step: ~1 min to compile
def test_grid_method_gradient_matches_finite_differences():
    model = psma617(lesions=1, method="grid", grid_steps=24)
    params = {k: jnp.asarray(v) for k, v in model.default_params().items()}
    schedule = Schedule.repeated(7400.0, 1, 1008.0, ligand_nmol=150.0)
    times = jnp.array([4.0, 24.0, 96.0])

    def kidney_tia(p):
        return model._solve(p, schedule, times).tia_mbq_h["kidneys"]

    grad = jax.grad(kidney_tia)(params)
    for name in ("R_kidneys", "GFR", "kon", "krel_kidneys"):
        h = 1e-5 * params[name]
        fd = (kidney_tia(params | {name: params[name] + h})
              - kidney_tia(params | {name: params[name] - h})) / (2 * h)
        assert float(grad[name]) == pytest.approx(float(fd), rel=1e-5), name


def test_grid_method_bad_options_name_the_field():
    with pytest.raises(InputError, match="method"):
        psma617(lesions=1, method="rk4")
    with pytest.raises(InputError, match="grid_steps"):
        psma617(lesions=1, method="grid", grid_steps=2)
    with pytest.raises(InputError, match="linear_after_h"):
        psma617(lesions=1, method="grid", linear_after_h=0.0)


@pytest.mark.slow  # two jitted cohort solvers (~40 s alone, ~110 s on a loaded 2-core machine)
def test_cohort_solver_is_cached_per_model_not_per_id():
    """A new model must never reuse a garbage-collected model's jitted solver (id reuse)."""
    schedule = Schedule.repeated(7400.0, 1, 1008.0, ligand_nmol=150.0)
    coarse = psma617(lesions=1, method="grid", grid_steps=8)
    first = virtual_cohort(coarse, 2, schedule, seed=3, phantom=None).simulation.tia_mbq_h[
        "kidneys"]
    del coarse
    gc.collect()
    fine = psma617(lesions=1, method="grid", grid_steps=64)
    second = virtual_cohort(fine, 2, schedule, seed=3, phantom=None)
    one = fine.simulate({k: v[0] for k, v in second.params.items()}, schedule,
                        jnp.array([24.0]))
    assert float(second.simulation.tia_mbq_h["kidneys"][0]) == pytest.approx(
        float(one.tia_mbq_h["kidneys"]), rel=1e-4)  # sample times join the grid: the two grids
    # differ (times [0] vs [24] h) by ~2e-5 with fu_plasma 0.3, far below the grid's 3e-4 accuracy
    assert not np.allclose(first, second.simulation.tia_mbq_h["kidneys"], rtol=1e-6)
