"""Federated population priors: sites share posterior summaries, never patient data.

This is the *site-posterior* exchange; the default is the site aggregate statistics of
:mod:`tdt.inference._federated_stats` / :mod:`tdt.inference._federated_twostage` (exact for
Gaussian per-patient estimates; it meets the criteria of issue #26 far more often, measured in
docs/inference.md). This one needs only each site's :func:`fit_population`.

A **site summary** (:func:`site_summary`, :class:`SiteSummary`) is the site's posterior of the
*population* parameters of the hierarchical model of :func:`tdt.inference.fit_population`,
φ = (μ, τ_w) — the population mean of log θ and the between-patient SDs in the
model's population coordinates (:func:`~tdt.inference._pymc_models.population_coordinates`) —
moment-matched by a multivariate normal, plus the shared prior it
was fitted under, the number of patients, the protocol (organs, nominal scan times in h), the
radiopharmaceutical and the model. It is written as a small versioned JSON file
(:meth:`SiteSummary.save`) with no patient-level arrays, identifiers or dates.

:func:`combine_site_summaries` turns the summaries into a :class:`FederatedPrior`:

1. **Site likelihoods** (Vehtari, Gelman, Sivula et al., "Expectation propagation as a way of
   life: a framework for Bayesian inference on partitioned data", JMLR 21(17):1–53, 2020, §2–3:
   a site's Gaussian factor is its tilted/posterior approximation divided by the prior). The site
   posterior N(m_s, C_s) divided by the Gaussian approximation N(p₀, P₀) of the shared prior
   gives the site's likelihood factor in information form Λ_s = C_s⁻¹ − P₀⁻¹,
   Λ_s y_s = C_s⁻¹ m_s − P₀⁻¹ p₀ (negative eigenvalues of Λ_s — a site that learned nothing
   about a direction — are clipped to ~0, the usual EP safeguard). τ stays on its natural
   scale: its HalfNormal(s) prior is the Gaussian N(0, s²) restricted to τ > 0, so the
   division by the prior is exact (on the log scale, tried first, the skewed posteriors of
   small sites biased the combined τ upwards by ~25 %, measured). ``tau_prior="moments"``
   divides by the HalfNormal's own moments instead (EP projection: a site without data adds
   nothing; better for 2-patient sites, narrower otherwise — docs/inference.md).
2. **Between-site heterogeneity**: y_s ~ N(Φ + δ_s, Λ_s⁻¹), δ_s ~ N(0, diag η²) — a site random
   effect on every population parameter, η estimated by restricted maximum likelihood (the
   estimator recommended by Veroniki et al., Res Synth Methods 2016;7:55–79, for the
   between-study variance of a random-effects meta-analysis; here multivariate with the
   sites' full within-site covariances). ``heterogeneity="none"`` fixes η = 0.
3. **Shared prior once**: Φ | y ~ N with precision P₀⁻¹ + Σ W_s, W_s = (Λ_s⁻¹ + diag η²)⁻¹.
   With η = 0 this is exactly the product of the site posteriors divided by the prior S − 1
   times (Gaussian consensus / posterior aggregation).

The prior of a **new patient at a new site** is the posterior predictive
log θ_new = μ + δ_μ + A(τ_w ⊙ z), moment-matched: mean E[μ], covariance
Cov(μ) + diag η_μ² + A diag E[τ_w²] Aᵀ with E[τ_w²] = E[τ_w]² + Var τ_w + η_τ² — the same
summary as
:meth:`PopulationPosterior.predictive_moments`, plus the site effect. :meth:`FederatedPrior.
prior_model` returns the :class:`TwinModel` for :func:`fit_patient`; :meth:`FederatedPrior.
gaussian` the :class:`tdt.twin.GaussianPosterior` a :class:`tdt.twin.Twin` takes as ``prior``.
:attr:`FederatedPrior.provenance` records sites, counts, model and file sha256s.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tdt import __version__
from tdt.errors import InputError
from tdt.inference._federated_meta import _site_likelihood, estimate_heterogeneity
from tdt.inference._federated_stats import ExchangedFile, protocol_times_h
from tdt.inference._gaussian_state import GaussianPosterior
from tdt.inference._posterior import _flatten
from tdt.inference._pymc_models import population_coordinates

FORMAT = "tdt-site-summary"
FORMAT_VERSION = 1
METHOD = "gaussian-site-likelihoods + REML site random effect"
CITATIONS = (
    "Vehtari A, Gelman A, Sivula T, et al. Expectation propagation as a way of life: a framework "
    "for Bayesian inference on partitioned data. J Mach Learn Res 2020;21(17):1-53.",
    "Veroniki AA, Jackson D, Viechtbauer W, et al. Methods to estimate the between-study "
    "variance and its uncertainty in meta-analysis. Res Synth Methods 2016;7:55-79.",
)


@dataclass(frozen=True)
class SiteSummary(ExchangedFile):
    """One site's moment-matched posterior of φ = (μ (param), τ_w (param_w)).

    ``mean`` (2P,), ``cov`` (2P, 2P); ``prior_loc`` / ``prior_sd``
    (P,): the Normal prior of μ; ``tau_scale``: the HalfNormal scale of τ_w; ``coordinates``
    (P, P): A with log θ = A w. No patient-level data."""

    site: str
    n_patients: int
    radiopharmaceutical: str
    model_kind: str
    params: tuple[str, ...]
    params_w: tuple[str, ...]
    coordinates: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    prior_loc: np.ndarray
    prior_sd: np.ndarray
    tau_scale: float
    organs: tuple[str, ...] = ()
    times_h: tuple[float, ...] = ()
    n_draws: int = 0
    converged: bool | None = None
    tdt_version: str = ""

    def __post_init__(self):
        p = len(self.params)
        for name, value, shape in (("mean", self.mean, (2 * p,)), ("cov", self.cov, (2 * p, 2 * p)),
                                   ("prior_loc", self.prior_loc, (p,)),
                                   ("prior_sd", self.prior_sd, (p,)),
                                   ("coordinates", self.coordinates, (p, p))):
            arr = np.asarray(value, dtype=float)
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise InputError(f"SiteSummary.{name}: shape {arr.shape}; expected finite {shape}")
            object.__setattr__(self, name, arr)
        if len(self.params_w) != p:
            raise InputError(f"SiteSummary.params_w: {self.params_w}; expected {p} names")
        if int(self.n_patients) < 1:
            raise InputError(f"SiteSummary.n_patients: {self.n_patients}; expected >= 1")
        if not (self.tau_scale > 0):
            raise InputError(f"SiteSummary.tau_scale: {self.tau_scale}; expected > 0")
        if np.any(self.prior_sd <= 0):
            raise InputError(f"SiteSummary.prior_sd: {self.prior_sd}; expected > 0")
        if np.any(np.linalg.eigvalsh(0.5 * (self.cov + self.cov.T)) <= 0):
            raise InputError(f"SiteSummary.cov of site {self.site!r}: not positive definite")
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "params_w", tuple(self.params_w))
        object.__setattr__(self, "organs", tuple(self.organs))
        object.__setattr__(self, "times_h", tuple(float(t) for t in self.times_h))

    # ---- the shared prior, Gaussian on φ
    def prior_moments(self, tau_prior: str = "gaussian") -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the Gaussian prior factor of φ: N(prior_loc, prior_sd²) for μ;
        for τ_w N(0, tau_scale²) (``"gaussian"``: HalfNormal = that Gaussian restricted to
        τ > 0) or the HalfNormal's own moments, mean s·√(2/π), variance s²(1 − 2/π)
        (``"moments"``: the EP projection of the prior; a site without data then adds nothing)."""
        p = len(self.params)
        if tau_prior == "moments":
            tau_mean = self.tau_scale * math.sqrt(2 / math.pi)
            tau_var = self.tau_scale**2 * (1 - 2 / math.pi)
        else:
            tau_mean, tau_var = 0.0, self.tau_scale**2
        mean = np.concatenate([self.prior_loc, np.full(p, tau_mean)])
        var = np.concatenate([self.prior_sd**2, np.full(p, tau_var)])
        return mean, np.diag(var)

    # ---- file format
    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "site": self.site,
            "n_patients": int(self.n_patients), "radiopharmaceutical": self.radiopharmaceutical,
            "model": {"kind": self.model_kind, "params": list(self.params),
                      "params_w": list(self.params_w),
                      "coordinates": self.coordinates.tolist(), "tdt_version": self.tdt_version},
            "protocol": {"organs": list(self.organs), "times_h": list(self.times_h)},
            "prior": {"mu_loc": self.prior_loc.tolist(), "mu_sd": self.prior_sd.tolist(),
                      "tau_scale": float(self.tau_scale)},
            "posterior": {"scale": "mu (log θ), tau_w",
                          "mean": self.mean.tolist(), "cov": self.cov.tolist(),
                          "n_draws": int(self.n_draws), "converged": self.converged},
        }

    @classmethod
    def from_dict(cls, d: dict) -> SiteSummary:
        if d.get("format") != FORMAT or d.get("format_version") != FORMAT_VERSION:
            raise InputError(f"site summary format: {d.get('format')!r} v{d.get('format_version')}"
                             f"; expected {FORMAT!r} v{FORMAT_VERSION}")
        try:
            m, pr, post, proto = d["model"], d["prior"], d["posterior"], d["protocol"]
            return cls(site=d["site"], n_patients=d["n_patients"],
                       radiopharmaceutical=d["radiopharmaceutical"], model_kind=m["kind"],
                       params=m["params"], params_w=m["params_w"], coordinates=m["coordinates"],
                       mean=post["mean"], cov=post["cov"], prior_loc=pr["mu_loc"],
                       prior_sd=pr["mu_sd"], tau_scale=pr["tau_scale"], organs=proto["organs"],
                       times_h=proto["times_h"], n_draws=post["n_draws"],
                       converged=post["converged"], tdt_version=m["tdt_version"])
        except KeyError as exc:
            raise InputError(f"site summary: missing field {exc}") from None

    @classmethod
    def load(cls, path) -> SiteSummary:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"site summary path: {str(path)!r} does not exist; expected a file")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise InputError(f"site summary {str(path)!r}: not JSON ({exc})") from None


