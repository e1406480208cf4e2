"""Fast solution of a receptor PBPK for one bolus (the sampler path of the PBPK fit).

Inside NUTS the forward model and its gradient are evaluated ~10⁵ times. The general grid solver
of :mod:`tdt.pbpk._grid_solver` integrates the whole state of :mod:`tdt.pbpk._description`
(total peptide, hot activity, infusion line, integrals: 64 states for PSMA-617 with two lesions)
with a dense LU per step; one gradient costs ~0.1 s (0.85 s for four vectorised chains). For the
case that matters for fitting — *one bolus into an empty body* — three exact facts make it
~400× cheaper (measured in benchmarks/bench_inference.py; figures in docs/inference.md):

1. **Hot = labelled fraction × decay × total.** The hot activity moves with the same fluxes as
   the total peptide (linear in the moved amount given the receptor occupancy) and decays with λ
   (description.py). Both start as the same bolus, so with c = A₀ / L₀ (MBq per nmol injected)

       hot(t) = c · e^{−λt} · total(t)   exactly,

   since c e^{−λt} total solves the hot equation with the hot initial condition. Only the total
   peptide is integrated (24 states instead of 64); urine is a sink and never feeds back, so it
   is dropped. The TIA to ``linear_after_h`` is a Hermite quadrature of c e^{−λt} total over the
   solver's grid (values and exact derivatives at the grid points, no extra states).
2. **Arrowhead Jacobian.** Tissues exchange only with plasma (star topology), so after ordering
   the state as plasma + per-tissue blocks (free, bound, internalised; one state for a tissue
   without receptors, padded to 3), the Jacobian is an arrowhead matrix with 3×3 diagonal
   blocks. The Rosenbrock systems (I − hγJ) k = r are solved by block elimination: 3×3 inverses
   in closed form (adjugate) and a scalar Schur complement for plasma — elementwise arrays only,
   no LAPACK calls, which vectorise over chains at no extra cost (a batched LU on the CPU loops
   over the batch). The linear part of the right-hand side is the model's own
   :func:`tdt.pbpk._description.fluxes` (its Jacobian at zero occupancy, by ``jax.jacfwd``); the
   only nonlinearity, receptor occupancy, is the bilinear −k_on C_int B term added here. Tests
   check the right-hand side against ``fluxes`` itself.
3. **Checkpointed steps.** The reverse pass recomputes each step's stages
   (``jax.checkpoint``) instead of storing them: 2.8 → 1.0 ms per gradient (measured).

The integration scheme is the one of :mod:`tdt.pbpk._grid_solver` — ROS34PW2 on the same
geometric grid (the forward model's ``grid_steps``, ``grid_first_step_h``, ``linear_after_h``),
then, after ``linear_after_h``, the exact linear tail with the occupancy frozen — so the accuracy
is that of ``method="grid"`` (tests: against the adaptive Kvaerno5 reference and against the
grid solver). Differences from ``fluxes``: the free receptors are R − B, not max(R − B, 0) (equal
whenever B ≤ R, which the exact solution keeps).

Why hand-written: diffrax 0.7 has neither a Rosenbrock method nor structured linear solves; the
structure (star topology) is what makes the sampler fast, and no library knows it.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from tdt.pbpk import ROS34PW2, fluxes, frozen_occupancy_propagate, geometric_grid, total_ligand_nmol

__all__ = ["applicable", "solve_bolus"]

#: Sub-states per tissue block: free, bound, internalised (a tissue without receptors uses the
#: first slot only; the others are inert padding).
BLOCK = 3


def applicable(forward, schedule) -> bool:
    """True when ``forward`` is a receptor PBPK with ``method="grid"`` and ``schedule`` is one
    bolus (the case :func:`solve_bolus` solves)."""
    if getattr(forward, "kind", None) != "pbpk" or getattr(forward, "method", None) != "grid":
        return False
    if not hasattr(forward, "layout"):
        return False
    infusion = getattr(schedule, "infusion_h", None)
    if infusion is None:
        return False
    try:
        infusion = np.asarray(infusion)
    except Exception:  # traced schedule: cannot decide statically
        return False
    return infusion.shape == (1,) and bool(infusion[0] <= 0.0)


@lru_cache(maxsize=32)
def _blocks(layout):
    """Static index maps of ``layout``: (n_tissues, 3) sub-state indices and validity mask."""
    index, mask = [], []
    for tissue in layout.tissues:
        free = layout.sub_index(f"{tissue.name}:free")
        if tissue.receptors:
            index.append([free, layout.sub_index(f"{tissue.name}:bound"),
                          layout.sub_index(f"{tissue.name}:internalised")])
            mask.append([1.0, 1.0, 1.0])
        else:
            index.append([free, free, free])
            mask.append([1.0, 0.0, 0.0])
    return np.asarray(index), np.asarray(mask)


def _inverse_3x3(m):
    """Inverse of (..., 3, 3) matrices by the adjugate (elementwise; Cramer's rule)."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    g, h, i = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    c00, c01, c02 = e * i - f * h, -(d * i - f * g), d * h - e * g
    det = a * c00 + b * c01 + c * c02
    adj = jnp.stack([jnp.stack([c00, -(b * i - c * h), b * f - c * e], -1),
                     jnp.stack([c01, a * i - c * g, -(a * f - c * d)], -1),
                     jnp.stack([c02, -(a * h - b * g), a * e - b * d], -1)], -2)
    return adj / det[..., None, None]


class _Arrowhead:
    """The total-peptide system in block form: y = (P plasma, X (n_tissues, 3)).

    f(y) = A y + bilinear occupancy term; A (the model's ``fluxes`` Jacobian at zero occupancy)
    is stored as a00 (plasma), row (dP/dX), col (dX/dP) and the 3×3 blocks D.
    """

    def __init__(self, layout, params):
        n = layout.n_sub
        m = n - 1  # urine last, excluded
        index, mask = _blocks(layout)
        self.index, self.mask_np = index, mask
        self.mask = jnp.asarray(mask)

        def linear(amount):
            full = jnp.concatenate([amount, jnp.zeros(1)])
            return fluxes(layout, params, jnp.zeros(n), full)[:m]

        a = jax.jacfwd(linear)(jnp.zeros(m))
        self.dense = a
        self.a00 = a[0, 0]
        self.row = a[0][index] * self.mask
        self.col = a[:, 0][index] * self.mask
        self.d = a[index[:, :, None], index[:, None, :]] * self.mask[:, :, None] \
            * self.mask[:, None, :]
        # bilinear occupancy term: binding loses k_on C_int B = w F B, w = k_on / (f_int V)
        self.w = jnp.stack([
            params["kon"] / (params[f"fint_{t.name}"] * params[f"V_{t.name}"]) if t.receptors
            else jnp.zeros(()) for t in layout.tissues])

    def f(self, p, x):
        g = -self.w * x[:, 0] * x[:, 1]
        dp = self.a00 * p + jnp.sum(self.row * x)
        dx = self.col * p + (self.d * x[:, None, :]).sum(-1)
        return dp, dx.at[:, 1].add(g).at[:, 0].add(-g)

    def jac_blocks(self, x):
        """Diagonal blocks of the Jacobian at state x (the plasma row/column are constant)."""
        w = self.w
        return (self.d.at[:, 1, 0].add(-w * x[:, 1]).at[:, 1, 1].add(-w * x[:, 0])
                .at[:, 0, 0].add(w * x[:, 1]).at[:, 0, 1].add(w * x[:, 0]))

    def frozen_blocks(self, x):
        """Diagonal blocks of the system with the receptor occupancy frozen at state x (the
        hot-activity equations, linear: free receptors R − B(x))."""
        w = self.w
        return self.d.at[:, 1, 0].add(-w * x[:, 1]).at[:, 0, 0].add(w * x[:, 1])

    def to_flat(self, p, x):
        """Block state -> flat sub-state vector (n_sub − 1,), layout order."""
        flat = jnp.zeros(self.dense.shape[0]).at[0].set(p)
        rows, cols = np.nonzero(self.mask_np)
        return flat.at[self.index[rows, cols]].set(x[rows, cols])


def _factor(corner, row, col, blocks, mask):
    """Block elimination of the arrowhead matrix [[corner, row], [col, blocks]] (blocks padded
    to the identity outside ``mask``): 3×3 inverses, the eliminated plasma column and the
    scalar Schur complement of plasma."""
    eye3 = jnp.eye(BLOCK)
    blocks = blocks * mask[:, :, None] * mask[:, None, :] + eye3 * (1.0 - mask)[:, :, None]
    inverse = _inverse_3x3(blocks)
    elim = (inverse * (col * mask)[:, None, :]).sum(-1)
    schur = corner - jnp.sum(row * elim)
    return inverse, elim, schur


def _block_solve(factors, row, rp, rx):
    """Solve the factored arrowhead system for the right-hand side (rp, rx)."""
    inverse, elim, schur = factors
    q = (inverse * rx[:, None, :]).sum(-1)
    kp = (rp - jnp.sum(row * q)) / schur
    return kp, q - elim * kp


def _rosenbrock(system: _Arrowhead, p0, steps):
    """ROS34PW2 (grid_solver.ROS34PW2) on the block system from (P = p0, X = 0) over ``steps``
    (h; zero steps are the identity); returns the states after every step, (P (n,), X (n, T, 3)).
    """
    tab = ROS34PW2
    eye3 = jnp.eye(BLOCK)

    def step(state, h):
        p, x = state
        hg = h * tab["gamma"]
        dj = system.jac_blocks(x)
        m_row = -hg * system.row
        factors = _factor(1.0 - hg * system.a00, m_row, -hg * system.col, eye3 - hg * dj,
                          system.mask)
        ks = []
        for i in range(4):
            ap, ax = p, x
            cp, cx = 0.0, jnp.zeros_like(x)
            for j in range(i):
                alpha, gamma_ij = tab["alpha"][i][j], tab["gammas"][i][j]
                ap, ax = ap + alpha * ks[j][0], ax + alpha * ks[j][1]
                cp, cx = cp + gamma_ij * ks[j][0], cx + gamma_ij * ks[j][1]
            fp, fx = system.f(ap, ax)
            rp, rx = h * fp, h * fx
            if i:  # + h J Σ γ_ij k_j
                rp = rp + h * (system.a00 * cp + jnp.sum(system.row * cx))
                rx = rx + h * (system.col * cp + (dj * cx[:, None, :]).sum(-1))
            ks.append(_block_solve(factors, m_row, rp, rx))  # (I − hγJ) k_i = r_i
        new = tuple(s + sum(b * k[q] for b, k in zip(tab["b"], ks, strict=True))
                    for q, s in enumerate(state))
        return new, new

    state0 = (jnp.asarray(p0, dtype=float), jnp.zeros((system.mask.shape[0], BLOCK)))
    return jax.lax.scan(jax.checkpoint(step), state0, steps)[1]


def _integral(times, values, slopes):
    """∫ over ``times`` of a function given its values and derivatives there (n, ...): the
    trapezoid rule with the Euler–Maclaurin end correction per interval (exact for cubics;
    Hermite quadrature, e.g. Davis & Rabinowitz, Methods of Numerical Integration, §2.9)."""
    h = jnp.diff(times).reshape((-1,) + (1,) * (values.ndim - 1))
    return jnp.sum(h / 2.0 * (values[1:] + values[:-1])
                   + h**2 / 12.0 * (slopes[:-1] - slopes[1:]), axis=0)


def solve_bolus(forward, params: dict, schedule, times_h, organs):
    """Activities (n_organs, n_times) MBq, TIA (n_organs,) MBq·h and ``ok`` of ``organs`` after
    the single bolus of ``schedule`` (same contract as :meth:`TwinModel.simulate`).

    ``forward``: a :class:`tdt.pbpk.PbpkModel` with ``method="grid"`` (:func:`applicable`).
    """
    layout = forward.layout
    lam = forward.decay_constant_per_h
    system = _Arrowhead(layout, params)
    mask_np = system.mask_np
    # observed amounts: plasma weight (k,) and tissue weights (k, n_tissues, 3)
    weights_p = jnp.asarray([1.0 if o == "plasma" else 0.0 for o in organs])
    weights_x = jnp.asarray(np.stack([
        np.stack([mask_np[t] if tissue.name == o else np.zeros(BLOCK)
                  for t, tissue in enumerate(layout.tissues)]) for o in organs]))

    ligand = total_ligand_nmol(schedule, lam)[0]
    hot_per_nmol = schedule.activity_mbq[0] / ligand  # c = A0 / L0, MBq/nmol
    t_admin = schedule.time_h[0]
    t_switch = forward.linear_after_h
    tau = jnp.asarray(times_h) - t_admin
    early = jnp.clip(tau, 0.0, t_switch)
    grid = jnp.sort(jnp.concatenate([
        geometric_grid(0.0, t_switch, forward.grid_steps, forward.grid_first_step_h), early]))
    steps = jnp.diff(jnp.concatenate([jnp.zeros(1), grid]))
    p_grid, x_grid = _rosenbrock(system, ligand, steps)
    p_grid = jnp.concatenate([jnp.reshape(ligand, (1,)), p_grid])  # with t = 0
    x_grid = jnp.concatenate([jnp.zeros((1,) + x_grid.shape[1:]), x_grid])
    times_grid = jnp.concatenate([jnp.zeros(1), grid])
    decay = jnp.exp(-lam * times_grid)  # u = e^{−λt}, so hot = c u total

    def observed(p, x):  # observed organs' amounts (k,) from a block state
        return weights_p * p + (weights_x * x[None]).sum((1, 2))

    amount_grid = jax.vmap(observed)(p_grid, x_grid)  # (n + 1, k) nmol
    at = jnp.searchsorted(grid, early, side="left") + 1
    hot_early = hot_per_nmol * decay[at][:, None] * amount_grid[at]
    # ∫₀^{t_switch} hot = c ∫ u · amount: Hermite quadrature with d/dt (u amount) = u (f − λ)
    slope_grid = jax.vmap(lambda p, x: observed(*system.f(p, x)))(p_grid, x_grid)
    hot_integral = hot_per_nmol * _integral(
        times_grid, decay[:, None] * amount_grid,
        decay[:, None] * (slope_grid - lam * amount_grid))
    p_end, x_end, u_end = p_grid[-1], x_grid[-1], decay[-1]

    # after t_switch: receptor occupancy frozen (grid_solver), hot' = (J_frozen − λ) hot, exact
    y_switch = system.to_flat(p_end, x_end)
    occupancy = jnp.concatenate([y_switch, jnp.zeros(1)])
    m = y_switch.shape[0]

    def hot_rhs(hot):
        return fluxes(layout, params, occupancy, jnp.concatenate([hot, jnp.zeros(1)]))[:m] \
            - lam * hot

    report = layout.report_matrix()[jnp.asarray([layout.reported.index(o) for o in organs])]
    report = report[:, :m]
    late = tau > t_switch

    def late_activity(_):  # samples after t_switch (rare in fits): grid_solver's linear tail
        jac_hot = jax.jacfwd(hot_rhs)(jnp.zeros(m))
        hot_switch = hot_per_nmol * u_end * y_switch
        slope = jac_hot @ hot_switch  # homogeneous: hot' = J hot

        def at_time(dt):
            return report @ frozen_occupancy_propagate(jac_hot, slope, hot_switch, dt)

        return jax.vmap(at_time)(jnp.where(late, tau - t_switch, 0.0))

    hot_late = jax.lax.cond(jnp.any(late), late_activity,
                            lambda _: jnp.zeros((tau.shape[0], len(organs))), None)
    activity = jnp.where(late[:, None], hot_late, jnp.where((tau >= 0)[:, None], hot_early, 0.0))
    # ∫_{t_switch}^∞ hot = −(J_frozen − λ)⁻¹ hot(t_switch), by block elimination
    eye3 = jnp.eye(BLOCK)
    factors = _factor(system.a00 - lam, system.row, system.col,
                      system.frozen_blocks(x_end) - lam * eye3, system.mask)
    tail_p, tail_x = _block_solve(factors, system.row, -hot_per_nmol * u_end * p_end,
                                  -hot_per_nmol * u_end * x_end * system.mask)
    tia = hot_integral + observed(tail_p, tail_x)
    ok = jnp.all(jnp.isfinite(activity)) & jnp.all(jnp.isfinite(tia))
    return activity.T, tia, ok
