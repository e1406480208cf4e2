"""Organ S-value tables (MIRD schema), loaded once from the data catalog in Gy/(MBq·h).

Two families are vendored (see ``data_catalog/catalog.yaml``):

* ``adult-male`` / ``adult-female``: OLINDA/EXM-style reference adult phantoms (ICRP 89 masses)
  for 177Lu, as shipped by PyTheranostics (Apache-2.0); rows = target, columns = source.
* ``icrp110-am`` / ``icrp110-af``: OpenDose S-values in the ICRP 110 voxel phantoms (Chauvin et
  al., JNM 2020;61:1514) for the sources left kidney, right kidney, liver and spleen. The source
  ``kidneys`` (both kidneys, activity uniform by mass) is the mass-weighted mean of the two:
  S(t ← K) = (m_L S(t ← L) + m_R S(t ← R)) / (m_L + m_R).

Published S-values are in mGy/(MBq·s); they are converted here, once, with
:func:`tdt.units.svalue_mgy_per_mbq_s_to_gy_per_mbq_h` (× 3.6).
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass

import numpy as np

from tdt.catalog import dataset_path
from tdt.dosimetry._names import (
    OLINDA_SOURCES,
    OLINDA_TARGETS,
    OPENDOSE_SOURCES,
    OPENDOSE_TARGETS,
    PHANTOMS,
    canonical_organ,
    canonical_phantom,
)
from tdt.errors import InputError
from tdt.physics import nuclide as get_nuclide
from tdt.units import svalue_mgy_per_mbq_s_to_gy_per_mbq_h

#: Nuclides with vendored organ S-values.
TABLE_NUCLIDES = ("Lu-177",)


@dataclass(frozen=True)
class SValueTable:
    """An S-value matrix ``s_gy_per_mbq_h[target, source]`` (Gy/(MBq·h)) with canonical names.

    ``target_mass_g`` holds the phantom's target masses where the table gives them (OpenDose),
    else an empty dict; ``labels`` maps canonical names to the published labels.
    """

    phantom: str
    nuclide: str
    targets: tuple[str, ...]
    sources: tuple[str, ...]
    s_gy_per_mbq_h: np.ndarray
    target_mass_g: dict[str, float]
    target_labels: dict[str, str]
    source_labels: dict[str, str]

    def index_target(self, name: str) -> int:
        return self.targets.index(canonical_organ(name, self.targets, "target"))

    def index_source(self, name: str) -> int:
        return self.sources.index(canonical_organ(name, self.sources, "source"))

    def value(self, target: str, source: str) -> float:
        """S(target ← source) in Gy/(MBq·h)."""
        return float(self.s_gy_per_mbq_h[self.index_target(target), self.index_source(source)])


def _check_nuclide(nuclide: str) -> str:
    name = get_nuclide(nuclide).name
    if name not in TABLE_NUCLIDES:
        raise InputError(
            f"nuclide: no organ S-value table is vendored for {name!r}; available: "
            f"{', '.join(TABLE_NUCLIDES)} (lesions/spheres work for any nuclide: sphere_dose)"
        )
    return name


def _load_olinda(sex: str) -> SValueTable:
    path = dataset_path(f"svalues_lu177_adult_{sex}")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0][1:]
    unknown = [h for h in header if h not in OLINDA_SOURCES]
    if unknown:  # a changed table must fail loudly, not map silently
        raise InputError(f"S-value table {path.name}: unmapped source labels {unknown}")
    targets, values, target_labels = [], [], {}
    for row in rows[1:]:
        label = row[0].strip()
        if label not in OLINDA_TARGETS:
            raise InputError(f"S-value table {path.name}: unmapped target label {label!r}")
        targets.append(OLINDA_TARGETS[label])
        target_labels[OLINDA_TARGETS[label]] = row[0]
        values.append([float(v) for v in row[1:]])
    matrix = svalue_mgy_per_mbq_s_to_gy_per_mbq_h(np.asarray(values, dtype=float))
    sources = tuple(OLINDA_SOURCES[h] for h in header)
    return SValueTable(
        phantom=f"adult-{sex}", nuclide="Lu-177", targets=tuple(targets), sources=sources,
        s_gy_per_mbq_h=matrix, target_mass_g={}, target_labels=target_labels,
        source_labels={OLINDA_SOURCES[h]: h for h in header},
    )


def _load_opendose(sex: str) -> SValueTable:
    columns: dict[str, dict[str, float]] = {}
    masses: dict[str, float] = {}
    for stem, canonical in OPENDOSE_SOURCES.items():
        rows = json.loads(dataset_path(f"opendose_icrp110_{sex}_lu-177_{stem}").read_text())
        col = {}
        for label, s_value, _se, mass in rows:
            if label in OPENDOSE_TARGETS:
                col[OPENDOSE_TARGETS[label]] = float(s_value)
                masses[OPENDOSE_TARGETS[label]] = float(mass)
        columns[canonical] = col
    targets = tuple(t for t in OPENDOSE_TARGETS.values() if t in masses)
    left, right = masses["left_kidney"], masses["right_kidney"]
    columns["kidneys"] = {
        t: (left * columns["left_kidney"][t] + right * columns["right_kidney"][t]) / (left + right)
        for t in targets
    }
    sources = ("kidneys", *OPENDOSE_SOURCES.values())
    matrix = np.array([[columns[s][t] for s in sources] for t in targets], dtype=float)
    labels = {v: k for k, v in OPENDOSE_TARGETS.items()}
    return SValueTable(
        phantom=f"icrp110-{sex.lower()}", nuclide="Lu-177", targets=targets, sources=sources,
        s_gy_per_mbq_h=svalue_mgy_per_mbq_s_to_gy_per_mbq_h(matrix),
        target_mass_g={t: masses[t] for t in targets},
        target_labels={t: labels[t] for t in targets},
        source_labels={s: s for s in sources},
    )


@functools.lru_cache(maxsize=8)
def _load(phantom: str, nuclide: str) -> SValueTable:
    kind, sex = PHANTOMS[phantom]
    return _load_olinda(sex) if kind == "olinda" else _load_opendose(sex)


def svalue_table(nuclide: str = "Lu-177", phantom: str = "adult-male") -> SValueTable:
    """The S-value table of ``phantom`` for ``nuclide`` (cached), in Gy/(MBq·h)."""
    return _load(canonical_phantom(phantom), _check_nuclide(nuclide))


def svalue(target: str, source: str, nuclide: str = "Lu-177", phantom: str = "adult-male") -> float:
    """Reference-phantom S(target ← source) in Gy/(MBq·h).

    Names are canonical organ names (``kidneys``, ``red_marrow``, ``salivary_glands``...) or
    aliases (``"Kidneys "``, ``"Red Mar."``, ``"kidney"``); unknown names raise ``InputError``
    with suggestions. Example: ``svalue("kidneys", "kidneys")`` = 7.76e-5 mGy/(MBq·s) × 3.6 =
    2.794e-4 Gy/(MBq·h) (adult male, 177Lu).
    """
    return svalue_table(nuclide, phantom).value(target, source)
