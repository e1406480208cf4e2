"""In-silico trial: fixed 7.4 GBq × 6 against dosimetry-guided planning, on virtual patients.

Design (stated so that the table can be read without the code):

- Virtual patients: rate constants of the reduced linear 177Lu-PSMA-617 model drawn from its
  population prior (lognormal around the catalog table's medians, with the table's sds times
  ``population_sd_scale``, lesion parameters times ``lesion_sd_scale``: 1 = the wide inference
  prior, kidney dose CV ~0.8; the shipped study uses 0.45 with ``kidney_uptake_scale`` 0.68,
  which gives the kidney dose per activity of the VISION dosimetry sub-study, 0.43 +- 0.16
  Gy/GBq, Herrmann et al. J Nucl Med 2024;65:71; see :func:`virtual_trial_cohort`), two lesions
  with volumes uniform in [2, 30] mL, a kidney risk factor with probability
  ``risk_factor_prevalence`` (limit 28 Gy with, 40 Gy without — Bodei 2008; the twin plans
  against the patient's own limit, the outcome is reported at 28 Gy for everyone).
  Between cycles each patient's true parameters follow the twin's :class:`DriftModel` (lesion
  uptake falling by a lognormal random walk), so the planning model is well specified.
- Red marrow and lacrimal glands (issue 23): ``marrow_uptake_scale`` multiplies the cohort's
  ``k_in_red_marrow`` (truth only; the study's 1.6 gives the published 0.030 Gy/GBq); the
  lacrimal glands' true dose is reported per arm (dose only: no limit, not constrained, not
  imaged).
- Truth doses: exact per-cycle dose and BED of each organ from the patient's true kinetics
  (spectral solution, tdt.dosimetry S-values / local deposition as in the twin, BED with the
  G-factor, cycles summed).
- Imaging after each cycle: kidneys, salivary glands, liver, spleen, red marrow (an image-based
  marrow VOI, e.g. L2–L4, scaled to the whole marrow: optimistic, it is taken as measured as
  well as the other organs) and the lesions at 4, 24, 48, 96, 168 h, with 10 % lognormal noise per point and one 3 % calibration error per
  cycle (the twin's measurement model).
- Posterior: Laplace approximation per cycle (:mod:`tdt.twin._assimilate`) with the previous
  posterior + drift as prior; ``n_draws`` draws.
- Fixed arm: 7.4 GBq × 6. Guided arm: cycle 1 at 7.4 GBq, then after each cycle's imaging
  ``Twin.plan`` (uniform activities over the remaining cycles, policy: min 3.7, cap 9 GBq per
  cycle, P(kidney BED > the patient's limit) <= 5 %, P(red-marrow dose > 2 Gy) <= 5 %, number of
  cycles chosen <= remaining, up to ``max_guided_cycles``; stop when no admissible activity).
  The next cycle gets the plan's first activity. Optional oracle arm: the same planner on the
  true kinetics (perfect knowledge, a reference).
- Outcome: rate of true cumulative kidney BED > 28 Gy and > the patient's own limit (Wilson 95 %
  CIs), rate of true cumulative red-marrow absorbed dose > 2 Gy (the planner's second
  constraint; Wilson 95 % CI) and median true tumour BED (mean over lesions; bootstrap 95 %
  percentile CI), per arm;
  the difference of median tumour BED from the fixed arm with a paired bootstrap CI (the arms
  treat the same virtual patients, so patients are resampled as pairs); per patient, the ratio
  of tumour BED to the fixed arm's: its median (bootstrap 95 % CI) and the fraction above 1;
  the differences of the exceedance rates from the fixed arm (paired bootstrap 95 % CI).
- Planner calibration: for every guided plan, its P(kidney BED > own limit) and the true BED
  had it been followed (``guided_plan_checks``), summarised by :func:`plan_calibration` in
  ``settings["plan_calibration"]``.
- Random numbers: one stream per patient for the patient (volumes, risk factor, kinetics, drift)
  and one for the imaging noise, so every setting (and grid point) with the same ``seed`` treats
  the same virtual patients.

Layout: the virtual patients in ``_trial_cohort``, the statistics and table rows in
``_trial_stats``; this module runs the arms. Limits: :mod:`tdt.radiobiology._limits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tdt.errors import InputError
from tdt.inference import DriftModel
from tdt.pbpk import batched_bolus_exponentials, exponential_sum
from tdt.radiobiology import KIDNEY_BED_LIMIT_RISK_GY, RED_MARROW_DOSE_LIMIT_GY, is_lesion
from tdt.twin._plan import Policy, evaluate, plan
from tdt.twin._record import CycleData
from tdt.twin._trial_cohort import (
    _check_cohort,
    _virtual_patient,
    trial_model,
    virtual_trial_cohort,
)
from tdt.twin._trial_stats import arm_row, plan_calibration
from tdt.units import mbq_to_gbq

__all__ = ("IMAGED_ORGANS", "IMAGING_TIMES_H", "MARROW_DOSE_LIMIT_GY", "TrialResult",
           "plan_calibration", "virtual_trial", "virtual_trial_cohort")

IMAGED_ORGANS = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow", "lesion_1",
                 "lesion_2")
IMAGING_TIMES_H = (4.0, 24.0, 48.0, 96.0, 168.0)
#: the twin's red-marrow constraint (Twin.default_constraints): absorbed dose 2 Gy
MARROW_DOSE_LIMIT_GY = RED_MARROW_DOSE_LIMIT_GY


@dataclass(frozen=True)
class TrialResult:
    """``table``: one row per arm; ``patients``: one row per virtual patient."""

    table: object  # pandas.DataFrame
    patients: object  # pandas.DataFrame
    settings: dict = field(default_factory=dict)


def _true_totals(truth_response, activities, kidney_index, lesion_indices):
    """True cumulative kidney BED and mean lesion BED (Gy) of the activities given."""
    ev = evaluate(truth_response, np.asarray(activities, dtype=float), constraints=())
    return ev.cumulative_bed_gy[0, kidney_index], ev.cumulative_bed_gy[0, lesion_indices].mean()


def _true_dose(truth_response, activities, organ_index):
    """True cumulative absorbed dose (Gy) of one organ (red marrow, lacrimal glands) for the
    activities given (NaN: the model has no such organ)."""
    if organ_index is None:
        return float("nan")
    ev = evaluate(truth_response, np.asarray(activities, dtype=float), constraints=())
    return float(ev.cumulative_dose_gy[0, organ_index])


def _image_cycle(model, amp_k, rates_k, activity, noise, relative_sd, calibration_sd):
    """Noisy VOI time–activity data (MBq) of one cycle: 10 % lognormal noise per point, one
    calibration error per cycle (the twin's measurement model)."""
    times = np.asarray(IMAGING_TIMES_H)
    calib = np.exp(calibration_sd * noise.standard_normal())
    measurements = {}
    for organ in IMAGED_ORGANS:
        c = amp_k[model.compartments.index(organ)]
        true_act = activity * exponential_sum(c, rates_k, times)
        noisy = true_act * calib * np.exp(relative_sd * noise.standard_normal(len(times)))
        measurements[organ] = (times, noisy)
    return measurements


def _guided_arm(model, twin, truth_params, truth_response, policy, n_guided, standard_activity_mbq,
                noise, relative_sd, calibration_sd, kid, lesions):
    """Image, assimilate and plan cycle by cycle; returns the activities given and, per plan,
    its P(kidney BED > own limit) and the true kidney BED had it been followed."""
    amp, rates = batched_bolus_exponentials(model, truth_params)
    given, plan_checks = [], []
    kidney_label = twin.default_constraints()[0].label
    activity = standard_activity_mbq
    for k in range(n_guided):
        given.append(activity)
        measurements = _image_cycle(model, amp[k], rates[k], activity, noise, relative_sd,
                                    calibration_sd)
        twin.assimilate(CycleData(activity, measurements, relative_sd=relative_sd))
        if k == n_guided - 1:
            break
        proposal = twin.plan(policy=policy)
        if proposal.n_cycles == 0:
            break
        followed = np.array(given + list(proposal.activities_mbq))
        plan_checks.append({
            "after_cycle": k + 1,
            "kidney_risk": float(proposal.constraint_probabilities[kidney_label]),
            "true_kidney_bed_if_followed_gy": float(
                _true_totals(truth_response, followed, kid, lesions)[0])})
        activity = proposal.next_activity_mbq
    return given, plan_checks


def _patient_row(model, seed, patient, n_cycles, n_guided, n_truth, standard_activity_mbq,
                 n_draws, policy, drift, relative_sd, calibration_sd, population_sd_scale,
                 lesion_sd_scale, risk_factor_prevalence, kidney_uptake_scale,
                 oracle, marrow_uptake_scale=1.0) -> tuple[dict, float]:
    """Both arms (and the oracle) for one virtual patient: one row of the patients table, and
    the twin's kidney-risk bound (its default constraint's max_probability)."""
    # one stream per patient for who the patient is, another for the imaging noise: the same
    # virtual patients in every setting (common random numbers across arms and grid points)
    noise = np.random.default_rng([seed, patient, 1])
    record, twin, truth_params, truth_response = _virtual_patient(
        model, seed, patient, n_truth, drift, risk_factor_prevalence, population_sd_scale,
        lesion_sd_scale, kidney_uptake_scale, marrow_uptake_scale, n_draws=n_draws,
        total_cycles=n_guided, calibration_sd=calibration_sd)
    kid = twin.targets.index("kidneys")
    marrow = twin.targets.index("red_marrow") if "red_marrow" in twin.targets else None
    lacrimal = (twin.targets.index("lacrimal_glands") if "lacrimal_glands" in twin.targets
                else None)
    lesions = [twin.targets.index(t) for t in twin.targets if is_lesion(t)]
    fixed = np.full(n_cycles, standard_activity_mbq)
    fixed_kidney, fixed_tumour = _true_totals(truth_response, fixed, kid, lesions)
    per_gbq = evaluate(truth_response, [1000.0], constraints=()).cumulative_dose_gy[0]
    kidney_gy_per_gbq = float(per_gbq[kid])
    # what the first (standard, not yet guided) cycle alone gives: no plan can undo it
    first_cycle_kidney = float(_true_totals(truth_response, [standard_activity_mbq], kid,
                                            lesions)[0])
    given, plan_checks = _guided_arm(model, twin, truth_params, truth_response, policy, n_guided,
                                     standard_activity_mbq, noise, relative_sd, calibration_sd,
                                     kid, lesions)
    guided_kidney, guided_tumour = _true_totals(truth_response, np.array(given), kid, lesions)
    row = {"patient": record.patient_id, "risk_factor": bool(record.risk_factors),
           "kidney_limit_gy": record.kidney_bed_limit_gy,
           "kidney_gy_per_gbq": kidney_gy_per_gbq,
           "marrow_gy_per_gbq": float("nan") if marrow is None else float(per_gbq[marrow]),
           "lacrimal_gy_per_gbq": float("nan") if lacrimal is None else float(per_gbq[lacrimal]),
           "first_cycle_kidney_bed_gy": first_cycle_kidney,
           "fixed_kidney_bed_gy": float(fixed_kidney),
           "guided_kidney_bed_gy": float(guided_kidney),
           "fixed_tumour_bed_gy": float(fixed_tumour),
           "guided_tumour_bed_gy": float(guided_tumour),
           "fixed_marrow_dose_gy": _true_dose(truth_response, fixed, marrow),
           "guided_marrow_dose_gy": _true_dose(truth_response, np.array(given), marrow),
           "fixed_lacrimal_dose_gy": _true_dose(truth_response, fixed, lacrimal),
           "guided_lacrimal_dose_gy": _true_dose(truth_response, np.array(given), lacrimal),
           "fixed_total_activity_mbq": standard_activity_mbq * n_cycles,
           "guided_total_activity_mbq": float(np.sum(given)),
           "fixed_cycles": n_cycles, "guided_cycles": len(given),
           "guided_activities_mbq": [float(a) for a in given],
           "guided_plan_checks": plan_checks}
    if oracle:
        # same planner, one "draw" = the true kinetics: the constraints become deterministic
        best = plan(truth_response, n_guided, constraints=twin.default_constraints(),
                    policy=policy)
        x = np.asarray(best.activities_mbq, dtype=float)
        o_kidney, o_tumour = _true_totals(truth_response, x, kid, lesions)
        row |= {"oracle_kidney_bed_gy": float(o_kidney), "oracle_tumour_bed_gy": float(o_tumour),
                "oracle_marrow_dose_gy": _true_dose(truth_response, x, marrow),
                "oracle_lacrimal_dose_gy": _true_dose(truth_response, x, lacrimal),
                "oracle_total_activity_mbq": float(x.sum()), "oracle_cycles": len(x),
                "oracle_activities_mbq": [float(a) for a in x]}
    return row, twin.default_constraints()[0].max_probability


def virtual_trial(n_patients: int = 40, seed: int = 0, n_cycles: int = 6,
                  standard_activity_mbq: float = 7400.0, n_draws: int = 300,
                  policy: Policy | None = None, drift: DriftModel | None = None,
                  kidney_limit_gy: float = KIDNEY_BED_LIMIT_RISK_GY, relative_sd: float = 0.1,
                  calibration_sd: float = 0.03, n_bootstrap: int = 2000,
                  population_sd_scale: float = 1.0, lesion_sd_scale: float | None = None,
                  risk_factor_prevalence: float = 1.0, kidney_uptake_scale: float = 1.0,
                  max_guided_cycles: int | None = None, oracle: bool = False,
                  marrow_uptake_scale: float = 1.0) -> TrialResult:
    """Run the trial described in the module docstring; return per-arm and per-patient tables.

    ``kidney_uptake_scale`` multiplies the population median of the virtual patients' kidney
    uptake rate ``k_in_kidneys`` (the truth only; the twin keeps the catalog prior, as a clinic
    would), which scales the cohort's kidney dose per GBq about proportionally: the catalog
    median gives ~0.59 Gy/GBq, published cohorts 0.39–0.82 Gy/GBq (Violet 2019, Delker 2016,
    Kratochwil 2016; data_catalog/pbpk/reduced_linear_psma617.yaml).
    ``marrow_uptake_scale`` does the same for the red marrow (``k_in_red_marrow``; the catalog
    median gives ~0.02 Gy/GBq, published 0.030 +- 0.008 Gy/GBq: Kabasakal 2017,
    doi:10.4274/mirt.08760).
    ``max_guided_cycles`` lets the guided arm plan up to that many cycles (same interval;
    default ``n_cycles``); the fixed arm always gets ``n_cycles``.
    ``oracle`` adds a reference arm planned by the same planner on the patient's *true* kinetics
    (all cycles, drift included): what perfect knowledge would allow.

    Runtime is dominated by one-off JIT compilation (tens of seconds); then ~1 s per patient on
    a 2-core CPU with the default ``n_draws``.
    """
    lesion_sd_scale = _check_cohort(n_patients, 2, n_cycles, population_sd_scale, lesion_sd_scale,
                                    kidney_uptake_scale, risk_factor_prevalence,
                                    marrow_uptake_scale)
    n_guided = n_cycles if max_guided_cycles is None else max_guided_cycles
    if not (isinstance(n_guided, int) and n_guided >= 1):
        raise InputError(f"max_guided_cycles: got {max_guided_cycles!r}; expected an integer >= 1")
    policy = policy or Policy(standard_activity_mbq=standard_activity_mbq)
    drift = drift or DriftModel()
    # one model object for every patient: compiled solvers are cached per model
    model = trial_model()
    rows, risks = zip(*(
        _patient_row(model, seed, patient, n_cycles, n_guided, max(n_cycles, n_guided),
                     standard_activity_mbq, n_draws, policy, drift, relative_sd, calibration_sd,
                     population_sd_scale, lesion_sd_scale, risk_factor_prevalence,
                     kidney_uptake_scale, oracle, marrow_uptake_scale)
        for patient in range(n_patients)), strict=True)
    patients = pd.DataFrame(list(rows))
    boot = np.random.default_rng(seed + 1)
    arms = [("fixed", f"fixed {mbq_to_gbq(standard_activity_mbq):g} GBq x {n_cycles}"),
            ("guided", "dosimetry-guided")]
    if oracle:
        arms.append(("oracle", "oracle (true kinetics known; reference)"))
    table_rows = [arm_row(patients, arm, label, kidney_limit_gy, MARROW_DOSE_LIMIT_GY, boot,
                          n_bootstrap) for arm, label in arms]
    policy_kidney_risk = risks[-1]  # the twin's kidney constraint bound (plan_calibration)
    settings = {"n_patients": n_patients, "seed": seed, "n_cycles": n_cycles,
                "standard_activity_mbq": standard_activity_mbq, "n_draws": n_draws,
                "policy": policy.__dict__, "drift": drift.to_dict(),
                "kidney_limit_gy": kidney_limit_gy, "relative_sd": relative_sd,
                "calibration_sd": calibration_sd, "posterior": "Laplace (per cycle)",
                "population_sd_scale": population_sd_scale, "lesion_sd_scale": lesion_sd_scale,
                "risk_factor_prevalence": risk_factor_prevalence,
                "kidney_uptake_scale": kidney_uptake_scale, "max_guided_cycles": n_guided,
                "marrow_uptake_scale": marrow_uptake_scale,
                "oracle": oracle,
                "median_kidney_gy_per_gbq": float(patients["kidney_gy_per_gbq"].median()),
                # the cohort against published per-patient figures (VISION dosimetry sub-study)
                "mean_kidney_gy_per_gbq": float(patients["kidney_gy_per_gbq"].mean()),
                "sd_kidney_gy_per_gbq": float(patients["kidney_gy_per_gbq"].std(ddof=1)),
                "mean_marrow_gy_per_gbq": float(patients["marrow_gy_per_gbq"].mean()),
                "mean_lacrimal_gy_per_gbq": float(patients["lacrimal_gy_per_gbq"].mean()),
                "imaging_times_h": list(IMAGING_TIMES_H), "imaged_organs": list(IMAGED_ORGANS),
                "plan_calibration": plan_calibration(patients, policy_kidney_risk)}
    return TrialResult(pd.DataFrame(table_rows), patients, settings)
