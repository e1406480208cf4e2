"""Gradient refinement of a plan: per-cycle activities by projected Adam ascent (JAX).

Started from the uniform plan; the exceedance probabilities are relaxed by a sigmoid and
penalised; afterwards :func:`_repair` makes the result exactly feasible by bisection on a common
scaling of the activities (empirical probabilities). Hand-written because optimistix has no
box-constrained minimiser and optax is not a dependency. See :mod:`tdt.twin.plan`.

The same projected Adam also moves a **ligand amount per cycle** (:func:`_gradient_refine_ligand`,
the PBPK twin's per-cycle plan, :mod:`tdt.twin._plan_ligand_cycles`): the per-draw response
coefficients d(L), q(L) are then tabulated at log-spaced ligand amounts (exact PBPK solves) and
interpolated linearly in log L inside the relaxed objective (piecewise linear, differentiable
almost everywhere); u = (log L − log L_lo) / (log L_hi − log L_lo) in [0, 1] is optimised with
the scaled activities. The activity-only planner is the case of one table node with u fixed
(its weights are exactly 1, so its numbers are unchanged).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tdt.radiobiology import tcp_poisson_fixed_alpha
from tdt.twin._plan_eval import evaluate


def _relaxation(draws, x0, constraints, objective, tcp) -> dict:
    """The relaxed problem's fixed inputs (indices, limits, targets, TCP, scale f0)."""
    ev = evaluate(draws, x0, constraints=(), objective=objective, tcp=tcp)
    return {
        "cidx": np.array([draws.index(c.organ) for c in constraints], dtype=int),
        "is_bed": np.array([c.quantity == "bed" for c in constraints]),
        "limits": np.array([c.limit_gy for c in constraints], dtype=float),
        # aim a little inside each limit so the exact repair step rarely has to scale down
        "targets": np.array([0.8 * c.max_probability for c in constraints], dtype=float),
        "tidx": np.array([draws.organs.index(t) for t in draws.tumour_organs], dtype=int),
        "n0": (np.array([tcp.clonogens[t] for t in draws.tumour_organs], dtype=float)
               if objective == "tcp" else np.ones(len(draws.tumour_organs))),
        "alpha": float(tcp.alpha_per_gy if objective == "tcp" else 1.0),
        "f0": float(ev.objective_draws.mean()) or 1.0,
        "pd": jnp.asarray(draws.prior_dose_gy), "pb": jnp.asarray(draws.prior_bed_gy)}


def _start(x0, lo, hi):
    """Scaled start z0 = x0 / hi, moved off the symmetric point: the problem is symmetric in
    cycles with equal coefficients, so it starts front-loaded (where falling uptake makes
    activity most useful)."""
    n = len(x0)
    ramp = np.linspace(0.1, -0.1, n) if n > 1 else np.zeros(1)
    return np.clip(np.asarray(x0) * (1.0 + ramp) / hi, lo / hi, 1.0)


def _gradient_refine(draws, x0, lo, hi, constraints, objective, tcp, steps=300, lr=0.02):
    """Projected Adam ascent on the relaxed problem (see module docstring); returns MBq."""
    n = len(x0)
    d, q = draws.coefficients(n)
    fixed = _relaxation(draws, x0, constraints, objective, tcp)
    v0 = np.concatenate([_start(x0, lo, hi), np.zeros(n)])
    bounds = (np.concatenate([np.full(n, lo / hi), np.zeros(n)]),
              np.concatenate([np.ones(n), np.zeros(n)]))  # one node: u stays 0
    v = _refine_core(jnp.asarray(d)[None], jnp.asarray(q)[None], **fixed, scale=float(hi),
                     lower=jnp.asarray(bounds[0]), upper=jnp.asarray(bounds[1]),
                     v0=jnp.asarray(v0), lr=float(lr), objective=objective, steps=int(steps))
    return np.asarray(v[:n]) * hi


def _gradient_refine_ligand(draws, d_nodes, q_nodes, x0, u0, lo, hi, constraints, objective,
                            tcp, steps=300, lr=0.02):
    """Activities (MBq) and u (ligand position in [0, 1], module docstring) per cycle by the
    same projected Adam on the relaxed problem with d, q interpolated between the table nodes
    ``d_nodes``, ``q_nodes`` (n_nodes, n_cycles, n_draws, n_organs; nodes evenly spaced in
    log L). ``draws``: the exact response at the start (organ names, delivered dose and BED)."""
    n = len(x0)
    fixed = _relaxation(draws, x0, constraints, objective, tcp)
    v0 = np.concatenate([_start(x0, lo, hi), np.clip(np.asarray(u0, dtype=float), 0.0, 1.0)])
    bounds = (np.concatenate([np.full(n, lo / hi), np.zeros(n)]), np.ones(2 * n))
    v = _refine_core(jnp.asarray(d_nodes), jnp.asarray(q_nodes), **fixed, scale=float(hi),
                     lower=jnp.asarray(bounds[0]), upper=jnp.asarray(bounds[1]),
                     v0=jnp.asarray(v0), lr=float(lr), objective=objective, steps=int(steps))
    v = np.asarray(v)
    return v[:n] * hi, v[n:]


@functools.partial(jax.jit, static_argnames=("objective", "steps"))
def _refine_core(d_nodes, q_nodes, pd, pb, cidx, is_bed, limits, targets, tidx, n0, alpha, f0,
                 scale, lower, upper, v0, lr, objective, steps):
    """The jitted optimiser (compiled once per shape / objective and cached by jax.jit).
    v = (z: activity / scale, u: ligand position) per cycle, boxed in [lower, upper]."""
    n_nodes, n = d_nodes.shape[0], d_nodes.shape[1]

    def per_draw_objective(bed):
        tb = bed[:, tidx]
        if objective == "tumour_bed":
            return tb.mean(axis=1)
        return tcp_poisson_fixed_alpha(tb, alpha, n0, axis=1, validate=False)

    def loss(v):
        x, u = v[:n] * scale, v[n:]
        # linear interpolation weights of each cycle's u between the nodes (one node: 1)
        w = jax.nn.relu(1.0 - jnp.abs(u[:, None] * (n_nodes - 1) - jnp.arange(n_nodes)))
        d = jnp.einsum("cj,jcdo->cdo", w, d_nodes)
        q = jnp.einsum("cj,jcdo->cdo", w, q_nodes)
        lin = jnp.einsum("c,cdo->do", x, d)
        dose, bed = pd + lin, pb + lin + jnp.einsum("c,cdo->do", x**2, q)
        values = jnp.where(is_bed, bed[:, cidx], dose[:, cidx])
        prob = jax.nn.sigmoid((values - limits) / (0.03 * limits)).mean(axis=0)
        penalty = jnp.sum(jax.nn.relu(prob - targets) ** 2)
        return -per_draw_objective(bed).mean() / f0 + 1e3 * penalty

    grad = jax.grad(loss)

    def step(state, i):
        v, m, s = state
        g = grad(v)
        m = 0.9 * m + 0.1 * g
        s = 0.999 * s + 0.001 * g**2
        mhat = m / (1 - 0.9 ** (i + 1))
        shat = s / (1 - 0.999 ** (i + 1))
        v = jnp.clip(v - lr * mhat / (jnp.sqrt(shat) + 1e-12), lower, upper)  # box projection
        return (v, m, s), None

    zeros = jnp.zeros_like(v0)
    (v, _, _), _ = jax.lax.scan(step, (v0, zeros, zeros), jnp.arange(steps))
    return v


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
