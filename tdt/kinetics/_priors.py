"""Published population priors of 177Lu organ kinetics (data_catalog/kinetics/population_priors.yaml).

``load_prior("psma617:kidneys")`` returns ``{"mono": PopulationPrior}``: the effective half-life
T_eff is log-normal with the published median and a log-SD (each value's source is in the YAML;
values not from a publication are marked ASSUMPTION there). In the model's coordinates
θ_rate = ln(k_eff − λ_phys) with k_eff = ln 2 / T_eff, so by the delta method
SD(θ_rate) = SD(ln T_eff) · k_eff / (k_eff − λ_phys). The amplitude prior is uninformative
(relative to each TAC's maximum). Use with ``fit_tacs(t, y, prior="psma617:kidneys")`` to fit one
patient's 2–4 points, or :func:`tdt.inference._single_time_point.bayesian_stp_tia` for one point.
"""

from __future__ import annotations

import numpy as np
import yaml

from tdt.catalog import dataset_path
from tdt.errors import InputError, unknown_name_error
from tdt.kinetics._population import PopulationPrior
from tdt.physics import nuclide as get_nuclide
from tdt.units import half_life_to_rate

DATASET = "kinetics_population_priors"


def _table() -> dict:
    with open(dataset_path(DATASET), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def available_priors() -> tuple[str, ...]:
    """Names ``"<radiopharmaceutical>:<organ>"`` of the vendored priors."""
    table = _table()
    return tuple(f"{drug}:{organ}" for drug, organs in table.items() if isinstance(organs, dict)
                 for organ in organs)


def load_prior(name: str, nuclide: str = "Lu-177") -> dict[str, PopulationPrior]:
    """Population prior ``{"mono": PopulationPrior}`` of ``name`` (``"psma617:kidneys"``)."""
    if not isinstance(name, str) or ":" not in name:
        raise InputError(f"prior: {name!r}; expected '<radiopharmaceutical>:<organ>', e.g. "
                         "'psma617:kidneys'")
    table = _table()
    names = available_priors()
    if name not in names:
        raise unknown_name_error("prior", name, names)
    drug, organ = name.split(":", 1)
    row = table[drug][organ]
    lam = get_nuclide(nuclide).decay_constant_per_h
    k_eff = half_life_to_rate(float(row["t_eff_median_h"]))
    if k_eff <= lam:
        raise InputError(f"prior: {name!r} has T_eff {row['t_eff_median_h']} h, not shorter than "
                         f"the physical half-life of {nuclide}")
    rate_sd = float(row["log_sd"]) * k_eff / (k_eff - lam)
    mean = np.array([0.0, np.log(k_eff - lam)])
    cov = np.diag([float(table["amplitude_log_sd"]) ** 2, rate_sd**2])
    return {"mono": PopulationPrior("mono", mean, cov, float(table["noise_cv"]),
                                    source=str(row["source"]))}
