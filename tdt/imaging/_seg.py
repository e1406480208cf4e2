"""DICOM Segmentation (binary SEG): write and read with pydicom.

Hand-written rather than with ``highdicom`` to keep the dependency set small: tdt writes only
BINARY segmentations on an axial image grid, one frame per (segment, non-empty slice), with the
Multi-frame Functional Groups that locate each frame (PlanePositionSequence) and identify its
segment (SegmentIdentificationSequence). Reading accepts such files (tdt's own and other
BINARY/FRACTIONAL SEGs with per-frame plane positions).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence

from tdt.errors import DicomError, InputError
from tdt.imaging._dicom_io import (
    CT_IMAGE_STORAGE,
    SEGMENTATION_STORAGE,
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
from tdt.imaging._geometry import Geometry, geometry_from_slices, resample
from tdt.imaging._plausibility import check_structure_extent


@dataclass
class Segmentation:
    """Segments of a SEG as boolean masks on the SEG's own grid ``geometry``."""

    masks: dict[str, np.ndarray]
    geometry: Geometry
    files: list[Path] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.masks)

    def on_grid(self, target: Geometry) -> dict[str, np.ndarray]:
        """Masks resampled (nearest neighbour) onto ``target``."""
        if (self.geometry.frame_of_reference_uid and target.frame_of_reference_uid
                and self.geometry.frame_of_reference_uid != target.frame_of_reference_uid):
            raise DicomError(
                f"SEG FrameOfReferenceUID {self.geometry.frame_of_reference_uid} differs from "
                f"the image grid's {target.frame_of_reference_uid} (mixed frames of reference)"
            )
        masks = {}
        upper = np.array(target.shape[::-1]) - 0.5  # (i, j, k) bounds of the target grid
        for name, mask in self.masks.items():
            kji = np.argwhere(mask)
            if len(kji):
                ijk = target.world_to_index(self.geometry.index_to_world(kji[:, ::-1]))
                outside = np.any((ijk < -0.5) | (ijk > upper), axis=1)
                check_structure_extent(name, "SEG", float(outside.mean()))
            masks[name] = resample(mask.astype(np.uint8), self.geometry, target,
                                   order=0).astype(bool)
        return masks


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def write_seg(
    path: str | Path,
    masks: dict[str, np.ndarray],
    geometry: Geometry,
    *,
    patient: dict,
    seed_text: str,
    referenced_series_uid: str,
    referenced_sop_uids: list[str],
    created: _dt.datetime,
) -> Path:
    """Write a BINARY SEG, one segment per mask (masks ``[k, j, i]`` on ``geometry``)."""
    if not masks:
        raise InputError("write_seg: masks is empty; expected at least one segment")
    ds = _seg_header(geometry, patient=patient, seed_text=seed_text,
                     referenced_series_uid=referenced_series_uid,
                     referenced_sop_uids=referenced_sop_uids, created=created)
    ds.SharedFunctionalGroupsSequence = Sequence([_shared_functional_groups(geometry)])
    segments, per_frame, frames = _segments_and_frames(masks, geometry, referenced_sop_uids)
    ds.SegmentSequence = Sequence(segments)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    _set_dimension_index(ds, seed_text)
    ds.NumberOfFrames = len(frames)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = geometry.shape[1], geometry.shape[2]
    ds.BitsAllocated = 1
    ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    ds.PixelData = pack_bits(np.stack(frames).astype(np.uint8))
    return save(ds, path)


