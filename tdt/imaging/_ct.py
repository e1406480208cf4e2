"""CT Image Storage series: one file per slice → Hounsfield units ``[k, j, i]`` with geometry."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from tdt.imaging._dicom_io import (
    CT_IMAGE_STORAGE,
    deterministic_uid,
    format_date,
    format_time,
    new_file_dataset,
    save,
    set_patient_study,
)
from tdt.imaging._geometry import Geometry
from tdt.imaging._series import encode_signed, set_pixels, stack_slices


@dataclass
class CtImage:
    """A CT volume in Hounsfield units with its geometry and per-slice SOP instance UIDs."""

    hu: np.ndarray
    geometry: Geometry
    series_instance_uid: str
    sop_instance_uids: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def read_ct(items: list[tuple[Path, Dataset]]) -> CtImage:
    """Stack a CT series (sorted along the slice normal, regular spacing required)."""
    source = f"CT series of {len(items)} files ({items[0][0].name}, ...)"
    hu, geometry, paths = stack_slices(items, source)
    by_path = {p: ds for p, ds in items}
    return CtImage(
        hu=hu, geometry=geometry,
        series_instance_uid=str(items[0][1].get("SeriesInstanceUID", "")),
        sop_instance_uids=[str(by_path[p].SOPInstanceUID) for p in paths], files=paths,
    )


def ct_slice_uids(seed_text: str, n_slices: int) -> list[str]:
    """The SOP instance UIDs :func:`write_ct` gives its slices (for RTSTRUCT/SEG references)."""
    return [deterministic_uid(seed_text, "slice", k) for k in range(n_slices)]


def write_ct(
    directory: str | Path,
    hu: np.ndarray,
    geometry: Geometry,
    *,
    patient: dict,
    series_number: int,
    seed_text: str,
    acquisition: _dt.datetime,
    series_description: str = "CT low dose",
) -> list[Path]:
    """Write one CT file per slice (int16, RescaleIntercept -1024) into ``directory``."""
    directory = Path(directory)
    series_uid = deterministic_uid(seed_text, "series")
    uids = ct_slice_uids(seed_text, geometry.shape[0])
    positions = geometry.slice_positions_mm()
    paths = []
    for k in range(geometry.shape[0]):
        ds = new_file_dataset(CT_IMAGE_STORAGE, uids[k])
        set_patient_study(ds, patient)
        ds.FrameOfReferenceUID = geometry.frame_of_reference_uid
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = series_description
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = format_date(acquisition.date())
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = format_time(acquisition)
        ds.PatientPosition = "FFS"
        ds.KVP = "120"
        ds.ImagePositionPatient = [f"{v:.10g}" for v in positions[k]]
        ds.ImageOrientationPatient = [
            f"{v:.10g}" for v in (*geometry.row_cosine, *geometry.column_cosine)
        ]
        ds.SliceLocation = f"{positions[k] @ np.asarray(geometry.slice_cosine):.10g}"
        ds.PixelSpacing = [f"{geometry.spacing_mm[1]:.10g}", f"{geometry.spacing_mm[0]:.10g}"]
        ds.SliceThickness = f"{geometry.spacing_mm[2]:.10g}"
        stored = np.asarray(hu[k], dtype=np.float64) + 1024.0
        stored_int, slope, intercept = encode_signed(stored)
        ds.RescaleIntercept = f"{float(intercept) - 1024.0:.10g}"
        ds.RescaleSlope = slope
        ds.RescaleType = "HU"
        set_pixels(ds, stored_int)
        paths.append(save(ds, directory / f"CT_{k + 1:04d}.dcm"))
    return paths
