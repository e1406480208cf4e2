"""Block linear algebra and Rosenbrock steps of the PBPK sampler path
(:mod:`tdt.inference._fast_pbpk`, whose docstring explains the arrowhead structure, the residual
system of several boluses and the checkpointed steps)."""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from tdt.pbpk import ROS34PW2, fluxes

#: Sub-states per tissue block: free, bound, internalised (a tissue without receptors uses the
#: first slot only; the others are inert padding).
BLOCK = 3


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
    scalar Schur complement of plasma. ``blocks`` may carry leading batch axes (..., T, 3, 3)
    (one matrix per batch entry, same corner/row/col)."""
    eye3 = jnp.eye(BLOCK)
    blocks = blocks * mask[:, :, None] * mask[:, None, :] + eye3 * (1.0 - mask)[:, :, None]
    inverse = _inverse_3x3(blocks)
    elim = (inverse * (col * mask)[:, None, :]).sum(-1)
    schur = corner - jnp.sum(row * elim, axis=(-2, -1))
    return inverse, elim, schur


def _block_solve(factors, row, rp, rx):
    """Solve the factored arrowhead system for the right-hand side (rp (...), rx (..., T, 3))."""
    inverse, elim, schur = factors
    q = (inverse * rx[..., None, :]).sum(-1)
    kp = (rp - jnp.sum(row * q, axis=(-2, -1))) / schur
    return kp, q - elim * kp[..., None, None]


def _apply(system: _Arrowhead, blocks, p, x):
    """The arrowhead matrix with tissue blocks ``blocks`` times the block vector (p, x)
    (leading batch axes allowed, as in :func:`_factor`)."""
    return (system.a00 * p + jnp.sum(system.row * x, axis=(-2, -1)),
            system.col * p[..., None, None] + (blocks * x[..., None, :]).sum(-1))


def _rhs(system: _Arrowhead, p, x, bound):
    """A z + bilinear occupancy term for states z = (p, x) (leading batch axes allowed) with
    the receptor occupancy of the total peptide's bound sub-state ``bound`` (T,): for z = y
    (total) this is f(y) = M(y) y, for z = D (residual) M(y) D — one formula, since binding
    moves −w F_z B_y from free to bound in both (module docstring of _fast_pbpk)."""
    g = -system.w * x[..., 0] * bound
    dp, dx = _apply(system, system.d, p, x)
    return dp, dx.at[..., 1].add(g).at[..., 0].add(-g)


def _rosenbrock(system: _Arrowhead, y0, d0, steps, source=None):
    """ROS34PW2 (grid_solver.ROS34PW2, a Rosenbrock-**W** method) over ``steps`` (h; zero steps
    are the identity) on the total peptide y = (P, X) (y' = f(y) = M(y) y) and, unless ``d0`` is
    None, the residual D' = M(y) D (module docstring of _fast_pbpk, "several boluses").

    y and D are advanced as one batch of two states (leading axis), so every stage is ONE
    batched arrowhead elimination instead of two in sequence (the op count, which is what costs
    on these tiny arrays, stays that of y alone). The W matrix is block-diagonal: the exact
    Jacobian J_y for y and, for D, its exact Jacobian M(y_n) at the step start; only the
    coupling block ∂(M(y) D)/∂y (∝ D, small) is left out. A W-method keeps its order (3) for
    any W (Rang & Angermann, BIT 2005;45:761), so the scheme's accuracy is unchanged — tested
    against the general grid solver and SciPy Radau (tests/inference/test_fast_pbpk_multicycle.py).
    ``source`` (n,) or None: a constant input into y's plasma during each step (nmol/h; an
    infusion), y' = M(y) y + s — the system stays autonomous within a step, so the scheme and
    its W matrix are unchanged; D gets no source.
    Returns the states after every step: (P (n,), X (n, T, 3)) and the same for D (or None)."""
    tab = ROS34PW2
    eye3 = jnp.eye(BLOCK)
    with_d = d0 is not None

    def step(state, inputs):
        h, s = inputs if source is not None else (inputs, None)
        p, x = state  # (n_batch,), (n_batch, T, 3); batch 0 = y, 1 = D
        hg = h * tab["gamma"]
        y_x = x[0]
        blocks = [system.jac_blocks(y_x)] + ([system.frozen_blocks(y_x)] if with_d else [])
        blocks = jnp.stack(blocks)
        m_row = -hg * system.row
        factors = _factor(1.0 - hg * system.a00, m_row, -hg * system.col, eye3 - hg * blocks,
                          system.mask)
        ks = []
        for i in range(4):
            ap, ax, cp, cx = p, x, jnp.zeros_like(p), jnp.zeros_like(x)
            for j in range(i):
                alpha, gamma_ij = tab["alpha"][i][j], tab["gammas"][i][j]
                ap, ax = ap + alpha * ks[j][0], ax + alpha * ks[j][1]
                cp, cx = cp + gamma_ij * ks[j][0], cx + gamma_ij * ks[j][1]
            fp, fx = _rhs(system, ap, ax, ax[0, :, 1])
            if s is not None:  # the infusion enters y's plasma only
                fp = fp.at[0].add(s)
            rp, rx = h * fp, h * fx
            if i:  # + h W Σ γ_ij k_j
                jp, jx = _apply(system, blocks, cp, cx)
                rp, rx = rp + h * jp, rx + h * jx
            ks.append(_block_solve(factors, m_row, rp, rx))  # (I − hγW) k_i = r_i
        new = tuple(state[q] + sum(b * k[q] for b, k in zip(tab["b"], ks, strict=True))
                    for q in range(2))
        return new, new

    starts = [y0] + ([d0] if with_d else [])
    state0 = (jnp.stack([jnp.asarray(s[0], dtype=float) for s in starts]),
              jnp.stack([jnp.asarray(s[1], dtype=float) for s in starts]))
    inputs = steps if source is None else (steps, source)
    p_steps, x_steps = jax.lax.scan(jax.checkpoint(step), state0, inputs)[1]
    y_steps = (p_steps[:, 0], x_steps[:, 0])
    return y_steps, ((p_steps[:, 1], x_steps[:, 1]) if with_d else None)


def _integral(times, values, slopes):
    """∫ over ``times`` of a function given its values and derivatives there (n, ...): the
    trapezoid rule with the Euler–Maclaurin end correction per interval (exact for cubics;
    Hermite quadrature, e.g. Davis & Rabinowitz, Methods of Numerical Integration, §2.9)."""
    h = jnp.diff(times).reshape((-1,) + (1,) * (values.ndim - 1))
    return jnp.sum(h / 2.0 * (values[1:] + values[:-1])
                   + h**2 / 12.0 * (slopes[:-1] - slopes[1:]), axis=0)
