"""[68Ga]Ga-DOTATATE receptor PBPK model: the sst2 PBPK structure and organs of
:mod:`tdt.pbpk.dotatate` with the ligand-specific table ``pbpk_dotatate_ga68`` (affinity, plasma
binding, internalisation/release; data_catalog/pbpk/dotatate_ga68.yaml); physiology, sst2
densities and tubular reabsorption are the 177Lu-DOTATATE table's (shared patient,
:mod:`tdt.pbpk._pairs`). Default nuclide Ga-68. Registered as ``dotatate_ga68`` at the end of
:mod:`tdt.pbpk._registry`.
"""

from __future__ import annotations

from collections.abc import Iterable

from tdt.pbpk._dotatate import ORGANS, RECEPTOR_ORGANS
from tdt.pbpk._nonlinear import PbpkModel
from tdt.pbpk._pairs import build_ligand_model


def dotatate_ga68(lesions: int | Iterable[str] = 1, nuclide: str = "Ga-68",
                  dataset: str = "pbpk_dotatate_ga68", **options) -> PbpkModel:
    """The 68Ga-DOTATATE PBPK model with ``lesions`` tumour lesions.

    ``options``: solver settings of :class:`~tdt.pbpk._nonlinear.PbpkModel`.
    """
    return build_ligand_model("dotatate_ga68", dataset, ORGANS, RECEPTOR_ORGANS, lesions,
                              nuclide, **options)
