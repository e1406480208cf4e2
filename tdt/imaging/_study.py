"""``load_study(path)``: a folder of DICOM files → calibrated SPECT time points + structures.

What happens, in order:

1. Every file under ``path`` (recursively, sorted; sidecars ``*.json``, ``*.yaml``, ``*.md``,
   ``*.txt`` excepted) is read with ``dcmread(force=False)``. A file that is not DICOM, is
   truncated, or lacks a required tag is *skipped* and recorded in ``Study.skipped`` with the
   reason; the other files are still used (a warning states how many were skipped).
2. Unless ``deidentify=False`` is passed explicitly, each dataset is de-identified in memory
   (:class:`~tdt.imaging._deid.Deidentifier`, PS3.15 Basic Profile, dates shifted by whole days).
3. NM images (one multi-frame file, or a per-slice series) and PET Image Storage series
   (:mod:`tdt.imaging._pet`: Bq/mL at the scan start, SUV factor) become time points; CT series,
   RTSTRUCT and SEG are collected. All must share one FrameOfReferenceUID (else
   :class:`~tdt.errors.DicomError`): tdt does not register images.
4. Values are converted to MBq per voxel (:mod:`tdt.imaging._calibration`): ``BQML`` directly,
   ``CNTS`` with the camera calibration (argument ``calibration``, else ``calibration.json`` in
   ``path``); the decay-correction state is undone so that each time point holds the activity
   present at the acquisition start, ``time_h`` after injection.
5. Time points on different grids are resampled (trilinear, on concentration) to the first one.
   Structures are rasterised onto that SPECT grid (RTSTRUCT: contour point-in-polygon at voxel
   centres; SEG: nearest-neighbour resampling).
"""

from __future__ import annotations

import datetime as _dt
import json
import warnings
from pathlib import Path

import numpy as np

from tdt.errors import (
    DicomError,
    InputError,
    TdtError,
    collect_implausible,
    warn_implausible,
)
from tdt.imaging._calibration import (
    CameraCalibration,
    activity_at_acquisition_start,
    activity_per_voxel_mbq,
)
from tdt.imaging._ct import read_ct
from tdt.imaging._deid import Deidentifier
from tdt.imaging._dicom_io import (
    CT_IMAGE_STORAGE,
    NM_IMAGE_STORAGE,
    PET_IMAGE_STORAGE,
    RT_STRUCTURE_SET_STORAGE,
    SEGMENTATION_STORAGE,
    read_dataset,
)
from tdt.imaging._geometry import Geometry, check_same_frame_of_reference, resample
from tdt.imaging._nm import NmImage, read_nm
from tdt.imaging._pet import PetImage, header_extras, read_pet
from tdt.imaging._plausibility import check_study
from tdt.imaging._rtstruct import rasterise, read_rtstruct
from tdt.imaging._seg import read_seg
from tdt.imaging._study_types import (
    CALIBRATION_FILE,
    PATIENT_KEYWORDS,
    SIDECAR_SUFFIXES,
    Study,
    TimePoint,
)

__all__ = ["CALIBRATION_FILE", "PATIENT_KEYWORDS", "SIDECAR_SUFFIXES", "Study", "TimePoint",
           "load_study"]


