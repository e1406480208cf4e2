"""Default radiobiological parameters per tissue and LKB NTCP parameter sets (cited).

Loaded once, at import, from the hash-checked catalog dataset
``radiobiology_tissue_parameters`` (data_catalog/radiobiology/tissue_parameters.yaml), where
every value carries its citation and a confidence note. Users may pass their own values to every
function instead; :func:`tissue` and :func:`ntcp_parameters` resolve names and aliases.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

import yaml

from tdt.catalog import dataset_path
from tdt.dosimetry import is_lesion  # the one VOI-name rule (re-exported)
from tdt.errors import unknown_name_error

DATASET = "radiobiology_tissue_parameters"


@dataclass(frozen=True)
class TissueParameters:
    """Linear-quadratic parameters of one tissue.

    alpha_beta_gy: alpha/beta (Gy); repair_half_time_h: repair half-time (h, mono-exponential
    repair); citation, confidence ("high" | "medium" | "low"), verification (what of the
    citation was checked, what is "recalled, not verified") and notes from the catalog file.
    """

    name: str
    alpha_beta_gy: float
    repair_half_time_h: float
    citation: str
    confidence: str = "low"
    notes: str = ""
    verification: str = ""

    def with_values(self, **changes) -> TissueParameters:
        """A copy with some values replaced (user parameters); citation marked as modified."""
        return replace(self, citation=f"user-modified ({self.citation})", **changes)


@dataclass(frozen=True)
class NtcpParameters:
    """Lyman–Kutcher–Burman parameters of one organ.

    td50_gy: uniform dose giving 50 % complication probability (Gy, in ``dose_metric``: "eqd2",
    "bed" or "absorbed_dose"); m: slope; n: volume effect (gEUD with a = 1/n); alpha_beta_gy used
    to convert BED to EQD2 for this endpoint; citation, confidence, verification and notes as in
    :class:`TissueParameters`.
    """

    organ: str
    td50_gy: float
    m: float
    n: float
    dose_metric: str
    alpha_beta_gy: float
    endpoint: str
    citation: str
    confidence: str = "low"
    notes: str = ""
    verification: str = ""


_ALIASES = {
    "kidney": "kidneys",
    "kidneys": "kidneys",
    "red_marrow": "red_marrow",
    "redmarrow": "red_marrow",
    "bone_marrow": "red_marrow",
    "marrow": "red_marrow",
    "salivary_glands": "salivary_glands",
    "salivary_gland": "salivary_glands",
    "salivary": "salivary_glands",
    "parotid": "salivary_glands",
    "parotids": "salivary_glands",
    "tumour": "tumour",
    "tumor": "tumour",
    "lesion": "tumour",
}


def _normalised(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def canonical_tissue_name(name: str) -> str:
    """Canonical tissue key for ``name`` (``lesion_3`` → ``tumour``, ``kidney`` → ``kidneys``)."""
    if is_lesion(name):
        return "tumour"
    key = _normalised(name)
    return _ALIASES.get(key, key)


def _load():
    raw = yaml.safe_load(dataset_path(DATASET).read_text())
    tissues = {
        name: TissueParameters(name=name, **{k: v for k, v in spec.items()})
        for name, spec in raw["tissues"].items()
    }
    ntcp = {
        organ: NtcpParameters(organ=organ, **{k: v for k, v in spec.items()})
        for organ, spec in raw["ntcp"].items()
    }
    return MappingProxyType(tissues), MappingProxyType(ntcp)


#: Default LQ parameters by canonical tissue name (read-only mapping).
TISSUES: MappingProxyType
#: LKB parameter sets by organ: kidneys, salivary_glands, red_marrow (read-only mapping).
NTCP_PARAMETERS: MappingProxyType
TISSUES, NTCP_PARAMETERS = _load()


#: alpha/beta 3 Gy, T_rep 1.5 h for an organ without a table entry (liver, spleen, ...): generic
#: late-responding normal tissue. Used only where a caller asks for it (the scenario explorer),
#: which then names this citation; :func:`tissue` itself raises for unknown tissues.
GENERIC_LATE_TISSUE = TissueParameters(
    name="generic_late_responding",
    alpha_beta_gy=3.0,
    repair_half_time_h=1.5,
    citation=("generic late-responding tissue: alpha/beta 3 Gy (Thames HD, et al. Radiother Oncol "
              "1990;19:219-235: late effects 2-4 Gy), T_rep 1.5 h (convention)"),
    confidence="low",
)


def tissue(name: str) -> TissueParameters:
    """Default :class:`TissueParameters` for ``name`` (aliases and lesion names accepted)."""
    key = canonical_tissue_name(name)
    if key not in TISSUES:
        raise unknown_name_error("tissue", name, TISSUES)
    return TISSUES[key]


def ntcp_parameters(organ: str) -> NtcpParameters:
    """Default :class:`NtcpParameters` for ``organ`` (aliases accepted)."""
    key = canonical_tissue_name(organ)
    if key not in NTCP_PARAMETERS:
        raise unknown_name_error("NTCP organ", organ, NTCP_PARAMETERS)
    return NTCP_PARAMETERS[key]
