"""Virtual trial: table structure, interval arithmetic (Wilson score by hand), policy bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.twin import PatientRecord, Policy, Twin, virtual_trial
from tdt.twin._trial import MARROW_DOSE_LIMIT_GY


def wilson(k, n, z=1.959963984540054):
    """Wilson score interval (Wilson, JASA 1927;22:209), written out independently."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_small_virtual_trial_table():
    result = virtual_trial(n_patients=4, seed=2, n_draws=400, n_bootstrap=200)
    table, patients = result.table, result.patients
    assert list(table["arm"]) == ["fixed 7.4 GBq x 6", "dosimetry-guided"]
    assert len(patients) == 4
    for _, row in table.iterrows():
        k = round(row["kidney_bed_gt_28gy_rate"] * 4)
        lo, hi = wilson(k, 4)
        assert row["rate_ci95_low"] == pytest.approx(lo, abs=1e-9)
        assert row["rate_ci95_high"] == pytest.approx(hi, abs=1e-9)
        assert row["median_ci95_low"] <= row["median_tumour_bed_gy"] <= row["median_ci95_high"]
    fixed = patients["fixed_kidney_bed_gy"].to_numpy()
    assert table.loc[0, "kidney_bed_gt_28gy_rate"] == np.mean(fixed > 28.0)
    policy = Policy()
    per_cycle = patients["guided_total_activity_mbq"] / patients["guided_cycles"]
    assert np.all(per_cycle >= policy.min_activity_mbq - 1e-6)
    assert np.all(per_cycle <= policy.max_activity_mbq + 1e-6)
    assert result.settings["posterior"].startswith("Laplace")
    # the difference of medians is computed on the same patients (paired design)
    diff = np.median(patients["guided_tumour_bed_gy"]) - np.median(patients["fixed_tumour_bed_gy"])
    assert table.loc[1, "median_tumour_bed_diff_vs_fixed_gy"] == pytest.approx(diff)
    assert table.loc[1, "diff_ci95_low"] <= table.loc[1, "diff_ci95_high"]
    assert table.loc[0, "median_tumour_bed_diff_vs_fixed_gy"] == 0.0
    ratio = patients["guided_tumour_bed_gy"] / patients["fixed_tumour_bed_gy"]
    assert table.loc[1, "median_tumour_bed_ratio_vs_fixed"] == pytest.approx(np.median(ratio))
    assert table.loc[1, "fraction_tumour_bed_raised"] == pytest.approx(np.mean(ratio > 1))
    assert table.loc[0, "median_tumour_bed_ratio_vs_fixed"] == 1.0


