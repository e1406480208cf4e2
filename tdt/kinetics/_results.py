"""Result types of the per-TAC fits: :class:`BatchTacFit` (many TACs) and :class:`TacFit` (one)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from tdt.kinetics._models import TRAPEZOID_MODELS


@dataclass(frozen=True)
class BatchTacFit:
    """Fits of many TACs sharing their time points (arrays with a leading axis n_tacs).

    ``coefficients_mbq`` and ``rates_per_h`` (n_tacs, 3) hold each fit as
    ``A(t) = Σ_j c_j exp(-k_j t)`` (unused terms have c = 0; for ``model="average"`` the
    Akaike-weighted terms of every candidate); ``model_index`` indexes ``model_names``.
    ``tia_mbq_h``, ``tia_se_mbq_h`` (delta method; for ``"average"`` with the between-model
    spread) in MBq·h; ``aicc`` of the selected model (NaN where undefined);
    ``fraction_extrapolated`` = TIA after the last time point / TIA; ``dof`` = n_times - p.
    ``akaike_weights``: model → (n_tacs,) weights from ``criterion`` ("AICc" or "AIC (prior
    noise CV)", with ``noise_cv`` the CV used).
    """

    times_h: np.ndarray
    model_names: tuple[str, ...]
    model_index: np.ndarray
    coefficients_mbq: np.ndarray
    rates_per_h: np.ndarray
    tia_mbq_h: np.ndarray
    tia_se_mbq_h: np.ndarray
    aicc: np.ndarray
    fraction_extrapolated: np.ndarray
    wrss: np.ndarray
    dof: np.ndarray
    converged: np.ndarray
    candidate_aicc: dict[str, np.ndarray] = field(default_factory=dict)
    akaike_weights: dict[str, np.ndarray] = field(default_factory=dict)
    criterion: str = "AICc"
    noise_cv: float = float("nan")

    def __len__(self) -> int:
        return int(self.tia_mbq_h.shape[0])

    @property
    def model(self) -> np.ndarray:
        """Selected model name per TAC."""
        return np.asarray(self.model_names, dtype=object)[self.model_index]

    def predict(self, t_h) -> np.ndarray:
        """Fitted activity (MBq) at ``t_h`` (h): shape (n_tacs, len(t_h))."""
        t = np.atleast_1d(np.asarray(t_h, dtype=float))
        return np.einsum(
            "nj,njt->nt", self.coefficients_mbq, np.exp(-self.rates_per_h[..., None] * t)
        )

    def tia_ci95_mbq_h(self) -> tuple[np.ndarray, np.ndarray]:
        """95 % interval TIA ± t_{0.975, dof} · SE (Student t with n - p degrees of freedom)."""
        q = stats.t.ppf(0.975, np.maximum(self.dof, 1))
        return self.tia_mbq_h - q * self.tia_se_mbq_h, self.tia_mbq_h + q * self.tia_se_mbq_h


@dataclass(frozen=True)
class TacFit:
    """Fit of one TAC.

    ``params``: natural parameters of the selected model (``a1_mbq``..., ``k1_per_h``... effective
    rates including physical decay; for trapezoid methods ``tail_rate_per_h``).
    ``tia_mbq_h`` and ``tia_se_mbq_h`` (delta method; NaN for trapezoid methods) in MBq·h.
    ``candidate_aicc`` lists the AICc of every model tried by ``model="auto"``, and
    ``akaike_weights`` their Akaike weights (see :mod:`tdt.kinetics._selection`).
    """

    model: str
    params: dict[str, float]
    tia_mbq_h: float
    tia_se_mbq_h: float
    aicc: float
    fraction_extrapolated: float
    times_h: np.ndarray
    activity_mbq: np.ndarray
    coefficients_mbq: np.ndarray
    rates_per_h: np.ndarray
    wrss: float
    dof: int
    converged: bool
    candidate_aicc: dict[str, float] = field(default_factory=dict)
    akaike_weights: dict[str, float] = field(default_factory=dict)

    def predict(self, t_h) -> np.ndarray:
        """Fitted activity (MBq) at ``t_h`` (h). Trapezoid methods: linear interpolation between
        the points (head and tail as in the fit)."""
        t = np.asarray(t_h, dtype=float)
        if self.model in TRAPEZOID_MODELS:
            t0, tl = self.times_h[0], self.times_h[-1]
            head = self.params["head_activity_mbq"] + (
                self.activity_mbq[0] - self.params["head_activity_mbq"]
            ) * np.clip(t / t0, 0, 1) if t0 > 0 else self.activity_mbq[0]
            mid = np.interp(t, self.times_h, self.activity_mbq)
            tail = self.params["tail_level_mbq"] * np.exp(-self.params["tail_rate_per_h"] * (t - tl))
            return np.where(t < t0, head, np.where(t > tl, tail, mid))
        return np.exp(-np.multiply.outer(t, self.rates_per_h)) @ self.coefficients_mbq

    def tia_ci95_mbq_h(self) -> tuple[float, float]:
        """95 % interval TIA ± t_{0.975, dof} · SE (Student t with n - p degrees of freedom)."""
        q = float(stats.t.ppf(0.975, max(self.dof, 1)))
        return self.tia_mbq_h - q * self.tia_se_mbq_h, self.tia_mbq_h + q * self.tia_se_mbq_h
