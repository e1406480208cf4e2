"""Effective dose from organ absorbed doses, with the tissue weighting factors of ICRP 103.

E = Σ_T w_T · H_T with H_T = w_R · D_T and w_R = 1 for the electrons and photons of 177Lu
(ICRP 103, Table 2). The weights and their mapping to tdt's target names are vendored in
``data_catalog/dosimetry/icrp103_tissue_weighting_factors.csv`` (ICRP 103, Table 3):

- colon: 0.57 · ULI wall + 0.43 · LLI wall (mass-weighted);
- gonads: testes or ovaries, whichever the phantom has;
- remainder (w_T 0.12): the arithmetic mean of the remainder tissues present in the S-value
  table (ICRP 103 uses 13; tables without lymph nodes, muscle, ET region or oral mucosa give the
  mean of the rest);
- a tissue absent from the table (skin, breast of the male phantom) contributes nothing and is
  listed in :attr:`EffectiveDose.missing_tissues`.

Effective dose is a radiation-protection quantity for a reference person: in a therapy report it
serves comparison with OLINDA/MIRDcalc output, not as a risk estimate for the patient.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from tdt.catalog import dataset_path
from tdt.errors import InputError

#: Radiation weighting factor of electrons and photons (ICRP 103, Table 2).
W_RADIATION_LOW_LET = 1.0


@dataclass(frozen=True)
class EffectiveDose:
    """Effective dose (Sv) with the contribution of each ICRP 103 tissue (Sv)."""

    effective_dose_sv: float
    contributions_sv: dict[str, float]
    missing_tissues: list[str] = field(default_factory=list)


def tissue_weighting_table() -> list[dict[str, str]]:
    """Rows of the vendored ICRP 103 table (tissue, w_T, target, fraction)."""
    path = dataset_path("icrp103_tissue_weighting_factors")
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def effective_dose(doses_gy: dict[str, float]) -> EffectiveDose:
    """ICRP 103 effective dose (Sv) from absorbed doses per target (Gy, low-LET radiation).

    ``doses_gy``: target name → absorbed dose (Gy), e.g. the output of
    :func:`tdt.dosimetry.organ_doses` for one draw.
    """
    if not isinstance(doses_gy, dict) or not doses_gy:
        raise InputError(f"doses_gy: expected a non-empty mapping target -> Gy, got {doses_gy!r}")
    doses = {}
    for name, value in doses_gy.items():
        try:
            doses[name] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"doses_gy[{name!r}]: expected a dose in Gy, got {value!r}") from None
    by_tissue: dict[str, list[dict[str, str]]] = {}
    for row in tissue_weighting_table():
        by_tissue.setdefault(row["tissue"], []).append(row)
    contributions: dict[str, float] = {}
    missing: list[str] = []
    for tissue, rows in by_tissue.items():
        weight = float(rows[0]["w_T"])
        present = [r for r in rows if r["target"] in doses]
        if not present:
            missing.append(tissue)
            continue
        if tissue == "remainder":
            equivalent = sum(doses[r["target"]] for r in present) / len(present)
        elif tissue == "gonads":
            equivalent = sum(doses[r["target"]] for r in present) / len(present)
        else:
            shares = sum(float(r["fraction"]) for r in present)
            equivalent = sum(float(r["fraction"]) * doses[r["target"]] for r in present) / shares
        contributions[tissue] = weight * W_RADIATION_LOW_LET * equivalent
    return EffectiveDose(sum(contributions.values()), contributions, sorted(missing))
