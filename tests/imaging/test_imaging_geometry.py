"""Geometry: affine convention (DICOM PS3.3 C.7.6.2.1.1), slice sorting, checks, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from tdt.errors import DicomError, InputError
from tdt.imaging._geometry import (
    Geometry,
    check_same_frame_of_reference,
    geometry_from_slices,
    resample,
)


def test_affine_matches_dicom_equation():
    # PS3.3 C.7.6.2.1.1: P = S + i*Δc*X + j*Δr*Y (i column, j row); coronal-like orientation
    x_dir, y_dir = np.array([1.0, 0, 0]), np.array([0, 0, -1.0])
    normal = np.cross(x_dir, y_dir)
    positions = np.array([[10.0, 5.0 + 3.0 * k, 20.0] for k in (2, 0, 1)])  # unsorted
    pixel_spacing = (2.0, 0.5)  # row spacing, column spacing
    g, order = geometry_from_slices(positions, np.r_[x_dir, y_dir], pixel_spacing, 4, 5)
    assert list(order) == [1, 2, 0]
    i, j, k = 3, 2, 1
    expected = positions[1] + i * 0.5 * x_dir + j * 2.0 * y_dir + k * 3.0 * normal * np.sign(
        normal @ [0, 1, 0])
    np.testing.assert_allclose(g.index_to_world([i, j, k]), expected, atol=1e-12)
    np.testing.assert_allclose(g.world_to_index(expected), [i, j, k], atol=1e-12)
    assert g.voxel_volume_ml == pytest.approx(0.5 * 2.0 * 3.0 / 1000)


def test_irregular_spacing_and_duplicates_raise():
    orient = [1, 0, 0, 0, 1, 0]
    with pytest.raises(DicomError, match="irregular"):
        geometry_from_slices([[0, 0, 0], [0, 0, 5], [0, 0, 12]], orient, (1, 1), 2, 2)
    with pytest.raises(DicomError, match="duplicate"):
        geometry_from_slices([[0, 0, 0], [0, 0, 0], [0, 0, 5]], orient, (1, 1), 2, 2)
    with pytest.raises(DicomError, match="ImageOrientationPatient"):
        geometry_from_slices([[0, 0, 0]], [1, 0, 0, 1, 0, 0], (1, 1), 2, 2)


def test_mixed_frames_of_reference_named():
    a = Geometry((1, 1, 1), (0, 0, 0), (1, 1, 1), frame_of_reference_uid="1.2.3")
    b = Geometry((1, 1, 1), (0, 0, 0), (1, 1, 1), frame_of_reference_uid="1.2.4")
    assert check_same_frame_of_reference({"a": a, "a2": a}) == "1.2.3"
    with pytest.raises(DicomError, match="FrameOfReferenceUID"):
        check_same_frame_of_reference({"NM": a, "CT": b})


def test_resample_integer_shift_is_array_shift(rng):
    # target grid offset by exactly (1, 2, 0) voxels: values must equal the shifted array
    src = Geometry((5, 6, 7), (0.0, 0.0, 0.0), (2.0, 3.0, 4.0))
    dst = Geometry((5, 4, 6), (2.0, 6.0, 0.0), (2.0, 3.0, 4.0))
    volume = rng.random(src.shape)
    out = resample(volume, src, dst, order=1)
    np.testing.assert_allclose(out, volume[:, 2:6, 1:7], atol=1e-12)


def test_resample_linear_function_exact(rng):
    # trilinear interpolation reproduces a linear function exactly (inside the source grid)
    src = Geometry((8, 8, 8), (0.0, 0.0, 0.0), (4.0, 4.0, 4.0))
    dst = Geometry((5, 6, 7), (1.3, 2.1, 3.7), (3.1, 2.9, 4.3))
    xyz = src.voxel_centres_mm()
    volume = 2.0 * xyz[..., 0] - 0.5 * xyz[..., 1] + 0.25 * xyz[..., 2] + 7.0
    out = resample(volume, src, dst, order=1)
    target = dst.voxel_centres_mm()
    np.testing.assert_allclose(
        out, 2.0 * target[..., 0] - 0.5 * target[..., 1] + 0.25 * target[..., 2] + 7.0,
        atol=1e-9)


def test_geometry_validation():
    with pytest.raises(InputError, match="spacing"):
        Geometry((1, 1, 1), (0, 0, 0), (1, 0, 1))
    with pytest.raises(InputError, match="shape"):
        resample(np.zeros((2, 2, 2)), Geometry((1, 1, 1), (0, 0, 0), (1, 1, 1)),
                 Geometry((1, 1, 1), (0, 0, 0), (1, 1, 1)))
