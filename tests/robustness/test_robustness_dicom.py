"""Bad-input corpus, DICOM: corrupted copies of the phantom patient.

Each case either raises a clean TdtError naming what is wrong, or loads with the problem recorded
as a PlausibilityWarning in ``Study.warnings`` (a file that cannot be used is skipped and named).
The reference numbers of the corruptions are physical identities: Bq/mL of count data is off by
the calibration and the voxel volume, a 100x calibration factor scales every activity by 1/100.
"""

from __future__ import annotations

import datetime as dt
import json

import pydicom
import pytest
from robustness_helpers import edit_dicom, nm_files, recorded

from tdt.errors import DicomError, InputError, TdtError, UnitError
from tdt.imaging import extract_tacs, load_study

ALL = ("NM", "CT", "RTSTRUCT.dcm", "SEG.dcm", "calibration.json")
NM_ONLY = ("NM", "calibration.json")


def _load(folder):
    return recorded(lambda: load_study(folder, salt="corpus"))


def test_clean_phantom_has_no_warning(small_phantom):
    study, found = _load(small_phantom.directory)
    assert found == [] and study.warnings == [] and study.skipped == []


# ---- implausible: loads, with the problem recorded in Study.warnings ---------------------------

def _units_bqml(folder):
    edit_dicom(nm_files(folder), Units="BQML")


def _calibration(factor):
    def edit(folder):
        path = folder / "calibration.json"
        spec = json.loads(path.read_text())
        spec["cps_per_mbq"] *= factor
        path.write_text(json.dumps(spec))
    return edit


def _nm_spacing(value, which=slice(None)):
    def edit(folder):
        edit_dicom(nm_files(folder)[which], PixelSpacing=[value, value])
    return edit


def _slice_spacing(value):
    def edit(folder):
        edit_dicom(nm_files(folder), SpacingBetweenSlices=value, SliceThickness=value)
    return edit


def _scale(factor, which=slice(None)):
    def edit(folder):
        for path in nm_files(folder)[which]:
            ds = pydicom.dcmread(path)
            ds.RescaleSlope = f"{float(ds.RescaleSlope) * factor:.10g}"
            ds.save_as(path)
    return edit


def _total_dose(value):
    def set_dose(ds):
        ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = value
    def edit(folder):
        edit_dicom(nm_files(folder), _=set_dose)
    return edit


def _ct_spacing(value):
    def edit(folder):
        edit_dicom(sorted((folder / "CT").glob("*.dcm")), PixelSpacing=[value, value])
    return edit


def _zero_image(index):
    def edit(folder):
        path = nm_files(folder)[index]
        ds = pydicom.dcmread(path)
        ds.PixelData = bytes(len(ds.PixelData))
        ds.save_as(path)
    return edit


def _malformed(keyword, value, where="NM", index=0):
    def edit(folder):
        files = nm_files(folder) if where == "NM" else sorted((folder / where).glob("*.dcm"))
        edit_dicom([files[index]], **{keyword: value})
    return edit


def _truncate(index):
    def edit(folder):
        path = nm_files(folder)[index]
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    return edit


def _junk_file(folder):
    (folder / "NM" / "notes.dcm").write_text("not DICOM at all")


