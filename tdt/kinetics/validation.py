"""Input checks of the kinetics entry points: every failure is an InputError naming the field."""

from __future__ import annotations

import numpy as np

from tdt.errors import InputError

#: Named weighting schemes for least squares (weights are 1/variance up to a common factor).
WEIGHT_SCHEMES = ("uniform", "relative", "poisson")


def check_times(times_h) -> np.ndarray:
    """1-D, finite, non-negative, strictly increasing times (h)."""
    t = np.asarray(times_h, dtype=float)
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
    y = np.asarray(activity_mbq, dtype=float)
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
