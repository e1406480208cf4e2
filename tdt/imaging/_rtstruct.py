"""RT Structure Set: planar contours ↔ voxel masks.

Writing: each mask slice is outlined with ``contourpy`` (matplotlib's contouring library) at the
0.5 iso-level of the binary mask, which passes midway between inside and outside voxel centres;
each closed polyline becomes a CLOSED_PLANAR contour in patient coordinates (mm).

Rasterising (:func:`rasterise`): for every target slice the contour plane nearest to it (within
half a slice) is used; a voxel is inside when its centre is inside an odd number of the plane's
polygons (even–odd rule, so holes and islands work), tested with ``matplotlib.path.Path``. A mask
written by :func:`write_rtstruct` and rasterised on the same grid is reproduced exactly.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tdt.dosimetry import is_lesion
from tdt.errors import DicomError, InputError, unknown_name_error
from tdt.imaging._dicom_io import (
    CT_IMAGE_STORAGE,
    RT_STRUCTURE_SET_STORAGE,
    deterministic_uid,
    format_date,
    format_time,
    new_file_dataset,
    read_dataset,
    required,
    save,
    set_patient_study,
)
from tdt.imaging._geometry import Geometry
from tdt.imaging._plausibility import check_structure_extent

#: plane-matching tolerance in mm when grouping contour points into planes
PLANE_TOL_MM = 1e-2


@dataclass
class StructureSet:
    """ROIs of an RTSTRUCT: name → list of contours, each an ``(n, 3)`` array of LPS mm points."""

    contours: dict[str, list[np.ndarray]]
    frame_of_reference_uid: str
    referenced_series_uid: str = ""
    colors: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.contours)


def read_rtstruct(path: Path, ds: Dataset | None = None) -> StructureSet:
    """Read ROI names and CLOSED_PLANAR contours (other geometric types are ignored)."""
    path = Path(path)
    ds = ds or read_dataset(path)
    name = path.name
    rois = required(ds, "StructureSetROISequence", name)
    numbers = {int(item.ROINumber): str(item.ROIName).strip() for item in rois}
    frames = {str(item.get("ReferencedFrameOfReferenceUID", "")) for item in rois}
    frames.discard("")
    if len(frames) > 1:
        raise DicomError(
            f"{name}: ROIs reference mixed frames of reference {sorted(frames)} "
            "(ReferencedFrameOfReferenceUID (3006,0024))"
        )
    frame = frames.pop() if frames else ""
    series_uid = ""
    for ref in ds.get("ReferencedFrameOfReferenceSequence") or []:
        frame = frame or str(ref.get("FrameOfReferenceUID", ""))
        for study in ref.get("RTReferencedStudySequence") or []:
            for series in study.get("RTReferencedSeriesSequence") or []:
                series_uid = str(series.get("SeriesInstanceUID", ""))
    contours: dict[str, list[np.ndarray]] = {n: [] for n in numbers.values()}
    colors = {}
    for item in required(ds, "ROIContourSequence", name):
        roi = numbers.get(int(required(item, "ReferencedROINumber", name)))
        if roi is None:
            raise DicomError(
                f"{name}: ROIContourSequence references ROI number {item.ReferencedROINumber} "
                "absent from StructureSetROISequence"
            )
        if item.get("ROIDisplayColor"):
            colors[roi] = tuple(int(v) for v in item.ROIDisplayColor)
        for contour in item.get("ContourSequence") or []:
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                continue
            points = np.asarray([float(v) for v in required(contour, "ContourData", name)])
            if points.size % 3 or points.size < 9:
                raise DicomError(
                    f"{name}: ROI {roi!r}: ContourData (3006,0050) has {points.size} values; "
                    "expected x,y,z triplets of at least 3 points"
                )
            contours[roi].append(points.reshape(-1, 3))
    return StructureSet(contours=contours, frame_of_reference_uid=frame,
                        referenced_series_uid=series_uid, colors=colors, files=[path])


def find_structure(names, wanted: str) -> str:
    """Case/space-insensitive lookup of ``wanted`` among ``names``; InputError if absent."""
    def key(text: str) -> str:
        return str(text).strip().lower().replace(" ", "_").replace("-", "_")

    table = {key(n): n for n in names}
    if key(wanted) in table:
        return table[key(wanted)]
    raise unknown_name_error("structure", wanted, list(names))


def rasterise(structures: StructureSet, geometry: Geometry,
              names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Boolean masks ``[k, j, i]`` on ``geometry`` for the named ROIs (all when ``names`` is None).

    Raises :class:`DicomError` when the structure set's frame of reference differs from the
    grid's, :class:`InputError` when a requested structure is absent.
    """
    # matplotlib is heavy; only for rasterising/writing contours
    from matplotlib.path import Path as MplPath

    if (structures.frame_of_reference_uid and geometry.frame_of_reference_uid
            and structures.frame_of_reference_uid != geometry.frame_of_reference_uid):
        raise DicomError(
            "RTSTRUCT FrameOfReferenceUID (3006,0024) "
            f"{structures.frame_of_reference_uid} differs from the image grid's "
            f"{geometry.frame_of_reference_uid} (mixed frames of reference)"
        )
    chosen = structures.names if names is None else [
        find_structure(structures.names, n) for n in names
    ]
    nz, ny, nx = geometry.shape
    slice_positions = np.arange(nz, dtype=float)
    masks = {}
    for roi in chosen:
        mask = np.zeros(geometry.shape, dtype=bool)
        planes: dict[float, list[np.ndarray]] = {}
        area_total = area_inside = 0.0
        for points in structures.contours[roi]:
            ijk = geometry.world_to_index(points)
            total, inside = _area_in_grid(ijk, (nx, ny, nz))
            area_total += total
            area_inside += inside
            k = float(np.round(np.mean(ijk[:, 2]) / PLANE_TOL_MM) * PLANE_TOL_MM)
            planes.setdefault(k, []).append(ijk[:, :2])
        if planes:
            keys = np.array(sorted(planes))
            plane_step = float(np.min(np.diff(keys))) if len(keys) > 1 else 1.0
            half = max(0.5, plane_step / 2.0) + 1e-6
            for z in range(nz):
                nearest = keys[np.argmin(np.abs(keys - slice_positions[z]))]
                if abs(nearest - z) > half:
                    continue
                plane = np.zeros((ny, nx), dtype=bool)
                for poly in planes[float(nearest)]:
                    lo = np.maximum(np.floor(poly.min(axis=0)).astype(int), 0)
                    hi = np.minimum(np.ceil(poly.max(axis=0)).astype(int), [nx - 1, ny - 1])
                    if np.any(hi < lo):
                        continue
                    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
                    inside = MplPath(poly).contains_points(
                        np.column_stack([ii.ravel(), jj.ravel()])
                    ).reshape(ii.shape)
                    plane[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] ^= inside
                mask[z] = plane
        if area_total > 0:
            check_structure_extent(roi, "RTSTRUCT", 1.0 - area_inside / area_total)
        masks[roi] = mask
    return masks


