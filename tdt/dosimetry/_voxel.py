"""Voxel dosimetry: TIA maps, kernel convolution or local deposition, density correction, DVH.

Units: activity per voxel MBq, TIA per voxel MBq·h, dose Gy, density g/mL, voxel sizes mm.
Arrays ``[k, j, i]`` with voxel sizes ``(Δi, Δj, Δk)`` (``tdt.imaging.Geometry.spacing_mm``).

Two ways to a TIA map (both in docs/imaging.md):
- :func:`tia_map_voxelwise`: every voxel's TAC fitted with the batched ``tdt.kinetics.fit_tacs``
  (noisy voxels → prefer masks and a robust model);
- :func:`tia_map_from_reference`: one reference image scaled, per VOI, so that the VOI's voxels
  sum to the VOI's fitted TIA (TIA_v = A_ref,v · TIA_VOI / Σ_VOI A_ref) — the common hybrid
  approach when only one SPECT is voxel-quality.

Two ways to dose: :func:`kernel_dose` (voxel S-value kernel, MIRD 17, FFT convolution) and
:func:`local_deposition_dose` (all non-penetrating energy absorbed in the source voxel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdt._types import MaskLike, TimesLike, Volume, VolumeLike, VolumeSeriesLike, VoxelSizeLike
from tdt.dosimetry._kernel import (
    KERNEL_DENSITY_G_PER_ML,
    KernelConvolver,
    VoxelKernel,
    load_kernel,
    resample_kernel,
)
from tdt.errors import InputError
from tdt.kinetics import fit_tacs
from tdt.physics import nuclide as _nuclide
from tdt.units import mev_per_decay_to_gy_g_per_mbq_h, mm3_to_ml

#: HU → density (g/mL) piecewise-linear calibration: air (−1000 HU, 0.0012 g/mL; dry air),
#: water (0 HU, 1.0), soft tissue ~ (60 HU, 1.06), cortical bone (1500 HU, 1.92; ICRU Report 44
#: density). Scanner-specific: pass your own table to :func:`density_from_hu` where measured.
DEFAULT_HU_DENSITY = ((-1000.0, 0.0012), (0.0, 1.0), (60.0, 1.06), (1500.0, 1.92))


def _check_map(name: str, values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 3:
        raise InputError(f"{name}: shape {values.shape}; expected a 3-D map [k, j, i]")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{name}: contains non-finite values; expected finite numbers")
    return values


def _voxel_volume_ml(voxel_mm) -> float:
    voxel_mm = tuple(float(v) for v in voxel_mm)
    if len(voxel_mm) != 3 or min(voxel_mm) <= 0:
        raise InputError(f"voxel_mm: {voxel_mm}; expected 3 voxel sizes > 0 mm")
    return mm3_to_ml(float(np.prod(voxel_mm)))


def local_deposition_dose(tia_mbq_h: VolumeLike, voxel_mm: VoxelSizeLike, nuclide: str = "Lu-177",
                          density_g_per_ml=KERNEL_DENSITY_G_PER_ML, energy_mev: float | None = None) -> Volume:
    """Dose (Gy) with all emitted non-penetrating energy absorbed in the source voxel.

    D_v = Ã_v · E · (1.602e-13 J/MeV · 1e6 /(MBq·s) · 3600 s/h · 1000 g/kg) / (ρ_v · V) —
    MIRD Pamphlet 21 with absorbed fraction 1. ``energy_mev`` defaults to the nuclide's
    non-penetrating energy per decay (ICRP 107: 0.1479 MeV for 177Lu), photons escape.
    For 177Lu, 4.7952 mm voxels and ρ = 1.03 this gives 0.2086 mGy/(MBq·s).
    """
    tia = _check_map("tia_mbq_h", tia_mbq_h)
    energy = _nuclide(nuclide).energy_nonpenetrating_mev if energy_mev is None else energy_mev
    density = np.asarray(density_g_per_ml, dtype=float)
    if np.any(density <= 0):
        raise InputError("density_g_per_ml: expected values > 0 g/mL")
    return tia * mev_per_decay_to_gy_g_per_mbq_h(energy) / (density * _voxel_volume_ml(voxel_mm))


def kernel_dose(
    tia_mbq_h: VolumeLike,
    voxel_mm: VoxelSizeLike,
    kernel: VoxelKernel | None = None,
    nuclide: str = "Lu-177",
    dtype: str = "float64",
    convolver: KernelConvolver | None = None,
) -> Volume:
    """Dose (Gy) = TIA ⊛ K (zero-padded FFT convolution, :class:`KernelConvolver`).

    The kernel (default: vendored for ``nuclide``) is resampled to ``voxel_mm`` by
    :func:`~tdt.dosimetry._kernel.resample_kernel` (box average, energy conserving) when sizes
    differ. The result is for the kernel's medium (soft tissue, 1.03 g/mL); see
    :func:`density_correct`.
    """
    tia = _check_map("tia_mbq_h", tia_mbq_h)
    if convolver is None:
        kernel = kernel or load_kernel(nuclide)
        kernel = resample_kernel(kernel, voxel_mm)
        convolver = KernelConvolver(kernel.values_gy_per_mbq_h, tia.shape, dtype=dtype)
    return convolver(tia)


def density_from_hu(hu: VolumeLike, table=DEFAULT_HU_DENSITY) -> Volume:
    """Mass density (g/mL) from CT numbers by piecewise-linear interpolation of ``table``.

    Values beyond the table are extrapolated with the end segments (clipped below at 0.0012)."""
    points = np.asarray(table, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2 or np.any(np.diff(points[:, 0]) <= 0):
        raise InputError("density table: expected (HU, g/mL) pairs with increasing HU")
    hu = np.asarray(hu, dtype=float)
    density = np.interp(hu, points[:, 0], points[:, 1])
    hi_slope = (points[-1, 1] - points[-2, 1]) / (points[-1, 0] - points[-2, 0])
    density = np.where(hu > points[-1, 0], points[-1, 1] + (hu - points[-1, 0]) * hi_slope,
                       density)
    return np.maximum(density, 0.0012)


def density_correct(dose_gy: VolumeLike, density_g_per_ml, reference_density_g_per_ml: float = KERNEL_DENSITY_G_PER_ML,
                    min_density_g_per_ml: float = 0.1) -> Volume:
    """Scale a dose computed in a uniform medium to the voxel densities: D · ρ_ref / ρ_v.

    First-order correction (energy deposited per voxel unchanged, mass scaled; e.g. Dieudonné et
    al., J Nucl Med 2013;54:236). Voxels below ``min_density_g_per_ml`` (air outside the body)
    are set to 0 Gy rather than amplified.
    """
    dose = np.asarray(dose_gy, dtype=float)
    density = np.asarray(density_g_per_ml, dtype=float)
    if density.shape != dose.shape:
        raise InputError(f"density_correct: density shape {density.shape} != dose {dose.shape}")
    safe = np.where(density >= min_density_g_per_ml, density, 1.0)
    return np.where(density >= min_density_g_per_ml,
                    dose * reference_density_g_per_ml / safe, 0.0)


def voxel_dose(
    tia_mbq_h: VolumeLike,
    voxel_mm: VoxelSizeLike,
    method: str = "kernel",
    nuclide: str = "Lu-177",
    hu: VolumeLike | None = None,
    kernel: VoxelKernel | None = None,
    dtype: str = "float64",
) -> Volume:
    """Absorbed dose map (Gy) from a TIA map (MBq·h).

    ``method="kernel"``: FFT convolution with the voxel S-value kernel, then, when ``hu`` (CT on
    the same grid) is given, :func:`density_correct` with :func:`density_from_hu`.
    ``method="local"``: :func:`local_deposition_dose` with the CT density (1.03 g/mL without CT).
    """
    if method == "kernel":
        dose = kernel_dose(tia_mbq_h, voxel_mm, kernel=kernel, nuclide=nuclide, dtype=dtype)
        if hu is not None:
            density = density_from_hu(hu)
            ref = (kernel or load_kernel(nuclide)).density_g_per_ml
            dose = density_correct(dose, density, reference_density_g_per_ml=ref)
        return dose
    if method == "local":
        density = KERNEL_DENSITY_G_PER_ML if hu is None else density_from_hu(hu)
        return local_deposition_dose(tia_mbq_h, voxel_mm, nuclide, density)
    raise InputError(f"voxel_dose: method={method!r}; expected 'kernel' or 'local'")


def tia_map_voxelwise(
    times_h: TimesLike,
    activity_mbq: VolumeSeriesLike,
    mask: MaskLike | None = None,
    model: str = "auto",
    nuclide: str = "Lu-177",
    **fit_kwargs,
) -> Volume:
    """TIA map (MBq·h) from a series of activity maps ``(n_times, k, j, i)`` (MBq per voxel).

    Voxels inside ``mask`` (default: all voxels with any activity > 0) are fitted with the batched
    ``tdt.kinetics.fit_tacs`` (jitted, vmapped); the others get 0.
    """
    activity = np.asarray(activity_mbq, dtype=float)
    times = np.asarray(times_h, dtype=float)
    if activity.ndim != 4 or activity.shape[0] != times.size:
        raise InputError(f"tia_map_voxelwise: activity shape {activity.shape}; expected "
                         f"(n_times={times.size}, k, j, i)")
    if mask is None:
        mask = np.any(activity > 0, axis=0)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != activity.shape[1:]:
        raise InputError(f"tia_map_voxelwise: mask shape {mask.shape} != {activity.shape[1:]}")
    tacs = activity[:, mask].T  # (n_voxels, n_times)
    out = np.zeros(mask.shape)
    if tacs.shape[0]:
        # per voxel: the voxels of a whole image mix tissue classes, which the population
        # default of fit_tacs (one tissue class per batch) is not meant for
        fit = fit_tacs(times, tacs, model=model, nuclide=nuclide,
                       **{"method": "per_tac", **fit_kwargs})
        out[mask] = np.asarray(fit.tia_mbq_h)
    return out


def tia_map_from_reference(reference_activity_mbq: VolumeLike, masks: dict, voi_tia_mbq_h: dict,
                           background_tia_per_mbq_h: float | None = None) -> Volume:
    """TIA map (MBq·h): the reference image scaled per VOI to the VOI's TIA.

    TIA_v = A_ref,v · TIA_VOI / Σ_{u∈VOI} A_ref,u for voxels of each VOI (in the order of
    ``voi_tia_mbq_h``; a voxel in two VOIs takes the first). Voxels outside every VOI get
    ``background_tia_per_mbq_h · A_ref,v`` (h), or 0 when None.
    """
    ref = _check_map("reference_activity_mbq", reference_activity_mbq)
    assigned = np.zeros(ref.shape, dtype=bool)
    out = np.zeros(ref.shape)
    for name, tia in voi_tia_mbq_h.items():
        if name not in masks:
            raise InputError(f"tia_map_from_reference: no mask for VOI {name!r}; masks: "
                             f"{sorted(masks)}")
        mask = np.asarray(masks[name], dtype=bool) & ~assigned
        total = float(ref[mask].sum())
        if total <= 0:
            raise InputError(f"tia_map_from_reference: VOI {name!r} has no activity in the "
                             "reference image; cannot distribute its TIA")
        out[mask] = ref[mask] * float(tia) / total
        assigned |= mask
    if background_tia_per_mbq_h is not None:
        out[~assigned] = ref[~assigned] * background_tia_per_mbq_h
    return out


@dataclass(frozen=True)
class Dvh:
    """Cumulative dose–volume histogram of one structure (exact, from sorted voxel doses).

    ``dose_gy`` sorted decreasing; ``volume_fraction[n]`` = fraction of the structure receiving
    at least ``dose_gy[n]`` = (n+1)/N. ``volume_ml`` = structure volume.
    """

    dose_gy: np.ndarray
    volume_fraction: np.ndarray
    volume_ml: float

    @property
    def mean_gy(self) -> float:
        return float(self.dose_gy.mean())

    @property
    def max_gy(self) -> float:
        return float(self.dose_gy[0])

    @property
    def min_gy(self) -> float:
        return float(self.dose_gy[-1])

    def dose_at_volume(self, fraction: float) -> float:
        """D_x: the largest dose d such that at least ``fraction`` of the volume gets ≥ d."""
        if not 0 < fraction <= 1:
            raise InputError(f"dose_at_volume: fraction {fraction}; expected 0 < x <= 1")
        n = int(np.ceil(fraction * self.dose_gy.size - 1e-9))
        return float(self.dose_gy[max(n, 1) - 1])

    def volume_at_dose(self, dose_gy: float) -> float:
        """V_d: fraction of the volume receiving ≥ ``dose_gy``."""
        return float(np.mean(self.dose_gy >= dose_gy))

    def curve(self, bins: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """(dose grid, volume fraction ≥ dose) on ``bins`` points from 0 to the max, for plots."""
        grid = np.linspace(0.0, self.max_gy, bins)
        ascending = self.dose_gy[::-1]
        frac = 1.0 - np.searchsorted(ascending, grid, side="left") / ascending.size
        return grid, frac


def dvh(dose_gy: VolumeLike, mask: MaskLike, voxel_mm: VoxelSizeLike) -> Dvh:
    """The :class:`Dvh` of ``dose_gy`` inside boolean ``mask`` (equal voxel volumes)."""
    dose = _check_map("dose_gy", dose_gy)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != dose.shape:
        raise InputError(f"dvh: mask shape {mask.shape} != dose {dose.shape}")
    values = np.sort(dose[mask])[::-1]
    if values.size == 0:
        raise InputError("dvh: empty mask; expected at least one voxel")
    return Dvh(values, np.arange(1, values.size + 1) / values.size,
               values.size * _voxel_volume_ml(voxel_mm))


def dvh_table(
    dose_gy: VolumeLike,
    masks: dict,
    voxel_mm: VoxelSizeLike,
) -> dict[str, dict[str, float]]:
    """Per structure: mean, min, max, D98, D50, D2 (Gy) and volume (mL)."""
    table = {}
    for name, mask in masks.items():
        h = dvh(dose_gy, mask, voxel_mm)
        table[name] = {"volume_ml": h.volume_ml, "mean_gy": h.mean_gy, "min_gy": h.min_gy,
                       "max_gy": h.max_gy, "d98_gy": h.dose_at_volume(0.98),
                       "d50_gy": h.dose_at_volume(0.5), "d2_gy": h.dose_at_volume(0.02)}
    return table
