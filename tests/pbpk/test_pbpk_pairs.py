"""Theranostic pairs (tdt.pbpk._pairs): the diagnostic 68Ga models share the patient with the 177Lu
models, decay with the ICRP-107 Ga-68 half-life, and map a diagnostic draw onto the registered
therapeutic model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from tdt.catalog import dataset_path
from tdt.errors import InputError
from tdt.pbpk import get_model, model_names
from tdt.pbpk._pairs import get_pair, pair_names

#: ICRP Publication 107 (2008): Ga-68 half-life 67.71 min; Lu-177 6.647 d (written by hand here,
#: not read from tdt.physics)
GA68_HALF_LIFE_H = 67.71 / 60.0
LU177_HALF_LIFE_H = 6.647 * 24.0
PAIRS = {"psma11_psma617": ("psma11", "psma617", "pbpk_psma11_ga68", "pbpk_psma617"),
         "dotatate_ga68_lu177": ("dotatate_ga68", "dotatate", "pbpk_dotatate_ga68",
                                 "pbpk_dotatate")}


def test_pairs_and_diagnostic_models_are_registered():
    assert set(PAIRS) <= set(pair_names())
    for key, (diag, ther, dataset, _) in PAIRS.items():
        pair = get_pair(key)
        assert (pair.diagnostic, pair.therapeutic) == (diag, ther)
        assert get_pair(diag) is pair
        assert diag in model_names("pbpk")
        spec, ref = get_model(diag), get_model(ther)
        assert spec.nuclide == "Ga-68" and spec.radiopharmaceutical.startswith("68Ga-")
        assert spec.dataset == dataset
        assert spec.organs == ref.organs and spec.receptor_organs == ref.receptor_organs
    with pytest.raises(InputError, match="theranostic pair"):
        get_pair("no_such_pair")


@pytest.mark.parametrize("key", sorted(PAIRS))
def test_shared_parameters_are_identical_and_ligand_values_cited(key):
    diag_name, _, dataset, base = PAIRS[key]
    pair = get_pair(key)
    diagnostic, therapeutic = pair.build(lesions=2, method="grid")
    # independently of tdt: the diagnostic YAML lists only ligand-specific names of its base
    own = yaml.safe_load(dataset_path(dataset).read_text())
    base_doc = yaml.safe_load(dataset_path(base).read_text())
    assert own["base"] == base
    specific = set(own["parameters"])
    assert specific <= set(base_doc["parameters"])
    assert {"koff", "fu_plasma"} <= specific and not any(n.startswith(("R_", "V_", "Q_"))
                                                         for n in specific)
    for entry in own["parameters"].values():
        assert entry["source"].startswith("ASSUMPTION") or "Reubi" in entry["source"] \
            or "Eder" in entry["source"]
    shared = pair.shared_parameters(diagnostic, therapeutic)
    d, t = diagnostic.default_params(), therapeutic.default_params()
    assert set(diagnostic.parameter_names) == set(therapeutic.parameter_names)
    for name in diagnostic.parameter_names:
        template = name.replace("_lesion_1", "_lesion").replace("_lesion_2", "_lesion")
        if template in specific:
            assert name not in shared
        else:
            assert name in shared and d[name] == t[name], name
            assert diagnostic.priors()[name] == therapeutic.priors()[name]
    assert {"GFR", "V_plasma", "R_kidneys", "R_lesion_1", "R_lesion_2"} <= set(shared)
    # the affinity differs: PSMA-11 binds less tightly than PSMA-617, Ga-DOTATATE more tightly
    kd = {n: m.default_params()["koff"] / m.default_params()["kon"]
          for n, m in (("diag", diagnostic), ("ther", therapeutic))}
    assert (kd["diag"] > kd["ther"]) == (key == "psma11_psma617")


def _total_activity(sim):
    return sum(np.asarray(sim.activity_mbq[c]) for c in sim.compartments)


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(PAIRS))
def test_diagnostic_model_decays_with_the_icrp107_ga68_half_life(key):
    pair = get_pair(key)
    times = np.array([0.25, 1.0, 2.0, 3.0, 6.0])
    schedule = pair.diagnostic_schedule()
    # the adaptive (error-controlled) solver: the grid method's fixed steps are ~0.5-0.8 %
    # off pointwise for the fast Ga-68 decay (docs/pretherapy.md), below PET noise
    ga = get_model(pair.diagnostic).build(lesions=1, rtol=1e-9, atol=1e-10)
    lu = get_model(pair.diagnostic).build(lesions=1, nuclide="Lu-177", rtol=1e-9, atol=1e-10)
    sim_ga, sim_lu = ga.simulate(ga.default_params(), schedule, times), \
        lu.simulate(lu.default_params(), schedule, times)
    assert bool(sim_ga.ok) and bool(sim_lu.ok)
    a0 = pair.diagnostic_activity_mbq
    lam_ga, lam_lu = math.log(2) / GA68_HALF_LIFE_H, math.log(2) / LU177_HALF_LIFE_H
    # everything administered is somewhere (organs, plasma, urine) and decays physically
    np.testing.assert_allclose(_total_activity(sim_ga), a0 * np.exp(-lam_ga * times), rtol=1e-6)
    # the same ligand kinetics (same peptide amount, > carrier-free for both nuclides): each
    # organ's TAC differs from the Lu-177-labelled one by the decay factor only
    ratio = np.exp(-(lam_ga - lam_lu) * times)
    for organ in ("kidneys", "liver", "lesion_1", "plasma"):
        np.testing.assert_allclose(np.asarray(sim_ga.activity_mbq[organ]),
                                   ratio * np.asarray(sim_lu.activity_mbq[organ]), rtol=1e-4,
                                   err_msg=organ)
    tia_expected = a0 / lam_ga  # all of it decays somewhere
    assert sum(float(v) for v in sim_ga.tia_mbq_h.values()) == pytest.approx(tia_expected,
                                                                             rel=1e-4)


@pytest.mark.parametrize("key", sorted(PAIRS))
def test_therapeutic_model_of_the_pair_is_the_registered_177lu_model(key):
    pair = get_pair(key)
    diagnostic, therapeutic = pair.build(lesions=1, method="grid")
    registered = get_model(pair.therapeutic).build(lesions=1, method="grid")
    assert therapeutic.nuclide == "Lu-177" and therapeutic.parameter_names == \
        registered.parameter_names
    params = pair.therapeutic_params(diagnostic.default_params(), diagnostic, therapeutic)
    assert params == registered.default_params()
    trace = pair.therapy_schedule(ligand_nmol=1e-3)
    times = np.array([1.0, 24.0, 96.0])
    a = therapeutic.simulate(params, trace, times)
    b = registered.simulate(registered.default_params(), trace, times)
    for organ in ("kidneys", "lesion_1"):
        np.testing.assert_array_equal(np.asarray(a.activity_mbq[organ]),
                                      np.asarray(b.activity_mbq[organ]))
    # a patient with twice the renal receptors: the therapy sees them, its own ligand values stay
    draw = dict(diagnostic.default_params())
    draw["R_kidneys"] *= 2.0
    draw["koff"] *= 3.0  # ligand-specific: must not leak into the therapy
    mapped = pair.therapeutic_params(draw, diagnostic, therapeutic, {"krel_kidneys": 0.05})
    assert mapped["R_kidneys"] == 2.0 * registered.default_params()["R_kidneys"]
    assert mapped["koff"] == registered.default_params()["koff"]
    assert mapped["krel_kidneys"] == 0.05


def test_therapeutic_params_rejects_bad_input():
    pair = get_pair("psma11_psma617")
    diagnostic, therapeutic = pair.build(lesions=1, method="grid")
    with pytest.raises(InputError, match="lacks"):
        pair.therapeutic_params({"GFR": 1.0}, diagnostic, therapeutic)
    with pytest.raises(InputError, match="R_kidneys"):
        pair.therapeutic_params(diagnostic.default_params(), diagnostic, therapeutic,
                                {"R_kidneys": 3.0})


def test_grid_diagnostic_model_conserves_decaying_activity():
    """Fast variant with the fitting solver (grid): total activity within its ~1 % accuracy."""
    pair = get_pair("psma11_psma617")
    model = get_model("psma11").build(lesions=1, method="grid")
    times = np.array([0.5, 1.0, 3.0])
    sim = model.simulate(model.default_params(), pair.diagnostic_schedule(), times)
    lam = math.log(2) / GA68_HALF_LIFE_H
    np.testing.assert_allclose(_total_activity(sim),
                               pair.diagnostic_activity_mbq * np.exp(-lam * times), rtol=1e-2)
