"""RT Dose: write an absorbed-dose volume (Gy) that a viewer overlays on the CT; read it back.

The dose grid is a multi-frame image: ImagePositionPatient of the first frame,
GridFrameOffsetVector (3004,000C) = slice offsets (mm) along the normal, DoseGridScaling so that
dose (Gy) = stored uint32 × scaling. DoseSummationType "PLAN" with no RT Plan reference: the dose
comes from a radiopharmaceutical therapy, not a treatment plan (viewers accept this).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.tag import Tag

from tdt.errors import DicomError, InputError
from tdt.imaging._dicom_io import (
    RT_DOSE_STORAGE,
    deterministic_uid,
    format_date,
    format_time,
    new_file_dataset,
    pixel_array,
    read_dataset,
    required,
    save,
    set_patient_study,
)
from tdt.imaging._geometry import Geometry


@dataclass
class DoseImage:
    """An RTDOSE volume: ``dose_gy`` ``[k, j, i]`` on ``geometry``."""

    dose_gy: np.ndarray
    geometry: Geometry
    dose_type: str = "PHYSICAL"
    files: list[Path] = field(default_factory=list)


def write_rtdose(
    path: str | Path,
    dose_gy: np.ndarray,
    geometry: Geometry,
    *,
    patient: dict,
    seed_text: str = "tdt-rtdose",
    created: _dt.datetime | None = None,
    comment: str = "tdt voxel dosimetry",
    dose_type: str = "PHYSICAL",
) -> Path:
    """Write ``dose_gy`` (≥ 0, finite) as RT Dose Storage with 32-bit unsigned pixels.

    ``patient`` supplies the patient/study attributes (PatientID, StudyInstanceUID, ...) and must
    carry the ``FrameOfReferenceUID`` of the CT it overlays (or ``geometry`` must).
    """
    dose = np.asarray(dose_gy, dtype=np.float64)
    if dose.shape != geometry.shape:
        raise InputError(f"write_rtdose: dose shape {dose.shape} != geometry {geometry.shape}")
    if not np.all(np.isfinite(dose)) or np.any(dose < 0):
        raise InputError("write_rtdose: dose_gy must be finite and >= 0 Gy")
    created = created or _dt.datetime(2000, 1, 1)
    ds = new_file_dataset(RT_DOSE_STORAGE, deterministic_uid(seed_text, "instance"))
    set_patient_study(ds, patient)
    ds.FrameOfReferenceUID = geometry.frame_of_reference_uid or patient.get(
        "FrameOfReferenceUID", "")
    if not ds.FrameOfReferenceUID:
        raise InputError("write_rtdose: FrameOfReferenceUID is required (geometry or patient)")
    ds.Modality = "RTDOSE"
    ds.SeriesInstanceUID = deterministic_uid(seed_text, "series")
    ds.SeriesNumber = 950
    ds.InstanceNumber = 1
    ds.SeriesDescription = comment[:64]
    ds.ContentDate = ds.SeriesDate = format_date(created.date())
    ds.ContentTime = ds.SeriesTime = format_time(created)
    ds.DoseUnits = "GY"
    ds.DoseType = dose_type
    ds.DoseSummationType = "PLAN"
    ds.DoseComment = comment[:64]
    ds.ImagePositionPatient = [f"{v:.10g}" for v in geometry.origin_mm]
    ds.ImageOrientationPatient = [
        f"{v:.10g}" for v in (*geometry.row_cosine, *geometry.column_cosine)
    ]
    ds.PixelSpacing = [f"{geometry.spacing_mm[1]:.10g}", f"{geometry.spacing_mm[0]:.10g}"]
    ds.SliceThickness = f"{geometry.spacing_mm[2]:.10g}"
    ds.NumberOfFrames = geometry.shape[0]
    ds.FrameIncrementPointer = Tag(0x3004, 0x000C)
    ds.GridFrameOffsetVector = [f"{k * geometry.spacing_mm[2]:.10g}"
                                for k in range(geometry.shape[0])]
    vmax = float(dose.max())
    scaling = f"{vmax / 4294967295.0:.10g}" if vmax > 0 else "1"
    stored = np.clip(np.round(dose / float(scaling)), 0, 4294967295).astype("<u4")
    ds.DoseGridScaling = scaling
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.Rows, ds.Columns = geometry.shape[1], geometry.shape[2]
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return save(ds, path)


def read_rtdose(path: str | Path) -> DoseImage:
    """Read an RTDOSE file (uniform GridFrameOffsetVector required)."""
    path = Path(path)
    ds = read_dataset(path)
    name = path.name
    if str(ds.get("DoseUnits", "GY")).upper() != "GY":
        raise DicomError(f"{name}: DoseUnits (3004,0002) {ds.DoseUnits!r}; expected 'GY'")
    offsets = np.array([float(v) for v in required(ds, "GridFrameOffsetVector", name)])
    steps = np.diff(offsets)
    if len(steps) and (np.any(steps <= 0) or np.ptp(steps) > 1e-3 * abs(steps.mean())):
        raise DicomError(f"{name}: GridFrameOffsetVector (3004,000C) is not uniformly increasing")
    orientation = np.array([float(v) for v in required(ds, "ImageOrientationPatient", name)])
    spacing = [float(v) for v in required(ds, "PixelSpacing", name)]
    position = np.array([float(v) for v in required(ds, "ImagePositionPatient", name)])
    normal = np.cross(orientation[:3], orientation[3:])
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    geometry = Geometry(
        shape=(frames, int(ds.Rows), int(ds.Columns)),
        origin_mm=tuple((position + offsets[0] * normal).tolist()),
        spacing_mm=(spacing[1], spacing[0], float(steps.mean()) if len(steps) else 1.0),
        row_cosine=tuple(orientation[:3].tolist()),
        column_cosine=tuple(orientation[3:].tolist()),
        slice_cosine=tuple(normal.tolist()),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
    )
    dose = pixel_array(ds, name).reshape(geometry.shape).astype(np.float64) * float(
        required(ds, "DoseGridScaling", name))
    return DoseImage(dose_gy=dose, geometry=geometry, dose_type=str(ds.get("DoseType", "")),
                     files=[path])
