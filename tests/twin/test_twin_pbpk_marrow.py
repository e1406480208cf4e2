"""Blood-based red marrow in the receptor-PBPK twin's prediction and plan (issue 23;
tdt.twin._plan_marrow.pbpk_blood_marrow, the same helper module as the linear twin's).

Fast: the per-administration marrow of a twin with blood samples on cycle 1 of 2 (hand
computation: blood TIA of a mono-exponential blood curve in closed form, RMBLR 1, m_RM / rho;
the calibration identity at the sampled cycle), and ``LigandResponse(marrow_scale=s)`` is affine
in s with the marrow column of the dose matrix (dose = TIA x S per MBq). Slow: a tiny NUTS PBPK
twin with blood samples — the plan says which marrow it used, its P(marrow dose > limit) is the
fraction of the twin's own predicted draws above it, and the delivered cycle's marrow TIA is
that cycle's blood-based draws.
"""

from __future__ import annotations

import datetime as dt
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from tdt.dosimetry import REMAINDER_TISSUES, RMBLR_PEPTIDE_SD_LOG, reference_mass_g
from tdt.dosimetry._marrow import BLOOD_DENSITY_G_PER_ML
from tdt.errors import InputError
from tdt.inference import BloodSamples
from tdt.inference._predictive import BLOOD_TIA_SD_LOG
from tdt.pbpk import Administration, Schedule, draw_parameters, get_model, psma617
from tdt.physics import nuclide
from tdt.twin import Calibration, Constraint, CycleData, LigandResponse, PatientRecord, Twin
from tdt.twin._plan_marrow import pbpk_blood_marrow

BLOOD_H = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 24.0, 48.0, 96.0, 168.0, 336.0])
TIMES = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
C0, K_BIO = 0.05, 0.05  # blood: 0.05 MBq/mL x e^{-(k + lambda) t}, k 1/h
RECORD = PatientRecord("pt-marrow", lesions={"lesion_1": 10.0})


def _blood(scale: float = 1.0) -> BloodSamples:
    lam = nuclide("Lu-177").decay_constant_per_h
    return BloodSamples(BLOOD_H, scale * C0 * np.exp(-(K_BIO + lam) * BLOOD_H), hematocrit=0.4)


def test_pbpk_marrow_per_administration_by_hand():
    meas = {"kidneys": (TIMES, 100.0 * np.exp(-0.02 * TIMES))}
    twin = SimpleNamespace(cycles=[CycleData(7400.0, meas, blood=_blood()),
                                   CycleData(6000.0, meas)],
                           n_draws=400, seed=2, record=RECORD)
    rng = np.random.default_rng(0)
    model = 1500.0 * np.exp(0.2 * rng.standard_normal((400, 4)))  # MBq·h per administration
    activities = [7400.0, 6000.0, 7000.0, 5000.0]
    out = pbpk_blood_marrow(twin, model, activities)
    assert out.methods == ("blood", "image", "blood", "blood")
    assert out.tia_mbq_h[1] is None  # a delivered cycle without samples keeps the model
    # cycle 1: RMBLR x blood TIA / rho x m_RM; blood TIA of C0 e^{-(k+lam)t} = C0 / (k + lam)
    lam = nuclide("Lu-177").decay_constant_per_h
    hand = C0 / (K_BIO + lam) / BLOOD_DENSITY_G_PER_ML * reference_mass_g("red_marrow")
    log_tia = np.log(out.tia_mbq_h[0])
    sd = np.hypot(RMBLR_PEPTIDE_SD_LOG, BLOOD_TIA_SD_LOG)
    # the closed form within the stated blood-TIA error (90 %): the trapezoid over 11 samples of
    # this convex washout overestimates by ~8 %; the formula itself (RMBLR 1, rho, m_RM) on the
    # samples' integral within Monte Carlo error
    assert abs(np.mean(log_tia) - np.log(hand)) < 1.645 * BLOOD_TIA_SD_LOG
    integral = _blood().blood_tia_mbq_h_per_ml() / BLOOD_DENSITY_G_PER_ML
    assert np.mean(log_tia) == pytest.approx(np.log(integral * reference_mass_g("red_marrow")),
                                             abs=3 * sd / 20)
    assert np.std(log_tia) == pytest.approx(sd, rel=0.15)
    # calibration identity: the factor reproduces the blood-based TIA at the sampled cycle
    np.testing.assert_allclose(out.scale * model[:, 0], out.tia_mbq_h[0], rtol=1e-12)
    for k in (2, 3):  # future cycles: the model's marrow at their own kinetics x the factor
        np.testing.assert_allclose(out.tia_mbq_h[k], model[:, k] * out.scale, rtol=1e-12)
    plain = SimpleNamespace(cycles=[CycleData(7400.0, meas)], n_draws=400, seed=2, record=RECORD)
    none = pbpk_blood_marrow(plain, model, activities)
    assert none.scale is None and none.methods == ("image",) * 4 and "image" in none.note()


