"""tdt.twin.ligand_sweep: the uniform plan per ligand amount, checked by counting draws.

Reference: the direct PBPK response d(L), q(L) of every draw (LigandResponse.coefficients), the
cumulative kidney BED n (d A + q A²) and marrow dose n d A counted draw by draw against the
limits — no order statistic, no planner code. Same draws and model as test_twin_plan_ligand.py
(one compiled program).
"""

from __future__ import annotations

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.pbpk import draw_parameters, get_model
from tdt.twin import LigandResponse, ligand_sweep

N_DRAWS, N_CYCLES, LESION_ML = 60, 4, 500.0


@pytest.fixture(scope="module")
def response():
    forward = get_model("psma617").build(lesions=1, method="grid")
    sd = {n: 0.0 for n in forward.parameter_names}
    for name in ("GFR", "R_kidneys", "krel_kidneys", "R_lesion_1", "krel_lesion_1",
                 "R_salivary_glands", "krel_salivary_glands"):
        sd[name] = 0.3
    params = draw_parameters(forward, N_DRAWS, seed=3, sd_log=sd,
                             median={"V_lesion_1": LESION_ML})
    return LigandResponse(forward, {k: np.asarray(v) for k, v in params.items()},
                          lesion_volumes_ml={"lesion_1": LESION_ML})


def test_sweep_probabilities_are_counted_fractions(response):
    rows = ligand_sweep(response, [40.0, 400.0], N_CYCLES, fixed_activity_mbq=7400.0)
    k, m = response.organs.index("kidneys"), response.organs.index("red_marrow")
    t = response.organs.index("lesion_1")
    for row in rows:
        d, q = response.coefficients(row["ligand_nmol"])

        def kidney_bed(a, d=d, q=q):
            return N_CYCLES * (d[:, k] * a + q[:, k] * a**2)

        fixed = row["probabilities_fixed"]
        assert fixed["P(kidneys BED > 28 Gy)"] == pytest.approx(
            np.mean(kidney_bed(7400.0) > 28.0))
        assert fixed["P(red_marrow dose > 2 Gy)"] == pytest.approx(
            np.mean(N_CYCLES * d[:, m] * 7400.0 > 2.0))
        a = row["activity_mbq"]
        assert np.mean(kidney_bed(a) > 28.0) <= 0.05  # admissible ...
        assert np.mean(kidney_bed(1.001 * a) > 28.0) > 0.05  # ... and the largest such
        bed_t = N_CYCLES * (d[:, t] * a + q[:, t] * a**2)
        assert row["tumour_bed_gy"] == pytest.approx(bed_t.mean(), rel=1e-9)
    # more peptide: lower kidney dose per MBq, so a higher admissible activity (saturation)
    assert rows[1]["activity_mbq"] > rows[0]["activity_mbq"]
    with pytest.raises(InputError, match="ligands_nmol"):
        ligand_sweep(response, [-1.0], N_CYCLES)
