"""Time–activity kinetics: sum-of-exponentials fits with AICc model selection, analytic TIA.

Public API: :func:`fit_tac` (one curve), :func:`fit_tacs` (many curves with shared time points,
jitted and vmapped), :func:`tia_trapezoid` (non-parametric TIA), :data:`MODELS`, :func:`aicc`.
Units: h, MBq, MBq·h, 1/h.
"""

from tdt.kinetics.fit import BatchTacFit, TacFit, aicc, fit_tac, fit_tacs
from tdt.kinetics.models import AUTO_MODELS, MODELS, TRAPEZOID_MODELS, ExponentialModel
from tdt.kinetics.trapezoid import tia_trapezoid

__all__ = [
    "AUTO_MODELS", "MODELS", "TRAPEZOID_MODELS", "BatchTacFit", "ExponentialModel", "TacFit",
    "aicc", "fit_tac", "fit_tacs", "tia_trapezoid",
]
