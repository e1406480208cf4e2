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

:func:`geometric_transfer_matrix` / :func:`gtm_correct` model spill-out *and* spill-in (Rousset
1998). :func:`gtm_recovery_log_sd` gives the uncertainty of the GTM-corrected totals that an
uncertain FWHM induces (central difference of log activity over FWHM ± its SD), combined in
quadrature with a floor for the GTM's residual error (:data:`GTM_RESIDUAL_LOG_SD`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, ndimage
from scipy.special import erf

from tdt.errors import InputError, warn_implausible
from tdt.units import LN2

#: Floor of the log-SD of a GTM-corrected VOI total (dimensionless): the GTM's residual error
#: when the PSF is known. Measured 2026-12-03 on phantoms seeds 0–5 (``make_phantom_patient``,
#: 2 lesions, 10 mm FWHM; 8 VOIs each, ``extract_tacs(partial_volume="gtm")`` against
#: ``ground_truth.json``): noiseless, |GTM / true − 1| ≤ 0.35 % at every time point (time-mean
#: ≤ 0.07 %); with Poisson noise the per-VOI time-mean residual has RMS 0.25 % and reaches
#: 1.06 % (red marrow, seed 0). 1 % covers the largest per-VOI offset seen; on real data the
#: GTM's assumptions (uniform activity per VOI, exact masks) hold less well than on the phantom.
GTM_RESIDUAL_LOG_SD = 0.01
#: Default SD of the system FWHM as a fraction of the FWHM. ASSUMPTION (no single published
#: value): the reconstructed SPECT resolution varies with the position in the field of view,
#: the radius of rotation and the number of OSEM iterations (Geworski & Jordan, Nuklearmedizin
#: 1991;30:24; case-specific PSF by perturbation, EJNMMI Physics 2022,
#: doi:10.1186/s40658-022-00489-5), so one FWHM per image is uncertain by about 10 % (1 mm of a
#: 10 mm FWHM).
FWHM_RELATIVE_SD = 0.10


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


def blurred_sphere_profile(r_mm, radius_mm: float, sigma_mm: float):
    """Value at distance ``r_mm`` from the centre of a unit-concentration ball of radius
    ``radius_mm`` convolved with an isotropic Gaussian of SD ``sigma_mm`` (dimensionless).

    c(r) = ½[erf((R−r)/√2σ) + erf((R+r)/√2σ)] − σ/(r√(2π)) [e^{−(R−r)²/2σ²} − e^{−(R+r)²/2σ²}]
    (standard result; at r → 0 it tends to the χ₃ CDF at R/σ).
    """
    r = np.maximum(np.asarray(r_mm, dtype=float), 1e-9 * radius_mm)
    s2 = math.sqrt(2.0) * sigma_mm
    gauss = np.exp(-((radius_mm - r) ** 2) / (2 * sigma_mm**2)) - np.exp(
        -((radius_mm + r) ** 2) / (2 * sigma_mm**2)
    )
    return 0.5 * (erf((radius_mm - r) / s2) + erf((radius_mm + r) / s2)) - sigma_mm / (
        r * math.sqrt(2 * math.pi)
    ) * gauss


def sphere_recovery(radius_mm: float, fwhm_mm: float) -> float:
    """Closed-form recovery coefficient of a uniform sphere under a 3-D Gaussian blur:
    RC = (3/R³) ∫₀ᴿ c(r) r² dr with c = :func:`blurred_sphere_profile` (adaptive quadrature)."""
    if not (radius_mm > 0 and fwhm_mm > 0 and math.isfinite(radius_mm) and math.isfinite(fwhm_mm)):
        raise InputError(f"sphere_recovery: radius_mm={radius_mm!r}, fwhm_mm={fwhm_mm!r}; "
                         "expected both > 0 and finite (mm)")
    sigma_mm = fwhm_to_sigma(fwhm_mm)
    big_r = float(radius_mm)
    value, _ = integrate.quad(
        lambda r: float(blurred_sphere_profile(r, big_r, sigma_mm)) * r * r, 0.0, big_r,
        epsabs=0, epsrel=1e-10)
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


