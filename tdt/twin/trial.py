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
- Truth doses: exact per-cycle dose and BED of each organ from the patient's true kinetics
  (spectral solution, tdt.dosimetry S-values / local deposition as in the twin, BED with the
  G-factor, cycles summed).
- Imaging after each cycle: kidneys, salivary glands, liver, spleen, red marrow (an image-based
  marrow VOI, e.g. L2–L4, scaled to the whole marrow: optimistic, it is taken as measured as
  well as the other organs) and the lesions at 4, 24, 48, 96, 168 h, with 10 % lognormal noise per point and one 3 % calibration error per
  cycle (the twin's measurement model).
- Posterior: Laplace approximation per cycle (:mod:`tdt.twin.assimilate`) with the previous
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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tdt.errors import InputError
from tdt.twin.assimilate import DriftModel
from tdt.twin.plan import Policy, evaluate, plan
from tdt.twin.record import CycleData, PatientRecord
from tdt.twin.response import response_draws
from tdt.twin.spectral import batched_bolus_exponentials
from tdt.twin.twin import Twin

IMAGED_ORGANS = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow", "lesion_1",
                 "lesion_2")
IMAGING_TIMES_H = (4.0, 24.0, 48.0, 96.0, 168.0)
#: the twin's red-marrow constraint (Twin.default_constraints): absorbed dose 2 Gy
MARROW_DOSE_LIMIT_GY = 2.0


@dataclass(frozen=True)
class TrialResult:
    """``table``: one row per arm; ``patients``: one row per virtual patient."""

    table: object  # pandas.DataFrame
    patients: object  # pandas.DataFrame
    settings: dict = field(default_factory=dict)


def _wilson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest  # noqa: PLC0415

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def _bootstrap_median(values: np.ndarray, rng: np.random.Generator, n_boot: int):
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    medians = np.median(values[idx], axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def _paired_median_difference(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                              n_boot: int) -> tuple[float, float]:
    """95 % percentile CI of median(a) − median(b) resampling patients (pairs kept together)."""
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    diff = np.median(a[idx], axis=1) - np.median(b[idx], axis=1)
    return float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))


def _paired_rate_difference(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                            n_boot: int) -> tuple[float, float]:
    """95 % percentile CI of mean(a) − mean(b) for 0/1 outcomes, patients resampled as pairs."""
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    diff = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    return float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))


def plan_calibration(patients, max_probability: float = 0.05) -> dict:
    """Realised against planned kidney risk over every guided plan of a trial.

    For each plan: did the patient's true cumulative kidney BED, had the planned schedule been
    followed (delivered + planned), exceed the patient's own limit? With a calibrated posterior
    the number of such plans is at most about the sum of the plans' probabilities (each
    <= ``max_probability``). Plans of one patient share the patient, so the binomial tolerance
    ``binomial_upper_99`` (99 % quantile of Binomial(n_plans, max_probability)) is a guide, not
    an exact test. Also the last plan per patient alone (independent across patients), and the
    patients whose first cycle (the standard activity, before any imaging) alone already took
    them over their limit: a realised exceedance no plan can prevent. A patient's realised
    exceedance implies that either the first cycle or the last plan exceeded (the delivered
    schedule is the start of that plan's schedule), so realised <= those two counts together.
    """
    from scipy.stats import binom  # noqa: PLC0415

    risks, exceeded, last = [], [], []
    for checks, limit in zip(patients["guided_plan_checks"], patients["kidney_limit_gy"],
                             strict=True):
        for i, c in enumerate(checks):
            risks.append(c["kidney_risk"])
            exceeded.append(c["true_kidney_bed_if_followed_gy"] > limit)
            if i == len(checks) - 1:
                last.append(exceeded[-1])
    n = len(risks)
    first = int(np.sum(patients["first_cycle_kidney_bed_gy"] > patients["kidney_limit_gy"]))
    return {"n_plans": n, "exceeded": int(np.sum(exceeded)),
            "rate": float(np.mean(exceeded)) if n else float("nan"),
            "nominal_max": max_probability,
            "mean_planned_risk": float(np.mean(risks)) if n else float("nan"),
            "binomial_upper_99": int(binom.ppf(0.99, n, max_probability)) if n else 0,
            "n_last_plans": len(last), "last_plans_exceeded": int(np.sum(last)),
            "n_patients": len(patients), "exceeded_by_first_cycle": first}


