"""The scenario explorer's jitted evaluator: every posterior draw of one scenario in one call.

Pure JAX; BED, EQD2, NTCP, TCP and repopulation are :mod:`tdt.radiobiology`'s functions (called
with ``validate=False`` inside the jit). The model is stated in :mod:`tdt.widgets._scenario`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from tdt.radiobiology import (
    bed_monoexponential,
    eqd2,
    ntcp_dose,
    ntcp_lkb,
    tcp_poisson,
    tcp_poisson_fixed_alpha,
)
from tdt.units import half_life_to_rate
from tdt.widgets._scenario_types import MAX_CYCLES, QUANTILES


@functools.partial(jax.jit, static_argnames=("max_cycles", "lesion_index", "with_delivered"))
def scenario_core(
    dose_per_mbq_gy,
    effective_half_life_h,
    ligand_scale,
    activity_mbq,
    n_cycles,
    interval_h,
    alpha_beta_gy,
    repair_half_time_h,
    bed_limit_gy,
    dose_limit_gy,
    ntcp_td50_gy,
    ntcp_m,
    ntcp_metric,
    ntcp_alpha_beta_gy,
    lesion,
    tumour_alpha_per_gy,
    tumour_alpha_sd_per_gy,
    tumour_clonogens,
    repopulation_gy_per_h,
    delivered_dose_gy=0.0,
    delivered_bed_gy=0.0,
    max_cycles: int = MAX_CYCLES,
    lesion_index: tuple[int, ...] = (),
    with_delivered: bool = False,
):
    """All draws at once. Shapes: per-draw inputs (n_draws, n_regions); per-region (n_regions,).

    Returns a dict of arrays (see :class:`Outcomes`); ``repopulation_gy_per_h`` is the lesion BED
    lost per hour of overall treatment time, ln2/(α T_pot) (0 disables repopulation).
    ``delivered_dose_gy`` / ``delivered_bed_gy`` (n_draws, n_regions): past cycles, added to the
    cumulative quantities (set ``with_delivered`` when they are not zero).
    """
    dose_cycle = activity_mbq * dose_per_mbq_gy * ligand_scale  # (n, r) Gy
    bed_cycle = bed_monoexponential(dose_cycle, alpha_beta_gy[None, :],
                                    repair_half_time_h[None, :], effective_half_life_h,
                                    validate=False)
    k = jnp.arange(1, max_cycles + 1, dtype=dose_cycle.dtype)  # (K,)
    overall_time_h = (k - 1.0) * interval_h
    repop = jnp.where(lesion[None, :], repopulation_gy_per_h * overall_time_h[:, None], 0.0)
    last = jnp.clip(n_cycles - 1, 0, max_cycles - 1)
    n_given = k[last]
    dose_total = delivered_dose_gy + n_given * dose_cycle
    bed_total = jnp.maximum(delivered_bed_gy + n_given * bed_cycle - repop[last][None, :], 0.0)
    q_dose, cum_dose_q, cum_bed_q = _cumulative_bands(
        dose_cycle, bed_cycle, k, repop, delivered_dose_gy, delivered_bed_gy, with_delivered)
    p_exceed, limit = _exceedance(dose_total, bed_total, bed_limit_gy, dose_limit_gy)
    ntcp = _mean_ntcp(dose_total, bed_total, ntcp_td50_gy, ntcp_m, ntcp_metric,
                      ntcp_alpha_beta_gy)
    tcp = jnp.full(bed_total.shape[1:], jnp.nan)
    if lesion_index:
        index = jnp.asarray(lesion_index)
        tcp = tcp.at[index].set(_mean_tcp(bed_total[:, index], tumour_alpha_per_gy,
                                          tumour_alpha_sd_per_gy, tumour_clonogens))
    # bound on neglected inter-cycle interaction: dose-rate tail left at the next administration
    tail = jnp.exp(-half_life_to_rate(effective_half_life_h) * interval_h)
    overlap = jnp.where(n_cycles > 1, jnp.max(tail), 0.0)
    return {
        "dose_per_cycle_gy": q_dose,
        "dose_total_gy": cum_dose_q[:, last],
        "bed_total_gy": cum_bed_q[:, last],
        "eqd2_total_gy": eqd2(cum_bed_q[:, last], alpha_beta_gy[None, :], validate=False),
        "cumulative_bed_gy": cum_bed_q,
        "cumulative_dose_gy": cum_dose_q,
        "p_exceed": p_exceed,
        "limit_gy": limit,
        "ntcp": ntcp,
        "tcp": tcp,
        "bed_total_draws_gy": bed_total,
        "overlap_bound": overlap,
    }


def _cumulative_bands(dose_cycle, bed_cycle, k, repop, delivered_dose_gy, delivered_bed_gy,
                      with_delivered):
    """Quantiles (3, r) of the per-cycle dose and (3, K, r) of cumulative dose and BED."""
    quantiles = jnp.asarray(QUANTILES)
    q_dose = jnp.quantile(dose_cycle, quantiles, axis=0)  # (3, r)
    if with_delivered:
        # past cycles differ per draw: sort the cumulative draws of every cycle
        cum_dose_q = jnp.quantile(delivered_dose_gy[None] + k[:, None, None] * dose_cycle[None],
                                  quantiles, axis=1)
        cum_bed_q = jnp.quantile(
            jnp.maximum(delivered_bed_gy[None] + k[:, None, None] * bed_cycle[None]
                        - repop[:, None, :], 0.0), quantiles, axis=1)
    else:
        # Quantiles commute with increasing affine maps (q(aX + b) = a q(X) + b, a > 0, also for
        # linearly interpolated sample quantiles) and with the monotone clip at 0 except where a
        # quantile straddles 0; so cumulative bands follow from one sort of the per-cycle draws
        # instead of one per cycle (the sort dominates the cost).
        q_bed = jnp.quantile(bed_cycle, quantiles, axis=0)
        cum_dose_q = k[None, :, None] * q_dose[:, None, :]  # (3, K, r)
        cum_bed_q = jnp.maximum(k[None, :, None] * q_bed[:, None, :] - repop[None], 0.0)
    return q_dose, cum_dose_q, cum_bed_q


def _exceedance(dose_total, bed_total, bed_limit_gy, dose_limit_gy):
    """Per region: fraction of draws above its BED limit, else its dose limit (nan: none)."""
    dtype = bed_total.dtype
    over_bed = jnp.where(jnp.isnan(bed_limit_gy), jnp.nan,
                         jnp.mean((bed_total > bed_limit_gy[None, :]).astype(dtype), axis=0))
    over_dose = jnp.mean((dose_total > dose_limit_gy[None, :]).astype(dtype), axis=0)
    p_exceed = jnp.where(jnp.isnan(bed_limit_gy),
                         jnp.where(jnp.isnan(dose_limit_gy), jnp.nan, over_dose), over_bed)
    limit = jnp.where(jnp.isnan(bed_limit_gy), dose_limit_gy, bed_limit_gy)
    return p_exceed, limit


def _mean_ntcp(dose_total, bed_total, ntcp_td50_gy, ntcp_m, ntcp_metric, ntcp_alpha_beta_gy):
    """Posterior-mean LKB NTCP per region (uniform organ dose; nan where no parameter set)."""
    has_ntcp = ~jnp.isnan(ntcp_td50_gy)
    # the dose the LKB parameter set is defined on: EQD2 (its own α/β), BED or absorbed dose
    dose = ntcp_dose(ntcp_metric[None, :], bed_total, dose_total, ntcp_alpha_beta_gy[None, :])
    # uniform organ dose: the gEUD equals the dose, so the volume parameter n plays no role
    ntcp_draws = ntcp_lkb(dose, jnp.where(has_ntcp, ntcp_td50_gy, 1.0)[None, :],
                          jnp.where(has_ntcp, ntcp_m, 1.0)[None, :], validate=False)
    return jnp.where(has_ntcp, jnp.mean(ntcp_draws, axis=0), jnp.nan)


def _mean_tcp(lesion_bed, alpha_per_gy, alpha_sd_per_gy, clonogens):
    """Posterior-mean Poisson TCP per lesion (Webb & Nahum 1993), (n_lesions,)."""
    # No α spread: the single-α closed form; tcp_poisson's quadrature (needed only with a
    # spread) costs ~100× more and would break the interactive latency budget.
    tcp_draws = jax.lax.cond(
        alpha_sd_per_gy > 0,
        lambda: tcp_poisson(lesion_bed, alpha_per_gy, clonogens, alpha_sd_per_gy=alpha_sd_per_gy,
                            validate=False),
        lambda: tcp_poisson_fixed_alpha(lesion_bed, alpha_per_gy, clonogens, validate=False),
    )
    return jnp.mean(tcp_draws, axis=0)
