"""The native PyMC reduced model of benchmarks/bench_nutpie.py (the nutpie peer, issue 21).

Independent references: tdt's matrix-exponential path of the reduced linear model
(``TwinModel.simulate(..., fast=False)``: piecewise ``expm`` with the Van Loan integral, itself
tested against closed forms and SciPy ``solve_ivp`` in tests/pbpk/test_pbpk_solvers.py) for the
solution, and tdt's own PyMC model (JAX forward model through ``wrap_jax``) for the log-density
and its gradient. The peer must be the same statistical model, or its ESS/s says nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("numba")


@pytest.fixture(scope="module")
def standard():
    from benchmarks.bench_inference import _standard

    twin, data = _standard()
    return twin, data, data.resolve_schedule()


def _theta(twin):
    # away from the prior median, and distinct k_out (no repeated eigenvalue)
    offsets = 0.3 * np.sin(1.7 * np.arange(twin.n_params) + 0.4)
    return np.asarray(twin.prior_loc) + offsets


def test_native_solution_matches_expm_path(standard):
    import pytensor
    import pytensor.tensor as pt

    from benchmarks.bench_nutpie import native_forward

    twin, data, schedule = standard
    log_theta = _theta(twin)
    x = pt.dvector("log_theta")
    log_pred, tia, ok = native_forward(twin, data, schedule)(x)
    fn = pytensor.function([x], [log_pred, tia, ok], mode="NUMBA")
    got_log_pred, got_tia, got_ok = fn(log_theta)

    activity, ref_tia, _ = twin.simulate(jnp.asarray(log_theta), schedule,
                                         jnp.asarray(data.times_h), data.organ_names,
                                         fast=False)
    flat = data.flat()
    ref_pred = np.asarray(activity)[flat["organ_index"], flat["time_index"]]
    assert bool(got_ok)
    np.testing.assert_allclose(np.exp(got_log_pred), ref_pred, rtol=1e-8)
    np.testing.assert_allclose(got_tia, np.asarray(ref_tia), rtol=1e-8)


def test_native_logp_and_gradient_match_tdt_model(standard):
    from benchmarks.bench_nutpie import native_model
    from tdt.inference import MeasurementModel
    from tdt.inference._pymc_models import build_patient_model

    twin, data, schedule = standard
    native = native_model(twin, data)
    reference = build_patient_model(data, twin, MeasurementModel(), schedule)
    point = native.initial_point()
    point["z"] = np.linalg.solve(twin.prior_chol, _theta(twin) - twin.prior_loc)
    rng = np.random.default_rng(3)
    for name in point:
        if name != "z":
            point[name] = point[name] + 0.05 * rng.standard_normal(np.shape(point[name]))

    # default (C / Python) mode: the numba compile of the whole gradient costs minutes on the
    # shared 2-core machine; the graph is the same one nutpie compiles with numba
    logp_native = native.compile_logp()(point)
    logp_ref = reference.compile_logp()(point)
    # identical priors and likelihood terms: equal, the additive constant is 0
    np.testing.assert_allclose(logp_native, logp_ref, rtol=1e-10, atol=1e-8)

    grad_native = native.compile_dlogp()(point)
    grad_ref = reference.compile_dlogp()(point)
    np.testing.assert_allclose(grad_native, grad_ref, rtol=1e-7, atol=1e-8)
    assert jax.config.jax_enable_x64
