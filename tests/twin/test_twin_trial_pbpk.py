"""The virtual trial on the PBPK twin (:func:`tdt.twin.virtual_trial_pbpk`).

Fast: the trial's truth (per-cycle doses from :func:`tdt.twin._pbpk_doses.simulate_paths`, the
bolus-wise solve with residual activity and peptide) against the general grid solver of
tdt.pbpk (``model.simulate`` of the whole schedule, a second method) through the same dosimetry;
the cohort's drift; the oracle arm against a grid search of uniform plans on the true schedule;
bad arguments. Slow: a 2-patient, 2-cycle trial end to end.
"""

from __future__ import annotations

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.inference import DriftModel, MeasurementModel
from tdt.inference._measurement import recovery_sds
from tdt.inference._predictive import dose_prediction
from tdt.pbpk import Administration, Schedule
from tdt.twin import virtual_trial_pbpk
from tdt.twin._pbpk_doses import HISTORY_H
from tdt.twin._pbpk_twin import fit_data
from tdt.twin._plan_types import Constraint
from tdt.twin._record import CycleData
from tdt.twin._trial_oracle import oracle_arm
from tdt.twin._trial_pbpk import PBPK_IMAGED_VOIS, RECOVERY_SD, _Truth, _virtual_patient

INTERVAL_H = 1008.0


def _general_solver_doses(truth, params, activities, ligands, cycle):
    """Dose (Gy) of administration ``cycle`` from ``model.simulate`` of the whole schedule (the
    grid solver of tdt.pbpk, every compartment), through the twin's dosimetry."""
    schedule = Schedule([Administration(j * INTERVAL_H, a, q)
                         for j, (a, q) in enumerate(zip(activities, ligands, strict=True))])
    sim = truth.base.simulate(params, schedule, cycle * INTERVAL_H + HISTORY_H)
    organs = [o for o in truth.organs if o in truth.sources]
    pred = {"times_h": HISTORY_H,
            "activity_mbq": {o: np.asarray(sim.activity_mbq[o])[None] for o in organs},
            "tia_mbq_h": {o: np.asarray(sim.tia_by_administration_mbq_h[o])[cycle:cycle + 1]
                          for o in organs},
            "ok": np.array([True]),
            "total_body_tia_mbq_h": np.array([sum(
                float(sim.tia_by_administration_mbq_h[o][cycle]) for o in truth.organs)])}
    out = dose_prediction(pred, nuclide="Lu-177", phantom=truth.record.phantom,
                          organ_masses_g=None, volumes_ml=dict(truth.record.lesions),
                          schedule=Schedule([Administration(0.0, activities[cycle])]),
                          report=truth.report)
    return {o: float(out.dose_gy[o][0]) for o in ("kidneys", "salivary_glands", "lesion_1")}


def test_trial_truth_matches_the_general_pbpk_solver():
    drifting = _virtual_patient("psma617", seed=5, patient=1, n_cycles=2, drift=DriftModel(),
                                risk_factor_prevalence=0.5)
    params = {k: float(v[0]) for k, v in drifting.params.items()}
    truth = _Truth(drifting.spec, drifting.base, drifting.record,
                   {k: np.full(2, v) for k, v in params.items()})  # no drift: one params dict
    activities, ligands = [7400.0, 5000.0], [150.0, 600.0]  # other ligand: saturation differs
    cycles = truth.cycles(activities, ligands, INTERVAL_H)
    for k in range(2):
        expected = _general_solver_doses(truth, params, activities, ligands, k)
        for organ, dose in expected.items():
            assert float(cycles[k].dose_gy[organ][0]) == pytest.approx(dose, rel=2e-3), organ
    totals = truth.totals(activities, ligands, INTERVAL_H)
    kidney_bed = sum(float(c.bed_gy["kidneys"][0]) for c in cycles)
    assert totals["kidney_bed_gy"] == pytest.approx(kidney_bed)
    kidney_dose = sum(float(c.dose_gy["kidneys"][0]) for c in cycles)
    assert kidney_dose < totals["kidney_bed_gy"] < 1.5 * kidney_dose  # G-factor, α/β = 2.6 Gy


def test_trial_cohort_drifts_by_the_twin_prior():
    patient = _virtual_patient("psma617", seed=0, patient=0, n_cycles=4, drift=DriftModel(),
                               risk_factor_prevalence=1.0)
    assert patient.record.risk_factors and patient.record.kidney_bed_limit_gy == 28.0
    assert set(PBPK_IMAGED_VOIS) <= set(patient.organs)
    drifting = [k for k, v in patient.params.items() if not np.allclose(v, v[0])]
    assert drifting and not any(k.startswith("krel_") for k in drifting)
    # the same patient twice (its own random stream), another patient differs
    again = _virtual_patient("psma617", 0, 0, 4, DriftModel(), 1.0)
    other = _virtual_patient("psma617", 0, 1, 4, DriftModel(), 1.0)
    name = drifting[0]
    np.testing.assert_array_equal(again.params[name], patient.params[name])
    assert not np.allclose(other.params[name], patient.params[name])


