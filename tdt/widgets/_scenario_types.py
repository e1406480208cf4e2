"""Scenario explorer data: the treatment choice, per-region radiobiology, and the outcomes.

Limits, tissue parameters, NTCP sets and the lesion rule are :mod:`tdt.radiobiology`'s; this module
only resolves them per region for one :class:`Scenario`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from tdt.errors import InputError
from tdt.radiobiology import (
    GENERIC_LATE_TISSUE,
    NTCP_METRICS,
    NTCP_PARAMETERS,
    RED_MARROW_DOSE_LIMIT_GY,
    TissueParameters,
    is_lesion,
    kidney_bed_limit_gy,
    tissue,
)
from tdt.units import HOURS_PER_DAY

#: largest number of cycles the explorer evaluates (static shape of the jitted function)
MAX_CYCLES = 10
#: posterior summary: 5 %, 50 %, 95 % (a 90 % central credible interval)
QUANTILES = (0.05, 0.5, 0.95)


@dataclass(frozen=True)
class Scenario:
    """One treatment choice and the radiobiology it is judged with.

    Attributes
    ----------
    activity_mbq: administered activity per cycle, MBq.
    n_cycles: number of cycles (1 .. MAX_CYCLES).
    interval_h: time between administrations, h.
    ligand_nmol: injected ligand amount per cycle, nmol (used only with a sensitivity grid).
    kidney_risk_factors: hypertension / diabetes etc.: kidney BED limit 28 Gy instead of 40 Gy.
    kidney_alpha_beta_gy, kidney_repair_half_time_h: kidney LQ parameters (None: TISSUES).
    tumour_alpha_beta_gy, tumour_repair_half_time_h: lesion LQ parameters (None: TISSUES).
    tumour_alpha_per_gy: lesion radiosensitivity α for TCP, 1/Gy (illustrative default).
    tumour_alpha_sd_per_gy: spread (sd) of α for TCP (Webb & Nahum 1993), 1/Gy; 0 = none.
    tumour_clonogens: number of clonogens per lesion for TCP (illustrative default: TCP depends
        on it strongly; set it from lesion volume × clonogen density where known).
    tumour_doubling_time_d: potential doubling time T_pot for repopulation, d (None: off).
    """

    activity_mbq: float = 7400.0
    n_cycles: int = 6
    interval_h: float = 6 * 7 * HOURS_PER_DAY
    ligand_nmol: float | None = None
    kidney_risk_factors: bool = False
    kidney_alpha_beta_gy: float | None = None
    kidney_repair_half_time_h: float | None = None
    tumour_alpha_beta_gy: float | None = None
    tumour_repair_half_time_h: float | None = None
    tumour_alpha_per_gy: float = 0.1
    tumour_alpha_sd_per_gy: float = 0.0
    tumour_clonogens: float = 1.0e6
    tumour_doubling_time_d: float | None = None

    def replace(self, **changes) -> Scenario:
        return replace(self, **changes)

    def validate(self) -> None:
        """Raise :class:`InputError` naming the field for an impossible scenario."""
        checks = {
            "activity_mbq": (self.activity_mbq, 0.0, 1.0e5, "MBq"),
            "interval_h": (self.interval_h, 0.0, 1.0e5, "h"),
            "tumour_alpha_per_gy": (self.tumour_alpha_per_gy, 0.0, 10.0, "1/Gy"),
            "tumour_clonogens": (self.tumour_clonogens, 0.0, 1.0e15, "cells"),
        }
        for name in ("kidney_alpha_beta_gy", "kidney_repair_half_time_h", "tumour_alpha_beta_gy",
                     "tumour_repair_half_time_h", "tumour_doubling_time_d", "ligand_nmol"):
            value = getattr(self, name)
            if value is not None:
                checks[name] = (value, 0.0, 1.0e5, name.rsplit("_", 1)[-1])
        for name, (value, low, high, unit) in checks.items():
            if not (isinstance(value, (int, float, np.floating, np.integer))
                    and math.isfinite(value) and low < value <= high):
                raise InputError(
                    f"{name}: {value!r}; expected a finite number in ({low:g}, {high:g}] {unit}"
                )
        if not (math.isfinite(self.tumour_alpha_sd_per_gy)
                and 0.0 <= self.tumour_alpha_sd_per_gy <= 1.0):
            raise InputError(
                f"tumour_alpha_sd_per_gy: {self.tumour_alpha_sd_per_gy!r}; expected 0 to 1 1/Gy"
            )
        if not (isinstance(self.n_cycles, (int, np.integer)) and 1 <= self.n_cycles <= MAX_CYCLES):
            raise InputError(
                f"n_cycles: {self.n_cycles!r}; expected an integer from 1 to {MAX_CYCLES}"
            )

    @property
    def kidney_bed_limit_gy(self) -> float:
        """28 Gy with kidney risk factors, 40 Gy without (:func:`tdt.radiobiology.kidney_bed_limit_gy`)."""
        return kidney_bed_limit_gy(self.kidney_risk_factors)


@dataclass(frozen=True)
class RegionRadiobiology:
    """Resolved per-region parameters (arrays in region order)."""

    alpha_beta_gy: np.ndarray
    repair_half_time_h: np.ndarray
    bed_limit_gy: np.ndarray  # nan: no BED limit
    dose_limit_gy: np.ndarray  # nan: no dose limit
    ntcp_td50_gy: np.ndarray  # nan: no NTCP model
    ntcp_m: np.ndarray
    ntcp_metric: np.ndarray  # index into NTCP_METRICS
    ntcp_alpha_beta_gy: np.ndarray  # α/β converting BED to EQD2 for the NTCP endpoint
    lesion: np.ndarray  # bool
    citations: dict[str, str] = field(default_factory=dict)


def _tissue(name: str) -> TissueParameters:
    """:func:`tdt.radiobiology.tissue`, or GENERIC_LATE_TISSUE for an organ without an entry."""
    try:
        return tissue(name)
    except InputError:
        return GENERIC_LATE_TISSUE


def resolve_radiobiology(regions, scenario: Scenario, bed_limits=None, dose_limits=None):
    """Per-region α/β, T_rep, limits and NTCP parameters for ``scenario``.

    ``bed_limits`` / ``dose_limits`` (``{region: Gy}``) override the defaults
    (:mod:`tdt.radiobiology._limits`: kidneys BED 28/40 Gy, red marrow 2 Gy). Regions with no
    tissue entry use :data:`tdt.radiobiology.GENERIC_LATE_TISSUE` (α/β 3 Gy, T_rep 1.5 h) and say
    so in ``citations``.
    """
    ntcp_table = NTCP_PARAMETERS
    n = len(regions)
    ab, trep = np.empty(n), np.empty(n)
    bed_limit, dose_limit = np.full(n, np.nan), np.full(n, np.nan)
    td50, m = np.full(n, np.nan), np.full(n, np.nan)
    metric, ntcp_ab = np.zeros(n, dtype=np.int32), np.full(n, 3.0)
    lesion = np.array([is_lesion(r) for r in regions])
    citations = {}
    for i, region in enumerate(regions):
        lq = _tissue("tumour" if lesion[i] else region)
        ab[i], trep[i], citations[region] = lq.alpha_beta_gy, lq.repair_half_time_h, lq.citation
        if region == "kidneys":
            if scenario.kidney_alpha_beta_gy is not None:
                ab[i] = scenario.kidney_alpha_beta_gy
            if scenario.kidney_repair_half_time_h is not None:
                trep[i] = scenario.kidney_repair_half_time_h
            bed_limit[i] = scenario.kidney_bed_limit_gy
        if lesion[i]:
            if scenario.tumour_alpha_beta_gy is not None:
                ab[i] = scenario.tumour_alpha_beta_gy
            if scenario.tumour_repair_half_time_h is not None:
                trep[i] = scenario.tumour_repair_half_time_h
        if region == "red_marrow":
            dose_limit[i] = RED_MARROW_DOSE_LIMIT_GY
        if region in ntcp_table:
            p = ntcp_table[region]
            td50[i], m[i], ntcp_ab[i] = p.td50_gy, p.m, p.alpha_beta_gy
            metric[i] = NTCP_METRICS.index(p.dose_metric)
            citations[region + ":ntcp"] = p.citation
    for limits, target in ((bed_limits, bed_limit), (dose_limits, dose_limit)):
        for region, value in (limits or {}).items():
            if region not in regions:
                raise InputError(f"limits: unknown region {region!r}; expected one of {regions}")
            target[regions.index(region)] = np.nan if value is None else float(value)
    return RegionRadiobiology(ab, trep, bed_limit, dose_limit, td50, m, metric, ntcp_ab, lesion,
                              citations)


@dataclass(frozen=True)
class Outcomes:
    """Posterior summaries of one scenario (NumPy arrays, region order of ``regions``).

    Quantile arrays have a leading axis of length 3 (:data:`QUANTILES`: 5 %, 50 %, 95 %).
    ``cumulative_bed_gy`` is (3, MAX_CYCLES, n_regions): BED if treatment stopped after cycle k.
    Probabilities are posterior means (nan where a region has no limit / model).
    """

    scenario: Scenario
    regions: tuple[str, ...]
    dose_per_cycle_gy: np.ndarray
    dose_total_gy: np.ndarray
    bed_total_gy: np.ndarray
    eqd2_total_gy: np.ndarray
    cumulative_bed_gy: np.ndarray
    cumulative_dose_gy: np.ndarray
    p_exceed: np.ndarray
    limit_gy: np.ndarray
    limit_kind: tuple[str, ...]
    ntcp: np.ndarray
    tcp: np.ndarray
    bed_total_draws_gy: np.ndarray
    overlap_bound: float
    n_draws: int

    def index(self, region: str) -> int:
        try:
            return self.regions.index(region)
        except ValueError:
            raise InputError(
                f"region: {region!r} not in this scenario; expected one of {self.regions}"
            ) from None

    def summary(self) -> dict[str, dict[str, float]]:
        """``{region: {quantity: value}}`` with medians, 90 % CrI bounds and probabilities."""
        out = {}
        for i, region in enumerate(self.regions):
            row = {}
            for name, q in (("dose_per_cycle_gy", self.dose_per_cycle_gy),
                            ("dose_total_gy", self.dose_total_gy),
                            ("bed_total_gy", self.bed_total_gy),
                            ("eqd2_total_gy", self.eqd2_total_gy)):
                row[name] = float(q[1, i])
                row[name + "_lo"] = float(q[0, i])
                row[name + "_hi"] = float(q[2, i])
            row["p_exceed"] = float(self.p_exceed[i])
            row["limit_gy"] = float(self.limit_gy[i])
            row["ntcp"] = float(self.ntcp[i])
            row["tcp"] = float(self.tcp[i])
            out[region] = row
        return out
