"""Fixtures of the imaging tests: small synthetic DICOM objects and session-wide phantoms."""

from __future__ import annotations

import datetime as dt

import pytest

from tdt.imaging._dicom_io import deterministic_uid
from tdt.imaging._geometry import Geometry

INJECTION = dt.datetime(2023, 5, 2, 10, 30, 15, 250000)


@pytest.fixture
def patient() -> dict:
    return {
        "PatientName": "Doe^Jane", "PatientID": "MRN-12345", "PatientBirthDate": "19510203",
        "PatientSex": "F", "StudyInstanceUID": deterministic_uid("test", "study"),
        "StudyID": "S1", "StudyDate": "20230502", "StudyTime": "103015",
        "AccessionNumber": "ACC-77", "ReferringPhysicianName": "Who^Doctor",
        "FrameOfReferenceUID": deterministic_uid("test", "for"), "InstitutionName": "General",
    }


@pytest.fixture
def small_geometry() -> Geometry:
    """A small oblique-free grid with non-trivial origin and anisotropic spacing."""
    return Geometry(shape=(6, 7, 9), origin_mm=(-20.5, 13.25, -101.0),
                    spacing_mm=(4.5, 4.25, 5.0),
                    frame_of_reference_uid=deterministic_uid("test", "for"))


@pytest.fixture(scope="session")
def phantom_noisy(tmp_path_factory):
    from tdt.imaging import make_phantom_patient

    return make_phantom_patient(tmp_path_factory.mktemp("phantom") / "seed0", seed=0)


@pytest.fixture(scope="session")
def phantom_noiseless(tmp_path_factory):
    from tdt.imaging import make_phantom_patient

    return make_phantom_patient(tmp_path_factory.mktemp("phantom") / "seed0_noiseless", seed=0,
                                noise=False)


@pytest.fixture
def injection() -> dt.datetime:
    return INJECTION