IMPLAUSIBLE = {
    # case: (parts copied, edit, text expected in a warning, time points expected)
    "units_bqml_on_counts": (NM_ONLY, _units_bqml, "field of view", 3),
    "units_bqml_whole_numbers": (NM_ONLY, _units_bqml, "whole number", 3),
    "calibration_100x_high": (NM_ONLY, _calibration(100.0), "cps_per_mbq", 3),
    "calibration_100x_high_fov": (NM_ONLY, _calibration(100.0), "field of view", 3),
    "calibration_100x_low": (NM_ONLY, _calibration(0.01), "field of view", 3),
    "calibration_30x_low": (NM_ONLY, _calibration(1 / 30), "cps_per_mbq", 3),
    "nm_pixel_spacing_4.3": (NM_ONLY, _nm_spacing("4.3"), "PixelSpacing", 3),
    "nm_pixel_spacing_one_time_point": (NM_ONLY, _nm_spacing("4.3", slice(2, 3)), "voxel size", 3),
    "nm_pixel_spacing_one_tp_shape": (NM_ONLY, _nm_spacing("5.5", slice(1, 2)), "cubic", 3),
    "nm_slice_spacing_wrong": (NM_ONLY, _slice_spacing("6.0"), "cubic", 3),
    "activity_4x_administered": (NM_ONLY, _scale(4.0 * 7400 / 4100), "field of view", 3),
    "activity_100x": (NM_ONLY, _scale(100.0), "field of view", 3),
    "one_time_point_100x": (NM_ONLY, _scale(100.0, slice(1, 2)), "field of view", 3),
    "total_dose_in_mbq": (NM_ONLY, _total_dose("7400"), "RadionuclideTotalDose", 3),
    "total_dose_1000x_high": (NM_ONLY, _total_dose("7.4e12"), "RadionuclideTotalDose", 3),
    "zero_counts_at_48h": (NM_ONLY, _zero_image(2), "NM_tp3.dcm", 2),
    "negative_slope_one_time_point": (NM_ONLY, _scale(-1.0, slice(1, 2)), "NM_tp2.dcm", 2),
    # a malformed date/time is emptied by the de-identifier (a recorded warning naming the file
    # and tag); the time then comes from the tags that remain, so the time point is kept
    "malformed_acquisition_datetime": (NM_ONLY, _malformed("AcquisitionDateTime", "2024XX15"),
                                       "NM_tp1.dcm", 3),
    "malformed_acquisition_time": (
        NM_ONLY, lambda f: edit_dicom(nm_files(f)[1:2], AcquisitionDateTime="",
                                      AcquisitionTime="99x"), "NM_tp2.dcm", 2),
    "malformed_injection_datetime_one_file": (
        NM_ONLY, lambda f: edit_dicom(nm_files(f)[:1], _=lambda ds: setattr(
            ds.RadiopharmaceuticalInformationSequence[0], "RadiopharmaceuticalStartDateTime",
            "20240115XX")), "NM_tp1.dcm", 3),
    "truncated_nm_file": (NM_ONLY, _truncate(1), "NM_tp2.dcm", 2),
    "junk_file_in_folder": (NM_ONLY, _junk_file, "notes.dcm", 3),
    "malformed_study_date_in_one_ct_slice": (
        ("NM", "CT", "calibration.json"), _malformed("StudyDate", "2024XX15", "CT", 5),
        "de-identification", 3),
    "malformed_content_time_in_one_ct_slice": (
        ("NM", "CT", "calibration.json"), _malformed("AcquisitionDateTime", "notadate", "CT", 0),
        "CT", 3),
    "ct_pixel_spacing_too_small": (ALL, _ct_spacing("1.9"), "CT", 3),
}


@pytest.mark.parametrize("case", sorted(IMPLAUSIBLE))
def test_implausible_dicom_is_recorded(case, corrupt):
    parts, edit, text, n_times = IMPLAUSIBLE[case]
    study, found = _load(corrupt(parts, edit))
    assert len(study.time_points) == n_times
    assert found and [str(w) for w in study.warnings] == found
    assert any(text in message for message in found), found
    assert all(w.field and w.expected for w in study.warnings)


def test_bqml_on_counts_is_the_physical_factor(corrupt, small_phantom):
    """Counts read as Bq/mL: activity = counts·V·1e-6 instead of counts/(T·cps): the ratio is
    V(mL)·1e-6·T(s)·cps/MBq·(decay factor), computed independently of the code."""
    clean, _ = _load(small_phantom.directory)
    bad, _ = _load(corrupt(NM_ONLY, _units_bqml))
    voxel_ml = 0.47952 ** 3
    spec = json.loads((small_phantom.directory / "calibration.json").read_text())
    expected = voxel_ml * 1e-6 * 900.0 * spec["cps_per_mbq"]  # the decay correction cancels
    ratio = bad.time_points[0].total_activity_mbq / clean.time_points[0].total_activity_mbq
    assert ratio == pytest.approx(expected, rel=1e-6)


def test_organ_activity_above_administered_is_warned(corrupt):
    study, _ = _load(corrupt(("NM", "RTSTRUCT.dcm", "calibration.json"), _scale(100.0)))
    _, found = recorded(lambda: extract_tacs(study, ["liver"]))
    assert any("VOI 'liver'" in m for m in found), found


# ---- impossible: a clean TdtError naming the tag ----------------------------------------------

def _shift_injection(hours):
    def shift(ds):
        item = ds.RadiopharmaceuticalInformationSequence[0]
        when = dt.datetime.strptime(item.RadiopharmaceuticalStartDateTime[:14], "%Y%m%d%H%M%S")
        when += dt.timedelta(hours=hours)
        item.RadiopharmaceuticalStartDateTime = when.strftime("%Y%m%d%H%M%S")
    return lambda folder: edit_dicom(nm_files(folder), _=shift)


def _calibration_json(text):
    return lambda folder: (folder / "calibration.json").write_text(text)


