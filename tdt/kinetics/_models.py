"""Sum-of-exponentials time–activity models with physically constrained rates.

Every model is ``A(t) = Σ_j c_j exp(-k_j t)`` (MBq, t in h) where the term coefficients ``c`` are a
fixed linear map ``C`` of positive amplitudes ``a`` (``c = C a``). The effective rates are ordered
and never below the physical decay constant λ_phys (NUKFIT practice, Kletting et al., Med Phys
2013;40:102504):

    k_1 = λ_phys + exp(θ_1),   k_{j+1} = k_j + exp(θ_{j+1})

so washout can never be slower than physical decay. Amplitudes are ``a_i = exp(α_i)``. The
unconstrained vector ``θ_full = (α_1..α_m, θ_1..θ_r)`` is what the solver works on.

Uptake–washout forms have coefficients that sum to zero (A(0) = 0), e.g.
``a (exp(-k_1 t) - exp(-k_2 t))`` with the slower rate k_1 the washout and k_2 the uptake.

The time-integrated activity is analytic (MIRD Pamphlet 21, Bolch et al., JNM 2009;50:477):
``TIA = ∫_0^∞ A dt = Σ_j c_j / k_j`` (MBq·h), and the part beyond the last time point ``t_L`` is
``Σ_j c_j exp(-k_j t_L) / k_j``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

#: Largest number of exponential terms of any model (for padded batch outputs).
MAX_TERMS = 3


@dataclass(frozen=True)
class ExponentialModel:
    """A sum-of-exponentials model ``A(t) = Σ_j (C a)_j exp(-k_j t)``.

    Attributes
    ----------
    name: model name used by :func:`tdt.kinetics.fit_tac`.
    coefficients: the matrix C (n_rates × n_amplitudes) mapping amplitudes to term coefficients.
    description: the formula in words.
    """

    name: str
    coefficients: tuple[tuple[float, ...], ...]
    description: str

    @property
    def n_rates(self) -> int:
        return len(self.coefficients)

    @property
    def n_amplitudes(self) -> int:
        return len(self.coefficients[0])

    @property
    def n_params(self) -> int:
        """Number of fitted parameters p."""
        return self.n_rates + self.n_amplitudes

    @property
    def n_terms(self) -> int:
        """Number of exponential terms (the model 'order')."""
        return self.n_rates

    @property
    def param_names(self) -> tuple[str, ...]:
        amps = tuple(f"a{i + 1}_mbq" for i in range(self.n_amplitudes))
        rates = tuple(f"k{j + 1}_per_h" for j in range(self.n_rates))
        return amps + rates

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.coefficients, dtype=float)

    # --- pure JAX functions of the unconstrained vector θ ----------------------------------------

    def amplitudes(self, theta):
        """Positive amplitudes a (MBq) from θ."""
        return jnp.exp(theta[: self.n_amplitudes])

    def rates(self, theta, decay_constant_per_h):
        """Ordered effective rates k (1/h), all ≥ λ_phys."""
        return decay_constant_per_h + jnp.cumsum(jnp.exp(theta[self.n_amplitudes:]))

    def term_coefficients(self, theta):
        """Signed term coefficients c = C a (MBq)."""
        return jnp.asarray(self.matrix) @ self.amplitudes(theta)

    def predict(self, theta, t_h, decay_constant_per_h):
        """Activity A(t) (MBq) at times ``t_h`` (h)."""
        c = self.term_coefficients(theta)
        k = self.rates(theta, decay_constant_per_h)
        return jnp.exp(-jnp.outer(jnp.asarray(t_h), k)) @ c

    def tia(self, theta, decay_constant_per_h):
        """Time-integrated activity ∫_0^∞ A dt = Σ c_j/k_j (MBq·h)."""
        return jnp.sum(self.term_coefficients(theta) / self.rates(theta, decay_constant_per_h))

    def tia_beyond(self, theta, t_last_h, decay_constant_per_h):
        """∫_{t_L}^∞ A dt = Σ c_j exp(-k_j t_L)/k_j (MBq·h)."""
        c = self.term_coefficients(theta)
        k = self.rates(theta, decay_constant_per_h)
        return jnp.sum(c * jnp.exp(-k * t_last_h) / k)


MODELS: dict[str, ExponentialModel] = {
    m.name: m
    for m in (
        ExponentialModel("mono", ((1.0,),), "a1 exp(-k1 t)"),
        ExponentialModel(
            "uptake_washout", ((1.0,), (-1.0,)), "a1 (exp(-k1 t) - exp(-k2 t)), k2 > k1 (uptake)"
        ),
        ExponentialModel("bi", ((1.0, 0.0), (0.0, 1.0)), "a1 exp(-k1 t) + a2 exp(-k2 t)"),
        ExponentialModel(
            "bi_uptake_washout",
            ((1.0, 0.0), (0.0, 1.0), (-1.0, -1.0)),
            "a1 exp(-k1 t) + a2 exp(-k2 t) - (a1 + a2) exp(-k3 t), k3 fastest (uptake)",
        ),
        ExponentialModel(
            "tri",
            ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
            "a1 exp(-k1 t) + a2 exp(-k2 t) + a3 exp(-k3 t)",
        ),
    )
}

#: Models considered by ``model="auto"``, simplest first.
AUTO_MODELS: tuple[str, ...] = ("mono", "uptake_washout", "bi", "bi_uptake_washout", "tri")

#: Non-parametric (trapezoid) methods accepted by ``fit_tac``.
TRAPEZOID_MODELS: tuple[str, ...] = ("trapezoid", "trapezoid_fitted_tail")


def min_points_for_aicc(model: ExponentialModel) -> int:
    """Fewest time points for which the model's AICc is defined: n > K + 1, K = p + 1.

    K counts the p fitted parameters plus the residual variance (Glatting et al., Med Phys
    2007;34:4285; NUKFIT, Kletting et al. 2013), so ``n >= p + 3``.
    """
    return model.n_params + 3
