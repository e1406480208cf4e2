"""Dose–volume (and BED–volume) histogram summaries.

A BVH is the same histogram built from voxel BEDs: every function here takes any per-voxel
quantity in Gy (absorbed dose, BED, EQD2). Definitions (ICRU Report 83, 2010):

* cumulative DVH V(d) = percentage of the volume receiving a dose >= d;
* D_x% = the largest dose d with V(d) >= x %: the minimum dose to the hottest x % of the volume
  (computed exactly on the voxels, no interpolation: the voxel dose at which the cumulative
  volume of the hottest voxels first reaches x %);
* V_{x Gy} = V(x), in percent.

Voxel / bin volumes are relative weights (default equal). The reductions act on the last axis;
leading axes (draws) broadcast. Jittable (sorting-based).
"""

from __future__ import annotations

import jax.numpy as jnp

from tdt._types import Levels, LevelsLike, Scalar, VoxelsLike, VoxelWeightsLike
from tdt.errors import InputError
from tdt.radiobiology._validation import check_finite, check_nonnegative, concrete


def _prepare(doses_gy, volumes, validate):
    if validate:
        check_finite("doses_gy", doses_gy)
        if volumes is not None:
            check_nonnegative("volumes", volumes)
    doses = jnp.asarray(doses_gy, dtype=float)
    if volumes is None:
        weights = jnp.ones_like(doses)
    else:
        weights = jnp.broadcast_to(jnp.asarray(volumes, dtype=float), doses.shape)
    return doses, weights


def dose_at_volume_percent(
    doses_gy: VoxelsLike,
    volume_percent,
    volumes: VoxelWeightsLike | None = None,
    *,
    validate=True,
):
    """D_x%: minimum dose (Gy) received by the hottest ``volume_percent`` % of the volume.

    ``volume_percent`` in (0, 100]; scalar or array (result gets its shape appended to the
    leading axes of ``doses_gy``). D100% = minimum dose; D50% ≈ median.
    """
    if validate:
        pct = concrete(volume_percent)
        if pct is not None and (not (pct > 0).all() or not (pct <= 100).all()):
            raise InputError(f"volume_percent: expected values in (0, 100], got {pct}")
    doses, weights = _prepare(doses_gy, volumes, validate)
    order = jnp.argsort(-doses, axis=-1)
    sorted_doses = jnp.take_along_axis(doses, order, axis=-1)
    sorted_weights = jnp.take_along_axis(weights, order, axis=-1)
    cumulative = jnp.cumsum(sorted_weights, axis=-1)
    cumulative = 100.0 * cumulative / cumulative[..., -1:]
    pct = jnp.asarray(volume_percent, dtype=float)
    # first index whose cumulative volume reaches pct (1e-12 absorbs rounding of the cumsum)
    flat_pct = pct.reshape(-1)
    index = jnp.sum(cumulative[..., None, :] < flat_pct[:, None] - 1e-12, axis=-1)
    index = jnp.minimum(index, doses.shape[-1] - 1)
    result = jnp.take_along_axis(sorted_doses, index, axis=-1)
    return result.reshape(doses.shape[:-1] + pct.shape)


def volume_percent_at_dose(
    doses_gy: VoxelsLike,
    dose_threshold_gy,
    volumes: VoxelWeightsLike | None = None,
    *,
    validate=True,
):
    """V_x: percentage of the volume receiving at least ``dose_threshold_gy`` Gy.

    ``dose_threshold_gy`` scalar or array (its shape is appended to the leading axes).
    """
    doses, weights = _prepare(doses_gy, volumes, validate)
    threshold = jnp.asarray(dose_threshold_gy, dtype=float)
    flat = threshold.reshape(-1)
    covered = jnp.sum(weights[..., None, :] * (doses[..., None, :] >= flat[:, None]), axis=-1)
    result = 100.0 * covered / jnp.sum(weights, axis=-1)[..., None]
    return result.reshape(doses.shape[:-1] + threshold.shape)


def cumulative_dvh(
    doses_gy: VoxelsLike,
    dose_grid_gy: LevelsLike,
    volumes: VoxelWeightsLike | None = None,
    *,
    validate=True,
) -> Levels:
    """Cumulative histogram V(d) in percent at every dose of ``dose_grid_gy`` (for plotting)."""
    return volume_percent_at_dose(doses_gy, dose_grid_gy, volumes, validate=validate)


def mean_dose(
    doses_gy: VoxelsLike,
    volumes: VoxelWeightsLike | None = None,
    *,
    validate=True,
) -> Scalar:
    """Volume-weighted mean dose (Gy) over the last axis."""
    doses, weights = _prepare(doses_gy, volumes, validate)
    return jnp.sum(doses * weights, axis=-1) / jnp.sum(weights, axis=-1)


def dvh_summary(
    doses_gy: VoxelsLike,
    volumes: VoxelWeightsLike | None = None,
    dose_levels_gy=(),
    *,
    validate=True,
) -> dict:
    """Standard summaries of a DVH (or BVH, from voxel BEDs), in Gy and percent.

    Keys: ``mean_gy``, ``min_gy``, ``max_gy``, ``D2_gy``, ``D50_gy``, ``D98_gy`` and one
    ``V{x}Gy_percent`` per dose level (e.g. ``V23Gy_percent``). Values are arrays with the
    leading axes of ``doses_gy``.
    """
    doses, weights = _prepare(doses_gy, volumes, validate)
    d = dose_at_volume_percent(doses, jnp.asarray([2.0, 50.0, 98.0]), weights, validate=False)
    out = {
        "mean_gy": mean_dose(doses, weights, validate=False),
        "min_gy": jnp.min(doses, axis=-1),
        "max_gy": jnp.max(doses, axis=-1),
        "D2_gy": d[..., 0],
        "D50_gy": d[..., 1],
        "D98_gy": d[..., 2],
    }
    for level in dose_levels_gy:
        key = f"V{float(level):g}Gy_percent"
        out[key] = volume_percent_at_dose(doses, level, weights, validate=False)
    return out
