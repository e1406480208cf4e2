"""Anatomy of the phantom patient: schematic organ shapes, lesions, body outline, CT numbers, grids.

Coordinates are patient LPS (mm); masks are boolean arrays on a grid's voxel centres. The shapes
are schematic ellipsoids, compressed cranio-caudally to fit a 384 mm axial field.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tdt.dosimetry import L2_L4_MARROW_FRACTION
from tdt.imaging._geometry import Geometry

#: kernel voxel size (mm): the default SPECT voxel, so that no kernel resampling is needed
SPECT_VOXEL_MM = 4.7952
#: schematic organ shapes: name → list of ellipsoids (centre LPS mm, semi-axes mm) and CT HU
ORGANS = {
    "kidneys": ([((65.0, 45.0, -25.0), (28.0, 25.0, 48.0)),
                 ((-65.0, 45.0, -40.0), (28.0, 25.0, 48.0))], 35),
    "liver": ([((-55.0, 0.0, 70.0), (85.0, 70.0, 55.0))], 60),
    "spleen": ([((85.0, 40.0, 65.0), (32.0, 28.0, 42.0))], 50),
    "salivary_glands": ([((55.0, 5.0, 160.0), (18.0, 22.0, 28.0)),
                         ((-55.0, 5.0, 160.0), (18.0, 22.0, 28.0)),
                         ((35.0, -25.0, 128.0), (13.0, 13.0, 13.0)),
                         ((-35.0, -25.0, 128.0), (13.0, 13.0, 13.0))], 40),
    "urinary_bladder_contents": ([((0.0, -20.0, -150.0), (40.0, 35.0, 30.0))], 10),
}
#: candidate lesion sites (centre LPS mm), chosen by the seed
LESION_SITES = ((-45.0, 60.0, -115.0), (45.0, 55.0, -105.0), (0.0, -45.0, -75.0),
                (-25.0, -40.0, 5.0), (30.0, -50.0, -30.0), (-90.0, 20.0, -100.0),
                (0.0, -60.0, 60.0))
SPINE = ((0.0, 70.0), 14.0, (-175.0, 115.0))  # centre (x, y), radius, z range: red marrow
#: opt-in L2–L4 VOI (image-based marrow, EANM 2010): the spine cylinder stands for the whole
#: skeleton's red marrow, so its "L2–L4" is the lumbar segment holding the L2–L4 share of it,
#: tdt.dosimetry.L2_L4_MARROW_FRACTION (6.7 %) of the cylinder's length, centred at this z (mm;
#: below the kidneys' centres, clear of every organ and lesion site). Not part of the default
#: phantom's structures (its images and catalog hash are unchanged).
L2_L4_CENTRE_Z_MM = -60.0
HU_BODY, HU_BONE, HU_LESION, HU_AIR = 20, 300, 45, -1000
BODY_TORSO = (150.0, 105.0)  # semi-axes (x, y) of the torso, mm
BODY_HEAD = (80.0, 95.0)  # semi-axes of head/neck above z = 110 mm


def phantom_grids(shape: tuple[int, int, int], frame_uid: str) -> tuple[Geometry, Geometry]:
    """SPECT grid of ``shape`` (slices, rows, columns) of 4.7952 mm voxels centred on the
    origin, and the CT grid on the same slices with 2× the in-plane sampling."""
    nz, ny, nx = (int(v) for v in shape)
    origin = tuple(-(n - 1) / 2.0 * SPECT_VOXEL_MM for n in (nx, ny, nz))
    spect = Geometry((nz, ny, nx), origin, (SPECT_VOXEL_MM,) * 3, frame_of_reference_uid=frame_uid)
    ct_spacing = (SPECT_VOXEL_MM / 2, SPECT_VOXEL_MM / 2, SPECT_VOXEL_MM)
    ct = Geometry((nz, 2 * ny, 2 * nx), origin, ct_spacing, frame_of_reference_uid=frame_uid)
    return spect, ct


def body_mask(points: np.ndarray) -> np.ndarray:
    """Inside the body outline: an elliptic torso, an elliptic head/neck above z = 110 mm."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    torso = (x / BODY_TORSO[0]) ** 2 + (y / BODY_TORSO[1]) ** 2 <= 1.0
    head = (x / BODY_HEAD[0]) ** 2 + ((y + 5.0) / BODY_HEAD[1]) ** 2 <= 1.0
    return np.where(z > 110.0, head, torso)


