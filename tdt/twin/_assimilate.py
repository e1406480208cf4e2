"""Assimilating one cycle's imaging: a Gaussian posterior over log rate constants.

State of the twin: a multivariate normal over log θ (θ: the model's rate constants, 1/h),
starting from the population prior (lognormal priors of the model's catalog table, independent).

Per cycle (``assimilate_laplace``):

1. Drift (:class:`DriftModel`): between cycles the previous posterior is moved by a stated
   random walk before it becomes the prior: log k_in of every lesion (uptake ∝ receptor density,
   which falls with response) gets N(``lesion_log_mean``, ``lesion_log_sd``²) per cycle; every
   other log rate constant gets N(0, ``organ_log_sd``²) (cycle-to-cycle physiological variability).
2. Measurement model: log A_obs = log A_model(t; θ) + log c + ε, with ε ~ N(0, σ²) per point
   (σ = ``CycleData.relative_sd``) and one calibration factor per cycle, log c ~ N(0, σ_c²)
   (σ_c = ``calibration_sd``, 3 %), integrated out analytically: the residual vector has
   covariance σ² I + σ_c² 11ᵀ. Partial-volume recovery is taken as 1 (VOI activities are
   assumed already recovery-corrected). Activity of earlier cycles still present at imaging is
   neglected: 6 weeks apart, physical decay bounds it by 1.27 % of a VOI's activity, and with
   biological clearance the kidney residual over prior patients is ~1e-5 (max 2e-3); ignoring it
   moves the kidney dose per MBq by ~0.02 posterior sd (tests/twin/test_twin_calibration.py).
3. Laplace approximation (:func:`tdt.inference._laplace.laplace_mode`, the package's one Laplace:
   mode by BFGS, covariance = inverse Hessian at the mode) of the log posterior.
   Exact for a linear-Gaussian model; its accuracy here is checked against NUTS in the tests
   and its calibration against simulated patients.

Why Laplace and not NUTS: a cycle update must be fast enough to run per patient inside a
virtual trial on a 2-core CPU (milliseconds once compiled, against ~20 s for NUTS);
``Twin(engine="nuts")`` samples with tdt.inference's NUTS instead (:func:`assimilate_nuts`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError, unknown_name_error
from tdt.inference import (
    DriftModel,
    GaussianPosterior,
    MeasurementModel,
    OrganSeries,
    PatientData,
    custom_model,
    fit_patient,
    laplace_mode,
)
from tdt.pbpk import activity_at, batched_bolus_exponentials, exponential_sum, mammillary_indices
from tdt.twin._record import CycleData


def backward_sample(filtered, drift: DriftModel, last_log_draws: np.ndarray,
                    seed) -> list[np.ndarray]:
    """Joint draws of log θ of every assimilated cycle given all data (forward filtering,
    backward sampling; Carter & Kohn, Biometrika 1994;81:541; Frühwirth-Schnatter, J Time Ser
    Anal 1994;15:183).

    ``filtered``: the posterior after each cycle j = 1..k (given y_1..y_j; each cycle's prior
    was the previous one moved by ``drift``). ``last_log_draws`` (n_draws, p): draws of the last
    cycle's posterior, kept as they are. Going back, with the random walk
    θ_{j+1} = θ_j + μ + ε, ε ~ N(0, Q), Q = diag(sd²),

        θ_j | θ_{j+1}, y_1..y_k ~ N(m_j + G_j (θ_{j+1} − m_j − μ), P_j − G_j P_j),
        G_j = P_j (P_j + Q)⁻¹,

    exact for the Gaussian state the twin carries (the Rauch–Tung–Striebel smoother's
    conditional). Returns a list of k arrays (n_draws, p), cycle 1 first; standard normals from
    ``numpy.random.default_rng([*seed, j])`` for cycle j (deterministic: saving and loading a
    twin reproduces them).
    """
    filtered = list(filtered)
    last = np.asarray(last_log_draws, dtype=float)
    if not filtered:
        return []
    names = filtered[-1].names
    mu, sd = drift.step(names)
    q = np.diag(sd**2)
    seed = tuple(np.atleast_1d(seed).tolist())
    path = [last]
    for j in range(len(filtered) - 2, -1, -1):
        m, p_cov = filtered[j].mean, filtered[j].cov
        gain = np.linalg.solve(p_cov + q, p_cov).T  # P (P + Q)^-1 (P, Q symmetric)
        cond = p_cov - gain @ p_cov
        w, v = np.linalg.eigh(0.5 * (cond + cond.T))
        root = v * np.sqrt(np.clip(w, 0.0, None))
        z = np.random.default_rng([*seed, j]).standard_normal(last.shape)
        path.insert(0, m + (path[0] - m - mu) @ gain.T + z @ root.T)
    return path


@functools.lru_cache(maxsize=16)
def _laplace_solver(model, comp_idx: tuple[int, ...], time_idx: tuple[int, ...], names: tuple):
    """The jitted Laplace update for one model and observation layout (cached: one compilation
    per layout, reused for every patient of a virtual trial)."""
    comp = jnp.asarray(comp_idx)
    tix = jnp.asarray(time_idx)

    def neg_log_post(theta, args):
        prior_mean, prior_prec, times, log_y, chol_y, activity = args
        params = {n: jnp.exp(theta[i]) for i, n in enumerate(names)}
        pred = activity_at(model, params, activity, times)[comp, tix]
        resid = log_y - jnp.log(jnp.maximum(pred, 1e-300))
        white = jax.scipy.linalg.solve_triangular(chol_y, resid, lower=True)
        diff = theta - prior_mean
        return 0.5 * white @ white + 0.5 * diff @ prior_prec @ diff

    @jax.jit
    def solve(prior_mean, prior_prec, times, log_y, chol_y, activity, start):
        args = (prior_mean, prior_prec, times, log_y, chol_y, activity)
        return laplace_mode(neg_log_post, start, args, rtol=1e-9, atol=1e-9, max_steps=1000)

    return solve


def observation_arrays(model, cycle: CycleData):
    """Union of times, (compartment index, time index) per observation, and log activities."""
    for organ in cycle.organs:
        if organ not in model.compartments:
            raise unknown_name_error("CycleData.measurements organ (not in the model)", organ,
                                     model.compartments)
    times = np.unique(np.concatenate([t for t, _ in cycle.measurements.values()]))
    comp, tix, log_y = [], [], []
    for organ, (t, a) in cycle.measurements.items():
        comp += [model.compartments.index(organ)] * len(t)
        tix += list(np.searchsorted(times, t))
        log_y += list(np.log(a))
    return times, tuple(comp), tuple(tix), np.array(log_y)


def assimilate_laplace(model, prior: GaussianPosterior, cycle: CycleData,
                       calibration_sd: float = 0.03) -> GaussianPosterior:
    """Laplace posterior over log θ after this cycle's imaging (prior: already drifted)."""
    mammillary_indices(model)
    if tuple(model.parameter_names) != prior.names:
        raise InputError(f"prior.names: {prior.names} do not match the model's parameters "
                         f"{tuple(model.parameter_names)}")
    times, comp, tix, log_y = observation_arrays(model, cycle)
    n = len(log_y)
    cov_y = cycle.relative_sd**2 * np.eye(n) + calibration_sd**2 * np.ones((n, n))
    chol_y = np.linalg.cholesky(cov_y)
    solve = _laplace_solver(model, comp, tix, prior.names)
    prec = np.linalg.inv(prior.cov)
    # start a little off the prior mean: organs sharing default rates give repeated eigenvalues
    # there, where eigenvector derivatives are singular (see tdt.pbpk.bolus_exponentials)
    start = prior.mean + 1e-3 * np.sin(np.arange(1, len(prior.names) + 1))
    theta, hess, grad, ok, steps = solve(prior.mean, 0.5 * (prec + prec.T), times, log_y,
                                         chol_y, float(cycle.activity_mbq), start)
    hess = np.asarray(hess)
    hess = 0.5 * (hess + hess.T)
    eig_min = float(np.linalg.eigvalsh(hess).min())
    cov = np.linalg.inv(hess) if eig_min > 0 else prior.cov
    diagnostics = {
        "optimizer_converged": bool(ok),
        "optimizer_steps": int(steps),
        "gradient_norm": float(np.linalg.norm(np.asarray(grad))),
        "hessian_min_eigenvalue": float(eig_min),
        "hessian_positive_definite": bool(eig_min > 0),
        "n_observations": int(n),
        "converged": bool(ok) and eig_min > 0,
    }
    return GaussianPosterior(prior.names, np.asarray(theta), cov, "laplace", diagnostics)


