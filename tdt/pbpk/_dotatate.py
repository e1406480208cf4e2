"""177Lu-DOTATATE (sst2) receptor PBPK model (plasma, kidneys, spleen, liver, GI, red marrow,
remainder, lesions, urine). Parameters: catalog ``pbpk_dotatate`` (cited per value)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from tdt.pbpk._builders import build
from tdt.pbpk._nonlinear import PbpkModel
from tdt.pbpk._registry import ModelSpec, identifiable_receptor_parameters, register_model

ORGANS = ("kidneys", "spleen", "liver", "gi", "red_marrow", "remainder")
#: sst2-expressing tissues (renal uptake is mostly tubular reabsorption, see ``f_reabs``).
RECEPTOR_ORGANS = frozenset({"kidneys", "spleen", "liver", "gi"})


def dotatate(lesions: int | Iterable[str] = 1, nuclide: str = "Lu-177",
             dataset: str = "pbpk_dotatate", **options) -> PbpkModel:
    """The DOTATATE PBPK model with ``lesions`` tumour lesions (count or names ``lesion_<n>``).

    ``options``: solver settings of :class:`~tdt.pbpk._nonlinear.PbpkModel`.
    """
    return build("dotatate", dataset, ORGANS, RECEPTOR_ORGANS, lesions, nuclide, **options)


SPEC = register_model(ModelSpec(
    key="dotatate", radiopharmaceutical="177Lu-DOTATATE", nuclide="Lu-177", kind="pbpk",
    factory=dotatate, organs=ORGANS, dataset="pbpk_dotatate", receptor_organs=RECEPTOR_ORGANS,
    source_organs=ORGANS,
    # renal uptake of DOTATATE is tubular reabsorption (f_reabs), not sst2 binding (R_kidneys is
    # an ASSUMPTION of 1 nmol/L in the table), so the kidney TAC informs f_reabs
    identifiable=functools.partial(identifiable_receptor_parameters,
                                   uptake={"kidneys": "f_reabs"}),
    citation="Siebinga H, et al. EJNMMI Res 2021; Kletting P, et al. J Nucl Med 2016;57:503 "
             "(data_catalog/pbpk/dotatate.yaml)"))