def _seg_header(geometry: Geometry, *, patient: dict, seed_text: str,
                referenced_series_uid: str, referenced_sop_uids: list[str],
                created: _dt.datetime) -> Dataset:
    """The SEG file dataset: patient/study, series, equipment and referenced CT series."""
    ds = new_file_dataset(SEGMENTATION_STORAGE, deterministic_uid(seed_text, "instance"))
    set_patient_study(ds, patient)
    ds.FrameOfReferenceUID = geometry.frame_of_reference_uid
    ds.Modality = "SEG"
    ds.SeriesInstanceUID = deterministic_uid(seed_text, "series")
    ds.SeriesNumber = 901
    ds.InstanceNumber = 1
    ds.SeriesDescription = "tdt phantom segmentation"
    ds.ContentDate = ds.SeriesDate = format_date(created.date())
    ds.ContentTime = ds.SeriesTime = format_time(created)
    ds.ContentLabel = "TDT_VOIS"
    ds.ContentCreatorName = "tdt"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SegmentationType = "BINARY"
    ds.Manufacturer = "tdt"
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = "0.1"
    ds.ManufacturerModelName = "tdt"
    ds.LossyImageCompression = "00"
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = referenced_series_uid
    ref_series.ReferencedInstanceSequence = Sequence([])
    for uid in referenced_sop_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        item.ReferencedSOPInstanceUID = uid
        ref_series.ReferencedInstanceSequence.append(item)
    ds.ReferencedSeriesSequence = Sequence([ref_series])
    return ds


def _shared_functional_groups(geometry: Geometry) -> Dataset:
    """Pixel measures and plane orientation shared by every frame."""
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [f"{geometry.spacing_mm[1]:.10g}", f"{geometry.spacing_mm[0]:.10g}"]
    measures.SliceThickness = f"{geometry.spacing_mm[2]:.10g}"
    measures.SpacingBetweenSlices = f"{geometry.spacing_mm[2]:.10g}"
    shared.PixelMeasuresSequence = Sequence([measures])
    orientation = Dataset()
    orientation.ImageOrientationPatient = [
        f"{v:.10g}" for v in (*geometry.row_cosine, *geometry.column_cosine)
    ]
    shared.PlaneOrientationSequence = Sequence([orientation])
    return shared


def _segments_and_frames(masks: dict[str, np.ndarray], geometry: Geometry,
                         referenced_sop_uids: list[str]):
    """One segment per mask and one frame per non-empty (segment, slice): ``(segments,
    per-frame functional groups, frame pixel masks)``."""
    segments, per_frame, frames = [], [], []
    positions = geometry.slice_positions_mm()
    for number, (name, mask) in enumerate(masks.items(), start=1):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != geometry.shape:
            raise InputError(f"write_seg: mask {name!r} shape {mask.shape} != {geometry.shape}")
        segment = Dataset()
        segment.SegmentNumber = number
        segment.SegmentLabel = name
        segment.SegmentAlgorithmType = "MANUAL"
        segment.SegmentedPropertyCategoryCodeSequence = Sequence(
            [_code("91723000", "SCT", "Anatomical Structure")]
        )
        segment.SegmentedPropertyTypeCodeSequence = Sequence(
            [_code(f"TDT{number:04d}", "99TDT", name[:64])]
        )
        segments.append(segment)
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            frame = Dataset()
            position = Dataset()
            position.ImagePositionPatient = [f"{v:.10g}" for v in positions[k]]
            frame.PlanePositionSequence = Sequence([position])
            ident = Dataset()
            ident.ReferencedSegmentNumber = number
            frame.SegmentIdentificationSequence = Sequence([ident])
            content = Dataset()
            content.DimensionIndexValues = [number, int(k) + 1]
            frame.FrameContentSequence = Sequence([content])
            derivation = Dataset()
            source = Dataset()
            source.ReferencedSOPClassUID = CT_IMAGE_STORAGE
            source.ReferencedSOPInstanceUID = referenced_sop_uids[k]
            source.PurposeOfReferenceCodeSequence = Sequence(
                [_code("121322", "DCM", "Source image for image processing operation")]
            )
            derivation.SourceImageSequence = Sequence([source])
            derivation.DerivationCodeSequence = Sequence(
                [_code("113076", "DCM", "Segmentation")]
            )
            frame.DerivationImageSequence = Sequence([derivation])
            per_frame.append(frame)
            frames.append(mask[k])
    if not frames:
        raise InputError("write_seg: every mask is empty; expected at least one voxel")
    return segments, per_frame, frames


