"""Time–activity kinetics: sum-of-exponentials fits, model selection and averaging, population-
Bayesian batch fits, analytic TIA.

Public API: :func:`fit_tac` (one curve), :func:`fit_tacs` (many curves with shared time points:
population-Bayesian by default for a batch, or per TAC), :func:`fit_population`,
:func:`load_prior` (published population priors), :func:`tia_trapezoid` (non-parametric TIA),
:data:`MODELS`, :func:`aicc`, :func:`akaike_weights`.
Units: h, MBq, MBq·h, 1/h.
"""

from tdt.kinetics._fit import BatchTacFit, TacFit, aicc, fit_tac, fit_tacs
from tdt.kinetics._models import AUTO_MODELS, MODELS, TRAPEZOID_MODELS, ExponentialModel
from tdt.kinetics._population import (
    POPULATION_MODELS,
    PopulationPrior,
    PopulationTacFit,
    fit_population,
)
from tdt.kinetics._priors import load_prior
from tdt.kinetics._selection import akaike_weights
from tdt.kinetics._trapezoid import tia_trapezoid
from tdt.kinetics._validation import check_tac_plausibility

__all__ = [
    "AUTO_MODELS", "MODELS", "POPULATION_MODELS", "TRAPEZOID_MODELS", "BatchTacFit",
    "ExponentialModel", "PopulationPrior", "PopulationTacFit", "TacFit", "aicc", "akaike_weights",
    "fit_population", "fit_tac", "fit_tacs", "load_prior", "tia_trapezoid",
    "check_tac_plausibility",
]