def _load_calibration(path: Path) -> CameraCalibration | None:
    candidate = path / CALIBRATION_FILE
    if not candidate.is_file():
        return None
    try:
        spec = json.loads(candidate.read_text())
        return CameraCalibration(
            cps_per_mbq=float(spec["cps_per_mbq"]),
            date=_dt.date.fromisoformat(spec["date"]),
            nuclide=spec.get("nuclide", "Lu-177"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{CALIBRATION_FILE}: invalid ({exc}); expected keys cps_per_mbq, "
                         "date (YYYY-MM-DD), nuclide") from None


def _to_activity(image: NmImage, calibration: CameraCalibration | None, shift_days: int,
                 source: str) -> np.ndarray:
    if image.units == "CNTS" and calibration is not None:
        original = image.acquisition_datetime - _dt.timedelta(days=shift_days)
        calibration.check_valid_for(original, image.nuclide)
    activity = activity_per_voxel_mbq(
        image.values, image.units, image.geometry.voxel_volume_ml, image.duration_s,
        calibration, source,
    )
    return activity_at_acquisition_start(
        activity, image.decay_correction, image.nuclide, image.duration_s or 0.0,
        image.hours_since_injection, source,
    )


def load_study(
    path: str | Path,
    calibration: CameraCalibration | None = None,
    *,
    deidentify: bool = True,
    salt: str | None = None,
    structures: str = "auto",
    pet_bqml_per_count: float | None = None,
) -> Study:
    """Load a SPECT/CT study folder (see module docstring).

    Parameters
    ----------
    path: folder with the DICOM files of one administration (any layout, searched recursively).
    calibration: camera calibration for images in counts; default ``calibration.json`` in path.
    deidentify: de-identify on ingest (default). ``False`` must be passed explicitly to opt out.
    salt: de-identification salt (same salt → same UIDs and date shift); default random.
    structures: ``"auto"`` (RTSTRUCT ROIs, then SEG segments not already present), ``"rtstruct"``,
        ``"seg"`` or ``"none"``.
    pet_bqml_per_count: calibration of PET images in Units CNTS (Bq/mL per count); default the
        Philips private factor (7053,1009) of the files (:func:`tdt.imaging._pet.read_pet`).

    Every :class:`~tdt.errors.PlausibilityWarning` issued while loading (see
    :mod:`tdt.imaging._plausibility`) is also recorded in ``Study.warnings``.
    """
    with collect_implausible() as recorded:
        study = _load_study(path, calibration, deidentify=deidentify, salt=salt,
                            structures=structures, pet_bqml_per_count=pet_bqml_per_count)
    study.warnings.extend(recorded)
    return study


_KIND_BY_SOP = {NM_IMAGE_STORAGE: "NM", PET_IMAGE_STORAGE: "PT", CT_IMAGE_STORAGE: "CT",
                RT_STRUCTURE_SET_STORAGE: "RTSTRUCT", SEGMENTATION_STORAGE: "SEG"}


def _check_arguments(root: Path, structures: str) -> None:
    if not root.is_dir():
        raise InputError(f"load_study: path {str(root)!r} is not a directory")
    if structures not in ("auto", "rtstruct", "seg", "none"):
        raise InputError(f"load_study: structures={structures!r}; expected 'auto', 'rtstruct', "
                         "'seg' or 'none'")


def _read_files(root: Path, tool: Deidentifier | None, skipped: list[tuple[str, str]]):
    """Read (and de-identify) every file; group the datasets by kind (NM, PT, CT, RTSTRUCT, SEG).

    Returns ``(by_kind, pet_extras)``: ``pet_extras`` holds PatientWeight etc., read before
    de-identification. Unusable files are appended to ``skipped`` with the reason.
    """
    by_kind: dict[str, list] = {"NM": [], "PT": [], "CT": [], "RTSTRUCT": [], "SEG": []}
    pet_extras: dict[Path, dict] = {}
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and p.suffix.lower() not in SIDECAR_SUFFIXES and not p.name.startswith("."))
    for file in files:
        rel = str(file.relative_to(root))
        try:
            ds = read_dataset(file)
        except DicomError as exc:
            skipped.append((rel, str(exc)))
            continue
        if str(ds.SOPClassUID) == PET_IMAGE_STORAGE:
            pet_extras[file] = header_extras(ds)
        if tool is not None:
            try:
                tool(ds)
            except TdtError as exc:
                skipped.append((rel, str(exc)))
                continue
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
                # a malformed value (DA/DT/TM, a VR that does not parse) is this file's problem
                skipped.append((rel, f"de-identification failed on a malformed attribute "
                                     f"({type(exc).__name__}: {exc})"))
                continue
        sop = str(ds.SOPClassUID)
        kind = _KIND_BY_SOP.get(sop)
        if kind is None:
            skipped.append((rel, f"SOPClassUID {sop} is not used by load_study"))
            continue
        by_kind[kind].append((file, ds))
    return by_kind, pet_extras


def _skip_all(skipped: list, root: Path, items, reason: str) -> None:
    skipped.extend((str(f.relative_to(root)), reason) for f, _ in items)