def test_trial_options_cycles_oracle_own_limit_and_kidney_scale():
    """max_guided_cycles, the oracle arm, the own-limit rate and kidney_uptake_scale."""
    base = dict(n_patients=3, seed=5, n_draws=60, n_bootstrap=100, risk_factor_prevalence=0.5)
    result = virtual_trial(**base, max_guided_cycles=8, oracle=True)
    table, patients = result.table, result.patients
    assert list(table["arm"])[2].startswith("oracle")
    assert np.all(patients["fixed_cycles"] == 6)
    assert np.all((patients["guided_cycles"] >= 1) & (patients["guided_cycles"] <= 8))
    assert np.all(patients["guided_activities_mbq"].map(len) == patients["guided_cycles"])
    assert np.allclose(patients["guided_activities_mbq"].map(sum),
                       patients["guided_total_activity_mbq"])
    # Bodei 2008 limits: 28 Gy with a risk factor, 40 Gy without
    assert np.all(patients["kidney_limit_gy"] == np.where(patients["risk_factor"], 28.0, 40.0))
    # the oracle plans on the true kinetics (one draw): its kidney BED never exceeds the limit,
    # nor its red-marrow dose the twin's 2 Gy
    assert np.all(patients["oracle_kidney_bed_gy"] <= patients["kidney_limit_gy"] + 1e-6)
    assert np.all(patients["oracle_marrow_dose_gy"] <= MARROW_DOSE_LIMIT_GY + 1e-6)
    twin_marrow = [c for c in Twin(PatientRecord("p"), model="reduced").default_constraints()
                   if c.organ == "red_marrow"]
    assert [(c.quantity, c.limit_gy) for c in twin_marrow] == [("dose", MARROW_DOSE_LIMIT_GY)]
    # every marrow rate recounted by hand with its Wilson interval
    assert np.all(patients["fixed_marrow_dose_gy"] > 0)
    for i, arm in enumerate(("fixed", "guided", "oracle")):
        k = int(np.sum(patients[f"{arm}_marrow_dose_gy"] > 2.0))
        assert table.loc[i, "marrow_dose_gt_2gy_rate"] == pytest.approx(k / 3)
        lo, hi = wilson(k, 3)
        assert table.loc[i, "marrow_rate_ci95_low"] == pytest.approx(lo, abs=1e-9)
        assert table.loc[i, "marrow_rate_ci95_high"] == pytest.approx(hi, abs=1e-9)
    for i, arm in enumerate(("fixed", "guided", "oracle")):
        own = np.mean(patients[f"{arm}_kidney_bed_gy"] > patients["kidney_limit_gy"])
        assert table.loc[i, "kidney_bed_gt_own_limit_rate"] == pytest.approx(own)
        lo, hi = wilson(round(own * 3), 3)
        assert table.loc[i, "own_rate_ci95_low"] == pytest.approx(lo, abs=1e-9)
        assert table.loc[i, "own_rate_ci95_high"] == pytest.approx(hi, abs=1e-9)
    # rate differences from the fixed arm (paired), recomputed from the per-patient table
    fixed_own = np.mean(patients["fixed_kidney_bed_gy"] > patients["kidney_limit_gy"])
    guided_own = np.mean(patients["guided_kidney_bed_gy"] > patients["kidney_limit_gy"])
    assert table.loc[1, "own_rate_diff_vs_fixed"] == pytest.approx(guided_own - fixed_own)
    assert table.loc[1, "own_rate_diff_ci95_low"] <= table.loc[1, "own_rate_diff_ci95_high"]
    assert table.loc[0, "rate_diff_vs_fixed"] == 0.0
    # plan calibration: one check per plan that was followed by a cycle, counted by hand
    cal = result.settings["plan_calibration"]
    checks = [(c, lim) for cs, lim in zip(patients["guided_plan_checks"],
                                          patients["kidney_limit_gy"], strict=True) for c in cs]
    assert cal["n_plans"] == len(checks)
    assert cal["exceeded"] == sum(c["true_kidney_bed_if_followed_gy"] > lim for c, lim in checks)
    assert all(c["kidney_risk"] <= 0.05 + 1e-12 for c, _ in checks)
    for cs, given in zip(patients["guided_plan_checks"], patients["guided_cycles"], strict=True):
        assert [c["after_cycle"] for c in cs] == list(range(1, len(cs) + 1))
        assert len(cs) == given - 1  # a plan is recorded when, and only when, a cycle follows
    # the first cycle's kidney BED is at most the whole fixed course's
    assert np.all(patients["first_cycle_kidney_bed_gy"] < patients["fixed_kidney_bed_gy"])
    # More cycles allowed can only help a planner with perfect knowledge: the first 6 cycles'
    # true kinetics are the same (common random numbers) and its candidate schedules with up to
    # 6 cycles are among those with up to 8, so its true tumour BED (its objective) cannot fall.
    six = virtual_trial(**base, max_guided_cycles=6, oracle=True).patients
    assert np.all(six["fixed_tumour_bed_gy"] == patients["fixed_tumour_bed_gy"])
    assert np.all(patients["oracle_tumour_bed_gy"] >= six["oracle_tumour_bed_gy"] * (1 - 1e-9))
    assert np.all(six["oracle_cycles"] <= 6)
    # Halving kidney uptake (same patients: the scale draws no random numbers) at least halves
    # the kidney dose per GBq but not much more: kidney TIA = k_in * AUC_plasma / (k_out + lambda)
    # in the linear model, and AUC_plasma rises when less activity goes to the kidneys.
    half = virtual_trial(**(base | {"n_patients": 2}), kidney_uptake_scale=0.5)
    full = virtual_trial(**(base | {"n_patients": 2}))
    ratio = half.patients["kidney_gy_per_gbq"] / full.patients["kidney_gy_per_gbq"]
    assert np.all((ratio >= 0.5) & (ratio < 0.6))
    assert half.settings["kidney_uptake_scale"] == 0.5
    # Absorbed dose is linear in activity (BED is not): halving the standard activity halves the
    # fixed arm's marrow dose exactly for the same patients, while its kidney BED falls to
    # between a quarter and a half (the dose term halves, the quadratic term falls by four).
    low = virtual_trial(**(base | {"n_patients": 2}), standard_activity_mbq=3700.0).patients
    assert np.allclose(low["fixed_marrow_dose_gy"], 0.5 * full.patients["fixed_marrow_dose_gy"],
                       rtol=1e-9)
    kidney_ratio = low["fixed_kidney_bed_gy"] / full.patients["fixed_kidney_bed_gy"]
    assert np.all((kidney_ratio > 0.25) & (kidney_ratio < 0.5))


