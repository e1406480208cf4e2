"""Multi-cycle schedules and tumour repopulation.

Assumption (stated, and tested): cycles are far apart compared with the repair half-time
(weeks vs hours), so sublethal damage from one cycle is fully repaired before the next and the
cross term of the G-factor between cycles vanishes; then BED is additive over cycles:
BED_total = Σ_c BED_c. (When cycles overlap, use :func:`tdt.radiobiology.bed` on the whole
dose-rate history, which has no such assumption.)

Repopulation (tumours; Dale, Phys Med Biol 1996;41:1871; Fowler, Br J Radiol 1989;62:679):

    BED = Σ_c BED_c - ln 2 · max(T - T_k, 0) / (alpha · T_pot)

with T the overall treatment time (h), T_k the kick-off time of accelerated repopulation (h),
T_pot the potential doubling time (h) and alpha (1/Gy) the LQ alpha.
"""

from __future__ import annotations

import jax.numpy as jnp

from tdt._types import Scalar, ScalarLike
from tdt.errors import InputError
from tdt.radiobiology._closed_forms import bed_monoexponential, bed_uptake_washout
from tdt.radiobiology._validation import check_nonnegative, check_positive
from tdt.units import half_life_to_rate


def repopulation_bed(
    overall_time_h: ScalarLike,
    potential_doubling_time_h: ScalarLike,
    alpha_per_gy: ScalarLike,
    kickoff_time_h: ScalarLike = 0.0,
    *,
    validate=True,
) -> Scalar:
    """BED (Gy) lost to repopulation: ln 2 · max(T - T_k, 0) / (alpha · T_pot) (>= 0)."""
    if validate:
        check_nonnegative("overall_time_h", overall_time_h)
        check_positive("potential_doubling_time_h", potential_doubling_time_h)
        check_positive("alpha_per_gy", alpha_per_gy)
        check_nonnegative("kickoff_time_h", kickoff_time_h)
    elapsed = jnp.maximum(
        jnp.asarray(overall_time_h, dtype=float) - jnp.asarray(kickoff_time_h, dtype=float), 0.0
    )
    rate_per_h = half_life_to_rate(jnp.asarray(potential_doubling_time_h, dtype=float))
    return rate_per_h * elapsed / jnp.asarray(alpha_per_gy, dtype=float)


def bed_multicycle(
    doses_gy,
    alpha_beta_gy: ScalarLike,
    repair_half_time_h: ScalarLike,
    effective_half_life_h: ScalarLike,
    *,
    uptake_half_time_h: ScalarLike | None = None,
    overall_time_h: ScalarLike | None = None,
    potential_doubling_time_h: ScalarLike | None = None,
    alpha_per_gy: ScalarLike | None = None,
    kickoff_time_h: ScalarLike = 0.0,
    validate=True,
) -> Scalar:
    """Total BED (Gy) of a multi-cycle schedule, BED summed over cycles (see module docstring).

    Parameters
    ----------
    doses_gy : array (..., n_cycles)
        Absorbed dose of each cycle (Gy, >= 0); leading axes (draws) broadcast.
    alpha_beta_gy, repair_half_time_h : array (...)
        LQ parameters of the tissue.
    effective_half_life_h : array (...) or (..., n_cycles)
        Effective half-life of the dose rate in each cycle (h).
    uptake_half_time_h : optional, same shapes
        If given, each cycle uses :func:`bed_uptake_washout` instead of instant uptake.
    overall_time_h, potential_doubling_time_h, alpha_per_gy, kickoff_time_h : optional
        Repopulation correction (tumours); give all of the first three to apply it.
    """
    if validate:
        check_nonnegative("doses_gy", doses_gy)
    doses = jnp.asarray(doses_gy, dtype=float)
    ab = jnp.asarray(alpha_beta_gy, dtype=float)[..., None]
    t_rep = jnp.asarray(repair_half_time_h, dtype=float)[..., None]
    t_eff = jnp.asarray(effective_half_life_h, dtype=float)
    if t_eff.ndim < doses.ndim:
        t_eff = t_eff[..., None]
    if uptake_half_time_h is None:
        per_cycle = bed_monoexponential(doses, ab, t_rep, t_eff, validate=validate)
    else:
        t_up = jnp.asarray(uptake_half_time_h, dtype=float)
        if t_up.ndim < doses.ndim:
            t_up = t_up[..., None]
        per_cycle = bed_uptake_washout(doses, ab, t_rep, t_up, t_eff, validate=validate)
    total = jnp.sum(per_cycle, axis=-1)
    repop = (overall_time_h, potential_doubling_time_h, alpha_per_gy)
    if any(v is not None for v in repop):
        if any(v is None for v in repop):
            raise InputError(
                "repopulation: give overall_time_h, potential_doubling_time_h and alpha_per_gy "
                f"together (got {overall_time_h!r}, {potential_doubling_time_h!r}, "
                f"{alpha_per_gy!r})"
            )
        total = total - repopulation_bed(
            overall_time_h, potential_doubling_time_h, alpha_per_gy, kickoff_time_h,
            validate=validate,
        )
    return total