def _read_images(root: Path, by_kind: dict, pet_extras: dict, pet_bqml_per_count,
                 skipped: list) -> list[NmImage]:
    """NM and PET images: multi-frame NM files are time points on their own; single frames and
    PET slices are grouped by series."""
    nm_groups: dict[str, list] = {}
    for file, ds in by_kind["NM"]:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        key = (str(file) if frames > 1 or "ImagePositionPatient" not in ds
               else "series:" + str(ds.get("SeriesInstanceUID", "")))
        nm_groups.setdefault(key, []).append((file, ds))
    images: list[NmImage] = []
    for items in nm_groups.values():
        try:
            images.append(read_nm([f for f, _ in items], [d for _, d in items]))
        except TdtError as exc:
            _skip_all(skipped, root, items, str(exc))
    pet_groups: dict[str, list] = {}
    for file, ds in by_kind["PT"]:
        pet_groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((file, ds))
    for items in pet_groups.values():
        try:
            images.append(read_pet([f for f, _ in items], [d for _, d in items],
                                   bqml_per_count=pet_bqml_per_count,
                                   extras=pet_extras.get(items[0][0], {})))
        except TdtError as exc:
            _skip_all(skipped, root, items, str(exc))
    if not images:
        detail = "; ".join(f"{n}: {r}" for n, r in skipped[:5])
        raise DicomError(f"load_study: no usable quantitative SPECT (NM) or PET image in "
                         f"{root.name}"
                         + (f" (skipped: {detail})" if detail else ""))
    return images


def _read_ct_and_structures(root: Path, by_kind: dict, skipped: list):
    """The first readable CT series, the RTSTRUCT structure sets and the SEG segmentations."""
    ct = None
    ct_groups: dict[str, list] = {}
    for file, ds in by_kind["CT"]:
        ct_groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((file, ds))
    for items in ct_groups.values():
        try:
            candidate = read_ct(items)
        except TdtError as exc:
            _skip_all(skipped, root, items, str(exc))
            continue
        if ct is None:
            ct = candidate
        else:
            skipped.extend((str(f.relative_to(root)), "additional CT series (first one used)")
                           for f in candidate.files)
    structure_sets = []
    for file, ds in by_kind["RTSTRUCT"]:
        try:
            structure_sets.append(read_rtstruct(file, ds))
        except TdtError as exc:
            skipped.append((str(file.relative_to(root)), str(exc)))
    segmentations = []
    for file, ds in by_kind["SEG"]:
        try:
            segmentations.append(read_seg(file, ds))
        except TdtError as exc:
            skipped.append((str(file.relative_to(root)), str(exc)))
    return ct, structure_sets, segmentations


def _check_consistency(images, ct, structure_sets, segmentations) -> None:
    """One frame of reference, one administration (injection time), one nuclide."""
    frames = {f"NM {i}": img.geometry for i, img in enumerate(images)}
    if ct is not None:
        frames["CT"] = ct.geometry
    for i, s in enumerate(structure_sets):
        frames[f"RTSTRUCT {i}"] = Geometry((1, 1, 1), (0, 0, 0), (1, 1, 1),
                                           frame_of_reference_uid=s.frame_of_reference_uid)
    for i, s in enumerate(segmentations):
        frames[f"SEG {i}"] = s.geometry
    check_same_frame_of_reference(frames)
    injections = {img.injection_datetime for img in images}
    if len(injections) > 1:
        raise DicomError(
            "RadiopharmaceuticalStartDateTime (0018,1078): the NM images state "
            f"{len(injections)} different injection times; expected one administration per study"
        )
    nuclides = {img.nuclide for img in images}
    if len(nuclides) > 1:
        raise DicomError(f"RadionuclideCodeSequence (0054,0300): mixed nuclides {sorted(nuclides)}")


