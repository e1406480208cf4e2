"""Model selection for sparse sampling: AICc where defined, a noise-prior AIC otherwise, Akaike
weights and model averaging of the time-integrated activity (TIA).

Rule (``model="auto"`` and ``"average"``), for the candidate models with at least one residual
degree of freedom (n ≥ p + 1):

* If every candidate has a defined AICc (n ≥ p + 3, K = p + 1; Glatting et al., Med Phys
  2007;34:4285, NUKFIT: Kletting et al., Med Phys 2013;40:102504) the criterion is AICc.
* Otherwise AICc cannot rank the models a clinical schedule of 3–7 points supports, and the
  residual variance is taken from a prior instead of being estimated: with the measurement
  coefficient of variation ``cv`` known, the log-likelihood is -χ²/2 with
  χ² = WRSS / (cv² · mean(w y²)) (exact for ``weights="relative"``, where w y² = 1; for other
  weights the noise is scaled to the TAC's weighted mean level) and the criterion is
  AIC = χ² + 2p (Akaike 1974; Burnham & Anderson, Model Selection and Multimodel Inference,
  2nd ed. 2002, §2.3 for known variance). ``cv`` comes from the caller, or is pooled over the
  batch from the richest candidate with ≥ 2 residual degrees of freedom (≥ 30 TACs), or is
  :data:`DEFAULT_NOISE_CV`.

In both cases WRSS is floored at :data:`WRSS_FLOOR` · Σ w y², so that models fitting noiseless
data to rounding error tie and the penalty picks the simplest (the generating model).

Akaike weights w_m = exp(-Δ_m/2) / Σ exp(-Δ_m/2) (Burnham & Anderson 2002, §2.9). The averaged
TIA is Σ w_m TIA_m with variance Σ w_m (SE_m² + (TIA_m - TIA_avg)²) — within-model plus
between-model spread (Burnham & Anderson 2002, eq. 4.9 in its mixture form; Buckland et al.,
Biometrics 1997;53:603).
"""

from __future__ import annotations

import numpy as np

#: Measurement CV assumed when neither the caller nor the batch supplies one. ASSUMPTION: 10 %,
#: the middle of the 5–15 % VOI-level SPECT/CT quantification noise used in the benchmark.
DEFAULT_NOISE_CV = 0.10

#: Relative floor of the WRSS in the criteria (numerical zero of a noiseless fit).
WRSS_FLOOR = 1e-18

#: Fewest TACs for which the noise CV is pooled over the batch.
MIN_TACS_POOLED_CV = 30


def aicc(n_points: int, wrss, n_params: int):
    """Corrected AIC of a least-squares fit (K = n_params + 1); NaN where n <= K + 1."""
    k = n_params + 1
    wrss = np.asarray(wrss, dtype=float)
    if n_points - k - 1 <= 0:
        return np.full(wrss.shape, np.nan)
    with np.errstate(divide="ignore"):
        return n_points * np.log(wrss / n_points) + 2 * k + 2 * k * (k + 1) / (n_points - k - 1)


def aicc_defined(n_points: int, n_params: int) -> bool:
    """Whether AICc is defined: n > K + 1 with K = p + 1."""
    return n_points >= n_params + 3


def pooled_noise_cv(wrss, signal, dof: int) -> float:
    """Pooled CV estimate sqrt(Σ WRSS / Σ (dof · mean(w y²))) over a batch (dimensionless)."""
    return float(np.sqrt(np.sum(wrss) / (dof * np.sum(signal))))


def criteria(n_points: int, wrss: dict, n_params: dict, signal, noise_cv: float | None):
    """Per-model criterion arrays and the criterion's name.

    ``wrss``: model → (n_tacs,) weighted residual sums of squares; ``n_params``: model → p;
    ``signal``: (n_tacs,) mean(w y²); ``noise_cv``: the known CV or None (pool / default).
    Returns (dict model → criterion, name, cv used or NaN).
    """
    signal = np.asarray(signal, dtype=float)
    floor = WRSS_FLOOR * n_points * signal
    floored = {m: np.maximum(np.asarray(v, dtype=float), floor) for m, v in wrss.items()}
    if all(aicc_defined(n_points, p) for p in n_params.values()):
        return ({m: aicc(n_points, floored[m], n_params[m]) for m in wrss}, "AICc", float("nan"))
    if noise_cv is None:
        rich = [m for m in wrss if n_points - n_params[m] >= 2]
        if rich and signal.size >= MIN_TACS_POOLED_CV:
            m = max(rich, key=lambda name: n_params[name])
            noise_cv = pooled_noise_cv(wrss[m], signal, n_points - n_params[m])
        else:
            noise_cv = DEFAULT_NOISE_CV
    noise_cv = max(float(noise_cv), 1e-6)
    crit = {m: floored[m] / (noise_cv**2 * signal) + 2 * n_params[m] for m in wrss}
    return crit, "AIC (prior noise CV)", noise_cv


def akaike_weights(crit: dict) -> dict:
    """Akaike weights per model (arrays over TACs); NaN criteria get weight 0."""
    names = list(crit)
    stacked = np.stack([np.where(np.isfinite(crit[m]), crit[m], np.inf) for m in names])
    best = np.min(stacked, axis=0)
    rel = np.exp(-0.5 * (stacked - best))
    rel = np.where(np.isfinite(stacked), rel, 0.0)
    total = np.sum(rel, axis=0)
    return {m: rel[i] / total for i, m in enumerate(names)}


def average_tia(weights: dict, tia: dict, tia_se: dict):
    """Akaike-weight averaged TIA and its SE including between-model spread (MBq·h)."""
    names = list(weights)
    w = np.stack([weights[m] for m in names])
    values = np.stack([tia[m] for m in names])
    se = np.stack([np.nan_to_num(tia_se[m], nan=0.0) for m in names])
    mean = np.sum(w * values, axis=0)
    var = np.sum(w * (se**2 + (values - mean) ** 2), axis=0)
    return mean, np.sqrt(var)
