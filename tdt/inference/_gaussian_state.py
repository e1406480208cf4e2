"""The Gaussian state of a sequential twin: N(mean, cov) over log rate constants and its drift.

:class:`GaussianPosterior` is what a Laplace approximation (:mod:`tdt.inference._laplace`) or a
population / federated prior (:mod:`tdt.inference._federated`) hands to the twin
(:mod:`tdt.twin._assimilate`); :class:`DriftModel` is the random walk of log θ between cycles.
It lives here, below both, so that inference never imports the twin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from tdt.errors import InputError


@dataclass(frozen=True)
class DriftModel:
    """Random walk of log rate constants between cycles (see module docstring)."""

    lesion_log_mean: float = -0.1
    lesion_log_sd: float = 0.2
    organ_log_sd: float = 0.05

    def __post_init__(self):
        if self.lesion_log_sd < 0 or self.organ_log_sd < 0:
            raise InputError(f"DriftModel: sds must be >= 0, got {asdict(self)}")

    def step(self, names) -> tuple[np.ndarray, np.ndarray]:
        """Per-parameter mean and sd of one inter-cycle step of log θ."""
        lesion = np.array([n.startswith("k_in_lesion") for n in names])
        mean = np.where(lesion, self.lesion_log_mean, 0.0)
        sd = np.where(lesion, self.lesion_log_sd, self.organ_log_sd)
        return mean, sd

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GaussianPosterior:
    """N(mean, cov) over log θ (θ in the model's units, 1/h), with how it was obtained."""

    names: tuple[str, ...]
    mean: np.ndarray
    cov: np.ndarray
    method: str = "population prior"
    diagnostics: Mapping = field(default_factory=dict)

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=float)
        cov = np.asarray(self.cov, dtype=float)
        p = len(self.names)
        if mean.shape != (p,) or cov.shape != (p, p):
            raise InputError(f"GaussianPosterior: mean {mean.shape} / cov {cov.shape}; expected "
                             f"({p},) and ({p}, {p})")
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", 0.5 * (cov + cov.T))
        object.__setattr__(self, "diagnostics", dict(self.diagnostics))

    @classmethod
    def from_model_priors(cls, model) -> GaussianPosterior:
        """Independent lognormal priors of the model's table (median, sd of log)."""
        priors = model.priors()
        names = tuple(model.parameter_names)
        mean = np.log([priors[n][0] for n in names])
        sd = np.array([priors[n][1] for n in names])
        return cls(names, mean, np.diag(sd**2), "population prior")

    @classmethod
    def from_twin_model(cls, twin_model) -> GaussianPosterior:
        """From a ``tdt.inference.TwinModel`` prior (e.g. ``PopulationPosterior.prior_model()``):
        mean ``prior_loc`` and covariance ``prior_chol @ prior_chol.T`` of log θ. Every model
        parameter must be sampled."""
        chol = np.asarray(twin_model.prior_chol, dtype=float)
        names = tuple(twin_model.sampled)
        if set(names) != set(twin_model.forward.parameter_names):
            raise InputError(
                f"twin_model.sampled: {names} must cover every parameter of the forward model "
                f"{tuple(twin_model.forward.parameter_names)}")
        order = [names.index(n) for n in twin_model.forward.parameter_names]
        mean = np.asarray(twin_model.prior_loc, dtype=float)[order]
        cov = (chol @ chol.T)[np.ix_(order, order)]
        return cls(tuple(twin_model.forward.parameter_names), mean, cov, "population posterior")

    @property
    def sd_log(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def standard_normals(self, n_draws: int, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n_draws, len(self.names)))

    def log_draws(self, z: np.ndarray) -> np.ndarray:
        """log θ draws (n_draws, p) from standard normals ``z`` (common random numbers)."""
        chol = np.linalg.cholesky(self.cov + 1e-14 * np.eye(len(self.names)))
        return self.mean + z @ chol.T

    def draws(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """θ draws as name -> (n_draws,) array."""
        values = np.exp(self.log_draws(z))
        return {n: values[:, i] for i, n in enumerate(self.names)}

    def drifted(self, drift: DriftModel, steps: int = 1) -> GaussianPosterior:
        """The prior for a cycle ``steps`` intervals later (mean shifted, variance added)."""
        mu, sd = drift.step(self.names)
        return GaussianPosterior(self.names, self.mean + steps * mu,
                                 self.cov + steps * np.diag(sd**2), self.method + " + drift",
                                 self.diagnostics)