def site_summary_from_draws(mu_draws, tau_w_draws, *, site: str, n_patients: int,
                            twin, tau_scale: float, radiopharmaceutical: str,
                            organs: Sequence[str] = (), times_h: Sequence[float] = (),
                            converged: bool | None = None) -> SiteSummary:
    """Moment-match posterior draws of μ (n, P) and τ_w (n, P) of a site's hierarchical fit
    with prior μ ~ N(twin.prior_loc, twin prior SD), τ_w ~ HalfNormal(tau_scale)."""
    mu = np.asarray(mu_draws, dtype=float)
    tau = np.asarray(tau_w_draws, dtype=float)
    p = twin.n_params
    if mu.ndim != 2 or mu.shape[1] != p or tau.shape != mu.shape or mu.shape[0] < 2 * p + 2:
        raise InputError(f"site_summary: draws mu {mu.shape}, tau_w {tau.shape}; "
                         f"expected equal (n_draws >= {2 * p + 2}, {p})")
    phi = np.concatenate([mu, tau], axis=1)
    a, names_w, _ = population_coordinates(twin)
    prior_sd = np.sqrt(np.sum(np.asarray(twin.prior_chol) ** 2, axis=1))
    return SiteSummary(site=str(site), n_patients=int(n_patients),
                       radiopharmaceutical=str(radiopharmaceutical), model_kind=twin.kind,
                       params=tuple(twin.sampled), params_w=tuple(names_w), coordinates=a,
                       mean=phi.mean(axis=0), cov=np.cov(phi, rowvar=False),
                       prior_loc=np.asarray(twin.prior_loc), prior_sd=prior_sd,
                       tau_scale=float(tau_scale), organs=tuple(organs),
                       times_h=tuple(times_h), n_draws=phi.shape[0], converged=converged,
                       tdt_version=__version__)


