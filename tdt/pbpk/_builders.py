"""Shared construction of receptor PBPK models from a catalog parameter table."""

from __future__ import annotations

from collections.abc import Iterable

from tdt.errors import InputError
from tdt.pbpk._description import Tissue
from tdt.pbpk._nonlinear import PbpkModel
from tdt.pbpk._organs import is_lesion_compartment, lesion_names
from tdt.pbpk._parameters import ParameterSpec, load_table


def expand_lesions(table: dict[str, ParameterSpec], lesions: tuple[str, ...]):
    """Copy every ``<p>_lesion`` template entry to ``<p>_lesion_<n>`` for each lesion."""
    out = {k: v for k, v in table.items() if not k.endswith("_lesion")}
    for name, spec in table.items():
        if name.endswith("_lesion"):
            prefix = name[: -len("lesion")]
            for lesion in lesions:
                out[prefix + lesion] = ParameterSpec(prefix + lesion, spec.value,
                                                     spec.prior_sd_log, spec.bounds, spec.source)
    return out


def build(name: str, dataset: str, organs: tuple[str, ...], receptor_organs: frozenset[str],
          lesions: int | Iterable[str], nuclide: str, table: dict | None = None,
          **options) -> PbpkModel:
    """A :class:`PbpkModel` with ``organs`` (+ lesions, all receptor-bearing) from ``dataset``
    (its parameter table, or ``table`` when given: e.g. a diagnostic ligand's, merged onto its
    base by :func:`tdt.pbpk.ligand_table`)."""
    lesion_list = lesion_names(lesions)
    if table is None:
        table, _ = load_table(dataset)
    tissues = tuple(Tissue(o, o in receptor_organs) for o in organs)
    tissues += tuple(Tissue(lesion, True) for lesion in lesion_list)
    for t in tissues:
        if not is_lesion_compartment(t.name) and f"V_{t.name}" not in table:
            raise InputError(f"organs: {t.name!r} has no parameters in dataset {dataset!r}")
    return PbpkModel(name, tissues, nuclide, expand_lesions(table, lesion_list), dataset,
                     **options)
