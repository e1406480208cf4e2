"""Administrations after the last observation are left out of the likelihood
(tdt.inference._bridge.likelihood_schedule) and the reported TIA still covers the whole
schedule. Reference: the log density with every administration solved inside the likelihood
(the activity at t depends only on the administrations at or before t) and the model's own
matrix-exponential solve of the full schedule (``fast=False``) for the TIA."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from tdt.inference import MeasurementModel, OrganSeries, PatientData, reduced_model
from tdt.inference._bridge import likelihood_schedule, wrapped_forward
from tdt.inference._pm_graph import constrained_draws_fn
from tdt.inference._pymc_models import build_patient_model
from tdt.pbpk import Schedule

ORGANS = ("kidneys", "liver")
INTERVAL_H = 1008.0


def _data(imaged_cycles: int, schedule) -> PatientData:
    times = np.concatenate([np.array([4.0, 24.0, 96.0]) + k * INTERVAL_H
                            for k in range(imaged_cycles)])
    rng = np.random.default_rng(3)
    return PatientData({o: OrganSeries(times, 50.0 * np.exp(-0.01 * (times % INTERVAL_H))
                                       * np.exp(rng.normal(0, 0.1, times.size)))
                        for o in ORGANS}, schedule=schedule)


def test_later_cycles_leave_the_likelihood_and_stay_in_the_tia():
    schedule = Schedule.repeated([7400.0, 7000.0, 6000.0, 5000.0], 4, INTERVAL_H)
    data = _data(2, schedule)
    short = likelihood_schedule(schedule, data)
    assert [a.time_h for a in short.administrations] == [0.0, INTERVAL_H]
    assert likelihood_schedule(schedule, _data(4, schedule)) is None  # nothing to leave out

    twin = reduced_model(ORGANS)
    model = build_patient_model(data, twin, MeasurementModel(), schedule)
    every_cycle = build_patient_model(data, twin, MeasurementModel(), schedule,
                                      forward=wrapped_forward(twin, data, schedule))
    point = model.initial_point()
    point["z"] = np.linspace(-0.5, 0.5, twin.n_params)
    np.testing.assert_allclose(model.compile_logp()(point), every_cycle.compile_logp()(point),
                               rtol=1e-12)
    # the deterministics as the samplers' post-processing computes them
    flat, unravel = ravel_pytree([jnp.asarray(point[v.name]) for v in model.value_vars])
    values = constrained_draws_fn(model, unravel)(flat[None, None, :])
    tia, log_theta = values["tia_mbq_h"][0, 0], values["log_theta"][0, 0]
    np.testing.assert_allclose(log_theta, twin.prior_loc + twin.prior_chol @ point["z"])
    _, reference, ok = twin.simulate(jnp.asarray(log_theta), schedule, jnp.asarray([1.0]),
                                     ORGANS, fast=False)
    assert bool(ok)
    np.testing.assert_allclose(tia, np.asarray(reference), rtol=1e-8)
    # the TIA of cycles 1-2 alone is clearly smaller: the later cycles are in the reported TIA
    _, two_cycles, _ = twin.simulate(jnp.asarray(log_theta), short, jnp.asarray([1.0]), ORGANS)
    assert np.all(np.asarray(two_cycles) < 0.7 * tia)
