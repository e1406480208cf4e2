"""gEUD, EUBED, DVH summaries, TCP and NTCP against definitions and independent methods."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

import tdt  # noqa: F401
from tdt.radiobiology import (
    NTCP_PARAMETERS,
    dose_at_volume_percent,
    dvh_summary,
    eqd2,
    eubed,
    geud,
    ntcp_lkb,
    ntcp_organ,
    tcp_poisson,
    volume_percent_at_dose,
)


def test_geud_limits(rng):
    doses = rng.uniform(1, 40, size=200)
    volumes = rng.uniform(0.5, 2, size=200)
    mean = np.sum(doses * volumes) / np.sum(volumes)
    assert float(geud(doses, 1.0, volumes)) == pytest.approx(mean, rel=1e-13)
    values = [float(geud(doses, a, volumes)) for a in (1, 2, 5, 20, 100, 1000)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    # bounds: w_max^(1/a) max <= gEUD <= max (w = normalised volume of the hottest voxel),
    # so gEUD -> max as a -> inf; symmetric for the minimum as a -> -inf
    w = volumes / volumes.sum()
    for a in (1000.0, 1e5):
        value = float(geud(doses, a, volumes))
        assert w[np.argmax(doses)] ** (1 / a) * doses.max() * (1 - 1e-12) <= value
        assert value <= doses.max() * (1 + 1e-12)
        low = float(geud(doses, -a, volumes))
        assert doses.min() * (1 - 1e-12) <= low <= w[np.argmin(doses)] ** (-1 / a) * doses.min()
    assert float(geud(doses, 1e5, volumes)) == pytest.approx(doses.max(), rel=1e-4)
    # a = 2: root-mean-square (direct formula)
    rms = math.sqrt(np.sum(volumes * doses**2) / np.sum(volumes))
    assert float(geud(doses, 2.0, volumes)) == pytest.approx(rms, rel=1e-13)
    # uniform dose: gEUD is that dose for any a
    assert float(geud(np.full(5, 7.0), -10.0)) == pytest.approx(7.0, rel=1e-14)


def test_eubed_two_compartments_and_jensen(rng):
    # half the volume at 20 Gy, half at 60 Gy: EUBED = -ln((e^{-20a} + e^{-60a})/2)/a
    a = 0.3
    expected = -math.log(0.5 * (math.exp(-20 * a) + math.exp(-60 * a))) / a
    assert float(eubed(np.array([20.0, 60.0]), a)) == pytest.approx(expected, rel=1e-13)
    beds = rng.uniform(10, 200, size=100)
    assert float(eubed(beds, a)) <= beds.mean()
    assert float(eubed(np.full(4, 33.0), a)) == pytest.approx(33.0, rel=1e-13)
    # very high BED: no underflow (log-sum-exp)
    assert np.isfinite(float(eubed(np.array([5000.0, 6000.0]), 0.5)))


def _d_at_definition(doses, volumes, pct):
    """Brute force from the definition: the largest dose d with V(d) >= pct."""
    total = volumes.sum()
    best = -np.inf
    for d in doses:
        if 100 * volumes[doses >= d].sum() / total >= pct - 1e-9:
            best = max(best, d)
    return best


def test_dvh_metrics_match_definitions(rng):
    doses = rng.gamma(3.0, 5.0, size=301)
    volumes = rng.uniform(0.2, 1.5, size=301)
    for pct in (2.0, 50.0, 98.0, 100.0):
        assert float(dose_at_volume_percent(doses, pct, volumes)) == pytest.approx(
            _d_at_definition(doses, volumes, pct), rel=1e-14)
    for level in (5.0, 15.0, 30.0):
        expected = 100 * volumes[doses >= level].sum() / volumes.sum()
        assert float(volume_percent_at_dose(doses, level, volumes)) == pytest.approx(expected)
    summary = dvh_summary(doses, volumes, dose_levels_gy=(23,))
    assert float(summary["min_gy"]) == doses.min() and float(summary["max_gy"]) == doses.max()
    assert float(summary["mean_gy"]) == pytest.approx(np.average(doses, weights=volumes))
    assert "V23Gy_percent" in summary


def test_dvh_continuous_distribution_percentiles(rng):
    # doses uniform on [0, 10]: D2% ~ 9.8, D50% ~ 5, D98% ~ 0.2 (large sample)
    doses = rng.uniform(0, 10, size=200_000)
    s = dvh_summary(doses)
    assert float(s["D2_gy"]) == pytest.approx(9.8, abs=0.02)
    assert float(s["D50_gy"]) == pytest.approx(5.0, abs=0.03)
    assert float(s["D98_gy"]) == pytest.approx(0.2, abs=0.02)


def test_dvh_batched_over_draws(rng):
    doses = rng.uniform(0, 10, size=(4, 50))
    s = dvh_summary(doses, dose_levels_gy=(5,))
    assert s["D50_gy"].shape == (4,) and s["V5Gy_percent"].shape == (4,)
    for i in range(4):
        assert float(s["D98_gy"][i]) == float(dose_at_volume_percent(doses[i], 98.0))


def _tcp_quad(bed, mu, sd, n):
    """Independent reference: adaptive quadrature over the truncated normal density of alpha."""
    def f(a):
        return math.exp(-n * math.exp(-a * bed)) * stats.norm.pdf(a, mu, sd)
    centre = math.log(n) / bed  # the dose-response transition in alpha
    pts = sorted({max(centre, 1e-9), mu})
    val = integrate.quad(f, 0, mu + 12 * sd, points=pts, epsabs=1e-13, epsrel=1e-11,
                         limit=500)[0]
    return val / stats.norm.sf(0, mu, sd)


@pytest.mark.parametrize("bed,mu,sd,n", [
    (60.0, 0.3, 0.05, 1e7), (60.0, 0.3, 0.1, 1e7), (100.0, 0.25, 0.08, 1e8),
    (40.0, 0.35, 0.005, 1e6), (300.0, 0.3, 0.1, 1e9), (80.0, 0.2, 0.001, 1e7),
])
def test_tcp_matches_adaptive_quadrature(bed, mu, sd, n):
    assert float(tcp_poisson(bed, mu, n, alpha_sd_per_gy=sd)) == pytest.approx(
        _tcp_quad(bed, mu, sd, n), abs=2e-7)


def test_tcp_matches_monte_carlo(rng):
    bed, mu, sd, density, volume = 70.0, 0.3, 0.07, 1e7, 2.0
    alphas = rng.normal(mu, sd, size=400_000)
    alphas = alphas[alphas > 0]
    values = np.exp(-density * volume * np.exp(-alphas * bed))
    se = values.std() / math.sqrt(values.size)
    got = float(tcp_poisson(bed, mu, alpha_sd_per_gy=sd, volume_ml=volume,
                            clonogen_density_per_ml=density))
    assert abs(got - values.mean()) < 4 * se


def test_tcp_no_spread_is_poisson_and_increases_with_dose():
    # sd = 0: TCP = exp(-N exp(-alpha BED)) exactly
    assert float(tcp_poisson(60.0, 0.3, 1e7)) == pytest.approx(math.exp(-1e7 * math.exp(-18.0)),
                                                               rel=1e-12)
    beds = np.linspace(10, 200, 40)
    for sd in (0.0, 0.02, 0.1):
        values = np.asarray(tcp_poisson(beds, 0.3, 1e7, alpha_sd_per_gy=sd))
        assert np.all(np.diff(values) >= 0) and values[0] < 0.01 and values[-1] > 0.9


def test_tcp_voxels_uniform_equals_single_and_matches_monte_carlo(rng):
    beds = np.full(10, 60.0)
    single = float(tcp_poisson(60.0, 0.3, 1e7, alpha_sd_per_gy=0.05))
    voxel = float(tcp_poisson(beds, 0.3, 1e7, alpha_sd_per_gy=0.05, voxel_axis=-1))
    assert voxel == pytest.approx(single, abs=1e-6)
    # heterogeneous voxels, no spread: product of voxel Poisson terms
    beds = rng.uniform(40, 80, size=20)
    expected = math.exp(-np.sum(1e6 * np.exp(-0.3 * beds)))
    assert float(tcp_poisson(beds, 0.3, 2e7, voxel_axis=0)) == pytest.approx(expected, rel=1e-12)
    # heterogeneous voxels with spread: Monte Carlo over alpha
    alphas = rng.normal(0.3, 0.03, size=200_000)
    alphas = alphas[alphas > 0]
    surv = np.exp(-alphas[:, None] * beds[None, :]).sum(axis=1) * 1e6
    values = np.exp(-surv)
    got = float(tcp_poisson(beds, 0.3, 2e7, alpha_sd_per_gy=0.03, voxel_axis=0))
    assert abs(got - values.mean()) < 4 * values.std() / math.sqrt(values.size) + 1e-6


def test_ntcp_lkb_definition():
    assert float(ntcp_lkb(28.0, 28.0, 0.1)) == pytest.approx(0.5, abs=1e-15)
    # one slope unit above TD50: Phi(1)
    assert float(ntcp_lkb(28.0 * 1.1, 28.0, 0.1)) == pytest.approx(stats.norm.cdf(1.0), rel=1e-12)
    doses = np.linspace(0, 60, 50)
    values = np.asarray(ntcp_lkb(doses, 28.0, 0.1))
    assert np.all(np.diff(values) >= 0)  # non-decreasing; strictly where not saturated
    middle = (doses > 20) & (doses < 36)
    assert np.all(np.diff(values[middle]) > 0)
    # partial volume: D_eff = gEUD with a = 1/n; half the organ at 30 Gy, n = 1 -> 15 Gy
    voxel = float(ntcp_lkb(np.array([0.0, 30.0]), 28.0, 0.1, n=1.0, voxel_axis=-1))
    assert voxel == pytest.approx(stats.norm.cdf((15.0 - 28.0) / 2.8), rel=1e-12)


def test_ntcp_organ_converts_bed_to_eqd2():
    kidneys = NTCP_PARAMETERS["kidneys"]
    bed = 40.0
    expected = stats.norm.cdf((float(eqd2(bed, 2.6)) - 28.0) / (0.1 * 28.0))
    assert float(ntcp_organ("kidneys", bed)) == pytest.approx(expected, rel=1e-12)
    assert kidneys.td50_gy == 28.0 and kidneys.n == 0.7
    # consistency with Emami et al. IJROBP 1991;21:109 whole-kidney TD5/5 = 23 Gy: NTCP ~ 5 %
    assert 0.02 < float(ntcp_lkb(23.0, kidneys.td50_gy, kidneys.m)) < 0.08
    # monotone in BED, and the "parotid" alias resolves to the salivary set
    assert float(ntcp_organ("salivary_glands", 100.0)) > float(ntcp_organ("parotid", 30.0))
    # red marrow is defined on absorbed dose: NTCP(TD50) = 0.5 by definition, BED ignored
    td50_rm = NTCP_PARAMETERS["red_marrow"].td50_gy
    assert float(ntcp_organ("red_marrow", 0.0, absorbed_dose_gy=td50_rm)) == pytest.approx(0.5)
    assert float(ntcp_organ("red_marrow", 500.0, absorbed_dose_gy=td50_rm)) == pytest.approx(0.5)
