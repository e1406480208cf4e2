"""A tiny bi-exponential JAX forward model for the inference tests (tdt.pbpk protocol).

Organ o after a bolus A at t0: A_o(t) = A f_o (exp(-(kb_o+λ)τ) - exp(-(ka_o+λ)τ)), τ = t - t0,
with TIA = A f_o (1/(kb_o+λ) - 1/(ka_o+λ)) (elementary integral). Sums over administrations.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp

LAMBDA_LU177 = 0.6931471805599453 / (6.647 * 24.0)


class BiExponential:
    def __init__(self, organs=("kidneys",), defaults=None):
        self.organs = tuple(organs)
        self.parameter_names = tuple(
            f"{p}_{o}" for o in self.organs for p in ("f", "ka", "kb"))
        base = {"f": 0.04, "ka": 0.5, "kb": 0.02}
        self._defaults = {f"{p}_{o}": base[p] for o in self.organs for p in base}
        if defaults:
            self._defaults.update(defaults)

    def default_params(self):
        return dict(self._defaults)

    def simulate(self, params, schedule, times_h):
        t = jnp.asarray(times_h)
        lam = LAMBDA_LU177
        activity, tia = {}, {}
        for o in self.organs:
            f, ka, kb = params[f"f_{o}"], params[f"ka_{o}"], params[f"kb_{o}"]
            tau = t[None, :] - schedule.time_h[:, None]
            a = schedule.activity_mbq[:, None] * f * (
                jnp.exp(-(kb + lam) * tau) - jnp.exp(-(ka + lam) * tau))
            activity[o] = jnp.sum(jnp.where(tau >= 0, a, 0.0), axis=0)
            tia[o] = jnp.sum(schedule.activity_mbq) * f * (1 / (kb + lam) - 1 / (ka + lam))
        return SimpleNamespace(activity_mbq=activity, tia_mbq_h=tia, ok=jnp.asarray(True))
