"""Equivalent uniform doses: generalised EUD (Niemierko) and EUBED (O'Donoghue).

* gEUD = (Σ v_i D_i^a / Σ v_i)^{1/a} (Niemierko, Med Phys 1999;26:1100, abstract; Wu et al.,
  IJROBP 2002;52:224). a = 1 gives the mean dose, a → +∞ the maximum, a → -∞ the minimum.
* EUBED = -(1/alpha) ln(Σ v_i exp(-alpha BED_i) / Σ v_i) (O'Donoghue, Med Phys 1999;26:1955):
  the uniform BED with the same LQ cell survival as the voxel BEDs.

Both reduce along ``axis`` (voxels / DVH bins), broadcast elsewhere, and are jittable and
differentiable.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from tdt._types import Scalar, ScalarLike, VoxelsLike, VoxelWeightsLike
from tdt.errors import InputError
from tdt.radiobiology._validation import (
    check_dose_gy,
    check_finite,
    check_nonnegative,
    check_positive,
    concrete,
)


def _weights(values, volumes, axis):
    if volumes is None:
        return jnp.ones_like(values)
    return jnp.broadcast_to(jnp.asarray(volumes, dtype=float), values.shape)


def geud(
    doses_gy: VoxelsLike,
    a: ScalarLike,
    volumes: VoxelWeightsLike | None = None,
    *,
    axis=-1,
    validate=True,
) -> Scalar:
    """Generalised equivalent uniform dose (Gy), Niemierko's gEUD with parameter ``a`` (≠ 0).

    Evaluated as D_ref (Σ w_i (D_i / D_ref)^a)^{1/a} with D_ref the maximum (a > 0) or minimum
    (a < 0) dose, so large |a| does not overflow. For a < 0 a zero-dose voxel gives gEUD 0.
    ``volumes``: relative voxel / bin volumes (default equal), broadcast against ``doses_gy``.
    """
    if validate:
        check_dose_gy("doses_gy", doses_gy)
        check_finite("a", a)
        a_c = concrete(a)
        if a_c is not None and np.any(a_c == 0):
            raise InputError("a: expected a non-zero gEUD parameter (a=1: mean dose), got 0")
        if volumes is not None:
            check_nonnegative("volumes", volumes)
    doses = jnp.asarray(doses_gy, dtype=float)
    a = jnp.asarray(a, dtype=float)
    weights = _weights(doses, volumes, axis)
    weights = weights / jnp.sum(weights, axis=axis, keepdims=True)
    a_k = jnp.expand_dims(a, axis) if a.ndim else a
    reference = jnp.where(a_k > 0, jnp.max(doses, axis=axis, keepdims=True),
                          jnp.min(doses, axis=axis, keepdims=True))
    # safe ratio: reference 0 happens only if (a > 0 and all doses 0) or (a < 0 and a zero dose)
    safe_ref = jnp.where(reference > 0, reference, 1.0)
    ratio = jnp.where(reference > 0, doses / safe_ref, 1.0)
    total = jnp.sum(weights * ratio**a_k, axis=axis, keepdims=True)
    result = jnp.where(reference > 0, reference * total ** (1.0 / a_k), 0.0)
    return jnp.squeeze(result, axis=axis)


def eubed(
    beds_gy: VoxelsLike,
    alpha_per_gy: ScalarLike,
    volumes: VoxelWeightsLike | None = None,
    *,
    axis=-1,
    validate=True,
) -> Scalar:
    """Equivalent uniform BED (Gy): -(1/alpha) ln(Σ w_i exp(-alpha BED_i)), w normalised.

    ``alpha_per_gy`` (> 0) is the LQ alpha of the tissue (1/Gy); ``volumes`` relative voxel
    volumes (default equal). Computed with log-sum-exp (no underflow at high BED).
    """
    if validate:
        check_dose_gy("beds_gy", beds_gy)
        check_positive("alpha_per_gy", alpha_per_gy)
        if volumes is not None:
            check_nonnegative("volumes", volumes)
    beds = jnp.asarray(beds_gy, dtype=float)
    alpha = jnp.asarray(alpha_per_gy, dtype=float)
    weights = _weights(beds, volumes, axis)
    alpha_k = jnp.expand_dims(alpha, axis) if alpha.ndim else alpha
    log_mean = logsumexp(-alpha_k * beds, axis=axis, b=weights) - jnp.log(
        jnp.sum(weights, axis=axis)
    )
    return -log_mean / alpha

