"""The result of ``model.simulate``: activities, time-integrated activities and solver status."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax import Array


class Simulation(eqx.Module):
    """Activities per compartment at the requested times and TIAs integrated by the solver.

    A pytree (equinox Module), so it can be returned from ``jax.jit`` / ``jax.vmap``; under
    ``vmap`` every array gains a leading axis (draws / virtual patients).

    Attributes
    ----------
    times_h: the requested times (h), shape (n_times,).
    activity_mbq: compartment -> activity (MBq) at ``times_h``, shape (n_times,). Includes
        ``plasma`` and ``urine`` (excreted activity, which keeps decaying) besides the organs.
    tia_mbq_h: compartment -> time-integrated activity (MBq·h) from the first administration to
        infinity, integrated by the solver itself (augmented state; exact for linear models, plus
        the analytic decay tail after ``tail_start_h`` for nonlinear ones).
    tia_by_administration_mbq_h: compartment -> TIA (MBq·h) of each inter-administration window,
        shape (n_administrations,): from administration k to administration k+1 (last: to
        infinity). Sums to ``tia_mbq_h``.
    decayed_mbq: activity (MBq) that has decayed by each time (λ ∫ total activity), (n_times,).
    administered_mbq: activity administered by each time (MBq), shape (n_times,); for an infusion
        the whole activity counts from its start and the not-yet-infused part is
        ``in_syringe_mbq``. Mass balance: Σ activity_mbq + in_syringe_mbq + decayed_mbq =
        administered_mbq.
    in_syringe_mbq: activity still in the infusion line (MBq), shape (n_times,).
    ok: True when the solve succeeded and every output is finite. A failed solve gives
        ``ok = False`` (never an exception inside jit); outputs are then not to be trusted.
    result_code: 0 for success; otherwise the solver's code (diffrax ``RESULTS`` index) or -1 for
        non-finite output.
    """

    times_h: Array
    activity_mbq: dict[str, Array]
    tia_mbq_h: dict[str, Array]
    tia_by_administration_mbq_h: dict[str, Array]
    decayed_mbq: Array
    administered_mbq: Array
    in_syringe_mbq: Array
    ok: Array
    result_code: Array
    compartments: tuple[str, ...] = eqx.field(static=True)

    def total_activity_mbq(self):
        """Σ over compartments of ``activity_mbq`` (MBq), shape (..., n_times)."""
        return sum(self.activity_mbq[name] for name in self.compartments)

    def mass_balance_residual(self):
        """(Σ activity + in syringe + decayed − administered) / total administered; ~1e-12."""
        total = self.total_activity_mbq() + self.in_syringe_mbq + self.decayed_mbq
        scale = jnp.max(self.administered_mbq, axis=-1, keepdims=True)
        return (total - self.administered_mbq) / scale
