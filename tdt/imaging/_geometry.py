"""Voxel grids in DICOM patient coordinates (LPS, mm): affine, slice sorting, resampling.

Array convention everywhere in :mod:`tdt.imaging`: a volume is a NumPy array indexed
``[k, j, i]`` = ``[slice, row, column]``. The affine maps the column-first index vector
``(i, j, k, 1)`` to patient coordinates ``(x, y, z, 1)`` in mm (DICOM PS3.3 C.7.6.2.1.1):

    P(i, j, k) = IPP₀ + i·Δc·X + j·Δr·Y + k·Δs·N

where X = ImageOrientationPatient[:3] (direction along a row, i.e. of increasing column index),
Y = ImageOrientationPatient[3:], Δc = PixelSpacing[1] (column spacing), Δr = PixelSpacing[0]
(row spacing), N is the unit vector from the first to the last slice position, and Δs the
(uniform) slice spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tdt.errors import DicomError, InputError
from tdt.units import mm3_to_ml

#: relative tolerance on slice spacing regularity (fraction of the mean spacing)
SLICE_SPACING_RTOL = 1e-3
#: tolerance on orientation cosines and positions when comparing grids (mm / unitless)
GEOMETRY_ATOL = 1e-3


@dataclass(frozen=True)
class Geometry:
    """A regular voxel grid.

    Attributes
    ----------
    shape: ``(n_slices, n_rows, n_columns)`` of the array.
    origin_mm: patient position (LPS, mm) of the centre of voxel ``[0, 0, 0]``.
    spacing_mm: ``(Δc, Δr, Δs)`` = column, row and slice spacing (mm), in index order i, j, k.
    row_cosine: X, unit vector along a row (increasing column index i).
    column_cosine: Y, unit vector along a column (increasing row index j).
    slice_cosine: N, unit vector of increasing slice index k.
    frame_of_reference_uid: DICOM FrameOfReferenceUID ("" when unknown).
    """

    shape: tuple[int, int, int]
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    row_cosine: tuple[float, float, float] = (1.0, 0.0, 0.0)
    column_cosine: tuple[float, float, float] = (0.0, 1.0, 0.0)
    slice_cosine: tuple[float, float, float] = (0.0, 0.0, 1.0)
    frame_of_reference_uid: str = ""

    def __post_init__(self):
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise InputError(f"Geometry.shape: got {self.shape}, expected 3 positive integers")
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise InputError(
                f"Geometry.spacing_mm: got {self.spacing_mm}, expected 3 positive spacings (mm)"
            )

    # --- derived ---------------------------------------------------------------------------
    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix mapping ``(i, j, k, 1)`` to LPS mm (see module docstring)."""
        m = np.eye(4)
        m[:3, 0] = np.asarray(self.row_cosine) * self.spacing_mm[0]
        m[:3, 1] = np.asarray(self.column_cosine) * self.spacing_mm[1]
        m[:3, 2] = np.asarray(self.slice_cosine) * self.spacing_mm[2]
        m[:3, 3] = self.origin_mm
        return m

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel (mL = cm³): |det| of the 3×3 part of the affine / 1000."""
        return float(mm3_to_ml(abs(np.linalg.det(self.affine[:3, :3]))))

    def index_to_world(self, ijk) -> np.ndarray:
        """Map index coordinates ``(..., 3)`` in (i, j, k) order to LPS mm ``(..., 3)``."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_index(self, xyz) -> np.ndarray:
        """Map LPS mm ``(..., 3)`` to fractional (i, j, k) index coordinates ``(..., 3)``."""
        xyz = np.asarray(xyz, dtype=float)
        inverse = np.linalg.inv(self.affine)
        return xyz @ inverse[:3, :3].T + inverse[:3, 3]

    def voxel_centres_mm(self) -> np.ndarray:
        """LPS coordinates of every voxel centre, shape ``(*shape, 3)`` (array order k, j, i)."""
        k, j, i = np.meshgrid(*(np.arange(n) for n in self.shape), indexing="ij")
        return self.index_to_world(np.stack([i, j, k], axis=-1))

    def slice_positions_mm(self) -> np.ndarray:
        """ImagePositionPatient of every slice, shape ``(n_slices, 3)``."""
        k = np.arange(self.shape[0], dtype=float)
        return np.asarray(self.origin_mm) + k[:, None] * self.spacing_mm[2] * np.asarray(
            self.slice_cosine
        )

    def same_grid(self, other: Geometry, atol: float = GEOMETRY_ATOL) -> bool:
        """True when both grids have the same shape and affine (within ``atol`` mm)."""
        return self.shape == other.shape and bool(
            np.allclose(self.affine, other.affine, atol=atol, rtol=0.0)
        )


