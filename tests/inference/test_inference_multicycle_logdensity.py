"""The sampler's log density of a 2-cycle PSMA-617 patient (data after both cycles) on the
fast path (tdt.inference._fast_pbpk: 24-state arrowhead Rosenbrock, cycle 2 from the carried
state with the residual D) against the same PyMC model on the general grid solver of
tdt.pbpk (64 states, hot activity integrated as its own state, dense LU per step): an
independent implementation of the same scheme, so the two agree to the scheme's accuracy
(3.7e-3 pointwise, docs/pbpk.md), not to rounding."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdt.inference import MeasurementModel, OrganSeries, PatientData, pbpk_model
from tdt.inference._bridge import forward_function
from tdt.inference._pymc_models import build_patient_model
from tdt.pbpk import Schedule

ORGANS = ("kidneys", "lesion_1")
TIMES_H = np.array([4.0, 24.0, 96.0, 168.0])


@pytest.mark.slow
def test_two_cycle_log_density_matches_the_general_grid_solver():
    from benchmarks.bench_pbpk import GeneralSolver  # the benchmark's slow-solver baseline

    twin = pbpk_model(organs=("kidneys",), lesions=("lesion_1",))
    slow = dataclasses.replace(twin, forward=GeneralSolver(twin.forward))
    schedule = Schedule.repeated([7400.0, 6000.0], 2, 1008.0, ligand_nmol=[100.0, 300.0])
    times = np.concatenate([TIMES_H, TIMES_H + 1008.0])
    rng = np.random.default_rng(5)
    truth = jnp.asarray(twin.prior_loc + twin.prior_chol @ rng.normal(0.0, 0.5, twin.n_params))
    activity, _, ok = jax.jit(lambda x: twin.simulate(x, schedule, jnp.asarray(times),
                                                      ORGANS))(truth)
    assert bool(ok)
    series = {o: OrganSeries(times, np.asarray(activity[i]) * np.exp(rng.normal(0, 0.1, 8)),
                             volume_ml=10.0 if o == "lesion_1" else None)
              for i, o in enumerate(ORGANS)}
    data = PatientData(series, calibration_sd=0.03, schedule=schedule)

    # forward outputs at a point away from the truth
    point = jnp.asarray(twin.prior_loc + twin.prior_chol @ rng.normal(0.0, 0.7, twin.n_params))
    fast_out = jax.jit(forward_function(twin, data, schedule))(point)
    slow_out = jax.jit(forward_function(slow, data, schedule))(point)
    assert float(fast_out[2]) == 1.0 and float(slow_out[2]) == 1.0
    # log activities: the grid scheme's pointwise accuracy (3.7e-3 measured, both solvers)
    np.testing.assert_allclose(np.asarray(fast_out[0]), np.asarray(slow_out[0]), atol=1e-2)
    np.testing.assert_allclose(np.asarray(fast_out[1]), np.asarray(slow_out[1]), rtol=2e-3)

    # the whole log density (prior + calibration + likelihood) of the PyMC model
    fast_model = build_patient_model(data, twin, MeasurementModel(), schedule)
    slow_model = build_patient_model(data, slow, MeasurementModel(), schedule)
    values = fast_model.initial_point()
    values["z"] = np.linalg.solve(twin.prior_chol, np.asarray(point) - twin.prior_loc)
    lp_fast = float(fast_model.compile_logp()(values))
    lp_slow = float(slow_model.compile_logp()(values))
    assert np.isfinite(lp_fast)
    # |Δ log p| <= Σ |∂ log p/∂ log pred| |Δ log pred|: residuals / σ² ~ 10 per point,
    # |Δ log pred| <= 1e-2 on 16 points: a bound of ~1.6; asserted well inside it
    assert abs(lp_fast - lp_slow) < 0.5, (lp_fast, lp_slow)
