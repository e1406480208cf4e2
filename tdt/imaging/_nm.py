"""Quantitative SPECT: NM Image Storage (multi-frame RECON TOMO, or one file per slice).

Reading: geometry from DetectorInformationSequence[0] (or top-level) ImagePositionPatient /
ImageOrientationPatient, PixelSpacing and SpacingBetweenSlices (slice k lies at
IPP + k·SpacingBetweenSlices·(X × Y); a negative spacing means slices run along −(X × Y));
values via RescaleSlope/Intercept; Units (0054,1001) (``CNTS`` assumed when absent, as NM
images are counts unless stated); DecayCorrection (0054,1102); acquisition start from
AcquisitionDateTime or AcquisitionDate + AcquisitionTime; acquisition duration from
RotationInformationSequence (ActualFrameDuration × NumberOfFramesInRotation, summed over
rotations) else the top-level ActualFrameDuration (taken as the whole acquisition).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from tdt.errors import DicomError
from tdt.imaging._dicom_io import (
    NM_IMAGE_STORAGE,
    deterministic_uid,
    format_date,
    format_datetime,
    format_time,
    new_file_dataset,
    parse_date,
    parse_datetime,
    parse_time,
    pixel_array,
    read_dataset,
    required,
    save,
    set_patient_study,
)
from tdt.imaging._geometry import Geometry
from tdt.imaging._plausibility import check_image_values, check_voxel_shape
from tdt.imaging._radiopharmaceutical import radiopharmaceutical_sequence, read_radiopharmaceutical
from tdt.imaging._series import encode_unsigned, rescale, set_pixels, stack_slices
from tdt.units import ms_to_s, s_to_ms, seconds_to_h


@dataclass
class NmImage:
    """One reconstructed SPECT volume as stored (before calibration).

    ``values`` are real-world pixel values in ``units`` (``"CNTS"`` or ``"BQML"``), ``[k, j, i]``.
    """

    values: np.ndarray
    geometry: Geometry
    units: str
    decay_correction: str
    acquisition_datetime: _dt.datetime
    duration_s: float | None
    nuclide: str
    injection_datetime: _dt.datetime
    injected_activity_mbq: float | None
    series_instance_uid: str
    files: list[Path] = field(default_factory=list)

    @property
    def hours_since_injection(self) -> float:
        """Acquisition start − injection (h)."""
        return seconds_to_h((self.acquisition_datetime - self.injection_datetime).total_seconds())


def acquisition_datetime(ds: Dataset, name: str) -> _dt.datetime:
    """Acquisition start: AcquisitionDateTime, else AcquisitionDate + AcquisitionTime."""
    if ds.get("AcquisitionDateTime"):
        try:
            return parse_datetime(ds.AcquisitionDateTime)
        except DicomError as exc:
            raise DicomError(f"{name}: AcquisitionDateTime (0008,002A): {exc}") from None
    date = ds.get("AcquisitionDate")
    time = ds.get("AcquisitionTime")
    if not date:
        raise DicomError(f"{name}: missing required tag AcquisitionDate (0008,0022)")
    if not time:
        raise DicomError(f"{name}: missing required tag AcquisitionTime (0008,0032)")
    try:
        return _dt.datetime.combine(parse_date(date), parse_time(time))
    except DicomError as exc:
        raise DicomError(f"{name}: AcquisitionDate/AcquisitionTime (0008,0022/0032): {exc}"
                         ) from None


def acquisition_duration_s(ds: Dataset) -> float | None:
    """Total acquisition duration (s), or None when the file does not state it."""
    rotations = ds.get("RotationInformationSequence")
    if rotations:
        total = 0.0
        for item in rotations:
            if item.get("ActualFrameDuration") in (None, "") or not item.get(
                "NumberOfFramesInRotation"
            ):
                return None
            total += float(item.ActualFrameDuration) * int(item.NumberOfFramesInRotation)
        return ms_to_s(total)
    if ds.get("ActualFrameDuration") not in (None, ""):
        return ms_to_s(float(ds.ActualFrameDuration))
    return None


def _quant_attributes(ds: Dataset, name: str) -> dict:
    units = str(ds.get("Units", "") or "CNTS").strip().upper()
    decay = str(ds.get("DecayCorrection", "") or "NONE").strip().upper()
    acquisition = acquisition_datetime(ds, name)
    info = read_radiopharmaceutical(ds, name, acquisition)
    return {
        "units": units, "decay_correction": decay, "acquisition_datetime": acquisition,
        "duration_s": acquisition_duration_s(ds), "nuclide": info["nuclide"],
        "injection_datetime": info["injection_datetime"],
        "injected_activity_mbq": info["injected_activity_mbq"],
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
    }


def _check_recon(ds: Dataset, name: str) -> None:
    if str(ds.get("Modality", "NM")).upper() != "NM":
        return  # PET-like series: ImageType value 3 has other defined terms (AXIAL, ...)
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if len(image_type) >= 3 and image_type[2] not in ("RECON TOMO", "RECON GATED TOMO"):
        joined = "\\".join(image_type)
        raise DicomError(
            f"{name}: ImageType (0008,0008) {joined!r} is not a reconstructed "
            "tomographic image; expected value 3 'RECON TOMO' (projections cannot be quantified)"
        )


def read_nm_multiframe(path: Path, ds: Dataset) -> NmImage:
    """Read one multi-frame NM RECON TOMO file."""
    name = path.name
    _check_recon(ds, name)
    rows, cols = int(required(ds, "Rows", name)), int(required(ds, "Columns", name))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    detector = (ds.get("DetectorInformationSequence") or [None])[0]
    holder = detector if detector is not None and "ImagePositionPatient" in detector else ds
    position = np.array([float(v) for v in required(holder, "ImagePositionPatient", name)])
    orientation = np.array([float(v) for v in required(holder, "ImageOrientationPatient", name)])
    pixel_spacing = [float(v) for v in required(ds, "PixelSpacing", name)]
    if ds.get("SpacingBetweenSlices") not in (None, ""):
        slice_spacing = float(ds.SpacingBetweenSlices)
    elif frames == 1 or ds.get("SliceThickness") not in (None, ""):
        slice_spacing = float(ds.get("SliceThickness") or 1.0)
    else:
        raise DicomError(f"{name}: missing required tag SpacingBetweenSlices (0018,0088)")
    if slice_spacing == 0:
        raise DicomError(f"{name}: SpacingBetweenSlices (0018,0088) is 0; expected a spacing (mm)")
    normal = np.cross(orientation[:3], orientation[3:])
    if slice_spacing < 0:  # some vendors state slices running against X × Y this way
        normal, slice_spacing = -normal, -slice_spacing
    geometry = Geometry(
        shape=(frames, rows, cols),
        origin_mm=tuple(position.tolist()),
        spacing_mm=(pixel_spacing[1], pixel_spacing[0], slice_spacing),
        row_cosine=tuple(orientation[:3].tolist()),
        column_cosine=tuple(orientation[3:].tolist()),
        slice_cosine=tuple(normal.tolist()),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
    )
    values = rescale(ds, pixel_array(ds, name)).reshape(geometry.shape)
    return _checked(NmImage(values=values, geometry=geometry, files=[path],
                            **_quant_attributes(ds, name)), ds, name)


def _checked(image: NmImage, ds: Dataset, name: str) -> NmImage:
    """Refuse images that cannot be quantified; warn on implausible ones (tdt.imaging._plausibility)."""
    slope = ds.get("RescaleSlope")
    check_image_values(image.values, image.units, None if slope in (None, "") else float(slope),
                       name)
    if str(ds.get("Modality", "NM")).upper() == "NM":  # PET voxels are often not cubic
        check_voxel_shape(image.geometry.spacing_mm, name)
    return image


def read_nm_slices(items: list[tuple[Path, Dataset]]) -> NmImage:
    """Read a per-slice NM (or PT) series: one file per slice, each with its own IPP."""
    source = f"series of {len(items)} files ({items[0][0].name}, ...)"
    for path, ds in items:
        _check_recon(ds, path.name)
    values, geometry, paths = stack_slices(items, source)
    return _checked(NmImage(values=values, geometry=geometry, files=paths,
                            **_quant_attributes(items[0][1], items[0][0].name)), items[0][1], source)


def read_nm(paths: list[Path] | Path, datasets: list[Dataset] | None = None) -> NmImage:
    """Read an NM image: one multi-frame file, or a list of single-slice files of one series."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    datasets = datasets or [read_dataset(p) for p in paths]
    frames = int(datasets[0].get("NumberOfFrames", 1) or 1)
    if len(paths) == 1 and (frames > 1 or "ImagePositionPatient" not in datasets[0]):
        return read_nm_multiframe(paths[0], datasets[0])
    return read_nm_slices(list(zip(paths, datasets, strict=True)))


