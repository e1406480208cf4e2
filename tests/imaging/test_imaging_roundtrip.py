"""Write → read round trips preserve geometry, times and values exactly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tdt.imaging import (
    Geometry,
    rasterise,
    read_ct,
    read_dataset,
    read_nm,
    read_rtdose,
    read_rtstruct,
    read_seg,
    write_ct,
    write_nm,
    write_rtdose,
    write_rtstruct,
    write_seg,
)
from tdt.imaging._ct import ct_slice_uids
from tdt.imaging._dicom_io import deterministic_uid


def integer_counts(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 5000, size=shape).astype(float)


def _assert_same_geometry(a: Geometry, b: Geometry):
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.affine, b.affine)
    assert a.frame_of_reference_uid == b.frame_of_reference_uid


def test_nm_multiframe_roundtrip_exact(tmp_path, small_geometry, patient, injection):
    counts = integer_counts(small_geometry.shape)
    acquisition = injection + dt.timedelta(hours=23, minutes=47, seconds=12.5)
    path = write_nm(tmp_path / "nm.dcm", counts, small_geometry, patient=patient,
                    series_number=5, seed_text="rt", units="CNTS", acquisition=acquisition,
                    duration_s=900.0, injection=injection, injected_activity_mbq=7321.5)
    image = read_nm(path)
    _assert_same_geometry(image.geometry, small_geometry)
    np.testing.assert_array_equal(image.values, counts)
    assert image.acquisition_datetime == acquisition
    assert image.injection_datetime == injection
    assert image.hours_since_injection == pytest.approx(23 + 47 / 60 + 12.5 / 3600, abs=1e-12)
    assert image.duration_s == 900.0
    assert image.injected_activity_mbq == pytest.approx(7321.5, rel=1e-12)
    assert (image.units, image.decay_correction, image.nuclide) == ("CNTS", "NONE", "Lu-177")


def test_nm_scaled_values_roundtrip_is_stable(tmp_path, small_geometry, patient, injection, rng):
    values = rng.random(small_geometry.shape) * 123.4  # non-integer: stored with a slope
    kwargs = dict(patient=patient, series_number=5, seed_text="rt", units="BQML",
                  acquisition=injection + dt.timedelta(hours=4), duration_s=600.0,
                  injection=injection, injected_activity_mbq=1000.0, decay_correction="START")
    first = read_nm(write_nm(tmp_path / "a.dcm", values, small_geometry, **kwargs)).values
    # 16-bit quantisation: |error| <= slope / 2 = max / 65535 / 2
    assert np.max(np.abs(first - values)) <= values.max() / 65535 / 2 * (1 + 1e-9)
    second = read_nm(write_nm(tmp_path / "b.dcm", first, small_geometry, **kwargs)).values
    np.testing.assert_array_equal(second, first)


def test_nm_per_slice_series(tmp_path, small_geometry, patient, injection):
    # a per-slice NM series (one single-frame file per slice, IPP per file), shuffled names
    counts = integer_counts(small_geometry.shape, seed=3)
    files = []
    for k in range(small_geometry.shape[0]):
        one = Geometry((1, *small_geometry.shape[1:]),
                       tuple(small_geometry.slice_positions_mm()[k]), small_geometry.spacing_mm,
                       frame_of_reference_uid=small_geometry.frame_of_reference_uid)
        path = write_nm(tmp_path / f"s{(k * 7) % 6}_{k}.dcm", counts[k:k + 1], one,
                        patient=patient, series_number=7, seed_text="ps", units="CNTS",
                        acquisition=injection + dt.timedelta(hours=24), duration_s=1200.0,
                        injection=injection, injected_activity_mbq=7400.0)
        ds = read_dataset(path)
        ds.ImagePositionPatient = ds.DetectorInformationSequence[0].ImagePositionPatient
        ds.ImageOrientationPatient = ds.DetectorInformationSequence[0].ImageOrientationPatient
        ds.SOPInstanceUID = deterministic_uid("ps", k)
        ds.save_as(path)
        files.append(path)
    image = read_nm(sorted(files, reverse=True))
    _assert_same_geometry(image.geometry, small_geometry)
    np.testing.assert_array_equal(image.values, counts)


def test_ct_roundtrip_exact(tmp_path, small_geometry, patient, injection, rng):
    hu = rng.integers(-1000, 2500, size=small_geometry.shape).astype(float)
    paths = write_ct(tmp_path / "ct", hu, small_geometry, patient=patient, series_number=2,
                     seed_text="ct", acquisition=injection)
    items = [(p, read_dataset(p)) for p in reversed(paths)]
    ct = read_ct(items)
    _assert_same_geometry(ct.geometry, small_geometry)
    np.testing.assert_array_equal(ct.hu, hu)
    assert ct.sop_instance_uids == ct_slice_uids("ct", small_geometry.shape[0])


def _test_masks(geometry: Geometry) -> dict[str, np.ndarray]:
    k, j, i = np.indices(geometry.shape)
    ring = ((i - 4) ** 2 + (j - 3) ** 2 <= 9) & ((i - 4) ** 2 + (j - 3) ** 2 >= 2) & (k < 4)
    blob = np.zeros(geometry.shape, dtype=bool)
    blob[2:5, 0:2, 6:9] = True
    blob[3, 2, 8] = True
    blob[1, 5, 0] = True  # single isolated voxel
    diag = np.zeros(geometry.shape, dtype=bool)
    diag[5, 4, 1] = diag[5, 5, 2] = True  # diagonal neighbours (contour saddle)
    return {"ring_with_hole": ring, "blob": blob, "diagonal": diag}


def test_rtstruct_roundtrip_reproduces_masks(tmp_path, small_geometry, patient, injection):
    masks = _test_masks(small_geometry)
    uids = ct_slice_uids("ct", small_geometry.shape[0])
    path = write_rtstruct(tmp_path / "rs.dcm", masks, small_geometry, patient=patient,
                          seed_text="rs", referenced_series_uid="1.2.3", referenced_sop_uids=uids,
                          created=injection)
    structures = read_rtstruct(path)
    assert structures.names == list(masks)
    out = rasterise(structures, small_geometry)
    for name, mask in masks.items():
        np.testing.assert_array_equal(out[name], mask, err_msg=name)


def test_rtstruct_rasterised_on_finer_grid_keeps_volume(tmp_path, patient, injection):
    # a sphere contoured on a 2 mm grid, rasterised on a 1 mm grid (offset 0.25 mm so that no
    # voxel centre lies on a contour edge): each 2 mm voxel becomes 2x2x2 1 mm voxels, up to the
    # chamfered corners of marching-squares contours (edge midpoints joined diagonally)
    coarse = Geometry((21, 21, 21), (-20.0, -20.0, -20.0), (2.0, 2.0, 2.0),
                      frame_of_reference_uid="1.2.3.4")
    fine = Geometry((42, 42, 42), (-20.75, -20.75, -20.75), (1.0, 1.0, 1.0),
                    frame_of_reference_uid="1.2.3.4")
    xyz = coarse.voxel_centres_mm()
    sphere = np.sum(xyz ** 2, axis=-1) <= 15.0 ** 2
    path = write_rtstruct(tmp_path / "rs.dcm", {"s": sphere}, coarse, patient=patient,
                          seed_text="x", referenced_series_uid="1.2",
                          referenced_sop_uids=[str(i) for i in range(21)], created=injection)
    mask = rasterise(read_rtstruct(path), fine)["s"]
    assert mask.sum() == pytest.approx(8 * sphere.sum(), rel=0.02)
    assert mask.sum() * 1e-3 == pytest.approx(4 / 3 * np.pi * 15.0 ** 3 * 1e-3, rel=0.08)


def test_seg_roundtrip_and_resampling(tmp_path, small_geometry, patient, injection):
    masks = _test_masks(small_geometry)
    uids = ct_slice_uids("ct", small_geometry.shape[0])
    path = write_seg(tmp_path / "seg.dcm", masks, small_geometry, patient=patient, seed_text="sg",
                     referenced_series_uid="1.2.3", referenced_sop_uids=uids, created=injection)
    seg = read_seg(path)
    out = seg.on_grid(small_geometry)
    for name, mask in masks.items():
        np.testing.assert_array_equal(out[name], mask, err_msg=name)


def test_rtdose_roundtrip(tmp_path, small_geometry, patient, rng):
    dose = rng.random(small_geometry.shape) * 37.0
    path = write_rtdose(tmp_path / "dose.dcm", dose, small_geometry, patient=patient)
    image = read_rtdose(path)
    _assert_same_geometry(image.geometry, small_geometry)
    # 32-bit quantisation: |error| <= scaling / 2 = max / (2^32 - 1) / 2
    assert np.max(np.abs(image.dose_gy - dose)) <= dose.max() / 4294967295 / 2 * (1 + 1e-6)
    again = read_rtdose(write_rtdose(tmp_path / "d2.dcm", image.dose_gy, small_geometry,
                                     patient=patient))
    np.testing.assert_array_equal(again.dose_gy, image.dose_gy)
    ds = read_dataset(path)
    assert ds.Modality == "RTDOSE" and ds.DoseUnits == "GY"
    assert ds.FrameOfReferenceUID == small_geometry.frame_of_reference_uid


def test_nm_negative_spacing_between_slices(tmp_path, small_geometry, patient, injection):
    # SpacingBetweenSlices < 0: slice k at IPP - k·|Δs|·(X × Y) (same physical grid, reversed)
    counts = integer_counts(small_geometry.shape, seed=5)
    path = write_nm(tmp_path / "nm.dcm", counts, small_geometry, patient=patient,
                    series_number=5, seed_text="neg", units="CNTS",
                    acquisition=injection + dt.timedelta(hours=4), duration_s=900.0,
                    injection=injection, injected_activity_mbq=7400.0)
    ds = read_dataset(path)
    last = small_geometry.slice_positions_mm()[-1]
    ds.DetectorInformationSequence[0].ImagePositionPatient = [f"{v:.10g}" for v in last]
    ds.SpacingBetweenSlices = f"{-small_geometry.spacing_mm[2]:.10g}"
    ds.PixelData = counts[::-1].astype("<u2").tobytes()
    ds.save_as(path)
    image = read_nm(path)
    centres = image.geometry.voxel_centres_mm()
    np.testing.assert_allclose(centres[::-1], small_geometry.voxel_centres_mm(), atol=1e-9)
    np.testing.assert_array_equal(image.values[::-1], counts)