def site_summary(population, *, site: str, radiopharmaceutical: str,
                 tau_scale: float = 0.5) -> SiteSummary:
    """The :class:`SiteSummary` of a site's :class:`PopulationPosterior` (``tau_scale``: the
    value passed to :func:`fit_population`, default 0.5)."""
    post = population.idata.posterior
    tau_w = _flatten(post["tau_w"]) if "tau_w" in post else population.tau_draws
    return site_summary_from_draws(
        population.mu_draws, tau_w, site=site, n_patients=len(population.datasets),
        twin=population.twin, tau_scale=tau_scale, radiopharmaceutical=radiopharmaceutical,
        organs=population.datasets[0].organ_names, times_h=protocol_times_h(population.datasets),
        converged=population.converged)


@dataclass(frozen=True)
class FederatedPrior:
    """Population prior combined from site summaries (see module docstring).

    ``phi_mean`` / ``phi_cov``: posterior of φ = (μ, τ_w); ``eta``: between-site SDs of φ;
    ``loc`` / ``cov``: mean and covariance of log θ of a new patient at a new site;
    ``provenance``: method, citations, sites (name, n_patients, protocol, sha256), model."""

    params: tuple[str, ...]
    phi_mean: np.ndarray
    phi_cov: np.ndarray
    eta: np.ndarray
    loc: np.ndarray
    cov: np.ndarray
    provenance: dict = field(default_factory=dict)

    @property
    def population_mean(self) -> np.ndarray:
        return self.phi_mean[: len(self.params)]

    @property
    def site_sd(self) -> np.ndarray:
        """Between-site SD of the population mean of log θ (per param)."""
        return self.eta[: len(self.params)]

    def prior_model(self, twin):
        """``twin`` (a :class:`TwinModel` of the same sampled parameters) with this prior."""
        if tuple(twin.sampled) != self.params:
            raise InputError(f"FederatedPrior.prior_model: twin.sampled {tuple(twin.sampled)}; "
                             f"expected {self.params}")
        return twin.with_prior(self.loc, self.cov)

    def population_prior_model(self, twin):
        """``twin`` with the prior of a *new site's* population mean, N(E μ, Cov μ + diag η_μ²):
        ``fit_population(datasets, model=fed.population_prior_model(twin))`` fits that site's
        hierarchical model under the federated prior of μ (fit_population uses its marginal
        SDs; the between-patient SDs keep their HalfNormal(tau_scale) prior)."""
        if tuple(twin.sampled) != self.params:
            raise InputError(f"FederatedPrior.population_prior_model: twin.sampled "
                             f"{tuple(twin.sampled)}; expected {self.params}")
        p = len(self.params)
        return twin.with_prior(self.population_mean, self.phi_cov[:p, :p]
                               + np.diag(self.site_sd**2))

    def gaussian(self):
        """The prior as a :class:`tdt.twin.GaussianPosterior` (``Twin(record, prior=...)``);
        the provenance goes into its ``diagnostics``."""
        return GaussianPosterior(self.params, self.loc, self.cov, "federated population prior",
                                 {"provenance": self.provenance})