def _set_dimension_index(ds: Dataset, seed_text: str) -> None:
    """Dimension organisation: frames indexed by (segment number, image position)."""
    dim_org = deterministic_uid(seed_text, "dimension-organization")
    org = Dataset()
    org.DimensionOrganizationUID = dim_org
    ds.DimensionOrganizationSequence = Sequence([org])
    seg_dim, pos_dim = Dataset(), Dataset()
    seg_dim.DimensionOrganizationUID = pos_dim.DimensionOrganizationUID = dim_org
    seg_dim.DimensionIndexPointer = 0x0062000B  # ReferencedSegmentNumber
    seg_dim.FunctionalGroupPointer = 0x0062000A  # SegmentIdentificationSequence
    pos_dim.DimensionIndexPointer = 0x00200032  # ImagePositionPatient
    pos_dim.FunctionalGroupPointer = 0x00209113  # PlanePositionSequence
    ds.DimensionIndexSequence = Sequence([seg_dim, pos_dim])


def read_seg(path: Path, ds: Dataset | None = None) -> Segmentation:
    """Read a SEG into boolean masks on its own regular grid (frames located by IPP)."""
    path = Path(path)
    ds = ds or read_dataset(path)
    name = path.name
    segments = {int(s.SegmentNumber): str(s.SegmentLabel) for s in
                required(ds, "SegmentSequence", name)}
    shared = required(ds, "SharedFunctionalGroupsSequence", name)[0]
    per_frame = required(ds, "PerFrameFunctionalGroupsSequence", name)
    measures = shared.get("PixelMeasuresSequence") or per_frame[0].get("PixelMeasuresSequence")
    orient = shared.get("PlaneOrientationSequence") or per_frame[0].get(
        "PlaneOrientationSequence")
    if not measures or not orient:
        raise DicomError(f"{name}: missing required tag PixelMeasuresSequence / "
                         "PlaneOrientationSequence (0028,9110)/(0020,9116)")
    pixel_spacing = [float(v) for v in required(measures[0], "PixelSpacing", name)]
    orientation = np.array([float(v) for v in
                            required(orient[0], "ImageOrientationPatient", name)])
    spacing = float(measures[0].get("SpacingBetweenSlices") or measures[0].get("SliceThickness")
                    or 0)
    frames = pixel_array(ds, name)
    if frames.ndim == 2:
        frames = frames[None]
    threshold = 0.5 * float(ds.get("MaximumFractionalValue", 1) or 1) if str(
        ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL" else 0.5
    positions, seg_numbers = [], []
    for item in per_frame:
        plane = item.get("PlanePositionSequence")
        ident = item.get("SegmentIdentificationSequence")
        if not plane or not ident:
            raise DicomError(f"{name}: per-frame PlanePositionSequence / "
                             "SegmentIdentificationSequence missing")
        positions.append([float(v) for v in plane[0].ImagePositionPatient])
        seg_numbers.append(int(ident[0].ReferencedSegmentNumber))
    positions = np.array(positions)
    normal = np.cross(orientation[:3], orientation[3:])
    distance = positions @ normal
    unique = np.unique(np.round(distance, 3))
    lo, hi = unique.min(), unique.max()
    if spacing <= 0:
        spacing = float(np.min(np.diff(unique))) if len(unique) > 1 else 1.0
    n_slices = int(round((hi - lo) / spacing)) + 1
    first = positions[np.argmin(distance)]
    grid_positions = first + np.outer(np.arange(n_slices) * spacing, normal)
    geometry, _ = geometry_from_slices(
        grid_positions, orientation, pixel_spacing, int(ds.Rows), int(ds.Columns),
        str(ds.get("FrameOfReferenceUID", "")), name,
    )
    masks = {label: np.zeros(geometry.shape, dtype=bool) for label in segments.values()}
    for frame, position, number, dist in zip(frames, positions, seg_numbers, distance,
                                             strict=True):
        k = (dist - lo) / spacing
        if abs(k - round(k)) > 1e-2:
            raise DicomError(f"{name}: frame at {position.tolist()} is off the slice grid")
        if number not in segments:
            raise DicomError(f"{name}: frame references unknown segment {number}")
        masks[segments[number]][int(round(k))] |= frame > threshold
    return Segmentation(masks=masks, geometry=geometry, files=[path])
