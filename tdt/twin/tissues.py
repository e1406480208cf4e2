"""Radiobiological parameters (alpha/beta, repair half-time) that the twin needs per organ.

The values come from :data:`tdt.radiobiology.TISSUES` when that module provides them. The
fallback table below holds the literature values the project's reference sheet names, so that the
planner also works on plain arrays without the radiobiology layer:

- kidneys: alpha/beta 2.6 Gy, repair half-time 2.8 h (Bodei et al., EJNMMI 2008;35:1847);
- red marrow: alpha/beta 10 Gy, repair half-time 0.5 h (commonly used values);
- tumour (lesions ``lesion_*``): alpha/beta 10 Gy, repair half-time 1.5 h (commonly used; the
  uncertainty of these values is large and is not propagated).
"""

from __future__ import annotations

from dataclasses import dataclass

from tdt.errors import InputError


@dataclass(frozen=True)
class LinearQuadratic:
    """Linear-quadratic parameters of one tissue: alpha/beta (Gy) and repair half-time (h)."""

    alpha_beta_gy: float
    repair_half_time_h: float
    source: str = ""


_FALLBACK = {
    "kidneys": LinearQuadratic(2.6, 2.8, "Bodei et al., EJNMMI 2008;35:1847"),
    "red_marrow": LinearQuadratic(10.0, 0.5, "commonly used (reference sheet)"),
    "tumour": LinearQuadratic(10.0, 1.5, "commonly used (reference sheet)"),
}


def is_lesion(organ: str) -> bool:
    """True for lesion VOI names (``lesion_1``, ``lesion_2``...; also ``tumour*``)."""
    return organ.startswith("lesion") or organ.startswith("tumour") or organ.startswith("tumor")


def tissue_parameters(organ: str) -> LinearQuadratic:
    """alpha/beta and repair half-time of ``organ`` (lesions use the tumour values)."""
    key = "tumour" if is_lesion(organ) else organ
    try:  # prefer the radiobiology layer's cited table when it is importable and has the tissue
        from tdt.radiobiology import TISSUES  # noqa: PLC0415

        for name in (key, "tumor", "tumour") if key == "tumour" else (key,):
            if name in TISSUES:
                tissue = TISSUES[name]
                return LinearQuadratic(
                    float(tissue.alpha_beta_gy), float(tissue.repair_half_time_h),
                    str(getattr(tissue, "citation", "tdt.radiobiology.TISSUES")),
                )
    except (ImportError, AttributeError):
        pass
    if key in _FALLBACK:
        return _FALLBACK[key]
    raise InputError(
        f"organ: no alpha/beta and repair half-time known for {organ!r}; expected one of "
        f"{sorted(_FALLBACK)} or a lesion name, or pass tissue parameters explicitly"
    )
