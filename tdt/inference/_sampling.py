"""Fitting one patient: :func:`fit_patient` → :class:`~tdt.inference.Posterior`.

Sampler: the PyMC model compiled to JAX and sampled by :func:`tdt.inference._nuts.run_sampler`
(blackjax NUTS by default, float64, dense mass matrix with Stan's windowed adaptation; numpyro,
nutpie and PyMC's own NUTS for comparison). ``benchmarks/bench_inference.py`` measures them.
"""

from __future__ import annotations

import warnings

import numpy as np

from tdt.errors import ConvergenceError, InputError
from tdt.inference._bridge import check_forward
from tdt.inference._data import PatientData
from tdt.inference._diagnostics import NOT_CONVERGED, compute_diagnostics
from tdt.inference._measurement import MeasurementModel
from tdt.inference._models import TwinModel, resolve_model
from tdt.inference._nuts import SAMPLERS, default_sampler, run_sampler
from tdt.inference._posterior import Posterior
from tdt.inference._pymc_models import build_patient_model

__all__ = ["GATE_VARIABLES", "SAMPLERS", "TARGET_ACCEPT", "default_sampler", "fit_patient",
           "run_sampler"]

#: Variables checked by the convergence gate (free parameters and derived TIA).
GATE_VARIABLES = ("z", "log_calibration", "log_recovery", "noise_sd", "tia_mbq_h", "mu", "tau")


def _check_counts(draws, chains, tune, seed):
    for name, value, minimum in (("draws", draws, 1), ("chains", chains, 1), ("tune", tune, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise InputError(f"{name}: {value!r}; expected an integer >= {minimum}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: {seed!r}; expected an integer >= 0")


#: Default NUTS target acceptance per model kind. PBPK: 0.8 (Stan's default) — on the standard
#: patient 4×(1000+1000) it gave 7.4 leapfrog steps per draw instead of 10.7 at 0.9, a higher
#: min bulk ESS (3073 vs 2965) and 0 divergences (benchmarks/bench_inference.py, 2026-11-21).
TARGET_ACCEPT = {"pbpk": 0.8, "default": 0.9}


def fit_patient(data: PatientData, model: str | TwinModel = "reduced", draws: int = 1000,
                chains: int = 4, tune: int = 1000, seed: int = 0,
                measurement: MeasurementModel | None = None, schedule=None,
                target_accept: float | None = None, sampler: str | None = None,
                require_convergence: bool = False, progressbar: bool = False,
                dense_mass: bool = True) -> Posterior:
    """Fit the twin to one patient's time–activity data; return the :class:`Posterior`.

    Parameters
    ----------
    data: the patient's :class:`PatientData`.
    model: ``"reduced"`` (linear kinetic model of tdt.pbpk), a registered receptor-PBPK model
        name (``tdt.pbpk.model_names()``: ``"psma617"`` — also ``"pbpk"`` —, ``"dotatate"``,
        ``"psma_it"``; identifiable subset under cited priors), a built tdt.pbpk model, or a
        :class:`TwinModel` (e.g. with a population prior).
    draws, chains, tune: NUTS draws per chain after ``tune`` warm-up steps.
    seed: random seed; the same seed gives identical posterior summaries on the same machine.
    measurement: the :class:`MeasurementModel` (default lognormal noise, 3 %-calibration from
        ``data.calibration_sd``, sphere recovery for small lesions).
    schedule: administration schedule (default ``data.resolve_schedule()``).
    target_accept: NUTS target acceptance rate; default :data:`TARGET_ACCEPT` by model kind.
    sampler: NUTS backend (:data:`SAMPLERS`); default :func:`default_sampler`.
    require_convergence: raise :class:`ConvergenceError` if the gate fails, instead of
        returning a posterior flagged "NOT CONVERGED" (and warning).
    """
    if not isinstance(data, PatientData):
        raise InputError(f"data: {type(data).__name__}; expected a tdt.inference.PatientData")
    _check_counts(draws, chains, tune, seed)
    measurement = measurement or MeasurementModel()
    twin = resolve_model(model, data)
    schedule = data.resolve_schedule() if schedule is None else schedule
    check_forward(twin, data, schedule)
    pm_model = build_patient_model(data, twin, measurement, schedule)
    if target_accept is None:
        target_accept = TARGET_ACCEPT.get(twin.kind, TARGET_ACCEPT["default"])
    idata, wall = run_sampler(pm_model, draws=draws, tune=tune, chains=chains, seed=seed,
                              target_accept=target_accept, sampler=sampler,
                              progressbar=progressbar, dense_mass=dense_mass)
    diagnostics = compute_diagnostics(idata, GATE_VARIABLES, sampling_time_s=wall)
    posterior = Posterior(idata, twin=twin, data=data, diagnostics=diagnostics,
                          schedule=schedule, measurement=measurement)
    _gate(diagnostics, require_convergence, f"fit_patient({data.patient_id!r})")
    return posterior


def _gate(diagnostics, require_convergence: bool, what: str) -> None:
    if diagnostics.converged:
        return
    message = f"{what}: {NOT_CONVERGED} — {diagnostics}"
    if require_convergence:
        raise ConvergenceError(message)
    warnings.warn(message, stacklevel=3)
