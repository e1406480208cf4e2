"""``Twin.from_pretherapy`` (tdt.twin._pretherapy_twin, _pretherapy_joint): the joint PET + SPECT
forward model against the two models' own general grid solvers (fast), input checks (fast), and
the issue-25 check (slow): a simulated PSMA patient — truth from the therapeutic model's own
solver, PET from the diagnostic model with the same shared parameters — whose PET-only cycle-1
prediction covers the true 177Lu TIAs, and whose joint PET + SPECT refit narrows them."""

from __future__ import annotations

import datetime as dt
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from tdt import Twin
from tdt.errors import InputError
from tdt.inference import OrganSeries, PatientData
from tdt.pbpk import Administration, Schedule, get_pair
from tdt.twin import Calibration, CycleData, PatientRecord
from tdt.twin._pbpk_twin import DriftingPbpk
from tdt.twin._pretherapy_joint import PetSpectPbpk

PAIR = get_pair("psma11_psma617")
VOIS = ("kidneys", "salivary_glands", "liver", "lesion_1")
PET_TIMES = np.array([1.0, 2.0])
SPECT_TIMES = np.array([24.0, 96.0, 168.0])
GAP_H = 336.0


def _models():
    return PAIR.build(lesions=("lesion_1",), method="grid")


def _truth(ther):
    """A patient off the population median: more renal PSMA, a smaller and less avid lesion,
    slower kidney release of PSMA-617; the lesion VOI 8 mL (flow 0.5 /min per mL, PyCNO)."""
    params = {k: float(v) for k, v in ther.default_params().items()}
    params["R_kidneys"] *= 1.5
    params["R_lesion_1"] *= 0.7
    params["krel_kidneys"] *= 0.8
    params["V_lesion_1"], params["Q_lesion_1"] = 8.0, 0.5 * 60.0 * 8.0
    return params


def _pet(diag, ther, params, rng, relative_sd=0.05):
    dparams = PAIR.diagnostic_params(params, diag, ther)
    sim = diag.simulate(dparams, PAIR.diagnostic_schedule(), jnp.asarray(PET_TIMES))
    organs = {o: OrganSeries(PET_TIMES, np.asarray(sim.activity_mbq[o])
                             * np.exp(relative_sd * rng.standard_normal(PET_TIMES.size)),
                             volume_ml=8.0 if o == "lesion_1" else None,
                             recovery=1.0 if o == "lesion_1" else None) for o in VOIS}
    with warnings.catch_warnings():  # PET uptake phase: the Lu-tuned half-life check warns
        warnings.simplefilter("ignore")
        return PatientData(organs, administered_activity_mbq=PAIR.diagnostic_activity_mbq,
                           ligand_nmol=PAIR.diagnostic_ligand_nmol, nuclide="Ga-68",
                           patient_id="pretherapy-test")


