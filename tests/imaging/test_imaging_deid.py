"""De-identification: every attribute of PS3.15 Table E.1-1, sequences, free text, date shift,
consistent UIDs, malformed dates.

The oracle is the standard's table itself (data_catalog/dicom/ps3.15_annex_e_basic_profile.csv,
PS3.15 2024b Annex E): a dataset carrying every attribute of the table with an identifying value
must come out with each attribute removed, emptied, replaced or remapped as the table says.
"""

from __future__ import annotations

import csv
import datetime as dt

import numpy as np
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from tdt.catalog import dataset_path
from tdt.imaging import PROFILE, Deidentifier, load_study, read_dataset, write_nm
from tdt.imaging._deid import DeidentificationWarning
from tdt.imaging._dicom_io import parse_datetime

NAME, MRN = "Smith^John", "MRN-98765"
STUDY_DATE, ACQ_DT, INJ_DT = "20230502", "20230503101500.000000", "20230502091000.000000"
SECRETS = ("smith", "john", "98765", "20230502", "20230503")


def _table() -> list[dict]:
    with open(dataset_path("dicom_ps315_basic_profile"), newline="") as handle:
        return list(csv.DictReader(handle))


def _value(vr: str, i: int):
    """A plausible identifying value of VR ``vr`` (the i-th attribute, for unique UIDs)."""
    return {
        "PN": NAME, "LO": f"{NAME} {MRN}", "SH": "Smith", "ST": f"notes on {NAME}",
        "LT": f"notes on {NAME}", "UT": f"notes on {NAME}", "UC": f"{NAME}", "AE": "SMITHPC",
        "CS": "SMITH", "AS": "070Y", "DA": STUDY_DATE, "DT": ACQ_DT, "TM": "101500.000000",
        "DS": "81.5", "IS": "5", "US": 7, "SS": 7, "UL": 7, "SL": 7, "FL": 1.5, "FD": 1.5,
        "UI": f"1.2.826.0.1.3680043.99.{i}", "OB": b"\x01\x02", "OW": b"\x01\x02",
        "UN": b"\x01\x02", "UR": "https://hospital.example/smith",
    }[vr]


def _identified_dataset() -> tuple[Dataset, dict[str, str]]:
    """Every keyword of the table with an identifying value; returns (dataset, keyword → VR)."""
    ds, vrs = Dataset(), {}
    for i, row in enumerate(_table()):
        keyword = row["keyword"]
        if not keyword or keyword in ("MediaStorageSOPInstanceUID",):
            continue
        tag = int(row["tag"].strip("()").replace(",", ""), 16)
        vr = dictionary_VR(tag).split(" or ")[0]
        vrs[keyword] = vr
        if vr == "SQ":
            item = Dataset()
            item.CodeMeaning = f"identifies {NAME}"
            item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.98.{i}"
            item.PatientName = NAME
            ds.add_new(tag, vr, [item])
        else:
            ds.add_new(tag, vr, _value(vr, i))
    ds.PatientName, ds.PatientID = NAME, MRN
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    ds.StudyDate, ds.AcquisitionDateTime = STUDY_DATE, ACQ_DT
    ds.StructureSetLabel = f"{NAME} plan"
    radiopharm = Dataset()
    radiopharm.RadiopharmaceuticalStartDateTime = INJ_DT
    ds.RadiopharmaceuticalInformationSequence = [radiopharm]
    roi = Dataset()
    roi.ROIName = "Smith left kidney"
    ds.StructureSetROISequence = [roi]
    ds.add_new(0x00091001, "LO", "private vendor PHI Smith")
    ds.add_new(0x50000010, "US", 3)      # curve
    ds.add_new(0x60003000, "OW", b"\x00\x01")  # overlay data
    return ds, vrs


def _all_text(ds: Dataset) -> list[str]:
    out = []
    for element in ds.iterall():
        values = element.value if isinstance(element.value, (list, MultiValue)) else [
            element.value]
        out += [str(v).lower() for v in values if not isinstance(v, Dataset)]
    return out


def test_every_table_attribute_is_handled_as_the_profile_says():
    original, vrs = _identified_dataset()
    ds, _ = _identified_dataset()
    tool = Deidentifier(salt="s", date_shift_days=-400)
    tool(ds)
    assert len(vrs) > 600  # the table has 621 rows, 4 of them tag patterns
    table = {row["keyword"]: row for row in _table() if row["keyword"]}
    survivors = []
    for keyword, vr in vrs.items():
        basic = table[keyword]["basic_profile"]
        dates_option = table[keyword]["retain_longitudinal_modified_dates"] == "C"
        if keyword not in ds:
            assert basic.startswith("X"), f"{keyword}: removed but the profile says {basic}"
            continue
        before, after = original[keyword].value, ds[keyword].value
        if dates_option and vr == "TM":
            continue  # the modified-dates option keeps times (whole-day shift)
        elif dates_option and vr in ("DA", "DT"):
            assert after and after != before, f"{keyword}: date not shifted"
        elif keyword == "ROIName":
            assert after == "XXX^XXX XXX"  # cleaned, not emptied: dosimetry needs ROI names
        elif basic == "X":
            survivors.append(keyword)
        elif vr == "SQ":
            if basic in ("Z", "X/Z"):
                assert len(after) == 0, keyword
        elif basic in ("Z", "X/Z"):
            assert after in ("", None, b""), f"{keyword}: {basic} left {after!r}"
        elif after == before:
            survivors.append(keyword)
    assert survivors == []
    # nothing identifying anywhere, at any depth: names, MRN, dates, original UIDs
    text = " ".join(_all_text(ds))
    for secret in SECRETS:
        assert secret not in text, secret
    assert "1.2.826.0.1.3680043.99." not in text and "1.2.826.0.1.3680043.98." not in text
    assert 0x00091001 not in ds and 0x50000010 not in ds and 0x60003000 not in ds
    assert "OriginalAttributesSequence" not in ds and "IconImageSequence" not in ds
    assert ds.StructureSetLabel != original.StructureSetLabel
    assert ds.StructureSetROISequence[0].ROIName == "XXX left kidney"
    assert ds.SOPClassUID == original.SOPClassUID  # registered UIDs are kept
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


