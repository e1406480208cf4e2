"""De-identification: PS3.15 Basic Profile attributes, consistent UID remap, date shift."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pydicom.dataset import Dataset

from tdt.imaging import PROFILE, Deidentifier, load_study, read_dataset, write_nm
from tdt.imaging.dicom_io import parse_datetime


def _identified_dataset() -> Dataset:
    """A dataset in which every profile attribute holds an identifying value."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    ds = Dataset()
    samples = {"PN": "Smith^John", "LO": "secret-1", "SH": "sec2", "DA": "19500101",
               "TM": "101010", "AS": "070Y", "DS": "81.5", "CS": "M", "ST": "private text",
               "LT": "private text", "UT": "x", "IS": "5", "UI": "1.2.3.4.5"}
    for keyword in PROFILE:
        vr = dictionary_VR(tag_for_keyword(keyword))
        if vr == "SQ":
            item = Dataset()
            item.CodeMeaning = "identifying"
            setattr(ds, keyword, [item])
        else:
            setattr(ds, keyword, samples.get(vr, "x"))
    ds.StudyInstanceUID = "1.2.826.0.1.99.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.99.2"
    ds.SOPInstanceUID = "1.2.826.0.1.99.3"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    ds.FrameOfReferenceUID = "1.2.826.0.1.99.4"
    ds.StudyDate = "20230502"
    ds.AcquisitionDateTime = "20230503101500.000000"
    ds.add_new(0x00091001, "LO", "private vendor PHI")
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.99.3"
    ds.SourceImageSequence = [ref]
    return ds


def test_no_profile_attribute_keeps_its_value():
    original = _identified_dataset()
    ds = _identified_dataset()
    Deidentifier(salt="s")(ds)
    for keyword in PROFILE:
        if keyword in ds:
            assert ds.data_element(keyword).value != original.data_element(keyword).value, keyword
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                    "FrameOfReferenceUID", "StudyDate", "AcquisitionDateTime"):
        assert getattr(ds, keyword) != getattr(original, keyword), keyword
    assert ds.SOPClassUID == original.SOPClassUID  # registered UIDs are kept
    assert 0x00091001 not in ds  # private attributes removed
    assert ds.PatientIdentityRemoved == "YES"


def test_uids_consistent_and_references_kept():
    tool = Deidentifier(salt="same")
    a, b = tool(_identified_dataset()), tool(_identified_dataset())
    assert a.SOPInstanceUID == b.SOPInstanceUID
    assert a.SourceImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    other = Deidentifier(salt="other")(_identified_dataset())
    assert other.SOPInstanceUID != a.SOPInstanceUID


def test_date_shift_preserves_intervals():
    tool = Deidentifier(salt="k", date_shift_days=-400)
    ds = _identified_dataset()
    before = parse_datetime(ds.AcquisitionDateTime) - dt.datetime(2023, 5, 2)
    tool(ds)
    assert parse_datetime(ds.AcquisitionDateTime) - parse_datetime(ds.StudyDate) == before
    assert ds.StudyDate == "20220328"  # 2023-05-02 minus 400 days


def test_load_study_deidentifies_and_keeps_times(tmp_path, small_geometry, patient, injection):
    times = (4.25, 23.5)
    for n, t in enumerate(times):
        write_nm(tmp_path / f"nm{n}.dcm", np.full(small_geometry.shape, 7.0), small_geometry,
                 patient=patient, series_number=n, seed_text=f"d{n}", units="BQML",
                 acquisition=injection + dt.timedelta(hours=t), duration_s=900.0,
                 injection=injection, injected_activity_mbq=7400.0, decay_correction="START")
    study = load_study(tmp_path, salt="x")
    assert study.deidentified
    np.testing.assert_allclose(study.times_h, times, atol=1e-9)
    assert study.injection_datetime != injection
    plain = load_study(tmp_path, deidentify=False)
    assert plain.injection_datetime == injection and not plain.deidentified
    # the files on disk are not modified by ingest
    assert str(read_dataset(tmp_path / "nm0.dcm").PatientName) == patient["PatientName"]


def test_no_phi_in_warnings_or_summary(tmp_path, small_geometry, patient, injection, caplog):
    write_nm(tmp_path / "nm.dcm", np.full(small_geometry.shape, 1.0), small_geometry,
             patient=patient, series_number=1, seed_text="p", units="BQML",
             acquisition=injection + dt.timedelta(hours=4), duration_s=900.0,
             injection=injection, injected_activity_mbq=7400.0, decay_correction="START")
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    with pytest.warns(UserWarning) as record:
        study = load_study(tmp_path)
    text = study.summary() + " ".join(str(w.message) for w in record) + caplog.text
    for value in ("Doe", "MRN-12345", "19510203", "ACC-77"):
        assert value not in text
