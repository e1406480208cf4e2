"""Laplace-metric NUTS and the vectorised hierarchical model (tdt.inference._laplace, tdt.inference._nuts,
tdt.inference._pymc_models.population_coordinates / build_population_model)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from inference_biexp import BiExponential

from tdt.inference import MeasurementModel, OrganSeries, PatientData, custom_model
from tdt.inference import _pymc_models as pymc_models
from tdt.inference._laplace import laplace_metric, spiked_correction

pytest.importorskip("tdt.pbpk")
TIMES = np.array([4.0, 24.0, 48.0, 96.0, 168.0])


def _gaussian(mean, cov):
    prec = jnp.asarray(np.linalg.inv(cov))
    m = jnp.asarray(mean)
    return lambda x: 0.5 * (x - m) @ prec @ (x - m)


def test_laplace_metric_is_exact_for_a_gaussian():
    # For a Gaussian log-density the mode is the mean and the inverse Hessian the covariance
    # (analytic); L-BFGS + jax.hessian must reproduce both.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + 0.5 * np.eye(4)
    mean = rng.normal(size=4)
    x_mode, inverse, chol = laplace_metric(_gaussian(mean, cov), jnp.zeros(4))
    np.testing.assert_allclose(np.asarray(x_mode), mean, atol=1e-6)
    np.testing.assert_allclose(np.asarray(inverse), cov, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(chol @ chol.T), cov, rtol=1e-8, atol=1e-10)


def test_laplace_metric_reports_a_non_finite_start():
    assert laplace_metric(lambda x: jnp.sum(x) + jnp.inf, jnp.zeros(2)) is None


def test_spiked_correction_keeps_laplace_and_fixes_a_wide_direction():
    # Draws from N(0, chol cholᵀ) except one whitened direction with variance 9: the corrected
    # metric has variance ~9 along that direction and equals the Laplace one elsewhere
    # (Marchenko-Pastur bulk set to 1).
    rng = np.random.default_rng(1)
    d, n = 30, 4000
    chol = np.tril(rng.normal(size=(d, d)) * 0.1) + np.eye(d)
    y = rng.normal(size=(n, d))
    direction = np.zeros(d)
    direction[3] = 1.0
    y[:, 3] *= 3.0
    draws = y @ chol.T
    inverse, n_spikes = spiked_correction(draws, np.zeros(d), chol)
    assert n_spikes >= 1
    whitened = np.linalg.solve(chol, np.linalg.solve(chol, np.asarray(inverse)).T)
    assert whitened[3, 3] == pytest.approx(9.0, rel=0.1)
    other = np.delete(np.delete(whitened, 3, 0), 3, 1)
    np.testing.assert_allclose(other, np.eye(d - 1), atol=0.12)


def test_reduced_population_coordinates():
    # log k_in_o = log k_urine + log_ratio_o; washouts and k_urine unchanged (by construction
    # of w); the identified coordinates are centred, the common scale non-centred.
    from tdt.inference import reduced_model

    twin = reduced_model(("kidneys", "liver"))
    a, names_w, centred = pymc_models.population_coordinates(twin)
    names = list(twin.sampled)
    rng = np.random.default_rng(2)
    log_theta = rng.normal(size=len(names))
    w = np.linalg.solve(a, log_theta)
    u = names.index("k_urine")
    for i, name in enumerate(names):
        if name.startswith("k_in_"):
            assert w[i] == pytest.approx(log_theta[i] - log_theta[u])
            assert names_w[i] == "log_ratio_" + name[len("k_in_"):]
            assert centred[i]
        else:
            assert w[i] == pytest.approx(log_theta[i])
    assert not centred[u]
    ident, _, none_centred = pymc_models.population_coordinates(
        custom_model(BiExponential(("kidneys",))))
    assert np.array_equal(ident, np.eye(3)) and not none_centred.any()


def _datasets():
    rng = np.random.default_rng(3)
    out = []
    for p in range(3):
        out.append(PatientData({
            "kidneys": OrganSeries(TIMES, 300 * np.exp(-0.02 * TIMES + rng.normal(0, .1, 5))),
            "lesion_1": OrganSeries(TIMES, 20 * np.exp(-0.01 * TIMES + rng.normal(0, .1, 5)),
                                    volume_ml=5.0 + p)}, patient_id=f"p{p}"))
    return out


def test_vectorised_population_model_matches_per_patient_model(monkeypatch):
    # Second method: the per-patient loop model (one set of nodes per patient) and the
    # vectorised model have the same log-density at corresponding points (identity
    # coordinates for a custom model: tau_w = tau, z_noncentred = z).
    twin = custom_model(BiExponential(("kidneys", "lesion_1")),
                        sampled=("f_kidneys", "kb_kidneys", "f_lesion_1", "kb_lesion_1"),
                        sd_log=0.5)
    data = _datasets()
    meas = MeasurementModel()
    schedules = [d.resolve_schedule() for d in data]
    vec = pymc_models.build_population_model(data, twin, meas, schedules)
    assert "log_calibration" in vec.named_vars and "z_noncentred" in vec.named_vars
    monkeypatch.setattr(pymc_models, "same_protocol", lambda *a: False)
    loop = pymc_models.build_population_model(data, twin, meas, schedules)
    assert "log_calibration_0" in loop.named_vars
    rng = np.random.default_rng(4)
    mu = twin.prior_loc + 0.1 * rng.normal(size=4)
    log_tau = np.log(0.3 + 0.1 * rng.random(4))
    z = rng.normal(size=(3, 4))
    cal = 0.02 * rng.normal(size=(3, 1))
    rc = np.log(0.5) + 0.05 * rng.normal(size=(3, 1))
    log_sd = np.log(0.12)
    point_vec = {"mu": mu, "tau_w_log__": log_tau, "z_noncentred": z,
                 "log_calibration": cal, "log_recovery": rc, "noise_sd_log__": log_sd}
    point_loop = {"mu": mu, "tau_log__": log_tau, "z": z, "noise_sd_log__": log_sd}
    for p in range(3):
        point_loop[f"log_calibration_{p}"] = cal[p]
        point_loop[f"log_recovery_{p}"] = rc[p]
    lp_vec = vec.compile_logp()(point_vec)
    lp_loop = loop.compile_logp()(point_loop)
    assert np.isfinite(lp_vec)
    assert lp_vec == pytest.approx(lp_loop, rel=1e-10)


def test_nan_on_solver_error_turns_equinox_errors_into_nan():
    # lineax's transpose rule solves with throw=True (an equinox runtime error); with
    # tdt.inference imported (and inside the sampler context) it must give NaN (a rejected
    # proposal) instead of raising.
    import equinox as eqx

    from tdt.inference._bridge import _USER_MODE, nan_on_solver_error

    if _USER_MODE is not None:
        pytest.skip("EQX_ON_ERROR set by the user")

    def f(x):
        return eqx.error_if(x, x > 0, "boom")

    with nan_on_solver_error():
        assert np.isnan(float(jax.jit(lambda x: f(x) + 1.0)(jnp.asarray(1.0))))
    assert np.isnan(float(jax.jit(lambda x: f(x) * 2.0)(jnp.asarray(1.0))))
    assert float(jax.jit(f)(jnp.asarray(-1.0))) == -1.0
