"""Fitting time–activity curves: one TAC (:func:`fit_tac`) or many at once (:func:`fit_tacs`).

Model selection (``model="auto"``) follows NUKFIT (Kletting et al., Med Phys 2013;40:102504):
every candidate model that the number of points supports is fitted and the one with the smallest
corrected Akaike information criterion (Glatting et al., Med Phys 2007;34:4285) is kept,

    AICc = n ln(WRSS/n) + 2K + 2K(K+1)/(n - K - 1),   K = p + 1,

with p fitted parameters (+1 for the residual variance). A model is a candidate only when
n > K + 1 (``n >= p + 3``); with fewer than 5 points only the mono-exponential remains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from tdt.errors import InputError, unknown_name_error
from tdt.kinetics.models import (
    AUTO_MODELS,
    MAX_TERMS,
    MODELS,
    TRAPEZOID_MODELS,
    min_points_for_aicc,
)
from tdt.kinetics.trapezoid import tia_trapezoid
from tdt.kinetics.validation import (
    check_activity,
    check_tac_plausibility,
    check_times,
    resolve_weights,
)


def aicc(n_points: int, wrss, n_params: int):
    """Corrected AIC of a least-squares fit (K = n_params + 1); NaN where n <= K + 1."""
    k = n_params + 1
    wrss = np.asarray(wrss, dtype=float)
    if n_points - k - 1 <= 0:
        return np.full(wrss.shape, np.nan)
    with np.errstate(divide="ignore"):
        return n_points * np.log(wrss / n_points) + 2 * k + 2 * k * (k + 1) / (n_points - k - 1)


@dataclass(frozen=True)
class BatchTacFit:
    """Fits of many TACs sharing their time points (arrays with a leading axis n_tacs).

    ``coefficients_mbq`` and ``rates_per_h`` (n_tacs, 3) hold each fit as
    ``A(t) = Σ_j c_j exp(-k_j t)`` (unused terms have c = 0); ``model_index`` indexes
    ``model_names``. ``tia_mbq_h``, ``tia_se_mbq_h`` (delta method) in MBq·h; ``aicc`` of the
    selected model (NaN where undefined); ``fraction_extrapolated`` = TIA after the last time
    point / TIA; ``dof`` = n_times - p.
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
    ``candidate_aicc`` lists the AICc of every model tried by ``model="auto"``.
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


def _resolve_models(model, n_times: int) -> tuple[str, ...]:
    if isinstance(model, str):
        if model == "auto":
            eligible = tuple(m for m in AUTO_MODELS if n_times >= min_points_for_aicc(MODELS[m]))
            if eligible:
                return eligible
            if n_times >= 3:
                return ("mono",)
            raise InputError(
                f"times_h: model='auto' needs at least 3 time points, got {n_times}"
            )
        names = (model,)
    else:
        names = tuple(model)
        if not names:
            raise InputError("model: expected a model name, 'auto' or a non-empty list of names")
    for name in names:
        if name in TRAPEZOID_MODELS and len(names) == 1:
            continue
        if name not in MODELS:
            raise unknown_name_error("model", name, (*MODELS, *TRAPEZOID_MODELS, "auto"))
        p = MODELS[name].n_params
        if n_times < p:
            raise InputError(
                f"times_h: model {name!r} has {p} parameters and needs at least {p} time points, "
                f"got {n_times}"
            )
    if len(names) > 1:
        eligible = tuple(m for m in names if n_times >= min_points_for_aicc(MODELS[m]))
        if not eligible:
            raise InputError(
                f"times_h: none of the models {names} has a defined AICc with {n_times} time "
                "points (a model with p parameters needs p + 3 points)"
            )
        names = eligible
    return names


