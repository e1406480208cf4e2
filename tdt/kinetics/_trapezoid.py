"""Non-parametric time-integrated activity: trapezoid rule plus an exponential tail.

``TIA = head + ∫_{t_1}^{t_L} (piecewise linear) + tail`` (MBq·h), where

* head (0 → t_1): ``"zero"`` assumes A(0) = 0 and a linear rise (area t_1 A_1 / 2);
  ``"constant"`` assumes A = A_1 on [0, t_1] (area t_1 A_1);
* tail (t_L → ∞): ``"physical"`` assumes physical decay only after the last point,
  ``A_L / λ_phys`` (an upper bound when biological washout continues); ``"fitted"`` fits a
  mono-exponential (log-linear least squares) to the last ``n_tail_points`` points, with the rate
  constrained to ≥ λ_phys, and integrates the fitted curve from t_L: ``Â(t_L) / k``.

This is the hybrid approach of MIRD Pamphlet 21 (Bolch et al., JNM 2009;50:477) and of the EANM
guidance on small-scale dosimetry (Sjögreen Gleisner et al., EJNMMI Phys 2022;9:30).
"""

from __future__ import annotations

import numpy as np

from tdt._types import CurveLike, Scalar, ScalarLike, TimesLike
from tdt.errors import InputError

HEADS = ("zero", "constant")
TAILS = ("physical", "fitted")


def tail_rate_per_h(
    times_h: TimesLike,
    activity_mbq: CurveLike,
    decay_constant_per_h: ScalarLike,
    n_tail_points=3,
) -> tuple[Scalar, Scalar]:
    """Mono-exponential rate (1/h, ≥ λ_phys) and fitted A(t_L) (MBq) from the last points.

    Works row-wise on ``activity_mbq`` of shape (..., n_times). Rows with a non-positive value
    among the tail points fall back to physical decay and the measured last value.
    """
    t = np.asarray(times_h, dtype=float)[-n_tail_points:]
    y = np.asarray(activity_mbq, dtype=float)[..., -n_tail_points:]
    positive = np.all(y > 0, axis=-1)
    log_y = np.log(np.where(y > 0, y, 1.0))
    tc = t - t.mean()
    slope = (log_y - log_y.mean(axis=-1, keepdims=True)) @ tc / (tc @ tc)
    intercept_at_last = log_y.mean(axis=-1) + slope * tc[-1]
    rate = np.maximum(-slope, decay_constant_per_h)
    # refit the level with the constrained rate where the constraint is active
    level = np.where(
        -slope >= decay_constant_per_h,
        np.exp(intercept_at_last),
        np.exp(np.mean(log_y + decay_constant_per_h * (t - t[-1]), axis=-1)),
    )
    rate = np.where(positive, rate, decay_constant_per_h)
    level = np.where(positive, level, y[..., -1])
    return rate, level


def tia_trapezoid(
    times_h: TimesLike,
    activity_mbq: CurveLike,
    decay_constant_per_h: ScalarLike,
    tail="physical",
    head="zero",
    n_tail_points=3,
) -> tuple[Scalar, Scalar, Scalar]:
    """Trapezoid TIA (MBq·h) with the given head and tail; returns (tia, tia_beyond_last, rate).

    Row-wise over a leading axis of TACs. Inputs must already be validated.
    """
    if head not in HEADS:
        raise InputError(f"head: unknown {head!r}; expected one of {HEADS}")
    if tail not in TAILS:
        raise InputError(f"tail: unknown {tail!r}; expected one of {TAILS}")
    t = np.asarray(times_h, dtype=float)
    y = np.asarray(activity_mbq, dtype=float)
    if tail == "fitted":
        if t.size < max(n_tail_points, 2):
            raise InputError(
                f"times_h: a fitted tail needs at least {max(n_tail_points, 2)} time points, "
                f"got {t.size}"
            )
        rate, level = tail_rate_per_h(t, y, decay_constant_per_h, n_tail_points)
    else:
        rate = np.full(y.shape[:-1], decay_constant_per_h)
        level = y[..., -1]
    head_area = (0.5 if head == "zero" else 1.0) * t[0] * y[..., 0]
    body = np.sum(0.5 * (y[..., 1:] + y[..., :-1]) * np.diff(t), axis=-1)
    beyond = level / rate
    return head_area + body + beyond, beyond, rate
