"""177Lu-PSMA-I&T receptor PBPK model: the PSMA receptor PBPK structure of
:mod:`tdt.pbpk.psma617` (same organs and receptor organs) with the ligand-specific parameter table
``pbpk_psma_it`` (data_catalog/pbpk/psma_it.yaml, cited per value).

This module is the worked example of "adding a model is one module and one YAML file"
(docs/pbpk.md, "Adding a model"): a factory and one :func:`~tdt.pbpk._registry.register_model`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from tdt.pbpk._builders import build
from tdt.pbpk._nonlinear import PbpkModel
from tdt.pbpk._psma617 import ORGANS, RECEPTOR_ORGANS
from tdt.pbpk._registry import (
    PSMA_KIDNEY_ROUTES,
    ModelSpec,
    identifiable_receptor_parameters,
    register_model,
)


def psma_it(lesions: int | Iterable[str] = 1, nuclide: str = "Lu-177",
            dataset: str = "pbpk_psma_it", **options) -> PbpkModel:
    """The PSMA-I&T PBPK model with ``lesions`` tumour lesions (count or names ``lesion_<n>``).

    ``options``: solver settings of :class:`~tdt.pbpk._nonlinear.PbpkModel`.
    """
    return build("psma_it", dataset, ORGANS, RECEPTOR_ORGANS, lesions, nuclide, **options)


SPEC = register_model(ModelSpec(
    key="psma_it", radiopharmaceutical="177Lu-PSMA-I&T", nuclide="Lu-177", kind="pbpk",
    factory=psma_it, organs=ORGANS, dataset="pbpk_psma_it", receptor_organs=RECEPTOR_ORGANS,
    source_organs=ORGANS,
    # kidney uptake is PSMA binding plus tubular reabsorption: both amplitudes sampled when the
    # kidneys are imaged (docs/twin.md, "Sampling the reabsorption")
    identifiable=functools.partial(identifiable_receptor_parameters, also=PSMA_KIDNEY_ROUTES),
    citation="PSMA-617 receptor PBPK structure; renal receptor density calibrated to the kidney "
             "doses of [177Lu]Lu-PSMA-617 vs [177Lu]Lu-PSMA-I&T (Uijen MJM, et al.; 0.49 vs "
             "0.73 Gy/GBq) (data_catalog/pbpk/psma_it.yaml)"))
