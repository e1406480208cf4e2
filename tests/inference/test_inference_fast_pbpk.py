"""Sampler path of the PBPK fit (tdt.inference._fast_pbpk): its pieces against independent
references — the right-hand side against the model's own ``fluxes``, the block solve against a
dense LU of the Jacobian from ``jax.jacfwd``, the 3×3 inverse against NumPy, the quadrature
against exact polynomial integrals — and the whole solution against the adaptive Kvaerno5
reference (rtol 1e-10), the grid solver, and finite-difference gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdt.inference import _fast_pbpk as fast_pbpk
from tdt.inference import pbpk_model
from tdt.pbpk import Schedule, psma617
from tdt.pbpk._description import fluxes

ORGANS = ("kidneys", "salivary_glands", "liver", "lesion_1", "plasma", "red_marrow")
TIMES = jnp.array([0.5, 4.0, 24.0, 48.0, 96.0, 168.0, 300.0, 1000.0])


@pytest.fixture(scope="module")
def model():
    return psma617(lesions=1, method="grid")


def _random_state(model, rng):
    """A physical total-peptide state (nmol): bound <= receptors in every tissue."""
    layout = model.layout
    params = model.default_params()
    y = np.zeros(layout.n_sub - 1)
    y[0] = rng.uniform(1, 50)
    for t in layout.tissues:
        y[layout.sub_index(f"{t.name}:free")] = rng.uniform(0, 5)
        if t.receptors:
            capacity = params[f"R_{t.name}"] * params[f"V_{t.name}"] / 1000.0
            y[layout.sub_index(f"{t.name}:bound")] = rng.uniform(0, capacity)
            y[layout.sub_index(f"{t.name}:internalised")] = rng.uniform(0, 5)
    return jnp.asarray(y)


def _to_blocks(system, y):
    index, mask = system.index, system.mask_np
    return y[0], jnp.asarray(np.where(mask > 0, np.asarray(y)[index], 0.0))


def test_applicable_to_boluses_and_infusions_with_the_grid_method(model):
    one = Schedule.repeated(7400.0, 1, 1000.0, ligand_nmol=100.0)
    assert fast_pbpk.applicable(model, one)
    assert not fast_pbpk.applicable(psma617(lesions=1), one)  # adaptive: the reference
    assert fast_pbpk.applicable(model, Schedule.repeated(7400.0, 2, 1000.0))  # several boluses
    # infusions (tests/inference/test_fast_pbpk_multicycle.py): shorter than the 168 h switch
    times = np.array([1.0, 24.0])
    assert fast_pbpk.applicable(model, Schedule.repeated(7400.0, 1, 1000.0, infusion_h=0.5),
                                times)
    assert not fast_pbpk.applicable(
        model, Schedule.repeated(7400.0, 1, 1000.0, infusion_h=200.0), times)


def test_block_right_hand_side_equals_the_model_fluxes(model):
    params = model.default_params()
    system = fast_pbpk._Arrowhead(model.layout, params)
    rng = np.random.default_rng(1)
    n = model.layout.n_sub
    for _ in range(5):
        y = _random_state(model, rng)
        full = jnp.concatenate([y, jnp.zeros(1)])
        reference = fluxes(model.layout, params, full, full)[:n - 1]
        dp, dx = system.f(*_to_blocks(system, y))
        np.testing.assert_allclose(system.to_flat(dp, dx), reference, rtol=1e-12, atol=1e-12)
        # the arrowhead pattern: the flat system has no coupling outside plasma + blocks
        np.testing.assert_allclose(system.to_flat(*_to_blocks(system, y)), y)


def test_block_elimination_solves_the_dense_rosenbrock_system(model):
    params = model.default_params()
    system = fast_pbpk._Arrowhead(model.layout, params)
    rng = np.random.default_rng(2)
    n = model.layout.n_sub

    def flat_rhs(y):
        full = jnp.concatenate([y, jnp.zeros(1)])
        return fluxes(model.layout, params, full, full)[:n - 1]

    y = _random_state(model, rng)
    jac = jax.jacfwd(flat_rhs)(y)
    rhs = jnp.asarray(rng.normal(size=n - 1))
    hg = 0.37
    dense = jnp.linalg.solve(jnp.eye(n - 1) - hg * jac, rhs)
    _, x = _to_blocks(system, y)
    factors = fast_pbpk._factor(1.0 - hg * system.a00, -hg * system.row, -hg * system.col,
                                jnp.eye(3) - hg * system.jac_blocks(x), system.mask)
    rp, rx = _to_blocks(system, rhs)
    kp, kx = fast_pbpk._block_solve(factors, -hg * system.row, rp, rx)
    np.testing.assert_allclose(system.to_flat(kp, kx), dense, rtol=1e-10, atol=1e-12)


def test_inverse_3x3_matches_numpy():
    m = np.random.default_rng(3).normal(size=(6, 3, 3)) + 3 * np.eye(3)
    np.testing.assert_allclose(fast_pbpk._inverse_3x3(jnp.asarray(m)), np.linalg.inv(m),
                               rtol=1e-12, atol=1e-12)


def test_hermite_quadrature_is_exact_for_cubics():
    t = jnp.asarray(np.sort(np.random.default_rng(4).uniform(0, 5, 9)))
    value = 2 * t**3 - t**2 + 3 * t - 1
    slope = 6 * t**2 - 2 * t + 3

    def primitive(s):
        return 0.5 * s**4 - s**3 / 3 + 1.5 * s**2 - s

    exact = primitive(t[-1]) - primitive(t[0])
    assert float(fast_pbpk._integral(t, value, slope)) == pytest.approx(float(exact), rel=1e-12)


@pytest.fixture(scope="module")
def reference():
    """Adaptive Kvaerno5 at rtol 1e-10: activities and TIAs of ORGANS."""
    model = psma617(lesions=1, rtol=1e-10, atol=1e-9)
    params = model.default_params()

    def run(ligand):
        sim = model.simulate(params, Schedule.repeated(7400.0, 1, 1000.0, ligand_nmol=ligand),
                             TIMES)
        return (np.stack([np.asarray(sim.activity_mbq[o]) for o in ORGANS]),
                np.asarray([float(sim.tia_mbq_h[o]) for o in ORGANS]))

    return params, run


@pytest.mark.parametrize(("ligand_nmol", "activity_tol", "tia_tol"), [
    (100.0, 1e-2, 1e-3), pytest.param(2000.0, 2e-2, 3e-3, marks=pytest.mark.slow)])
def test_fast_solution_matches_adaptive_reference(model, reference, ligand_nmol, activity_tol,
                                                  tia_tol):
    """hot = c e^{−λt} total (module docstring) plus the grid scheme: activities before and
    after the 168 h switch (the late branch), plasma and a tissue without receptors."""
    params, run = reference
    activity_ref, tia_ref = run(ligand_nmol)
    schedule = Schedule.repeated(7400.0, 1, 1000.0, ligand_nmol=ligand_nmol)
    activity, tia, ok = jax.jit(lambda p: fast_pbpk.solve_bolus(model, p, schedule, TIMES,
                                                                ORGANS))(params)
    assert bool(ok)
    np.testing.assert_allclose(np.asarray(tia), tia_ref, rtol=tia_tol)
    # atol 1 ppm of the administered activity: at 1000 h the salivary/liver activities are ~1e-6
    # MBq, where the frozen late occupancy of the 2000-nmol case differs by ~2.6 % (fu_plasma 0.3)
    np.testing.assert_allclose(np.asarray(activity), activity_ref, rtol=activity_tol,
                               atol=1e-6 * 7400.0)


def test_fast_path_is_what_twin_models_use_and_agrees_with_the_grid_solver():
    twin = pbpk_model(organs=("kidneys", "liver"), lesions=("lesion_1",))
    assert twin.forward.method == "grid"  # pbpk_model builds the grid solver for fitting
    schedule = Schedule.repeated(7400.0, 1, 1000.0, ligand_nmol=100.0)
    organs = ("kidneys", "liver", "lesion_1")
    x = jnp.asarray(twin.prior_loc) + 0.1
    fast = twin.simulate(x, schedule, TIMES, organs)
    slow = twin.simulate(x, schedule, TIMES, organs, fast=False)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-2)
    np.testing.assert_allclose(fast[1], slow[1], rtol=2e-3)


@pytest.mark.parametrize(("n_cycles", "interval_h", "times_h", "infusion_h"), [
    (1, 1000.0, (4.0, 24.0, 96.0, 168.0), 0.0),
    # a 30-min infusion, one sample during it (the source term and its quadrature)
    (1, 1000.0, (0.25, 4.0, 24.0, 96.0, 168.0), 0.5),
    # the multi-bolus path (solve_boluses): three cycles, data in the first two
    pytest.param(3, 1008.0, (4.0, 24.0, 96.0, 1012.0, 1032.0, 1104.0), 0.0,
                 marks=pytest.mark.slow),
])
def test_fast_gradient_matches_finite_differences(n_cycles, interval_h, times_h, infusion_h):
    twin = pbpk_model(organs=("kidneys", "salivary_glands"), lesions=("lesion_1",))
    schedule = Schedule.repeated(7400.0, n_cycles, interval_h, ligand_nmol=100.0,
                                 infusion_h=infusion_h)
    assert fast_pbpk.applicable(twin.forward, schedule, np.array(times_h))  # sampler path
    times = jnp.array(times_h)
    organs = ("kidneys", "salivary_glands", "lesion_1")

    def loss(x):
        activity, tia, _ = twin.simulate(x, schedule, times, organs)
        return jnp.sum(jnp.log(activity)) + jnp.sum(jnp.log(tia))

    x = jnp.asarray(twin.prior_loc)
    grad = np.asarray(jax.jit(jax.grad(loss))(x))
    f = jax.jit(loss)
    eps = 1e-5
    for i in range(x.size):
        e = jnp.zeros_like(x).at[i].set(eps)
        fd = (float(f(x + e)) - float(f(x - e))) / (2 * eps)
        assert grad[i] == pytest.approx(fd, rel=1e-4, abs=1e-6), i
