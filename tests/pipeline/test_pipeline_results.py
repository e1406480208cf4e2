"""Results helpers that notebooks call: JSON, NetCDF, figures, convergence flags."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.pipeline import results


def test_save_json_converts_arrays(tmp_path):
    path = results.save_json("summary", {"a": np.arange(3), "b": np.float64(2.5),
                                         "c": (1, float("nan")), "d": tmp_path / "x"},
                             output_dir=tmp_path)
    assert path == tmp_path / "summary.json"
    assert json.loads(path.read_text()) == {"a": [0, 1, 2], "b": 2.5, "c": [1, None],
                                            "d": (tmp_path / "x").as_posix()}
    assert results.load_json("summary", output_dir=tmp_path)["b"] == 2.5
    with pytest.raises(InputError, match="results name '../evil'"):
        results.save_json("../evil", {}, output_dir=tmp_path)
    with pytest.raises(InputError, match="cannot save object as JSON"):
        results.save_json("bad", {"x": object()}, output_dir=tmp_path)


def test_default_output_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert results.save_json("cwd", [1]) .resolve() == (tmp_path / "cwd.json").resolve()
    previous = results.use_output_dir(tmp_path / "elsewhere")
    try:
        assert results.save_json("x", 1) == tmp_path / "elsewhere" / "x.json"
    finally:
        results.use_output_dir(previous)


def test_netcdf_roundtrip(tmp_path):
    import arviz as az
    import xarray as xr

    ds = xr.Dataset({"dose_gy": ("draw", np.linspace(1.0, 2.0, 5))})
    path = results.save_netcdf("doses", ds, output_dir=tmp_path)
    with xr.open_dataset(path, engine="h5netcdf") as back:
        np.testing.assert_array_equal(back["dose_gy"].values, ds["dose_gy"].values)
    idata = az.from_dict(posterior={"k": np.ones((2, 4))})
    path = results.save_netcdf("posterior", idata, output_dir=tmp_path)
    assert az.from_netcdf(path).posterior["k"].shape == (2, 4)
    with pytest.raises(InputError, match="expected arviz.InferenceData"):
        results.save_netcdf("x", [1, 2], output_dir=tmp_path)


def test_figure_is_byte_stable(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    [first] = results.save_figure("line", fig, output_dir=tmp_path / "a")
    [second] = results.save_figure("line", fig, output_dir=tmp_path / "b")
    plt.close(fig)
    assert first.parent.name == "figures" and first.read_bytes() == second.read_bytes()


def test_record_prior_merges_and_refuses_a_non_dict(tmp_path):
    results.record_prior("population", {"source": "catalog", "sha256": "ab" * 32},
                         output_dir=tmp_path)
    results.record_prior("federated", {"method": "m", "n_sites": np.int64(3)}, output_dir=tmp_path)
    table = json.loads((tmp_path / results.PRIORS_FILE).read_text())
    assert table == {"population": {"source": "catalog", "sha256": "ab" * 32},
                     "federated": {"method": "m", "n_sites": 3}}
    with pytest.raises(InputError, match="origin"):
        results.record_prior("x", "catalog", output_dir=tmp_path)


def test_record_convergence_merges(tmp_path):
    results.record_convergence("fit_a", True, output_dir=tmp_path, r_hat_max=np.float64(1.01))
    results.record_convergence("fit_b", False, output_dir=tmp_path, divergences=3)
    table = json.loads((tmp_path / results.CONVERGENCE_FILE).read_text())
    assert table == {"fit_a": {"converged": True, "r_hat_max": 1.01},
                     "fit_b": {"converged": False, "divergences": 3}}
