"""Radiobiology of radiopharmaceutical therapy: BED (Lea–Catcheside G-factor), EQD2, DVH/BVH
summaries, gEUD, EUBED, TCP (Poisson LQ with radiosensitivity spread), NTCP (LKB), and the
cited tables every layer above uses: tissue LQ parameters, NTCP sets, organ dose limits, and
the one rule for lesion names (:func:`is_lesion`).

Everything is pure JAX: jittable, vmappable over a leading axis of posterior draws, and
differentiable (e.g. with respect to administered activity for planning). Bad concrete input
raises :class:`tdt.errors.InputError`; traced input is never checked. See docs/radiobiology.md.
"""

from __future__ import annotations

from tdt.radiobiology._bed import bed, dose_and_g_factor, exponential_moments
from tdt.radiobiology._closed_forms import (
    bed_acute,
    bed_from_eqd2,
    bed_monoexponential,
    bed_sum_of_exponentials,
    bed_uptake_washout,
    eqd2,
    g_factor_monoexponential,
    g_factor_sum_of_exponentials,
    quadratic_bed_coefficient,
    repair_rate_per_h,
    uptake_washout_terms,
)
from tdt.radiobiology._dvh import (
    cumulative_dvh,
    dose_at_volume_percent,
    dvh_summary,
    mean_dose,
    volume_percent_at_dose,
)
from tdt.radiobiology._eud import eubed, geud
from tdt.radiobiology._limits import (
    DOSE_LIMITS,
    KIDNEY_BED_LIMIT_GY,
    KIDNEY_BED_LIMIT_RISK_GY,
    RED_MARROW_DOSE_LIMIT_GY,
    DoseLimit,
    dose_limit,
    kidney_bed_limit_gy,
)
from tdt.radiobiology._multicycle import bed_multicycle, repopulation_bed
from tdt.radiobiology._ntcp import NTCP_METRICS, ntcp_dose, ntcp_lkb, ntcp_organ
from tdt.radiobiology._parameters import (
    GENERIC_LATE_TISSUE,
    NTCP_PARAMETERS,
    TISSUES,
    NtcpParameters,
    TissueParameters,
    canonical_tissue_name,
    is_lesion,
    ntcp_parameters,
    tissue,
)
from tdt.radiobiology._tcp import tcp_poisson, tcp_poisson_fixed_alpha

__all__ = [
    "DOSE_LIMITS",
    "GENERIC_LATE_TISSUE",
    "KIDNEY_BED_LIMIT_GY",
    "KIDNEY_BED_LIMIT_RISK_GY",
    "NTCP_METRICS",
    "NTCP_PARAMETERS",
    "RED_MARROW_DOSE_LIMIT_GY",
    "DoseLimit",
    "TISSUES",
    "NtcpParameters",
    "TissueParameters",
    "bed",
    "bed_acute",
    "bed_from_eqd2",
    "bed_monoexponential",
    "bed_multicycle",
    "bed_sum_of_exponentials",
    "bed_uptake_washout",
    "canonical_tissue_name",
    "cumulative_dvh",
    "dose_and_g_factor",
    "dose_limit",
    "dose_at_volume_percent",
    "dvh_summary",
    "eqd2",
    "eubed",
    "exponential_moments",
    "g_factor_monoexponential",
    "g_factor_sum_of_exponentials",
    "geud",
    "is_lesion",
    "kidney_bed_limit_gy",
    "mean_dose",
    "ntcp_dose",
    "ntcp_lkb",
    "ntcp_organ",
    "ntcp_parameters",
    "quadratic_bed_coefficient",
    "repair_rate_per_h",
    "repopulation_bed",
    "tcp_poisson",
    "tcp_poisson_fixed_alpha",
    "tissue",
    "uptake_washout_terms",
    "volume_percent_at_dose",
]
