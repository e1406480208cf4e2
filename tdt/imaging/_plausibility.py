"""Plausibility checks of quantitative SPECT/CT input (see docs/imaging.md, "Input checks").

Impossible input raises :class:`~tdt.errors.DicomError` (the caller skips that file and records
why); implausible input issues :func:`~tdt.errors.warn_implausible`, which ``load_study``
collects into ``Study.warnings``. Each threshold is a module constant, documented with its reason.
"""

from __future__ import annotations

import math

import numpy as np

from tdt.errors import DicomError, warn_implausible
from tdt.physics import nuclide as _nuclide

#: activity in the SPECT field of view may exceed the administered activity decayed to the scan
#: time by calibration error (a few %) and noise only: above this ratio a unit or calibration is off
FOV_RATIO_MAX = 1.15
#: below this ratio (< 0.5 % of the decayed administered activity in the whole field of view)
#: the quantification is off by orders of magnitude (counts read as Bq/mL, a calibration 100x
#: off); the phantom patient's torso field keeps 1.5 % of the decayed activity at 168 h
FOV_RATIO_MIN = 0.005
#: within FOV_EARLY_H of the injection, before most of the renal excretion, the field of view
#: holds far more (phantom: 56-65 % at 4 h, 12 % at 24 h); below this ratio quantification is off
FOV_RATIO_MIN_EARLY = 0.10
FOV_EARLY_H = 12.0
#: camera sensitivities of clinical SPECT systems for 177Lu, 99mTc, 111In, 131I lie in ~3–100 cps/MBq
CPS_PER_MBQ_RANGE = (1.0, 200.0)
#: reconstructed SPECT voxels are cubic; in-plane vs slice spacing differing by more signals an
#: edited or wrong PixelSpacing / SpacingBetweenSlices
VOXEL_ANISOTROPY_TOLERANCE = 0.01
#: time points of one study normally share one reconstruction grid; spacings that differ by more
#: than this are flagged (they are still resampled to the first grid)
SPACING_TOLERANCE = 0.01
#: fraction of the activity allowed on CT air (HU < AIR_HU) before the CT and SPECT are flagged
#: as misaligned (system blur spills ~1–5 % outside the body)
ACTIVITY_IN_AIR_MAX = 0.10
AIR_HU = -500.0
#: negative voxel activity (e.g. filtered back-projection) tolerated as a fraction of the positive
NEGATIVE_FRACTION_MAX = 0.01
#: fraction of a structure (RTSTRUCT contour points, SEG voxel volume) allowed outside the SPECT
#: grid: more means the contours belong to another field of view, or the VOI is cut off and its
#: activity under-counted by more than the ~5 % quantification uncertainty of 177Lu SPECT
#: (a sliver at the edge of a narrow field is below it and is not flagged)
STRUCTURE_OUTSIDE_MAX = 0.05


def check_image_values(values: np.ndarray, units: str, slope: float | None, source: str) -> None:
    """Raise on images that cannot be quantified; warn on Bq/mL images that look like counts.

    ``values``: real-world pixel values; ``slope``: RescaleSlope as stored (None if absent).
    """
    if slope is not None and slope < 0:
        raise DicomError(f"{source}: RescaleSlope (0028,1053) {slope:g} is negative; expected > 0 "
                         "(activity cannot be negative)")
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise DicomError(f"{source}: pixel data hold NaN/inf or nothing; expected finite values")
    positive = float(values[values > 0].sum())
    negative = float(-values[values < 0].sum())
    if positive <= 0:
        raise DicomError(f"{source}: the image is all zero or negative (sum of positive values "
                         f"{positive:g}); expected a quantitative emission image")
    if negative > NEGATIVE_FRACTION_MAX * positive:
        warn_implausible(f"{source}: negative pixel values",
                         f"{negative / positive:.3g} of the positive sum",
                         f"<= {NEGATIVE_FRACTION_MAX:g} (negative activity is not physical)")
    if units == "BQML" and np.all(values == np.round(values)) and values.max() < 1e4:
        warn_implausible(f"{source}: Units (0054,1001)", "BQML",
                         "Bq/mL values, but every pixel is a small whole number, as reconstructed "
                         "counts are (Units CNTS with a camera calibration?)")


def check_structure_extent(name: str, source: str, fraction_outside: float) -> None:
    """Warn when a structure lies partly outside the SPECT grid (its VOI is cut off there).

    ``fraction_outside``: RTSTRUCT — the fraction of contour points outside the grid's index
    box; SEG — the fraction of the segment's volume (mL) lost on resampling to the grid.
    A structure wholly outside gives an empty mask, which :func:`tdt.imaging.extract_tacs`
    refuses with an :class:`~tdt.errors.InputError`.
    """
    if fraction_outside > STRUCTURE_OUTSIDE_MAX:
        warn_implausible(f"{source} structure {name!r}: extent vs the SPECT grid",
                         f"{100 * fraction_outside:.1f} % outside",
                         f"<= {100 * STRUCTURE_OUTSIDE_MAX:g} % (the VOI is cut off at the edge "
                         "of the field of view, or the structure set belongs to another image)")


