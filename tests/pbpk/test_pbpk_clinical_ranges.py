"""Receptor PBPK defaults vs published clinical absorbed doses per activity (Gy/GBq).

Standard patient: one 7.4 GBq bolus of 177Lu, 150 nmol PSMA-617 or 100 nmol DOTATATE, adult-male
phantom S-values (``tdt.dosimetry.organ_doses``), one 10 mL lesion. The published ranges below are
the independent reference (sources in each constant and in the table of docs/pbpk.md); values
marked "recalled" could not be checked with the search tool. Organs whose default was CALIBRATED
(PSMA salivary glands, liver, spleen; DOTATATE f_reabs, liver, spleen) are checked against a range
wider than the calibration target, so the test still fails when the model drifts away from the
clinic. All tests here solve the nonlinear model and are marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest

from tdt.pbpk import Administration, Schedule, dotatate, psma617

pytestmark = pytest.mark.slow

ACTIVITY_MBQ = 7400.0
TIMES_H = (4.0, 24.0)

# 177Lu-PSMA-617, Gy/GBq (accepted windows around the published values)
PSMA_KIDNEYS = (0.3, 1.0)  # 0.82 +- 0.25 (Mol Imaging Radionucl Ther 2017;26:62, doi:10.4274/
# mirt.08760); 0.81 +- 0.32 (J Nucl Med 2019;60(11):1579); 0.4-0.8 across cohorts (recalled)
PSMA_SALIVARY = (0.3, 2.0)  # parotid 1.90 +- 1.19 (doi:10.4274/mirt.08760); 0.4-1.4 (recalled)
PSMA_LIVER = (0.05, 0.3)  # ~0.1 (Delker 2016, Kratochwil 2016; recalled, not verified)
PSMA_SPLEEN = (0.05, 0.3)  # ~0.1-0.3 (recalled, not verified)
PSMA_RED_MARROW = (0.012, 0.11)  # 0.030 +- 0.008 blood-based (doi:10.4274/mirt.08760);
# 0.012 (Delker 2016) to 0.11 (Violet 2019, image-based) recalled, not verified
# 177Lu-DOTATATE, Gy/GBq
DOTA_KIDNEYS = (0.3, 0.9)  # 0.46 mean, 56 treatments (EJNMMI Phys 2021;8:78); 0.38 +- 0.19
# (PMC6300448); 0.57 +- 0.09 (61 patients, Clin Nucl Med 2013)
DOTA_LIVER = (0.17, 0.37)  # 0.27 +- 0.05, mean +- 2 SD (61 patients, Clin Nucl Med 2013)
DOTA_SPLEEN = (0.89, 1.45)  # 1.17 +- 0.14, mean +- 2 SD (same study)

HEMATOCRIT = 0.4  # the model's V_plasma = 2.8 (1 - Hct) BSA uses Hct 0.4 (PyCNO SBML)


def _standard(model, ligand_nmol: float):
    """(doses Gy/GBq by organ, simulation) for one 7.4 GBq bolus with ``ligand_nmol``."""
    from tdt.dosimetry import organ_doses

    params = model.default_params()
    sim = model.simulate(params, Schedule([Administration(0.0, ACTIVITY_MBQ, ligand_nmol)]),
                         list(TIMES_H))
    assert bool(sim.ok)
    tia = {k: v for k, v in sim.tia_mbq_h.items() if k != "urine"}
    doses = organ_doses(tia, lesion_volumes_ml={"lesion_1": 10.0})
    return {k: float(v) / (ACTIVITY_MBQ / 1000.0) for k, v in doses.items()}, sim, params


@pytest.fixture(scope="module")
def psma():
    model = psma617(lesions=1)
    return {"standard": _standard(model, 150.0), "high_ligand": _standard(model, 1000.0)}


@pytest.fixture(scope="module")
def dota():
    return _standard(dotatate(lesions=1), 100.0)


def _within(value, window, name):
    lo, hi = window
    assert lo <= value <= hi, f"{name}: {value:.4f} Gy/GBq outside the published range {window}"


def test_psma617_kidneys_and_salivary_glands(psma):
    doses, _, _ = psma["standard"]
    _within(doses["kidneys"], PSMA_KIDNEYS, "kidneys")
    _within(doses["salivary_glands"], PSMA_SALIVARY, "salivary_glands")


def test_psma617_liver_and_spleen(psma):
    doses, _, _ = psma["standard"]
    _within(doses["liver"], PSMA_LIVER, "liver")
    _within(doses["spleen"], PSMA_SPLEEN, "spleen")


def test_psma617_sink_effect(psma):
    """Raising the ligand amount at fixed activity lowers uptake per GBq in PSMA tissues."""
    standard, _, _ = psma["standard"]
    high, _, _ = psma["high_ligand"]
    assert high["salivary_glands"] < 0.8 * standard["salivary_glands"]
    assert high["kidneys"] < standard["kidneys"]
    assert high["lesion_1"] < standard["lesion_1"]


def test_red_marrow_follows_blood_based_convention(psma):
    """Red-marrow activity concentration vs blood: the blood-based method with RMBLR = 1 (EANM
    bone-marrow dosimetry guideline, Hindorf 2010; recalled) gives marrow/blood = 1; with no
    receptors in marrow and a flow-limited exchange (time constant of minutes) the model's ratio
    is fint_red_marrow / (1 - Hct). Accept 0.7-1.2 at 4 h and 24 h."""
    _, sim, p = psma["standard"]
    c_marrow = np.asarray(sim.activity_mbq["red_marrow"]) / p["V_red_marrow"]
    c_blood = (1.0 - HEMATOCRIT) * np.asarray(sim.activity_mbq["plasma"]) / p["V_plasma"]
    ratio = c_marrow / c_blood
    assert np.all((ratio > 0.7) & (ratio < 1.2)), ratio


@pytest.mark.xfail(strict=True, reason="known limitation (docs/pbpk.md): whole-body retention "
                   "of PSMA-617 is too low in the model (plasma cleared by GFR without a slow "
                   "phase), so the blood-based marrow self-dose is ~0.006 Gy/GBq")
def test_psma617_red_marrow_in_published_range(psma):
    doses, _, _ = psma["standard"]
    _within(doses["red_marrow"], PSMA_RED_MARROW, "red_marrow")


def test_dotatate_kidneys_liver_spleen(dota):
    doses, _, _ = dota
    _within(doses["kidneys"], DOTA_KIDNEYS, "kidneys")
    _within(doses["liver"], DOTA_LIVER, "liver")
    _within(doses["spleen"], DOTA_SPLEEN, "spleen")