def _true_totals(truth_response, activities, kidney_index, lesion_indices):
    """True cumulative kidney BED and mean lesion BED (Gy) of the activities given."""
    ev = evaluate(truth_response, np.asarray(activities, dtype=float), constraints=())
    return ev.cumulative_bed_gy[0, kidney_index], ev.cumulative_bed_gy[0, lesion_indices].mean()


def _true_marrow_dose(truth_response, activities, marrow_index):
    """True cumulative red-marrow absorbed dose (Gy) of the activities given (NaN: no marrow)."""
    if marrow_index is None:
        return float("nan")
    ev = evaluate(truth_response, np.asarray(activities, dtype=float), constraints=())
    return float(ev.cumulative_dose_gy[0, marrow_index])


def _virtual_patient(model, seed: int, patient: int, n_cycles: int, drift: DriftModel,
                     risk_factor_prevalence: float, population_sd_scale: float,
                     lesion_sd_scale: float, kidney_uptake_scale: float, **twin_kwargs):
    """One virtual patient: record, twin (catalog prior), true parameters per cycle, true doses.

    The patient's random numbers come from their own stream ``[seed, patient]``, so the same
    ``seed`` gives the same patients in every setting (common random numbers). True log rate
    constants: the catalog prior's medians plus its sds times ``population_sd_scale`` (lesion
    parameters: ``lesion_sd_scale``) times standard normals, ``k_in_kidneys`` shifted by
    log(``kidney_uptake_scale``); then the twin's drift model between cycles.
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
    log_truth = twin.prior.mean + sd_scale * twin.prior.sd_log * rng.standard_normal(len(names))
    log_truth[names.index("k_in_kidneys")] += np.log(kidney_uptake_scale)
    truths = [log_truth]
    for _ in range(n_cycles - 1):
        truths.append(truths[-1] + mu + sd * rng.standard_normal(len(names)))
    truth_params = {n: np.exp(np.array([t[i] for t in truths])) for i, n in enumerate(names)}
    truth_response = response_draws(model, {k: v[:, None] for k, v in truth_params.items()},
                                    twin.matrix)
    return record, twin, truth_params, truth_response


def virtual_trial_cohort(n_patients: int = 200, seed: int = 0, n_cycles: int = 6,
                         population_sd_scale: float = 1.0, lesion_sd_scale: float | None = None,
                         kidney_uptake_scale: float = 1.0, risk_factor_prevalence: float = 1.0,
                         drift: DriftModel | None = None):
    """The virtual trial's patients without the trial: true absorbed dose per activity per cycle.

    Same patients as :func:`virtual_trial` with the same arguments (shared drawing code and
    random streams). Returns a DataFrame, one row per patient and cycle, with ``patient``,
    ``cycle`` (1-based), ``risk_factor`` and ``<organ>_gy_per_gbq`` for every dose target
    (true kinetics of that cycle, drift included): the numbers to set against published
    patient cohorts (docs/twin.md, "The virtual cohort against VISION").
    """
    import pandas as pd  # noqa: PLC0415

    from tdt.pbpk import reduced_linear  # noqa: PLC0415
    from tdt.twin.twin import DEFAULT_MODEL_ORGANS  # noqa: PLC0415

    lesion_sd_scale = _check_cohort(n_patients, 1, n_cycles, population_sd_scale, lesion_sd_scale,
                                    kidney_uptake_scale, risk_factor_prevalence)
    drift = drift or DriftModel()
    model = reduced_linear(DEFAULT_MODEL_ORGANS, lesions=("lesion_1", "lesion_2"))
    rows = []
    for patient in range(n_patients):
        record, twin, _, response = _virtual_patient(
            model, seed, patient, n_cycles, drift, risk_factor_prevalence, population_sd_scale,
            lesion_sd_scale, kidney_uptake_scale, n_draws=20, total_cycles=n_cycles)
        dose_per_mbq, _ = response.coefficients(n_cycles)  # (cycles, 1, organs), Gy/MBq
        for k in range(n_cycles):
            rows.append({"patient": record.patient_id, "cycle": k + 1,
                         "risk_factor": bool(record.risk_factors)}
                        | {f"{organ}_gy_per_gbq": float(dose_per_mbq[k, 0, j] * 1000.0)
                           for j, organ in enumerate(response.organs)})
    return pd.DataFrame(rows)


def _check_cohort(n_patients, min_patients, n_cycles, population_sd_scale, lesion_sd_scale,
                  kidney_uptake_scale, risk_factor_prevalence) -> float:
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
    return population_sd_scale if lesion_sd_scale is None else lesion_sd_scale


def virtual_trial(n_patients: int = 40, seed: int = 0, n_cycles: int = 6,
                  standard_activity_mbq: float = 7400.0, n_draws: int = 300,
                  policy: Policy | None = None, drift: DriftModel | None = None,
                  kidney_limit_gy: float = 28.0, relative_sd: float = 0.1,
                  calibration_sd: float = 0.03, n_bootstrap: int = 2000,
                  population_sd_scale: float = 1.0, lesion_sd_scale: float | None = None,
                  risk_factor_prevalence: float = 1.0, kidney_uptake_scale: float = 1.0,
                  max_guided_cycles: int | None = None, oracle: bool = False) -> TrialResult:
    """Run the trial described in the module docstring; return per-arm and per-patient tables.

    ``kidney_uptake_scale`` multiplies the population median of the virtual patients' kidney
    uptake rate ``k_in_kidneys`` (the truth only; the twin keeps the catalog prior, as a clinic
    would), which scales the cohort's kidney dose per GBq about proportionally: the catalog
    median gives ~0.59 Gy/GBq, published cohorts 0.39–0.82 Gy/GBq (Violet 2019, Delker 2016,
    Kratochwil 2016; data_catalog/pbpk/reduced_linear_psma617.yaml).
    ``max_guided_cycles`` lets the guided arm plan up to that many cycles (same interval;
    default ``n_cycles``); the fixed arm always gets ``n_cycles``.
    ``oracle`` adds a reference arm planned by the same planner on the patient's *true* kinetics
    (all cycles, drift included): what perfect knowledge would allow.

    Runtime is dominated by one-off JIT compilation (tens of seconds); then ~1 s per patient on
    a 2-core CPU with the default ``n_draws``.
    """
    import pandas as pd  # noqa: PLC0415

    lesion_sd_scale = _check_cohort(n_patients, 2, n_cycles, population_sd_scale, lesion_sd_scale,
                                    kidney_uptake_scale, risk_factor_prevalence)
    n_guided = n_cycles if max_guided_cycles is None else max_guided_cycles
    if not (isinstance(n_guided, int) and n_guided >= 1):
        raise InputError(f"max_guided_cycles: got {max_guided_cycles!r}; expected an integer >= 1")
    n_truth = max(n_cycles, n_guided)
    policy = policy or Policy(standard_activity_mbq=standard_activity_mbq)
    drift = drift or DriftModel()
    from tdt.pbpk import reduced_linear  # noqa: PLC0415
    from tdt.twin.twin import DEFAULT_MODEL_ORGANS  # noqa: PLC0415

    # one model object for every patient: compiled solvers are cached per model
    model = reduced_linear(DEFAULT_MODEL_ORGANS, lesions=("lesion_1", "lesion_2"))
    rows = []
    for patient in range(n_patients):
        # one stream per patient for who the patient is, another for the imaging noise: the same
        # virtual patients in every setting (common random numbers across arms and grid points)
        noise = np.random.default_rng([seed, patient, 1])
        record, twin, truth_params, truth_response = _virtual_patient(
            model, seed, patient, n_truth, drift, risk_factor_prevalence, population_sd_scale,
            lesion_sd_scale, kidney_uptake_scale, n_draws=n_draws, total_cycles=n_guided,
            calibration_sd=calibration_sd)
        risk = bool(record.risk_factors)
        amp, rates = batched_bolus_exponentials(model, truth_params)
        kid = twin.targets.index("kidneys")
        marrow = twin.targets.index("red_marrow") if "red_marrow" in twin.targets else None
        lesions = [twin.targets.index(t) for t in twin.targets if t.startswith("lesion")]
        fixed_kidney, fixed_tumour = _true_totals(truth_response, np.full(n_cycles, standard_activity_mbq),
                                                  kid, lesions)
        kidney_gy_per_gbq = float(evaluate(truth_response, [1000.0], constraints=())
                                  .cumulative_dose_gy[0, kid])
        # what the first (standard, not yet guided) cycle alone gives: no plan can undo it
        first_cycle_kidney = float(_true_totals(truth_response, [standard_activity_mbq], kid,
                                                lesions)[0])
        given = []
        plan_checks = []  # per plan: its P(kidney BED > own limit) and the truth if followed
        kidney_label = twin.default_constraints()[0].label
        policy_kidney_risk = twin.default_constraints()[0].max_probability
        activity = standard_activity_mbq
        times = np.asarray(IMAGING_TIMES_H)
        for k in range(n_guided):
            given.append(activity)
            calib = np.exp(calibration_sd * noise.standard_normal())
            measurements = {}
            for organ in IMAGED_ORGANS:
                c = amp[k, model.compartments.index(organ)]
                true_act = activity * (c[None, :] * np.exp(-rates[k][None, :] * times[:, None])).sum(1)
                noisy = true_act * calib * np.exp(relative_sd * noise.standard_normal(len(times)))
                measurements[organ] = (times, noisy)
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
        guided_kidney, guided_tumour = _true_totals(truth_response, np.array(given), kid, lesions)
        row = {"patient": record.patient_id, "risk_factor": bool(risk),
               "kidney_limit_gy": record.kidney_bed_limit_gy,
               "kidney_gy_per_gbq": kidney_gy_per_gbq,
               "first_cycle_kidney_bed_gy": first_cycle_kidney,
               "fixed_kidney_bed_gy": float(fixed_kidney),
               "guided_kidney_bed_gy": float(guided_kidney),
               "fixed_tumour_bed_gy": float(fixed_tumour),
               "guided_tumour_bed_gy": float(guided_tumour),
               "fixed_marrow_dose_gy": _true_marrow_dose(
                   truth_response, np.full(n_cycles, standard_activity_mbq), marrow),
               "guided_marrow_dose_gy": _true_marrow_dose(truth_response, np.array(given), marrow),
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
                    "oracle_marrow_dose_gy": _true_marrow_dose(truth_response, x, marrow),
                    "oracle_total_activity_mbq": float(x.sum()), "oracle_cycles": len(x),
                    "oracle_activities_mbq": [float(a) for a in x]}
        rows.append(row)
    patients = pd.DataFrame(rows)
    own_limit = patients["kidney_limit_gy"].to_numpy()
    boot = np.random.default_rng(seed + 1)
    table_rows = []
    arms = [("fixed", f"fixed {standard_activity_mbq / 1000:g} GBq x {n_cycles}"),
            ("guided", "dosimetry-guided")]
    if oracle:
        arms.append(("oracle", "oracle (true kinetics known; reference)"))
    for arm, label in arms:
        kidney = patients[f"{arm}_kidney_bed_gy"].to_numpy()
        tumour = patients[f"{arm}_tumour_bed_gy"].to_numpy()
        exceed = int(np.sum(kidney > kidney_limit_gy))
        lo, hi = _wilson(exceed, n_patients)
        own = int(np.sum(kidney > own_limit))
        olo, ohi = _wilson(own, n_patients)
        mlo, mhi = _bootstrap_median(tumour, boot, n_bootstrap)
        fixed_tumour = patients["fixed_tumour_bed_gy"].to_numpy()
        dlo, dhi = _paired_median_difference(tumour, fixed_tumour, boot, n_bootstrap)
        fixed_kidney = patients["fixed_kidney_bed_gy"].to_numpy()
        r28lo, r28hi = _paired_rate_difference(kidney > kidney_limit_gy,
                                               fixed_kidney > kidney_limit_gy, boot, n_bootstrap)
        rolo, rohi = _paired_rate_difference(kidney > own_limit, fixed_kidney > own_limit, boot,
                                             n_bootstrap)
        ratio = tumour / fixed_tumour  # per patient: this arm's tumour BED / the fixed arm's
        marrow_dose = patients[f"{arm}_marrow_dose_gy"].to_numpy()
        marrow_over = int(np.sum(marrow_dose > MARROW_DOSE_LIMIT_GY))
        mrlo, mrhi = _wilson(marrow_over, n_patients)
        rlo, rhi = _bootstrap_median(ratio, boot, n_bootstrap)
        table_rows.append({
            "arm": label, "n_patients": n_patients,
            f"kidney_bed_gt_{kidney_limit_gy:g}gy_rate": exceed / n_patients,
            "rate_ci95_low": lo, "rate_ci95_high": hi,
            "kidney_bed_gt_own_limit_rate": own / n_patients,
            "own_rate_ci95_low": olo, "own_rate_ci95_high": ohi,
            "rate_diff_vs_fixed": exceed / n_patients
            - float(np.mean(fixed_kidney > kidney_limit_gy)),
            "rate_diff_ci95_low": r28lo, "rate_diff_ci95_high": r28hi,
            "own_rate_diff_vs_fixed": own / n_patients - float(np.mean(fixed_kidney > own_limit)),
            "own_rate_diff_ci95_low": rolo, "own_rate_diff_ci95_high": rohi,
            "median_tumour_bed_gy": float(np.median(tumour)),
            "median_ci95_low": mlo, "median_ci95_high": mhi,
            "median_tumour_bed_diff_vs_fixed_gy": float(np.median(tumour) - np.median(fixed_tumour)),
            "diff_ci95_low": dlo, "diff_ci95_high": dhi,
            "median_tumour_bed_ratio_vs_fixed": float(np.median(ratio)),
            "ratio_ci95_low": rlo, "ratio_ci95_high": rhi,
            "fraction_tumour_bed_raised": float(np.mean(tumour > fixed_tumour)),
            "median_kidney_bed_gy": float(np.median(kidney)),
            f"marrow_dose_gt_{MARROW_DOSE_LIMIT_GY:g}gy_rate": marrow_over / n_patients,
            "marrow_rate_ci95_low": mrlo, "marrow_rate_ci95_high": mrhi,
            "mean_total_activity_gbq": float(patients[f"{arm}_total_activity_mbq"].mean() / 1000),
            "mean_cycles": float(patients[f"{arm}_cycles"].mean()),
        })
    settings = {"n_patients": n_patients, "seed": seed, "n_cycles": n_cycles,
                "standard_activity_mbq": standard_activity_mbq, "n_draws": n_draws,
                "policy": policy.__dict__, "drift": drift.to_dict(),
                "kidney_limit_gy": kidney_limit_gy, "relative_sd": relative_sd,
                "calibration_sd": calibration_sd, "posterior": "Laplace (per cycle)",
                "population_sd_scale": population_sd_scale, "lesion_sd_scale": lesion_sd_scale,
                "risk_factor_prevalence": risk_factor_prevalence,
                "kidney_uptake_scale": kidney_uptake_scale, "max_guided_cycles": n_guided,
                "oracle": oracle,
                "median_kidney_gy_per_gbq": float(patients["kidney_gy_per_gbq"].median()),
                # the cohort against published per-patient figures (VISION dosimetry sub-study)
                "mean_kidney_gy_per_gbq": float(patients["kidney_gy_per_gbq"].mean()),
                "sd_kidney_gy_per_gbq": float(patients["kidney_gy_per_gbq"].std(ddof=1)),
                "imaging_times_h": list(IMAGING_TIMES_H), "imaged_organs": list(IMAGED_ORGANS),
                "plan_calibration": plan_calibration(patients, policy_kidney_risk)}
    return TrialResult(pd.DataFrame(table_rows), patients, settings)
