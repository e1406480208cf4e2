"""[68Ga]Ga-PSMA-11 receptor PBPK model: the PSMA receptor PBPK structure and organs of
:mod:`tdt.pbpk.psma617` with the ligand-specific table ``pbpk_psma11_ga68`` (affinity, plasma
binding, renal handling, internalisation/release; data_catalog/pbpk/psma11_ga68.yaml); every
other parameter is the PSMA-617 table's (shared patient, :mod:`tdt.pbpk.pairs`). Default nuclide
Ga-68 (ICRP-107 half-life 67.71 min).
"""

from __future__ import annotations

from collections.abc import Iterable

from tdt.pbpk.nonlinear import PbpkModel
from tdt.pbpk.pairs import build_ligand_model
from tdt.pbpk.registry import ModelSpec, register_model

# the organs of tdt.pbpk.psma617 (not imported: this module is loaded from the registry while
# tdt.pbpk initialises; tests/pbpk/test_pbpk_pairs.py checks they are the same)
ORGANS = ("kidneys", "salivary_glands", "lacrimal_glands", "liver", "spleen", "gi", "red_marrow",
          "remainder")
RECEPTOR_ORGANS = frozenset({"kidneys", "salivary_glands", "lacrimal_glands", "liver", "spleen",
                             "gi"})


def psma11(lesions: int | Iterable[str] = 1, nuclide: str = "Ga-68",
           dataset: str = "pbpk_psma11_ga68", **options) -> PbpkModel:
    """The PSMA-11 PBPK model with ``lesions`` tumour lesions (count or names ``lesion_<n>``).

    ``options``: solver settings of :class:`~tdt.pbpk.nonlinear.PbpkModel`.
    """
    return build_ligand_model("psma11", dataset, ORGANS, RECEPTOR_ORGANS, lesions, nuclide,
                              **options)


SPEC = register_model(ModelSpec(
    key="psma11", radiopharmaceutical="68Ga-PSMA-11", nuclide="Ga-68", kind="pbpk",
    factory=psma11, organs=ORGANS, dataset="pbpk_psma11_ga68", receptor_organs=RECEPTOR_ORGANS,
    source_organs=ORGANS,
    citation="PSMA-617 receptor PBPK structure and shared patient parameters; PSMA-11 ligand "
             "values (data_catalog/pbpk/psma11_ga68.yaml; Begum NJ, et al. Sci Rep "
             "2019;9:20041)"))