IMPOSSIBLE = {
    "injection_after_scans": (_shift_injection(30.0), DicomError, "before the injection"),
    "injection_after_all_scans": (_shift_injection(72.0), DicomError, "RadiopharmaceuticalStart"),
    "negative_slope_everywhere": (_scale(-1.0), DicomError, "RescaleSlope"),
    "all_images_zero": (lambda f: [_zero_image(i)(f) for i in range(3)], DicomError, "all zero"),
    "total_dose_zero": (_total_dose("0"), DicomError, "RadionuclideTotalDose"),
    "total_dose_negative": (_total_dose("-7.4e9"), DicomError, "RadionuclideTotalDose"),
    "units_unknown": (lambda f: edit_dicom(nm_files(f), Units="PROPCNTS"), UnitError, "PROPCNTS"),
    "decay_correction_unknown": (lambda f: edit_dicom(nm_files(f), DecayCorrection="LATER"),
                                 UnitError, "DecayCorrection"),
    "pixel_spacing_missing": (lambda f: edit_dicom(nm_files(f), _=lambda ds: delattr(
        ds, "PixelSpacing")), DicomError, "PixelSpacing"),
    "frame_duration_zero": (lambda f: edit_dicom(nm_files(f), _=lambda ds: setattr(
        ds.RotationInformationSequence[0], "ActualFrameDuration", 0)), UnitError, "duration"),
    "calibration_json_malformed": (_calibration_json("{not json"), InputError, "calibration"),
    "calibration_json_negative": (_calibration_json(
        '{"cps_per_mbq": -12, "date": "2023-06-01"}'), InputError, "cps_per_mbq"),
    "calibration_after_acquisition": (_calibration_json(
        '{"cps_per_mbq": 12, "date": "2030-01-01"}'), InputError, "after the acquisition"),
    "calibration_missing_for_counts": (lambda f: (f / "calibration.json").unlink(), UnitError,
                                       "CameraCalibration"),
    "all_nm_truncated": (lambda f: [_truncate(i)(f) for i in range(3)], DicomError, "NM"),
    "mixed_frame_of_reference": (_malformed("FrameOfReferenceUID", "1.2.3.4", "NM", 1),
                                 DicomError, "FrameOfReferenceUID"),
    "two_injection_times": (lambda f: _shift_injection(1.0)(f) or edit_dicom(
        nm_files(f)[:1], _=lambda ds: setattr(ds.RadiopharmaceuticalInformationSequence[0],
                                              "RadiopharmaceuticalStartDateTime",
                                              "20240115080000")), DicomError,
                            "injection times"),
}


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE))
def test_impossible_dicom_raises_clean_error(case, corrupt):
    edit, error, text = IMPOSSIBLE[case]
    folder = corrupt(NM_ONLY, edit)
    with pytest.raises(error, match=text) as info:
        _load(folder)
    assert isinstance(info.value, TdtError)


# ---- structures that leave the SPECT field of view ---------------------------------------------

def _shift_contours(roi_name, dx_mm):
    """Move every contour point of ``roi_name`` by ``dx_mm`` along x (LPS)."""
    def shift(ds):
        numbers = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
        for item in ds.ROIContourSequence:
            if numbers[int(item.ReferencedROINumber)] != roi_name:
                continue
            for contour in item.ContourSequence:
                points = [float(v) for v in contour.ContourData]
                points[0::3] = [x + dx_mm for x in points[0::3]]
                contour.ContourData = [f"{v:.6g}" for v in points]
    return lambda folder: edit_dicom([folder / "RTSTRUCT.dcm"], _=shift)


def _shift_seg(dx_mm):
    def shift(ds):
        for frame in ds.PerFrameFunctionalGroupsSequence:
            position = frame.PlanePositionSequence[0]
            xyz = [float(v) for v in position.ImagePositionPatient]
            position.ImagePositionPatient = [xyz[0] + dx_mm, xyz[1], xyz[2]]
    return lambda folder: edit_dicom([folder / "SEG.dcm"], _=shift)


def _fov_width_mm(small_phantom):
    first = pydicom.dcmread(nm_files(small_phantom.directory)[0])
    return float(first.Columns) * float(first.PixelSpacing[1])


def test_rtstruct_contour_outside_the_grid_is_warned(corrupt, small_phantom):
    """Liver contours moved 40 % of the field width to the patient's right: part lies off the grid."""
    folder = corrupt(("NM", "RTSTRUCT.dcm", "calibration.json"),
                     _shift_contours("liver", -0.4 * _fov_width_mm(small_phantom)))
    study, _ = _load(folder)  # masks are rasterised on load, warnings kept in Study.warnings
    found = [str(w) for w in study.warnings]
    assert any("RTSTRUCT structure 'liver'" in m and "outside" in m for m in found), found
    assert not any("'kidneys'" in m for m in found), found


def test_rtstruct_inside_the_grid_is_not_warned(corrupt):
    study, _ = _load(corrupt(("NM", "RTSTRUCT.dcm", "calibration.json")))
    assert not any("extent" in str(w) for w in study.warnings), study.warnings


def test_seg_outside_the_grid_is_warned(corrupt, small_phantom):
    folder = corrupt(("NM", "SEG.dcm", "calibration.json"),
                     _shift_seg(0.4 * _fov_width_mm(small_phantom)))
    study, found_on_load = _load(folder)
    _, found = recorded(lambda: extract_tacs(study, ["liver"]))
    messages = found_on_load + found + [str(w) for w in study.warnings]
    assert any("SEG structure" in m and "outside" in m for m in messages), messages
