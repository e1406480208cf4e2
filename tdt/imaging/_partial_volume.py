"""Partial-volume loss predicted for a Gaussian system blur.

For an isotropic Gaussian point-spread function of full width at half maximum FWHM
(σ = FWHM / (2 √(2 ln 2))) and uniform activity in a VOI, the fraction of the VOI's activity
found inside the VOI after blurring (the *recovery coefficient*, spill-out only) is

    RC = (1/N) Σ_{v ∈ VOI} (G ⊛ 1_VOI)(v).

:func:`voi_recovery` evaluates it on the voxel grid (``scipy.ndimage.gaussian_filter``);
:func:`sphere_recovery` gives the continuous closed form for a sphere of radius R: the blurred
profile of a uniform ball is

    f(r) = ½[erf((R−r)/(√2σ)) + erf((R+r)/(√2σ))]
           − σ/(r√(2π)) · [exp(−(R−r)²/(2σ²)) − exp(−(R+r)²/(2σ²))]

and RC = (3/R³) ∫₀^R f(r) r² dr (numerical quadrature). For large VOIs the loss tends to
(surface / volume) · σ/√(2π) (3σ/(R√(2π)) for a sphere). Spill-in from neighbouring activity is
*not* included: on a real image it adds Σ_other c_other · (overlap of their blurred masks).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, ndimage
from scipy.special import erf

from tdt.errors import InputError
from tdt.units import LN2


def fwhm_to_sigma(fwhm_mm: float) -> float:
    """σ = FWHM / (2 √(2 ln 2)) (mm)."""
    return fwhm_mm / (2.0 * math.sqrt(2.0 * LN2))


def voi_recovery(mask, voxel_mm, fwhm_mm: float) -> float:
    """Recovery coefficient of a uniform VOI on its voxel grid (spill-out only)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise InputError("voi_recovery: empty mask")
    if fwhm_mm <= 0:
        raise InputError(f"voi_recovery: fwhm_mm {fwhm_mm}; expected > 0")
    # voxel_mm is (Δi, Δj, Δk); the array axes are (k, j, i)
    sigma = [fwhm_to_sigma(fwhm_mm) / float(d) for d in tuple(voxel_mm)[::-1]]
    blurred = ndimage.gaussian_filter(mask.astype(float), sigma, mode="constant", truncate=5.0)
    return float(blurred[mask].sum() / mask.sum())


def sphere_recovery(radius_mm: float, fwhm_mm: float) -> float:
    """Closed-form recovery coefficient of a uniform sphere under a 3-D Gaussian blur."""
    if radius_mm <= 0 or fwhm_mm <= 0:
        raise InputError("sphere_recovery: radius_mm and fwhm_mm must be > 0")
    s = fwhm_to_sigma(fwhm_mm)
    big_r = float(radius_mm)

    def profile(r):
        if r < 1e-9 * big_r:
            x = big_r / s
            return math.erf(x / math.sqrt(2)) - math.sqrt(2 / math.pi) * x * math.exp(-x * x / 2)
        a, b = (big_r - r) / s, (big_r + r) / s
        return 0.5 * (erf(a / math.sqrt(2)) + erf(b / math.sqrt(2))) - s / (
            r * math.sqrt(2 * math.pi)) * (math.exp(-a * a / 2) - math.exp(-b * b / 2))

    value, _ = integrate.quad(lambda r: profile(r) * r * r, 0.0, big_r, epsabs=0, epsrel=1e-10)
    return 3.0 * value / big_r ** 3


def geometric_transfer_matrix(masks: dict, voxel_mm, fwhm_mm: float) -> np.ndarray:
    """Geometric transfer matrix W (n_regions × n_regions) of disjoint region ``masks``.

    ``W[i, j]`` is the fraction of a uniform, unit-total activity in region ``j`` that the
    Gaussian-blurred image shows inside VOI ``i`` (Rousset, Ma, Evans, J Nucl Med 1998;39:904).
    The diagonal is each region's recovery coefficient (:func:`voi_recovery`), the off-diagonal
    terms its spill-in into the others. Image VOI sums ``y = W a`` for true region totals ``a``;
    the regions should tile everything that holds activity (include a background region).
    """
    names = list(masks)
    if not names:
        raise InputError("geometric_transfer_matrix: masks is empty; expected >= 1 region")
    if fwhm_mm <= 0:
        raise InputError(f"geometric_transfer_matrix: fwhm_mm {fwhm_mm}; expected > 0")
    stack = [np.asarray(masks[n], dtype=bool) for n in names]
    for n, m in zip(names, stack, strict=True):
        if not m.any():
            raise InputError(f"geometric_transfer_matrix: mask {n!r} is empty; expected >= 1 voxel")
    if np.any(np.sum(stack, axis=0) > 1):
        raise InputError("geometric_transfer_matrix: masks overlap; expected disjoint regions")
    sigma = [fwhm_to_sigma(fwhm_mm) / float(d) for d in tuple(voxel_mm)[::-1]]
    w = np.empty((len(names), len(names)))
    for j, mj in enumerate(stack):
        blurred = ndimage.gaussian_filter(mj / mj.sum(), sigma, mode="constant", truncate=5.0)
        for i, mi in enumerate(stack):
            w[i, j] = blurred[mi].sum()
    return w


def gtm_correct(observed_mbq, w: np.ndarray) -> np.ndarray:
    """True region totals from image VOI sums: solve ``W a = y`` (least squares, per time point).

    ``observed_mbq``: (n_regions,) or (n_regions, n_times) VOI sums of the image (MBq).
    """
    y = np.asarray(observed_mbq, dtype=float)
    w = np.asarray(w, dtype=float)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or y.shape[0] != w.shape[0]:
        raise InputError(f"gtm_correct: observed shape {y.shape} and W shape {w.shape}; expected "
                         "(n_regions[, n_times]) and (n_regions, n_regions)")
    return np.linalg.solve(w, y)
