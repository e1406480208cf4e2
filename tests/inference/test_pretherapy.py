"""Therapy predicted from the pre-therapy PET (tdt.inference._pretherapy)."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest

from tdt.errors import InputError
from tdt.inference import OrganSeries, PatientData, Posterior
from tdt.inference._pretherapy import (
    TherapyPosterior,
    pet_twin,
    predict_therapy_from_pet,
    therapy_posterior,
)
from tdt.pbpk._pairs import get_pair

PET_ORGANS = ("kidneys", "salivary_glands", "lesion_1")


def _pet_data(activities=None, nuclide="Ga-68", volume=8.0, times=(1.0,)):
    pair = get_pair("psma11_psma617")
    times = np.asarray(times)
    activities = activities or {o: np.full(times.size, 2.0) for o in PET_ORGANS}
    organs = {o: OrganSeries(times, activities[o],
                             volume_ml=volume if o.startswith("lesion") else None,
                             recovery=1.0 if o.startswith("lesion") else None)
              for o in PET_ORGANS}
    with warnings.catch_warnings():  # PET uptake phase: the Lu-tuned half-life check warns
        warnings.simplefilter("ignore")
        return PatientData(organs, administered_activity_mbq=pair.diagnostic_activity_mbq,
                           ligand_nmol=pair.diagnostic_ligand_nmol, nuclide=nuclide)


def test_pet_twin_samples_the_identifiable_subset_and_fixes_the_lesion_geometry():
    twin = pet_twin("psma11_psma617", _pet_data())
    assert twin.forward.nuclide == "Ga-68" and twin.forward.name == "psma11"
    assert set(twin.sampled) == {"GFR", "R_kidneys", "krel_kidneys", "R_salivary_glands",
                                 "krel_salivary_glands", "R_lesion_1", "krel_lesion_1"}
    defaults = twin.forward.default_params()
    assert twin.fixed["V_lesion_1"] == 8.0
    # flow per mL of the template (PyCNO: 0.5 /min per mL), scaled to the VOI volume
    assert twin.fixed["Q_lesion_1"] == pytest.approx(0.5 * 60.0 * 8.0)
    assert defaults["Q_lesion_1"] == pytest.approx(0.5 * 60.0 * 10.0)


def test_pet_input_is_checked():
    with pytest.raises(InputError, match="nuclide"):
        pet_twin("psma11_psma617", _pet_data(nuclide="Lu-177"))
    with pytest.raises(InputError, match="volume_ml"):
        pet_twin("psma11_psma617", _pet_data(volume=None))
    with pytest.raises(InputError, match="pet_data"):
        predict_therapy_from_pet({"kidneys": 1.0})
    with pytest.raises(InputError, match="theranostic pair"):
        pet_twin("no_pair", _pet_data())


def test_therapy_posterior_carries_shared_draws_and_draws_the_rest_from_the_prior():
    data = _pet_data()
    diag = pet_twin("psma11_psma617", data)
    rng = np.random.default_rng(0)
    n_chains, n_draws = 2, 2000
    log = np.asarray(diag.prior_loc) + 0.05 * rng.standard_normal((n_chains, n_draws,
                                                                    diag.n_params))
    idata = az.from_dict(posterior={"log_theta": log}, coords={"param": list(diag.sampled)},
                         dims={"log_theta": ["param"]})
    fake = Posterior(idata, twin=diag)
    post = therapy_posterior("psma11_psma617", diag, fake, data, seed=1)
    assert isinstance(post, TherapyPosterior)
    assert post.twin.forward.name == "psma617" and post.twin.forward.nuclide == "Lu-177"
    assert post.twin.fixed["V_lesion_1"] == 8.0 and post.lesion_volumes_ml == {"lesion_1": 8.0}
    out = post.log_theta_draws
    flat = log.reshape(-1, diag.n_params)
    for name in ("GFR", "R_kidneys", "R_lesion_1"):  # shared: the PET draws, unchanged
        np.testing.assert_array_equal(out[:, post.twin.sampled.index(name)],
                                      flat[:, diag.sampled.index(name)])
    # PSMA-617's own release rates: population prior of its table (median, sd of log 0.5)
    table = post.twin.forward.priors()
    for name in ("krel_kidneys", "krel_lesion_1"):
        column = out[:, post.twin.sampled.index(name)]
        assert np.median(column) == pytest.approx(np.log(table[name][0]), abs=0.05)
        assert np.std(column) == pytest.approx(table[name][1], rel=0.1)
    assert post.schedule.activity_mbq[0] == 7400.0 and post.schedule.ligand_nmol[0] == 150.0


def _random_therapy_posterior(data, seed, sd_log, shape):
    """A TherapyPosterior from PET-model draws around the prior (log-SD ``sd_log``,
    ``shape`` = (chains, draws)) instead of a fit."""
    diag = pet_twin("psma11_psma617", data)
    rng = np.random.default_rng(seed)
    log = np.asarray(diag.prior_loc) + sd_log * rng.standard_normal((*shape, diag.n_params))
    idata = az.from_dict(posterior={"log_theta": log}, coords={"param": list(diag.sampled)},
                         dims={"log_theta": ["param"]})
    return therapy_posterior("psma11_psma617", diag, Posterior(idata, twin=diag), data, seed=1)


def test_therapy_prediction_is_the_general_grid_solver():
    """Posterior.predict of a receptor PBPK (structured bolus solve, urine by mass balance; the
    TherapyPosterior and a plain Posterior alike) against the therapeutic model's own general
    grid solver (``fast=False``: full state with hot, total, urine and integrals): two 177Lu cycles (the second one with the first one's
    activity still in the body), every compartment, the whole-body TIA. Tolerance 1 %: the two solvers share the grid scheme, not the state (the sampler
    path is tested at 1 % against the grid solver, tests/inference/test_fast_pbpk_multicycle)."""
    from tdt.inference._posterior import default_time_grid
    from tdt.pbpk import Administration, Schedule

    post = _random_therapy_posterior(_pet_data(), seed=4, sd_log=0.3, shape=(1, 2))
    organs = tuple(post.twin.forward.layout.reported)
    assert "urine" in organs
    two = Schedule([Administration(0.0, 7400.0, 150.0), Administration(1008.0, 6000.0, 100.0)])
    times = default_time_grid(two, n_per_cycle=12)
    fast = post.predict(two, times_h=times, organs=organs)
    ref = post.predict(two, times_h=times, organs=organs, fast=False)
    # the one home: a plain Posterior of the same PBPK model and draws takes the same solve
    plain = Posterior(post.idata, twin=post.twin).predict(two, times_h=times, organs=organs)
    for organ in organs:
        np.testing.assert_array_equal(plain["tia_mbq_h"][organ], fast["tia_mbq_h"][organ])
    assert np.all(fast["ok"]) and np.all(ref["ok"])
    np.testing.assert_allclose(fast["total_body_tia_mbq_h"], ref["total_body_tia_mbq_h"],
                               rtol=1e-2)
    for organ in organs:
        np.testing.assert_allclose(fast["tia_mbq_h"][organ], ref["tia_mbq_h"][organ],
                                   rtol=1e-2, err_msg=organ)
        a, b = fast["activity_mbq"][organ], ref["activity_mbq"][organ]
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-6 * float(np.max(b)), err_msg=organ)


@pytest.mark.slow
def test_prediction_from_a_simulated_pet_covers_the_true_kidney_tia():
    import jax.numpy as jnp

    pair = get_pair("psma11_psma617")
    data0 = _pet_data(times=(1.0, 2.0))
    diag = pet_twin(pair, data0)
    params = diag.params(jnp.asarray(diag.prior_loc))
    params["R_kidneys"] = params["R_kidneys"] * 1.8  # a patient with more renal PSMA
    sim = diag.forward.simulate(params, pair.diagnostic_schedule(), jnp.asarray([1.0, 2.0]))
    data = _pet_data({o: np.asarray(sim.activity_mbq[o]) for o in PET_ORGANS}, times=(1.0, 2.0))
    post = predict_therapy_from_pet(data, pair, draws=200, tune=300, chains=2, seed=3)
    r = post.parameter_draws["R_kidneys"]
    truth = float(params["R_kidneys"])
    assert np.percentile(r, 5) < truth < np.percentile(r, 95)
    doses = post.predict_doses(max_draws=40, radiobiology=False)
    assert np.all(np.isfinite(doses.dose_gy["kidneys"]))
    assert 0.5 < float(np.median(doses.dose_gy["kidneys"])) < 20.0


def test_therapy_posterior_survives_netcdf(tmp_path):
    """Issue 25 item 4: the lesion geometry (model V_/Q_lesion and the dosimetric volume) and
    the pair come back from the file, and the loaded object is a TherapyPosterior."""
    data = _pet_data(volume=4.0)
    post = _random_therapy_posterior(data, seed=2, sd_log=0.05, shape=(2, 50))
    path = post.to_netcdf(tmp_path / "therapy.nc")
    back = TherapyPosterior.from_netcdf(path)
    assert isinstance(back, TherapyPosterior) and back.pair.key == "psma11_psma617"
    assert back.lesion_volumes_ml == {"lesion_1": 4.0}
    # 0.5 /min per mL template flow (PyCNO) x 4 mL, independent of the code's own arithmetic
    assert back.twin.fixed["V_lesion_1"] == 4.0
    assert back.twin.fixed["Q_lesion_1"] == pytest.approx(0.5 * 60.0 * 4.0)
    np.testing.assert_array_equal(back.log_theta_draws, post.log_theta_draws)
    assert back.schedule.activity_mbq[0] == 7400.0 and back.diagnostic_posterior is None
    # a plain posterior file is not a TherapyPosterior
    plain = post.diagnostic_posterior.to_netcdf(tmp_path / "pet.nc")  # the PET posterior
    with pytest.raises(InputError, match="not a TherapyPosterior"):
        TherapyPosterior.from_netcdf(plain)