def _time_points(images: list[NmImage], calibration, shift_days: int, grid) -> list[TimePoint]:
    """Images (sorted by acquisition) → time points in MBq per voxel on ``grid``."""
    early = [img for img in images if img.hours_since_injection < 0]
    if early:
        img = early[0]
        raise DicomError(
            f"{img.files[0].name}: acquisition (AcquisitionDateTime) {img.acquisition_datetime} is "
            f"{-img.hours_since_injection:.2f} h before the injection "
            f"(RadiopharmaceuticalStartDateTime (0018,1078)) {img.injection_datetime}; expected "
            "scans after the administration")
    time_points = []
    for img in images:
        source = f"NM series acquired {img.hours_since_injection:.2f} h after injection"
        activity = _to_activity(img, calibration, shift_days, source)
        mbq_per_count = None
        if img.units == "CNTS":
            mbq_per_count = float(_to_activity(
                NmImage(**{**img.__dict__, "values": np.ones(1)}), calibration, shift_days,
                source)[0])
        if not img.geometry.same_grid(grid):
            concentration = activity / img.geometry.voxel_volume_ml
            activity = resample(concentration, img.geometry, grid, order=1) * grid.voxel_volume_ml
        time_points.append(TimePoint(
            time_h=img.hours_since_injection, activity_mbq=activity,
            acquisition_datetime=img.acquisition_datetime, units=img.units,
            decay_correction=img.decay_correction, duration_s=img.duration_s,
            series_instance_uid=img.series_instance_uid, files=img.files,
            mbq_per_count=mbq_per_count, spacing_mm=img.geometry.spacing_mm,
            modality="PT" if isinstance(img, PetImage) else "NM",
            suv_bw_g_per_mbq=getattr(img, "suv_bw_g_per_mbq", None),
        ))
    times = [tp.time_h for tp in time_points]
    if len(set(np.round(times, 9))) != len(times):
        raise DicomError(f"AcquisitionDateTime: two NM images share the time {times} h after "
                         "injection; expected one image per time point")
    return time_points


def _masks(structures: str, structure_sets, segmentations, grid) -> dict[str, np.ndarray]:
    """RTSTRUCT ROIs first, then SEG segments not already present (``structures="auto"``)."""
    masks: dict[str, np.ndarray] = {}
    if structures in ("auto", "rtstruct"):
        for s in structure_sets:
            for name, mask in rasterise(s, grid).items():
                masks.setdefault(name, mask)
    if structures in ("auto", "seg"):
        for s in segmentations:
            for name, mask in s.on_grid(grid).items():
                masks.setdefault(name, mask)
    return masks


def _report_skipped(skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    warnings.warn(f"load_study: {len(skipped)} file(s) skipped; see Study.skipped",
                  stacklevel=3)
    for name, reason in skipped:
        if not reason.startswith(("SOPClassUID", "additional CT")):  # not faults
            warn_implausible(f"file {name}", "skipped", f"a usable DICOM file ({reason})")


def _load_study(path, calibration, *, deidentify, salt, structures,
                pet_bqml_per_count=None) -> Study:
    root = Path(path)
    _check_arguments(root, structures)
    tool = Deidentifier(salt=salt) if (deidentify and salt is not None) else (
        Deidentifier() if deidentify else None)
    shift_days = tool.date_shift_days if tool else 0
    skipped: list[tuple[str, str]] = []
    by_kind, pet_extras = _read_files(root, tool, skipped)
    images = _read_images(root, by_kind, pet_extras, pet_bqml_per_count, skipped)
    ct, structure_sets, segmentations = _read_ct_and_structures(root, by_kind, skipped)
    _check_consistency(images, ct, structure_sets, segmentations)
    if calibration is None and any(img.units == "CNTS" for img in images):
        calibration = _load_calibration(root)
    images.sort(key=lambda img: img.acquisition_datetime)
    grid = images[0].geometry
    time_points = _time_points(images, calibration, shift_days, grid)
    masks = _masks(structures, structure_sets, segmentations, grid)
    first = next(ds for _, ds in by_kind["NM"] + by_kind["PT"]
                 if str(ds.get("SeriesInstanceUID", "")) == images[0].series_instance_uid)
    patient_info = {k: first.get(k) for k in PATIENT_KEYWORDS if first.get(k) not in (None, "")}
    _report_skipped(skipped)
    study = Study(
        time_points=time_points, geometry=grid, masks=masks, nuclide=images[0].nuclide,
        injection_datetime=images[0].injection_datetime,
        injected_activity_mbq=images[0].injected_activity_mbq, ct=ct, calibration=calibration,
        skipped=skipped, deidentified=tool is not None, patient_info=patient_info,
    )
    check_study(study)
    return study
