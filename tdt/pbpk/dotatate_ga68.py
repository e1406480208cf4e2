"""[68Ga]Ga-DOTATATE receptor PBPK model: the sst2 PBPK structure and organs of
:mod:`tdt.pbpk.dotatate` with the ligand-specific table ``pbpk_dotatate_ga68`` (affinity, plasma
binding, internalisation/release; data_catalog/pbpk/dotatate_ga68.yaml); physiology, sst2
densities and tubular reabsorption are the 177Lu-DOTATATE table's (shared patient,
:mod:`tdt.pbpk.pairs`). Default nuclide Ga-68.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from tdt.pbpk.nonlinear import PbpkModel
from tdt.pbpk.pairs import build_ligand_model
from tdt.pbpk.registry import ModelSpec, identifiable_receptor_parameters, register_model

# the organs of tdt.pbpk.dotatate (not imported: this module is loaded from the registry while
# tdt.pbpk initialises; tests/pbpk/test_pbpk_pairs.py checks they are the same)
ORGANS = ("kidneys", "spleen", "liver", "gi", "red_marrow", "remainder")
RECEPTOR_ORGANS = frozenset({"kidneys", "spleen", "liver", "gi"})


def dotatate_ga68(lesions: int | Iterable[str] = 1, nuclide: str = "Ga-68",
                  dataset: str = "pbpk_dotatate_ga68", **options) -> PbpkModel:
    """The 68Ga-DOTATATE PBPK model with ``lesions`` tumour lesions.

    ``options``: solver settings of :class:`~tdt.pbpk.nonlinear.PbpkModel`.
    """
    return build_ligand_model("dotatate_ga68", dataset, ORGANS, RECEPTOR_ORGANS, lesions,
                              nuclide, **options)


SPEC = register_model(ModelSpec(
    key="dotatate_ga68", radiopharmaceutical="68Ga-DOTATATE", nuclide="Ga-68", kind="pbpk",
    factory=dotatate_ga68, organs=ORGANS, dataset="pbpk_dotatate_ga68",
    receptor_organs=RECEPTOR_ORGANS, source_organs=ORGANS,
    # as 177Lu-DOTATATE: renal uptake is tubular reabsorption (f_reabs, shared)
    identifiable=functools.partial(identifiable_receptor_parameters,
                                   uptake={"kidneys": "f_reabs"}),
    citation="Vasic V, et al. EJNMMI Phys 2026;13:9 (one PBPK for [68Ga]Ga- and "
             "[177Lu]Lu-DOTA-TATE); data_catalog/pbpk/dotatate_ga68.yaml"))
