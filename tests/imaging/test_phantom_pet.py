"""The phantom's pre-therapy PET (tdt.imaging._phantom_pet): a 68Ga-PSMA-11 study in its own
folder that read_pet + extract_tacs turn back into the true VOI activities, and a PBPK patient
whose 177Lu TIAs match the phantom's (unchanged) therapy truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.imaging import extract_tacs, make_phantom_patient

ORGANS = ("kidneys", "liver", "spleen", "salivary_glands")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    # slow: the phantom, the PBPK calibration and the PET take minutes on the shared 2 cores
    out = tmp_path_factory.mktemp("pet") / "patient"
    # one SPECT time point keeps the test fast; the PET is what is checked here
    return make_phantom_patient(out, seed=3, times_h=(24.0,), noise=False, pet_times_h=(1.0, 2.0))


@pytest.mark.slow
def test_pet_study_is_a_separate_68ga_study(phantom):
    assert phantom.pet_directory.name == "patient_pet" and phantom.pet_directory.is_dir()
    study = phantom.load_pet()
    assert [tp.modality for tp in study.time_points] == ["PT", "PT"]
    np.testing.assert_allclose(study.times_h, [1.0, 2.0], atol=1e-6)
    # the SPECT study still loads alone (PET not mixed in)
    spect = phantom.load()
    assert [tp.modality for tp in spect.time_points] == ["NM"]


@pytest.mark.slow
def test_read_pet_and_extract_tacs_recover_the_true_voi_activities(phantom):
    truth = json.loads((phantom.pet_directory / "pet_truth.json").read_text())
    tacs = extract_tacs(phantom.load_pet())
    for name in (*ORGANS, *truth["lesion_volumes_ml"]):
        measured = np.asarray(tacs[name].activity_mbq)
        # noiseless image: the image sum is what the blurred truth puts in the VOI (16-bit
        # quantisation of the stored PET values only)
        np.testing.assert_allclose(measured, truth["expected_image_activity_mbq"][name],
                                   rtol=2e-3, err_msg=name)
    for name in ("kidneys", "liver"):
        # large organs: partial-volume loss of a 6 mm FWHM PET stays below 15 %
        np.testing.assert_allclose(np.asarray(tacs[name].activity_mbq),
                                   truth["true_activity_mbq"][name], rtol=0.15, err_msg=name)
    # Ga-68 decay between the two scans is in the activities (not decay-corrected to injection)
    total_1, total_2 = (sum(v[k] for v in truth["true_activity_mbq"].values()) for k in (0, 1))
    assert total_2 / total_1 == pytest.approx(np.exp(-np.log(2) / (67.71 / 60.0)), rel=1e-2)


@pytest.mark.slow
def test_pbpk_patient_matches_the_therapy_truth(phantom):
    truth = json.loads((phantom.pet_directory / "pet_truth.json").read_text())
    spect_truth = phantom.ground_truth
    assert truth["pair"] == "psma11_psma617"
    for name, mismatch in truth["therapy_tia_calibration_mismatch"].items():
        assert abs(mismatch) < 0.02, name
    # shared parameters are the same values in the two models
    for name in ("GFR", "R_kidneys", "R_lesion_1", "V_liver"):
        assert truth["diagnostic_params"][name] == truth["therapeutic_params"][name]
    assert truth["diagnostic_params"]["koff"] != truth["therapeutic_params"]["koff"]
    assert spect_truth["seed"] == 3


def test_pet_times_are_checked(tmp_path):
    with pytest.raises(InputError, match="pet_times_h"):
        make_phantom_patient(tmp_path / "p", times_h=(24.0,), pet_times_h=(2.0, 1.0))