def test_virtual_trial_input_errors():
    with pytest.raises(InputError, match="n_patients"):
        virtual_trial(n_patients=1)
    with pytest.raises(InputError, match="risk_factor_prevalence"):
        virtual_trial(n_patients=3, risk_factor_prevalence=2.0)
    with pytest.raises(InputError, match="kidney_uptake_scale"):
        virtual_trial(n_patients=3, kidney_uptake_scale=0.0)
    with pytest.raises(InputError, match="max_guided_cycles"):
        virtual_trial(n_patients=3, max_guided_cycles=0)


@pytest.mark.slow
def test_guided_arm_lowers_kidney_exceedance():
    result = virtual_trial(n_patients=40, seed=1)
    table = result.table
    fixed, guided = table["kidney_bed_gt_28gy_rate"]
    assert guided < fixed
    # Clearly separated: the guided arm's 95 % CI lies below the fixed arm's. Whether the
    # planner's 5 % is met is tested in test_twin_calibration.py (realised rates include patients
    # over the limit after the first, unplanned cycle; docs/twin.md "Planner calibration").
    assert table.loc[1, "rate_ci95_high"] < table.loc[0, "rate_ci95_low"]


@pytest.mark.slow
def test_shipped_study_cohort_supports_the_issue_claim():
    """Issue #10's claim on the shipped study's primary cohort (VISION-calibrated, 200 patients).

    Guided planning lowers the rate of kidney BED > 28 Gy (paired 95 % CI of the difference below
    0) while raising tumour BED: the median per-patient ratio's and the paired difference of
    medians' 95 % CIs lie above 1 and 0. The grid's higher kidney uptakes are a sensitivity
    analysis where the tumour half does not hold (docs/twin.md).
    """
    from pathlib import Path

    import yaml

    study = yaml.safe_load((Path(__file__).resolve().parents[2] / "studies"
                            / "virtual_trial_reduced.yaml").read_text())
    p = study["parameters"]
    policy = Policy(standard_activity_mbq=p["activity_gbq"] * 1000.0,
                    max_activity_mbq=p["max_activity_gbq"] * 1000.0)
    result = virtual_trial(n_patients=p["n_patients"], seed=study["seed"], n_cycles=p["n_cycles"],
                           standard_activity_mbq=p["activity_gbq"] * 1000.0,
                           n_draws=p["n_draws"], policy=policy,
                           kidney_limit_gy=p["kidney_bed_limit_gy"],
                           population_sd_scale=p["population_sd_scale"],
                           lesion_sd_scale=p["lesion_sd_scale"],
                           risk_factor_prevalence=p["risk_factor_prevalence"],
                           kidney_uptake_scale=p["kidney_uptake_scale"],
                           marrow_uptake_scale=p["marrow_uptake_scale"],
                           max_guided_cycles=p["max_guided_cycles"])
    guided = result.table.set_index("arm").loc["dosimetry-guided"]
    assert guided["rate_diff_ci95_high"] < 0.0
    assert guided["own_rate_diff_ci95_high"] < 0.0
    assert guided["ratio_ci95_low"] > 1.0
    assert guided["diff_ci95_low"] > 0.0
