"""PyMC models: one patient (:func:`build_patient_model`) and a population
(:func:`build_population_model`, partial pooling).

The kinetic forward model enters through :func:`tdt.inference._bridge.wrapped_forward`
(``pytensor.wrap_jax``); the measurement model is :mod:`tdt.inference._measurement`.
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

from tdt.errors import InputError
from tdt.inference._bridge import (
    forward_function,
    likelihood_schedule,
    schedule_amounts,
    wrapped_forward,
    wrapped_tia,
)
from tdt.inference._data import PatientData
from tdt.inference._measurement import (
    MeasurementModel,
    free_recovery,
    recovery_coefficients,
    recovery_sds,
)
from tdt.inference._models import TwinModel


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
    mask = free_recovery(data, measurement)
    log_rc = pt.as_tensor_variable(np.log(rc0))
    if mask.any():
        # per-VOI SD (OrganSeries.recovery_sd, else the flat MeasurementModel.recovery_sd)
        sd = pt.as_tensor_variable(recovery_sds(data, measurement)[mask])
        free = pm.Normal(f"log_recovery{suffix}", np.log(rc0[mask]), sd,
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
    mask = free_recovery(data, measurement)
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


#: name of the model data holding the schedule's amounts (``schedule_input=True``)
SCHEDULE_AMOUNTS = "schedule_amounts"


def build_patient_model(data: PatientData, twin: TwinModel, measurement: MeasurementModel,
                        schedule, forward=None, schedule_input: bool = False) -> pm.Model:
    """PyMC model of one patient: lognormal kinetic prior, forward model, measurement model.

    ``forward``: PyTensor callable ``log_theta -> (log_pred, tia, ok)``; default the JAX model
    through ``pytensor.wrap_jax`` (:func:`wrapped_forward`). Benchmarks pass other solvers.
    By default the likelihood solves only the administrations up to the last observation
    (:func:`tdt.inference._bridge.likelihood_schedule`); ``tia_mbq_h`` is then a separate
    deterministic over the whole schedule, evaluated after sampling, not in the log density.
    ``schedule_input=True``: the activities and ligand amounts of ``schedule`` are the model's
    data ``schedule_amounts`` (2, n_admin) instead of constants of the forward model, so that a
    compiled program can take them as an input (:class:`tdt.inference.LaplaceProgram`).
    """
    coords = {"param": list(twin.sampled), **_coords(data, measurement)}
    with pm.Model(coords=coords) as model:
        z = pm.Normal("z", 0.0, 1.0, dims="param")
        log_theta = pm.Deterministic(
            "log_theta", pt.as_tensor_variable(twin.prior_loc) + pt.dot(twin.prior_chol, z),
            dims="param")
        pm.Deterministic("theta", pt.exp(log_theta), dims="param")
        inputs = (log_theta,)
        if schedule_input:
            if forward is not None:
                raise InputError("build_patient_model: schedule_input needs the default forward")
            inputs += (pm.Data(SCHEDULE_AMOUNTS, schedule_amounts(schedule)),)
        short = likelihood_schedule(schedule, data) if forward is None else None
        forward = forward or wrapped_forward(twin, data, short or schedule, schedule_input)
        log_pred, tia, ok = forward(*inputs)
        if short is not None:
            tia = wrapped_tia(twin, data, schedule, schedule_input)(*inputs)
        pm.Deterministic("tia_mbq_h", tia, dims="organ")
        pm.Potential("solver_ok", pt.switch(pt.gt(ok, 0.5), 0.0, -np.inf))
        _measurement_terms(data, measurement, log_pred, "", "organ")
    return model


def build_population_model(datasets: Sequence[PatientData], twin: TwinModel,
                           measurement: MeasurementModel, schedules: Sequence,
                           tau_scale: float = 0.5, shared_noise: bool = True,
                           centred: bool = False) -> pm.Model:
    """Hierarchical model (partial pooling) over patients.

    ``mu`` (param) ~ Normal(prior_loc, prior SD): population mean of log θ;
    ``tau`` (param) ~ HalfNormal(tau_scale): between-patient SD of log θ;
    patient ``p``: log θ_p = mu + tau · z_p, z_p ~ Normal(0, I) (non-centred).
    Each patient keeps its own calibration, recovery and data; the noise SD is shared by
    default (few points per patient).

    When every patient has the same protocol (organs, times, sessions, recovery VOIs, schedule;
    :func:`same_protocol`) the model is fully vectorised over patients: one batched forward Op
    (``jax.vmap``), ``log_calibration`` (patient, session), ``log_recovery`` (patient,
    recovery_organ), ``tia_mbq_h`` (patient, organ) and one 2-D likelihood — a handful of graph
    nodes instead of ~10 per patient (the compiled gradient is several times cheaper).
    Otherwise each patient gets its own nodes with suffix ``_<p>`` (``tia_mbq_h_<p>``, ...).
    """
    if same_protocol(datasets, schedules, measurement):
        return _vectorised_population_model(datasets, twin, measurement, schedules[0],
                                            tau_scale, shared_noise, centred)
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
        for p, (data, schedule) in enumerate(zip(datasets, schedules, strict=True)):
            log_pred, tia, ok = wrapped_forward(twin, data, schedule)(log_theta[p])
            pm.Deterministic(f"tia_mbq_h_{p}", tia, dims=f"organ_{p}")
            pm.Potential(f"solver_ok_{p}", pt.switch(pt.gt(ok, 0.5), 0.0, -np.inf))
            _measurement_terms(data, measurement, log_pred, f"_{p}", f"organ_{p}", sigma=sigma)
    return model


def population_coordinates(twin: TwinModel):
    """Linear coordinates ``w`` of log θ in which the hierarchy is placed: ``log θ = A w``.

    Returns ``(A (n_params, n_params), names_w, centred (bool per w))``.

    For the reduced linear model (sampled ``k_urine`` and ``k_in_o``/``k_out_o``): w =
    (log k_urine, log k_in_o − log k_urine, log k_out_o). When the plasma phase is not imaged
    the data fix every ratio k_in_o / k_urine (the fraction of the injected activity taken up
    by organ o) and every washout k_out_o, but hardly the common scale of the fast rates
    (plasma clearance is over long before the first scan). In θ coordinates that common scale
    is shared by six axis-aligned random effects, which makes the between-patient SDs trade
    off against each other and gave NUTS 350–870 leapfrog steps per draw (measured); in w the
    identified coordinates are patient-level quantities measured directly (centred effects)
    and the weakly identified scale is one coordinate (non-centred). Other models: identity,
    every coordinate non-centred.
    """
    names = list(twin.sampled)
    n = len(names)
    a = np.eye(n)
    centred = np.zeros(n, dtype=bool)
    names_w = list(names)
    if twin.kind == "reduced" and "k_urine" in names:
        u = names.index("k_urine")
        for i, name in enumerate(names):
            if name.startswith("k_in_"):
                a[i, u] = 1.0  # log k_in = w_u + w_i
                names_w[i] = f"log_ratio_{name[len('k_in_'):]}"
                centred[i] = True
            elif name.startswith("k_out_"):
                centred[i] = True
    return a, names_w, centred


def _vectorised_population_model(datasets, twin, measurement, schedule, tau_scale,
                                 shared_noise, centred) -> pm.Model:
    """The hierarchical model for patients of one protocol, vectorised over patients.

    Hierarchy in the coordinates of :func:`population_coordinates`: ``mu`` (param, log θ
    scale, prior as the patient model) → ``mu_w = A⁻¹ mu``; ``tau_w`` (param_w) ~
    HalfNormal(tau_scale); patient ``w_p = mu_w + tau_w ⊙ z_p`` — centred coordinates sampled
    as ``w_centred`` ~ N(mu_w, tau_w), the others as ``z_noncentred`` ~ N(0, 1); log θ_p = A w_p.
    Deterministics: ``log_theta`` (patient, param), ``z`` (patient, param_w),
    ``tau`` (param) = marginal between-patient SD of log θ = sqrt(A² tau_w²).
    ``centred=True`` centres every coordinate.
    """
    ref = datasets[0]
    n_pat = len(datasets)
    flat = ref.flat()
    a, names_w, centred_mask = population_coordinates(twin)
    if centred:
        centred_mask = np.ones_like(centred_mask)
    a_inv = np.linalg.inv(a)
    ic, inc = np.flatnonzero(centred_mask), np.flatnonzero(~centred_mask)
    coords = {"param": list(twin.sampled), "param_w": names_w,
              "param_centred": [names_w[i] for i in ic],
              "param_noncentred": [names_w[i] for i in inc],
              "patient": [d.patient_id for d in datasets], **_coords(ref, measurement)}
    prior_sd = np.sqrt(np.sum(twin.prior_chol**2, axis=1))
    mask = free_recovery(ref, measurement)
    rc0 = np.stack([recovery_coefficients(d, measurement) for d in datasets])  # (P, organs)
    rc_sd = np.stack([recovery_sds(d, measurement) for d in datasets])  # (P, organs)
    log_y = np.stack([np.log(d.flat()["activity_mbq"]) for d in datasets])  # (P, obs)
    cal_sd = np.asarray([d.calibration_sd for d in datasets])
    with pm.Model(coords=coords) as model:
        mu = pm.Normal("mu", twin.prior_loc, prior_sd, dims="param")
        mu_w = pt.dot(pt.as_tensor_variable(a_inv), mu)
        tau_w = pm.HalfNormal("tau_w", tau_scale, dims="param_w")
        w = pt.zeros((n_pat, twin.n_params))
        if ic.size:
            w_c = pm.Normal("w_centred", mu_w[ic], tau_w[ic], dims=("patient", "param_centred"))
            w = pt.set_subtensor(w[:, ic], w_c)
        if inc.size:
            z_nc = pm.Normal("z_noncentred", 0.0, 1.0, dims=("patient", "param_noncentred"))
            w = pt.set_subtensor(w[:, inc], mu_w[inc] + tau_w[inc] * z_nc)
        pm.Deterministic("z", (w - mu_w) / tau_w, dims=("patient", "param_w"))
        pm.Deterministic("tau", pt.sqrt(pt.dot(pt.as_tensor_variable(a**2), tau_w**2)),
                         dims="param")
        log_theta = pm.Deterministic("log_theta", pt.dot(w, pt.as_tensor_variable(a.T)),
                                     dims=("patient", "param"))
        fn = forward_function(twin, ref, schedule)
        batched = wrap_jax(jax.jit(jax.vmap(fn)))
        log_pred, tia, ok = batched(pt.specify_shape(log_theta, (n_pat, twin.n_params)))
        pm.Deterministic("tia_mbq_h", tia, dims=("patient", "organ"))
        pm.Potential("solver_ok", pt.sum(pt.switch(pt.gt(ok, 0.5), 0.0, -np.inf)))
        if np.all(cal_sd > 0):
            log_cal = pm.Normal("log_calibration", 0.0, cal_sd[:, None],
                                dims=("patient", "session"))
        else:
            log_cal = pt.zeros((n_pat, len(ref.sessions)))
        log_rc = pt.as_tensor_variable(np.log(rc0))
        if mask.any():
            free = pm.Normal("log_recovery", np.log(rc0[:, mask]), rc_sd[:, mask],
                             dims=("patient", "recovery_organ"))
            log_rc = pt.set_subtensor(log_rc[:, np.flatnonzero(mask)], free)
        mean = log_pred + log_cal[:, flat["session_index"]] + log_rc[:, flat["organ_index"]]
        if measurement.fixed_noise_sd is not None:
            sigma = measurement.fixed_noise_sd
        elif shared_noise:
            sigma = pm.LogNormal("noise_sd", np.log(measurement.noise_sd_median),
                                 measurement.noise_sd_sd_log)
        else:
            sigma = pm.LogNormal("noise_sd", np.log(measurement.noise_sd_median),
                                 measurement.noise_sd_sd_log, dims="patient")[:, None]
        if measurement.noise == "student_t":
            pm.StudentT("log_activity", nu=measurement.nu, mu=mean, sigma=sigma, observed=log_y,
                        dims=("patient", "obs"))
        else:
            pm.Normal("log_activity", mu=mean, sigma=sigma, observed=log_y,
                      dims=("patient", "obs"))
    return model


def _schedule_key(schedule):
    admins = getattr(schedule, "administrations", None)
    if not admins:
        return None
    return tuple((a.time_h, a.activity_mbq, a.ligand_nmol, a.infusion_h) for a in admins)


def same_protocol(datasets: Sequence[PatientData], schedules: Sequence,
                  measurement: MeasurementModel) -> bool:
    """True when every patient has the same organs, times, sessions, recovery VOIs and
    schedule (activities, volumes, calibration and recovery SDs may differ): the population
    model can then be vectorised over patients."""
    ref, key = datasets[0], _schedule_key(schedules[0])
    if key is None:
        return False
    ref_mask = free_recovery(ref, measurement)
    cal = [d.calibration_sd > 0 for d in datasets]
    if any(c != cal[0] for c in cal):
        return False
    for data, schedule in zip(datasets, schedules, strict=True):
        if _schedule_key(schedule) != key or data.organ_names != ref.organ_names:
            return False
        if data.sessions != ref.sessions:
            return False
        if any(not np.array_equal(data.organs[o].times_h, ref.organs[o].times_h)
               or data.organs[o].sessions != ref.organs[o].sessions
               for o in ref.organ_names):
            return False
        if not np.array_equal(free_recovery(data, measurement), ref_mask):
            return False
    return True
