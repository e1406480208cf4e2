"""Gradient refinement of a plan: per-cycle activities by projected Adam ascent (JAX).

Started from the uniform plan; the exceedance probabilities are relaxed by a sigmoid and
penalised; afterwards :func:`_repair` makes the result exactly feasible by bisection on a common
scaling of the activities (empirical probabilities). Hand-written because optimistix has no
box-constrained minimiser and optax is not a dependency. See :mod:`tdt.twin.plan`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tdt.radiobiology import tcp_poisson_fixed_alpha
from tdt.twin._plan_eval import evaluate


def _gradient_refine(draws, x0, lo, hi, constraints, objective, tcp, steps=300, lr=0.02):
    """Projected Adam ascent on the relaxed problem (see module docstring); returns MBq."""
    n = len(x0)
    d, q = draws.coefficients(n)
    cidx = np.array([draws.index(c.organ) for c in constraints], dtype=int)
    is_bed = np.array([c.quantity == "bed" for c in constraints])
    limits = np.array([c.limit_gy for c in constraints], dtype=float)
    # aim a little inside each limit so the exact repair step rarely has to scale down
    targets = np.array([0.8 * c.max_probability for c in constraints], dtype=float)
    tidx = np.array([draws.organs.index(t) for t in draws.tumour_organs], dtype=int)
    n0 = (np.array([tcp.clonogens[t] for t in draws.tumour_organs], dtype=float)
          if objective == "tcp" else np.ones(len(tidx)))
    alpha = tcp.alpha_per_gy if objective == "tcp" else 1.0
    ev = evaluate(draws, x0, constraints=(), objective=objective, tcp=tcp)
    f0 = float(ev.objective_draws.mean()) or 1.0
    # the problem is symmetric in cycles with equal coefficients: start off the symmetric point
    # (front-loaded, which is where falling uptake makes activity most useful)
    ramp = np.linspace(0.1, -0.1, n) if n > 1 else np.zeros(1)
    z0 = np.clip(np.asarray(x0) * (1.0 + ramp) / hi, lo / hi, 1.0)
    z = _refine_core(jnp.asarray(d), jnp.asarray(q), jnp.asarray(draws.prior_dose_gy),
                     jnp.asarray(draws.prior_bed_gy), cidx, is_bed, limits, targets, tidx, n0,
                     float(alpha), float(f0), float(hi), float(lo / hi), jnp.asarray(z0),
                     float(lr), objective=objective, steps=int(steps))
    return np.asarray(z) * hi


@functools.partial(jax.jit, static_argnames=("objective", "steps"))
def _refine_core(d, q, pd, pb, cidx, is_bed, limits, targets, tidx, n0, alpha, f0, scale, zlo,
                 z0, lr, objective, steps):
    """The jitted optimiser (compiled once per shape / objective and cached by jax.jit)."""

    def per_draw_objective(bed):
        tb = bed[:, tidx]
        if objective == "tumour_bed":
            return tb.mean(axis=1)
        return tcp_poisson_fixed_alpha(tb, alpha, n0, axis=1, validate=False)

    def loss(z):
        x = z * scale
        lin = jnp.einsum("c,cdo->do", x, d)
        dose, bed = pd + lin, pb + lin + jnp.einsum("c,cdo->do", x**2, q)
        values = jnp.where(is_bed, bed[:, cidx], dose[:, cidx])
        prob = jax.nn.sigmoid((values - limits) / (0.03 * limits)).mean(axis=0)
        penalty = jnp.sum(jax.nn.relu(prob - targets) ** 2)
        return -per_draw_objective(bed).mean() / f0 + 1e3 * penalty

    grad = jax.grad(loss)

    def step(state, i):
        z, m, v = state
        g = grad(z)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g**2
        mhat = m / (1 - 0.9 ** (i + 1))
        vhat = v / (1 - 0.999 ** (i + 1))
        z = jnp.clip(z - lr * mhat / (jnp.sqrt(vhat) + 1e-12), zlo, 1.0)  # box projection
        return (z, m, v), None

    zeros = jnp.zeros_like(z0)
    (z, _, _), _ = jax.lax.scan(step, (z0, zeros, zeros), jnp.arange(steps))
    return z


def _feasible(draws, x, constraints) -> bool:
    ev = evaluate(draws, x, constraints)
    return all(ev.constraint_probabilities[c.label] <= c.max_probability + 1e-12 for c in constraints)


def _repair(draws, x, lo, hi, constraints):
    """Largest s with clip(s x, lo, hi) feasible (bisection on the exact probabilities).

    Every cumulative quantity is non-decreasing in s, so feasibility is monotone in s.
    """
    def at(s):
        return np.clip(s * x, lo, hi)

    s_max = hi / max(float(np.min(x)), 1e-300)
    if _feasible(draws, at(s_max), constraints):
        return at(s_max)
    if not _feasible(draws, at(0.0), constraints):
        return None
    a, b = 0.0, s_max
    for _ in range(50):
        mid = 0.5 * (a + b)
        a, b = (mid, b) if _feasible(draws, at(mid), constraints) else (a, mid)
    return at(a)