def test_trial_truth_has_the_twins_recovery_error():
    """The truth's imaging draws one recovery error per VOI (log-SD RECOVERY_SD, kept over the
    cycles) because the PBPK twin's measurement model has exactly that free term for every
    VOI (fit_data: recovery 1, MeasurementModel's recovery_sd): a well-specified prior cohort.
    Independent check of the draws: over 300 patients x 6 VOIs the log factors' SD is
    RECOVERY_SD within 4 standard errors (SE of an SD ~ sd / sqrt(2n)); the kinetics do not
    depend on it (own random stream)."""
    truth = _virtual_patient("psma617", 0, 0, 2, DriftModel(), 0.5)
    times = np.array([4.0, 24.0, 48.0])
    cycle = CycleData(7400.0, {o: (times, np.ones(3)) for o in PBPK_IMAGED_VOIS})
    data, _ = fit_data(truth.record, [cycle, cycle], INTERVAL_H, [150.0, 150.0], 0.03)
    np.testing.assert_allclose(recovery_sds(data, MeasurementModel()), RECOVERY_SD)
    logs = np.log([[_virtual_patient("psma617", 0, p, 1, DriftModel(), 0.5).recovery[o]
                    for o in PBPK_IMAGED_VOIS] for p in range(300)]).ravel()
    se = RECOVERY_SD / np.sqrt(2 * logs.size)
    assert abs(logs.std(ddof=1) - RECOVERY_SD) < 4 * se, logs.std(ddof=1)
    assert abs(logs.mean()) < 4 * RECOVERY_SD / np.sqrt(logs.size)
    exact = _virtual_patient("psma617", 0, 0, 2, DriftModel(), 0.5, recovery_sd=0.0)
    assert set(exact.recovery.values()) == {1.0}
    for name, values in truth.params.items():
        np.testing.assert_array_equal(exact.params[name], values)
    # the same noise stream: images differ by exactly the recovery factor per VOI
    a = truth.image([7400.0], [150.0], INTERVAL_H, np.random.default_rng(1), 0.1, 0.03)
    b = exact.image([7400.0], [150.0], INTERVAL_H, np.random.default_rng(1), 0.1, 0.03)
    for o in PBPK_IMAGED_VOIS:
        np.testing.assert_allclose(a[o][1] / b[o][1], truth.recovery[o], rtol=1e-12)


def _cycle_one_kidney_gy_per_gbq(n, reabsorption_scale, population_sd_scale):
    out = []
    for p in range(n):
        truth = _virtual_patient("psma617", 0, p, 1, DriftModel(), 0.665, reabsorption_scale,
                                 population_sd_scale)
        (cycle,) = truth.cycles([7400.0], [150.0], INTERVAL_H)
        out.append(float(cycle.dose_gy["kidneys"][0]) / 7.4)
    return np.asarray(out)


def test_vision_calibrated_pbpk_cohort():
    """VISION dosimetry sub-study (Herrmann K, et al. J Nucl Med 2024;65:71-78; 30 patients,
    7.4 GBq): kidneys 0.43 +- 0.16 Gy/GBq in cycle 1. The cohort's scales (0.35, 0.8) were
    chosen to match on seed 0; here the mean and SD must lie within two standard errors of
    VISION's (SE of the mean 0.16/sqrt(30), of the SD 0.16/sqrt(2*29)), and the prior cohort
    (1, 1) must not (it is about twice VISION's mean)."""
    kidney = _cycle_one_kidney_gy_per_gbq(400, 0.35, 0.8)
    assert abs(kidney.mean() - 0.43) < 2 * 0.16 / np.sqrt(30), kidney.mean()
    assert abs(kidney.std(ddof=1) - 0.16) < 2 * 0.16 / np.sqrt(58), kidney.std(ddof=1)
    prior = _cycle_one_kidney_gy_per_gbq(100, 1.0, 1.0)
    assert prior.mean() > 0.43 + 4 * 0.16 / np.sqrt(30)
    # without reabsorption the kidney dose falls below half of the prior cohort's
    assert _cycle_one_kidney_gy_per_gbq(100, 0.0, 1.0).mean() < 0.5 * prior.mean()


