"""Statistics of the virtual trial: Wilson and bootstrap intervals, per-arm table rows, and the
planner's calibration (planned against realised kidney risk). See :mod:`tdt.twin._trial`."""

from __future__ import annotations

import numpy as np
from scipy.stats import binom, binomtest

from tdt.units import mbq_to_gbq


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion k / n at ``confidence`` (scipy.stats.binomtest)."""
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_median(values: np.ndarray, rng: np.random.Generator, n_boot: int):
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    medians = np.median(values[idx], axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def paired_median_difference(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                              n_boot: int) -> tuple[float, float]:
    """95 % percentile CI of median(a) − median(b) resampling patients (pairs kept together)."""
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    diff = np.median(a[idx], axis=1) - np.median(b[idx], axis=1)
    return float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))


def paired_rate_difference(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
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


def arm_row(patients, arm: str, label: str, kidney_limit_gy: float, marrow_limit_gy: float,
            boot: np.random.Generator, n_bootstrap: int) -> dict:
    """One row of the trial table: exceedance rates (Wilson 95 % CIs), median tumour BED
    (bootstrap CI) and the paired differences from the fixed arm (patients resampled as pairs)."""
    n_patients = len(patients)
    own_limit = patients["kidney_limit_gy"].to_numpy()
    kidney = patients[f"{arm}_kidney_bed_gy"].to_numpy()
    tumour = patients[f"{arm}_tumour_bed_gy"].to_numpy()
    exceed = int(np.sum(kidney > kidney_limit_gy))
    lo, hi = wilson(exceed, n_patients)
    own = int(np.sum(kidney > own_limit))
    olo, ohi = wilson(own, n_patients)
    mlo, mhi = bootstrap_median(tumour, boot, n_bootstrap)
    fixed_tumour = patients["fixed_tumour_bed_gy"].to_numpy()
    dlo, dhi = paired_median_difference(tumour, fixed_tumour, boot, n_bootstrap)
    fixed_kidney = patients["fixed_kidney_bed_gy"].to_numpy()
    r28lo, r28hi = paired_rate_difference(kidney > kidney_limit_gy,
                                          fixed_kidney > kidney_limit_gy, boot, n_bootstrap)
    rolo, rohi = paired_rate_difference(kidney > own_limit, fixed_kidney > own_limit, boot,
                                        n_bootstrap)
    ratio = tumour / fixed_tumour  # per patient: this arm's tumour BED / the fixed arm's
    marrow_dose = patients[f"{arm}_marrow_dose_gy"].to_numpy()
    marrow_over = int(np.sum(marrow_dose > marrow_limit_gy))
    mrlo, mrhi = wilson(marrow_over, n_patients)
    rlo, rhi = bootstrap_median(ratio, boot, n_bootstrap)
    return {
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
        f"marrow_dose_gt_{marrow_limit_gy:g}gy_rate": marrow_over / n_patients,
        "marrow_rate_ci95_low": mrlo, "marrow_rate_ci95_high": mrhi,
        "median_marrow_dose_gy": float(np.median(marrow_dose)),
        # lacrimal glands: reported, no published limit (not constrained by the planner)
        "median_lacrimal_dose_gy": float(np.median(patients[f"{arm}_lacrimal_dose_gy"]))
        if f"{arm}_lacrimal_dose_gy" in patients else float("nan"),
        "mean_total_activity_gbq": float(mbq_to_gbq(patients[f"{arm}_total_activity_mbq"].mean())),
        "mean_cycles": float(patients[f"{arm}_cycles"].mean()),
    }


#: confidence of the interval behind :func:`posterior_coverage`'s MISCALIBRATED flag
FLAG_CONFIDENCE = 0.99


def posterior_coverage(pits_per_patient, levels=(0.5, 0.9)) -> dict:
    """Coverage of true doses by the twin's central posterior intervals, from PIT values.

    ``pits_per_patient``: per patient, organ → per-cycle PIT (the fraction of posterior draws
    below the true dose of that cycle). A true value lies in the central ``level`` interval when
    ``|PIT − 0.5| <= level / 2``; with a calibrated posterior the coverage is ``level``
    (simulation-based calibration: Talts S, et al. arXiv:1804.06788, 2018). Per organ and level:
    the pooled coverage over every (patient, cycle) with a Wilson 95 % CI (cycles of one patient
    are correlated, so the CI is a guide) and the coverage of each cycle index across patients
    (independent). Also the mean PIT (0.5 when unbiased; above: the posterior is too low).

    ``flag``: ``"MISCALIBRATED (...)"`` when a nominal level lies outside the Wilson
    :data:`FLAG_CONFIDENCE` (99 %) interval of its coverage computed with the *patient* count as
    the sample size (conservative: a patient's cycles are correlated, so the effective sample
    lies between the patients and the patient-cycles; 99 % so that a calibrated twin is rarely
    flagged among 4 organs × 2 levels), else ``""`` — shown next to the coverage.
    """
    organs = sorted({o for pits in pits_per_patient for o in pits})
    out = {}
    for organ in organs:
        per_cycle = [pits[organ] for pits in pits_per_patient if organ in pits]
        pooled = np.array([p for cycle_pits in per_cycle for p in cycle_pits], dtype=float)
        if pooled.size == 0:
            continue
        row = {"n": int(pooled.size), "n_patients": len(per_cycle),
               "mean_pit": float(np.mean(pooled))}
        n_cycles = max(len(c) for c in per_cycle)
        missed = []
        for level in levels:
            inside = np.abs(pooled - 0.5) <= level / 2.0
            lo, hi = wilson(int(inside.sum()), inside.size)
            key = f"coverage_{round(level * 100)}"
            row[key] = float(inside.mean())
            low, high = wilson(round(inside.mean() * len(per_cycle)), len(per_cycle),
                               FLAG_CONFIDENCE)
            if not low <= level <= high:
                missed.append(f"{round(level * 100)} % interval covers {inside.mean():.0%}")
            row[f"{key}_ci95"] = [lo, hi]
            row[f"{key}_by_cycle"] = [
                float(np.mean([abs(c[k] - 0.5) <= level / 2.0 for c in per_cycle if len(c) > k]))
                for k in range(n_cycles)]
        row["flag"] = f"MISCALIBRATED ({'; '.join(missed)})" if missed else ""
        out[organ] = row
    return out