def check_same_frame_of_reference(geometries: dict[str, Geometry]) -> str:
    """Return the common FrameOfReferenceUID of named grids; raise :class:`DicomError` if mixed.

    Grids with an empty UID (unknown) are not accepted when another grid names one: silently
    overlaying images from different patient positionings gives wrong VOI values.
    """
    uids = {name: g.frame_of_reference_uid for name, g in geometries.items()}
    distinct = set(uids.values())
    if len(distinct) > 1:
        listing = ", ".join(f"{name}: {uid or '<missing>'}" for name, uid in uids.items())
        raise DicomError(
            f"FrameOfReferenceUID (0020,0052): mixed frames of reference ({listing}); expected "
            "one frame of reference for all images and structures of a study (register them first)"
        )
    return distinct.pop() if distinct else ""


def geometry_from_slices(
    positions_mm: np.ndarray,
    orientation: np.ndarray,
    pixel_spacing: tuple[float, float],
    rows: int,
    columns: int,
    frame_of_reference_uid: str = "",
    source: str = "series",
) -> tuple[Geometry, np.ndarray]:
    """Build a :class:`Geometry` from per-slice ImagePositionPatient values.

    Returns the geometry and the permutation that sorts the slices along the slice normal
    ``N = X × Y``. Raises :class:`DicomError` for duplicate positions, slices not on one line
    along the normal, or irregular spacing (relative deviation > ``SLICE_SPACING_RTOL``).
    """
    positions = np.asarray(positions_mm, dtype=float).reshape(-1, 3)
    orientation = np.asarray(orientation, dtype=float).reshape(6)
    row_cos, col_cos = orientation[:3], orientation[3:]
    if not (np.isclose(np.linalg.norm(row_cos), 1, atol=1e-3)
            and np.isclose(np.linalg.norm(col_cos), 1, atol=1e-3)
            and abs(row_cos @ col_cos) < 1e-3):
        raise DicomError(
            f"ImageOrientationPatient (0020,0037) of {source}: {orientation.tolist()} is not two "
            "orthogonal unit vectors"
        )
    normal = np.cross(row_cos, col_cos)
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    positions, distances = positions[order], distances[order]
    n = len(positions)
    if n == 1:
        spacing = 1.0
        slice_cos = normal
    else:
        steps = np.diff(distances)
        if np.any(steps <= GEOMETRY_ATOL):
            raise DicomError(
                f"ImagePositionPatient (0020,0032) of {source}: duplicate slice positions at "
                f"{distances[1:][steps <= GEOMETRY_ATOL][:3].round(3).tolist()} mm along the "
                "normal; expected one slice per position (mixed series?)"
            )
        spacing = float(np.mean(steps))
        deviation = np.max(np.abs(steps - spacing))
        if deviation > SLICE_SPACING_RTOL * spacing:
            raise DicomError(
                f"slice spacing of {source}: irregular, steps between "
                f"{steps.min():.4g} and {steps.max():.4g} mm; expected uniform spacing "
                "(missing slice or variable-thickness series; tdt does not interpolate gaps)"
            )
        in_plane = positions - positions[0] - np.outer(distances - distances[0], normal)
        if np.max(np.abs(in_plane)) > 10 * GEOMETRY_ATOL * max(1.0, spacing):
            raise DicomError(
                f"ImagePositionPatient (0020,0032) of {source}: slices are not stacked along the "
                "normal of ImageOrientationPatient (gantry tilt or sheared series are not "
                "supported)"
            )
        slice_cos = normal
    geometry = Geometry(
        shape=(n, int(rows), int(columns)),
        origin_mm=tuple(float(v) for v in positions[0]),
        spacing_mm=(float(pixel_spacing[1]), float(pixel_spacing[0]), spacing),
        row_cosine=tuple(float(v) for v in row_cos),
        column_cosine=tuple(float(v) for v in col_cos),
        slice_cosine=tuple(float(v) for v in slice_cos),
        frame_of_reference_uid=frame_of_reference_uid,
    )
    return geometry, order


def resample(
    volume: np.ndarray,
    source: Geometry,
    target: Geometry,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Resample ``volume`` (on ``source``) onto ``target`` with ``scipy.ndimage.affine_transform``.

    The value at each target voxel centre is interpolated from the source array: ``order=0``
    nearest neighbour (labels, masks), ``order=1`` trilinear (default; concentrations, HU),
    ``order=3`` cubic B-spline (smooth images; may overshoot). Points outside the source grid take
    ``cval``. This samples a *concentration* (per-voxel values are not re-summed); to resample an
    activity per voxel, divide by the source voxel volume first and multiply by the target's after.
    """
    if volume.shape != source.shape:
        raise InputError(
            f"resample: volume shape {volume.shape} does not match source geometry {source.shape}"
        )

    if source.same_grid(target):
        return np.array(volume, copy=True)
    # target index (i,j,k) → world → source index (i,j,k); scipy works in array order (k,j,i)
    to_source = np.linalg.inv(source.affine) @ target.affine
    perm = np.eye(4)[[2, 1, 0, 3]]  # swaps (i,j,k) ↔ (k,j,i)
    matrix = perm @ to_source @ perm
    return ndimage.affine_transform(
        np.asarray(volume, dtype=float if order > 0 else volume.dtype),
        matrix[:3, :3],
        offset=matrix[:3, 3],
        output_shape=target.shape,
        order=order,
        mode="constant",
        cval=cval,
        prefilter=order > 1,
    )
