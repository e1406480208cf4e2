"""The model registry (tdt.pbpk._registry): built-in entries, lookups, errors, and the layers
above (inference, posterior persistence, twin) resolving models through it."""

from __future__ import annotations

import pytest

from tdt.errors import InputError
from tdt.pbpk import (
    LinearModel,
    ModelSpec,
    PbpkModel,
    dotatate,
    get_model,
    model_names,
    psma617,
    register_model,
)
from tdt.pbpk._registry import (
    _ALIASES,
    _REGISTRY,
    PSMA_KIDNEY_ROUTES,
    identifiable_receptor_parameters,
)


def test_builtin_models_are_registered_with_their_datasets():
    assert {"psma617", "dotatate", "reduced"} <= set(model_names())
    assert set(model_names("pbpk")) >= {"psma617", "dotatate"}
    assert "reduced" in model_names("reduced_linear")
    spec = get_model("psma617")
    assert spec.radiopharmaceutical == "177Lu-PSMA-617" and spec.nuclide == "Lu-177"
    assert spec.dataset == "pbpk_psma617" and spec.factory is psma617
    assert "kidneys" in spec.receptor_organs and "red_marrow" not in spec.receptor_organs
    assert get_model("dotatate").factory is dotatate
    assert get_model("dotatate").radiopharmaceutical == "177Lu-DOTATATE"
    assert get_model("reduced_linear") is get_model("reduced")  # alias


@pytest.mark.parametrize("name", ["psma617", "psma_it", "dotatate", "reduced"])
def test_build_gives_the_factorys_model(name):
    spec = get_model(name)
    forward = spec.build(lesions=1)
    assert isinstance(forward, PbpkModel if spec.kind == "pbpk" else LinearModel)
    assert forward.dataset == spec.dataset
    for organ in spec.organs:
        assert organ in forward.organs
    assert "lesion_1" in forward.organs
    # every receptor organ has a receptor density parameter in the model's table
    for organ in spec.receptor_organs:
        assert f"R_{organ}" in forward.parameter_names


def test_identifiable_subsets_per_model():
    psma = get_model("psma617")
    fwd = psma.build(lesions=1)
    # PSMA kidney uptake is receptor binding AND tubular reabsorption (docs/twin.md, "Sampling
    # the reabsorption"): f_reabs appended after the receptor subset, only when the kidneys are
    # imaged; the rule without ``also`` is the receptor subset alone
    assert psma.identifiable_parameters(fwd, ("kidneys", "lesion_1")) == (
        "GFR", "R_kidneys", "krel_kidneys", "R_lesion_1", "krel_lesion_1", "f_reabs")
    assert psma.identifiable_parameters(fwd, ("kidneys", "lesion_1")) == \
        identifiable_receptor_parameters(fwd, ("kidneys", "lesion_1"), also=PSMA_KIDNEY_ROUTES)
    assert identifiable_receptor_parameters(fwd, ("kidneys", "lesion_1")) == (
        "GFR", "R_kidneys", "krel_kidneys", "R_lesion_1", "krel_lesion_1")
    assert "f_reabs" not in psma.identifiable_parameters(fwd, ("lesion_1",))
    it = get_model("psma_it")
    assert it.identifiable_parameters(it.build(lesions=1), ("kidneys",))[-1] == "f_reabs"
    dota = get_model("dotatate")
    fwd = dota.build(lesions=1)
    # DOTATATE kidney uptake is tubular reabsorption (f_reabs), not sst2 binding
    assert dota.identifiable_parameters(fwd, ("kidneys", "spleen", "lesion_1")) == (
        "GFR", "f_reabs", "krel_kidneys", "R_spleen", "krel_spleen", "R_lesion_1",
        "krel_lesion_1")
    red = get_model("reduced")
    fwd = red.build()
    assert red.identifiable_parameters(fwd, ("kidneys",)) == tuple(fwd.parameter_names)


