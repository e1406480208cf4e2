"""Interactive JupyterLab tools of tdt (ipywidgets).

* :class:`ScenarioExplorer` — live what-if explorer of activity, cycles, interval, ligand amount,
  kidney risk factors and radiobiology over posterior draws, with a patient-facing explain view.
* :class:`ScenarioInputs`, :class:`Scenario`, :class:`ScenarioModel`, :func:`evaluate` — the
  widget-free core (pure JAX, jitted and vectorised over draws) the explorer is built on.
* :func:`inputs_from_posterior`, :func:`inputs_from_twin`, :func:`inputs_from_dose_draws`,
  :func:`inputs_from_dose_prediction` — adapters from a posterior or a twin to
  :class:`ScenarioInputs` (``adapters`` imports ``inputs``, never the reverse).
* :func:`inputs_from_pbpk_twin`, :func:`inputs_from_ligand_response` — the receptor-PBPK twin:
  an emulator of d(L), q(L) per draw on a ligand grid, with its measured error
  (:mod:`tdt.widgets._adapters_pbpk`); :class:`LigandCurves` — its interpolation.
"""

from tdt.widgets._adapters import (
    inputs_from_dose_draws,
    inputs_from_dose_prediction,
    inputs_from_posterior,
    inputs_from_twin,
)
from tdt.widgets._adapters_pbpk import (
    DEFAULT_LIGAND_GRID_NMOL,
    emulator_error,
    inputs_from_ligand_response,
    inputs_from_pbpk_twin,
)
from tdt.widgets._explain import explain_html
from tdt.widgets._inputs import ScenarioInputs, effective_half_life_from_tia, is_lesion
from tdt.widgets._ligand_curves import LIGAND_INTERPOLATIONS, LigandCurves
from tdt.widgets._scenario import (
    KIDNEY_BED_LIMIT_GY,
    KIDNEY_BED_LIMIT_RISK_GY,
    MAX_CYCLES,
    QUANTILES,
    RED_MARROW_DOSE_LIMIT_GY,
    Outcomes,
    Scenario,
    ScenarioModel,
    evaluate,
)


def __getattr__(name: str):
    if name == "ScenarioExplorer":
        # ipywidgets is imported only when the explorer itself is used
        from tdt.widgets._explorer import ScenarioExplorer

        return ScenarioExplorer
    raise AttributeError(f"module 'tdt.widgets' has no attribute {name!r}")


__all__ = [
    "DEFAULT_LIGAND_GRID_NMOL", "LIGAND_INTERPOLATIONS", "LigandCurves", "emulator_error",
    "inputs_from_ligand_response", "inputs_from_pbpk_twin", "KIDNEY_BED_LIMIT_GY", "KIDNEY_BED_LIMIT_RISK_GY", "MAX_CYCLES", "QUANTILES",
    "RED_MARROW_DOSE_LIMIT_GY", "Outcomes", "Scenario", "ScenarioExplorer", "ScenarioInputs",
    "ScenarioModel", "effective_half_life_from_tia", "evaluate", "explain_html",
    "inputs_from_dose_draws", "inputs_from_dose_prediction", "inputs_from_posterior",
    "inputs_from_twin", "is_lesion",
]
