"""Receptor PBPK (diffrax): independent SciPy solution of hand-written equations, mass balance,
gradients, bad input (clinical Gy/GBq ranges and the sink effect: test_pbpk_clinical_ranges.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tdt.errors import InputError
from tdt.pbpk import Administration, PbpkModel, Schedule, Tissue, psma617
from tdt.pbpk._parameters import load_table
from tdt.physics import nuclide

LAMBDA = nuclide("Lu-177").decay_constant_per_h


def small_model(**options) -> PbpkModel:
    """Kidneys (receptors) + remainder (no receptors): the smallest model with every mechanism."""
    table, _ = load_table("pbpk_psma617")
    tissues = (Tissue("kidneys", True), Tissue("remainder", False))
    return PbpkModel("small", tissues, "Lu-177", table, "pbpk_psma617", **options)


def scipy_reference(p: dict, ligand_nmol: float, activity_mbq: float, t_eval):
    """The model equations written out by hand (docs/pbpk.md) and solved with SciPy Radau.

    States: total peptide [P, Fk, Bk, Ik, Fr, U] (nmol), then hot activity (same order, MBq).
    """
    vint_k = p["fint_kidneys"] * p["V_kidneys"]
    vint_r = p["fint_remainder"] * p["V_remainder"]
    r_tot = p["R_kidneys"] * p["V_kidneys"] / 1000.0

    def flows(total, x):
        cp, ck, cr = x[0] / p["V_plasma"], x[1] / vint_k, x[4] / vint_r
        bind = p["kon"] * ck * max(r_tot - total[2], 0.0) - p["koff"] * x[2]
        ex_k, ex_r = p["Q_kidneys"] * (cp - ck), p["Q_remainder"] * (cp - cr)
        gfr = p["fu_plasma"] * p["GFR"] * cp
        return np.array([
            -ex_k - ex_r - gfr,
            ex_k - bind + p["krel_kidneys"] * x[3],
            bind - p["kint_kidneys"] * x[2],
            p["kint_kidneys"] * x[2] - p["krel_kidneys"] * x[3] + p["f_reabs"] * gfr,
            ex_r,
            (1 - p["f_reabs"]) * gfr,
        ])

    def rhs(t, y):
        total, hot = y[:6], y[6:12]
        return np.concatenate([flows(total, total), flows(total, hot) - LAMBDA * hot, hot])

    y0 = np.zeros(18)
    y0[0], y0[6] = ligand_nmol, activity_mbq
    sol = solve_ivp(rhs, (0.0, float(t_eval[-1])), y0, method="Radau", rtol=1e-10, atol=1e-10,
                    t_eval=t_eval)
    return sol.y.T


def test_small_model_matches_independent_scipy_solution():
    model = small_model()
    p = model.default_params()
    t = np.array([0.0, 0.05, 0.5, 2.0, 12.0, 48.0, 200.0])
    sim = model.simulate(p, Schedule([Administration(0.0, 7400.0, 150.0)]), t)
    assert bool(sim.ok) and int(sim.result_code) == 0
    ref = scipy_reference(p, 150.0, 7400.0, t)
    for name, cols in (("plasma", [6]), ("kidneys", [7, 8, 9]), ("remainder", [10]),
                       ("urine", [11])):
        np.testing.assert_allclose(sim.activity_mbq[name], ref[:, cols].sum(axis=1),
                                   rtol=1e-5, atol=1e-5 * 7400.0, err_msg=name)
    # running integral (solver-integrated) of the kidney hot activity at 200 h
    window = np.asarray(sim.decayed_mbq)[-1] / LAMBDA
    assert window == pytest.approx(ref[-1, 12:18].sum(), rel=1e-5)
    assert np.max(np.abs(np.asarray(sim.mass_balance_residual()))) < 1e-8


def test_bad_input_names_the_field():
    model = small_model()
    p = model.default_params()
    schedule = Schedule([Administration(0.0, 100.0, 10.0)])
    with pytest.raises(InputError, match="V_kidneys"):
        model.simulate(p | {"V_kidneys": -1.0}, schedule, [1.0])
    with pytest.raises(InputError, match="kint_kidneys"):
        model.simulate(p | {"kint_kidneys": -0.1}, schedule, [1.0])
    with pytest.raises(InputError, match="f_reabs"):
        model.simulate(p | {"f_reabs": 1.5}, schedule, [1.0])
    with pytest.raises(InputError, match="R_spleen"):
        model.simulate(p | {"R_spleen": 1.0}, schedule, [1.0])
    with pytest.raises(InputError, match="tumour_a"):
        psma617(lesions=("tumour_a",))


@pytest.mark.slow
def test_mass_balance_multicycle_with_infusion():
    model = psma617(lesions=2)
    schedule = Schedule([Administration(0.0, 7400.0, 150.0, 0.5),
                         Administration(1008.0, 6000.0, 300.0),
                         Administration(2016.0, 7400.0, 150.0, 0.25)])
    times = jnp.linspace(-1.0, 3000.0, 41)
    sim = model.simulate(model.default_params(), schedule, times)
    assert bool(sim.ok)
    assert np.max(np.abs(np.asarray(sim.mass_balance_residual()))) < 1e-8
    windows = np.asarray(sim.tia_by_administration_mbq_h["kidneys"])
    assert windows.sum() == pytest.approx(float(sim.tia_mbq_h["kidneys"]), rel=1e-10)


@pytest.mark.slow
def test_grad_of_kidney_tia_matches_finite_differences():
    model = small_model(rtol=1e-10, atol=1e-8, max_steps=50000)
    params = model.default_params()
    schedule = Schedule([Administration(0.0, 7400.0, 150.0)])
    fitted = ("R_kidneys", "kint_kidneys", "krel_kidneys", "f_reabs", "GFR", "kon")

    def kidney_tia(p):
        return model._jitted(p, schedule, jnp.array([1.0])).tia_mbq_h["kidneys"]

    assert bool(model._jitted(params, schedule, jnp.array([1.0])).ok)
    grad = jax.grad(kidney_tia)({k: jnp.asarray(v) for k, v in params.items()})
    for name in fitted:
        h = 1e-4 * params[name]
        up = float(kidney_tia({k: jnp.asarray(v) for k, v in (params | {name: params[name] + h}).items()}))
        down = float(kidney_tia({k: jnp.asarray(v) for k, v in (params | {name: params[name] - h}).items()}))
        fd = (up - down) / (2 * h)
        assert float(grad[name]) == pytest.approx(fd, rel=1e-4, abs=1e-9 * abs(up)), name


@pytest.mark.slow
def test_failure_is_reported_not_raised():
    """A solve that cannot finish within max_steps is flagged (ok False, code != 0)."""
    model = small_model(max_steps=3)
    sim = model.simulate(model.default_params(), Schedule([Administration(0.0, 7400.0, 150.0)]),
                         [1.0, 10.0])
    assert not bool(sim.ok)
    assert int(sim.result_code) != 0


def test_carrier_free_specific_activity():
    """177Lu: A = λN with T½ 6.647 d (ICRP 107) -> ~727 MBq/nmol (7.4 GBq ≈ 10.2 nmol)."""
    from tdt.pbpk import specific_activity_mbq_per_nmol

    lam_per_s = np.log(2) / (6.647 * 86400.0)
    expected = lam_per_s * 6.02214076e23 * 1e-9 / 1e6
    assert specific_activity_mbq_per_nmol(LAMBDA) == pytest.approx(expected, rel=1e-3)