def _polygon_area(vertices: np.ndarray) -> float:
    """Area of a closed polygon (shoelace formula), in the units of ``vertices`` squared."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _area_in_grid(ijk: np.ndarray, shape_ijk: tuple[int, int, int]) -> tuple[float, float]:
    """(area, area inside the grid) of one planar contour in index coordinates (voxel² units).

    The polygon is clipped to the grid's in-plane box with matplotlib's ``Path.clip_to_bbox``;
    a contour whose plane lies outside the slice range is wholly outside.
    """
    # matplotlib is heavy; only for rasterising/writing contours
    from matplotlib.path import Path as MplPath

    # matplotlib is heavy; only for rasterising/writing contours
    from matplotlib.transforms import Bbox

    nx, ny, nz = shape_ijk
    poly = ijk[:, :2]
    total = _polygon_area(poly)
    k = float(np.mean(ijk[:, 2]))
    if total == 0.0 or not -0.5 <= k <= nz - 0.5:
        return total, 0.0
    closed = MplPath(np.vstack([poly, poly[:1]]), closed=True)
    clipped = closed.clip_to_bbox(Bbox([[-0.5, -0.5], [nx - 0.5, ny - 0.5]]), inside=True)
    inside = _polygon_area(clipped.vertices) if len(clipped.vertices) >= 3 else 0.0
    return total, min(inside, total)


def mask_contours(mask: np.ndarray, geometry: Geometry) -> list[np.ndarray]:
    """Closed planar contours (LPS mm, ``(n, 3)``) outlining a boolean mask slice by slice."""
    # contourpy (matplotlib's contour engine) only for writing contours
    import contourpy

    contours = []
    for k in range(mask.shape[0]):
        if not mask[k].any():
            continue
        padded = np.pad(mask[k].astype(np.float64), 1)
        generator = contourpy.contour_generator(z=padded, line_type="Separate")
        for line in generator.lines(0.5):
            line = np.asarray(line)[:-1] - 1.0  # drop the repeated closing point, undo padding
            ijk = np.column_stack([line, np.full(len(line), float(k))])
            contours.append(geometry.index_to_world(ijk))
    return contours


def write_rtstruct(
    path: str | Path,
    masks: dict[str, np.ndarray],
    geometry: Geometry,
    *,
    patient: dict,
    seed_text: str,
    referenced_series_uid: str,
    referenced_sop_uids: list[str],
    created: _dt.datetime,
    colors: dict[str, tuple[int, int, int]] | None = None,
    label: str = "tdt phantom VOIs",
) -> Path:
    """Write an RTSTRUCT with one ROI per mask (masks on ``geometry``, the referenced CT grid)."""
    if not masks:
        raise InputError("write_rtstruct: masks is empty; expected at least one structure")
    ds = new_file_dataset(RT_STRUCTURE_SET_STORAGE, deterministic_uid(seed_text, "instance"))
    set_patient_study(ds, patient)
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = deterministic_uid(seed_text, "series")
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    ds.StructureSetLabel = label
    ds.StructureSetDate = format_date(created.date())
    ds.StructureSetTime = format_time(created)
    ds.SeriesDate, ds.SeriesTime = ds.StructureSetDate, ds.StructureSetTime

    ds.ReferencedFrameOfReferenceSequence = Sequence([_referenced_frame(
        geometry, patient, referenced_series_uid, referenced_sop_uids)])

    roi_items, contour_items, observations = [], [], []
    for number, (name, mask) in enumerate(masks.items(), start=1):
        if mask.shape != geometry.shape:
            raise InputError(
                f"write_rtstruct: mask {name!r} has shape {mask.shape}, expected {geometry.shape}"
            )
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = geometry.frame_of_reference_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi_items.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = list((colors or {}).get(name, (255, 0, 0)))
        item.ContourSequence = _contour_sequence(mask, geometry, referenced_sop_uids)
        contour_items.append(item)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "PTV" if is_lesion(name) else "ORGAN"
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.RTROIObservationsSequence = Sequence(observations)
    return save(ds, path)


def _referenced_frame(geometry: Geometry, patient: dict, referenced_series_uid: str,
                      referenced_sop_uids: list[str]) -> Dataset:
    """ReferencedFrameOfReferenceSequence item: frame → study → CT series → its images."""
    contour_images = []
    for uid in referenced_sop_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        item.ReferencedSOPInstanceUID = uid
        contour_images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = referenced_series_uid
    series.ContourImageSequence = Sequence(contour_images)
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired)
    study.ReferencedSOPInstanceUID = patient.get("StudyInstanceUID", "")
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = geometry.frame_of_reference_uid
    frame.RTReferencedStudySequence = Sequence([study])
    return frame


def _contour_sequence(mask: np.ndarray, geometry: Geometry,
                      referenced_sop_uids: list[str]) -> Sequence:
    """Closed planar contours of one mask, each referencing the CT slice it lies on."""
    sequence = []
    for points in mask_contours(np.asarray(mask, dtype=bool), geometry):
        k = int(round(float(geometry.world_to_index(points[:1])[0, 2])))
        contour = Dataset()
        image = Dataset()
        image.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        image.ReferencedSOPInstanceUID = referenced_sop_uids[k]
        contour.ContourImageSequence = Sequence([image])
        contour.ContourGeometricType = "CLOSED_PLANAR"
        contour.NumberOfContourPoints = len(points)
        contour.ContourData = [f"{v:.10g}" for v in points.ravel()]
        sequence.append(contour)
    return Sequence(sequence)
