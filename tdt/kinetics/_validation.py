"""Input checks of the kinetics entry points: every failure is an InputError naming the field."""

from __future__ import annotations

import math

import numpy as np

from tdt.errors import InputError, warn_implausible
from tdt.physics import nuclide as get_nuclide
from tdt.units import half_life_to_rate, rate_to_half_life

#: Named weighting schemes for least squares (weights are 1/variance up to a common factor).
WEIGHT_SCHEMES = ("uniform", "relative", "poisson")


def _as_float_array(field: str, value, what: str) -> np.ndarray:
    if isinstance(value, (str, bytes, dict)):
        raise InputError(f"{field}: got a {type(value).__name__} {value!r:.60}; expected an array "
                         f"of {what}")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{field}: {value!r:.60} is not numeric ({exc}); expected an array of "
                         f"{what}") from None


def check_times(times_h) -> np.ndarray:
    """1-D, finite, non-negative, strictly increasing times (h)."""
    t = _as_float_array("times_h", times_h, "times in h")
    if t.ndim != 1:
        raise InputError(f"times_h: expected a 1-D array of times in h, got shape {t.shape}")
    if t.size == 0:
        raise InputError("times_h: expected at least one time point, got an empty array")
    if not np.all(np.isfinite(t)):
        raise InputError(f"times_h: all times must be finite, got {t.tolist()}")
    if np.any(t < 0):
        raise InputError(f"times_h: times after administration must be >= 0 h, got {t.tolist()}")
    steps = np.diff(t)
    if np.any(steps == 0):
        dup = t[1:][steps == 0]
        raise InputError(f"times_h: duplicate time points {dup.tolist()} h; expected distinct times")
    if np.any(steps < 0):
        raise InputError(
            f"times_h: times must be sorted in increasing order, got {t.tolist()}"
        )
    return t


def check_activity(activity_mbq, n_times: int, batched: bool) -> np.ndarray:
    """Finite, non-negative activities (MBq) whose last axis matches the times."""
    y = _as_float_array("activity_mbq", activity_mbq, "activities in MBq")
    expected = "(n_tacs, n_times)" if batched else "(n_times,)"
    if y.ndim != (2 if batched else 1):
        raise InputError(f"activity_mbq: expected shape {expected}, got shape {y.shape}")
    if y.shape[-1] != n_times:
        raise InputError(
            f"activity_mbq: length {y.shape[-1]} along the time axis does not match times_h "
            f"(length {n_times})"
        )
    if not np.all(np.isfinite(y)):
        raise InputError("activity_mbq: NaN or infinite values; expected finite activities in MBq")
    if np.any(y < 0):
        raise InputError(
            f"activity_mbq: negative activity (min {y.min():.4g} MBq); expected values >= 0"
        )
    if batched and y.shape[0] == 0:
        raise InputError("activity_mbq: expected at least one TAC, got 0 rows")
    return y


def resolve_weights(weights, y: np.ndarray) -> np.ndarray:
    """Least-squares weights (≈ 1/variance, up to a common factor) with the shape of ``y``.

    ``None`` or ``"uniform"``: all 1 (unweighted, lmfit's default). ``"relative"``: 1/y², the
    constant-coefficient-of-variation error model used by NUKFIT (Kletting et al. 2013).
    ``"poisson"``: 1/y (counting noise). Observed zeros are floored at 1e-3 of the TAC's maximum.
    An array of positive weights (broadcastable to ``y``) is used as given.
    """
    if weights is None or (isinstance(weights, str) and weights == "uniform"):
        return np.ones_like(y)
    if isinstance(weights, str):
        if weights not in WEIGHT_SCHEMES:
            raise InputError(
                f"weights: unknown scheme {weights!r}; expected one of {WEIGHT_SCHEMES}, None or "
                "an array of positive weights"
            )
        floor = 1e-3 * np.max(y, axis=-1, keepdims=True)
        floor = np.where(floor > 0, floor, 1.0)
        y_safe = np.maximum(y, floor)
        return 1.0 / y_safe**2 if weights == "relative" else 1.0 / y_safe
    w = np.asarray(weights, dtype=float)
    try:
        w = np.broadcast_to(w, y.shape).copy()
    except ValueError:
        raise InputError(
            f"weights: shape {w.shape} does not broadcast to the activities' shape {y.shape}"
        ) from None
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise InputError("weights: expected finite, strictly positive weights")
    return w