def test_unknown_and_duplicate_names_are_errors():
    with pytest.raises(InputError, match="model: unknown value 'psma618'.*psma617"):
        get_model("psma618")
    with pytest.raises(InputError, match="already registered"):
        register_model(ModelSpec(key="psma617", radiopharmaceutical="x", nuclide="Lu-177",
                                 kind="pbpk", factory=dotatate, organs=("kidneys",),
                                 dataset="pbpk_dotatate"))
    with pytest.raises(InputError, match="kind"):
        ModelSpec(key="m", radiopharmaceutical="x", nuclide="Lu-177", kind="ode",
                  factory=psma617, organs=(), dataset="pbpk_psma617")
    with pytest.raises(InputError, match="receptor_organs"):
        ModelSpec(key="m", radiopharmaceutical="x", nuclide="Lu-177", kind="pbpk",
                  factory=psma617, organs=("kidneys",), dataset="pbpk_psma617",
                  receptor_organs=frozenset({"liver"}))


def test_a_registered_model_is_usable_by_name_in_inference():
    from tdt.inference import pbpk_model

    spec = ModelSpec(key="test_psma_copy", radiopharmaceutical="177Lu-PSMA-617 (copy)",
                     nuclide="Lu-177", kind="pbpk", factory=psma617,
                     organs=get_model("psma617").organs, dataset="pbpk_psma617")
    register_model(spec)
    try:
        twin = pbpk_model(organs=("kidneys",), model="test_psma_copy")
        assert twin.options["model"] == "test_psma_copy"
        assert twin.sampled == ("GFR", "R_kidneys", "krel_kidneys")
    finally:
        _REGISTRY.pop("test_psma_copy")
        _ALIASES.pop("test_psma_copy", None)


def test_inference_and_twin_resolve_names_through_the_registry():
    import numpy as np

    from tdt.inference import OrganSeries, PatientData, pbpk_model
    from tdt.inference._models import resolve_model
    from tdt.twin._twin_models import _build_model, twin_model_names

    times = np.array([4.0, 24.0, 96.0])
    data = PatientData({"kidneys": OrganSeries(times, np.ones(3)),
                        "spleen": OrganSeries(times, np.ones(3))})
    twin = resolve_model("dotatate", data)
    assert twin.forward.name == "dotatate" and twin.options["model"] == "dotatate"
    assert resolve_model("pbpk", PatientData({"kidneys": OrganSeries(times, np.ones(3))})
                         ).options["model"] == "psma617"
    with pytest.raises(InputError, match="registered model name"):
        resolve_model(3.0, data)
    with pytest.raises(InputError, match="reduced_linear model"):
        pbpk_model(model="reduced")
    assert set(twin_model_names()) >= {"psma617", "reduced"}
    assert "dotatate" not in twin_model_names()
    from tdt.twin import PatientRecord

    record = PatientRecord(lesions={"lesion_1": 5.0})
    forward, name = _build_model("psma617", record)
    assert name == "reduced_linear_psma617" and forward.dataset == "pbpk_reduced_linear_psma617"
    with pytest.raises(InputError, match="'dotatate'.*no reduced"):
        _build_model("dotatate", record)
    with pytest.raises(InputError, match="model: unknown value"):
        _build_model("nonsense", record)


def test_posterior_metadata_rebuilds_the_registered_model():
    from tdt.inference._posterior_file import _rebuild_forward

    fwd = _rebuild_forward("pbpk", {"model": "dotatate", "lesions": ["lesion_1"],
                                    "method": "grid"}, None)
    assert fwd.name == "dotatate" and fwd.method == "grid" and "lesion_1" in fwd.organs
    # files written before the registry have no "model" option: PSMA-617
    assert _rebuild_forward("pbpk", {"lesions": []}, None).name == "psma617"
    red = _rebuild_forward("reduced", {"organs": ["kidneys"], "nuclide": "Lu-177"}, None)
    assert red.dataset == get_model("reduced").dataset
