"""Closed-form bolus response of a mammillary (plasma ↔ organs) linear model, in JAX.

The generator of plasma + organs (urine excluded: it never feeds back) of
``tdt.pbpk.reduced_linear`` is G with G[i,0] = k_in_i, G[0,i] = k_out_i, G[i,i] = -k_out_i - λ,
G[0,0] = -(Σ k_in + k_urine) - λ. With D = diag(1, sqrt(k_in_i / k_out_i)), D⁻¹ G D is
symmetric (an "arrowhead" matrix), so G = D U diag(w) Uᵀ D⁻¹ with a real orthogonal U from
``eigh``. A 1 MBq bolus into plasma then gives

    x_i(t) = Σ_k d_i U_ik U_0k exp(w_k t)        (MBq),

an exact sum of exponentials with rates -w_k > 0 (every w_k <= -λ). Compared with the matrix
exponential of :mod:`tdt.pbpk` this compiles in a fraction of the time and differentiates
cheaply, which is what the per-cycle Laplace fits of a virtual trial need; the tests check it
against ``model.simulate`` (matrix exponential).

Eigenvalue derivatives are singular where two organs share exactly the same k_out (a repeated
eigenvalue); optimisers are started slightly off such points (see ``assimilate``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tdt.errors import InputError


def check_mammillary(model) -> tuple[int, ...]:
    """Indices of plasma + organ compartments of ``model`` (a linear model with a generator)."""
    if not hasattr(model, "generator") or not hasattr(model, "compartments"):
        raise InputError(
            f"model: {type(model).__name__} is not a linear compartment model with a generator; "
            "the twin needs tdt.pbpk.reduced_linear (a nonlinear PBPK must be reduced first)"
        )
    comps = tuple(model.compartments)
    if comps[0] != "plasma":
        raise InputError(f"model.compartments: expected 'plasma' first, got {comps}")
    return tuple(i for i, c in enumerate(comps) if c != "urine")


def bolus_exponentials(model, params: dict):
    """Amplitudes (n_comp, K) MBq per MBq and rates (K,) 1/h of a 1 MBq bolus into plasma.

    ``n_comp`` is the number of model compartments; the urine row is zero (not modelled here).
    Works under jit / vmap / grad over ``params`` (name -> rate constant, 1/h).
    """
    keep = jnp.asarray(check_mammillary(model))
    n_c = len(model.compartments)
    g = model.generator(params)[keep][:, keep]
    k_in, k_out = g[1:, 0], g[0, 1:]
    d = jnp.concatenate([jnp.ones(1), jnp.sqrt(k_in / k_out)])
    s = g * d[None, :] / d[:, None]
    w, u = jnp.linalg.eigh(0.5 * (s + s.T))
    amp = d[:, None] * u * u[0][None, :]
    full = jnp.zeros((n_c, amp.shape[1]), dtype=amp.dtype).at[keep].set(amp)
    return full, -w


def activity_at(model, params: dict, activity_mbq, times_h):
    """Activity (n_comp, n_times) MBq after a bolus of ``activity_mbq`` at t = 0."""
    amp, rates = bolus_exponentials(model, params)
    return activity_mbq * amp @ jnp.exp(-rates[:, None] * jnp.asarray(times_h)[None, :])


def batched_bolus_exponentials(model, params: dict):
    """:func:`bolus_exponentials` over draws: params name -> (n_draws,); returns NumPy arrays
    amplitudes (n_draws, n_comp, K) and rates (n_draws, K)."""
    import numpy as np  # noqa: PLC0415

    amp, rates = _batched(model)({k: jnp.asarray(v) for k, v in params.items()})
    return np.asarray(amp), np.asarray(rates)


_CACHE: dict = {}


def _batched(model):
    key = id(model)
    if key not in _CACHE or _CACHE[key][0] is not model:
        _CACHE[key] = (model, jax.jit(jax.vmap(lambda p: bolus_exponentials(model, p))))
    return _CACHE[key][1]
