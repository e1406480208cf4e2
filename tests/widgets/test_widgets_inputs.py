"""tdt.widgets._inputs and the explorer's controls: independent references, import direction."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import radioactivedecay as rd
from scipy.integrate import quad

from tdt.widgets import ScenarioInputs, effective_half_life_from_tia

WIDGETS = Path(__file__).resolve().parents[2] / "tdt" / "widgets"


def _widget_imports(module: str) -> set[str]:
    tree = ast.parse((WIDGETS / f"{module}.py").read_text())
    return {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tdt.widgets")}


def test_inputs_is_the_bottom_of_the_widgets_package():
    # the shared type imports no other widgets module; adapters build on it (no cycle) and on
    # the explorer's per-region tissue resolution (the Dale inversion must use the same α/β)
    assert _widget_imports("_inputs") == set()
    assert _widget_imports("_adapters") == {"tdt.widgets._inputs", "tdt.widgets._scenario_types"}


@pytest.mark.parametrize("half_life_h", [12.0, 40.0, 150.0])
def test_effective_half_life_from_a_numerically_integrated_tac(half_life_h):
    a0 = 250.0  # MBq
    tia, _ = quad(lambda t: a0 * math.exp(-math.log(2) * t / half_life_h), 0.0, np.inf)
    assert effective_half_life_from_tia(tia, a0) == pytest.approx(half_life_h, rel=1e-9)


def test_example_half_lives_never_exceed_the_physical_half_life_of_lu177():
    physical_h = rd.Nuclide("Lu-177").half_life("h")  # radioactivedecay (ICRP-107), ~159.5 h
    inputs = ScenarioInputs.example(n_draws=2000, seed=3)
    assert np.all(inputs.effective_half_life_h <= physical_h)
    kidneys = inputs.regions.index("kidneys")
    # 0.4–0.8 Gy/GBq published for the kidneys (shared/reference/README.md): median in Gy/MBq
    assert 0.4e-3 < np.median(inputs.dose_per_mbq_gy[:, kidneys]) < 0.8e-3


def test_controls_describe_the_scenario_they_were_built_from():
    pytest.importorskip("ipywidgets")
    from tdt.widgets import Scenario
    from tdt.widgets._explorer_controls import build_controls, scenario_from_controls

    scenario = Scenario(activity_mbq=6000.0, n_cycles=4, interval_h=8 * 7 * 24.0,
                        kidney_risk_factors=True)
    controls, _ = build_controls(scenario, ScenarioInputs.example(n_draws=10))
    assert controls["activity_gbq"].value == pytest.approx(6.0)
    assert controls["interval_weeks"].value == pytest.approx(8.0)
    back = scenario_from_controls(controls, has_ligand_sensitivity=False)
    assert back.activity_mbq == pytest.approx(6000.0)
    assert back.interval_h == pytest.approx(1344.0)  # 8 weeks
    assert (back.n_cycles, back.kidney_risk_factors) == (4, True)
