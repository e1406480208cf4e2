"""Organ-at-risk dose limits of 177Lu radiopharmaceutical therapy: one cited table.

Every limit that tdt plans against or reports is defined here once; the twin's planner, the
scenario explorer, the virtual trial and the notebooks import it.

* Kidneys, cumulative BED: 28 Gy with risk factors (hypertension, diabetes, ...), 40 Gy without
  (Bodei L, et al. Eur J Nucl Med Mol Imaging 2008;35:1847–1856, doi:10.1007/s00259-008-0778-1;
  BED with alpha/beta 2.6 Gy and T_rep 2.8 h, :data:`tdt.radiobiology.TISSUES` ``kidneys``).
* Red marrow, cumulative absorbed dose: 2 Gy (the blood / red-marrow absorbed-dose limit of
  131I therapy, Benua RS, et al. Am J Roentgenol 1962;87:171–182, used as the marrow limit of
  RPT; data_catalog/radiobiology/tissue_parameters.yaml ``ntcp.red_marrow`` gives the details).

A limit is a threshold on a per-draw quantity; the planner turns it into a probabilistic
constraint P(quantity > limit) <= p (:class:`tdt.twin.Constraint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from tdt.errors import InputError, unknown_name_error

BODEI_2008 = ("Bodei L, et al. Eur J Nucl Med Mol Imaging 2008;35:1847-1856, "
              "doi:10.1007/s00259-008-0778-1")
BENUA_1962 = ("Benua RS, Cicale NR, Sonenberg M, Rawson RW. Am J Roentgenol 1962;87:171-182 "
              "(2 Gy blood / red-marrow absorbed-dose limit)")

#: kidney cumulative BED limit with risk factors, Gy (Bodei et al. 2008)
KIDNEY_BED_LIMIT_RISK_GY = 28.0
#: kidney cumulative BED limit without risk factors, Gy (Bodei et al. 2008)
KIDNEY_BED_LIMIT_GY = 40.0
#: red-marrow cumulative absorbed-dose limit, Gy (Benua et al. 1962; commonly used in RPT)
RED_MARROW_DOSE_LIMIT_GY = 2.0

QUANTITIES = ("bed", "dose")


@dataclass(frozen=True)
class DoseLimit:
    """One organ limit: ``quantity`` is ``"bed"`` (cumulative BED, Gy) or ``"dose"`` (absorbed
    dose, Gy); ``condition`` says to whom it applies; ``citation`` where it comes from."""

    organ: str
    quantity: str
    limit_gy: float
    condition: str
    citation: str

    def __post_init__(self):
        if self.quantity not in QUANTITIES:
            raise InputError(f"DoseLimit.quantity: got {self.quantity!r}; expected one of {QUANTITIES}")


#: The limits by key (read-only).
DOSE_LIMITS = MappingProxyType({
    "kidneys_bed_risk_factors": DoseLimit(
        "kidneys", "bed", KIDNEY_BED_LIMIT_RISK_GY,
        "patients with kidney risk factors (hypertension, diabetes, ...)", BODEI_2008),
    "kidneys_bed": DoseLimit(
        "kidneys", "bed", KIDNEY_BED_LIMIT_GY, "patients without kidney risk factors", BODEI_2008),
    "red_marrow_dose": DoseLimit(
        "red_marrow", "dose", RED_MARROW_DOSE_LIMIT_GY, "all patients", BENUA_1962),
})


def dose_limit(key: str) -> DoseLimit:
    """The :class:`DoseLimit` stored under ``key`` (see :data:`DOSE_LIMITS`)."""
    if key not in DOSE_LIMITS:
        raise unknown_name_error("dose limit", key, DOSE_LIMITS)
    return DOSE_LIMITS[key]


def kidney_bed_limit_gy(risk_factors: bool) -> float:
    """Kidney cumulative BED limit (Gy): 28 Gy with risk factors, 40 Gy without (Bodei 2008)."""
    return KIDNEY_BED_LIMIT_RISK_GY if risk_factors else KIDNEY_BED_LIMIT_GY
