"""177Lu-DOTATATE in inference (issue #21 item 2): ``pbpk_model(model="dotatate")`` samples the
DOTATATE receptor PBPK's identifiable subset under its cited priors — the same checks as the
PSMA-617 fit (tests/inference/test_inference_pbpk_fit.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml

from tdt.catalog import dataset_path
from tdt.inference import fit_patient, pbpk_model, simulate_cohort, standard_template

ORGANS = ("kidneys", "spleen", "liver")
LESIONS = ("lesion_1",)
#: Lu-177 mean non-penetrating energy per decay (MeV): beta- 0.13327 + internal-conversion
#: electrons 0.01352 + Auger 0.00113 (ICRP Publication 107, data_catalog/nuclides/
#: icrp107_mean_energies.csv).
LU177_NONPENETRATING_MEV = 0.1332698 + 0.01352161 + 0.001131767
J_PER_MEV = 1.602176634e-13
#: 1/min -> 1/h and L/min -> mL/h, written out (independent of tdt.units)
PER_MIN = 60.0
L_PER_MIN = 60.0 * 1000.0


@pytest.fixture(scope="module")
def twin():
    return pbpk_model(organs=ORGANS, lesions=LESIONS, model="dotatate")


def test_identifiable_subset_and_cited_priors(twin):
    # the DOTATATE rule: GFR; kidney uptake by tubular reabsorption (f_reabs), not R_kidneys
    # (renal sst2 is an ASSUMPTION of 1 nmol/L in the table); R and krel of the other VOIs
    assert twin.sampled == ("GFR", "f_reabs", "krel_kidneys", "R_spleen", "krel_spleen",
                            "R_liver", "krel_liver", "R_lesion_1", "krel_lesion_1")
    assert twin.forward.name == "dotatate" and twin.forward.method == "grid"
    assert twin.options["model"] == "dotatate"
    assert "R_kidneys" in twin.fixed and "kon" in twin.fixed
    # priors: read the catalog YAML directly and convert the literature units by hand
    table = yaml.safe_load(dataset_path("pbpk_dotatate").read_text())["parameters"]
    scale = {"1/min": PER_MIN, "L/min": L_PER_MIN, "1": 1.0, "nmol/L": 1.0}
    for name in twin.sampled:
        entry = table[name if not name.endswith("lesion_1") else name[:-2]]
        expected = float(entry["value"]) * scale[entry["unit"]]
        assert twin.prior_median[name] == pytest.approx(expected, rel=1e-12), name
        assert twin.prior_sd_log[name] == pytest.approx(float(entry["prior_sd_log"])), name


def test_prior_predictive_doses_are_clinically_sane(twin):
    """Prior-predictive absorbed doses per GBq (local deposition of the non-penetrating energy)
    against 177Lu-DOTATATE dosimetry in 61 patients: kidneys 0.57 +- 0.09, spleen 1.17 +- 0.14,
    liver 0.27 +- 0.05 Gy/GBq (Clin Nucl Med 2013;38(3), the study the table is calibrated to;
    see data_catalog/pbpk/dotatate.yaml R_spleen) — the prior medians within a factor 1.5 of
    the clinical means, 90 % prior intervals covering them and spanning less than a factor 30."""
    template = standard_template(organs=(*ORGANS, *LESIONS))
    cohort = simulate_cohort(template, twin, 24, seed=1)
    masses_kg = {"kidneys": 0.310, "spleen": 0.150, "liver": 1.800}  # ICRP 89 (table V_*)
    clinical = {"kidneys": 0.57, "spleen": 1.17, "liver": 0.27}
    gbq = template.administered_activity_mbq / 1000.0
    for organ, mass in masses_kg.items():
        tia = np.asarray(cohort.true_tia_mbq_h[organ])
        assert np.all(np.isfinite(tia)) and np.all(tia > 0)
        dose = tia * 1e6 * 3600.0 * LU177_NONPENETRATING_MEV * J_PER_MEV / mass / gbq
        lo, med, hi = np.percentile(dose, [5, 50, 95])
        assert clinical[organ] / 1.5 < med < clinical[organ] * 1.5, (organ, med)
        assert lo < clinical[organ] < hi and hi / lo < 30.0, (organ, lo, hi)
    for data in cohort.datasets:
        for organ in (*ORGANS, *LESIONS):
            assert np.all(np.isfinite(data.organs[organ].activity_mbq))


@pytest.mark.slow
def test_dotatate_short_fit_runs_and_is_flagged(twin):
    # a DOTATATE patient from the prior predictive, very short NUTS run on the fast PBPK
    # sampler path: finishes, flags non-convergence, finite TIAs (~60 s, mostly compilation)
    template = standard_template(organs=(*ORGANS, *LESIONS))
    data = simulate_cohort(template, twin, 1, seed=7).datasets[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = fit_patient(data, model=twin, draws=5, tune=5, chains=2, seed=0)
    assert post.diagnostics.n_draws == 5
    assert not post.converged
    assert "NOT CONVERGED" in post.report()
    for organ in (*ORGANS, *LESIONS):
        assert np.all(np.isfinite(post.tia_draws[organ]))
    assert post.twin.forward.name == "dotatate"
