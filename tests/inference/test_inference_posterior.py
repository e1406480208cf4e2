"""Posterior predictive with the reduced linear model (draws injected, no sampling)."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from tdt.inference import Posterior, reduced_model, standard_template
from tdt.inference._diagnostics import NOT_CONVERGED

pbpk = pytest.importorskip("tdt.pbpk")


@pytest.fixture(scope="module")
def posterior():
    data = standard_template()
    twin = reduced_model(data.organ_names)
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2, 10, twin.n_params))
    log_theta = twin.prior_loc + z @ twin.prior_chol.T
    # TIA of each draw from tdt.pbpk's own (expm) solver: an independent reference for the
    # fast bolus path that Posterior.predict uses.
    import jax
    import jax.numpy as jnp

    schedule = data.resolve_schedule()

    def one(lt):
        return twin.simulate(lt, schedule, jnp.asarray([1.0]), data.organ_names, fast=False)[1]

    tia = np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(log_theta.reshape(-1, twin.n_params))))
    tia = tia.reshape(2, 10, -1)
    idata = az.from_dict(
        posterior={"log_theta": log_theta, "theta": np.exp(log_theta), "tia_mbq_h": tia,
                   "z": z},
        coords={"param": list(twin.sampled), "organ": list(data.organ_names)},
        dims={"log_theta": ["param"], "theta": ["param"], "tia_mbq_h": ["organ"],
              "z": ["param"]},
    )
    return Posterior(idata, twin=twin, data=data, schedule=data.resolve_schedule())


def test_predict_reproduces_stored_tia(posterior):
    pred = posterior.predict()
    for organ, draws in posterior.tia_draws.items():
        np.testing.assert_allclose(pred["tia_mbq_h"][organ], draws, rtol=1e-9)


def test_two_cycles_double_the_tia(posterior):
    # Linear model: two identical, well-separated cycles give twice the TIA of one
    # (superposition), to the decay tail left of cycle 1 at 1e5 h (~e^-430, negligible).
    one = posterior.predict(pbpk.Schedule.repeated(7400.0, 1, 1.0e5, ligand_nmol=100.0))
    two = posterior.predict(pbpk.Schedule.repeated(7400.0, 2, 1.0e5, ligand_nmol=100.0))
    np.testing.assert_allclose(two["tia_mbq_h"]["kidneys"], 2 * one["tia_mbq_h"]["kidneys"],
                               rtol=1e-8)


def test_predict_doses_with_lesions(posterior):
    pred = posterior.predict_doses(tcp_alpha_per_gy=0.3)
    assert set(pred.dose_gy) == set(posterior.data.organ_names)
    assert pred.dose_gy["kidneys"].shape == (20,)
    assert set(pred.tcp) == {"lesion_1", "lesion_2"}
    assert {"kidneys", "salivary_glands"} <= set(pred.ntcp)
    # the 4-mL lesion has the same TIA prior but a smaller mass: higher dose per TIA
    per_tia_1 = pred.dose_gy["lesion_1"] / pred.tia_mbq_h["lesion_1"]
    per_tia_2 = pred.dose_gy["lesion_2"] / pred.tia_mbq_h["lesion_2"]
    assert np.all(per_tia_2 > per_tia_1)
    assert "liver: no radiobiological parameters; BED not computed" in pred.notes
    # diagnostics computed from the injected draws: 10 draws cannot pass the gate
    assert pred.flag == NOT_CONVERGED


def test_dose_per_gbq_rows_divide_by_the_administered_activity(posterior):
    # the template's schedule gives 7.4 GBq (7400 MBq); Gy/GBq = Gy / 7.4, row by row
    administered = float(np.sum(np.asarray(posterior.schedule.activity_mbq)))
    assert administered == pytest.approx(7400.0)
    pred = posterior.predict_doses(max_draws=20)
    rows = {(r["quantity"], r["organ"]): r for r in pred.summary()}
    for organ, draws in pred.dose_gy.items():
        row = rows[("dose_gy_per_gbq", organ)]
        assert row["unit"] == "Gy/GBq" and row["flag"] == NOT_CONVERGED
        assert row["median"] == pytest.approx(float(np.median(draws)) / 7.4, rel=1e-12)


def test_netcdf_round_trip_rebuilds_reduced_model(posterior, tmp_path):
    path = posterior.to_netcdf(tmp_path / "reduced.nc")
    back = Posterior.from_netcdf(path)
    assert back.twin.kind == "reduced" and back.twin.sampled == posterior.twin.sampled
    np.testing.assert_allclose(back.predict()["tia_mbq_h"]["kidneys"],
                               posterior.tia_draws["kidneys"], rtol=1e-9)
    assert back.data.organs["lesion_2"].volume_ml == 4.0


def test_pbpk_identifiable_subset_and_priors():
    from tdt.inference import pbpk_model

    twin = pbpk_model(organs=("kidneys", "salivary_glands"), lesions=("lesion_1",))
    assert twin.sampled == ("GFR", "R_kidneys", "krel_kidneys", "R_salivary_glands",
                            "krel_salivary_glands", "R_lesion_1", "krel_lesion_1", "f_reabs")
    priors = twin.forward.priors()  # the model's cited lognormal priors are used unchanged
    for name in twin.sampled:
        assert twin.prior_median[name] == pytest.approx(priors[name][0])
        assert twin.prior_sd_log[name] == pytest.approx(priors[name][1])
    assert "V_kidneys" in twin.fixed


def _rewrite_netcdf(src, out, mutate):
    """Re-write a posterior file with ``mutate(idata)`` applied (no re-signing)."""
    idata = az.from_netcdf(str(src))
    mutate(idata)
    idata.to_netcdf(str(out))
    return out


def test_edited_posterior_files_are_refused(posterior, tmp_path):
    import json

    from tdt.errors import InputError

    path = posterior.to_netcdf(tmp_path / "p.nc")

    def edit_draw(idata):
        idata.posterior["theta"].values[0, 0, 0] *= 10.0

    def edit_metadata(idata):
        meta = json.loads(idata.posterior.attrs["tdt_posterior"])
        meta["data"]["organs"]["lesion_2"]["volume_ml"] = 40.0
        idata.posterior.attrs["tdt_posterior"] = json.dumps(meta)

    def strip_seal(idata):
        del idata.posterior.attrs["tdt_integrity"]

    for name, mutate, message in (("draw", edit_draw, "does not match"),
                                  ("meta", edit_metadata, "does not match"),
                                  ("unsigned", strip_seal, "unsigned")):
        bad = _rewrite_netcdf(path, tmp_path / f"{name}.nc", mutate)
        with pytest.raises(InputError, match=f"{name}.nc: .*{message}"):
            Posterior.from_netcdf(bad)
    assert Posterior.from_netcdf(tmp_path / "unsigned.nc", allow_unsigned=True).n_draws == 20


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "metadata_not_json",
                                    "metadata_wrong_types"])
def test_malformed_posterior_files_give_one_input_error(posterior, tmp_path, damage):
    import json

    from tdt.errors import InputError
    from tdt.inference._posterior_file import seal

    path = posterior.to_netcdf(tmp_path / "p.nc")
    bad = tmp_path / f"{damage}.nc"
    if damage == "truncated":
        bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "empty":
        bad.write_bytes(b"")
    else:  # validly signed (a buggy writer holding the key) but malformed metadata
        text = "{not json" if damage == "metadata_not_json" else json.dumps(
            {"format_version": 1, "model": {"kind": 3}, "measurement": [],
             "diagnostics": None})

        def mutate(idata):
            idata.posterior.attrs["tdt_posterior"] = text
            idata.posterior.attrs["tdt_integrity"] = seal(idata, text)

        _rewrite_netcdf(path, bad, mutate)
    with pytest.raises(InputError, match=f"{damage}.nc"):
        Posterior.from_netcdf(bad)
