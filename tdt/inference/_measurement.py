"""Measurement model of image-derived activities.

Observation ``y`` (MBq) of organ ``o`` at time ``t`` from imaging session ``s``::

    log y = log A_o(t) + log c_s + log RC_o + eps,
    log c_s ~ Normal(0, calibration_sd)            (one calibration factor per camera/session)
    log RC_o ~ Normal(log RC0_o, recovery_sd_o)    (only for VOIs with a recovery coefficient)
    eps ~ Normal(0, sigma)  or  StudentT(nu, 0, sigma)   (proportional noise; t for outliers)
    sigma ~ LogNormal(log noise_sd_median, noise_sd_sd_log)

``A_o(t)`` is the true activity of the kinetic model. ``recovery_sd_o`` is the VOI's own
``OrganSeries.recovery_sd`` when given (partial-volume-corrected data: the FWHM uncertainty
propagated through the geometric transfer matrix, ``tdt.imaging.VoiTac.recovery_sd``), else the
flat ``MeasurementModel.recovery_sd`` (:func:`recovery_sds`); a VOI whose SD is 0 keeps its
recovery fixed at RC0. The calibration factor multiplies every
organ of a session alike, so it is not identifiable from the data: its prior propagates as it
should into the TIA and dose (a 3 % calibration SD gives at least a 3 % dose SD).

The partial-volume recovery coefficient of a small lesion is the fraction of the counts of a
uniform sphere that stay inside the sphere after blurring by an isotropic 3-D Gaussian
point-spread function (FWHM of the system). That is the spill-out model of e.g. Hoffman, Huang,
Phelps (J Comput Assist Tomogr 1979;3:299) for spheres; computed here by quadrature of the
closed-form blurred-sphere profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tdt.errors import InputError
from tdt.imaging import sphere_recovery

#: Fallback log-SD of the residual recovery of partial-volume-corrected (GTM) activities that
#: come *without* a per-VOI ``OrganSeries.recovery_sd`` (they enter with recovery 1). Prefer the
#: per-VOI value of ``tdt.imaging.extract_tacs(partial_volume="gtm", fwhm_sd_mm=...)``
#: (``VoiTac.recovery_sd``: FWHM uncertainty through the GTM ⊕ a 1 % floor): with a 1 mm FWHM SD
#: it is ~1 % for the liver and 4–9 % for lesions of 4–20 mL (docs/imaging.md). This flat 3 %
#: stands for a FWHM known to ~±0.3–1 mm on VOIs of organ size; on the phantom cohort (PSF known
#: exactly) it made the intervals conservative (90 % coverage 0.97–1.00, benchmarks/
#: bench_truth.py). Use ``MeasurementModel(recovery_sd=GTM_RECOVERY_SD)``.
GTM_RECOVERY_SD = 0.03


def sphere_recovery_coefficient(volume_ml: float, fwhm_mm: float) -> float:
    """Recovery coefficient (0, 1] of a sphere of ``volume_ml`` (mL) imaged with a Gaussian
    PSF of ``fwhm_mm`` (mm): :func:`tdt.imaging.sphere_recovery` at the sphere's radius
    (RC = (3/R³) ∫₀ᴿ c(r) r² dr), floored at 1e-6."""
    if not (volume_ml > 0 and math.isfinite(volume_ml)):
        raise InputError(f"volume_ml: {volume_ml!r}; expected a volume > 0 mL")
    if not (fwhm_mm > 0 and math.isfinite(fwhm_mm)):
        raise InputError(f"fwhm_mm: {fwhm_mm!r}; expected a FWHM > 0 mm")
    radius_mm = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)  # 1 mL = 1000 mm³
    return float(np.clip(sphere_recovery(radius_mm, fwhm_mm), 1e-6, 1.0))


@dataclass(frozen=True)
class MeasurementModel:
    """Choices of the measurement model (see module docstring).

    noise: ``"lognormal"`` (Gaussian on log scale) or ``"student_t"`` (outlier-robust).
    nu: degrees of freedom of the Student-t.
    noise_sd_median, noise_sd_sd_log: lognormal prior of the proportional noise SD sigma
        (default median 10 %, typical of quantitative SPECT VOI activities).
    fixed_noise_sd: if given, sigma is fixed (known noise), not sampled.
    recovery_sd: log-SD of the recovery coefficient around its volume-based value
        (volume and PSF are uncertain); the fallback for VOIs without their own
        ``OrganSeries.recovery_sd``.
    recovery_volume_ml: VOIs with a volume below this get a recovery coefficient when none is
        given explicitly (larger organs: RC ≈ 1, spill-in/out balanced by the VOI margin).
    """

    noise: str = "lognormal"
    nu: float = 4.0
    noise_sd_median: float = 0.10
    noise_sd_sd_log: float = 0.4
    fixed_noise_sd: float | None = None
    recovery_sd: float = 0.10
    recovery_volume_ml: float = 100.0

    def __post_init__(self):
        if self.noise not in ("lognormal", "student_t"):
            raise InputError(
                f"MeasurementModel.noise: {self.noise!r}; expected 'lognormal' or 'student_t'"
            )
        if not self.nu > 0:
            raise InputError(f"MeasurementModel.nu: {self.nu!r}; expected > 0")
        if not self.noise_sd_median > 0 or not self.noise_sd_sd_log > 0:
            raise InputError(
                f"MeasurementModel.noise_sd_median/noise_sd_sd_log: {self.noise_sd_median!r}, "
                f"{self.noise_sd_sd_log!r}; expected both > 0"
            )
        if self.fixed_noise_sd is not None and not self.fixed_noise_sd > 0:
            raise InputError(
                f"MeasurementModel.fixed_noise_sd: {self.fixed_noise_sd!r}; expected > 0"
            )
        if not self.recovery_sd >= 0:
            raise InputError(f"MeasurementModel.recovery_sd: {self.recovery_sd!r}; expected >= 0")


def recovery_coefficients(data, measurement: MeasurementModel) -> np.ndarray:
    """Prior median recovery coefficient per organ of ``data`` (1 where none applies)."""
    rc = []
    for series in data.organs.values():
        if series.recovery is not None:
            rc.append(series.recovery)
        elif series.volume_ml is not None and series.volume_ml < measurement.recovery_volume_ml:
            rc.append(sphere_recovery_coefficient(series.volume_ml, data.fwhm_mm))
        else:
            rc.append(1.0)
    return np.asarray(rc, dtype=float)


def has_recovery(data, measurement: MeasurementModel) -> np.ndarray:
    """Boolean per organ: does the VOI get a recovery coefficient? (a known one, a small
    volume, or its own ``recovery_sd``)"""
    return np.asarray([
        s.recovery is not None or s.recovery_sd is not None
        or (s.volume_ml is not None and s.volume_ml < measurement.recovery_volume_ml)
        for s in data.organs.values()
    ])


def recovery_sds(data, measurement: MeasurementModel) -> np.ndarray:
    """Log-SD of the recovery per organ: the VOI's own ``recovery_sd`` when given, else the
    flat ``measurement.recovery_sd`` (0 for organs without a recovery coefficient)."""
    mask = has_recovery(data, measurement)
    return np.asarray([
        (measurement.recovery_sd if s.recovery_sd is None else s.recovery_sd) if m else 0.0
        for s, m in zip(data.organs.values(), mask, strict=True)
    ], dtype=float)


def free_recovery(data, measurement: MeasurementModel) -> np.ndarray:
    """Boolean per organ: is its log recovery a random variable (recovery term with SD > 0)?"""
    return has_recovery(data, measurement) & (recovery_sds(data, measurement) > 0)
