"""The ligand planner's traceable dose map equals ``Posterior.predict_doses`` on the same draws
(slow: predict_doses is forced onto the model's own general grid solver, ``fast=False``, a
second solve path, and compiles it)."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from tdt.inference import Posterior, pbpk_model
from tdt.pbpk import Schedule
from tdt.twin import LigandResponse

ORGANS = ("kidneys", "salivary_glands", "liver", "red_marrow")
SAMPLED = ("GFR", "R_kidneys", "krel_kidneys", "R_lesion_1")


@pytest.mark.slow
@pytest.mark.parametrize("ligand_nmol", [30.0, 600.0])
def test_response_equals_predict_doses_on_the_same_draws(ligand_nmol):
    twin = pbpk_model(ORGANS, lesions=("lesion_1",), sampled=SAMPLED)
    rng = np.random.default_rng(11)
    log_theta = twin.prior_loc + 0.2 * rng.normal(size=(1, 6, twin.n_params))
    idata = az.from_dict(posterior={"log_theta": log_theta, "theta": np.exp(log_theta)},
                         coords={"param": list(twin.sampled)},
                         dims={"log_theta": ["param"], "theta": ["param"]})
    posterior = Posterior(idata, twin=twin)
    activity = 7400.0
    schedule = Schedule.repeated(activity, 1, 0.0, ligand_nmol=ligand_nmol)
    masses = {"kidneys": 290.0}
    volumes = {"lesion_1": 12.0}
    prediction = posterior.predict_doses(schedule, organ_masses_g=masses,
                                         lesion_volumes_ml=volumes, marrow="image",
                                         void_interval_h=None, fast=False)
    draws = {name: values for name, values in posterior.parameter_draws.items()}
    response = LigandResponse(twin.forward, draws, organ_masses_g=masses,
                              lesion_volumes_ml=volumes)
    d, q = response.coefficients(ligand_nmol)
    for organ in ("kidneys", "red_marrow", "salivary_glands", "lesion_1"):
        j = response.organs.index(organ)
        np.testing.assert_allclose(d[:, j] * activity, prediction.dose_gy[organ], rtol=2e-3,
                                   err_msg=organ)
        bed = d[:, j] * activity + q[:, j] * activity**2
        # BED: same G-factor function, different time grids (40 points to 168 h + exponential
        # tail here, 160 points to 1600 h in predict_doses)
        np.testing.assert_allclose(bed, prediction.bed_gy[organ], rtol=5e-3, err_msg=organ)