def test_ligand_response_marrow_scale_is_affine_in_the_marrow_tia():
    forward = get_model("psma617").build(lesions=1, method="grid")
    sd = {n: 0.0 for n in forward.parameter_names} | {"GFR": 0.3, "R_kidneys": 0.3}
    draws = {k: np.asarray(v) for k, v in draw_parameters(forward, 8, seed=1, sd_log=sd).items()}
    base = LigandResponse(forward, draws)
    s = np.linspace(0.5, 2.0, 8)
    scaled = LigandResponse(forward, draws, marrow_scale=s)
    d0, _ = base.coefficients(150.0)
    d1, q1 = scaled.coefficients(150.0)
    rm = base.organs.index("red_marrow")
    col = base.compartments.index("red_marrow")
    # the extra marrow TIA comes out of the remainder of body (whole body fixed, as
    # predict_doses(marrow="blood")): d(s) = d(1) + (s - 1) TIA_RM (M[:, RM] - M[:, RB]), RB a
    # remainder-tissue column; the marrow TIA per MBq recovered from every target is the same
    rb = next(i for i, c in enumerate(base.compartments) if c in REMAINDER_TISSUES)
    column = base.dose_matrix[:, col] - base.dose_matrix[:, rb]
    tia_rm = (d1[:, rm] - d0[:, rm]) / ((s - 1.0) * column[rm])
    j = base.organs.index("kidneys")
    tia_from_kidneys = (d1[:, j] - d0[:, j]) / ((s - 1.0) * column[j])
    ok = np.abs(s - 1.0) > 0.05
    assert np.all(tia_rm[ok] > 0)
    np.testing.assert_allclose(tia_from_kidneys[ok], tia_rm[ok], rtol=1e-6)
    # marrow self-dose dominates its dose: scaling the TIA scales the marrow dose nearly as s
    assert np.all(np.abs(d1[:, rm] / d0[:, rm] - s) < 0.2 * np.abs(s - 1.0) + 1e-12)
    assert np.all(np.isfinite(q1))
    with pytest.raises(InputError, match="marrow_scale"):
        LigandResponse(forward, draws, marrow_scale=np.ones(3))


@pytest.mark.slow
def test_pbpk_twin_plan_uses_the_blood_based_marrow():
    rng = np.random.default_rng(4)
    model = psma617(lesions=("lesion_1",), method="grid")
    params = model.default_params()
    schedule = Schedule([Administration(0.0, 7400.0, 100.0)])
    sim = model.simulate(params, schedule, TIMES)
    meas = {o: (TIMES, np.asarray(sim.activity_mbq[o]) * np.exp(0.1 * rng.standard_normal(5)))
            for o in ("kidneys", "salivary_glands", "lesion_1")}
    cal = Calibration(1.0, dt.date(2026, 1, 1))
    twins = {}
    for name, blood in (("image", None), ("blood", _blood(scale=8.0))):  # ~2.4x the model
        twin = Twin(RECORD, model="psma617", n_draws=20, total_cycles=4,
                    nuts_options={"draws": 10, "tune": 10, "chains": 1})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            twin.assimilate(CycleData(7400.0, meas, cal, dt.date(2026, 1, 5), 0.1, blood=blood))
        twins[name] = twin
    blood_twin = twins["blood"]
    prediction = blood_twin.predict([7400.0])
    delivered = prediction.cycles[0]
    assert delivered.marrow_method == "blood" and prediction.marrow_scale is not None
    assert any("blood-based" in n for n in prediction.notes)
    per_mbq = blood_twin.cycles[0].blood.blood_tia_mbq_h_per_ml() / 7400.0
    hand = per_mbq * 7400.0 / BLOOD_DENSITY_G_PER_ML * reference_mass_g("red_marrow")
    sd = np.hypot(RMBLR_PEPTIDE_SD_LOG, BLOOD_TIA_SD_LOG)
    assert abs(np.median(np.log(delivered.tia_mbq_h["red_marrow"] / hand))) < 2 * sd
    image_marrow = twins["image"].predict([7400.0]).cycles[0].tia_mbq_h["red_marrow"]
    assert np.median(delivered.tia_mbq_h["red_marrow"]) > 1.5 * np.median(image_marrow)
    # the plan: a marrow limit that binds; its probability = the fraction of predicted draws
    limit = float(np.median(prediction.cumulative_dose_gy["red_marrow"]))
    plan = blood_twin.plan(constraints=[Constraint("red_marrow", "dose", limit, 0.3)],
                           n_cycles=1, max_evaluations=4)
    assert any("blood-based" in n for n in plan.plan.notes)
    assert not any("blood-based" in n for n in twins["image"].plan(n_cycles=1,
                                                                   max_evaluations=2).plan.notes)
    check = blood_twin.predict(Schedule([Administration(0.0, plan.activities_mbq[0],
                                                        plan.ligand_nmol[0])]))
    marrow = check.cumulative_dose_gy["red_marrow"]
    (probability,) = plan.constraint_probabilities.values()
    assert probability == pytest.approx(float(np.mean(marrow > limit * (1 + 1e-6))),
                                        abs=1.5 / marrow.size)
