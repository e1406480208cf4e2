"""Bad input: every failure is a DicomError/InputError naming what is wrong; a bad file in a
folder is reported and the others are still used."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tdt.errors import DicomError, InputError, UnitError
from tdt.imaging import (
    Geometry,
    extract_tacs,
    load_study,
    read_dataset,
    read_nm,
    write_nm,
    write_rtstruct,
)


def _write(path, geometry, patient, injection, hours=4.0, value=3.0, **kw):
    options = dict(patient=patient, series_number=1, seed_text=str(path), units="BQML",
                   acquisition=injection + dt.timedelta(hours=hours), duration_s=900.0,
                   injection=injection, injected_activity_mbq=7400.0, decay_correction="START")
    options.update(kw)
    return write_nm(path, np.full(geometry.shape, value), geometry, **options)


def test_non_dicom_and_truncated(tmp_path, small_geometry, patient, injection):
    (tmp_path / "a.txt.dcm").write_text("hello")
    with pytest.raises(DicomError, match="a.txt.dcm: not a DICOM file"):
        read_dataset(tmp_path / "a.txt.dcm")
    good = _write(tmp_path / "nm.dcm", small_geometry, patient, injection)
    data = good.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(DicomError, match="cut.dcm"):
        read_nm(tmp_path / "cut.dcm")


def test_missing_required_tag_named(tmp_path, small_geometry, patient, injection):
    path = _write(tmp_path / "nm.dcm", small_geometry, patient, injection)
    ds = read_dataset(path)
    del ds.RadiopharmaceuticalInformationSequence
    ds.save_as(path)
    with pytest.raises(DicomError, match="RadiopharmaceuticalInformationSequence"):
        read_nm(path)
    path = _write(tmp_path / "nm2.dcm", small_geometry, patient, injection)
    ds = read_dataset(path)
    del ds.PixelSpacing
    ds.save_as(path)
    with pytest.raises(DicomError, match="PixelSpacing"):
        read_nm(path)


def test_unknown_units_named(tmp_path, small_geometry, patient, injection):
    _write(tmp_path / "nm.dcm", small_geometry, patient, injection, units="PROPCNTS")
    with pytest.raises(UnitError, match="PROPCNTS"):
        load_study(tmp_path)


def test_mixed_frames_of_reference(tmp_path, small_geometry, patient, injection):
    _write(tmp_path / "a.dcm", small_geometry, patient, injection, hours=4)
    other = Geometry(small_geometry.shape, small_geometry.origin_mm, small_geometry.spacing_mm,
                     frame_of_reference_uid="1.2.3.999")
    _write(tmp_path / "b.dcm", other, patient, injection, hours=24)
    with pytest.raises(DicomError, match="FrameOfReferenceUID"):
        load_study(tmp_path)


def test_irregular_slice_spacing_in_series(tmp_path, patient, injection):
    paths = []
    for k, z in enumerate((0.0, 4.0, 8.0, 14.0)):
        g = Geometry((1, 4, 4), (0.0, 0.0, z), (4.0, 4.0, 4.0), frame_of_reference_uid="1.2.3")
        path = _write(tmp_path / f"s{k}.dcm", g, patient, injection, seed_text=f"s{k}")
        ds = read_dataset(path)
        ds.ImagePositionPatient = ds.DetectorInformationSequence[0].ImagePositionPatient
        ds.ImageOrientationPatient = ds.DetectorInformationSequence[0].ImageOrientationPatient
        ds.SeriesInstanceUID = "1.2.3.4"
        ds.save_as(path)
        paths.append(path)
    with pytest.raises(DicomError, match="irregular"):
        read_nm(paths)


def test_bad_file_in_folder_is_reported_and_others_used(tmp_path, small_geometry, patient,
                                                        injection):
    _write(tmp_path / "tp1.dcm", small_geometry, patient, injection, hours=4, value=2.0)
    _write(tmp_path / "tp2.dcm", small_geometry, patient, injection, hours=24, value=1.0)
    (tmp_path / "readme.bin").write_bytes(b"\x00" * 10)
    data = (tmp_path / "tp2.dcm").read_bytes()
    (tmp_path / "tp3_truncated.dcm").write_bytes(data[:400])
    with pytest.warns(UserWarning, match="2 file"):
        study = load_study(tmp_path)
    assert len(study.time_points) == 2
    skipped = dict(study.skipped)
    assert set(skipped) == {"readme.bin", "tp3_truncated.dcm"}
    assert "not a DICOM file" in skipped["readme.bin"]
    assert "Skipped" in study.summary() or "skipped" in study.summary()


def test_structure_not_found_named(tmp_path, small_geometry, patient, injection):
    _write(tmp_path / "tp1.dcm", small_geometry, patient, injection)
    mask = np.zeros(small_geometry.shape, dtype=bool)
    mask[2:4, 2:4, 2:4] = True
    write_rtstruct(tmp_path / "rs.dcm", {"Kidneys": mask}, small_geometry, patient=patient,
                   seed_text="r", referenced_series_uid="1.2", created=injection,
                   referenced_sop_uids=[str(k) for k in range(small_geometry.shape[0])])
    study = load_study(tmp_path)
    assert extract_tacs(study, ["kidneys"])["kidneys"].n_voxels == 8  # case-insensitive
    with pytest.raises(InputError, match="'livr'.*Kidneys"):
        extract_tacs(study, ["livr"])


def test_no_images_is_an_error(tmp_path):
    (tmp_path / "x.dcm").write_bytes(b"nope")
    with pytest.raises(DicomError, match="no usable.*x.dcm: not a DICOM file"):
        load_study(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        load_study(tmp_path / "missing")


def test_projections_are_refused(tmp_path, small_geometry, patient, injection):
    path = _write(tmp_path / "nm.dcm", small_geometry, patient, injection)
    ds = read_dataset(path)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    ds.save_as(path)
    with pytest.raises(DicomError, match="ImageType.*RECON TOMO"):
        read_nm(path)
