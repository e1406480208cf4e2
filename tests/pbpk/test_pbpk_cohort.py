"""Virtual cohorts: lognormal draws (statistics), one vmapped solve equal to per-patient solves."""

from __future__ import annotations

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.pbpk import Schedule, draw_parameters, reduced_linear, virtual_cohort


def test_lognormal_draws_have_the_prior_median_and_sd():
    model = reduced_linear(organs=("kidneys",))
    draws = draw_parameters(model, 20000, seed=3)
    for name, (median, sd) in model.priors().items():
        logs = np.log(np.asarray(draws[name]))
        lo, hi = model.parameter_bounds()[name]
        if np.mean((logs <= np.log(lo) + 1e-12) | (logs >= np.log(hi) - 1e-12)) > 0.001:
            continue  # clipped by the bounds: the moments no longer apply
        # standard errors: sd/sqrt(n) for the mean, sd/sqrt(2n) for the sd of a normal sample
        assert np.mean(logs) == pytest.approx(np.log(median), abs=5 * sd / np.sqrt(20000))
        assert np.std(logs) == pytest.approx(sd, abs=5 * sd / np.sqrt(40000))


def test_cohort_equals_individual_solves_and_is_reproducible():
    model = reduced_linear(organs=("kidneys", "remainder"))
    schedule = Schedule.repeated(7400.0, 4, 1008.0, ligand_nmol=150.0)
    cohort = virtual_cohort(model, 8, schedule, seed=11, chunk_size=5)
    again = virtual_cohort(model, 8, schedule, seed=11)
    kid = np.asarray(cohort.tia_mbq_h["kidneys"])
    assert kid.shape == (8,)
    assert bool(np.all(np.asarray(cohort.ok)))
    np.testing.assert_allclose(kid, np.asarray(again.tia_mbq_h["kidneys"]), rtol=1e-12)
    for i in (0, 7):
        single = model.simulate({k: float(v[i]) for k, v in cohort.params.items()}, schedule,
                                [0.0])
        assert kid[i] == pytest.approx(float(single.tia_mbq_h["kidneys"]), rel=1e-10)
    # doses: kidney self-dose dominates; dose / TIA is the kidney S-value (cross-dose small)
    from tdt.dosimetry import svalue

    ratio = np.asarray(cohort.doses_gy["kidneys"]) / kid
    assert np.all(ratio >= svalue("kidneys", "kidneys") * (1 - 1e-9))


def test_cohort_bad_input():
    model = reduced_linear(organs=("kidneys",))
    schedule = Schedule.repeated(100.0, 1, 1.0)
    with pytest.raises(InputError, match="k_in_liver"):
        virtual_cohort(model, 4, schedule, sd_log={"k_in_liver": 0.1})
    with pytest.raises(InputError, match="n_patients"):
        virtual_cohort(model, 0, schedule)