def test_profile_mapping_is_the_vendored_table():
    # PS3.15 2024b Table E.1-1 rows, read independently of the code's parser
    assert PROFILE["PatientName"] == "Z"
    assert PROFILE["PatientID"] == "Z/D"
    assert PROFILE["OriginalAttributesSequence"] == "X"
    assert PROFILE["SOPInstanceUID"] == "U"
    assert len(PROFILE) == len([r for r in _table() if r["keyword"]])


def test_uids_consistent_and_references_kept():
    tool = Deidentifier(salt="same")
    a = Dataset()
    a.SOPInstanceUID = "1.2.826.0.1.99.3"
    a.StudyInstanceUID = "1.2.826.0.1.99.1"
    b = Dataset()
    b.StudyInstanceUID = "1.2.826.0.1.99.1"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.99.3"
    b.SourceImageSequence = [ref]
    tool(a)
    tool(b)
    assert a.SOPInstanceUID != "1.2.826.0.1.99.3"
    assert b.SourceImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert b.SourceImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.20"
    assert a.StudyInstanceUID == b.StudyInstanceUID != "1.2.826.0.1.99.1"
    other = Dataset()
    other.SOPInstanceUID = "1.2.826.0.1.99.3"
    Deidentifier(salt="other")(other)
    assert other.SOPInstanceUID != a.SOPInstanceUID


def test_date_shift_preserves_intervals_at_every_depth():
    ds, _ = _identified_dataset()
    Deidentifier(salt="k", date_shift_days=-400)(ds)
    injection = parse_datetime(ds.RadiopharmaceuticalInformationSequence[0]
                               .RadiopharmaceuticalStartDateTime)
    acquisition = parse_datetime(ds.AcquisitionDateTime)
    # independent reference: the intervals of the original strings
    assert acquisition - injection == dt.datetime(2023, 5, 3, 10, 15) - dt.datetime(
        2023, 5, 2, 9, 10)
    assert acquisition - parse_datetime(ds.StudyDate) == dt.timedelta(days=1, hours=10,
                                                                        minutes=15)
    assert ds.StudyDate == "20220328"  # 2023-05-02 minus 400 days


def test_without_the_dates_option_dates_get_basic_actions():
    ds, _ = _identified_dataset()
    Deidentifier(salt="k", retain_longitudinal=False)(ds)
    assert ds.StudyDate == ""  # Z
    assert ds.AcquisitionDateTime == "19000101000000.000000"  # X/Z/D -> dummy
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"


@pytest.mark.parametrize("value", ["2023-05-02", "20231345", "yesterday", "2023"])
def test_malformed_date_is_emptied_with_a_warning_naming_file_and_tag(value):
    ds = Dataset()
    ds.StudyDate = value
    ds.filename = "/data/Smith_John/ct_017.dcm"
    ds.SeriesDate = "20230502"
    tool = Deidentifier(salt="m")
    with pytest.warns(DeidentificationWarning, match=r"ct_017\.dcm: \(0008,0020\)") as record:
        tool(ds)
    assert ds.StudyDate == "" and ds.SeriesDate != "20230502"
    assert all(value not in str(w.message) and "Smith" not in str(w.message) for w in record)
    assert tool.warnings[0][:2] == ("ct_017.dcm", "(0008,0020)")


def test_load_study_survives_a_malformed_date(tmp_path, small_geometry, patient, injection):
    for n, t in enumerate((4.0, 24.0)):
        write_nm(tmp_path / f"nm{n}.dcm", np.full(small_geometry.shape, 7.0), small_geometry,
                 patient=patient, series_number=n, seed_text=f"m{n}", units="BQML",
                 acquisition=injection + dt.timedelta(hours=t), duration_s=900.0,
                 injection=injection, injected_activity_mbq=7400.0, decay_correction="START")
    ds = read_dataset(tmp_path / "nm1.dcm")
    ds.SeriesDate = "2023-05-03"
    ds.save_as(tmp_path / "nm1.dcm")
    with pytest.warns(DeidentificationWarning, match=r"nm1\.dcm: \(0008,0021\)"):
        study = load_study(tmp_path, salt="x")
    np.testing.assert_allclose(study.times_h, (4.0, 24.0), atol=1e-9)


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
    text = study.summary() + repr(study) + " ".join(str(w.message) for w in record) + caplog.text
    for value in ("Doe", "MRN-12345", "19510203", "ACC-77", str(tmp_path)):
        assert value not in text