def test_oracle_arm_beats_a_grid_of_uniform_plans_on_the_truth():
    """The oracle (per-cycle planner on the true parameters, then scaled until the true schedule
    meets every limit) against an independent brute force: 12 activities x 5 ligand amounts,
    the same in both cycles, each solved on the true schedule (residual activity and peptide
    included); the best plan meeting the limits there. Prior cohort, patient 0 of seed 5: at the
    upper bounds the true kidney BED is ~34 Gy > its 28 Gy limit, so the constraint binds."""
    truth = _virtual_patient("psma617", 5, 0, 2, DriftModel(), 0.665, 1.0, 1.0)
    limit = truth.record.kidney_bed_limit_gy
    constraints = (Constraint("kidneys", "bed", limit), Constraint("red_marrow", "dose", 2.0))
    bounds = {"activity_bounds_mbq": (3700.0, 9000.0), "ligand_bounds_nmol": (20.0, 1000.0)}
    assert truth.totals([9000.0] * 2, [20.0] * 2, INTERVAL_H)["kidney_bed_gy"] > limit
    oracle = oracle_arm(truth, constraints, 2, bounds, INTERVAL_H)
    assert oracle["oracle_cycles"] == 2
    assert oracle["oracle_kidney_bed_gy"] <= limit + 1e-6
    assert oracle["oracle_kidney_bed_gy"] > 0.99 * limit  # the binding constraint is used
    assert oracle["oracle_marrow_dose_gy"] <= 2.0
    grid_best = 0.0
    for activity in np.linspace(3700.0, 9000.0, 12):
        for ligand in (20.0, 60.0, 150.0, 400.0, 1000.0):
            true = truth.totals([activity] * 2, [ligand] * 2, INTERVAL_H)
            if true["kidney_bed_gy"] <= limit and true["marrow_dose_gy"] <= 2.0:
                grid_best = max(grid_best, true["tumour_bed_gy"])
    assert grid_best > 0.0
    assert oracle["oracle_tumour_bed_gy"] >= grid_best - 1e-9
    assert sum(oracle["oracle_activities_mbq"]) == pytest.approx(
        oracle["oracle_total_activity_mbq"])


@pytest.mark.parametrize("kwargs, field", [({"n_patients": 1}, "n_patients"),
                                           ({"reabsorption_scale": -1.0}, "reabsorption_scale"),
                                           ({"population_sd_scale": float("nan")},
                                            "population_sd_scale"),
                                           ({"recovery_sd": -0.1}, "recovery_sd"),
                                           ({"n_cycles": 1}, "n_cycles"),
                                           ({"risk_factor_prevalence": 1.5},
                                            "risk_factor_prevalence")])
def test_trial_rejects_bad_arguments(kwargs, field):
    with pytest.raises(InputError, match=field):
        virtual_trial_pbpk(**kwargs)


@pytest.mark.slow
def test_pbpk_virtual_trial_two_patients_two_cycles():
    result = virtual_trial_pbpk(n_patients=2, n_cycles=2, n_draws=200, n_bootstrap=200, seed=3,
                                oracle=True)
    table, patients = result.table, result.patients
    assert len(table) == 3 and table["arm"].iloc[1].startswith("PBPK twin")
    assert table["arm"].iloc[2].startswith("oracle") and result.settings["oracle"] is True
    # the oracle knows the truth: it meets every patient's own limit on the true schedule
    assert np.all(patients["oracle_kidney_bed_gy"] <= patients["kidney_limit_gy"] + 1e-6)
    assert np.all(patients["oracle_marrow_dose_gy"] <= 2.0)
    assert np.all(np.isfinite(table["median_tumour_bed_gy"]))
    assert len(patients) == 2
    for _, row in patients.iterrows():
        assert row["fixed_cycles"] == 2 and 1 <= row["guided_cycles"] <= 2
        assert row["guided_activities_mbq"][0] == 7400.0
        assert row["guided_ligand_nmol"][0] == 150.0
        for a, q in zip(row["guided_activities_mbq"][1:], row["guided_ligand_nmol"][1:],
                        strict=True):
            assert 3700.0 - 1e-6 <= a <= 9000.0 + 1e-6 and 20.0 - 1e-6 <= q <= 1000.0 + 1e-6
        for check in row["guided_plan_checks"]:
            assert check["kidney_risk"] <= 0.05 + 1e-9
        # the fixed arm's truth from the trial's own patient, recomputed
        assert row["fixed_kidney_bed_gy"] > row["first_cycle_kidney_bed_gy"] > 0.0
    calibration = result.settings["plan_calibration"]
    assert calibration["n_plans"] == sum(len(c) for c in patients["guided_plan_checks"])
    assert result.settings["twin"].endswith("(LAPLACE PREVIEW)")
    # the twin's final posterior of every guided cycle's dose, against the truth (PIT)
    coverage = result.settings["posterior_calibration"]
    assert set(coverage) == {"kidneys", "salivary_glands", "lesion_1", "lesion_2"}
    for organ, row in coverage.items():
        assert row["n"] == int(patients["guided_cycles"].sum()), organ
        assert 0.0 <= row["coverage_50"] <= row["coverage_90"] <= 1.0
    # cycle-1 dose per GBq of the cohort (kidneys: the fixed arm's first cycle, BED > dose)
    assert np.all(patients["kidneys_gy_per_gbq"] * 7.4
                  < patients["first_cycle_kidney_bed_gy"] + 1e-9)
    assert result.settings["mean_kidneys_gy_per_gbq"] == pytest.approx(
        patients["kidneys_gy_per_gbq"].mean())