def test_joint_forward_is_the_two_models():
    """PET VOIs = the diagnostic model's own solve after the PET bolus, SPECT VOIs = the
    therapeutic model's own solve after the therapy bolus (general grid solver, not the sampler
    path); a shared parameter moves both, a diagnostic-only one only the PET."""
    diag, ther = _models()
    joint = PetSpectPbpk(PAIR, diag, DriftingPbpk(ther, [], 1, {}), GAP_H)
    params = {k: jnp.asarray(v) for k, v in joint.default_params().items()} | {
        k: jnp.asarray(v) for k, v in _truth(ther).items()}
    schedule = Schedule([Administration(0.0, 150.0, 2.0), Administration(GAP_H, 7400.0, 150.0)])
    times = jnp.asarray(np.concatenate([PET_TIMES, GAP_H + SPECT_TIMES]))
    sim = joint.simulate(params, schedule, times)
    d_sim = diag.simulate(PAIR.diagnostic_params(params, diag, ther),
                          PAIR.diagnostic_schedule(), jnp.asarray(PET_TIMES))
    t_sim = ther.simulate({k: params[k] for k in ther.parameter_names},
                          PAIR.therapy_schedule(), jnp.asarray(SPECT_TIMES))
    for organ in VOIS:
        np.testing.assert_allclose(np.asarray(sim.activity_mbq["pet_" + organ])[:2],
                                   np.asarray(d_sim.activity_mbq[organ]), rtol=1e-2,
                                   err_msg=organ)
        # sampler path vs general grid solver: 1 % (tests/inference/test_fast_pbpk_multicycle.py)
        np.testing.assert_allclose(np.asarray(sim.activity_mbq[organ])[2:],
                                   np.asarray(t_sim.activity_mbq[organ]), rtol=1e-2,
                                   err_msg=organ)
    assert bool(sim.ok)
    shared = dict(params, R_kidneys=params["R_kidneys"] * 2.0)
    own = dict(params, dx_koff=params["dx_koff"] * 3.0)
    moved = joint.simulate(shared, schedule, times).activity_mbq
    assert not np.allclose(moved["pet_kidneys"][:2], sim.activity_mbq["pet_kidneys"][:2])
    assert not np.allclose(moved["kidneys"][2:], sim.activity_mbq["kidneys"][2:])
    moved = joint.simulate(own, schedule, times).activity_mbq
    assert not np.allclose(moved["pet_kidneys"][:2], sim.activity_mbq["pet_kidneys"][:2])
    np.testing.assert_array_equal(moved["kidneys"][2:], sim.activity_mbq["kidneys"][2:])


def test_from_pretherapy_checks_its_input():
    diag, ther = _models()
    pet = _pet(diag, ther, _truth(ther), np.random.default_rng(0))
    with pytest.raises(InputError, match="pet"):
        Twin.from_pretherapy([1.0, 2.0])
    with pytest.raises(InputError, match="record.lesions"):
        Twin.from_pretherapy(pet, record=PatientRecord("x", lesions={"lesion_2": 3.0}))
    with pytest.raises(InputError, match="gap_h"):
        Twin.from_pretherapy(pet, gap_h=-1.0)
    with pytest.raises(InputError, match="theranostic pair|pair"):
        Twin.from_pretherapy(pet, pair="no_such_pair")


@pytest.mark.slow  # two NUTS compilations (PET model, joint model): minutes on 2 cores
def test_pretherapy_twin_wiring_with_a_tiny_run():
    """PET fit -> cycle-1 prediction and plan -> joint PET + SPECT assimilation -> prediction
    and re-plan, with a few NUTS steps (wiring only; accuracy is the slow test's)."""
    rng = np.random.default_rng(5)
    diag, ther = _models()
    truth = _truth(ther)
    twin = Twin.from_pretherapy(_pet(diag, ther, truth, rng), n_draws=20, total_cycles=3,
                                nuts_options={"draws": 20, "tune": 10, "chains": 1})
    assert twin.is_pbpk and twin.model_name == "psma617" and not twin.cycles
    assert twin.ligand_nmol == PAIR.therapy_ligand_nmol
    pred = twin.predict([7400.0])
    assert len(pred.cycles) == 1 and pred.n_past == 0
    assert pred.cycles[0].dose_gy["kidneys"].shape == (20,)
    with pytest.raises(InputError, match="cycle 1 only"):
        twin.predict([7400.0, 7400.0])
    draws = twin.pbpk_parameter_draws(2)
    assert draws[0]["V_lesion_1"][0] == 8.0  # the PET VOI's volume, not the template's 10 mL
    assert not np.allclose(draws[1]["R_kidneys"], draws[0]["R_kidneys"])  # drift to cycle 2
    sim = ther.simulate(truth, PAIR.therapy_schedule(), jnp.asarray(SPECT_TIMES))
    cycle = CycleData(7400.0, {o: (SPECT_TIMES, np.asarray(sim.activity_mbq[o])) for o in VOIS},
                      Calibration(1.0, dt.date(2026, 1, 1)), dt.date(2026, 1, 2))
    report = twin.assimilate(cycle)
    # QA of the joint refit: the PBPK twin's extrapolation and outlier inputs, for every VOI
    assert set(report.check("tia_extrapolated").value) == set(VOIS)
    assert report.check("fit").status == "fail"  # 20 draws: the gate fails and says so
    sampled = twin.nuts_posterior.twin.sampled
    assert "GFR" in sampled and any(n.startswith("dx_") for n in sampled)
    after = twin.predict([7400.0, 7400.0])
    assert after.n_past == 1 and len(after.cycles) == 3
    assert np.all(np.isfinite(after.cumulative_dose_gy["kidneys"]))
    assert [e["event"] for e in twin.audit.entries][:3] == ["create", "pretherapy", "assimilate"]


