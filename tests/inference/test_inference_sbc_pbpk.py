"""Simulation-based calibration of the PSMA-617 PBPK posterior (issue 21, item 5).

Fast: the SBC summary counts interval hits and ranks correctly (hand-counted records) and
``fit_patients`` rejects an unknown ``chain_method``. Slow: the threaded batch fit samples the
same posterior as the vmapped one, and a reduced SBC (16 patients from the PBPK prior
predictive, standard protocol, 2 chains x (300 + 300)) covers the truth at nominal rates.

Bounds of the reduced SBC: with n = 16 calibrated fits the number of hits of a p % interval is
Binomial(16, p); each of the 20 checks (5 organs x TIA/dose x 50/90 %) must fall in the central
99.9 % binomial interval (scipy.stats.binom.interval), so a calibrated posterior fails the test
with probability <= 20 x 0.1 % = 2 % (Bonferroni). That is [2, 14] hits at 50 % and [10, 16] at
90 % — it catches gross miscalibration only; the 100-patient run (benchmarks/sbc_pbpk.py,
docs/inference.md) checks ±5 points.
"""

from __future__ import annotations

import numpy as np
import pytest
from inference_biexp import BiExponential
from scipy import stats

from tdt.errors import InputError
from tdt.inference import (
    MeasurementModel,
    OrganSeries,
    PatientData,
    custom_model,
    fit_patients,
    run_sbc_pbpk,
    simulate_cohort,
    summarise_sbc_records,
)

TIMES = np.array([4.0, 24.0, 48.0, 96.0, 168.0])


def _record(index, converged, hits50, hits90, ranks):
    q = {f"tia:{o}": {"truth": 1.0, "median": 1.0 + 0.1 * index, "rank": r, "in50": h5,
                      "in90": h9}
         for o, h5, h9, r in zip(("kidneys", "liver"), hits50, hits90, ranks, strict=True)}
    return {"patient": index, "converged": converged, "max_rhat": 1.0 + 0.01 * index,
            "min_ess_bulk": 500.0 - index, "divergences": index % 2, "n_draws": 800,
            "elapsed_s": 10.0 * index, "quantities": q}


def test_summary_counts_hits_ranks_and_convergence():
    records = [_record(0, True, (True, True), (True, True), (0.1, 0.2)),
               _record(1, True, (False, True), (True, True), (0.9, 0.4)),
               _record(2, False, (False, False), (False, True), (0.99, 0.5)),
               _record(3, True, (True, False), (True, False), (0.3, 0.8))]
    s = summarise_sbc_records(records)
    assert (s["n_fitted"], s["n_converged"]) == (4, 3)
    kid, liv = s["table"]["tia:kidneys"], s["table"]["tia:liver"]
    assert (kid["coverage50"], kid["coverage90"]) == (2 / 4, 3 / 4)
    assert (liv["coverage50"], liv["coverage90"]) == (2 / 4, 3 / 4)
    assert (kid["coverage50_converged"], kid["coverage90_converged"]) == (2 / 3, 3 / 3)
    assert kid["ranks"] == [0.1, 0.9, 0.99, 0.3]
    assert s["pooled"] == {"coverage50": 4 / 8, "coverage90": 6 / 8}
    assert kid["median_abs_rel_error"] == pytest.approx(0.15)  # |median/truth − 1|: .0 .1 .2 .3
    assert (s["divergences"], s["n_with_divergences"]) == (2, 2)
    assert s["max_rhat"] == pytest.approx(1.03) and s["min_ess_bulk"] == 497.0
    assert summarise_sbc_records([]) == {"n_fitted": 0}


def test_fit_patients_rejects_unknown_chain_method():
    data = PatientData({"kidneys": OrganSeries(TIMES, np.ones(5))}, patient_id="t")
    with pytest.raises(InputError, match="chain_method"):
        fit_patients([data], chain_method="pmap")


@pytest.mark.slow
def test_threaded_batch_samples_the_vmapped_posterior():
    # Two samplers (numpyro vmapped, blackjax threaded) of the same model: posterior medians of
    # the TIA agree within Monte Carlo error; the callback sees every patient once, in order.
    twin = custom_model(BiExponential(("kidneys",)), sampled=("f_kidneys", "kb_kidneys"),
                        sd_log=0.4)
    meas = MeasurementModel(fixed_noise_sd=0.1)
    template = PatientData({"kidneys": OrganSeries(TIMES, np.ones(5))}, patient_id="t")
    cohort = simulate_cohort(template, twin, 3, seed=5, measurement=meas)
    seen = []
    threaded = fit_patients(cohort.datasets, model=twin, draws=500, tune=300, chains=2, seed=1,
                            measurement=meas, chain_method="parallel",
                            on_posterior=lambda p, post: seen.append(p))
    vmapped = fit_patients(cohort.datasets, model=twin, draws=500, tune=300, chains=2, seed=1,
                           measurement=meas)
    assert seen == [0, 1, 2]
    for a, b in zip(threaded, vmapped, strict=True):
        ta, tb = a.tia_draws["kidneys"], b.tia_draws["kidneys"]
        assert a.diagnostics.max_rhat < 1.05 and ta.shape == tb.shape == (1000,)
        # MC SE of a median ~ 1.25 SD / sqrt(ESS); ESS >= 200 each -> 4 SE of the difference
        se = 1.25 * np.std(ta) * np.sqrt(2 / 200)
        assert abs(np.median(ta) - np.median(tb)) < 4 * se


@pytest.mark.slow
def test_sbc_pbpk_reduced_run(tmp_path):
    n = 16
    result = run_sbc_pbpk(n_patients=n, draws=300, tune=300, chains=2, seed=7,
                          checkpoint=tmp_path / "records.jsonl")
    assert result["n_fitted"] == n
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == n
    assert len(result["table"]) == 10  # 5 VOIs x (TIA, dose)
    for key, entry in result["table"].items():
        for level in (50, 90):
            lo, hi = stats.binom.interval(0.999, n, level / 100)
            hits = round(entry[f"coverage{level}"] * n)
            assert lo <= hits <= hi, (key, level, hits, (lo, hi))
