"""[68Ga]Ga-PSMA-11 receptor PBPK model: the PSMA receptor PBPK structure and organs of
:mod:`tdt.pbpk.psma617` with the ligand-specific table ``pbpk_psma11_ga68`` (affinity, plasma
binding, renal handling, internalisation/release; data_catalog/pbpk/psma11_ga68.yaml); every
other parameter is the PSMA-617 table's (shared patient, :mod:`tdt.pbpk._pairs`). Default nuclide
Ga-68 (ICRP-107 half-life 67.71 min). Registered as ``psma11`` at the end of
:mod:`tdt.pbpk._registry`.
"""

from __future__ import annotations

from collections.abc import Iterable

from tdt.pbpk._nonlinear import PbpkModel
from tdt.pbpk._pairs import build_ligand_model
from tdt.pbpk._psma617 import ORGANS, RECEPTOR_ORGANS


def psma11(lesions: int | Iterable[str] = 1, nuclide: str = "Ga-68",
           dataset: str = "pbpk_psma11_ga68", **options) -> PbpkModel:
    """The PSMA-11 PBPK model with ``lesions`` tumour lesions (count or names ``lesion_<n>``).

    ``options``: solver settings of :class:`~tdt.pbpk._nonlinear.PbpkModel`.
    """
    return build_ligand_model("psma11", dataset, ORGANS, RECEPTOR_ORGANS, lesions, nuclide,
                              **options)
