"""``extract_tacs(study)``: time–activity curves per VOI (MBq, h) from a loaded study."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdt.errors import InputError
from tdt.imaging._partial_volume import geometric_transfer_matrix, gtm_correct
from tdt.imaging._plausibility import check_voi_activity
from tdt.imaging._rtstruct import find_structure


@dataclass(frozen=True)
class VoiTac:
    """Time–activity data of one VOI.

    Attributes
    ----------
    name: structure name as in the RTSTRUCT/SEG.
    times_h: acquisition times since injection (h).
    activity_mbq: activity inside the VOI (sum over its voxels) at each time (MBq).
    volume_ml: VOI volume (voxel count × voxel volume, mL).
    mean_concentration_mbq_per_ml, max_concentration_mbq_per_ml: per time point (MBq/mL).
    n_voxels: number of voxels of the mask on the SPECT grid.
    poisson_sd_mbq: counting-statistics standard deviation of ``activity_mbq`` per time point,
        sqrt(counts in the VOI) · MBq/count (images in counts only; NaN for Bq/mL images). A lower
        bound of the real noise (reconstruction correlates voxels; calibration error excluded).
    partial_volume_corrected: ``activity_mbq`` is the geometric-transfer-matrix estimate of the
        true VOI total (``extract_tacs(..., partial_volume="gtm")``), not the image sum.
    recovery: the VOI's recovery coefficient (GTM diagonal) when corrected, else None.
    """

    name: str
    times_h: np.ndarray
    activity_mbq: np.ndarray
    volume_ml: float
    mean_concentration_mbq_per_ml: np.ndarray
    max_concentration_mbq_per_ml: np.ndarray
    n_voxels: int
    poisson_sd_mbq: np.ndarray | None = None
    partial_volume_corrected: bool = False
    recovery: float | None = None


def voi_tac(name: str, times_h, activity_stack: np.ndarray, mask: np.ndarray,
            voxel_volume_ml: float, mbq_per_count=None) -> VoiTac:
    """TAC of one boolean ``mask`` from activity per voxel ``(n_times, *shape)`` (MBq)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != activity_stack.shape[1:]:
        raise InputError(f"VOI {name!r}: mask shape {mask.shape} does not match the images "
                         f"{activity_stack.shape[1:]}")
    n = int(mask.sum())
    if n == 0:
        raise InputError(f"VOI {name!r}: the mask is empty on the SPECT grid; expected >= 1 voxel")
    inside = activity_stack[:, mask]
    volume = n * voxel_volume_ml
    total = inside.sum(axis=1)
    sd = None
    if mbq_per_count is not None:
        per_count = np.array([np.nan if c is None else c for c in mbq_per_count], dtype=float)
        sd = np.sqrt(np.clip(total, 0.0, None) * per_count)
    return VoiTac(
        name=name, times_h=np.asarray(times_h, dtype=float), activity_mbq=inside.sum(axis=1),
        volume_ml=volume, mean_concentration_mbq_per_ml=inside.sum(axis=1) / volume,
        max_concentration_mbq_per_ml=inside.max(axis=1) / voxel_volume_ml, n_voxels=n,
        poisson_sd_mbq=sd,
    )


def extract_tacs(study, structures: list[str] | None = None, *,
                 partial_volume: str | None = None, fwhm_mm: float | None = None,
                 body_hu: float = -500.0) -> dict[str, VoiTac]:
    """Per-VOI TACs of ``study`` (a :class:`~tdt.imaging._study.Study`).

    ``structures``: names to extract (case-insensitive); default all. An absent name raises
    :class:`~tdt.errors.InputError` naming it and the available ones. By default activities are
    the sums of the calibrated voxel activities inside the mask (no partial-volume correction).

    ``partial_volume="gtm"`` (needs ``fwhm_mm``, the system resolution): every structure of the
    study plus a background region (body on the CT, ``HU > body_hu``, minus all structures; the
    whole grid without CT) forms a geometric transfer matrix (Rousset et al., J Nucl Med 1998;
    :func:`tdt.imaging._partial_volume.geometric_transfer_matrix`), and the returned activities
    are the true VOI totals that explain all VOI sums at once (spill-out *and* spill-in).
    Structures that overlap keep their voxels in the first one listed. The Poisson SD is
    propagated through ``W⁻¹``.
    """
    if partial_volume not in (None, "gtm"):
        raise InputError(f"extract_tacs: partial_volume {partial_volume!r}; expected None or 'gtm'")
    if partial_volume == "gtm" and not (fwhm_mm is not None and fwhm_mm > 0):
        raise InputError(f"extract_tacs: fwhm_mm {fwhm_mm!r}; expected the system FWHM (mm) > 0 "
                         "with partial_volume='gtm'")
    stack = study.activity_stack()
    names = list(study.masks) if structures is None else list(structures)
    if not names:
        raise InputError("extract_tacs: the study has no structures (RTSTRUCT/SEG); expected >= 1")
    out = {}
    per_count = [tp.mbq_per_count for tp in study.time_points]
    for name in names:
        mask = study.mask(name)
        out[name] = voi_tac(name, study.times_h, stack, mask, study.geometry.voxel_volume_ml,
                            per_count)
        check_voi_activity(name, study.times_h, out[name].activity_mbq,
                           study.injected_activity_mbq, study.nuclide)
    if partial_volume is None:
        return out
    regions: dict[str, np.ndarray] = {}
    taken = np.zeros(study.geometry.shape, dtype=bool)
    for name, mask in study.masks.items():
        m = np.asarray(mask, dtype=bool) & ~taken
        if m.any():
            regions[name] = m
            taken |= m
    hu = study.ct_on_grid()
    body = np.ones(study.geometry.shape, dtype=bool) if hu is None else hu > body_hu
    if (body & ~taken).any():
        regions["__background__"] = body & ~taken
    w = geometric_transfer_matrix(regions, study.geometry.spacing_mm, fwhm_mm)
    observed = np.stack([stack[:, m].sum(axis=1) for m in regions.values()])  # (regions, times)
    corrected = gtm_correct(observed, w)
    w_inv = np.linalg.inv(w)
    index = {n: i for i, n in enumerate(regions)}

    for name in names:
        tac = out[name]
        i = index.get(find_structure(study.masks, name))
        if i is None:
            continue
        sd = tac.poisson_sd_mbq
        if sd is not None:
            per = np.array([np.nan if c is None else c for c in per_count], dtype=float)
            var = np.clip(observed, 0.0, None) * per  # Poisson variance of each region's sum
            sd = np.sqrt((w_inv[i] ** 2) @ var)
        out[name] = VoiTac(
            name=tac.name, times_h=tac.times_h, activity_mbq=corrected[i], volume_ml=tac.volume_ml,
            mean_concentration_mbq_per_ml=corrected[i] / tac.volume_ml,
            max_concentration_mbq_per_ml=tac.max_concentration_mbq_per_ml,
            n_voxels=tac.n_voxels, poisson_sd_mbq=sd, partial_volume_corrected=True,
            recovery=float(w[i, i]))
    return out