def posterior_predictive_z(model, posterior: GaussianPosterior, cycle: CycleData,
                           z: np.ndarray, calibration_sd: float = 0.03) -> dict[str, np.ndarray]:
    """Standardised residual of each data point against the posterior predictive (per organ).

    z = (log y − mean of log prediction over draws) / sqrt(var over draws + σ² + σ_c²).
    """
    amp, rates = batched_bolus_exponentials(model, posterior.draws(z))
    out = {}
    for organ, (t, a) in cycle.measurements.items():
        c = amp[:, model.compartments.index(organ), :]
        sims = cycle.activity_mbq * exponential_sum(c, rates, t)
        out[organ] = standardised_residuals(sims, a, cycle.relative_sd, calibration_sd)
    return out


def standardised_residuals(predicted, observed, relative_sd: float,
                           calibration_sd: float) -> np.ndarray:
    """z = (log y − mean over draws of log ŷ) / sqrt(var over draws of log ŷ + σ² + σ_c²) per
    data point; ``predicted`` (n_draws, n_points) MBq, ``observed`` (n_points,) MBq (the
    lognormal measurement model of the twins: proportional noise σ, calibration sd σ_c)."""
    log_pred = np.log(np.maximum(np.asarray(predicted, dtype=float), 1e-300))
    var = log_pred.var(axis=0) + relative_sd**2 + calibration_sd**2
    return (np.log(np.asarray(observed, dtype=float)) - log_pred.mean(axis=0)) / np.sqrt(var)


