"""Issue 25 done-when, reduced: 90 % intervals of cycle-1 doses predicted from the PET cover the
truth of simulated theranostic patients (benchmarks/bench_pretherapy.py, 10 patients instead of
the benchmark's 50; the full figures are in docs/pretherapy.md)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest


@pytest.mark.slow
def test_pet_predicted_dose_intervals_cover_simulated_patients():
    from benchmarks.bench_pretherapy import DOSE_ORGANS, run

    with warnings.catch_warnings():  # PET uptake phase: the Lu-tuned half-life check warns
        warnings.simplefilter("ignore")
        result = run(n_patients=10, pet_times=(1.0,), draws=300, tune=300, chains=2, seed=11,
                     batch=10)
    assert result["n_patients"] == 10
    for organ in DOSE_ORGANS:
        rows = [row[organ] for row in result["rows"]]
        assert all(np.isfinite([r["true"], r["pred"], r["lo"], r["hi"]]).all() for r in rows)
        # with a true coverage of 0.9, P(at most 5 of 10 covered) = 0.16 % (binomial)
        assert result["summary"][organ]["coverage90"] >= 0.6, organ
