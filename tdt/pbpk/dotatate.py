"""177Lu-DOTATATE (sst2) receptor PBPK model (plasma, kidneys, spleen, liver, GI, red marrow,
remainder, lesions, urine). Parameters: catalog ``pbpk_dotatate`` (cited per value)."""

from __future__ import annotations

from collections.abc import Iterable

from tdt.pbpk.builders import build
from tdt.pbpk.nonlinear import PbpkModel

ORGANS = ("kidneys", "spleen", "liver", "gi", "red_marrow", "remainder")
#: sst2-expressing tissues (renal uptake is mostly tubular reabsorption, see ``f_reabs``).
RECEPTOR_ORGANS = frozenset({"kidneys", "spleen", "liver", "gi"})


def dotatate(lesions: int | Iterable[str] = 1, nuclide: str = "Lu-177",
             dataset: str = "pbpk_dotatate", **options) -> PbpkModel:
    """The DOTATATE PBPK model with ``lesions`` tumour lesions (count or names ``lesion_<n>``).

    ``options``: solver settings of :class:`~tdt.pbpk.nonlinear.PbpkModel`.
    """
    return build("dotatate", dataset, ORGANS, RECEPTOR_ORGANS, lesions, nuclide, **options)
