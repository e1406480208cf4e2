"""Posterior-predictive TACs and TIAs of a receptor-PBPK posterior by the sampler's structured
bolus solve (the one home of that prediction; :meth:`tdt.inference.Posterior.predict` calls it
whenever the fast path applies: a grid-method PBPK and a bolus schedule).

The general grid solver of the PBPK model integrates the full augmented state (hot, total,
urine and the running integrals) and costs seconds per draw at ~50 late time points (one matrix
exponential of the whole state per time). The sampler's solve
(:func:`tdt.inference._fast_pbpk.solve_boluses`: total peptide of the plasma and tissue blocks,
hot = (A/L) e^{-λt} total, exact linear tail) gives every body compartment at a fraction of
that; the excreted urine follows by mass balance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError
from tdt.pbpk import EXCRETED_COMPARTMENTS

__all__ = ["EXCRETED", "bolus_pbpk_predict"]

#: compartments whose activity has left the body (not part of the whole-body TIA): one home,
#: :data:`tdt.pbpk.EXCRETED_COMPARTMENTS`
EXCRETED = EXCRETED_COMPARTMENTS


def bolus_pbpk_predict(twin, log_theta, schedule, times_h,
                       organs: tuple[str, ...]) -> dict:
    """:meth:`Posterior.predict`'s output for the draws ``log_theta`` (n, n_params) of a
    grid-method receptor PBPK ``twin`` (a :class:`tdt.inference.TwinModel`) after the boluses
    of ``schedule``, at ``times_h`` (h), for ``organs``: activities (MBq), TIAs (MBq·h) to
    infinity, the solver's flag and the whole-body TIA (MBq·h).

    Every compartment but the excreted urine is solved (their TIAs sum to the whole-body TIA,
    as in :meth:`Posterior.predict`); the urine activity (MBq) follows by mass balance —
    the activity given and decayed, Σ_k A_k e^{-λ(t − t_k)} [t ≥ t_k], minus the body's —
    and its TIA = Σ_k A_k / λ − whole-body TIA.
    """
    forward = twin.forward
    body = tuple(c for c in forward.layout.reported if c not in EXCRETED)
    unknown = [o for o in organs if o not in body and o not in EXCRETED]
    if unknown:
        raise InputError(f"organs: {unknown} are not compartments of {forward.name}; "
                         f"expected some of {forward.layout.reported}")
    times = jnp.asarray(np.asarray(times_h, dtype=float))

    def one(lt):
        return twin.simulate(lt, schedule, times, body)

    activity, tia, ok = (np.asarray(x) for x in jax.jit(jax.vmap(one))(
        jnp.asarray(log_theta, dtype=float)))
    act = {c: activity[:, i] for i, c in enumerate(body)}
    integral = {c: tia[:, i] for i, c in enumerate(body)}
    total_body = tia.sum(axis=1)
    if "urine" in forward.layout.reported:
        lam = float(forward.decay_constant_per_h)
        t = np.asarray(times)[:, None]
        t_k = np.asarray(schedule.time_h)[None, :]
        a_k = np.asarray(schedule.activity_mbq)[None, :]
        given = np.sum(np.where(t >= t_k, a_k * np.exp(-lam * np.maximum(t - t_k, 0.0)), 0.0),
                       axis=1)
        act["urine"] = given[None, :] - activity.sum(axis=1)
        integral["urine"] = float(np.sum(a_k)) / lam - total_body
    out = {"times_h": np.asarray(times),
           "activity_mbq": {o: act[o] for o in organs},
           "tia_mbq_h": {o: integral[o] for o in organs},
           "ok": ok.astype(bool)}
    if "urine" in forward.layout.reported:
        out["total_body_tia_mbq_h"] = total_body
    return out
