"""Radiobiological parameters (alpha/beta, repair half-time) the twin uses per organ.

The values are :data:`tdt.radiobiology.TISSUES` (cited, hash-checked catalog table); lesion names
follow :func:`tdt.radiobiology.is_lesion` and use the tumour entry. An organ without an entry is an
:class:`~tdt.errors.InputError` (pass tissue parameters explicitly, e.g. ``LinearQuadratic``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tdt.dosimetry import sphere_organ
from tdt.errors import InputError
from tdt.radiobiology import TissueParameters, is_lesion, tissue

__all__ = ("LinearQuadratic", "dose_targets", "is_lesion", "tissue_parameters")


@dataclass(frozen=True)
class LinearQuadratic:
    """User-given linear-quadratic parameters of one tissue: alpha/beta (Gy), repair half-time (h).

    For overrides (``DoseDraws.from_*(..., tissues={organ: LinearQuadratic(...)})``); the defaults
    are :class:`tdt.radiobiology.TissueParameters`, which have the same two attributes.
    """

    alpha_beta_gy: float
    repair_half_time_h: float
    source: str = ""


def tissue_parameters(organ: str) -> TissueParameters:
    """alpha/beta and repair half-time of ``organ`` (lesions: the tumour entry), from
    :func:`tdt.radiobiology.tissue`; an unknown organ raises :class:`~tdt.errors.InputError`."""
    return tissue(organ)


def _has_tissue(organ: str) -> bool:
    if is_lesion(organ):
        return True
    try:
        tissue_parameters(organ)
    except InputError:
        return False
    return True


def dose_targets(organs) -> tuple[str, ...]:
    """The organs a twin reports doses for: those with LQ parameters (and lesions), plus the
    sphere-modelled organs without them (lacrimal glands: dose only, no BED)."""
    return tuple(o for o in organs if _has_tissue(o) or sphere_organ(o) is not None)
