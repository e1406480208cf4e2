"""Fast solution of a receptor PBPK for one or several boluses (the sampler path of the PBPK fit).

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

**Several boluses** (:func:`solve_boluses`; cycles weeks apart, data after several cycles):
integrated cycle by cycle with the state carried across (DESIGN.md). Before bolus k the body
still holds total peptide y⁻ and hot activity h⁻ from earlier cycles, so hot ≠ c total. Exact
decomposition: in cycle k let W = e^{λ(t − t_k)} hot (decay frame) and c = A_k / L_k. W and y
obey the same linear equation given the occupancy, z' = M(y) z, so W = c y + D with the
*residual* D' = M(y) D, D(t_k) = h⁻ − c y⁻ (the new bolus cancels). D is integrated with y by
the same Rosenbrock-W steps, y and D as one batch of two states (one batched arrowhead
elimination per stage; the W matrix is block-diagonal, J_y and M(y_n), which keeps the
method's order: _fast_pbpk_blocks._rosenbrock); D is zero in cycle 1 and not integrated there.
After the
switch (occupancy frozen, as in the grid solver) y and hot are propagated to the next bolus by
one matrix exponential of M (tdt.pbpk._grid_solver.MAX_SQUARINGS) and the window's TIA is
(M − λ)⁻¹(hot_end − hot_switch) (hot_end = 0 after the last bolus). Parameters may change per
cycle (piecewise constant, switched at each bolus). Same scheme and accuracy as
``method="grid"``: tested against the grid solver (2 and 4 cycles) and SciPy Radau of the full
model with drifting parameters (tests/inference/test_fast_pbpk_multicycle.py).

**Infusions** (since 2026-12-07; before, infusion schedules fell back to the general solver): an
administration of duration T delivers the peptide into plasma at the constant rate L/T and the
activity at (A/T)e^{−λτ} (the decaying infusion line of :mod:`tdt.pbpk`: A e^{−λτ}(1 − τ/T)
still in the line). In the decay frame the activity's rate is the constant c·L/T, so W and c·y
obey the same equation with the same source and W = c y + D holds as for a bolus (D' = M(y) D,
no source). The window's Rosenbrock grid gets T as a point, the steps before it carry the
source s = L/T in y's plasma (:func:`_fast_pbpk_blocks._rosenbrock`: the system stays
autonomous within a step), and the Hermite quadrature of the TIA adds the source's slope c·s at
both ends of those steps. Requires T known at trace time, shorter than ``linear_after_h`` and
ending before the next administration (:func:`applicable`). Tested against the general grid
solver, which integrates the line as its own states (0.5 h over two cycles, 2 h saturating:
3.6e-3 pointwise, 1.1e-3 for the TIAs), and the gradient against finite differences.

Why hand-written: diffrax 0.7 has neither a Rosenbrock method nor structured linear solves; the
structure (star topology) is what makes the sampler fast, and no library knows it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError
from tdt.inference._fast_pbpk_blocks import (  # noqa: F401 - re-exported for the tests
    BLOCK,
    _apply,
    _Arrowhead,
    _block_solve,
    _blocks,
    _factor,
    _integral,
    _inverse_3x3,
    _rosenbrock,
)
from tdt.pbpk import (
    MAX_SQUARINGS,
    fluxes,
    frozen_occupancy_propagate,
    geometric_grid,
    total_ligand_nmol,
)

__all__ = ["applicable", "solve_bolus", "solve_boluses"]


def applicable(forward, schedule, times_h=None) -> bool:
    """True when ``forward`` is a receptor PBPK with ``method="grid"`` and ``schedule`` is one
    or several administrations that :func:`solve_boluses` solves: boluses, and infusions whose
    durations, administration times and sample times ``times_h`` are known at trace time (the
    sampler's case: the data's times; not a ``jnp.asarray`` made inside ``jit``), each shorter
    than the switch to the linear tail (``linear_after_h``) and ending before the next
    administration."""
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
    if infusion.ndim != 1 or infusion.size < 1:
        return False
    if bool(np.all(infusion <= 0.0)):
        return True
    starts = _concrete(schedule.time_h)
    if starts is None or times_h is None or _concrete(times_h) is None \
            or not bool(np.all(infusion >= 0.0)):
        return False
    return bool(np.all(infusion < forward.linear_after_h)
                and np.all(starts[:-1] + infusion[:-1] < starts[1:]))


def _from_flat(system: _Arrowhead, flat):
    """Flat sub-state vector (n_sub − 1,) -> block state (P, X)."""
    return flat[0], flat[system.index] * system.mask


def _cycle(forward, params, weights, admin, carry, times, residual: bool, static=None,
           infusion_h: float = 0.0):
    """One administration and the time until the next one (or to infinity after the last).

    ``admin`` = (t_k, A_k MBq, L_k nmol, window h: t_{k+1} − t_k, inf for the last);
    ``carry`` = (total, hot) block states just before the bolus (zero before the first).
    Returns (activities at ``times`` inside the window (n_times, k), TIA of the window (k,),
    the carry at the next administration, all-finite flag).

    ``static``: ``(t_k, window)`` as floats, ``times`` this window's samples only (NumPy):
    the unrolled structure of :func:`_unrolled` (its docstring); the last window's carry is
    then None. ``infusion_h`` (static, > 0 only with ``static``): an infusion of that duration
    (module docstring, "Infusions")."""
    layout, lam = forward.layout, forward.decay_constant_per_h
    t_admin, activity, ligand, window = admin
    weights_p, weights_x = weights
    system = _Arrowhead(layout, params)
    c = activity / ligand  # MBq per nmol of this administration
    (yp, yx), (hp, hx) = carry
    infused = infusion_h > 0.0
    y0 = (yp, yx) if infused else (yp + ligand, yx)
    d0 = (hp - c * yp, hx - c * yx) if residual else None  # W = c y + D, W(t_k) = hot(t_k)
    if static is None:
        t_switch = jnp.minimum(window, forward.linear_after_h)
        tau = times - t_admin
        inside = (tau >= 0.0) & (tau < window)
    else:
        t_admin, window = static
        t_switch = min(window, forward.linear_after_h)
        tau = np.asarray(times, dtype=float) - t_admin
        inside = np.ones(tau.shape, dtype=bool)  # only this window's samples are passed
    early = jnp.clip(tau, 0.0, t_switch)
    grid, steps, source = _window_grid(forward, t_switch, early, ligand, infusion_h)
    y_steps, d_steps = _rosenbrock(system, y0, d0, steps, source)

    def with_start(start, states):  # prepend the state at t_k
        return tuple(jnp.concatenate([jnp.reshape(s0, (1,) + s.shape[1:]), s])
                     for s0, s in zip(start, states, strict=True))

    yp_g, yx_g = with_start(y0, y_steps)
    wp_g, wx_g = c * yp_g, c * yx_g
    if residual:
        dp_g, dx_g = with_start(d0, d_steps)
        wp_g, wx_g = wp_g + dp_g, wx_g + dx_g
    times_grid = jnp.concatenate([jnp.zeros(1), grid])
    decay = jnp.exp(-lam * times_grid)  # hot = e^{−λ(t − t_k)} W

    def observed(p, x):  # observed organs' amounts (k,) from a block state
        return weights_p * p + (weights_x * x[None]).sum((1, 2))

    def w_slope(p, x, q, z):  # W' = c f(y) + M(y) D
        fp, fx = system.f(p, x)
        gp, gx = _apply(system, system.frozen_blocks(x), q, z)
        return observed(c * fp + gp, c * fx + gx)

    amount = jax.vmap(observed)(wp_g, wx_g)  # (n + 1, k)
    at = jnp.searchsorted(grid, early, side="left") + 1
    hot_early = decay[at][:, None] * amount[at]
    slope = jax.vmap(w_slope)(yp_g, yx_g, wp_g - c * yp_g, wx_g - c * yx_g)
    hot_integral = _integral(times_grid, decay[:, None] * amount,
                             decay[:, None] * (slope - lam * amount))
    if infused:  # the source's slope c·L/T (plasma) on the infusion's steps, both ends
        h = jnp.diff(times_grid)
        hot_integral = hot_integral + weights_p * c * jnp.sum(
            h**2 / 12.0 * source * (decay[:-1] - decay[1:]))

    # after t_switch: receptor occupancy frozen (grid_solver): y' = M y, hot' = (M − λ) hot
    y_sw = system.to_flat(yp_g[-1], yx_g[-1])
    hot_sw = decay[-1] * system.to_flat(wp_g[-1], wx_g[-1])
    occupancy = jnp.concatenate([y_sw, jnp.zeros(1)])
    m = y_sw.shape[0]

    def hot_rhs(hot):
        return fluxes(layout, params, occupancy, jnp.concatenate([hot, jnp.zeros(1)]))[:m] \
            - lam * hot

    jac_hot = jax.jacfwd(hot_rhs)(jnp.zeros(m))  # M − λ I
    late = inside & (tau > t_switch)

    def late_activity(_):  # samples after t_switch (rare in fits): grid_solver's linear tail
        def at_time(dt):
            hot = frozen_occupancy_propagate(jac_hot, jac_hot @ hot_sw, hot_sw, dt)
            return observed(*_from_flat(system, hot))

        return jax.vmap(at_time)(jnp.where(late, tau - t_switch, 0.0))

    def no_late(_):
        return jnp.zeros((tau.shape[0], weights_p.shape[0]))

    hot_late = (jax.lax.cond(jnp.any(late), late_activity, no_late, None) if static is None
                else (late_activity if bool(np.any(late)) else no_late)(None))  # known: built
    act = jnp.where(late[:, None], hot_late, jnp.where(inside[:, None], hot_early, 0.0))

    # to the next administration (the last one: to infinity, hot_end = 0)
    y_next, hot_end = _to_next(jac_hot, lam, y_sw, hot_sw, window, t_switch,
                               static is not None and not np.isfinite(window))
    tia = hot_integral + observed(*_tail_integral(system, lam, yx_g[-1], hot_end - hot_sw))
    finite = jnp.all(jnp.isfinite(act)) & jnp.all(jnp.isfinite(tia))
    nxt = None if y_next is None else (_from_flat(system, y_next), _from_flat(system, hot_end))
    return act, tia, nxt, finite


def _window_grid(forward, t_switch, early, ligand, infusion_h: float):
    """(grid (n,) h after the administration, steps (n,), per-step source (n,) nmol/h or None):
    the geometric grid to ``t_switch`` with the ``early`` samples and, for an infusion, its end
    T as points; the steps ending at or before T carry the source L/T."""
    infused = infusion_h > 0.0
    grid = jnp.sort(jnp.concatenate([
        geometric_grid(0.0, t_switch, forward.grid_steps, forward.grid_first_step_h), early]
        + ([jnp.full(1, infusion_h)] if infused else [])))
    steps = jnp.diff(jnp.concatenate([jnp.zeros(1), grid]))
    source = jnp.where(grid <= infusion_h, ligand / infusion_h, 0.0) if infused else None
    return grid, steps, source


def _tail_integral(system: _Arrowhead, lam, x_switch, difference):
    """∫_{t_switch}^{end} hot = (M − λ)⁻¹ (hot_end − hot_sw) (``difference``, flat), by block
    elimination, M the system with the occupancy frozen at the tissue state ``x_switch``."""
    factors = _factor(system.a00 - lam, system.row, system.col,
                      system.frozen_blocks(x_switch) - lam * jnp.eye(BLOCK), system.mask)
    return _block_solve(factors, system.row, *_from_flat(system, difference))


def _to_next(jac_hot, lam, y_sw, hot_sw, window, t_switch, known_last: bool):
    """Total and hot (flat) at the next administration from the switch, occupancy frozen:
    one matrix exponential of M = jac_hot + λ over the gap (hot_end = 0 after the last bolus).
    ``known_last``: the last window, known at trace time: nothing is propagated (y None)."""
    m = y_sw.shape[0]
    if known_last:
        return None, jnp.zeros(m)
    last = ~jnp.isfinite(window)
    gap = jnp.where(last, t_switch, window) - t_switch
    propagator = jax.scipy.linalg.expm((jac_hot + lam * jnp.eye(m)) * gap,
                                       max_squarings=MAX_SQUARINGS)
    return propagator @ y_sw, jnp.where(last, 0.0, jnp.exp(-lam * gap) * (propagator @ hot_sw))


def solve_boluses(forward, params: dict, schedule, times_h, organs,
                  by_administration: bool = False):
    """Activities (n_organs, n_times) MBq, TIA (n_organs,) MBq·h and ``ok`` of ``organs``
    (``plasma`` and the model's tissues) after the boluses of ``schedule`` (same contract as
    :meth:`TwinModel.simulate`). ``by_administration=True`` returns the TIA of each
    administration's window [t_k, t_{k+1}) (the last to infinity), (n_admin, n_organs),
    as ``Simulation.tia_by_administration_mbq_h``.

    ``params``: name -> value, or (n_admin,) values for parameters that change from cycle to
    cycle (piecewise constant, switching at each administration: a patient's drift between
    cycles). ``forward``: a :class:`tdt.pbpk.PbpkModel` with ``method="grid"``
    (:func:`applicable`).
    """
    layout = forward.layout
    n_admin = int(schedule.time_h.shape[0])
    if "urine" in organs:
        raise InputError(f"organs: 'urine' is not solved on the sampler path; got {organs}")
    mask_np = _blocks(layout)[1]
    weights = (jnp.asarray([1.0 if o == "plasma" else 0.0 for o in organs]),
               jnp.asarray(np.stack([
                   np.stack([mask_np[t] if tissue.name == o else np.zeros(BLOCK)
                             for t, tissue in enumerate(layout.tissues)]) for o in organs])))
    per_cycle = {k: jnp.broadcast_to(jnp.asarray(v, dtype=float), (n_admin,))
                 for k, v in params.items()}
    ligand = total_ligand_nmol(schedule, forward.decay_constant_per_h)
    times = jnp.asarray(times_h, dtype=float)
    window = jnp.concatenate([jnp.diff(schedule.time_h), jnp.full(1, jnp.inf)])
    admins = (schedule.time_h, schedule.activity_mbq, ligand, window)
    n_tissues = len(layout.tissues)
    zero = (jnp.zeros(()), jnp.zeros((n_tissues, BLOCK)))
    static_times, static_admin = _concrete(times_h), _concrete(schedule.time_h)
    # infusion durations traced (a schedule rebuilt inside jit, e.g. the PET -> therapy joint
    # model's): boluses, as before infusions were solved here; applicable() is False for them
    infusion = _concrete(schedule.infusion_h)
    infused = infusion is not None and bool(np.any(infusion > 0.0))
    if infused and (static_times is None or static_admin is None):
        raise InputError("solve_boluses: an infusion schedule needs its sample and "
                         "administration times known at trace time; got traced values (use "
                         "the model's own solver)")
    if infused and not applicable(forward, schedule, times_h):
        raise InputError(f"schedule: infusion durations {infusion.tolist()} h; expected each "
                         f"shorter than {forward.linear_after_h:g} h (the switch to the linear "
                         "tail) and ending before the next administration")
    if static_times is not None and static_admin is not None:
        act, tia, finite = _unrolled(forward, per_cycle, weights, admins, zero, static_times,
                                     static_admin, infusion if infused else None)
        ok = finite & jnp.all(jnp.isfinite(act))
        return act.T, (tia if by_administration else tia.sum(0)), ok
    first = jax.tree_util.tree_map(lambda a: a[0], (per_cycle, admins))
    act, tia, carry, finite = _cycle(forward, first[0], weights, first[1], (zero, zero),
                                     times, residual=False)
    if n_admin > 1:
        # cycle 1 outside the scan (no residual, its constants folded): measured 2x cheaper
        # gradient than running every cycle in one scan (10.9 vs 19.7 ms, 2 cycles)
        def body(carry, inputs):
            p, admin = inputs
            a, t, nxt, f = _cycle(forward, p, weights, admin, carry, times, residual=True)
            return nxt, (a, t, f)

        rest = jax.tree_util.tree_map(lambda a: a[1:], (per_cycle, admins))
        _, (acts, tias, fins) = jax.lax.scan(body, carry, rest)
        act = act + acts.sum(0)
        tia = jnp.concatenate([tia[None], tias])
        finite = finite & jnp.all(fins)
    else:
        tia = tia[None]
    ok = finite & jnp.all(jnp.isfinite(act))
    return act.T, (tia if by_administration else tia.sum(0)), ok


def _concrete(x):
    """``x`` as a NumPy array when it is known at trace time, else None (a tracer)."""
    try:
        return np.asarray(x, dtype=float)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _unrolled(forward, per_cycle, weights, admins, zero, times_np, starts_np, infusion_np=None):
    """The cycles of :func:`solve_boluses` unrolled in Python when the sample and
    administration times are known at trace time (the sampler's case: both come from the
    data): each window gets only its own samples (:func:`_cycle`, ``static``), so the grid
    holds no zero-length steps for the other cycles' samples, the frozen-occupancy branch is
    built only when a sample needs it (no runtime ``lax.cond``), and the last window skips the
    propagator to a next administration. Same arithmetic (zero steps are the identity). Measured on
    the 2-cycle likelihood of the 4-cycle benchmark patient: see docs/inference.md,
    "Multi-cycle fits". ``infusion_np``: the infusion durations (h; 0 for a bolus). Returns
    activities (n_times, k), TIA per window (n_admin, k), finite."""
    n_admin = starts_np.shape[0]
    ends = np.append(starts_np[1:], np.inf)
    n_organs = weights[0].shape[0]
    act = jnp.zeros((times_np.shape[0], n_organs))
    carry, tias, finite = (zero, zero), [], jnp.asarray(True)
    for k in range(n_admin):
        params, admin = jax.tree_util.tree_map(lambda a, k=k: a[k], (per_cycle, admins))
        index = np.nonzero((times_np >= starts_np[k]) & (times_np < ends[k]))[0]
        window = float(ends[k] - starts_np[k])
        infusion = 0.0 if infusion_np is None else float(infusion_np[k])
        a, t, carry, f = _cycle(forward, params, weights, admin, carry, times_np[index],
                                residual=k > 0, static=(float(starts_np[k]), window),
                                infusion_h=infusion)
        if index.size:
            act = act.at[index].set(a)
        tias.append(t)
        finite = finite & f
    return act, jnp.stack(tias), finite


#: The one-bolus name of earlier versions (one bolus is the special case n_admin = 1).
solve_bolus = solve_boluses
