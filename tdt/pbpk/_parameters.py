"""Parameter tables of the PBPK models, loaded from the data catalog (hash-checked YAML).

Each YAML file (``data_catalog/pbpk/*.yaml``) lists per parameter its ``value`` (the default) in
``unit`` (literature units such as 1/min or L/min are converted here, once, to the model units
through :mod:`tdt.units`), ``prior_sd_log`` (sd of the natural log for a lognormal prior whose median is
``value``), ``bounds`` (admissible range) and ``source`` (the citation of that value). This module
reads them; it does not invent numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import yaml

from tdt import units
from tdt.catalog import dataset_path
from tdt.errors import CatalogError

__all__ = ["ParameterSpec", "load_table"]


def _convert(unit: str):
    """Factor function literature unit -> model unit (h, mL, nmol)."""
    table = {
        None: lambda x: x, "1": lambda x: x, "1/h": lambda x: x, "mL": lambda x: x,
        "mL/h": lambda x: x, "nmol/L": lambda x: x, "mL/(nmol h)": lambda x: x,
        "1/min": units.per_min_to_per_h,
        "L": units.litre_to_ml,
        "g": lambda x: x,  # tissue mass (g) as volume (mL), unit density (ICRP 89 reference masses)
        "L/min": units.l_per_min_to_ml_per_h,
        "mL/min": lambda x: units.per_min_to_per_h(x),
        "L/(nmol min)": lambda x: units.litre_to_ml(units.per_min_to_per_h(x)),
    }
    if unit not in table:
        raise CatalogError(f"PBPK parameter table: unknown unit {unit!r}; known: "
                           f"{sorted(k for k in table if k)}")
    return table[unit]


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: default value, lognormal prior (median, sd of log), bounds, source."""

    name: str
    value: float
    prior_sd_log: float
    bounds: tuple[float, float]
    source: str


@functools.lru_cache(maxsize=8)
def load_table(dataset: str) -> tuple[dict[str, ParameterSpec], dict[str, Any]]:
    """Return ``(parameters, document)`` of the catalog dataset ``dataset`` (a PBPK YAML file)."""
    document = yaml.safe_load(dataset_path(dataset).read_text())
    specs: dict[str, ParameterSpec] = {}
    for name, raw in (document.get("parameters") or {}).items():
        try:
            convert = _convert(raw.get("unit"))
            lo, hi = (float(convert(float(b))) for b in raw.get("bounds", (0.0, float("inf"))))
            specs[name] = ParameterSpec(
                name=name, value=float(convert(float(raw["value"]))),
                prior_sd_log=float(raw.get("prior_sd_log", 0.0)), bounds=(lo, hi),
                source=str(raw["source"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"{dataset}: parameter {name!r} is malformed ({exc})") from None
        if not lo <= specs[name].value <= hi:
            raise CatalogError(f"{dataset}: parameter {name!r} value {specs[name].value} is "
                               f"outside its bounds {(lo, hi)}")
    return specs, document
