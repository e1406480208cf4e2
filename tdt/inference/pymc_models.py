"""PyMC models: one patient (:func:`build_patient_model`) and a population
(:func:`build_population_model`, partial pooling).

The kinetic forward model enters through :func:`tdt.inference.bridge.wrapped_forward`
(``pytensor.wrap_jax``); the measurement model is :mod:`tdt.inference.measurement`.
Variable names (stable, used by :class:`tdt.inference.Posterior`):

``z`` (param)            standard-normal latent of the kinetic parameters (non-centred)
``log_theta`` / ``theta`` (param)   log / value of the sampled kinetic parameters
``tia_mbq_h`` (organ)    model time-integrated activity, MBq·h (true activity, no RC/calibration)
``log_calibration`` (session), ``log_recovery`` (recovery_organ), ``noise_sd``
``log_activity`` (obs)   the observed log activities
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor import wrap_jax

from tdt.inference.bridge import forward_function, wrapped_forward
from tdt.inference.data import PatientData
from tdt.inference.measurement import MeasurementModel, has_recovery, recovery_coefficients
from tdt.inference.models import TwinModel


def _measurement_terms(data: PatientData, measurement: MeasurementModel, log_pred, suffix: str,
                       organ_dim: str, sigma=None):
    """Add calibration, recovery and likelihood of one patient to the current model."""
    flat = data.flat()
    if data.calibration_sd > 0:
        log_cal = pm.Normal(f"log_calibration{suffix}", 0.0, data.calibration_sd,
                            dims=f"session{suffix}")
    else:
        log_cal = pt.zeros(len(data.sessions))
    rc0 = recovery_coefficients(data, measurement)
    mask = has_recovery(data, measurement)
    log_rc = pt.as_tensor_variable(np.log(rc0))
    if mask.any() and measurement.recovery_sd > 0:
        free = pm.Normal(f"log_recovery{suffix}", np.log(rc0[mask]), measurement.recovery_sd,
                         dims=f"recovery_organ{suffix}")
        log_rc = pt.set_subtensor(log_rc[np.flatnonzero(mask)], free)
    mu = (log_pred + log_cal[flat["session_index"]] + log_rc[flat["organ_index"]])
    if sigma is None:
        if measurement.fixed_noise_sd is not None:
            sigma = measurement.fixed_noise_sd
        else:
            sigma = pm.LogNormal(f"noise_sd{suffix}", np.log(measurement.noise_sd_median),
                                 measurement.noise_sd_sd_log)
    observed = np.log(flat["activity_mbq"])
    if measurement.noise == "student_t":
        pm.StudentT(f"log_activity{suffix}", nu=measurement.nu, mu=mu, sigma=sigma,
                    observed=observed, dims=f"obs{suffix}")
    else:
        pm.Normal(f"log_activity{suffix}", mu=mu, sigma=sigma, observed=observed,
                  dims=f"obs{suffix}")


def _coords(data: PatientData, measurement: MeasurementModel, suffix: str = "") -> dict:
    mask = has_recovery(data, measurement)
    flat = data.flat()
    return {
        f"organ{suffix}": list(data.organ_names),
        f"session{suffix}": list(data.sessions),
        f"recovery_organ{suffix}": [o for o, m in zip(data.organ_names, mask, strict=True) if m],
        f"obs{suffix}": [
            f"{data.organ_names[o]}@{data.times_h[t]:g}h"
            for o, t in zip(flat["organ_index"], flat["time_index"], strict=True)
        ],
    }


def build_patient_model(data: PatientData, twin: TwinModel, measurement: MeasurementModel,
                        schedule, forward=None) -> pm.Model:
    """PyMC model of one patient: lognormal kinetic prior, forward model, measurement model.

    ``forward``: PyTensor callable ``log_theta -> (log_pred, tia, ok)``; default the JAX model
    through ``pytensor.wrap_jax`` (:func:`wrapped_forward`). Benchmarks pass other solvers.
    """
    coords = {"param": list(twin.sampled), **_coords(data, measurement)}
    with pm.Model(coords=coords) as model:
        z = pm.Normal("z", 0.0, 1.0, dims="param")
        log_theta = pm.Deterministic(
            "log_theta", pt.as_tensor_variable(twin.prior_loc) + pt.dot(twin.prior_chol, z),
            dims="param")
        pm.Deterministic("theta", pt.exp(log_theta), dims="param")
        forward = forward or wrapped_forward(twin, data, schedule)
        log_pred, tia, ok = forward(log_theta)
        pm.Deterministic("tia_mbq_h", tia, dims="organ")
        pm.Potential("solver_ok", pt.switch(pt.gt(ok, 0.5), 0.0, -np.inf))
        _measurement_terms(data, measurement, log_pred, "", "organ")
    return model


def build_population_model(datasets: Sequence[PatientData], twin: TwinModel,
                           measurement: MeasurementModel, schedules: Sequence,
                           tau_scale: float = 0.5, shared_noise: bool = True) -> pm.Model:
    """Hierarchical model (partial pooling) over patients.

    ``mu`` (param) ~ Normal(prior_loc, prior SD): population mean of log θ;
    ``tau`` (param) ~ HalfNormal(tau_scale): between-patient SD of log θ;
    patient ``p``: log θ_p = mu + tau · z_p, z_p ~ Normal(0, I) (non-centred).
    Each patient keeps its own calibration, recovery and data; the noise SD is shared by
    default (few points per patient).
    """
    prior_sd = np.sqrt(np.sum(twin.prior_chol**2, axis=1))
    coords = {"param": list(twin.sampled), "patient": [d.patient_id for d in datasets]}
    for p, data in enumerate(datasets):
        coords.update(_coords(data, measurement, suffix=f"_{p}"))
    with pm.Model(coords=coords) as model:
        mu = pm.Normal("mu", twin.prior_loc, prior_sd, dims="param")
        tau = pm.HalfNormal("tau", tau_scale, dims="param")
        z = pm.Normal("z", 0.0, 1.0, dims=("patient", "param"))
        log_theta = pm.Deterministic("log_theta", mu + tau * z, dims=("patient", "param"))
        sigma = None
        if shared_noise and measurement.fixed_noise_sd is None:
            sigma = pm.LogNormal("noise_sd", np.log(measurement.noise_sd_median),
                                 measurement.noise_sd_sd_log)
        batched = None
        if _one_protocol(datasets, schedules):
            # one vmapped forward op for all patients (one compilation, batched linear algebra)
            fn = forward_function(twin, datasets[0], schedules[0])
            batched = wrap_jax(jax.jit(jax.vmap(fn)))(
                pt.specify_shape(log_theta, (len(datasets), twin.n_params)))
        for p, (data, schedule) in enumerate(zip(datasets, schedules, strict=True)):
            if batched is not None:
                log_pred, tia, ok = (batched[0][p], batched[1][p], batched[2][p])
            else:
                log_pred, tia, ok = wrapped_forward(twin, data, schedule)(log_theta[p])
            pm.Deterministic(f"tia_mbq_h_{p}", tia, dims=f"organ_{p}")
            pm.Potential(f"solver_ok_{p}", pt.switch(pt.gt(ok, 0.5), 0.0, -np.inf))
            _measurement_terms(data, measurement, log_pred, f"_{p}", f"organ_{p}", sigma=sigma)
    return model


def _schedule_key(schedule):
    admins = getattr(schedule, "administrations", None)
    if not admins:
        return None
    return tuple((a.time_h, a.activity_mbq, a.ligand_nmol, a.infusion_h) for a in admins)


def _one_protocol(datasets: Sequence[PatientData], schedules: Sequence) -> bool:
    """True when every patient has the same organs, times and schedule (observations may
    differ): the forward model can then be vmapped over patients."""
    ref, key = datasets[0], _schedule_key(schedules[0])
    if key is None:
        return False
    for data, schedule in zip(datasets, schedules, strict=True):
        if _schedule_key(schedule) != key or data.organ_names != ref.organ_names:
            return False
        if any(not np.array_equal(data.organs[o].times_h, ref.organs[o].times_h)
               for o in ref.organ_names):
            return False
    return True
