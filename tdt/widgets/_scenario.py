"""Scenario outcomes for the explorer: dose, BED, limit exceedance, TCP and NTCP per draw.

Pure JAX; one jitted function evaluates all posterior draws at once (vectorised over the leading
draws axis), so a slider move costs one call. No widgets here: tests and benchmarks use it
directly.

Model (stated in the UI and in docs/notebooks.md):

* Absorbed dose per cycle D = A · (dose per MBq) · s(ligand), linear in the activity A (MBq);
  s = 1 unless a ligand-sensitivity grid was supplied (then s(L) and, if tabulated, the
  effective half-life T_eff(L) are interpolated at the slider's L, :mod:`._ligand_curves`; for
  the PBPK twin this is an emulator of the receptor model, :mod:`._adapters_pbpk`).
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
  P(D_red marrow > 2 Gy) (limits: :mod:`tdt.radiobiology._limits`); each is the fraction of
  posterior draws above the limit.
* NTCP: Lyman–Kutcher–Burman with the organ EQD2 (uniform dose), :func:`tdt.radiobiology.ntcp_lkb`
  and ``NTCP_PARAMETERS``. TCP: Poisson LQ (:func:`tdt.radiobiology.tcp_poisson`). Both are
  averaged over posterior draws (posterior predictive probability).

Layout: :class:`Scenario`, :class:`Outcomes` and the per-region resolution live in
``_scenario_types``, the jitted :func:`scenario_core` in ``_scenario_core``; this module binds
inputs to the evaluator (:class:`ScenarioModel`) and re-exports the public names.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tdt.errors import InputError
from tdt.radiobiology import (
    KIDNEY_BED_LIMIT_GY,
    KIDNEY_BED_LIMIT_RISK_GY,
    RED_MARROW_DOSE_LIMIT_GY,
    repopulation_bed,
)
from tdt.units import HOURS_PER_DAY
from tdt.widgets._inputs import ScenarioInputs
from tdt.widgets._ligand_curves import LigandCurves
from tdt.widgets._scenario_core import scenario_core
from tdt.widgets._scenario_types import (
    MAX_CYCLES,
    NTCP_METRICS,
    QUANTILES,
    Outcomes,
    RegionRadiobiology,
    Scenario,
    resolve_radiobiology,
)

__all__ = (
    "KIDNEY_BED_LIMIT_GY", "KIDNEY_BED_LIMIT_RISK_GY", "MAX_CYCLES", "NTCP_METRICS", "QUANTILES",
    "RED_MARROW_DOSE_LIMIT_GY", "Outcomes", "RegionRadiobiology", "Scenario", "ScenarioModel",
    "evaluate", "resolve_radiobiology", "scenario_core",
)


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
            self._ligand = LigandCurves(inputs.ligand_grid_nmol, inputs.ligand_uptake_scale,
                                        inputs.ligand_half_life_h, inputs.ligand_interpolation)

    @property
    def regions(self) -> tuple[str, ...]:
        return self.inputs.regions

    def __call__(self, scenario: Scenario) -> Outcomes:
        scenario.validate()
        rb = resolve_radiobiology(self.regions, scenario, self.bed_limits, self.dose_limits)
        scale, teff = self._ones, self._teff
        if self.inputs.has_ligand_sensitivity and scenario.ligand_nmol is not None:
            scale, half_life = self._ligand(scenario.ligand_nmol)
            scale = jnp.asarray(scale)
            teff = teff if half_life is None else jnp.asarray(half_life)
        repop = 0.0
        if scenario.tumour_doubling_time_d is not None:
            # lesion BED lost per hour of overall treatment time, ln2 / (α T_pot)
            t_pot_h = scenario.tumour_doubling_time_d * HOURS_PER_DAY
            repop = float(repopulation_bed(1.0, t_pot_h, scenario.tumour_alpha_per_gy,
                                           validate=False))
        raw = scenario_core(
            self._dose, teff, scale,
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
