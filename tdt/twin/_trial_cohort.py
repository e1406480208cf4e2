"""Virtual patients of the in-silico trial: who they are, their true kinetics per cycle, their
twin (catalog prior). Shared by :func:`tdt.twin.virtual_trial` and :func:`virtual_trial_cohort`
(same arguments and seed → same patients). See :mod:`tdt.twin._trial`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tdt.errors import InputError
from tdt.pbpk import reduced_linear
from tdt.twin._assimilate import DriftModel
from tdt.twin._record import PatientRecord
from tdt.twin._response import response_draws
from tdt.twin._twin import Twin
from tdt.twin._twin_models import DEFAULT_MODEL_ORGANS
from tdt.units import gy_per_gbq

TRIAL_LESIONS = ("lesion_1", "lesion_2")
#: parameters added to the model after the cohort was defined (issue 23: lacrimal glands) draw
#: their standard normals from a stream of their own, so the other parameters of every virtual
#: patient — and hence the trial's patients — stay those drawn before (common random numbers)
LATE_PARAMETERS = ("k_in_lacrimal_glands", "k_out_lacrimal_glands")


def _normals(rng: np.random.Generator, late: np.random.Generator, names) -> np.ndarray:
    """Standard normals for ``names``: :data:`LATE_PARAMETERS` from ``late``, the others from
    ``rng`` in their order (as before those parameters existed)."""
    is_late = np.array([n in LATE_PARAMETERS for n in names], dtype=bool)
    z = np.empty(len(names))
    z[~is_late] = rng.standard_normal(int((~is_late).sum()))
    z[is_late] = late.standard_normal(int(is_late.sum()))
    return z


def trial_model():
    """The reduced linear 177Lu-PSMA-617 model of the trial (organs of the twin, two lesions)."""
    return reduced_linear(DEFAULT_MODEL_ORGANS, lesions=TRIAL_LESIONS)


def _virtual_patient(model, seed: int, patient: int, n_cycles: int, drift: DriftModel,
                     risk_factor_prevalence: float, population_sd_scale: float,
                     lesion_sd_scale: float, kidney_uptake_scale: float,
                     marrow_uptake_scale: float = 1.0, **twin_kwargs):
    """One virtual patient: record, twin (catalog prior), true parameters per cycle, true doses.

    The patient's random numbers come from their own stream ``[seed, patient]``, so the same
    ``seed`` gives the same patients in every setting (common random numbers). True log rate
    constants: the catalog prior's medians plus its sds times ``population_sd_scale`` (lesion
    parameters: ``lesion_sd_scale``) times standard normals, ``k_in_kidneys`` shifted by
    log(``kidney_uptake_scale``) and ``k_in_red_marrow`` by log(``marrow_uptake_scale``); then
    the twin's drift model between cycles.
    """
    rng = np.random.default_rng([seed, patient])
    volumes = rng.uniform(2.0, 30.0, size=2)
    risk = rng.uniform() < risk_factor_prevalence
    record = PatientRecord(f"virtual_{patient:04d}",
                           lesions={"lesion_1": float(volumes[0]), "lesion_2": float(volumes[1])},
                           risk_factors=("hypertension",) if risk else ())
    twin = Twin(record, model=model, drift=drift, seed=seed * 100003 + patient, **twin_kwargs)
    names = twin.prior.names
    mu, sd = drift.step(names)
    sd_scale = np.array([lesion_sd_scale if "_lesion" in n else population_sd_scale
                         for n in names])
    late = np.random.default_rng([seed, patient, 2])  # stream 1 is the imaging noise
    log_truth = twin.prior.mean + sd_scale * twin.prior.sd_log * _normals(rng, late, names)
    log_truth[names.index("k_in_kidneys")] += np.log(kidney_uptake_scale)
    log_truth[names.index("k_in_red_marrow")] += np.log(marrow_uptake_scale)
    truths = [log_truth]
    for _ in range(n_cycles - 1):
        truths.append(truths[-1] + mu + sd * _normals(rng, late, names))
    truth_params = {n: np.exp(np.array([t[i] for t in truths])) for i, n in enumerate(names)}
    truth_response = response_draws(model, {k: v[:, None] for k, v in truth_params.items()},
                                    twin.matrix)
    return record, twin, truth_params, truth_response


def virtual_trial_cohort(n_patients: int = 200, seed: int = 0, n_cycles: int = 6,
                         population_sd_scale: float = 1.0, lesion_sd_scale: float | None = None,
                         kidney_uptake_scale: float = 1.0, risk_factor_prevalence: float = 1.0,
                         drift: DriftModel | None = None, marrow_uptake_scale: float = 1.0):
    """The virtual trial's patients without the trial: true absorbed dose per activity per cycle.

    Same patients as :func:`virtual_trial` with the same arguments (shared drawing code and
    random streams). Returns a DataFrame, one row per patient and cycle, with ``patient``,
    ``cycle`` (1-based), ``risk_factor`` and ``<organ>_gy_per_gbq`` for every dose target
    (true kinetics of that cycle, drift included): the numbers to set against published
    patient cohorts (docs/twin.md, "The virtual cohort against VISION").
    """
    lesion_sd_scale = _check_cohort(n_patients, 1, n_cycles, population_sd_scale, lesion_sd_scale,
                                    kidney_uptake_scale, risk_factor_prevalence,
                                    marrow_uptake_scale)
    drift = drift or DriftModel()
    model = trial_model()
    rows = []
    for patient in range(n_patients):
        record, twin, _, response = _virtual_patient(
            model, seed, patient, n_cycles, drift, risk_factor_prevalence, population_sd_scale,
            lesion_sd_scale, kidney_uptake_scale, marrow_uptake_scale, n_draws=20,
            total_cycles=n_cycles)
        dose_per_mbq, _ = response.coefficients(n_cycles)  # (cycles, 1, organs), Gy/MBq
        for k in range(n_cycles):
            rows.append({"patient": record.patient_id, "cycle": k + 1,
                         "risk_factor": bool(record.risk_factors)}
                        | {f"{organ}_gy_per_gbq": float(gy_per_gbq(dose_per_mbq[k, 0, j], 1.0))
                           for j, organ in enumerate(response.organs)})
    return pd.DataFrame(rows)


def _check_cohort(n_patients, min_patients, n_cycles, population_sd_scale, lesion_sd_scale,
                  kidney_uptake_scale, risk_factor_prevalence,
                  marrow_uptake_scale: float = 1.0) -> float:
    """Validate the cohort arguments; return the lesion sd scale (None: the population's)."""
    if not (isinstance(n_patients, int) and n_patients >= min_patients):
        raise InputError(f"n_patients: got {n_patients!r}; expected an integer >= {min_patients}")
    if not (isinstance(n_cycles, int) and n_cycles >= 1):
        raise InputError(f"n_cycles: got {n_cycles!r}; expected an integer >= 1")
    if not population_sd_scale > 0:
        raise InputError(f"population_sd_scale: got {population_sd_scale!r}; expected > 0")
    if lesion_sd_scale is not None and not lesion_sd_scale > 0:
        raise InputError(f"lesion_sd_scale: got {lesion_sd_scale!r}; expected > 0 (or null)")
    if not 0.0 <= risk_factor_prevalence <= 1.0:
        raise InputError(f"risk_factor_prevalence: got {risk_factor_prevalence!r}; expected in [0, 1]")
    if not kidney_uptake_scale > 0:
        raise InputError(f"kidney_uptake_scale: got {kidney_uptake_scale!r}; expected > 0")
    if not marrow_uptake_scale > 0:
        raise InputError(f"marrow_uptake_scale: got {marrow_uptake_scale!r}; expected > 0")
    return population_sd_scale if lesion_sd_scale is None else lesion_sd_scale
