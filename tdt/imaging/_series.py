"""Stacking single-frame image files into a volume, and pixel encoding for the writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from tdt.errors import DicomError
from tdt.imaging._dicom_io import pixel_array, required
from tdt.imaging._geometry import Geometry, geometry_from_slices


def rescale(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Stored values → real-world values with RescaleSlope / RescaleIntercept (float64)."""
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return stored.astype(np.float64) * slope + intercept


def stack_slices(items: list[tuple[Path, Dataset]], source: str) -> tuple[np.ndarray, Geometry,
                                                                             list[Path]]:
    """Stack single-frame images (one series) into ``[k, j, i]`` real-world values + geometry.

    Every slice must share Rows, Columns, PixelSpacing, ImageOrientationPatient and
    FrameOfReferenceUID; slices are sorted along the normal and must be regularly spaced.
    """
    if not items:
        raise DicomError(f"{source}: no image files")
    first = items[0][1]
    rows = int(required(first, "Rows", source))
    cols = int(required(first, "Columns", source))
    spacing = [float(v) for v in required(first, "PixelSpacing", source)]
    orientation = np.array([float(v) for v in required(first, "ImageOrientationPatient", source)])
    frame = str(first.get("FrameOfReferenceUID", ""))
    positions = []
    for path, ds in items:
        name = path.name
        if (int(required(ds, "Rows", name)), int(required(ds, "Columns", name))) != (rows, cols):
            raise DicomError(f"{name}: Rows/Columns differ from the rest of {source}")
        if not np.allclose([float(v) for v in required(ds, "PixelSpacing", name)], spacing,
                           atol=1e-4):
            raise DicomError(f"{name}: PixelSpacing (0028,0030) differs from the rest of {source}")
        if not np.allclose([float(v) for v in required(ds, "ImageOrientationPatient", name)],
                           orientation, atol=1e-4):
            raise DicomError(
                f"{name}: ImageOrientationPatient (0020,0037) differs from the rest of {source}"
            )
        if str(ds.get("FrameOfReferenceUID", "")) != frame:
            raise DicomError(
                f"{name}: FrameOfReferenceUID (0020,0052) differs from the rest of {source} "
                "(mixed frames of reference)"
            )
        positions.append([float(v) for v in required(ds, "ImagePositionPatient", name)])
    geometry, order = geometry_from_slices(
        np.array(positions), orientation, spacing, rows, cols, frame, source
    )
    volume = np.empty(geometry.shape, dtype=np.float64)
    paths = []
    for k, index in enumerate(order):
        path, ds = items[index]
        volume[k] = rescale(ds, pixel_array(ds, path.name))
        paths.append(path)
    return volume, geometry, paths


def encode_unsigned(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Encode non-negative values as uint16 with a RescaleSlope (DS string).

    Integer-valued data in [0, 65535] are stored exactly (slope "1"); otherwise slope =
    max/65535 rounded to 10 significant digits (DS holds 16 characters), and the stored values are
    round(value / slope), so ``stored · float(slope)`` is the value read back.
    """
    values = np.asarray(values, dtype=np.float64)
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise DicomError("pixel encoding: values must be finite and non-negative")
    vmax = float(values.max()) if values.size else 0.0
    if np.all(values == np.round(values)) and vmax <= 65535:
        return values.astype(np.uint16), "1"
    slope = f"{vmax / 65535.0:.10g}" if vmax > 0 else "1"
    stored = np.clip(np.round(values / float(slope)), 0, 65535).astype(np.uint16)
    return stored, slope


def encode_signed(values: np.ndarray) -> tuple[np.ndarray, str, str]:
    """Encode values as int16 with slope 1 when integer-valued within range, else scaled."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if np.all(values == np.round(values)) and lo >= -32768 and hi <= 32767:
        return values.astype(np.int16), "1", "0"
    slope = f"{max(hi - lo, 1e-12) / 65535.0:.10g}"
    intercept = f"{lo + 32768 * float(slope):.10g}"
    stored = np.clip(np.round((values - float(intercept)) / float(slope)), -32768, 32767)
    return stored.astype(np.int16), slope, intercept


def set_pixels(ds: Dataset, stored: np.ndarray) -> None:
    """Attach a 2-D or 3-D (frames) integer array as monochrome PixelData."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype.kind == "i" else 0
    ds.Rows, ds.Columns = int(stored.shape[-2]), int(stored.shape[-1])
    ds.PixelData = np.ascontiguousarray(stored.astype(stored.dtype.newbyteorder("<"))).tobytes()
