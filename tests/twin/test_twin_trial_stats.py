"""Posterior coverage from PIT values (:func:`tdt.twin._trial_stats.posterior_coverage`).

Independent reference: a Gaussian posterior N(0, s²) for truths drawn from N(0, 1) covers the
truth with its central ``level`` interval with probability 2Φ(s·z) − 1, z = Φ⁻¹((1 + level)/2)
(s = 1: the nominal level — the calibrated case of simulation-based calibration, Talts et al.
2018)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from tdt.twin._trial_stats import posterior_coverage


def _pits(rng, n_patients, n_cycles, posterior_sd, n_draws=400):
    truth = rng.standard_normal((n_patients, n_cycles))
    draws = posterior_sd * rng.standard_normal((n_patients, n_cycles, n_draws))
    pit = np.mean(draws < truth[..., None], axis=-1)
    return [{"kidneys": list(row)} for row in pit]


@pytest.mark.parametrize("posterior_sd", [1.0, 0.5, 2.0])
def test_coverage_matches_the_gaussian_formula(rng, posterior_sd):
    out = posterior_coverage(_pits(rng, 2000, 2, posterior_sd))["kidneys"]
    assert out["n"] == 4000 and out["n_patients"] == 2000
    for level in (0.5, 0.9):
        expected = 2.0 * norm.cdf(posterior_sd * norm.ppf((1.0 + level) / 2.0)) - 1.0
        key = f"coverage_{round(level * 100)}"
        assert out[key] == pytest.approx(expected, abs=0.03), (level, out[key], expected)
        lo, hi = out[f"{key}_ci95"]
        assert lo < out[key] < hi
        assert len(out[f"{key}_by_cycle"]) == 2
    assert out["mean_pit"] == pytest.approx(0.5, abs=0.02)
    # the flag: calibrated (sd 1) passes; half or twice the spread is resolved at 2000 patients
    assert (out["flag"] == "") == (posterior_sd == 1.0), out["flag"]


def test_biased_posterior_shows_in_the_mean_pit(rng):
    truth = rng.standard_normal(1000)
    draws = truth[:, None] - 1.0 + rng.standard_normal((1000, 300))  # posterior 1 too low
    pits = [{"lesion_1": [float(np.mean(d < t))]} for d, t in zip(draws, truth, strict=True)]
    out = posterior_coverage(pits)["lesion_1"]
    assert out["mean_pit"] > 0.75  # Φ(1/√1) ≈ 0.84 of the draws below the truth on average
    assert out["coverage_50"] < 0.25  # every truth in the upper tail, outside the central 50 %


def test_patients_with_fewer_cycles_count_per_cycle():
    pits = [{"kidneys": [0.5, 0.5]}, {"kidneys": [0.99]}]
    out = posterior_coverage(pits)["kidneys"]
    assert out["n"] == 3 and out["coverage_90_by_cycle"] == [0.5, 1.0]
    assert out["coverage_50"] == pytest.approx(2 / 3)


def test_flag_uses_the_patient_count_not_the_patient_cycles():
    """The flag's interval is Wilson 99 % with n = patients (20 here, 4 cycles each: 80
    patient-cycles). Its limits, by hand (z = 2.576): 0/20 -> (0, 0.249); 12/20 -> (0.33,
    0.82), 16/20 -> (0.51, 0.94). PIT 0.5 lies in both central intervals, 0.8 in the 90 % one
    only, 0.999 in neither."""
    def pits(pit_per_patient):
        return [{"kidneys": [p] * 4} for p in pit_per_patient]

    missed = posterior_coverage(pits([0.999] * 20))["kidneys"]["flag"]  # a posterior that misses
    assert missed.startswith("MISCALIBRATED") and "50 % interval covers 0%" in missed
    assert "90 % interval covers 0%" in missed
    # 50 %: 10/20 inside, 90 %: 16/20 -> both nominal rates inside their intervals
    ok = posterior_coverage(pits([0.5] * 10 + [0.8] * 6 + [0.999] * 4))["kidneys"]
    assert ok["coverage_90"] == pytest.approx(0.8) and ok["flag"] == ""
    # 90 %: 12/20 (0.32-0.82) misses 0.90; 50 %: 10/20 fine
    low = posterior_coverage(pits([0.5] * 10 + [0.8] * 2 + [0.999] * 8))["kidneys"]["flag"]
    assert low == "MISCALIBRATED (90 % interval covers 60%)"