def _fit_exponential_batch(name, t, y, w, lam, chunk_size, max_steps, solver, n_starts):
    import jax.numpy as jnp

    from tdt.kinetics.solver import fit_model_batch

    n = y.shape[0]
    # round the batch up to a power of two: fewer distinct shapes, fewer compilations
    size = max(1, min(chunk_size, 1 << (n - 1).bit_length()))
    parts = []
    for start in range(0, n, size):
        yc, wc = y[start:start + size], w[start:start + size]
        short = size - yc.shape[0]
        if short:  # pad the last chunk so that one compiled shape serves every chunk
            yc = np.concatenate([yc, np.repeat(yc[:1], short, axis=0)])
            wc = np.concatenate([wc, np.repeat(wc[:1], short, axis=0)])
        out = fit_model_batch(name, jnp.asarray(t), jnp.asarray(yc), jnp.asarray(wc), lam,
                              max_steps=max_steps, solver=solver, n_starts=n_starts)
        parts.append({k: np.asarray(v)[: size - short] for k, v in out.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _decay_constant(nuclide: str) -> float:
    from tdt.physics import nuclide as get_nuclide

    return get_nuclide(nuclide).decay_constant_per_h


def fit_tacs(
    times_h,
    activity_mbq,
    model="auto",
    weights=None,
    nuclide: str = "Lu-177",
    chunk_size: int = 4096,
    max_steps: int = 80,
    solver: str = "lm",
    n_starts: int = 1,
) -> BatchTacFit:
    """Fit many TACs with shared time points, each by weighted least squares (jitted, vmapped).

    Parameters
    ----------
    times_h: (n_times,) strictly increasing times after administration (h).
    activity_mbq: (n_tacs, n_times) activities (MBq), finite and >= 0 — e.g. every voxel of a
        SPECT series, or simulated patients.
    model: ``"auto"`` (AICc selection, per TAC, among the models the number of points supports),
        one of ``"mono"``, ``"uptake_washout"``, ``"bi"``, ``"bi_uptake_washout"``, ``"tri"``, or a
        list of these to select from by AICc.
    weights: ``None``/``"uniform"``, ``"relative"`` (1/y²), ``"poisson"`` (1/y), or positive array
        broadcastable to ``activity_mbq`` (relative weights ∝ 1/variance; the residual variance is
        estimated, as lmfit's ``scale_covar=True``).
    nuclide: fixes the physical decay constant, the lower bound of every rate.
    chunk_size: TACs per compiled solve; bounds memory for voxel-wise fits.
    max_steps: Levenberg–Marquardt iterations (fixed count for ``"lm"``, a cap for optimistix).
    solver: ``"lm"`` (default, fixed-iteration LM) or ``"optimistix"``.
    n_starts: solver runs per TAC and model from grid starts in different basins (best kept);
        2 guards against local minima at ~1.6× the cost.
    """
    t = check_times(times_h)
    y = check_activity(activity_mbq, t.size, batched=True)
    w = resolve_weights(weights, y)
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InputError(f"chunk_size: expected a positive integer, got {chunk_size!r}")
    if not isinstance(n_starts, (int, np.integer)) or not 1 <= n_starts <= 8:
        raise InputError(f"n_starts: expected an integer 1..8, got {n_starts!r}")
    if solver not in ("lm", "optimistix"):
        raise InputError(f"solver: unknown {solver!r}; expected 'lm' or 'optimistix'")
    names = _resolve_models(model, t.size)
    if names[0] in TRAPEZOID_MODELS:
        raise InputError(
            f"model: {names[0]!r} is available in fit_tac and tdt.kinetics.tia_trapezoid; "
            "fit_tacs fits exponential models"
        )
    lam = _decay_constant(nuclide)
    n_tacs = y.shape[0]
    results = {
        name: _fit_exponential_batch(name, t, y, w, lam, chunk_size, max_steps, solver, n_starts)
        for name in names
    }
    crit = {name: aicc(t.size, results[name]["wrss"], MODELS[name].n_params) for name in names}
    if len(names) == 1:
        index = np.zeros(n_tacs, dtype=int)
    else:
        stacked = np.stack([np.where(np.isnan(crit[n]), np.inf, crit[n]) for n in names])
        index = np.argmin(stacked, axis=0)

    def pick(key, width=None):
        out = []
        for name in names:
            value = results[name][key]
            if width is not None:
                value = np.pad(value, ((0, 0), (0, width - value.shape[1])))
            out.append(value)
        return np.take_along_axis(np.stack(out), index[None, ..., None] if width else index[None],
                                  axis=0)[0]

    tia = pick("tia")
    p = np.asarray([MODELS[n].n_params for n in names])[index]
    return BatchTacFit(
        times_h=t,
        model_names=names,
        model_index=index,
        coefficients_mbq=pick("coefficients", MAX_TERMS),
        rates_per_h=np.where(pick("rates", MAX_TERMS) > 0, pick("rates", MAX_TERMS), 1.0),
        tia_mbq_h=tia,
        tia_se_mbq_h=np.where(t.size > p, pick("tia_se"), np.nan),
        aicc=np.stack([crit[n] for n in names])[index, np.arange(n_tacs)],
        fraction_extrapolated=np.divide(pick("tia_beyond"), tia, out=np.zeros_like(tia),
                                        where=tia > 0),
        wrss=pick("wrss"),
        dof=t.size - p,
        converged=pick("converged"),
        candidate_aicc=crit,
    )


def fit_tac(
    times_h,
    activity_mbq,
    model="auto",
    weights=None,
    nuclide: str = "Lu-177",
    head: str = "zero",
    n_tail_points: int = 3,
) -> TacFit:
    """Fit one time–activity curve and integrate it.

    ``times_h`` (h) strictly increasing, ``activity_mbq`` (MBq) finite and >= 0, same length.
    ``model``: ``"auto"`` (AICc selection, see module doc), an exponential model name or a list of
    names (see :func:`fit_tacs`), or ``"trapezoid"`` (physical-decay tail) /
    ``"trapezoid_fitted_tail"`` (mono-exponential fitted to the last ``n_tail_points`` points);
    ``head`` sets the trapezoid's 0 → t_1 assumption ("zero" or "constant").
    Returns a :class:`TacFit` with ``.tia_mbq_h`` (MBq·h), ``.tia_se_mbq_h`` (delta method),
    ``.aicc``, ``.fraction_extrapolated`` and ``.predict(t_h)``.
    """
    t = check_times(times_h)
    y = check_activity(activity_mbq, t.size, batched=False)
    check_tac_plausibility(t, y, nuclide)
    names = _resolve_models(model, t.size)
    if names[0] in TRAPEZOID_MODELS:
        lam = _decay_constant(nuclide)
        tail = "fitted" if names[0] == "trapezoid_fitted_tail" else "physical"
        tia, beyond, rate = tia_trapezoid(t, y, lam, tail=tail, head=head,
                                          n_tail_points=n_tail_points)
        level = beyond * rate
        return TacFit(
            model=names[0],
            params={"tail_rate_per_h": float(rate), "tail_level_mbq": float(level),
                    "head_activity_mbq": 0.0 if head == "zero" else float(y[0])},
            tia_mbq_h=float(tia), tia_se_mbq_h=float("nan"), aicc=float("nan"),
            fraction_extrapolated=float(beyond / tia) if tia > 0 else float("nan"),
            times_h=t, activity_mbq=y, coefficients_mbq=np.zeros(0), rates_per_h=np.zeros(0),
            wrss=float("nan"), dof=0, converged=True,
        )
    batch = fit_tacs(t, y[None, :], model=list(names) if len(names) > 1 else names[0],
                     weights=weights if weights is None or isinstance(weights, str)
                     else np.asarray(weights, dtype=float)[None, ...], nuclide=nuclide,
                     chunk_size=1)
    name = str(batch.model[0])
    m = MODELS[name]
    coefficients = batch.coefficients_mbq[0, : m.n_rates]
    rates = batch.rates_per_h[0, : m.n_rates]
    amplitudes = np.linalg.lstsq(m.matrix, coefficients, rcond=None)[0]
    params = dict(zip(m.param_names, [*map(float, amplitudes), *map(float, rates)], strict=True))
    return TacFit(
        model=name,
        params=params,
        tia_mbq_h=float(batch.tia_mbq_h[0]),
        tia_se_mbq_h=float(batch.tia_se_mbq_h[0]),
        aicc=float(batch.aicc[0]),
        fraction_extrapolated=float(batch.fraction_extrapolated[0]),
        times_h=t,
        activity_mbq=y,
        coefficients_mbq=coefficients,
        rates_per_h=rates,
        wrss=float(batch.wrss[0]),
        dof=int(batch.dof[0]),
        converged=bool(batch.converged[0]),
        candidate_aicc={k: float(v[0]) for k, v in batch.candidate_aicc.items()},
    )
