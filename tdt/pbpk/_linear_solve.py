"""The one solver of linear compartment kinetics (first-order exchange + physical decay).

Two exact solutions of ``dx/dt = G x + inputs`` (x: activities, MBq; G: generator, 1/h), used by
every layer above (tdt.inference's sampler path, tdt.twin's assimilation and dose response):

1. :func:`solve_piecewise_linear` — any schedule (boluses, infusions, multi-cycle): on each
   interval between schedule events x(t+τ) = expm(G τ) x(t) and the time integral follows from
   the same propagator, ∫_0^τ x = G⁻¹ (x(t+τ) − x(t)) (the closed form of the augmented-state
   integral, Van Loan, IEEE Trans Autom Control 1978;23:395); after the last event
   ∫_t^∞ x = −G⁻¹ x(t). G is invertible because every eigenvalue has real part <= −λ < 0.
2. :func:`bolus_exponentials` — boluses into plasma of a *mammillary* model (organs exchange
   only with plasma; urine absorbing, never feeding back): with D = diag(1, √(k_in,o/k_out,o))
   the plasma+organ block M of G satisfies D⁻¹ M D symmetric (an arrowhead matrix; the classical
   symmetrisation of reversible compartment systems, Jacquez, Compartmental Analysis in Biology
   and Medicine, 3rd ed. 1996, ch. 5), so M = D U diag(w) Uᵀ D⁻¹ with a real orthogonal U from
   ``eigh`` and a 1 MBq bolus into plasma gives the exact sum of exponentials

       x_i(t) = Σ_k D_i U_ik U_0k exp(w_k t)   (MBq per MBq),   rates −w_k >= λ > 0 (1/h).

   Cheaper to compile and differentiate than ``expm`` (the NUTS sampler and the per-cycle
   Laplace fits of a virtual trial need that). Eigenvalue derivatives are singular where two
   organs share exactly the same k_out (repeated eigenvalue); optimisers start slightly off
   such points.

Both are checked against the analytic one- and two-compartment solutions and SciPy's
``solve_ivp`` in tests/pbpk/test_pbpk_solvers.py (one battery over every solver path).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import expm

from tdt.errors import InputError
from tdt.pbpk._organs import EXCRETED_COMPARTMENTS

__all__ = [
    "activity_at", "batched_bolus_exponentials", "bolus_exponentials", "bolus_response",
    "exponential_sum", "is_bolus_schedule", "mammillary_indices", "solve_piecewise_linear",
]

#: Scaling-and-squaring limit of expm: ||A τ||_1 up to 5.37 · 2^30 (τ up to 10^5 h at rates ~900/h).
_MAX_SQUARINGS = 24


def solve_piecewise_linear(generator, plasma_index: int, schedule, times_h):
    """Exact solution of ``dx/dt = G x + inputs`` for a schedule of boluses / infusions.

    ``generator`` G (n, n) in 1/h; ``plasma_index``: the state that receives boluses and the
    infusion rate; ``schedule``: a :class:`tdt.pbpk.Schedule` (activities MBq, times h);
    ``times_h`` (n_times,) h.

    ``generator`` G is (n, n) with the last two states being the infusion line (s, index n-2) and
    the infusion activity rate (r, index n-1), already wired (G[plasma, r] = 1, G[s, r] = -1,
    G[r, r] = G[s, s] = -λ). G must be invertible (it is when every state decays).

    Between events x(t_e + τ) = expm(G τ) x(t_e) and the time integral of the state follows
    exactly from the same propagator: ∫_0^τ x(t_e + σ) dσ = G⁻¹ (x(t_e + τ) - x(t_e)) (integrate
    dx/dt = G x); after the last event ∫_0^∞ = -G⁻¹ x(t_e). This is the closed form of the
    augmented-state (Van Loan 1978) integral, at the cost of an n×n instead of a 2n×2n matrix
    exponential. One batched ``expm`` call serves every interval and every output time.

    Returns a dict with the state ``x`` (n_times, n) MBq, its running integral ``integral``
    (n_times, n) MBq·h, the integral at each administration start ``integral_at_admin``
    (n_admin, n) MBq·h and to infinity ``integral_inf`` (n,) MBq·h.
    """
    n = generator.shape[0]
    s_index, r_index = n - 2, n - 1
    n_admin = schedule.time_h.shape[0]
    starts = schedule.time_h
    ends = schedule.time_h + schedule.infusion_h
    previous_end = jnp.concatenate([starts[:1], ends[:-1]])
    event_times = jnp.stack([starts, ends], axis=1).reshape(-1)

    # output times: the last event at or before t (side="right": a bolus given at t is included)
    index = jnp.searchsorted(event_times, times_h, side="right") - 1
    safe_index = jnp.clip(index, 0, event_times.shape[0] - 1)
    tau_out = jnp.where(index >= 0, times_h - event_times[safe_index], 0.0)

    # interval lengths: previous event -> start k, start k -> end k; then the output offsets
    gaps = jnp.stack([starts - previous_end, schedule.infusion_h], axis=1).reshape(-1)
    taus = jnp.concatenate([gaps, tau_out])
    propagators = expm(generator[None] * taus[:, None, None], max_squarings=_MAX_SQUARINGS)
    phi_events = propagators[: 2 * n_admin].reshape(n_admin, 2, n, n)
    phi_out = propagators[2 * n_admin:]

    def integral(x_from, x_to):
        return jnp.linalg.solve(generator, x_to - x_from)

    is_bolus = schedule.infusion_h <= 0.0
    safe_duration = jnp.where(is_bolus, 1.0, schedule.infusion_h)

    def step(carry, inputs):
        x, running = carry
        phi, activity, bolus, duration = inputs
        x_new = phi[0] @ x
        running = running + integral(x, x_new)
        x_new = x_new.at[plasma_index].add(jnp.where(bolus, activity, 0.0))
        x_new = x_new.at[s_index].add(jnp.where(bolus, 0.0, activity))
        x_new = x_new.at[r_index].add(jnp.where(bolus, 0.0, activity / duration))
        start_state = (x_new, running)
        x_end = phi[1] @ x_new
        running = running + integral(x_new, x_end)
        x_end = x_end.at[s_index].set(0.0).at[r_index].set(0.0)
        return (x_end, running), (start_state, (x_end, running))

    zeros = jnp.zeros(n, dtype=generator.dtype)
    (x_last, running_last), (start_states, end_states) = jax.lax.scan(
        step, (zeros, zeros), (phi_events, schedule.activity_mbq, is_bolus, safe_duration))
    x_events = jnp.stack([start_states[0], end_states[0]], axis=1).reshape(-1, n)
    i_events = jnp.stack([start_states[1], end_states[1]], axis=1).reshape(-1, n)

    x_from = x_events[safe_index]
    x_t = jnp.einsum("tij,tj->ti", phi_out, x_from)
    i_t = i_events[safe_index] + jax.vmap(integral)(x_from, x_t)
    before = (index < 0)[:, None]
    return {
        "x": jnp.where(before, 0.0, x_t),
        "integral": jnp.where(before, 0.0, i_t),
        "integral_at_admin": start_states[1],
        "integral_inf": running_last - jnp.linalg.solve(generator, x_last),
    }


def mammillary_indices(model) -> tuple[int, ...]:
    """Indices of the plasma + organ compartments of ``model`` (urine excluded).

    ``model`` must be a linear compartment model with a ``generator`` and ``compartments``
    (plasma first), e.g. :func:`tdt.pbpk.reduced_linear`.
    """
    if not hasattr(model, "generator") or not hasattr(model, "compartments"):
        raise InputError(
            f"model: {type(model).__name__} is not a linear compartment model with a generator; "
            "expected tdt.pbpk.reduced_linear (a nonlinear PBPK must be reduced first)")
    comps = tuple(model.compartments)
    if comps[0] != "plasma":
        raise InputError(f"model.compartments: expected 'plasma' first, got {comps}")
    return tuple(i for i, c in enumerate(comps) if c not in EXCRETED_COMPARTMENTS)


def bolus_exponentials(model, params: dict):
    """Amplitudes (n_comp, K) MBq per MBq and rates (K,) 1/h of a 1 MBq bolus into plasma.

    Activity of compartment c at τ h after the bolus: Σ_k amp[c, k] exp(−rate_k τ) (module
    docstring, solution 2). ``n_comp`` is the number of model compartments; the urine row is
    zero (not modelled by the eigen-solution). ``params``: name -> rate constant (1/h); works
    under jit / vmap / grad.
    """
    keep, amp, rates = _mammillary_modes(model, params)
    full = jnp.zeros((len(model.compartments), amp.shape[1]), dtype=amp.dtype)
    return full.at[jnp.asarray(keep)].set(amp), rates


def _mammillary_modes(model, params: dict):
    """``(keep, amplitudes (len(keep), K), rates (K,))`` of the plasma + organ block ``keep``."""
    keep = mammillary_indices(model)
    g = model.generator(params)
    if keep == tuple(range(len(keep))):  # plasma + organs first (reduced_linear): a slice
        g = g[: len(keep), : len(keep)]
    else:
        g = g[jnp.asarray(keep)][:, jnp.asarray(keep)]
    k_in, k_out = g[1:, 0], g[0, 1:]
    d = jnp.concatenate([jnp.ones(1, dtype=g.dtype), jnp.sqrt(k_in / k_out)])
    # D⁻¹ M D written out: same diagonal, off-diagonal √(k_in k_out) (finite when k_in = 0)
    link = jnp.sqrt(k_in * k_out)
    s = jnp.diag(jnp.diag(g)).at[0, 1:].set(link).at[1:, 0].set(link)
    w, u = jnp.linalg.eigh(s)
    return keep, d[:, None] * u * u[0][None, :], -w


def exponential_sum(amplitudes, rates, tau_h):
    """Σ_k amplitudes[..., k] exp(−rates[..., k] τ) at every τ (h): shape (..., n_times).

    ``amplitudes`` (..., K), ``rates`` (..., K) broadcastable (1/h), ``tau_h`` (n_times,).
    NumPy in, NumPy out; JAX arrays in, JAX arrays out.
    """
    xp = jnp if isinstance(amplitudes, jax.Array) or isinstance(rates, jax.Array) else np
    tau = xp.asarray(tau_h)
    return xp.sum(amplitudes[..., :, None] * xp.exp(-rates[..., :, None] * tau), axis=-2)


def activity_at(model, params: dict, activity_mbq, times_h):
    """Activity (n_comp, n_times) MBq at ``times_h`` (h) after a bolus of ``activity_mbq`` (MBq)
    into plasma at t = 0 (:func:`bolus_exponentials`)."""
    amp, rates = bolus_exponentials(model, params)
    return activity_mbq * exponential_sum(amp, rates, jnp.asarray(times_h))


def bolus_response(model, params: dict, schedule, times_h, compartments=None):
    """Activities (n, n_times) MBq at ``times_h`` (h) and TIAs (n,) MBq·h from the first
    administration to infinity, for a schedule of boluses into plasma (superposition of
    :func:`bolus_exponentials`; infusions are not handled, see :func:`is_bolus_schedule`).

    ``compartments``: names to return (default every model compartment; the urine row is
    zero). Works under jit / vmap / grad over ``params``.
    """
    keep, amp, rates = _mammillary_modes(model, params)
    if compartments is None:
        amp = jnp.zeros((len(model.compartments), amp.shape[1]),
                        dtype=amp.dtype).at[jnp.asarray(keep)].set(amp)
    else:
        rows = []
        for c in compartments:
            if c not in model.compartments or model.compartments.index(c) not in keep:
                raise InputError(f"compartments: {c!r} is not a plasma/organ compartment of "
                                 f"the model; expected one of "
                                 f"{[model.compartments[i] for i in keep]}")
            rows.append(keep.index(model.compartments.index(c)))
        amp = amp[jnp.asarray(rows)]
    tau = jnp.asarray(times_h)[None, :] - schedule.time_h[:, None]  # (n_admin, n_times)
    after = tau >= 0
    safe_tau = jnp.where(after, tau, 0.0)  # no exp overflow (nor NaN gradient) before a dose
    unit = jnp.exp(-rates[None, None, :] * safe_tau[..., None]) * after[..., None]  # (a, t, K)
    x = amp @ jnp.einsum("a,atk->kt", schedule.activity_mbq, unit)
    tia = jnp.sum(schedule.activity_mbq) * (amp @ (1.0 / rates))
    return x, tia


def is_bolus_schedule(schedule) -> bool:
    """True when every administration of ``schedule`` is a bolus (decided statically; False for
    a traced schedule, whose infusion durations cannot be inspected)."""
    infusion = getattr(schedule, "infusion_h", None)
    if infusion is None:
        return False
    try:
        return bool(np.all(np.asarray(infusion) <= 0.0))
    except jax.errors.TracerArrayConversionError:
        return False


def batched_bolus_exponentials(model, params: dict):
    """:func:`bolus_exponentials` over draws, jitted and vmapped: ``params`` name -> (n_draws,);
    returns NumPy arrays amplitudes (n_draws, n_comp, K) MBq/MBq and rates (n_draws, K) 1/h."""
    amp, rates = _batched(model)({k: jnp.asarray(v) for k, v in params.items()})
    return np.asarray(amp), np.asarray(rates)


@functools.lru_cache(maxsize=32)
def _batched(model):
    """One jitted, vmapped eigen-solution per model object (models are cached per configuration)."""
    return jax.jit(jax.vmap(lambda p: bolus_exponentials(model, p)))