def _ellipsoid(points, centre, semi) -> np.ndarray:
    d = (points - np.asarray(centre)) / np.asarray(semi)
    return np.sum(d * d, axis=-1) <= 1.0


def draw_lesions(rng: np.random.Generator, n_lesions: int) -> list[tuple[tuple, float]]:
    """``n_lesions`` distinct sites of :data:`LESION_SITES` with radii Uniform(10, 18) mm."""
    sites = rng.choice(len(LESION_SITES), size=n_lesions, replace=False)
    radii = rng.uniform(10.0, 18.0, size=n_lesions)
    return [(LESION_SITES[s], float(r)) for s, r in zip(sites, radii, strict=True)]


def structure_masks(points: np.ndarray, lesions) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Disjoint structure masks (lesions take precedence, then organs, then the spine's red
    marrow) at ``points`` (…, 3) LPS mm, and the body mask."""
    body = body_mask(points)
    taken = ~body
    masks: dict[str, np.ndarray] = {}
    for i, (centre, radius) in enumerate(lesions, start=1):
        m = _ellipsoid(points, centre, (radius,) * 3) & ~taken
        masks[f"lesion_{i}"] = m
        taken |= m
    for name, (shapes, _) in ORGANS.items():
        m = np.zeros(body.shape, dtype=bool)
        for centre, semi in shapes:
            m |= _ellipsoid(points, centre, semi)
        m &= ~taken
        masks[name] = m
        taken |= m
    (cx, cy), radius, (z0, z1) = SPINE
    spine = (((points[..., 0] - cx) ** 2 + (points[..., 1] - cy) ** 2 <= radius ** 2)
             & (points[..., 2] >= z0) & (points[..., 2] <= z1) & ~taken)
    masks["red_marrow"] = spine
    return masks, body


def ct_numbers(masks: dict[str, np.ndarray], body: np.ndarray) -> np.ndarray:
    """CT image (HU): air outside the body, soft tissue, per-organ values, bone, lesions."""
    hu = np.where(body, HU_BODY, HU_AIR).astype(np.float64)
    for name, m in masks.items():
        hu[m] = HU_LESION if name.startswith("lesion") else (
            HU_BONE if name == "red_marrow" else ORGANS[name][1])
    return hu


def blurred_activity_image(shape, regions: dict, activity_mbq: dict, sigma_vox: float):
    """The phantom's image of one time point: each region's activity (MBq) spread uniformly over
    its voxels, blurred by the Gaussian PSF (``sigma_vox`` voxels; zero outside the grid);
    returns the blurred map (MBq per voxel) and its sum inside each region (MBq) — the expected
    image-based VOI activity, the partial-volume stage of the truth decomposition."""
    true_map = np.zeros(shape)
    for name, mask in regions.items():
        n_vox = int(mask.sum())
        if n_vox:
            true_map[mask] = activity_mbq[name] / n_vox
    blurred = ndimage.gaussian_filter(true_map, sigma_vox, mode="constant", truncate=4.0)
    return blurred, {name: float(blurred[mask].sum()) for name, mask in regions.items()}


def lumbar_l2_l4_mask(points: np.ndarray, red_marrow: np.ndarray,
                      fraction: float = L2_L4_MARROW_FRACTION) -> np.ndarray:
    """Opt-in L2–L4 VOI of the phantom: the slices of the ``red_marrow`` mask (from
    :func:`structure_masks`, same ``points`` (…, 3) LPS mm) nearest :data:`L2_L4_CENTRE_Z_MM`,
    as many as ``fraction`` of the spine's slices on this grid (at least one) — the VOI whose TIA
    divided by ``fraction`` is the whole marrow's (:func:`tdt.dosimetry.marrow_tia_image_based`).
    Whole slices keep the VOI's share of the marrow close to ``fraction`` (its exact share is the
    voxel-count ratio, since the phantom's marrow activity is uniform)."""
    z = points[..., 2]
    slices = np.unique(np.round(z[red_marrow], 6))
    n = max(1, int(round(fraction * slices.size)))
    chosen = slices[np.argsort(np.abs(slices - L2_L4_CENTRE_Z_MM), kind="stable")[:n]]
    return red_marrow & np.isin(np.round(z, 6), chosen)