def check_voxel_shape(spacing_mm: tuple[float, float, float], source: str) -> None:
    """Warn when a SPECT voxel is not cubic (column, row, slice spacing in mm)."""
    sx, sy, sz = (float(v) for v in spacing_mm)
    if max(abs(sx - sz), abs(sy - sz)) > VOXEL_ANISOTROPY_TOLERANCE * sz:
        warn_implausible(f"{source}: PixelSpacing (0028,0030) / SpacingBetweenSlices (0018,0088)",
                         f"({sy:.4g}, {sx:.4g}) / {sz:.4g} mm",
                         "cubic SPECT voxels (in-plane = slice spacing within "
                         f"{VOXEL_ANISOTROPY_TOLERANCE:.0%}); a wrong spacing scales every "
                         "activity")


def check_calibration(cps_per_mbq: float) -> None:
    """Warn when a camera calibration factor lies outside the range of clinical systems."""
    low, high = CPS_PER_MBQ_RANGE
    if not low <= cps_per_mbq <= high:
        warn_implausible("CameraCalibration.cps_per_mbq", cps_per_mbq,
                         f"{low:g}-{high:g} cps/MBq (clinical SPECT sensitivities)")


def decayed_administered_mbq(administered_mbq: float, nuclide: str, time_h: float) -> float:
    """Administered activity decayed to ``time_h`` after injection (MBq)."""
    return administered_mbq * math.exp(-_nuclide(nuclide).decay_constant_per_h * time_h)


def check_field_of_view(study) -> None:
    """Activity in the field of view vs the administered activity decayed to each scan time."""
    if not study.injected_activity_mbq:
        return
    for tp in study.time_points:
        expected = decayed_administered_mbq(study.injected_activity_mbq, study.nuclide, tp.time_h)
        ratio = tp.total_activity_mbq / expected
        low = FOV_RATIO_MIN_EARLY if tp.time_h <= FOV_EARLY_H else FOV_RATIO_MIN
        if not low <= ratio <= FOV_RATIO_MAX:
            warn_implausible(
                f"total activity in the SPECT field of view at {tp.time_h:.2f} h",
                f"{tp.total_activity_mbq:.4g} MBq ({ratio:.3g} x the administered "
                f"{study.injected_activity_mbq:.4g} MBq decayed to {expected:.4g} MBq)",
                f"{low:g}-{FOV_RATIO_MAX:g} x the decayed administered activity "
                "(Units, calibration factor, RadionuclideTotalDose)")


def check_voi_activity(name: str, times_h, activity_mbq, administered_mbq, nuclide: str) -> None:
    """Warn when a VOI holds more than the administered activity decayed to the scan time."""
    if not administered_mbq:
        return
    for t, a in zip(np.asarray(times_h, float), np.asarray(activity_mbq, float), strict=True):
        expected = decayed_administered_mbq(administered_mbq, nuclide, float(t))
        if a > FOV_RATIO_MAX * expected:
            warn_implausible(f"VOI {name!r} activity at {t:.2f} h", f"{a:.4g} MBq",
                             f"<= the administered activity decayed to the scan ({expected:.4g} "
                             "MBq)")


def check_time_point_grids(study) -> None:
    """Warn when time points were reconstructed with different voxel sizes."""
    first = study.time_points[0]
    for tp in study.time_points[1:]:
        a, b = np.asarray(first.spacing_mm), np.asarray(tp.spacing_mm)
        if np.any(np.abs(a - b) > SPACING_TOLERANCE * a):
            warn_implausible(f"voxel size at {tp.time_h:.2f} h", f"{_mm(b)} mm",
                             f"the voxel size of the first time point {_mm(a)} mm "
                             "(one reconstruction protocol per study)")


def _mm(spacing) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in spacing) + ")"


def check_ct_alignment(study) -> None:
    """Warn when activity or structures lie on CT air (a CT PixelSpacing/position that is off)."""
    if study.ct is None:
        return
    hu = study.ct_on_grid()
    air = hu < AIR_HU
    for tp in study.time_points:
        total = tp.total_activity_mbq
        if total > 0 and tp.activity_mbq[air].sum() > ACTIVITY_IN_AIR_MAX * total:
            fraction = tp.activity_mbq[air].sum() / total
            warn_implausible(f"activity on CT air (HU < {AIR_HU:g}) at {tp.time_h:.2f} h",
                             f"{fraction:.3g} of the field of view",
                             f"<= {ACTIVITY_IN_AIR_MAX:g} (CT and SPECT geometry should agree: "
                             "PixelSpacing, ImagePositionPatient)")
    for name, mask in study.masks.items():
        if "lung" in name.lower() or not mask.any():
            continue
        median = float(np.median(hu[mask]))
        if median < AIR_HU:
            warn_implausible(f"structure {name!r} on the CT", f"median {median:.0f} HU",
                             f"tissue (> {AIR_HU:g} HU): the structure set and the CT disagree "
                             "(CT PixelSpacing or position)")


def check_study(study) -> None:
    """All study-level checks (called by ``load_study``)."""
    check_field_of_view(study)
    check_time_point_grids(study)
    check_ct_alignment(study)
    if study.calibration is not None and any(tp.units == "CNTS" for tp in study.time_points):
        check_calibration(study.calibration.cps_per_mbq)