def write_nm(
    path: str | Path,
    values: np.ndarray,
    geometry: Geometry,
    *,
    patient: dict,
    series_number: int,
    seed_text: str,
    units: str,
    acquisition: _dt.datetime,
    duration_s: float,
    injection: _dt.datetime,
    injected_activity_mbq: float,
    nuclide: str = "Lu-177",
    radiopharmaceutical: str = "177Lu-PSMA-617",
    decay_correction: str = "NONE",
    series_description: str = "SPECT quantitative",
    n_projections: int = 60,
) -> Path:
    """Write a multi-frame NM RECON TOMO file (values ≥ 0, ``[k, j, i]``, in ``units``).

    Deterministic: UIDs derive from ``seed_text``; no wall-clock time is written. The
    acquisition is described as one rotation of ``n_projections`` frames of
    ``duration_s / n_projections`` each (ActualFrameDuration in ms).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != geometry.shape:
        raise DicomError(f"write_nm: values shape {values.shape} != geometry {geometry.shape}")
    series_uid = deterministic_uid(seed_text, "series")
    ds = new_file_dataset(NM_IMAGE_STORAGE, deterministic_uid(seed_text, "instance"))
    set_patient_study(ds, patient)
    ds.FrameOfReferenceUID = geometry.frame_of_reference_uid
    ds.Modality = "NM"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    ds.SeriesDescription = series_description
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = format_date(acquisition.date())
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = format_time(acquisition)
    ds.AcquisitionDateTime = format_datetime(acquisition)
    ds.PatientPosition = "FFS"
    nz = geometry.shape[0]
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = Tag(0x0054, 0x0080)
    ds.SliceVector = list(range(1, nz + 1))
    ds.NumberOfSlices = nz
    ds.PixelSpacing = [f"{geometry.spacing_mm[1]:.10g}", f"{geometry.spacing_mm[0]:.10g}"]
    ds.SliceThickness = f"{geometry.spacing_mm[2]:.10g}"
    ds.SpacingBetweenSlices = f"{geometry.spacing_mm[2]:.10g}"
    detector = Dataset()
    detector.ImagePositionPatient = [f"{v:.10g}" for v in geometry.origin_mm]
    detector.ImageOrientationPatient = [
        f"{v:.10g}" for v in (*geometry.row_cosine, *geometry.column_cosine)
    ]
    ds.DetectorInformationSequence = Sequence([detector])
    _set_acquisition_sequences(ds, duration_s, n_projections)
    ds.RadiopharmaceuticalInformationSequence = radiopharmaceutical_sequence(
        nuclide, injection, injected_activity_mbq, radiopharmaceutical
    )
    ds.Units = units
    ds.DecayCorrection = decay_correction
    ds.CorrectedImage = ["ATTN", "SCAT"] + (["DECY"] if decay_correction != "NONE" else [])
    stored, slope = encode_unsigned(values)
    ds.RescaleSlope = slope
    ds.RescaleIntercept = "0"
    set_pixels(ds, stored)
    return save(ds, path)


def _set_acquisition_sequences(ds: Dataset, duration_s: float, n_projections: int) -> None:
    """One 360° rotation of ``n_projections`` frames and the 177Lu 208 keV photopeak window."""
    rotation = Dataset()
    rotation.NumberOfFramesInRotation = n_projections
    rotation.ActualFrameDuration = int(round(s_to_ms(duration_s) / n_projections))
    rotation.AngularStep = f"{360.0 / n_projections:.10g}"
    rotation.ScanArc = "360"
    ds.RotationInformationSequence = Sequence([rotation])
    ds.NumberOfDetectors = 1
    ds.NumberOfRotations = 1
    window = Dataset()
    window_range = Dataset()
    window_range.EnergyWindowLowerLimit = "187.5"
    window_range.EnergyWindowUpperLimit = "229.2"
    window.EnergyWindowRangeSequence = Sequence([window_range])
    window.EnergyWindowName = "Lu177_208keV"
    ds.EnergyWindowInformationSequence = Sequence([window])
    ds.NumberOfEnergyWindows = 1
