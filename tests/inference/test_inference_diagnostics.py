"""Convergence diagnostics and the gate, on synthetic chains with known behaviour."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from tdt.inference import compute_diagnostics
from tdt.inference._diagnostics import NOT_CONVERGED


def _idata(posterior, diverging=None):
    stats = None if diverging is None else {"diverging": diverging}
    return az.from_dict(posterior=posterior, sample_stats=stats)


def test_iid_chains_pass_the_gate(rng):
    # Independent draws: R-hat -> 1 and bulk ESS ~ number of draws (Vehtari et al. 2021).
    idata = _idata({"z": rng.normal(size=(4, 1000, 3))},
                   diverging=np.zeros((4, 1000), dtype=bool))
    d = compute_diagnostics(idata, sampling_time_s=2.0)
    assert d.converged and d.flag == ""
    assert d.max_rhat < 1.01
    assert 3000 < d.min_ess_bulk < 5000
    assert d.min_ess_per_s == pytest.approx(d.min_ess_bulk / 2.0)
    assert d.n_chains == 4 and d.n_draws == 1000


def test_shifted_chain_fails_rhat(rng):
    draws = rng.normal(size=(4, 1000))
    draws[0] += 1.0
    d = compute_diagnostics(_idata({"z": draws}))
    assert d.max_rhat > 1.05 and not d.converged
    assert d.flag == NOT_CONVERGED and NOT_CONVERGED in str(d)


def test_autocorrelated_chain_fails_ess(rng):
    # AR(1) with phi = 0.99: ESS ≈ n (1-phi)/(1+phi) ≈ 20 per 2000 draws, far below 400.
    x = np.zeros((2, 2000))
    for t in range(1, 2000):
        x[:, t] = 0.99 * x[:, t - 1] + rng.normal(size=2)
    d = compute_diagnostics(_idata({"z": x}))
    assert d.min_ess_bulk < 400 and not d.converged


def test_divergences_fail_the_gate(rng):
    diverging = np.zeros((4, 1000), dtype=bool)
    diverging[1, 10] = True
    d = compute_diagnostics(_idata({"z": rng.normal(size=(4, 1000))}, diverging))
    assert d.divergences == 1 and not d.converged


def test_single_chain_cannot_certify(rng):
    d = compute_diagnostics(_idata({"z": rng.normal(size=(1, 2000))}))
    assert not d.converged
