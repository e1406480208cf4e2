"""The explorer's controls: widgets built from a :class:`Scenario`, and the scenario they describe.

Units: the widgets show GBq and weeks (what a clinic says), the :class:`Scenario` holds MBq and h;
conversions go through :mod:`tdt.units`.
"""

from __future__ import annotations

import html
import math

import ipywidgets as w
import numpy as np

from tdt.units import gbq_to_mbq, mbq_to_gbq, time_to_h
from tdt.widgets._adapters_pbpk import emulator_note
from tdt.widgets._inputs import ScenarioInputs
from tdt.widgets._scenario import MAX_CYCLES, Scenario, resolve_radiobiology

#: width of the controls' descriptions
STYLE = {"description_width": "190px"}
#: width of one control (CSS)
CONTROL_WIDTH = "460px"
_DAYS_PER_WEEK = 7.0


def weeks_to_h(weeks: float) -> float:
    """Treatment interval in weeks → h."""
    return time_to_h(_DAYS_PER_WEEK * weeks, "d")


def radiobiology_defaults(initial: Scenario, regions) -> dict[str, float]:
    """Kidney and tumour α/β (Gy) and repair half-times (h): the scenario's, else the defaults.

    The defaults are :func:`~tdt.widgets._scenario.resolve_radiobiology`'s (tdt.radiobiology's
    tissue table), probed for ``kidneys`` and a lesion even if the inputs have neither.
    """
    probe = tuple(regions) + ("kidneys", "lesion_0")
    rb = resolve_radiobiology(probe, initial.replace(kidney_alpha_beta_gy=None,
                                                     kidney_repair_half_time_h=None,
                                                     tumour_alpha_beta_gy=None,
                                                     tumour_repair_half_time_h=None))
    k, t = probe.index("kidneys"), len(probe) - 1
    s = initial
    return {
        "kidney_alpha_beta_gy": s.kidney_alpha_beta_gy or float(rb.alpha_beta_gy[k]),
        "kidney_repair_half_time_h": s.kidney_repair_half_time_h
        or float(rb.repair_half_time_h[k]),
        "tumour_alpha_beta_gy": s.tumour_alpha_beta_gy or float(rb.alpha_beta_gy[t]),
        "tumour_repair_half_time_h": s.tumour_repair_half_time_h
        or float(rb.repair_half_time_h[t]),
    }


def _schedule_controls(s: Scenario, inputs: ScenarioInputs) -> dict:
    return {
        "activity_gbq": w.FloatSlider(
            value=round(mbq_to_gbq(s.activity_mbq), 2), min=0.5, max=15.0, step=0.1,
            description="activity per cycle (GBq)", continuous_update=False,
            readout_format=".1f"),
        "n_cycles": w.IntSlider(
            value=s.n_cycles, min=1, max=MAX_CYCLES, continuous_update=False,
            description="further cycles" if inputs.has_delivered else "number of cycles"),
        "interval_weeks": w.FloatSlider(
            value=round(s.interval_h / weeks_to_h(1.0), 1), min=1.0, max=16.0, step=0.5,
            description="interval (weeks)", continuous_update=False, readout_format=".1f"),
    }


def _ligand_control(s: Scenario, inputs: ScenarioInputs) -> tuple[w.FloatSlider, str]:
    """The ligand-amount slider (live only with a sensitivity grid) and the note beside it."""
    if inputs.has_ligand_sensitivity:
        grid = inputs.ligand_grid_nmol
        emulator = inputs.ligand_emulator or {}
        value = (s.ligand_nmol if s.ligand_nmol is not None
                 else emulator.get("reference_nmol", float(np.median(grid))))
        slider = w.FloatSlider(
            value=value, min=float(grid[0]), max=float(grid[-1]),
            step=float((grid[-1] - grid[0]) / 100.0), description="ligand (nmol)",
            continuous_update=False)
        if emulator:
            return slider, html.escape(emulator_note(emulator, short=True))
        return slider, "ligand amount: per-draw uptake sensitivity from the nonlinear model"
    slider = w.FloatSlider(
        value=s.ligand_nmol or 150.0, min=50.0, max=300.0, step=5.0,
        description="ligand (nmol)", continuous_update=False, disabled=True,
        tooltip="The reduced linear model does not depend on the ligand amount.")
    return slider, ("ligand amount: <b>not modelled</b> — the reduced linear model is "
                    "independent of it (needs the nonlinear PBPK sensitivity)")


