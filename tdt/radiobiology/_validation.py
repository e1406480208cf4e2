"""Input checks that work eagerly and never break tracing.

Each check looks at a value only when it is concrete (a Python number, a NumPy array or a
concrete JAX array). Inside ``jax.jit``, ``jax.vmap`` or ``jax.grad`` the inputs are tracers and
the checks are skipped: validation of traced values is impossible without a host callback, and a
traced call with bad input returns NaN rather than raising. Every public function also takes a
``validate=False`` switch to skip the checks explicitly (e.g. in a hot loop on trusted input).
"""

from __future__ import annotations

import jax
import numpy as np

from tdt.errors import InputError, warn_implausible

#: no radiopharmaceutical therapy delivers 10 kGy: lesion means reach a few hundred Gy and voxel
#: maxima a few thousand; above this bound a TIA or activity unit is wrong (Bq as MBq, s as h)
DOSE_MAX_GY = 1e4


def concrete(value, name: str = "value") -> np.ndarray | None:
    """``value`` as a float NumPy array, or ``None`` when it is (or contains) a JAX tracer."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (list, tuple)) and any(isinstance(v, jax.core.Tracer) for v in value):
        return None
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected a numeric array, got {value!r:.60} ({exc})") from None


def _show(array: np.ndarray) -> str:
    if array.size <= 6:
        return np.array2string(array, precision=6) if array.ndim else f"{float(array):.6g}"
    return f"array of shape {array.shape}"


def check_finite(name: str, value) -> None:
    """Raise :class:`InputError` if ``value`` (when concrete) holds NaN or ±inf."""
    array = concrete(value, name)
    if array is not None and not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)]
        raise InputError(f"{name}: expected finite numbers, got {_show(bad)} (NaN or inf)")


def check_nonnegative(name: str, value) -> None:
    """Raise :class:`InputError` unless ``value`` is finite and >= 0."""
    check_finite(name, value)
    array = concrete(value)
    if array is not None and np.any(array < 0):
        raise InputError(f"{name}: expected values >= 0, got {_show(array[array < 0])}")


def check_positive(name: str, value) -> None:
    """Raise :class:`InputError` unless ``value`` is finite and > 0."""
    check_finite(name, value)
    array = concrete(value)
    if array is not None and np.any(array <= 0):
        raise InputError(f"{name}: expected values > 0, got {_show(array[array <= 0])}")


def check_strictly_increasing(name: str, value) -> None:
    """Raise :class:`InputError` unless ``value`` is a finite 1-D array, strictly increasing."""
    check_finite(name, value)
    array = concrete(value)
    if array is None:
        return
    if array.ndim != 1 or array.size < 2:
        raise InputError(f"{name}: expected a 1-D array of at least 2 times, got shape {array.shape}")
    steps = np.diff(array)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise InputError(
            f"{name}: expected strictly increasing times, got {array[i]:.6g} followed by "
            f"{array[i + 1]:.6g} at index {i + 1}"
        )


def check_dose_gy(name: str, value) -> None:
    """Finite, >= 0 (InputError), and <= :data:`DOSE_MAX_GY` (else a PlausibilityWarning)."""
    check_nonnegative(name, value)
    array = concrete(value)
    if array is not None and array.size and float(array.max()) > DOSE_MAX_GY:
        warn_implausible(name, f"max {float(array.max()):.4g} Gy",
                         f"<= {DOSE_MAX_GY:g} Gy (no RPT absorbed dose or BED is larger; "
                         "a TIA or activity unit is wrong?)", stacklevel=3)
