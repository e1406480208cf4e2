"""Published population priors of 177Lu kinetics (data_catalog/kinetics/), as PopulationPrior."""

from __future__ import annotations


def load_prior(name: str):
    raise NotImplementedError
