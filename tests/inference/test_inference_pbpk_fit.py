"""PBPK fit path: a failed (singular) implicit solve inside NUTS is a rejected proposal, not an
exception; any built PBPK model is accepted."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from inference_biexp import BiExponential

from tdt.inference import OrganSeries, PatientData, custom_model, fit_patient

pytest.importorskip("tdt.pbpk")
TIMES = np.array([4.0, 24.0, 48.0, 96.0, 168.0])


class SingularBelow(BiExponential):
    """The bi-exponential model, but the uptake fraction comes out of a 1×1 lineax solve whose
    matrix is exactly singular for kb < 0.025 /h (~half of the prior mass): the forward solve
    (throw=False) returns non-finite values there and lineax's transpose rule — reached by the
    sampler's gradient — solves with throw=True, as in diffrax's Kvaerno5 Newton iterations."""

    def simulate(self, params, schedule, times_h):
        out = super().simulate(params, schedule, times_h)
        kb = params["kb_kidneys"]
        a = jnp.maximum(kb - 0.025, 0.0)
        op = lx.MatrixLinearOperator(jnp.reshape(a, (1, 1)))
        sol = lx.linear_solve(op, jnp.reshape(a, (1,)), lx.LU(), throw=False)
        scale = sol.value[0]  # 1 where regular, NaN/inf where singular
        ok = (sol.result == lx.RESULTS.successful) & jnp.isfinite(scale)
        return SimpleNamespace(
            activity_mbq={o: v * scale for o, v in out.activity_mbq.items()},
            tia_mbq_h={o: v * scale for o, v in out.tia_mbq_h.items()}, ok=ok)


def test_singular_solve_inside_nuts_is_rejected_not_raised():
    lam = 0.6931471805599453 / (6.647 * 24.0)
    clean = 7400 * 0.04 * (np.exp(-(0.026 + lam) * TIMES) - np.exp(-(0.5 + lam) * TIMES))
    rng = np.random.default_rng(0)
    data = PatientData({"kidneys": OrganSeries(TIMES, clean * np.exp(rng.normal(0, .05, 5)))})
    twin = custom_model(SingularBelow(("kidneys",)), sampled=("f_kidneys", "kb_kidneys"),
                        prior_median={"kb_kidneys": 0.026}, sd_log=0.5)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        post = fit_patient(data, model=twin, draws=20, tune=20, chains=2, seed=0)
    kb = post.parameter_draws["kb_kidneys"]
    assert np.all(kb >= 0.025)  # no draw from the singular region was accepted
    assert not post.converged  # 2 x 20 draws cannot pass the gate: flagged
    assert "NOT CONVERGED" in post.report()


def test_fit_accepts_a_built_pbpk_model():
    from tdt.inference import pbpk_model
    from tdt.inference._models import resolve_model
    from tdt.pbpk import psma617

    forward = psma617(lesions=("lesion_1",))
    data = PatientData({"kidneys": OrganSeries(TIMES, np.ones(5)),
                        "lesion_1": OrganSeries(TIMES, np.ones(5), volume_ml=5.0)})
    twin = resolve_model(forward, data)
    assert twin.forward is forward and twin.kind == "pbpk"
    assert set(twin.sampled) == {"GFR", "R_kidneys", "krel_kidneys", "R_lesion_1",
                                 "krel_lesion_1", "f_reabs"}
    with pytest.raises(Exception, match="options"):
        pbpk_model(organs=("kidneys",), forward=forward, rtol=1e-6)


def test_standard_patient_pbpk_short_fit_runs_and_is_flagged():
    # Standard patient (reduced-model data), PBPK identifiable subset on the sampler path of
    # tdt.inference._fast_pbpk, very short run: finishes, flags non-convergence, finite TIAs.
    from tdt.inference import pbpk_model, reduced_model, simulate_cohort, standard_template

    template = standard_template()
    data = simulate_cohort(template, reduced_model(template.organ_names), 1,
                           seed=2026).datasets[0]
    twin = pbpk_model(organs=("kidneys", "salivary_glands", "liver"),
                      lesions=("lesion_1", "lesion_2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = fit_patient(data, model=twin, draws=5, tune=5, chains=2, seed=0)
    assert post.diagnostics.n_draws == 5
    assert not post.converged
    assert np.all(np.isfinite(post.tia_draws["kidneys"]))


@pytest.mark.slow
def test_pbpk_fit_converges_and_recovers_a_simulated_patient():
    """A patient simulated from the PBPK prior predictive (known parameters, lognormal noise,
    5 time points), fitted with the benchmark's settings 4×(1000+1000): the gate passes and the
    90 % credible interval of every organ's TIA contains the true TIA (one patient, fixed
    seed: a recovery check; calibration over many patients is the reduced model's SBC)."""
    from tdt.inference import pbpk_model, simulate_cohort, standard_template

    template = standard_template()
    lesions = tuple(o for o in template.organ_names if o.startswith("lesion"))
    organs = tuple(o for o in template.organ_names if not o.startswith("lesion"))
    twin = pbpk_model(organs=organs, lesions=lesions)
    cohort = simulate_cohort(template, twin, 1, seed=11)
    post = fit_patient(cohort.datasets[0], model=twin, draws=1000, tune=1000, chains=4, seed=0)
    assert post.converged, post.diagnostics
    for organ, truth in cohort.true_tia_mbq_h.items():
        lo, hi = np.percentile(post.tia_draws[organ], [5, 95])
        assert lo <= truth[0] <= hi, (organ, lo, truth[0], hi)