def _radiobiology_controls(s: Scenario, defaults: dict[str, float]) -> dict:
    def number(value, low, high, step, description):
        return w.BoundedFloatText(value=value, min=low, max=high, step=step,
                                  description=description)

    return {
        "kidney_alpha_beta_gy": number(defaults["kidney_alpha_beta_gy"], 0.5, 20.0, 0.1,
                                       "kidney α/β (Gy)"),
        "kidney_repair_half_time_h": number(defaults["kidney_repair_half_time_h"], 0.1, 24.0,
                                            0.1, "kidney repair T½ (h)"),
        "tumour_alpha_beta_gy": number(defaults["tumour_alpha_beta_gy"], 0.5, 30.0, 0.5,
                                       "tumour α/β (Gy)"),
        "tumour_repair_half_time_h": number(defaults["tumour_repair_half_time_h"], 0.1, 24.0,
                                            0.1, "tumour repair T½ (h)"),
        "tumour_alpha_per_gy": number(s.tumour_alpha_per_gy, 0.01, 1.0, 0.01,
                                      "tumour α (1/Gy)"),
        "tumour_alpha_sd_per_gy": number(s.tumour_alpha_sd_per_gy, 0.0, 0.5, 0.01,
                                         "tumour α spread, sd (1/Gy)"),
        "tumour_clonogens_log10": number(round(math.log10(s.tumour_clonogens), 2), 1.0, 12.0,
                                         0.5, "tumour clonogens (log10)"),
        "tumour_doubling_time_d": number(s.tumour_doubling_time_d or 0.0, 0.0, 1000.0, 1.0,
                                         "tumour T_pot (d; 0 = off)"),
    }


#: names of the controls in the collapsed "radiobiology" section, in display order
RADIOBIOLOGY_CONTROLS = (
    "kidney_alpha_beta_gy", "kidney_repair_half_time_h", "tumour_alpha_beta_gy",
    "tumour_repair_half_time_h", "tumour_alpha_per_gy", "tumour_alpha_sd_per_gy",
    "tumour_clonogens_log10", "tumour_doubling_time_d")


def build_controls(s: Scenario, inputs: ScenarioInputs) -> tuple[dict, str]:
    """Controls (name → widget) set to scenario ``s``, and the note on the ligand control."""
    controls = _schedule_controls(s, inputs)
    controls["ligand_nmol"], ligand_note = _ligand_control(s, inputs)
    controls["kidney_risk_factors"] = w.Checkbox(
        value=s.kidney_risk_factors, indent=False,
        description="kidney risk factors (hypertension, diabetes…): BED limit 28 Gy, not 40")
    controls.update(_radiobiology_controls(s, radiobiology_defaults(s, inputs.regions)))
    for widget in controls.values():
        widget.style = dict(STYLE) if not isinstance(widget, w.Checkbox) else widget.style
        widget.layout = w.Layout(width=CONTROL_WIDTH)
    return controls, ligand_note


def scenario_from_controls(c: dict, has_ligand_sensitivity: bool) -> Scenario:
    """The :class:`Scenario` that controls ``c`` describe (GBq → MBq, weeks → h)."""
    t_pot = float(c["tumour_doubling_time_d"].value)
    return Scenario(
        activity_mbq=gbq_to_mbq(float(c["activity_gbq"].value)),
        n_cycles=int(c["n_cycles"].value),
        interval_h=weeks_to_h(float(c["interval_weeks"].value)),
        ligand_nmol=float(c["ligand_nmol"].value) if has_ligand_sensitivity else None,
        kidney_risk_factors=bool(c["kidney_risk_factors"].value),
        kidney_alpha_beta_gy=float(c["kidney_alpha_beta_gy"].value),
        kidney_repair_half_time_h=float(c["kidney_repair_half_time_h"].value),
        tumour_alpha_beta_gy=float(c["tumour_alpha_beta_gy"].value),
        tumour_repair_half_time_h=float(c["tumour_repair_half_time_h"].value),
        tumour_alpha_per_gy=float(c["tumour_alpha_per_gy"].value),
        tumour_alpha_sd_per_gy=float(c["tumour_alpha_sd_per_gy"].value),
        tumour_clonogens=10.0 ** float(c["tumour_clonogens_log10"].value),
        tumour_doubling_time_d=t_pot if t_pot > 0 else None,
    )