def combine_site_summaries(summaries: Sequence[SiteSummary | str | Path],
                           heterogeneity: str = "reml",
                           tau_prior: str = "gaussian") -> FederatedPrior:
    """Combine site summaries (objects or paths of saved files) into a :class:`FederatedPrior`.

    All sites must share the model, its parameters and the prior. ``heterogeneity``:
    ``"reml"`` (default; between-site SDs estimated) or ``"none"`` (η = 0: Gaussian consensus).
    ``tau_prior``: how the τ prior is divided out (:meth:`SiteSummary.prior_moments`):
    ``"gaussian"`` (default; conservative — wider than pooled for sites of < 4 patients) or
    ``"moments"`` (right for tiny sites, ~10 % narrower than pooled otherwise; measured in
    docs/inference.md).
    """
    if heterogeneity not in ("reml", "none"):
        raise InputError(f"heterogeneity: {heterogeneity!r}; expected 'reml' or 'none'")
    if tau_prior not in ("gaussian", "moments"):
        raise InputError(f"tau_prior: {tau_prior!r}; expected 'gaussian' or 'moments'")
    loaded, hashes = [], []
    for i, s in enumerate(summaries):
        if isinstance(s, (str, Path)):
            hashes.append(hashlib.sha256(Path(s).read_bytes()).hexdigest()
                          if Path(s).is_file() else None)
            s = SiteSummary.load(s)
        elif isinstance(s, SiteSummary):
            hashes.append(s.sha256)
        else:
            raise InputError(f"summaries[{i}]: {type(s).__name__}; expected a SiteSummary or path")
        loaded.append(s)
    if not loaded:
        raise InputError("summaries: empty; expected >= 1 site summary")
    ref = loaded[0]
    for i, s in enumerate(loaded):
        for attr in ("model_kind", "params", "params_w"):
            if getattr(s, attr) != getattr(ref, attr):
                raise InputError(f"summaries[{i}].{attr}: {getattr(s, attr)!r}; expected "
                                 f"{getattr(ref, attr)!r} (the model of summaries[0])")
        if not (np.allclose(s.prior_loc, ref.prior_loc) and np.allclose(s.prior_sd, ref.prior_sd)
                and math.isclose(s.tau_scale, ref.tau_scale)
                and np.allclose(s.coordinates, ref.coordinates)):
            raise InputError(f"summaries[{i}] (site {s.site!r}): prior differs from site "
                             f"{ref.site!r}'s; every site must fit under the same shared prior")
    names = [s.site for s in loaded]
    if len(set(names)) != len(names):
        raise InputError(f"summaries: site names {names} must be unique")
    p = len(ref.params)
    prior_mean, prior_cov = ref.prior_moments(tau_prior)
    factors = [_site_likelihood(s, prior_mean, prior_cov) for s in loaded]
    ys, covs = [f[0] for f in factors], [f[1] for f in factors]
    eta = estimate_heterogeneity(ys, covs) if heterogeneity == "reml" else np.zeros(2 * p)
    prec = np.linalg.inv(prior_cov)
    info = prec @ prior_mean
    for y, s in zip(ys, covs, strict=True):
        w = np.linalg.inv(s + np.diag(eta**2))
        prec = prec + w
        info = info + w @ y
    phi_cov = np.linalg.inv(prec)
    phi_cov = 0.5 * (phi_cov + phi_cov.T)
    phi_mean = phi_cov @ info
    # new patient at a new site: μ + δ_μ + A(τ_w ⊙ z); τ_w lognormal with site variation
    mean_tau_sq = phi_mean[p:] ** 2 + np.diag(phi_cov)[p:] + eta[p:] ** 2
    a = ref.coordinates
    cov = phi_cov[:p, :p] + np.diag(eta[:p] ** 2) + a @ np.diag(mean_tau_sq) @ a.T
    provenance = {
        "method": METHOD, "heterogeneity": heterogeneity, "tau_prior": tau_prior, "citations": list(CITATIONS),
        "model": {"kind": ref.model_kind, "params": list(ref.params),
                  "tdt_versions": sorted({s.tdt_version for s in loaded})},
        "n_sites": len(loaded), "n_patients": int(sum(s.n_patients for s in loaded)),
        "sites": [{"site": s.site, "n_patients": int(s.n_patients),
                   "radiopharmaceutical": s.radiopharmaceutical, "organs": list(s.organs),
                   "times_h": list(s.times_h), "converged": s.converged, "sha256": h,
                   "clipped_directions": f[2]}
                  for s, h, f in zip(loaded, hashes, factors, strict=True)],
        "site_sd_mu": dict(zip(ref.params, map(float, eta[:p]), strict=True)),
        "site_sd_tau_w": dict(zip(ref.params_w, map(float, eta[p:]), strict=True)),
    }
    return FederatedPrior(ref.params, phi_mean, phi_cov, eta, phi_mean[:p].copy(),
                          0.5 * (cov + cov.T), provenance)
