"""Writing PET Image Storage series (one file per slice): synthetic pre-therapy PET studies.

The counterpart of :func:`tdt.imaging._pet.read_pet` for phantoms and tests: a static (one bed or
several beds) PET volume in Bq/mL, decay-corrected to the scan start (``DecayCorrection``
START, ``Units`` BQML, ``CorrectedImage`` ATTN/SCAT/DECY), every slice with its own
RescaleSlope, DecayFactor e^{λ(t_k − t_ref)} for a slice acquired t_k − t_ref after the series
start (ICRP-107 λ), and the Radiopharmaceutical Information Sequence tdt writes for NM images.
Deterministic: UIDs derive from ``seed_text``; no wall-clock time is written.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import numpy as np

from tdt.errors import DicomError, InputError
from tdt.imaging._dicom_io import (
    PET_IMAGE_STORAGE,
    deterministic_uid,
    format_date,
    format_time,
    new_file_dataset,
    save,
    set_patient_study,
)
from tdt.imaging._geometry import Geometry
from tdt.imaging._radiopharmaceutical import radiopharmaceutical_sequence
from tdt.imaging._series import encode_unsigned, set_pixels
from tdt.physics import nuclide as _nuclide
from tdt.units import per_h_to_per_s, s_to_ms


def write_pet(
    folder: str | Path,
    concentration_bqml: np.ndarray,
    geometry: Geometry,
    *,
    patient: dict,
    series_number: int,
    seed_text: str,
    scan_start: _dt.datetime,
    injection: _dt.datetime,
    injected_activity_mbq: float,
    nuclide: str = "Ga-68",
    radiopharmaceutical: str = "68Ga-PSMA-11",
    patient_weight_kg: float | None = None,
    bed_duration_s: float = 120.0,
    slices_per_bed: int | None = None,
    series_description: str = "PET AC quantitative",
) -> list[Path]:
    """Write ``concentration_bqml`` (Bq/mL at ``scan_start``, ``[k, j, i]`` ≥ 0) as PET slices.

    Slices are grouped into beds of ``slices_per_bed`` (default: one bed), bed b acquired from
    ``scan_start + b · bed_duration_s``. Geometry: slice k at origin + k·Δs·N (N = slice_cosine).
    Returns the written paths (``folder/pt_0000.dcm``, ...).
    """
    values = np.asarray(concentration_bqml, dtype=np.float64)
    if values.shape != geometry.shape:
        raise DicomError(f"write_pet: values shape {values.shape} != geometry {geometry.shape}")
    if scan_start < injection:
        raise InputError(f"write_pet: scan_start {scan_start} is before the injection "
                         f"{injection}; expected a scan after the administration")
    if not bed_duration_s > 0:
        raise InputError(f"write_pet: bed_duration_s {bed_duration_s!r}; expected > 0 s")
    lam_s = per_h_to_per_s(_nuclide(nuclide).decay_constant_per_h)
    per_bed = slices_per_bed or geometry.shape[0]
    folder = Path(folder)
    series_uid = deterministic_uid(seed_text, "series")
    normal = np.asarray(geometry.slice_cosine)
    paths = []
    for k in range(geometry.shape[0]):
        start = scan_start + _dt.timedelta(seconds=(k // per_bed) * bed_duration_s)
        ds = new_file_dataset(PET_IMAGE_STORAGE, deterministic_uid(seed_text, "slice", k))
        set_patient_study(ds, patient)
        if patient_weight_kg is not None:
            ds.PatientWeight = f"{patient_weight_kg:.6g}"
        ds.FrameOfReferenceUID = geometry.frame_of_reference_uid
        ds.Modality = "PT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.ImageIndex = k + 1
        ds.SeriesDescription = series_description
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.SeriesDate = format_date(scan_start.date())
        ds.SeriesTime = format_time(scan_start)
        ds.AcquisitionDate = ds.ContentDate = format_date(start.date())
        ds.AcquisitionTime = ds.ContentTime = format_time(start)
        ds.ActualFrameDuration = int(round(s_to_ms(bed_duration_s)))
        ds.Units = "BQML"
        ds.DecayCorrection = "START"
        ds.DecayFactor = f"{math.exp(lam_s * (start - scan_start).total_seconds()):.10g}"
        ds.CorrectedImage = ["ATTN", "SCAT", "DECY"]
        ds.CountsSource = "EMISSION"
        ds.NumberOfSlices = geometry.shape[0]
        position = np.asarray(geometry.origin_mm) + k * geometry.spacing_mm[2] * normal
        ds.ImagePositionPatient = [f"{v:.10g}" for v in position]
        ds.ImageOrientationPatient = [
            f"{v:.10g}" for v in (*geometry.row_cosine, *geometry.column_cosine)]
        ds.PixelSpacing = [f"{geometry.spacing_mm[1]:.10g}", f"{geometry.spacing_mm[0]:.10g}"]
        ds.SliceThickness = f"{geometry.spacing_mm[2]:.10g}"
        ds.RadiopharmaceuticalInformationSequence = radiopharmaceutical_sequence(
            nuclide, injection, injected_activity_mbq, radiopharmaceutical)
        stored, slope = encode_unsigned(values[k])
        ds.RescaleSlope = slope
        ds.RescaleIntercept = "0"
        set_pixels(ds, stored)
        paths.append(save(ds, folder / f"pt_{k:04d}.dcm"))
    return paths
