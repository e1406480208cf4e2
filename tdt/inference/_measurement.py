"""Measurement model of image-derived activities.

Observation ``y`` (MBq) of organ ``o`` at time ``t`` from imaging session ``s``::

    log y = log A_o(t) + log c_s + log RC_o + eps,
    log c_s ~ Normal(0, calibration_sd)            (one calibration factor per camera/session)
    log RC_o ~ Normal(log RC0_o, recovery_sd)      (only for VOIs with a recovery coefficient)
    eps ~ Normal(0, sigma)  or  StudentT(nu, 0, sigma)   (proportional noise; t for outliers)
    sigma ~ LogNormal(log noise_sd_median, noise_sd_sd_log)

``A_o(t)`` is the true activity of the kinetic model. The calibration factor multiplies every
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
from scipy.special import erf

from tdt.errors import InputError

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
#: log-SD of the residual recovery of partial-volume-corrected (GTM) activities, which enter with
#: recovery 1: the GTM is exact for uniform VOIs and a known PSF (≤ 1 % on the phantom, tests/
#: imaging/test_imaging_truth.py). 3 % is meant to cover a FWHM *measured* to ~±0.3 mm (real
#: systems). Measured on the phantom cohort with calibration errors drawn from the prior
#: (benchmarks/bench_truth.py, docs/imaging.md): 3 % makes the intervals conservative there
#: (90 % coverage 0.97–1.00) because the phantom's PSF is known exactly; 1 % gives 0.88–0.93.
#: Use ``MeasurementModel(recovery_sd=GTM_RECOVERY_SD)``; a smaller value only when the PSF is
#: known better than ~0.3 mm.
GTM_RECOVERY_SD = 0.03


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


def sphere_recovery_coefficient(volume_ml: float, fwhm_mm: float, n_nodes: int = 96) -> float:
    """Recovery coefficient (0, 1] of a sphere of ``volume_ml`` (mL) imaged with a Gaussian
    PSF of ``fwhm_mm`` (mm): RC = (3/R³) ∫₀ᴿ c(r) r² dr, Gauss–Legendre quadrature."""
    if not (volume_ml > 0 and math.isfinite(volume_ml)):
        raise InputError(f"volume_ml: {volume_ml!r}; expected a volume > 0 mL")
    if not (fwhm_mm > 0 and math.isfinite(fwhm_mm)):
        raise InputError(f"fwhm_mm: {fwhm_mm!r}; expected a FWHM > 0 mm")
    radius_mm = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)  # 1 mL = 1000 mm³
    sigma_mm = fwhm_mm * _FWHM_TO_SIGMA
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    r = 0.5 * radius_mm * (nodes + 1.0)
    integral = 0.5 * radius_mm * np.sum(weights * blurred_sphere_profile(r, radius_mm, sigma_mm)
                                        * r**2)
    return float(np.clip(3.0 * integral / radius_mm**3, 1e-6, 1.0))


@dataclass(frozen=True)
class MeasurementModel:
    """Choices of the measurement model (see module docstring).

    noise: ``"lognormal"`` (Gaussian on log scale) or ``"student_t"`` (outlier-robust).
    nu: degrees of freedom of the Student-t.
    noise_sd_median, noise_sd_sd_log: lognormal prior of the proportional noise SD sigma
        (default median 10 %, typical of quantitative SPECT VOI activities).
    fixed_noise_sd: if given, sigma is fixed (known noise), not sampled.
    recovery_sd: log-SD of the recovery coefficient around its volume-based value
        (volume and PSF are uncertain).
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
    """Boolean per organ: does the VOI get an (uncertain) recovery coefficient?"""
    return np.asarray([
        s.recovery is not None
        or (s.volume_ml is not None and s.volume_ml < measurement.recovery_volume_ml)
        for s in data.organs.values()
    ])