def _tia_truth(ther, params):
    sim = ther.simulate(params, PAIR.therapy_schedule(), jnp.asarray([1.0]))
    return {o: float(sim.tia_mbq_h[o]) for o in ("kidneys", "lesion_1")}


def _check_qa_against_the_truth(report, ther, truth):
    """The joint refit's QA inputs against the truth: each VOI's extrapolated TIA fraction
    (posterior median) within 0.05 of the true TAC's (model's own general grid solver on a
    fine grid, trapezoid to the last SPECT time / exact TIA); no SPECT point flagged (data:
    truth with 5 % noise, so |z| < 3)."""
    grid = np.concatenate([[0.0], np.geomspace(0.01, SPECT_TIMES[-1], 3000)])
    sim = ther.simulate(truth, PAIR.therapy_schedule(), jnp.asarray(grid))
    extrapolated = report.check("tia_extrapolated").value
    for organ in VOIS:
        partial = np.trapezoid(np.asarray(sim.activity_mbq[organ]), grid)
        true_fraction = 1.0 - partial / float(sim.tia_mbq_h[organ])
        assert abs(extrapolated[organ] - true_fraction) < 0.05, (organ, extrapolated[organ],
                                                                 true_fraction)
    assert report.check("outliers").status == "pass", report.check("outliers").value


def _width(values):
    lo, hi = np.percentile(values, [5, 95])
    return hi - lo


@pytest.mark.slow
def test_pet_prediction_covers_the_truth_and_the_spect_narrows_it():
    rng = np.random.default_rng(11)
    diag, ther = _models()
    truth = _truth(ther)
    pet = _pet(diag, ther, truth, rng)
    nuts = {"draws": 300, "tune": 300, "chains": 2}
    twin = Twin.from_pretherapy(pet, n_draws=200, total_cycles=2, seed=1, nuts_options=nuts)
    assert twin.is_pbpk and twin.record.lesions == {"lesion_1": 8.0}
    true_tia = _tia_truth(ther, truth)
    before = twin.predict([PAIR.therapy_activity_mbq]).cycles[0].tia_mbq_h
    for organ, value in true_tia.items():
        lo, hi = np.percentile(before[organ], [5, 95])
        assert lo < value < hi, (organ, lo, value, hi)
    plan = twin.plan(n_cycles=1)
    assert plan.activities_mbq[0] > 0 and plan.ligand_nmol[0] > 0
    # cycle 1 given as planned by the pair's standard, imaged by SPECT (model's own solver)
    sim = ther.simulate(truth, PAIR.therapy_schedule(), jnp.asarray(SPECT_TIMES))
    cycle = CycleData(PAIR.therapy_activity_mbq,
                      {o: (SPECT_TIMES, np.asarray(sim.activity_mbq[o])
                           * np.exp(0.05 * rng.standard_normal(SPECT_TIMES.size)))
                       for o in VOIS}, Calibration(1.0, dt.date(2026, 1, 1)),
                      dt.date(2026, 1, 2), 0.05)
    report = twin.assimilate(cycle)
    _check_qa_against_the_truth(report, ther, truth)
    after = twin.predict([PAIR.therapy_activity_mbq]).cycles[0].tia_mbq_h  # cycle 1 delivered
    for organ, value in true_tia.items():
        lo, hi = np.percentile(after[organ], [5, 95])
        assert lo < value < hi, (organ, lo, value, hi)
        assert _width(after[organ]) < 0.6 * _width(before[organ]), organ
