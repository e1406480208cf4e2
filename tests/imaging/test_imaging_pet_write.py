"""write_pet → read_pet / load_study round trip (the writer the phantom's pre-therapy PET uses).

68Ga half-life 67.71 min (ICRP-107, typed here); SUV by hand with the QIBA formula.
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest

from tdt.errors import InputError, PlausibilityWarning
from tdt.imaging import (
    Geometry,
    extract_tacs,
    load_study,
    read_dataset,
    read_pet,
    write_rtstruct,
)
from tdt.imaging._pet_write import write_pet

INJECTION = dt.datetime(2024, 6, 1, 8, 0, 0)
SCAN = INJECTION + dt.timedelta(minutes=60)


def _volume(shape):
    return np.random.default_rng(3).uniform(1e3, 4e4, shape)


def test_round_trip_two_beds(tmp_path, patient):
    geometry = Geometry(shape=(8, 6, 5), origin_mm=(-10.0, 12.0, -400.0),
                        spacing_mm=(4.07, 4.07, 3.0),
                        frame_of_reference_uid=patient["FrameOfReferenceUID"])
    truth = _volume(geometry.shape)
    files = write_pet(tmp_path / "pt", truth, geometry, patient=patient, series_number=3,
                      seed_text="pet-rt", scan_start=SCAN, injection=INJECTION,
                      injected_activity_mbq=150.0, patient_weight_kg=82.0,
                      bed_duration_s=150.0, slices_per_bed=4)
    assert len(files) == 8
    assert read_dataset(files[5]).AcquisitionTime.startswith("090230")  # bed 2: + 150 s
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlausibilityWarning)  # DecayFactor etc. consistent
        image = read_pet(files[::-1])
    assert image.nuclide == "Ga-68" and image.acquisition_datetime == SCAN
    quantum = truth.max(axis=(1, 2), keepdims=True) / 65535.0
    assert np.all(np.abs(image.values - truth) <= 0.5 * quantum + 1e-9)
    assert image.geometry.same_grid(geometry)
    decayed_mbq = 150.0 * 2.0 ** (-60.0 / 67.71)
    assert image.suv_bw_g_per_mbq == pytest.approx(82000.0 / decayed_mbq, rel=1e-9)


def test_load_study_of_written_pet(tmp_path, patient):
    geometry = Geometry(shape=(4, 5, 6), origin_mm=(0.0, 0.0, 0.0), spacing_mm=(4.0, 4.0, 4.0),
                        frame_of_reference_uid=patient["FrameOfReferenceUID"])
    truth = _volume(geometry.shape)
    files = write_pet(tmp_path / "s" / "pt", truth, geometry, patient=patient, series_number=1,
                      seed_text="pet-study", scan_start=SCAN, injection=INJECTION,
                      injected_activity_mbq=150.0, patient_weight_kg=82.0)
    mask = np.zeros(geometry.shape, bool)
    mask[1:3, 1:4, 2:5] = True
    write_rtstruct(tmp_path / "s" / "rs.dcm", {"kidney_left": mask}, geometry, patient=patient,
                   seed_text="rs", referenced_series_uid=str(read_dataset(files[0])
                                                              .SeriesInstanceUID),
                   referenced_sop_uids=[str(read_dataset(f).SOPInstanceUID) for f in files],
                   created=SCAN)
    with pytest.warns(PlausibilityWarning, match="field of view"):
        study = load_study(tmp_path / "s", salt="s")
    tac = extract_tacs(study)["kidney_left"]  # RTSTRUCT contours rasterised on the PET grid
    assert tac.n_voxels == mask.sum()
    assert tac.activity_mbq[0] == pytest.approx(truth[mask].sum() * 0.064e-6, rel=1e-4)
    assert study.time_points[0].time_h == pytest.approx(1.0)
    half_quantum_mbq = 0.5 * truth.max() / 65535.0 * 0.064 * 1e-6  # 16-bit storage bound
    np.testing.assert_allclose(study.time_points[0].activity_mbq, truth * 0.064 * 1e-6,
                               rtol=1e-12, atol=half_quantum_mbq)


def test_bad_arguments(tmp_path, patient):
    geometry = Geometry(shape=(2, 2, 2), origin_mm=(0, 0, 0), spacing_mm=(2, 2, 2))
    with pytest.raises(InputError, match="scan_start"):
        write_pet(tmp_path, np.ones((2, 2, 2)), geometry, patient=patient, series_number=1,
                  seed_text="x", scan_start=INJECTION - dt.timedelta(hours=1),
                  injection=INJECTION, injected_activity_mbq=100.0)
