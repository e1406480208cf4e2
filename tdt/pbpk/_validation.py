"""Validation of parameter dictionaries and time grids (concrete values only; tracers pass)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError, unknown_name_error


def is_concrete(value) -> bool:
    """True when ``value`` holds numbers now (not a JAX tracer inside jit/vmap/grad)."""
    return not isinstance(value, jax.core.Tracer)


def check_params(params: Mapping, names: Sequence[str], bounds: Mapping[str, tuple] | None = None,
                 model: str = "model") -> dict:
    """Check that ``params`` has exactly ``names``; concrete values must be finite and >= 0.

    Returns a dict of JAX arrays (float64). Values may carry leading batch axes. ``bounds`` (if
    given) are checked for concrete values too (``lo <= value <= hi``).
    """
    if not isinstance(params, Mapping):
        raise InputError(f"{model}.params: expected a dict of parameter values, got "
                         f"{type(params).__name__}")
    for key in params:
        if key not in names:
            raise unknown_name_error(f"{model}.params", str(key), names)
    missing = [n for n in names if n not in params]
    if missing:
        raise InputError(f"{model}.params: missing parameter(s) {', '.join(map(repr, missing))}")
    out = {}
    for name in names:
        value = params[name]
        if is_concrete(value):
            array = np.asarray(value, dtype=float)
            if not np.all(np.isfinite(array)):
                raise InputError(f"{model}.params[{name!r}]: expected finite values, got {value!r}")
            if np.any(array < 0.0):
                raise InputError(f"{model}.params[{name!r}]: expected a value >= 0 (rates, volumes "
                                 f"and densities are non-negative), got {array.min()!r}")
        out[name] = jnp.asarray(value, dtype=float)
    return out


def check_times(times_h, field: str = "times_h"):
    """A 1-D array of finite times (h). Returns a float64 JAX array."""
    if is_concrete(times_h):
        array = np.asarray(times_h, dtype=float)
        if array.ndim == 0:
            array = array[None]
        if array.ndim != 1:
            raise InputError(f"{field}: expected a 1-D array of times (h), got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise InputError(f"{field}: expected finite times (h), got {array}")
        return jnp.asarray(array)
    return jnp.atleast_1d(jnp.asarray(times_h, dtype=float))
