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
TIMES_H = (1.0, 4.0, 24.0, 48.0, 96.0, 168.0)

# 177Lu-PSMA-617, Gy/GBq (accepted windows around the published values)
PSMA_KIDNEYS = (0.3, 1.0)  # 0.82 +- 0.25 (7 patients, Kabasakal L, et al. Mol Imaging Radionucl
# Ther 2017;26:62, doi:10.4274/mirt.08760); 0.81 +- 0.32 (16 patients, J Nucl Med 2019;60(11):1579);
# 0.53 (9 patients, Hohberg 2016, doi:10.1007/s11307-016-0942-0) - all three checked
PSMA_SALIVARY = (0.3, 2.0)  # parotid 1.90 +- 1.19 (doi:10.4274/mirt.08760); salivary glands 0.72
# (9 patients, Hohberg M, et al. Mol Imaging Biol 2016;18:437, doi:10.1007/s11307-016-0942-0)
PSMA_LIVER = (0.05, 0.3)  # UNVERIFIED: ~0.1 (Delker 2016, Kratochwil 2016; recalled - no text
# with a PSMA-617 liver value was found with the search tool, nor Ells 2024's pooled liver value)
PSMA_SPLEEN = (0.05, 0.3)  # UNVERIFIED: ~0.1-0.3 (recalled, as the liver)
PSMA_RED_MARROW = (0.02, 0.046)  # 0.030 +- 0.008 (7 patients, doi:10.4274/mirt.08760): upper end
# mean + 2 SD; lower end 0.02, the target of issue #23 (mean - 2 SD would be 0.014)
PSMA_LACRIMAL = (1.5, 4.0)  # 2.82 mGy/MBq, 9 patients (Hohberg 2016, doi:10.1007/s11307-016-0942-0);
# R_lacrimal_glands is CALIBRATED to it, so the window only catches drift
# 177Lu-DOTATATE, Gy/GBq
DOTA_KIDNEYS = (0.3, 0.9)  # 0.46 mean, 56 treatments (EJNMMI Phys 2021;8:78); 0.38 +- 0.19
# (PMC6300448); 0.57 +- 0.09 (61 patients, Clin Nucl Med 2013)
DOTA_LIVER = (0.17, 0.37)  # 0.27 +- 0.05, mean +- 2 SD (61 patients, Clin Nucl Med 2013)
DOTA_SPLEEN = (0.89, 1.45)  # 1.17 +- 0.14, mean +- 2 SD (same study)
DOTA_RED_MARROW = (0.009, 0.029)  # blood-based (skeletal average) red-marrow doses after the
# first cycle, 17 patients: 0.009-0.029 Gy/GBq, min-max (J Nucl Med 2023;64(9):1456, PMC10478826,
# Table 3; checked). The model's marrow is blood-based (RMBLR 1: Forrer F, et al. Eur J Nucl Med
# Mol Imaging 2009;36:1138, PMC2691529, checked); the same study's image-based doses with
# SSTR2-specific marrow uptake (vertebrae 0.056 +- 0.023) are outside the model (no marrow
# receptors). Sandstrom 2013 and the NETTER-1 sub-study values could not be read (not used).

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


def test_psma617_red_marrow_and_lacrimal_glands_in_published_range(psma):
    doses, _, _ = psma["standard"]
    _within(doses["red_marrow"], PSMA_RED_MARROW, "red_marrow")
    _within(doses["lacrimal_glands"], PSMA_LACRIMAL, "lacrimal_glands")


def test_dotatate_red_marrow_in_published_range(dota):
    doses, _, _ = dota
    _within(doses["red_marrow"], DOTA_RED_MARROW, "red_marrow")


def test_blood_based_and_image_based_marrow_agree_with_the_pbpk_marrow(psma):
    """The three marrow methods on the simulated standard patient: (c) the PBPK red-marrow
    compartment, (a) blood-based from the plasma TIA (EANM, RMBLR = 1) and (b) image-based from
    an L2-L4 VOI holding 6.7 % of the marrow, sampled at clinical imaging times (trapezoid with a
    fitted tail). Each with the cross-dose of the other organs and of the remainder of body."""
    from tdt.dosimetry import (
        L2_L4_MARROW_FRACTION,
        RMBLR_RANGE,
        blood_tia_from_plasma,
        marrow_tia_blood_based,
        marrow_tia_image_based,
        red_marrow_dose,
    )
    from tdt.kinetics._trapezoid import tia_trapezoid

    _, sim, p = psma["standard"]
    tia = {k: float(v) for k, v in sim.tia_mbq_h.items() if k != "urine"}
    marrow_pbpk = tia.pop("red_marrow")
    others = {k: v for k, v in tia.items() if not k.startswith("lesion")}
    blood = blood_tia_from_plasma(tia["plasma"], p["V_plasma"], HEMATOCRIT)
    marrow_blood = marrow_tia_blood_based(blood, p["V_red_marrow"])
    vertebrae = L2_L4_MARROW_FRACTION * np.asarray(sim.activity_mbq["red_marrow"])
    lam = np.log(2) / (6.647 * 24.0)
    l2_l4_tia, _, _ = tia_trapezoid(np.asarray(TIMES_H), vertebrae, lam, tail="fitted")
    marrow_image = marrow_tia_image_based(l2_l4_tia)
    gbq = ACTIVITY_MBQ / 1000.0
    dose = {name: float(red_marrow_dose(m, others).total_gy) / gbq for name, m in
            (("pbpk", marrow_pbpk), ("blood", marrow_blood), ("image", marrow_image))}
    assert dose["blood"] == pytest.approx(dose["pbpk"], rel=0.10), dose
    assert dose["image"] == pytest.approx(dose["pbpk"], rel=0.25), dose
    low = float(red_marrow_dose(marrow_tia_blood_based(blood, p["V_red_marrow"],
                                                       RMBLR_RANGE[0]), others).total_gy) / gbq
    assert low < dose["pbpk"] <= dose["blood"] * 1.10  # the RMBLR range brackets the model


def test_dotatate_kidneys_liver_spleen(dota):
    doses, _, _ = dota
    _within(doses["kidneys"], DOTA_KIDNEYS, "kidneys")
    _within(doses["liver"], DOTA_LIVER, "liver")
    _within(doses["spleen"], DOTA_SPLEEN, "spleen")
