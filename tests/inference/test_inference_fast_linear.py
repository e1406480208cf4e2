"""The fast bolus solver of the reduced linear model against the model's own expm solution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdt.inference import reduced_model
from tdt.inference.fast_linear import applicable

pbpk = pytest.importorskip("tdt.pbpk")

ORGANS = ("kidneys", "salivary_glands", "liver", "lesion_1")


@pytest.fixture(scope="module")
def twin():
    return reduced_model(ORGANS)


def test_matches_matrix_exponential_solution(twin, rng):
    # Independent reference: tdt.pbpk's Van Loan block-expm solver of the same generator.
    schedule = pbpk.Schedule([pbpk.Administration(0.0, 7400.0, 100.0),
                              pbpk.Administration(1008.0, 6000.0, 100.0)])
    times = jnp.asarray([0.5, 4.0, 24.0, 96.0, 168.0, 1008.0, 1010.0, 1200.0])
    assert applicable(twin.forward, schedule)
    for draw in range(3):
        log_theta = jnp.asarray(twin.prior_loc + twin.prior_chol @ rng.normal(size=twin.n_params))
        fast = twin.simulate(log_theta, schedule, times, ORGANS, fast=True)
        slow = twin.simulate(log_theta, schedule, times, ORGANS, fast=False)
        np.testing.assert_allclose(fast[0], slow[0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fast[1], slow[1], rtol=1e-9)
        assert bool(fast[2])
        if draw > 0:
            continue  # one gradient check: compiling the expm gradient is costly

        def loss(lt, fast_path):
            act, tia, _ = twin.simulate(lt, schedule, times, ORGANS, fast=fast_path)
            return jnp.sum(jnp.log(act + 1.0)) + jnp.sum(jnp.log(tia))

        g_fast = jax.grad(loss)(log_theta, True)
        g_slow = jax.grad(loss)(log_theta, False)
        np.testing.assert_allclose(g_fast, g_slow, rtol=1e-7, atol=1e-9)


def test_single_organ_bolus_closed_form():
    # One organ, no return: with k_out -> tiny the organ integrates plasma. Check instead the
    # analytic two-compartment solution (Gibaldi & Perrier, Pharmacokinetics, 2nd ed., ch. 2):
    # for plasma P and organ O with P -> O (k1), O -> P (k2), P -> urine (k0), the TIA of the
    # organ to infinity (plus decay λ) is A k1 / ((k0+k1+λ)(k2+λ) - k1 k2).
    twin = reduced_model(("kidneys",))
    schedule = pbpk.Schedule([pbpk.Administration(0.0, 1000.0, 0.0)])
    params = {"k_urine": 0.8, "k_in_kidneys": 0.05, "k_out_kidneys": 0.02}
    log_theta = jnp.log(jnp.asarray([params[n] for n in twin.sampled]))
    _, tia, _ = twin.simulate(log_theta, schedule, jnp.asarray([1.0]), ("kidneys",), fast=True)
    lam = twin.forward.decay_constant_per_h
    k0, k1, k2 = params["k_urine"], params["k_in_kidneys"], params["k_out_kidneys"]
    expected = 1000.0 * k1 / ((k0 + k1 + lam) * (k2 + lam) - k1 * k2)
    assert float(tia[0]) == pytest.approx(expected, rel=1e-10)


def test_infusion_schedule_uses_model_solver(twin):
    schedule = pbpk.Schedule([pbpk.Administration(0.0, 7400.0, 100.0, infusion_h=0.5)])
    assert not applicable(twin.forward, schedule)
