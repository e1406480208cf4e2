"""Fitting time–activity curves: one TAC (:func:`fit_tac`) or many at once (:func:`fit_tacs`).

Model selection (``model="auto"``) fits every model with at least one residual degree of
freedom (n ≥ p + 1) and keeps the one with the smallest criterion: the corrected Akaike
information criterion (NUKFIT, Kletting et al., Med Phys 2013;40:102504; Glatting et al., Med Phys
2007;34:4285) where it is defined for every candidate, otherwise AIC with the measurement noise
taken from a prior (see :mod:`tdt.kinetics._selection`). ``model="average"`` averages the TIA over
the candidates with Akaike weights, the SE including the between-model spread.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tdt._types import CurveLike, TimesLike
from tdt.errors import InputError, unknown_name_error
from tdt.kinetics._models import (
    AUTO_MODELS,
    MAX_TERMS,
    MODELS,
    TRAPEZOID_MODELS,
)
from tdt.kinetics._population import POPULATION_MODELS, fit_population
from tdt.kinetics._priors import load_prior
from tdt.kinetics._results import BatchTacFit, TacFit
from tdt.kinetics._selection import aicc, akaike_weights, average_tia, criteria
from tdt.kinetics._solver import fit_model_batch
from tdt.kinetics._trapezoid import tia_trapezoid
from tdt.kinetics._validation import (
    check_activity,
    check_tac_plausibility,
    check_times,
    resolve_weights,
)
from tdt.physics import nuclide as get_nuclide

#: Smallest batch that ``method="auto"`` fits as a population.
MIN_POPULATION_TACS = 20

__all__ = ["BatchTacFit", "TacFit", "aicc", "fit_tac", "fit_tacs"]


def _resolve_models(model, n_times: int) -> tuple[str, ...]:
    """Candidate models: for ``"auto"``/``"average"`` and lists, those with n ≥ p + 1."""
    if isinstance(model, str):
        if model in ("auto", "average"):
            eligible = tuple(m for m in AUTO_MODELS if n_times >= MODELS[m].n_params + 1)
            if eligible:
                return eligible
            raise InputError(
                f"times_h: model={model!r} needs at least 3 time points, got {n_times}"
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
            raise unknown_name_error("model", name,
                                     (*MODELS, *TRAPEZOID_MODELS, "auto", "average"))
        p = MODELS[name].n_params
        if n_times < p:
            raise InputError(
                f"times_h: model {name!r} has {p} parameters and needs at least {p} time points, "
                f"got {n_times}"
            )
    if len(names) > 1:
        eligible = tuple(m for m in names if n_times >= MODELS[m].n_params + 1)
        if not eligible:
            raise InputError(
                f"times_h: none of the models {names} leaves a residual degree of freedom with "
                f"{n_times} time points (a model with p parameters needs p + 1 points)"
            )
        names = eligible
    return names


def _fit_exponential_batch(name, t, y, w, lam, chunk_size, max_steps, solver, n_starts):
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
    return get_nuclide(nuclide).decay_constant_per_h


def fit_tacs(
    times_h: TimesLike,
    activity_mbq: CurveLike,
    model="auto",
    weights: CurveLike | str | None = None,
    nuclide: str = "Lu-177",
    chunk_size: int = 4096,
    max_steps: int = 80,
    solver: str = "lm",
    n_starts: int = 1,
    noise_cv: float | None = None,
    method: str = "auto",
    prior=None,
):
    """Fit many TACs with shared time points, each by weighted least squares (jitted, vmapped).

    Parameters
    ----------
    times_h: (n_times,) strictly increasing times after administration (h).
    activity_mbq: (n_tacs, n_times) activities (MBq), finite and >= 0 — e.g. every voxel of a
        SPECT series, or simulated patients.
    model: ``"auto"`` (per TAC, the model with the largest Akaike weight among those with
        n ≥ p + 1; see :mod:`tdt.kinetics._selection`), ``"average"`` (Akaike-weight average of
        the candidates' TIA; SE with between-model spread), one of ``"mono"``,
        ``"uptake_washout"``, ``"bi"``, ``"bi_uptake_washout"``, ``"tri"``, or a list of these
        to select from.
    weights: ``None``/``"uniform"``, ``"relative"`` (1/y²), ``"poisson"`` (1/y), or positive array
        broadcastable to ``activity_mbq`` (relative weights ∝ 1/variance; the residual variance is
        estimated, as lmfit's ``scale_covar=True``).
    nuclide: fixes the physical decay constant, the lower bound of every rate.
    chunk_size: TACs per compiled solve; bounds memory for voxel-wise fits.
    max_steps: Levenberg–Marquardt iterations (fixed count for ``"lm"``, a cap for optimistix).
    solver: ``"lm"`` (default, fixed-iteration LM) or ``"optimistix"``.
    n_starts: solver runs per TAC and model from grid starts in different basins (best kept);
        2 guards against local minima at ~1.6× the cost.
    noise_cv: measurement CV used by model selection when AICc is undefined for a candidate
        (None: pooled over the batch when it has ≥ 30 TACs, else 10 %).
    method: ``"auto"`` (default): ``"population"`` for a batch of ≥ 20 TACs with
        ``model="auto"``/``"average"`` and all times > 0, else ``"per_tac"``.
        ``"population"``: hierarchical empirical-Bayes fit over the batch with Bayesian averaging
        of the forms (:mod:`tdt.kinetics._population`; returns a
        :class:`~tdt.kinetics._population.PopulationTacFit` with posterior mean, SD and 95 %
        credible interval per TAC). ``"per_tac"``: independent least squares per TAC
        (a :class:`BatchTacFit`). ``weights``, ``chunk_size``, ``max_steps``, ``solver``,
        ``n_starts`` and ``noise_cv`` apply to the per-TAC path; the population fit has its own
        constant-CV error model with the CV estimated from the batch.
    prior: a published population prior (``"psma617:kidneys"``, see
        :func:`tdt.kinetics._priors.load_prior`) or dict form → PopulationPrior: fits each TAC
        with that prior held fixed (implies ``method="population"``; any number of TACs/points).
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
    if method not in ("auto", "per_tac", "population"):
        raise InputError(f"method: unknown {method!r}; expected 'auto', 'per_tac' or "
                         "'population'")
    if prior is not None or method == "population" or (
            method == "auto" and model in ("auto", "average")
            and y.shape[0] >= MIN_POPULATION_TACS and t[0] > 0):
        return _fit_population(t, y, model, nuclide, prior)
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
    return _select(t, y, w, names, results, average=model == "average", noise_cv=noise_cv,
                   n_tacs=n_tacs)


def _fit_population(t, y, model, nuclide, prior):
    if isinstance(prior, str):
        prior = load_prior(prior)
    if model in ("auto", "average"):
        models = POPULATION_MODELS
    else:
        models = (model,) if isinstance(model, str) else tuple(model)
        for name in models:
            if name not in MODELS:
                raise unknown_name_error("model", name, (*MODELS, "auto", "average"))
    return fit_population(t, y, models=models, lam=_decay_constant(nuclide), prior=prior)


def _select(t, y, w, names, results, average, noise_cv, n_tacs) -> BatchTacFit:
    n = t.size
    params = {name: MODELS[name].n_params for name in names}
    crit_aicc = {name: aicc(n, results[name]["wrss"], params[name]) for name in names}
    signal = np.mean(w * y**2, axis=1)
    if len(names) == 1:
        crit, crit_name, cv = crit_aicc, "AICc", float("nan")
        weights = {names[0]: np.ones(n_tacs)}
        index = np.zeros(n_tacs, dtype=int)
    else:
        crit, crit_name, cv = criteria(n, {m: results[m]["wrss"] for m in names}, params, signal,
                                       noise_cv)
        weights = akaike_weights(crit)
        index = np.argmax(np.stack([weights[m] for m in names]), axis=0)

    def pick(key, width=None):
        out = []
        for name in names:
            value = results[name][key]
            if width is not None:
                value = np.pad(value, ((0, 0), (0, width - value.shape[1])))
            out.append(value)
        return np.take_along_axis(np.stack(out), index[None, ..., None] if width else index[None],
                                  axis=0)[0]

    p = np.asarray([params[m] for m in names])[index]
    tia = pick("tia")
    tia_se = np.where(n > p, pick("tia_se"), np.nan)
    coefficients = pick("coefficients", MAX_TERMS)
    rates = np.where(pick("rates", MAX_TERMS) > 0, pick("rates", MAX_TERMS), 1.0)
    beyond = pick("tia_beyond")
    wrss, converged = pick("wrss"), pick("converged")
    model_names = names
    if average:
        tia, tia_se = average_tia(weights, {m: results[m]["tia"] for m in names},
                                  {m: results[m]["tia_se"] for m in names})
        coefficients = np.concatenate(
            [weights[m][:, None] * results[m]["coefficients"] for m in names], axis=1)
        rates = np.concatenate([results[m]["rates"] for m in names], axis=1)
        beyond = sum(weights[m] * results[m]["tia_beyond"] for m in names)
        model_names = (*names, "average")
        index = np.full(n_tacs, len(names))
    return BatchTacFit(
        times_h=t,
        model_names=model_names,
        model_index=index,
        coefficients_mbq=coefficients,
        rates_per_h=rates,
        tia_mbq_h=tia,
        tia_se_mbq_h=tia_se,
        aicc=np.take_along_axis(np.stack([crit_aicc[m] for m in names]),
                                np.minimum(index, len(names) - 1)[None], axis=0)[0],
        fraction_extrapolated=np.divide(beyond, tia, out=np.zeros_like(tia), where=tia > 0),
        wrss=wrss,
        dof=n - p,
        converged=converged,
        candidate_aicc=crit_aicc,
        akaike_weights=weights,
        criterion=crit_name,
        noise_cv=cv,
    )


def fit_tac(
    times_h: TimesLike,
    activity_mbq: CurveLike,
    model="auto",
    weights: CurveLike | str | None = None,
    nuclide: str = "Lu-177",
    head: str = "zero",
    n_tail_points: int = 3,
    noise_cv: float | None = None,
) -> TacFit:
    """Fit one time–activity curve and integrate it.

    ``times_h`` (h) strictly increasing, ``activity_mbq`` (MBq) finite and >= 0, same length.
    ``model``: ``"auto"`` (selection, see module doc), ``"average"`` (Akaike-weight average; its
    ``params`` are the weights), an exponential model name or a list of names (see
    :func:`fit_tacs`), or ``"trapezoid"`` (physical-decay tail) /
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
    batch_model = "average" if model == "average" else (
        list(names) if len(names) > 1 else names[0])
    batch = fit_tacs(t, y[None, :], model=batch_model,
                     weights=weights if weights is None or isinstance(weights, str)
                     else np.asarray(weights, dtype=float)[None, ...], nuclide=nuclide,
                     chunk_size=1, noise_cv=noise_cv)
    name = str(batch.model[0])
    weights_out = {k: float(v[0]) for k, v in batch.akaike_weights.items()}
    if name == "average":
        coefficients, rates = batch.coefficients_mbq[0], batch.rates_per_h[0]
        params = dict(weights_out)
    else:
        m = MODELS[name]
        coefficients = batch.coefficients_mbq[0, : m.n_rates]
        rates = batch.rates_per_h[0, : m.n_rates]
        amplitudes = np.linalg.lstsq(m.matrix, coefficients, rcond=None)[0]
        params = dict(zip(m.param_names, [*map(float, amplitudes), *map(float, rates)],
                          strict=True))
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
        akaike_weights=weights_out,
    )
