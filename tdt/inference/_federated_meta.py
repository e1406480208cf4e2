"""Random-effects meta-analysis behind :func:`tdt.inference.combine_site_summaries`: each site's
Gaussian likelihood factor (posterior ÷ prior, the expectation-propagation division) and the
REML estimate of the between-site heterogeneity (Veroniki et al., Res Synth Methods 2016).
Private: :mod:`tdt.inference._federated` is the public module.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from tdt.inference._federated_stats import gaussian_division


def _site_likelihood(summary, prior_mean, prior_cov):
    """(y_s, S_s, n_clipped): the site's Gaussian likelihood factor = posterior / prior."""
    return gaussian_division(summary.mean, summary.cov, prior_mean, prior_cov)


def _reml_objective(log_eta, ys, covs):
    h = np.exp(2 * log_eta)
    sum_w = np.zeros((len(h), len(h)))
    sum_wy = np.zeros(len(h))
    logdet = 0.0
    ws = []
    for y, s in zip(ys, covs, strict=True):
        w = np.linalg.inv(s + np.diag(h))
        ws.append(w)
        sum_w += w
        sum_wy += w @ y
        logdet -= np.linalg.slogdet(w)[1]
    phi = np.linalg.solve(sum_w, sum_wy)
    quad = sum(float((y - phi) @ w @ (y - phi)) for y, w in zip(ys, ws, strict=True))
    return 0.5 * (logdet + np.linalg.slogdet(sum_w)[1] + quad)


def estimate_heterogeneity(ys, covs) -> np.ndarray:
    """REML estimate of the between-site SDs η (diagonal) of y_s ~ N(Φ, S_s + diag η²)
    (Veroniki et al. 2016). Returns η (dim,), 0 where the REML optimum is at the boundary."""
    dim = len(ys[0])
    if len(ys) < 2:
        return np.zeros(dim)
    lo, hi = math.log(1e-4), math.log(5.0)
    start = np.full(dim, math.log(0.1))
    res = optimize.minimize(_reml_objective, start, args=(ys, covs), method="L-BFGS-B",
                            bounds=[(lo, hi)] * dim)
    eta = np.exp(res.x)
    eta[res.x <= lo + 1e-3] = 0.0
    return eta
