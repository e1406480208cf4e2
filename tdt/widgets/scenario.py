"""Scenario outcomes for the explorer: dose, BED, limit exceedance, TCP and NTCP per draw.

Pure JAX; one jitted function evaluates all posterior draws at once (vectorised over the leading
draws axis), so a slider move costs one call. No widgets here: tests and benchmarks use it
directly.

Model (stated in the UI and in docs/notebooks.md):

* Absorbed dose per cycle D = A · (dose per MBq) · s(ligand), linear in the activity A (MBq);
  s = 1 unless a ligand-sensitivity grid was supplied.
* BED per cycle: Dale's closed form for instant uptake and mono-exponential clearance
  (Dale 1985, Br J Radiol 58:515; Bodei et al. 2008, EJNMMI 35:1847), via
  :func:`tdt.radiobiology.bed_monoexponential`:
  BED = D + D²/(α/β) · T_rep/(T_rep + T_eff).
* Cycles are summed: BED after k cycles = Σ BED per cycle. Inter-cycle repair interaction is
  neglected; it is bounded by the overlap of the dose-rate tails, exp(-ln2 · interval / T_eff),
  which the explorer reports (it is < 1 % for 6-weekly 177Lu cycles when T_eff < 150 h).
* Optional tumour repopulation (Fowler 1989, Br J Radiol 62:679): lesion BED is reduced by
  ln2 · T / (α · T_pot), T = (k − 1) · interval the overall treatment time (no kick-off delay).
* Exceedance: P(BED_kidneys > 28 Gy with risk factors, 40 Gy without; Bodei 2008) and
  P(D_red marrow > 2 Gy); each is the fraction of posterior draws above the limit.
* NTCP: Lyman–Kutcher–Burman with the organ EQD2 (uniform dose), :func:`tdt.radiobiology.ntcp_lkb`
  and ``NTCP_PARAMETERS``. TCP: Poisson LQ (:func:`tdt.radiobiology.tcp_poisson`). Both are
  averaged over posterior draws (posterior predictive probability).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError
from tdt.units import HOURS_PER_DAY
from tdt.widgets.inputs import ScenarioInputs, is_lesion

#: largest number of cycles the explorer evaluates (static shape of the jitted function)
MAX_CYCLES = 10
#: posterior summary: 5 %, 50 %, 95 % (a 90 % central credible interval)
QUANTILES = (0.05, 0.5, 0.95)
#: kidney BED limits, Gy (Bodei et al., EJNMMI 2008;35:1847): with / without risk factors
KIDNEY_BED_LIMIT_RISK_GY = 28.0
KIDNEY_BED_LIMIT_GY = 40.0
#: red-marrow absorbed-dose limit, Gy (commonly used; shared/reference/README.md)
RED_MARROW_DOSE_LIMIT_GY = 2.0

#: dose metrics of LKB parameter sets (tdt.radiobiology.NtcpParameters.dose_metric)
NTCP_METRICS = ("eqd2", "bed", "absorbed_dose")


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
        return KIDNEY_BED_LIMIT_RISK_GY if self.kidney_risk_factors else KIDNEY_BED_LIMIT_GY


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


def _tissue(name: str):
    """(α/β, T_rep, citation) from :func:`tdt.radiobiology.tissue`, or None if unknown."""
    from tdt.radiobiology.parameters import tissue

    try:
        t = tissue(name)
    except InputError:
        return None
    return float(t.alpha_beta_gy), float(t.repair_half_time_h), t.citation


def resolve_radiobiology(regions, scenario: Scenario, bed_limits=None, dose_limits=None):
    """Per-region α/β, T_rep, limits and NTCP parameters for ``scenario``.

    ``bed_limits`` / ``dose_limits`` (``{region: Gy}``) override the defaults (kidneys BED 28/40 Gy,
    red marrow 2 Gy). Regions with no tissue entry use α/β 3 Gy and T_rep 1.5 h (late-responding
    normal tissue, commonly used) and say so in ``citations``.
    """
    from tdt.radiobiology.parameters import NTCP_PARAMETERS as ntcp_table
    n = len(regions)
    ab, trep = np.empty(n), np.empty(n)
    bed_limit, dose_limit = np.full(n, np.nan), np.full(n, np.nan)
    td50, m = np.full(n, np.nan), np.full(n, np.nan)
    metric, ntcp_ab = np.zeros(n, dtype=np.int32), np.full(n, 3.0)
    lesion = np.array([is_lesion(r) for r in regions])
    citations = {}
    for i, region in enumerate(regions):
        tissue = _tissue("tumour" if lesion[i] else region)
        if tissue is None:
            ab[i], trep[i], citations[region] = 3.0, 1.5, "generic late-responding tissue"
        else:
            ab[i], trep[i], citations[region] = tissue
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


def _bed_cycle(dose_gy, alpha_beta_gy, repair_half_time_h, effective_half_life_h):
    from tdt.radiobiology import bed_monoexponential

    return bed_monoexponential(dose_gy, alpha_beta_gy, repair_half_time_h, effective_half_life_h,
                               validate=False)


def _eqd2(bed_gy, alpha_beta_gy):
    from tdt.radiobiology import eqd2

    return eqd2(bed_gy, alpha_beta_gy, validate=False)


def _ntcp(eqd2_gy, td50_gy, m):
    from tdt.radiobiology.ntcp import ntcp_lkb

    # uniform organ dose: the gEUD equals the dose, so the volume parameter n plays no role
    return ntcp_lkb(eqd2_gy, td50_gy, m, validate=False)


def _tcp(bed_gy, alpha_per_gy, clonogens, alpha_sd_per_gy):
    from tdt.radiobiology.tcp import tcp_poisson

    return tcp_poisson(bed_gy, alpha_per_gy, clonogens, alpha_sd_per_gy=alpha_sd_per_gy,
                       validate=False)


@functools.partial(jax.jit, static_argnames=("max_cycles", "lesion_index", "with_delivered"))
def scenario_core(
    dose_per_mbq_gy,
    effective_half_life_h,
    ligand_scale,
    activity_mbq,
    n_cycles,
    interval_h,
    alpha_beta_gy,
    repair_half_time_h,
    bed_limit_gy,
    dose_limit_gy,
    ntcp_td50_gy,
    ntcp_m,
    ntcp_metric,
    ntcp_alpha_beta_gy,
    lesion,
    tumour_alpha_per_gy,
    tumour_alpha_sd_per_gy,
    tumour_clonogens,
    repopulation_gy_per_h,
    delivered_dose_gy=0.0,
    delivered_bed_gy=0.0,
    max_cycles: int = MAX_CYCLES,
    lesion_index: tuple[int, ...] = (),
    with_delivered: bool = False,
):
    """All draws at once. Shapes: per-draw inputs (n_draws, n_regions); per-region (n_regions,).

    Returns a dict of arrays (see :class:`Outcomes`); ``repopulation_gy_per_h`` is the lesion BED
    lost per hour of overall treatment time, ln2/(α T_pot) (0 disables repopulation).
    ``delivered_dose_gy`` / ``delivered_bed_gy`` (n_draws, n_regions): past cycles, added to the
    cumulative quantities (set ``with_delivered`` when they are not zero).
    """
    quantiles = jnp.asarray(QUANTILES)
    dose_cycle = activity_mbq * dose_per_mbq_gy * ligand_scale  # (n, r) Gy
    bed_cycle = _bed_cycle(dose_cycle, alpha_beta_gy[None, :], repair_half_time_h[None, :],
                           effective_half_life_h)
    k = jnp.arange(1, max_cycles + 1, dtype=dose_cycle.dtype)  # (K,)
    overall_time_h = (k - 1.0) * interval_h
    repop = jnp.where(lesion[None, :], repopulation_gy_per_h * overall_time_h[:, None], 0.0)
    last = jnp.clip(n_cycles - 1, 0, max_cycles - 1)
    n_given = k[last]
    dose_total = delivered_dose_gy + n_given * dose_cycle
    bed_total = jnp.maximum(delivered_bed_gy + n_given * bed_cycle - repop[last][None, :], 0.0)
    q_dose = jnp.quantile(dose_cycle, quantiles, axis=0)  # (3, r)
    if with_delivered:
        # past cycles differ per draw: sort the cumulative draws of every cycle
        cum_dose_q = jnp.quantile(delivered_dose_gy[None] + k[:, None, None] * dose_cycle[None],
                                  quantiles, axis=1)
        cum_bed_q = jnp.quantile(
            jnp.maximum(delivered_bed_gy[None] + k[:, None, None] * bed_cycle[None]
                        - repop[:, None, :], 0.0), quantiles, axis=1)
    else:
        # Quantiles commute with increasing affine maps (q(aX + b) = a q(X) + b, a > 0, also for
        # linearly interpolated sample quantiles) and with the monotone clip at 0 except where a
        # quantile straddles 0; so cumulative bands follow from one sort of the per-cycle draws
        # instead of one per cycle (the sort dominates the cost).
        q_bed = jnp.quantile(bed_cycle, quantiles, axis=0)
        cum_dose_q = k[None, :, None] * q_dose[:, None, :]  # (3, K, r)
        cum_bed_q = jnp.maximum(k[None, :, None] * q_bed[:, None, :] - repop[None], 0.0)

    dtype = bed_total.dtype
    over_bed = jnp.where(jnp.isnan(bed_limit_gy), jnp.nan,
                         jnp.mean((bed_total > bed_limit_gy[None, :]).astype(dtype), axis=0))
    over_dose = jnp.mean((dose_total > dose_limit_gy[None, :]).astype(dtype), axis=0)
    p_exceed = jnp.where(jnp.isnan(bed_limit_gy),
                         jnp.where(jnp.isnan(dose_limit_gy), jnp.nan, over_dose), over_bed)
    limit = jnp.where(jnp.isnan(bed_limit_gy), dose_limit_gy, bed_limit_gy)

    has_ntcp = ~jnp.isnan(ntcp_td50_gy)
    # the dose the LKB parameter set is defined on: EQD2 (its own α/β), BED or absorbed dose
    ntcp_dose = jnp.select(
        [ntcp_metric[None, :] == 0, ntcp_metric[None, :] == 1],
        [_eqd2(bed_total, ntcp_alpha_beta_gy[None, :]), bed_total], dose_total)
    ntcp_draws = _ntcp(ntcp_dose, jnp.where(has_ntcp, ntcp_td50_gy, 1.0)[None, :],
                       jnp.where(has_ntcp, ntcp_m, 1.0)[None, :])
    ntcp = jnp.where(has_ntcp, jnp.mean(ntcp_draws, axis=0), jnp.nan)
    tcp = jnp.full(bed_total.shape[1:], jnp.nan)
    if lesion_index:
        index = jnp.asarray(lesion_index)
        lesion_bed = bed_total[:, index]
        # No α spread: the Poisson TCP is the closed form exp(-N exp(-α BED)) (Webb & Nahum
        # 1993), evaluated directly; tcp_poisson's quadrature (needed only with a spread) costs
        # ~100× more and would break the interactive latency budget.
        tcp_draws = jax.lax.cond(
            tumour_alpha_sd_per_gy > 0,
            lambda: _tcp(lesion_bed, tumour_alpha_per_gy, tumour_clonogens,
                         tumour_alpha_sd_per_gy),
            lambda: jnp.exp(-tumour_clonogens * jnp.exp(-tumour_alpha_per_gy * lesion_bed)),
        )
        tcp = tcp.at[index].set(jnp.mean(tcp_draws, axis=0))

    # bound on neglected inter-cycle interaction: dose-rate tail left at the next administration
    overlap = jnp.where(n_cycles > 1,
                        jnp.max(jnp.exp(-jnp.log(2.0) * interval_h / effective_half_life_h)), 0.0)
    return {
        "dose_per_cycle_gy": q_dose,
        "dose_total_gy": cum_dose_q[:, last],
        "bed_total_gy": cum_bed_q[:, last],
        "eqd2_total_gy": _eqd2(cum_bed_q[:, last], alpha_beta_gy[None, :]),
        "cumulative_bed_gy": cum_bed_q,
        "cumulative_dose_gy": cum_dose_q,
        "p_exceed": p_exceed,
        "limit_gy": limit,
        "ntcp": ntcp,
        "tcp": tcp,
        "bed_total_draws_gy": bed_total,
        "overlap_bound": overlap,
    }


@functools.partial(jax.jit, static_argnames=())
def _ligand_scale(grid_nmol, scale, ligand_nmol):
    """Interpolate (n_draws, n_regions, n_grid) factors at ``ligand_nmol`` (clipped to grid)."""
    flat = scale.reshape(-1, scale.shape[-1])
    values = jax.vmap(lambda row: jnp.interp(ligand_nmol, grid_nmol, row))(flat)
    return values.reshape(scale.shape[:-1])


class ScenarioModel:
    """Binds :class:`ScenarioInputs` to the jitted evaluator; ``model(scenario) -> Outcomes``.

    Inputs are moved to the device once; each call only passes the scenario scalars.
    """

    def __init__(self, inputs: ScenarioInputs, bed_limits=None, dose_limits=None):
        if not isinstance(inputs, ScenarioInputs):
            raise InputError(
                f"inputs: {type(inputs).__name__}; expected tdt.widgets.ScenarioInputs"
            )
        self.inputs = inputs
        self.bed_limits = dict(bed_limits or {})
        self.dose_limits = dict(dose_limits or {})
        self._dose = jnp.asarray(inputs.dose_per_mbq_gy)
        self._teff = jnp.asarray(inputs.effective_half_life_h)
        self._ones = jnp.ones_like(self._dose)
        if inputs.has_delivered:
            self._delivered_dose = jnp.asarray(inputs.delivered_dose_gy)
            self._delivered_bed = jnp.asarray(inputs.delivered_bed_gy)
        else:
            self._delivered_dose = self._delivered_bed = jnp.zeros_like(self._dose)
        if inputs.has_ligand_sensitivity:
            self._grid = jnp.asarray(inputs.ligand_grid_nmol)
            self._scale = jnp.asarray(inputs.ligand_uptake_scale)

    @property
    def regions(self) -> tuple[str, ...]:
        return self.inputs.regions

    def __call__(self, scenario: Scenario) -> Outcomes:
        scenario.validate()
        rb = resolve_radiobiology(self.regions, scenario, self.bed_limits, self.dose_limits)
        if self.inputs.has_ligand_sensitivity and scenario.ligand_nmol is not None:
            scale = _ligand_scale(self._grid, self._scale, float(scenario.ligand_nmol))
        else:
            scale = self._ones
        repop = 0.0
        if scenario.tumour_doubling_time_d is not None:
            t_pot_h = scenario.tumour_doubling_time_d * HOURS_PER_DAY
            repop = math.log(2.0) / (scenario.tumour_alpha_per_gy * t_pot_h)
        raw = scenario_core(
            self._dose, self._teff, scale,
            float(scenario.activity_mbq), int(scenario.n_cycles), float(scenario.interval_h),
            jnp.asarray(rb.alpha_beta_gy), jnp.asarray(rb.repair_half_time_h),
            jnp.asarray(rb.bed_limit_gy), jnp.asarray(rb.dose_limit_gy),
            jnp.asarray(rb.ntcp_td50_gy), jnp.asarray(rb.ntcp_m), jnp.asarray(rb.ntcp_metric),
            jnp.asarray(rb.ntcp_alpha_beta_gy), jnp.asarray(rb.lesion),
            float(scenario.tumour_alpha_per_gy), float(scenario.tumour_alpha_sd_per_gy),
            float(scenario.tumour_clonogens), float(repop),
            self._delivered_dose, self._delivered_bed,
            lesion_index=tuple(int(i) for i in np.flatnonzero(rb.lesion)),
            with_delivered=self.inputs.has_delivered,
        )
        raw = {key: np.asarray(value) for key, value in raw.items()}
        kinds = tuple(
            "BED" if not np.isnan(b) else ("dose" if not np.isnan(d) else "")
            for b, d in zip(rb.bed_limit_gy, rb.dose_limit_gy, strict=True)
        )
        return Outcomes(
            scenario=scenario, regions=self.regions, limit_kind=kinds,
            overlap_bound=float(raw.pop("overlap_bound")), n_draws=self.inputs.n_draws, **raw,
        )


def evaluate(inputs: ScenarioInputs, scenario: Scenario | None = None, **kwargs) -> Outcomes:
    """One-off evaluation: ``evaluate(inputs, Scenario(activity_mbq=6000))``."""
    return ScenarioModel(inputs, **kwargs)(scenario or Scenario())
