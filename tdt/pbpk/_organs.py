"""Canonical compartment names of the PBPK models (docs/architecture.md) and their validation."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tdt.errors import InputError, unknown_name_error

#: Organs a model may carry besides ``plasma``/``urine`` and lesions ``lesion_<n>``.
TISSUE_ORGANS: tuple[str, ...] = (
    "kidneys", "salivary_glands", "lacrimal_glands", "liver", "spleen", "gi", "red_marrow", "muscle", "remainder",
)
#: Compartments that hold excreted activity (outside the body: no absorbed dose, not in the
#: whole-body TIA).
EXCRETED_COMPARTMENTS: tuple[str, ...] = ("urine",)
_LESION = re.compile(r"lesion_([1-9][0-9]*)")


def is_lesion_compartment(name: str) -> bool:
    """True for a lesion *compartment* name of a model: ``lesion_1``, ``lesion_2``, ... (strict;
    a VOI name such as "Tumour 2" is a lesion by :func:`tdt.dosimetry.is_lesion`, the general rule)."""
    return _LESION.fullmatch(name) is not None


def lesion_names(lesions: int | Iterable[str]) -> tuple[str, ...]:
    """``3`` -> ``("lesion_1", "lesion_2", "lesion_3")``; a list of names is validated."""
    if isinstance(lesions, bool):
        raise InputError(f"lesions: expected a count >= 0 or lesion names, got {lesions!r}")
    if isinstance(lesions, int):
        if lesions < 0:
            raise InputError(f"lesions: expected a count >= 0, got {lesions}")
        return tuple(f"lesion_{i}" for i in range(1, lesions + 1))
    names = tuple(lesions)
    for name in names:
        if not isinstance(name, str) or not is_lesion_compartment(name):
            raise InputError(f"lesions: expected names 'lesion_1', 'lesion_2', ..., got {name!r}")
    if len(set(names)) != len(names):
        raise InputError(f"lesions: duplicate lesion names in {names}")
    return names


def validate_organs(organs: Iterable[str], allowed: Iterable[str] = TISSUE_ORGANS) -> tuple[str, ...]:
    """Check organ names (canonical snake_case; lesions ``lesion_<n>``); return them as a tuple."""
    if isinstance(organs, str):
        organs = (organs,)
    names = tuple(organs)
    allowed = tuple(allowed)
    for name in names:
        if not isinstance(name, str):
            raise InputError(f"organs: expected organ names (str), got {name!r}")
        if name in ("plasma", "urine"):
            raise InputError(f"organs: {name!r} is always part of the model; do not list it")
        if name not in allowed and not is_lesion_compartment(name):
            raise unknown_name_error("organs", name, (*allowed, "lesion_<n>"))
    if len(set(names)) != len(names):
        raise InputError(f"organs: duplicate names in {names}")
    if not names:
        raise InputError("organs: expected at least one organ")
    return names
