"""177Lu-PSMA-617 receptor PBPK model (plasma, kidneys, salivary glands, lacrimal glands, liver,
spleen, GI, red marrow, remainder, lesions, urine). Parameters: catalog ``pbpk_psma617`` (cited per value)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from tdt.pbpk._builders import build
from tdt.pbpk._nonlinear import PbpkModel
from tdt.pbpk._registry import (
    PSMA_KIDNEY_ROUTES,
    ModelSpec,
    identifiable_receptor_parameters,
    register_model,
)

ORGANS = ("kidneys", "salivary_glands", "lacrimal_glands", "liver", "spleen", "gi", "red_marrow",
          "remainder")
#: PSMA-expressing tissues (red marrow and the remainder have no specific binding).
RECEPTOR_ORGANS = frozenset({"kidneys", "salivary_glands", "lacrimal_glands", "liver", "spleen",
                             "gi"})


def psma617(lesions: int | Iterable[str] = 1, nuclide: str = "Lu-177",
            dataset: str = "pbpk_psma617", **options) -> PbpkModel:
    """The PSMA-617 PBPK model with ``lesions`` tumour lesions (count or names ``lesion_<n>``).

    Each lesion has its own volume ``V_lesion_<n>`` (mL), receptor density ``R_lesion_<n>``
    (nmol/L), flow, internalisation and release. ``options``: solver settings of
    :class:`~tdt.pbpk._nonlinear.PbpkModel` (rtol, atol, max_steps, horizon_h, adjoint, solver;
    ``method="grid"`` with grid_steps, grid_first_step_h, linear_after_h for cohorts/fitting).
    """
    return build("psma617", dataset, ORGANS, RECEPTOR_ORGANS, lesions, nuclide, **options)


SPEC = register_model(ModelSpec(
    key="psma617", radiopharmaceutical="177Lu-PSMA-617", nuclide="Lu-177", kind="pbpk",
    factory=psma617, organs=ORGANS, dataset="pbpk_psma617", receptor_organs=RECEPTOR_ORGANS,
    source_organs=ORGANS,
    # kidney uptake is PSMA binding plus tubular reabsorption: both amplitudes sampled when the
    # kidneys are imaged (docs/twin.md, "Sampling the reabsorption")
    identifiable=functools.partial(identifiable_receptor_parameters, also=PSMA_KIDNEY_ROUTES),
    linear_dataset="pbpk_reduced_linear_psma617",
    citation="Begum/Kletting/Glatting PSMA PBPK lineage; PyCNO SBML, EJNMMI Radiopharm Chem "
             "2024;9:6 (data_catalog/pbpk/psma617.yaml)"))
