"""Fast exact solution of the reduced linear model's generator for bolus schedules (sampler path).

Inside NUTS the forward model is evaluated (with its gradient) ~10⁵–10⁶ times. The generic
solver of :class:`tdt.pbpk.LinearModel` uses a batched ``expm`` of the (2n × 2n) Van Loan matrix;
under ``vmap`` (vectorised chains) JAX's scaling-and-squaring runs all ``max_squarings`` steps,
which costs ~ms per gradient. For *bolus* schedules the same generator has a cheaper exact
solution: the plasma ↔ organ block ``M`` of a star-shaped first-order exchange model is
similar to a symmetric matrix,

    S⁻¹ M S symmetric with S = diag(1, √(k_in,o / k_out,o)) — entries √(k_in,o k_out,o),

(the classical symmetrisation of reversible compartment systems, e.g. Jacquez, Compartmental
Analysis in Biology and Medicine, 3rd ed. 1996, ch. 5), so ``expm(M t) = S U e^{Λt} Uᵀ S⁻¹``
with ``eigh`` (real, differentiable), and the TIA to infinity is ``−M⁻¹ x₀`` per bolus
(linear superposition over administrations). Urine is absorbing and never feeds back, so it does
not enter ``M``. The generator itself comes from the model (``forward.generator(params)``): this
module is a second solver of the same equations, not a second model, and it is tested against
``forward.simulate`` (tests/inference/test_inference_fast_linear.py).

Only used when the model exposes ``generator`` / ``compartments`` / ``organs`` and the schedule
has no infusions; otherwise the model's own ``simulate`` runs.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def applicable(forward, schedule) -> bool:
    """True when the fast path can solve ``forward`` for ``schedule`` exactly."""
    if getattr(forward, "kind", None) != "reduced_linear":
        return False
    if not all(hasattr(forward, a) for a in ("generator", "compartments", "organs")):
        return False
    infusion = getattr(schedule, "infusion_h", None)
    if infusion is None:
        return False
    try:
        return bool(np.all(np.asarray(infusion) <= 0.0))
    except Exception:  # traced schedule: cannot decide statically
        return False


def solve_bolus(forward, params: dict, schedule, times_h, organs):
    """Activities (n_organs, n_times) MBq and TIA (n_organs,) MBq·h for bolus schedules.

    Same contract as :meth:`tdt.inference.TwinModel.simulate` (TIA from the first
    administration to infinity).
    """
    generator = forward.generator(params)
    n_blocks = 1 + len(forward.organs)  # plasma + organs (urine, infusion states excluded)
    m = generator[:n_blocks, :n_blocks]
    k_in = m[1:, 0]
    k_out = m[0, 1:]
    scale = jnp.concatenate([jnp.ones(1), jnp.sqrt(k_in / k_out)])
    sym = m * scale[None, :] / scale[:, None]
    sym = 0.5 * (sym + sym.T)
    eigenvalues, vectors = jnp.linalg.eigh(sym)
    # response to a unit bolus into plasma (state 0): x(τ) = S U diag(e^{wτ}) Uᵀ e_0
    weights = vectors[0, :]  # Uᵀ e_0 (S⁻¹ e_0 = e_0 since s_0 = 1)
    times = jnp.asarray(times_h)
    tau = times[None, :] - schedule.time_h[:, None]  # (n_admin, n_times)
    safe_tau = jnp.where(tau >= 0, tau, 0.0)
    modes = jnp.exp(eigenvalues[None, None, :] * safe_tau[..., None]) * weights  # (a, t, k)
    unit = jnp.einsum("ik,atk->ati", vectors, modes) * scale  # (a, t, i)
    unit = jnp.where((tau >= 0)[..., None], unit, 0.0)
    x = jnp.einsum("a,ati->ti", schedule.activity_mbq, unit)
    # ∫₀^∞ x = −M⁻¹ x₀ = S U diag(−1/w) Uᵀ e_0 per unit bolus
    unit_tia = (vectors @ (-weights / eigenvalues)) * scale
    tia = jnp.sum(schedule.activity_mbq) * unit_tia
    index = {c: i for i, c in enumerate(forward.compartments[:n_blocks])}
    rows = jnp.asarray([index[o] for o in organs])
    activity = x[:, rows].T
    ok = jnp.all(jnp.isfinite(activity)) & jnp.all(jnp.isfinite(tia))
    return activity, tia[rows], ok
