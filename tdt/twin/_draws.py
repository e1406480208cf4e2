"""Posterior draws of a patient's response to one cycle, in the form the planner needs.

For linear kinetics (the reduced model, or any PBPK away from receptor saturation) the absorbed
dose-rate of every organ is proportional to the administered activity A, so per cycle

    D(A)   = d · A                 (d: absorbed dose per activity, Gy/MBq)
    BED(A) = d · A + q · A²        (q: Gy/MBq², from the Lea–Catcheside G-factor)

with q the quadratic BED coefficient of the dose rate per unit activity
(:func:`tdt.radiobiology.quadratic_bed_coefficient`, the Lea–Catcheside G-factor integrated term
by term, Dale, Br J Radiol 1985;58:515). For one exponential it is Dale's
q = d² · T_rep / (T_rep + T_eff) / (α/β) (:func:`tdt.radiobiology.g_factor_monoexponential`).
Every BED coefficient here comes from tdt.radiobiology; this module only arranges them per
cycle, draw and organ.

Cycles 4–8 weeks apart do not interact in the G-factor (exp(-μ Δt) ≈ 0 for Δt ≫ T_rep) and the
residual activity of the previous cycle is negligible when Δt ≫ T_eff, so the cumulative BED of a
schedule is the sum of per-cycle BEDs (the usual multi-cycle convention, e.g. Bodei 2008).

``DoseDraws`` holds d and q per cycle, draw and organ, plus what has already been delivered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tdt.errors import InputError, unknown_name_error
from tdt.physics import nuclide as get_nuclide
from tdt.radiobiology import g_factor_monoexponential, is_lesion, quadratic_bed_coefficient
from tdt.twin._tissues import LinearQuadratic, tissue_parameters

__all__ = ("DoseDraws", "quadratic_bed_coefficient")


def _as_float_array(name: str, value, ndim: int | None = None) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if ndim is not None and array.ndim != ndim:
        raise InputError(f"{name}: expected an array with {ndim} dimensions, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name}: contains non-finite values (NaN or inf); expected finite numbers")
    return array


@dataclass(frozen=True)
class DoseDraws:
    """Per-draw, per-organ response of the remaining cycles (linear-quadratic in activity).

    Attributes
    ----------
    organs: organ / lesion names (canonical, e.g. ``kidneys``, ``red_marrow``, ``lesion_1``).
    dose_per_mbq: (n_cycles, n_draws, n_organs) absorbed dose per administered activity, Gy/MBq.
        ``n_cycles`` may be 1: the same response is then used for every future cycle.
    bed_quadratic: (n_cycles, n_draws, n_organs) q in BED = d A + q A², Gy/MBq².
    prior_dose_gy, prior_bed_gy: (n_draws, n_organs) absorbed dose / BED already delivered.
    dose_only: organs without linear-quadratic parameters (e.g. lacrimal glands): q = 0, their
        BED is undefined and only absorbed-dose statements about them are allowed.
    """

    organs: tuple[str, ...]
    dose_per_mbq: np.ndarray
    bed_quadratic: np.ndarray
    prior_dose_gy: np.ndarray = field(default=None)  # type: ignore[assignment]
    prior_bed_gy: np.ndarray = field(default=None)  # type: ignore[assignment]
    dose_only: tuple[str, ...] = ()

    def __post_init__(self):
        organs = tuple(str(o) for o in self.organs)
        if len(set(organs)) != len(organs) or not organs:
            raise InputError(f"organs: expected unique, non-empty organ names, got {organs}")
        d = _as_float_array("dose_per_mbq", self.dose_per_mbq)
        q = _as_float_array("bed_quadratic", self.bed_quadratic)
        if d.ndim == 2:
            d = d[None]
        if q.ndim == 2:
            q = q[None]
        if d.ndim != 3 or d.shape[-1] != len(organs):
            raise InputError(
                f"dose_per_mbq: expected shape (n_cycles, n_draws, {len(organs)}) or "
                f"(n_draws, {len(organs)}), got {np.shape(self.dose_per_mbq)}"
            )
        if q.shape != d.shape:
            raise InputError(f"bed_quadratic: shape {q.shape} must equal dose_per_mbq's {d.shape}")
        if np.any(d < 0) or np.any(q < 0):
            raise InputError("dose_per_mbq / bed_quadratic: expected values >= 0")
        n_draws = d.shape[1]
        zeros = np.zeros((n_draws, len(organs)))
        pd = zeros if self.prior_dose_gy is None else _as_float_array("prior_dose_gy", self.prior_dose_gy)
        pb = zeros if self.prior_bed_gy is None else _as_float_array("prior_bed_gy", self.prior_bed_gy)
        for name, value in (("prior_dose_gy", pd), ("prior_bed_gy", pb)):
            if value.shape != (n_draws, len(organs)):
                raise InputError(f"{name}: expected shape {(n_draws, len(organs))}, got {value.shape}")
            if np.any(value < 0):
                raise InputError(f"{name}: expected values >= 0")
        object.__setattr__(self, "organs", organs)
        object.__setattr__(self, "dose_per_mbq", d)
        object.__setattr__(self, "bed_quadratic", q)
        object.__setattr__(self, "prior_dose_gy", pd)
        object.__setattr__(self, "prior_bed_gy", pb)
        dose_only = tuple(str(o) for o in self.dose_only)
        for organ in dose_only:
            if organ not in organs:
                raise unknown_name_error("dose_only organ", organ, organs)
        object.__setattr__(self, "dose_only", dose_only)

    # ------------------------------------------------------------------ properties
    @property
    def n_draws(self) -> int:
        return self.dose_per_mbq.shape[1]

    @property
    def n_cycles_known(self) -> int:
        return self.dose_per_mbq.shape[0]

    @property
    def tumour_organs(self) -> tuple[str, ...]:
        return tuple(o for o in self.organs if is_lesion(o))

    def index(self, organ: str) -> int:
        if organ not in self.organs:
            raise unknown_name_error("organ", organ, self.organs)
        return self.organs.index(organ)

    def coefficients(self, n_cycles: int) -> tuple[np.ndarray, np.ndarray]:
        """d and q for ``n_cycles`` future cycles, (n_cycles, n_draws, n_organs) each."""
        k = self.n_cycles_known
        if n_cycles <= k:
            return self.dose_per_mbq[:n_cycles], self.bed_quadratic[:n_cycles]
        # the last known cycle's response is carried forward
        reps = np.concatenate([np.arange(k), np.full(n_cycles - k, k - 1)])
        return self.dose_per_mbq[reps], self.bed_quadratic[reps]

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_monoexponential(
        cls,
        organs: Sequence[str],
        dose_per_mbq,
        effective_half_life_h,
        tissues: Mapping[str, LinearQuadratic] | None = None,
        **kwargs,
    ) -> DoseDraws:
        """From absorbed dose per activity (Gy/MBq) and effective half-life (h) per draw/organ.

        Arrays have shape (n_draws, n_organs) or (n_cycles, n_draws, n_organs). Dale's formula
        (Br J Radiol 1985;58:515): q = d² T_rep / (T_rep + T_eff) / (α/β).
        """
        organs = tuple(organs)
        d = _as_float_array("dose_per_mbq", dose_per_mbq)
        teff = _as_float_array("effective_half_life_h", effective_half_life_h)
        if teff.shape != d.shape:
            raise InputError(f"effective_half_life_h: shape {teff.shape} must equal {d.shape}")
        if np.any(teff <= 0):
            raise InputError("effective_half_life_h: expected values > 0 h")
        ab, trep = _lq_arrays(organs, tissues)
        q = np.asarray(d**2 * g_factor_monoexponential(trep, teff) / ab)
        return cls(organs, d, q, **kwargs)

    @classmethod
    def from_exponentials(
        cls,
        organs: Sequence[str],
        amplitudes_gy_per_h_per_mbq,
        rates_per_h,
        tissues: Mapping[str, LinearQuadratic] | None = None,
        **kwargs,
    ) -> DoseDraws:
        """From dose-rate exponentials per unit activity: arrays (..., n_organs, K).

        d = Σ a_k / λ_k; q from :func:`quadratic_bed_coefficient`. Negative amplitudes (an
        uptake phase) are allowed as long as the dose rate stays >= 0. Organs without LQ
        parameters (e.g. the lacrimal glands) become ``dose_only`` (q = 0).
        """
        organs = tuple(organs)
        a = _as_float_array("amplitudes_gy_per_h_per_mbq", amplitudes_gy_per_h_per_mbq)
        lam = _as_float_array("rates_per_h", rates_per_h)
        if a.shape != lam.shape or a.ndim < 3 or a.shape[-2] != len(organs):
            raise InputError(
                f"amplitudes/rates: expected equal shapes (..., n_draws, {len(organs)}, K), "
                f"got {a.shape} and {lam.shape}"
            )
        if np.any(lam <= 0):
            raise InputError("rates_per_h: expected rates > 0 1/h (physical decay included)")
        ab, trep, dose_only = _lq_arrays(organs, tissues, allow_dose_only=True)
        d = (a / lam).sum(axis=-1)
        q = np.asarray(quadratic_bed_coefficient(a, lam, np.nan_to_num(ab, nan=1.0),
                                                 np.nan_to_num(trep, nan=1.0)))
        q = np.where(np.isnan(ab), 0.0, q)
        kwargs.setdefault("dose_only", dose_only)
        return cls(organs, d, q, **kwargs)

    @classmethod
    def from_dose_prediction(
        cls,
        prediction,
        activity_mbq: float,
        organs: Sequence[str] | None = None,
        tissues: Mapping[str, LinearQuadratic] | None = None,
        nuclide: str = "Lu-177",
        **kwargs,
    ) -> DoseDraws:
        """From a :class:`tdt.inference.DosePrediction` (``Posterior.predict_doses``) of one
        cycle of ``activity_mbq`` (MBq): d = D / A per draw (Gy/MBq, linear kinetics) and Dale's
        q from each draw's effective half-life (capped at the physical half-life of ``nuclide``,
        :func:`tdt.physics.nuclide`: a still rising curve in the washout window has no finite T_eff). The red-marrow column is the
        prediction's marrow method (blood or image, remainder cross-dose included), so the
        planner's marrow constraint uses exactly those draws. Organs without LQ parameters
        (lacrimal glands) become ``dose_only``.
        """
        if not (np.isfinite(activity_mbq) and activity_mbq > 0):
            raise InputError(f"activity_mbq: {activity_mbq!r}; expected the cycle's activity > 0 MBq")
        physical_half_life_h = get_nuclide(nuclide).half_life_h
        organs = tuple(prediction.dose_gy) if organs is None else tuple(organs)
        for organ in organs:
            if organ not in prediction.dose_gy:
                raise unknown_name_error("organ", organ, tuple(prediction.dose_gy))
        d = np.stack([np.asarray(prediction.dose_gy[o], dtype=float) for o in organs],
                     axis=-1) / activity_mbq
        teff = np.stack([np.minimum(np.asarray(prediction.effective_half_life_h.get(
            o, np.full(d.shape[0], physical_half_life_h)), dtype=float), physical_half_life_h)
            for o in organs], axis=-1)
        ab, trep, dose_only = _lq_arrays(organs, tissues, allow_dose_only=True)
        q = np.where(np.isnan(ab), 0.0, d**2 * np.asarray(g_factor_monoexponential(
            np.nan_to_num(trep, nan=1.0), teff)) / np.nan_to_num(ab, nan=1.0))
        return cls(organs, d, q, dose_only=dose_only, **kwargs)

    def with_prior(self, prior_dose_gy, prior_bed_gy) -> DoseDraws:
        """The same response with a different delivered dose / BED (n_draws, n_organs)."""
        return DoseDraws(self.organs, self.dose_per_mbq, self.bed_quadratic,
                         prior_dose_gy, prior_bed_gy, self.dose_only)

    def with_drift(self, n_cycles: int, drift_sd: float, organs: Sequence[str] | None = None,
                   drift_mean: float = 0.0, seed: int = 0) -> DoseDraws:
        """Add a lognormal random walk of uptake across future cycles (per draw).

        The posterior describes the last imaged cycle, so the next cycle is one step away.
        Cycle c (0 = next) has its uptake multiplied by exp(Σ_{i<=c} ε_i), ε_i ~ N(drift_mean,
        drift_sd²), independently per draw, for ``organs`` (default: the lesions, whose receptor
        density falls with response). d scales with the multiplier, q with its square.
        """
        if drift_sd < 0:
            raise InputError(f"drift_sd: expected >= 0, got {drift_sd}")
        organs = self.tumour_organs if organs is None else tuple(organs)
        mask = np.array([o in organs for o in self.organs])
        d, q = self.coefficients(n_cycles)
        rng = np.random.default_rng(seed)
        steps = rng.normal(drift_mean, drift_sd, size=(n_cycles, self.n_draws, 1))
        mult = np.where(mask, np.exp(np.cumsum(steps, axis=0)), 1.0)
        return DoseDraws(self.organs, d * mult, q * mult**2, self.prior_dose_gy, self.prior_bed_gy,
                         self.dose_only)


def _lq_arrays(organs, tissues, allow_dose_only: bool = False):
    """alpha/beta (Gy) and repair half-time (h) per organ; with ``allow_dose_only`` an organ
    without LQ parameters gets NaN and is listed in the third return value (dose only)."""
    tissues = dict(tissues or {})
    ab, trep, dose_only = [], [], []
    for organ in organs:
        try:
            lq = tissues.get(organ) or tissue_parameters(organ)
        except InputError:
            if not allow_dose_only:
                raise
            dose_only.append(organ)
            ab.append(np.nan)
            trep.append(np.nan)
            continue
        ab.append(lq.alpha_beta_gy)
        trep.append(lq.repair_half_time_h)
    if allow_dose_only:
        return np.array(ab), np.array(trep), tuple(dose_only)
    return np.array(ab), np.array(trep)
