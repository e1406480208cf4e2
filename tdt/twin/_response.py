"""From kinetic parameter draws to the planner's per-draw dose response.

Two steps, both linear in activity:

1. Kinetics. For a linear compartment model (``tdt.pbpk.reduced_linear``) the activity of every
   compartment after a bolus of 1 MBq into plasma is a sum of exponentials whose rates are minus
   the eigenvalues of the generator (physical decay included): :func:`tdt.pbpk.bolus_exponentials`
   (the package's one linear solver), exact, jitted and vmapped over all draws.
2. Dosimetry. Dose rate of target T = Σ_S S(T←S) A_S(t), with S in Gy/(MBq·h) from
   :func:`dose_matrix`: tdt.dosimetry S-values (mass-scaled to the patient's organs, lesions as
   spheres) when that module is available, otherwise local deposition of the non-penetrating
   energy, S(T←T) = Δ_np / m_T (MIRD Pamphlet 21; photons, ~5 % of kidney self-dose for 177Lu,
   and cross-dose are then neglected — recorded as the dosimetry ``method``).

Sources are the model's organ compartments (plasma and urine excluded: no blood or bladder
dosimetry in the reduced model). The result is a :class:`~tdt.twin._draws.DoseDraws`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tdt import dosimetry
from tdt.dosimetry import SOFT_TISSUE_DENSITY_G_PER_ML
from tdt.errors import InputError, TdtError
from tdt.pbpk import batched_bolus_exponentials, exponential_sum
from tdt.physics import nuclide
from tdt.twin._draws import DoseDraws
from tdt.twin._plan_marrow import substitute_blood_marrow
from tdt.twin._record import PatientRecord
from tdt.units import mev_per_decay_to_gy_g_per_mbq_h

#: Soft-tissue density (g/mL) for lesion masses from volumes: tdt.dosimetry's sphere-model value
#: (the one home; ICRU 44 soft tissue 1.03-1.06).
LESION_DENSITY_G_PER_ML = SOFT_TISSUE_DENSITY_G_PER_ML


@dataclass(frozen=True)
class DoseMatrix:
    """S(target <- source) in Gy/(MBq·h), targets × sources, and how it was obtained."""

    targets: tuple[str, ...]
    sources: tuple[str, ...]
    values: np.ndarray
    method: str


def _reference_mass(organ: str, record: PatientRecord) -> float | None:
    if organ in record.organ_masses_g:
        return float(record.organ_masses_g[organ])
    if organ in record.lesions:
        return float(record.lesions[organ]) * LESION_DENSITY_G_PER_ML
    try:  # ICRP 89 reference masses, tdt.dosimetry's table (the one home of organ masses)
        return float(dosimetry.reference_mass_g(organ, record.phantom))
    except TdtError:  # an organ without a reference mass: the caller asks for one
        return None


def dose_matrix(targets: Sequence[str], sources: Sequence[str], record: PatientRecord,
                method: str = "auto") -> DoseMatrix:
    """S-matrix (Gy/(MBq·h)) for ``targets`` × ``sources`` of the patient in ``record``.

    ``method``: ``"svalues"`` (tdt.dosimetry MIRD S-values, mass-scaled; spheres for lesions),
    ``"local"`` (local deposition of the non-penetrating energy), or ``"auto"``: S-values when
    tdt.dosimetry tabulates the record's nuclide (``tdt.dosimetry.TABLE_NUCLIDES``), local
    deposition otherwise. The choice is made from that stated condition, never by catching an
    error, and is named in :attr:`DoseMatrix.method`; any error of the S-value path propagates.
    """
    targets, sources = tuple(targets), tuple(sources)
    if method not in ("auto", "svalues", "local"):
        raise InputError(f"method: got {method!r}; expected 'auto', 'svalues' or 'local'")
    if method == "auto":
        method = "svalues" if record.nuclide in dosimetry.TABLE_NUCLIDES else "local"
    if method == "svalues":
        return _svalue_matrix(targets, sources, record)
    energy = mev_per_decay_to_gy_g_per_mbq_h(nuclide(record.nuclide).energy_nonpenetrating_mev)
    values = np.zeros((len(targets), len(sources)))
    for i, target in enumerate(targets):
        if target in sources:
            mass = _reference_mass(target, record)
            if mass is None:
                raise InputError(
                    f"organ_masses_g: no mass for {target!r}; give it in the PatientRecord")
            values[i, sources.index(target)] = energy / mass
    return DoseMatrix(targets, sources, values, "local deposition (non-penetrating energy)")


def _svalue_matrix(targets, sources, record: PatientRecord) -> DoseMatrix:
    values = np.zeros((len(targets), len(sources)))
    organ_sources = [s for s in sources if s not in record.lesions]
    masses = {o: m for o, m in record.organ_masses_g.items()}
    for j, source in enumerate(sources):
        if source in record.lesions:
            if source in targets:
                values[targets.index(source), j] = float(dosimetry.sphere_dose(
                    1.0, volume_ml=record.lesions[source], nuclide=record.nuclide))
            continue
        doses = dosimetry.organ_doses({source: 1.0}, nuclide=record.nuclide,
                                      phantom=record.phantom, organ_masses_g=masses or None)
        for i, target in enumerate(targets):
            if target in doses and target not in record.lesions:
                values[i, j] = float(np.asarray(doses[target]))
    del organ_sources
    return DoseMatrix(targets, sources, values, "tdt.dosimetry S-values (MIRD, mass-scaled)")


def response_draws(model, params: Mapping[str, np.ndarray], matrix: DoseMatrix,
                   marrow_tia_per_mbq=None, **kwargs) -> DoseDraws:
    """Per-draw DoseDraws (one cycle) for ``params`` (name -> (n_draws,) or (n_cycles, n_draws)).

    With a leading cycle axis the response of each future cycle is computed from its own
    (drifted) parameters. ``marrow_tia_per_mbq`` (n_draws,): blood-based red-marrow TIA per MBq
    (:mod:`tdt.twin._plan_marrow`), replacing the model's marrow compartment in every cycle.
    Extra keyword arguments go to :meth:`DoseDraws.from_exponentials`.
    """
    first = np.asarray(next(iter(params.values())))
    if first.ndim == 2:
        n_cycles, n_draws = first.shape
        flat = {k: np.asarray(v).reshape(-1) for k, v in params.items()}
    else:
        n_cycles, n_draws = 1, first.shape[0]
        flat = {k: np.asarray(v) for k, v in params.items()}
    amplitudes, rates = batched_bolus_exponentials(model, flat)
    if marrow_tia_per_mbq is not None:
        amplitudes = substitute_blood_marrow(amplitudes, rates, model.compartments,
                                             np.tile(np.asarray(marrow_tia_per_mbq), n_cycles))
    index = [model.compartments.index(s) for s in matrix.sources]
    dose_amp = np.einsum("ts,nsk->ntk", matrix.values, amplitudes[:, index, :])
    rates_t = np.broadcast_to(rates[:, None, :], dose_amp.shape)
    shape = (n_cycles, n_draws, len(matrix.targets), rates.shape[-1])
    return DoseDraws.from_exponentials(matrix.targets, dose_amp.reshape(shape),
                                       rates_t.reshape(shape), **kwargs)


def tia_fraction_after(model, params: Mapping[str, np.ndarray], organ: str, t_h: float) -> np.ndarray:
    """Fraction of the TIA (to infinity) of ``organ`` accrued after ``t_h`` (per draw).

    Used by QA as "fraction of TIA extrapolated" beyond the last imaging time.
    """
    amplitudes, rates = batched_bolus_exponentials(model, params)
    c = amplitudes[:, model.compartments.index(organ), :]
    # ∫_t^∞ Σ c e^{-r s} ds = Σ (c / r) e^{-r t}
    tail = exponential_sum(c / rates, rates, np.atleast_1d(float(t_h)))[:, 0]
    total = (c / rates).sum(axis=1)
    return tail / total