def gtm_fwhm_log_sensitivity(masks: dict, voxel_mm, fwhm_mm: float, fwhm_sd_mm: float,
                             observed_mbq) -> np.ndarray:
    """Change of the log GTM-corrected totals when the FWHM moves by ± ``fwhm_sd_mm``.

    Central difference ``[log a(FWHM + s) − log a(FWHM − s)] / 2`` with ``a(f) = W(f)⁻¹ y``
    (:func:`geometric_transfer_matrix`, :func:`gtm_correct`): to first order the log-SD of each
    region's corrected total for a FWHM SD ``s`` (mm), sign kept. Where a perturbed total is
    ≤ 0 the relative difference ``(a₊ − a₋) / (2 a)`` is used, NaN where ``a`` ≤ 0.
    ``observed_mbq``: (n_regions[, n_times]) image VOI sums. Returns the same shape.
    """
    if not (math.isfinite(fwhm_sd_mm) and 0.0 <= fwhm_sd_mm < fwhm_mm):
        raise InputError(f"gtm_fwhm_log_sensitivity: fwhm_sd_mm {fwhm_sd_mm!r}; expected "
                         f">= 0 and < fwhm_mm ({fwhm_mm} mm)")
    y = np.asarray(observed_mbq, dtype=float)
    if fwhm_sd_mm == 0.0:
        return np.zeros_like(y)
    centre = gtm_correct(y, geometric_transfer_matrix(masks, voxel_mm, fwhm_mm))
    plus = gtm_correct(y, geometric_transfer_matrix(masks, voxel_mm, fwhm_mm + fwhm_sd_mm))
    minus = gtm_correct(y, geometric_transfer_matrix(masks, voxel_mm, fwhm_mm - fwhm_sd_mm))
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = (plus > 0) & (minus > 0)
        log_diff = 0.5 * (np.log(np.where(positive, plus, 1.0))
                          - np.log(np.where(positive, minus, 1.0)))
        rel_diff = np.where(centre > 0, (plus - minus) / (2.0 * centre), np.nan)
    return np.where(positive & (centre > 0), log_diff, rel_diff)


def gtm_recovery_log_sd(masks: dict, voxel_mm, fwhm_mm: float, fwhm_sd_mm: float,
                        observed_mbq, floor: float = GTM_RESIDUAL_LOG_SD) -> np.ndarray:
    """Per region, the log-SD of its GTM-corrected total (dimensionless, one value per region).

    sqrt(s_FWHM² + floor²): ``s_FWHM`` is the root mean square over time points of
    :func:`gtm_fwhm_log_sensitivity` (a FWHM error is the same at every scan, so it acts as one
    recovery factor per VOI); ``floor`` the GTM's residual error with a known PSF
    (:data:`GTM_RESIDUAL_LOG_SD`). Small VOIs (lesions, salivary glands) lose more to blur and
    their correction is more sensitive to the FWHM than the liver's. NaN for a region whose
    corrected total is ≤ 0 at every time point.
    """
    if not (math.isfinite(floor) and floor >= 0):
        raise InputError(f"gtm_recovery_log_sd: floor {floor!r}; expected a log-SD >= 0")
    if fwhm_sd_mm > 0.3 * fwhm_mm:
        warn_implausible("fwhm_sd_mm", fwhm_sd_mm, f"<= 30 % of the FWHM ({fwhm_mm} mm)")
    sens = gtm_fwhm_log_sensitivity(masks, voxel_mm, fwhm_mm, fwhm_sd_mm, observed_mbq)
    sens = sens.reshape(sens.shape[0], -1)
    out = np.full(sens.shape[0], np.nan)
    for i, row in enumerate(sens):
        finite = row[np.isfinite(row)]
        if finite.size:
            out[i] = math.sqrt(float(np.mean(finite ** 2)) + floor ** 2)
    return out