def assimilate_nuts(model, prior: GaussianPosterior, cycle: CycleData,
                    calibration_sd: float = 0.03, draws: int = 500, chains: int = 2,
                    tune: int = 500, seed: int = 0) -> GaussianPosterior:
    """The same update with NUTS (tdt.inference.fit_patient), summarised as a Gaussian.

    The prior is passed as ``TwinModel.with_prior(mean, cov)``; the measurement model is the
    same as the Laplace update's (fixed proportional noise ``cycle.relative_sd``, calibration
    sd ``calibration_sd``, recovery 1). The posterior draws of log θ are summarised by their mean
    and covariance (the Gaussian state the twin carries between cycles); the sampler's R-hat,
    ESS and divergences become the diagnostics, with its convergence gate.
    """
    mammillary_indices(model)
    twin_model = custom_model(model, kind="reduced",
                              options={"organs": tuple(model.organs)}).with_prior(prior.mean,
                                                                                 prior.cov)
    if tuple(twin_model.sampled) != prior.names:
        raise InputError(f"prior.names: {prior.names} do not match the model's parameters")
    data = PatientData(
        {o: OrganSeries(t, a, recovery=1.0) for o, (t, a) in cycle.measurements.items()},
        calibration_sd=calibration_sd, administered_activity_mbq=float(cycle.activity_mbq))
    posterior = fit_patient(data, model=twin_model, draws=draws, chains=chains, tune=tune,
                            seed=seed, measurement=MeasurementModel(fixed_noise_sd=cycle.relative_sd))
    log_theta = np.asarray(posterior.log_theta_draws)
    diagnostics = dict(posterior.diagnostics.as_dict())
    diagnostics["converged"] = bool(posterior.diagnostics.converged)
    return GaussianPosterior(prior.names, log_theta.mean(axis=0), np.cov(log_theta.T),
                             "nuts (Gaussian summary)", diagnostics)