#: An effective half-life longer than the physical one is impossible (T_eff = 1/(λ_phys + λ_bio),
#: λ_bio ≥ 0); noise allows some excess, beyond this factor the time unit is suspect (minutes?)
EFFECTIVE_HALF_LIFE_MAX_FACTOR = 1.5
#: ... but only once uptake is over: before it, λ_bio < 0 and the decay-corrected curve rises
#: legitimately (68Ga/18F PET at 1–2 h: tumour and kidney uptake still rising, the physical
#: half-life ~1–2 h). The check applies when both of the last two points are at least this late
#: (h after administration); unit errors of early-only data are caught by the time checks.
EFFECTIVE_HALF_LIFE_CHECK_AFTER_H = 4.0
#: last time point > this many physical half-lives: the activity would be < 1e-6 of the
#: administered (times in minutes or seconds passed as hours?)
LAST_TIME_MAX_HALF_LIVES = 20.0
#: last time point < this fraction of the physical half-life with >= 3 points: the decay phase is
#: not sampled (times in days passed as hours? 177Lu: 16 h)
LAST_TIME_MIN_HALF_LIFE_FRACTION = 0.1
#: no radiopharmaceutical therapy administers 100 GBq; a larger activity is Bq or kBq read as MBq
ACTIVITY_MAX_MBQ = 1e5


def check_tac_plausibility(times_h: np.ndarray, activity_mbq: np.ndarray,
                           nuclide: str = "Lu-177", administered_mbq: float | None = None,
                           name: str = "TAC") -> None:
    """Warn (:class:`~tdt.errors.PlausibilityWarning`) when a TAC's time or activity unit looks
    wrong, when it still rises at its last time point, or when it exceeds the administered
    activity decayed to each time. Thresholds: the module constants above (docs/kinetics.md).
    """
    t, y = np.asarray(times_h, float), np.asarray(activity_mbq, float)
    half_life = get_nuclide(nuclide).half_life_h
    if y.size and y.max() > ACTIVITY_MAX_MBQ:
        warn_implausible(f"{name} activity_mbq", f"max {y.max():.4g} MBq",
                         f"<= {ACTIVITY_MAX_MBQ:g} MBq (Bq or kBq passed as MBq?)")
    if t.size and t[-1] > LAST_TIME_MAX_HALF_LIVES * half_life:
        warn_implausible(f"{name} times_h", f"last time {t[-1]:.4g} h",
                         f"<= {LAST_TIME_MAX_HALF_LIVES:g} physical half-lives of {nuclide} "
                         f"({LAST_TIME_MAX_HALF_LIVES * half_life:.4g} h; minutes passed as hours?)")
    elif t.size >= 3 and t[-1] < LAST_TIME_MIN_HALF_LIFE_FRACTION * half_life:
        warn_implausible(f"{name} times_h", f"last time {t[-1]:.4g} h",
                         f">= {LAST_TIME_MIN_HALF_LIFE_FRACTION:g} physical half-life of {nuclide} "
                         f"({LAST_TIME_MIN_HALF_LIFE_FRACTION * half_life:.3g} h) so that the "
                         "clearance is sampled (days passed as hours?)")
    if t.size >= 3 and y[-1] > 0 and y[-1] >= y.max() and y[-1] > 1.05 * y[-2]:
        warn_implausible(f"{name} activity_mbq", f"rising to its maximum {y[-1]:.4g} MBq at the "
                         f"last time {t[-1]:.4g} h", "a curve that has begun to clear by the last "
                         "time point (the TIA tail beyond it is an assumption)")
    elif (t.size >= 2 and y[-2] > 0 and y[-1] > 0 and t[-1] > t[-2]
          and t[-2] >= EFFECTIVE_HALF_LIFE_CHECK_AFTER_H):
        rate = math.log(y[-2] / y[-1]) / (t[-1] - t[-2])
        if rate < half_life_to_rate(EFFECTIVE_HALF_LIFE_MAX_FACTOR * half_life):
            shown = f"{rate_to_half_life(rate):.4g} h" if rate > 0 else "infinite (flat or rising)"
            warn_implausible(f"{name} effective half-life (last two points)", shown,
                             f"<= the physical half-life of {nuclide} ({half_life:.4g} h) x "
                             f"{EFFECTIVE_HALF_LIFE_MAX_FACTOR:g} (times in minutes?)")
    if administered_mbq:
        expected = administered_mbq * np.exp(-half_life_to_rate(half_life) * t)
        over = y > 1.15 * expected
        if np.any(over):
            i = int(np.argmax(over))
            warn_implausible(f"{name} activity at {t[i]:.4g} h", f"{y[i]:.4g} MBq",
                             f"<= the administered {administered_mbq:.4g} MBq decayed to "
                             f"{expected[i]:.4g} MBq")
