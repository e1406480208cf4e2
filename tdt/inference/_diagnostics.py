"""Convergence diagnostics and the convergence gate.

R-hat is the rank-normalised split R-hat and ESS the bulk / tail effective sample sizes of
Vehtari, Gelman, Simpson, Carpenter, Bürkner (Bayesian Analysis 2021;16:667), as computed by
ArviZ. The gate of tdt: max R-hat <= 1.01, min bulk ESS >= 400, zero divergences → converged.
A posterior that fails the gate is returned, but flagged "NOT CONVERGED" in every summary and
report (never silently).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import arviz as az
import numpy as np

#: Gate thresholds (issue 6; Vehtari et al. 2021 recommend R-hat < 1.01 and ESS > 400).
RHAT_MAX = 1.01
ESS_BULK_MIN = 400.0
NOT_CONVERGED = "NOT CONVERGED"
#: Laplace draws (tdt.inference._laplace_draws): the label and the Pareto k̂ gate
#: (Vehtari et al., JMLR 2024;25(72), §3: k̂ <= 0.7 reliable)
LAPLACE_LABEL = "LAPLACE PREVIEW"
PARETO_K_MAX = 0.7


@dataclass(frozen=True)
class Diagnostics:
    """Summary diagnostics of an MCMC run.

    max_rhat, min_ess_bulk, min_ess_tail: over every checked scalar of the posterior;
    divergences: total divergent transitions after tuning; n_chains, n_draws;
    sampling_time_s: wall time of the sampler (s), ``nan`` if unknown;
    converged: the gate (``max_rhat <= 1.01 and min_ess_bulk >= 400 and divergences == 0``;
    for Laplace draws: Pareto k̂ <= 0.7, :mod:`tdt.inference._laplace_draws`);
    method: ``"nuts"`` or ``"laplace"`` (independent draws of the Laplace approximation: a
    preview, labelled ``"LAPLACE PREVIEW"`` in :attr:`flag` even when its gate passes);
    pareto_k: Pareto k̂ of the Laplace draws' importance weights (``None`` for NUTS: not
    applicable; ``None`` rather than ``nan`` so that equal runs compare equal after a file
    round trip).
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    n_chains: int
    n_draws: int
    sampling_time_s: float
    converged: bool
    method: str = "nuts"
    pareto_k: float | None = None

    @property
    def min_ess_per_s(self) -> float:
        """Min bulk ESS per second of sampling (nan when the time is unknown)."""
        if not np.isfinite(self.sampling_time_s) or self.sampling_time_s <= 0:
            return float("nan")
        return self.min_ess_bulk / self.sampling_time_s

    @property
    def flag(self) -> str:
        """:func:`gate_flag` of this run."""
        return gate_flag(self.converged, self.method)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["min_ess_per_s"] = self.min_ess_per_s
        return out

    def __str__(self) -> str:
        if self.method == "laplace":
            state = "usable" if self.converged else NOT_CONVERGED
            return (f"{LAPLACE_LABEL} ({state}): Pareto k-hat {self.pareto_k:.2f} (gate <= "
                    f"{PARETO_K_MAX}), {self.n_chains} x {self.n_draws} independent draws")
        state = "converged" if self.converged else NOT_CONVERGED
        return (f"{state}: max R-hat {self.max_rhat:.4f}, min ESS bulk {self.min_ess_bulk:.0f} / "
                f"tail {self.min_ess_tail:.0f}, {self.divergences} divergences "
                f"({self.n_chains} chains x {self.n_draws} draws)")


def gate_flag(converged: bool, method: str = "nuts") -> str:
    """The flag every summary of a posterior carries: ``""`` when its gate passed, else
    ``"NOT CONVERGED"``; Laplace draws (``method="laplace"``) always carry ``"LAPLACE
    PREVIEW"`` (``"LAPLACE PREVIEW, NOT CONVERGED"`` when their Pareto k̂ > 0.7)."""
    if method == "laplace":
        return LAPLACE_LABEL + ("" if converged else f", {NOT_CONVERGED}")
    return "" if converged else NOT_CONVERGED


def compute_diagnostics(idata, var_names: Sequence[str] | None = None,
                        sampling_time_s: float = float("nan"), rhat_max: float = RHAT_MAX,
                        ess_bulk_min: float = ESS_BULK_MIN) -> Diagnostics:
    """Diagnostics of ``idata.posterior`` over ``var_names`` (default: every variable).

    Non-finite R-hat (e.g. a constant variable in every chain) counts as not converged unless
    the variable is constant across all draws (then it carries no uncertainty).
    """
    posterior = idata.posterior
    names = [v for v in (var_names or list(posterior.data_vars)) if v in posterior]
    n_chains = int(posterior.sizes["chain"])
    n_draws = int(posterior.sizes["draw"])
    rhats, bulks, tails = [], [], []
    for name in names:
        values = posterior[name].values
        if np.ptp(values) == 0:
            continue
        if n_chains > 1:
            rhats.append(np.asarray(az.rhat(posterior, var_names=[name])[name]).ravel())
        bulks.append(np.asarray(az.ess(posterior, var_names=[name], method="bulk")[name]).ravel())
        tails.append(np.asarray(az.ess(posterior, var_names=[name], method="tail")[name]).ravel())
    cat = (lambda parts: np.concatenate(parts) if parts else np.asarray([np.nan]))
    rhat = cat(rhats)
    bulk = cat(bulks)
    tail = cat(tails)
    max_rhat = float(np.nanmax(rhat)) if np.isfinite(rhat).any() else float("inf")
    if n_chains > 1 and not np.all(np.isfinite(rhat)):
        max_rhat = float("inf")
    if n_chains < 2:
        max_rhat = float("inf")  # R-hat needs >= 2 chains: cannot certify convergence
    min_bulk = float(np.nanmin(bulk)) if np.isfinite(bulk).any() else 0.0
    min_tail = float(np.nanmin(tail)) if np.isfinite(tail).any() else 0.0
    divergences = 0
    if hasattr(idata, "sample_stats") and "diverging" in idata.sample_stats:
        divergences = int(np.asarray(idata.sample_stats["diverging"]).sum())
    attrs = getattr(idata, "attrs", None) or posterior.attrs
    if attrs.get("method") == "laplace":  # independent draws: the gate is the Pareto k-hat
        pareto_k = float(attrs.get("pareto_k", float("inf")))
        return Diagnostics(max_rhat, min_bulk, min_tail, divergences, n_chains, n_draws,
                           float(sampling_time_s), bool(pareto_k <= PARETO_K_MAX), "laplace",
                           pareto_k)
    converged = bool(max_rhat <= rhat_max and min_bulk >= ess_bulk_min and divergences == 0)
    return Diagnostics(max_rhat, min_bulk, min_tail, divergences, n_chains, n_draws,
                       float(sampling_time_s), converged)
