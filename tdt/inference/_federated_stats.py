"""Site aggregate statistics: the default exchange of federated population priors (issue #26).

Each site fits every patient on its own (:func:`tdt.inference.fit_patient` /
:func:`tdt.inference.fit_patients`), turns each per-patient posterior of log θ into a Gaussian
*likelihood* summary (posterior ÷ the patient prior, Gaussian algebra: estimate x_i and
estimation covariance S_i — :func:`gaussian_division`), and exports only **aggregates** of
those summaries (:class:`SiteStatistics`): the number of patients n, the mean x̄ of the
estimates, their scatter matrix W = Σ (x_i − x̄)(x_i − x̄)ᵀ and the mean estimation covariance
S̄ (one protocol → one S). For Gaussian estimates with a common S these are *sufficient*: the
coordinator writes the exact hierarchical likelihood x̄ ~ N(μ + b_s, (Σ + S)/n),
W ~ Wishart(Σ + S, n − 1) (:mod:`tdt.inference._federated_twostage`) — the two-stage analysis
that reproduces the one-stage (pooled) fit for Gaussian data (Morris, Fisher, Kenward &
Carpenter, "Meta-analysis of Gaussian individual patient data: two-stage or not two-stage?",
Stat Med 2018, doi:10.1002/sim.7589), with the site exporting non-disclosive aggregates instead of
patient data (the DataSHIELD principle: Gaye et al., "DataSHIELD: taking the analysis to the
data, not the data to the analysis", Int J Epidemiol 2014;43(6):1929–1944).

**Small sites.** With n = 1 the mean *is* the patient's estimate; with n = 2 mean and scatter
determine the two estimates up to order (x̄ ± d/2, W = d dᵀ/2). Sites of fewer than
:data:`MIN_PATIENTS` = 3 patients are therefore refused unless the site opts in
(``allow_small=True``, its own governance decision); the file then says so
(``disclosure.below_threshold``) and the combined prior's provenance lists the site. The
threshold is DataSHIELD's default minimum cell count (``nfilter.tab`` = 3, dsBaseClient
``ds.listDisclosureSettings``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdt import __version__
from tdt.errors import InputError
from tdt.inference._pymc_models import population_coordinates

FORMAT = "tdt-site-statistics"
FORMAT_VERSION = 1
#: fewest patients whose aggregates a site exports without opting in (DataSHIELD nfilter.tab)
MIN_PATIENTS = 3
#: eigenvalues of a patient's precision gain below this are "not learnt" (no information)
MIN_PRECISION = 1e-8


def gaussian_division(mean, cov, prior_mean, prior_cov):
    """The Gaussian factor N(y, S) with N(mean, cov) ∝ N(y, S) · N(prior_mean, prior_cov):
    precision S⁻¹ = cov⁻¹ − prior_cov⁻¹, S⁻¹ y = cov⁻¹ mean − prior_cov⁻¹ prior_mean (the
    expectation-propagation division; Vehtari et al., JMLR 2020;21(17), §3). Directions where
    the posterior is no narrower than the prior carry no information: precision clipped to
    :data:`MIN_PRECISION`, located at the prior mean. Returns ``(y, S, n_clipped)``."""
    post_prec = np.linalg.inv(cov)
    prior_prec = np.linalg.inv(prior_cov)
    lam = post_prec - prior_prec
    vals, vecs = np.linalg.eigh(0.5 * (lam + lam.T))
    kept = vals >= MIN_PRECISION
    info = vecs.T @ (post_prec @ mean - prior_prec @ prior_mean)
    coord = np.where(kept, info / np.where(kept, vals, 1.0), vecs.T @ prior_mean)
    vals = np.where(kept, vals, MIN_PRECISION)
    return vecs @ coord, (vecs / vals) @ vecs.T, int(np.sum(~kept))


def protocol_times_h(datasets) -> tuple[float, ...]:
    """Nominal scan times of a site (h after the first administration): the median over
    patients of each scan index when all patients have the same number of scans, else the
    distinct times rounded to whole hours."""
    times = [np.unique(np.concatenate([s.times_h for s in d.organs.values()])) for d in datasets]
    if len({t.size for t in times}) == 1:
        return tuple(float(v) for v in np.round(np.median(np.stack(times), axis=0), 1))
    return tuple(float(v) for v in np.unique(np.round(np.concatenate(times))))


class ExchangedFile:
    """What a file sites exchange shares: canonical JSON (sorted keys) of ``to_dict()``, its
    sha256 (the provenance hash) and an atomic save (temp file + rename)."""

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys): its UTF-8 bytes are what :attr:`sha256` hashes."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def save(self, path) -> Path:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path


@dataclass(frozen=True)
class SiteStatistics(ExchangedFile):
    """Aggregates of one site's per-patient likelihood summaries of log θ (P parameters):
    ``mean`` (P,), ``scatter`` (P, P), ``estimation_cov`` (P, P) = mean S_i; the patient
    prior that was divided out (``prior_loc``, ``prior_sd``, also fit_population's prior of μ),
    population ``coordinates`` A (log θ = A w). No patient-level data."""

    site: str
    n_patients: int
    radiopharmaceutical: str
    model_kind: str
    params: tuple[str, ...]
    coordinates: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray
    estimation_cov: np.ndarray
    prior_loc: np.ndarray
    prior_sd: np.ndarray
    organs: tuple[str, ...] = ()
    times_h: tuple[float, ...] = ()
    below_threshold: bool = False
    clipped_directions: int = 0
    tdt_version: str = ""

    def __post_init__(self):
        p = len(self.params)
        for name, shape in (("mean", (p,)), ("scatter", (p, p)), ("estimation_cov", (p, p)),
                            ("prior_loc", (p,)), ("prior_sd", (p,)), ("coordinates", (p, p))):
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise InputError(f"SiteStatistics.{name}: shape {arr.shape}; "
                                 f"expected finite {shape}")
            object.__setattr__(self, name, arr)
        n = int(self.n_patients)
        if n < 1:
            raise InputError(f"SiteStatistics.n_patients: {self.n_patients}; expected >= 1")
        if n < MIN_PATIENTS and not self.below_threshold:
            raise InputError(f"SiteStatistics.n_patients: {n} (site {self.site!r}); expected >= "
                             f"{MIN_PATIENTS} (with fewer, mean and scatter reveal the patients' "
                             "estimates) unless below_threshold=True marks the file")
        if np.any(self.prior_sd <= 0):
            raise InputError(f"SiteStatistics.prior_sd: {self.prior_sd}; expected > 0")
        if np.any(np.linalg.eigvalsh(0.5 * (self.estimation_cov + self.estimation_cov.T)) <= 0):
            raise InputError(f"SiteStatistics.estimation_cov of site {self.site!r}: not positive "
                             "definite; expected a covariance")
        if np.any(np.linalg.eigvalsh(0.5 * (self.scatter + self.scatter.T)) < -1e-10):
            raise InputError(f"SiteStatistics.scatter of site {self.site!r}: not positive "
                             "semi-definite; expected a scatter matrix")
        for name in ("params", "organs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "times_h", tuple(float(t) for t in self.times_h))

    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "site": self.site,
            "n_patients": int(self.n_patients), "radiopharmaceutical": self.radiopharmaceutical,
            "model": {"kind": self.model_kind, "params": list(self.params),
                      "coordinates": self.coordinates.tolist(), "tdt_version": self.tdt_version},
            "protocol": {"organs": list(self.organs), "times_h": list(self.times_h)},
            "prior": {"mu_loc": self.prior_loc.tolist(), "mu_sd": self.prior_sd.tolist()},
            "statistics": {"scale": "log θ: per-patient likelihood estimates (posterior ÷ prior)",
                           "mean": self.mean.tolist(), "scatter": self.scatter.tolist(),
                           "estimation_cov": self.estimation_cov.tolist(),
                           "clipped_directions": int(self.clipped_directions)},
            "disclosure": {"min_patients": MIN_PATIENTS,
                           "below_threshold": bool(self.below_threshold)},
        }

    @classmethod
    def from_dict(cls, d: dict) -> SiteStatistics:
        if d.get("format") != FORMAT or d.get("format_version") != FORMAT_VERSION:
            raise InputError(f"site statistics format: {d.get('format')!r} "
                             f"v{d.get('format_version')}; expected {FORMAT!r} v{FORMAT_VERSION}")
        try:
            m, pr, st, proto = d["model"], d["prior"], d["statistics"], d["protocol"]
            return cls(site=d["site"], n_patients=d["n_patients"],
                       radiopharmaceutical=d["radiopharmaceutical"], model_kind=m["kind"],
                       params=m["params"], coordinates=m["coordinates"], mean=st["mean"],
                       scatter=st["scatter"], estimation_cov=st["estimation_cov"],
                       prior_loc=pr["mu_loc"], prior_sd=pr["mu_sd"], organs=proto["organs"],
                       times_h=proto["times_h"],
                       below_threshold=d["disclosure"]["below_threshold"],
                       clipped_directions=st["clipped_directions"],
                       tdt_version=m["tdt_version"])
        except KeyError as exc:
            raise InputError(f"site statistics: missing field {exc}") from None

    @classmethod
    def load(cls, path) -> SiteStatistics:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"site statistics path: {str(path)!r} does not exist; "
                             "expected a file")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise InputError(f"site statistics {str(path)!r}: not JSON ({exc})") from None


def site_statistics_from_estimates(estimates, estimation_covs, *, site: str, twin,
                                   radiopharmaceutical: str, organs: Sequence[str] = (),
                                   times_h: Sequence[float] = (), allow_small: bool = False,
                                   clipped_directions: int = 0) -> SiteStatistics:
    """Aggregate per-patient likelihood estimates of log θ (n, P) with their estimation
    covariances ((P, P) shared, or (n, P, P) averaged) into :class:`SiteStatistics`."""
    x = np.asarray(estimates, dtype=float)
    p = twin.n_params
    if x.ndim != 2 or x.shape[1] != p or not np.all(np.isfinite(x)):
        raise InputError(f"site_statistics: estimates shape {x.shape}; expected finite (n, {p})")
    n = x.shape[0]
    if n < MIN_PATIENTS and not allow_small:
        raise InputError(f"site_statistics: n_patients {n} (site {site!r}); expected >= "
                         f"{MIN_PATIENTS}: with fewer, mean and scatter determine the patients' "
                         "estimates (pass allow_small=True to export anyway, marked)")
    s = np.asarray(estimation_covs, dtype=float)
    if s.shape == (n, p, p):
        s = s.mean(axis=0)
    if s.shape != (p, p):
        raise InputError(f"site_statistics: estimation_covs shape {s.shape}; expected "
                         f"({p}, {p}) or ({n}, {p}, {p})")
    dev = x - x.mean(axis=0)
    a, _, _ = population_coordinates(twin)
    return SiteStatistics(
        site=str(site), n_patients=n, radiopharmaceutical=str(radiopharmaceutical),
        model_kind=twin.kind, params=tuple(twin.sampled), coordinates=a, mean=x.mean(axis=0),
        scatter=dev.T @ dev, estimation_cov=0.5 * (s + s.T),
        prior_loc=np.asarray(twin.prior_loc),
        prior_sd=np.sqrt(np.sum(np.asarray(twin.prior_chol) ** 2, axis=1)), organs=tuple(organs),
        times_h=tuple(times_h), below_threshold=n < MIN_PATIENTS,
        clipped_directions=clipped_directions, tdt_version=__version__)


def site_statistics(posteriors, *, site: str, radiopharmaceutical: str,
                    allow_small: bool = False) -> SiteStatistics:
    """:class:`SiteStatistics` of a site from its patients' :class:`Posterior` s (one per
    patient, same twin model and prior; e.g. :func:`fit_patients`). Each posterior of log θ is
    moment-matched and divided by the twin's prior (:func:`gaussian_division`)."""
    posteriors = list(posteriors)
    if not posteriors or any(getattr(q, "twin", None) is None for q in posteriors):
        raise InputError("site_statistics: posteriors must be a non-empty list of Posterior "
                         "objects with their twin model")
    twin = posteriors[0].twin
    prior_cov = np.asarray(twin.prior_chol) @ np.asarray(twin.prior_chol).T
    estimates, covs, clipped = [], [], 0
    for q in posteriors:
        if tuple(q.twin.sampled) != tuple(twin.sampled) or not np.allclose(q.twin.prior_loc,
                                                                           twin.prior_loc):
            raise InputError(f"site_statistics: patient {q.data.patient_id!r} has another model "
                             "or prior; expected the twin of posteriors[0]")
        draws = q.log_theta_draws
        y, s, k = gaussian_division(draws.mean(axis=0), np.cov(draws, rowvar=False),
                                    np.asarray(twin.prior_loc), prior_cov)
        estimates.append(y)
        covs.append(s)
        clipped += k
    data = [q.data for q in posteriors]
    return site_statistics_from_estimates(
        np.stack(estimates), np.stack(covs), site=site, twin=twin,
        radiopharmaceutical=radiopharmaceutical, organs=data[0].organ_names,
        times_h=protocol_times_h(data), allow_small=allow_small, clipped_directions=clipped)
