"""Theranostic pairs: a diagnostic and a therapeutic ligand sharing one patient.

A pre-therapy PET ([68Ga]Ga-PSMA-11, [68Ga]Ga-DOTATATE) and the 177Lu therapy that follows it see
the same physiology (organ volumes, flows, interstitial fractions, plasma volume, GFR) and the
same receptor densities; they differ in what belongs to the ligand: affinity (k_on, k_off),
plasma-protein binding (``fu_plasma``), renal handling (``f_reabs``, where not shared),
internalisation and release (``kint_*``, ``krel_*``), and the radionuclide. Each ligand also
brings its own peptide amount (the schedule's ``ligand_nmol``: the diagnostic peptide competes
for the receptors at imaging, the therapeutic one at therapy).

One home for the shared values: a diagnostic model's catalog table lists **only** its
ligand-specific parameters and names a ``base`` table (the therapeutic model's); every other
parameter is read from the base (:func:`ligand_table`). So the shared parameters of the two
models are the same entries with the same names, values, priors and sources, by construction.

:class:`TheranosticPair` names the two registered models (``tdt.pbpk.get_model``), says which
parameters are shared, and maps a diagnostic parameter draw to the therapeutic model
(:meth:`TheranosticPair.therapeutic_params`). Pairs are looked up by name (:func:`get_pair`,
:func:`pair_names`). Pairs registered here: ``psma11_psma617`` and ``dotatate_ga68_lu177``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tdt.errors import CatalogError, InputError, unknown_name_error
from tdt.pbpk._builders import build
from tdt.pbpk._nonlinear import PbpkModel
from tdt.pbpk._organs import is_lesion_compartment, lesion_names
from tdt.pbpk._parameters import ParameterSpec, load_table
from tdt.pbpk._registry import get_model
from tdt.pbpk._schedule import Administration, Schedule

__all__ = ["TheranosticPair", "build_ligand_model", "get_pair", "ligand_table", "pair_names",
           "register_pair"]


@functools.lru_cache(maxsize=8)
def ligand_table(dataset: str) -> tuple[dict[str, ParameterSpec], frozenset[str]]:
    """``(table, ligand_specific)``: the full parameter table of a diagnostic ligand model.

    ``dataset``'s YAML holds the ligand-specific entries and ``base:`` (the catalog name of the
    therapeutic table); the result is the base table with those entries replaced. Every
    ligand-specific name must exist in the base (a typo would otherwise add a parameter the
    model never reads).
    """
    overrides, document = load_table(dataset)
    base_name = document.get("base")
    if not isinstance(base_name, str):
        raise CatalogError(f"{dataset}: expected a 'base' entry naming the therapeutic "
                           f"parameter table, got {base_name!r}")
    base, _ = load_table(base_name)
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise CatalogError(f"{dataset}: ligand-specific parameters {unknown} are not in the base "
                           f"table {base_name!r}; expected names of {base_name!r}")
    return {**base, **overrides}, frozenset(overrides)


def build_ligand_model(name: str, dataset: str, organs: tuple[str, ...],
                       receptor_organs: frozenset[str], lesions: int | Iterable[str],
                       nuclide: str, **options) -> PbpkModel:
    """A :class:`PbpkModel` from a ligand table (:func:`ligand_table`), as
    :func:`tdt.pbpk._builders.build` does from a full one."""
    return build(name, dataset, organs, receptor_organs, lesions, nuclide,
                 table=ligand_table(dataset)[0], **options)


def _template(name: str) -> str:
    """``krel_lesion_2`` -> ``krel_lesion`` (the table entry a lesion parameter comes from)."""
    head, sep, _ = name.partition("_lesion_")
    return f"{head}_lesion" if sep else name


@dataclass(frozen=True)
class TheranosticPair:
    """A diagnostic and a therapeutic registered receptor PBPK sharing one patient.

    key: pair name; diagnostic / therapeutic: registry keys (:func:`tdt.pbpk.get_model`);
    diagnostic_activity_mbq, diagnostic_ligand_nmol: the standard diagnostic administration
    (MBq, nmol of peptide); therapy_activity_mbq, therapy_ligand_nmol: the standard first
    cycle; citation: sources of the pairing and of the administered amounts.
    """

    key: str
    diagnostic: str
    therapeutic: str
    diagnostic_activity_mbq: float
    diagnostic_ligand_nmol: float
    therapy_activity_mbq: float
    therapy_ligand_nmol: float
    citation: str = ""

    def __post_init__(self):
        for field_name in ("diagnostic_activity_mbq", "diagnostic_ligand_nmol",
                           "therapy_activity_mbq", "therapy_ligand_nmol"):
            value = getattr(self, field_name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise InputError(f"TheranosticPair.{field_name} of {self.key!r}: got {value!r}; "
                                 "expected a positive number")

    # -- the two models ----------------------------------------------------------------------
    @property
    def diagnostic_spec(self):
        return get_model(self.diagnostic)

    @property
    def therapeutic_spec(self):
        return get_model(self.therapeutic)

    def build(self, lesions: int | Iterable[str] = 1, **options) -> tuple[PbpkModel, PbpkModel]:
        """``(diagnostic, therapeutic)`` forward models with the same lesions; ``options`` (solver
        settings) go to both factories."""
        lesions = lesion_names(lesions)
        return (self.diagnostic_spec.build(lesions=lesions, **options),
                self.therapeutic_spec.build(lesions=lesions, **options))

    def diagnostic_schedule(self, activity_mbq: float | None = None,
                            ligand_nmol: float | None = None) -> Schedule:
        """One diagnostic bolus at t = 0 (defaults: the pair's standard administration)."""
        return Schedule([Administration(
            0.0, self.diagnostic_activity_mbq if activity_mbq is None else activity_mbq,
            self.diagnostic_ligand_nmol if ligand_nmol is None else ligand_nmol)])

    def therapy_schedule(self, activity_mbq: float | None = None,
                         ligand_nmol: float | None = None) -> Schedule:
        """Cycle 1 of the therapy: one bolus at t = 0 (defaults: the pair's standard cycle)."""
        return Schedule([Administration(
            0.0, self.therapy_activity_mbq if activity_mbq is None else activity_mbq,
            self.therapy_ligand_nmol if ligand_nmol is None else ligand_nmol)])

    # -- which parameters are shared ---------------------------------------------------------
    def ligand_specific(self) -> frozenset[str]:
        """Table names (lesion templates ``*_lesion``) specific to the diagnostic ligand: its
        own values; the therapeutic model keeps its own for the same names."""
        return ligand_table(self.diagnostic_spec.dataset)[1]

    def shared_parameters(self, diagnostic: PbpkModel, therapeutic: PbpkModel
                          ) -> tuple[str, ...]:
        """Names the two built models share (same name and value): physiology and receptor
        densities, in the diagnostic model's order."""
        specific = self.ligand_specific()
        names = set(therapeutic.parameter_names)
        return tuple(n for n in diagnostic.parameter_names
                     if n in names and _template(n) not in specific)

    def therapy_only(self, diagnostic: PbpkModel, therapeutic: PbpkModel) -> tuple[str, ...]:
        """Therapeutic-model parameters a diagnostic draw does not inform (ligand-specific)."""
        shared = set(self.shared_parameters(diagnostic, therapeutic))
        return tuple(n for n in therapeutic.parameter_names if n not in shared)

    def therapeutic_params(self, diagnostic_params: Mapping, diagnostic: PbpkModel,
                           therapeutic: PbpkModel,
                           therapy_specific: Mapping | None = None) -> dict:
        """The therapeutic model's parameter dict for the patient of ``diagnostic_params``.

        Shared parameters are taken from ``diagnostic_params`` (arrays with a leading axis of
        draws pass through unchanged); the ligand-specific ones from ``therapy_specific``
        (e.g. draws from their population prior) or, where not given, the therapeutic model's
        defaults.
        """
        missing = [n for n in diagnostic.parameter_names if n not in diagnostic_params]
        if missing:
            raise InputError(f"{self.key}.therapeutic_params: diagnostic_params lacks {missing}; "
                             f"expected every parameter of {diagnostic.name!r}")
        params = dict(therapeutic.default_params())
        shared = self.shared_parameters(diagnostic, therapeutic)
        extra = dict(therapy_specific or {})
        wrong = sorted(set(extra) - set(self.therapy_only(diagnostic, therapeutic)))
        if wrong:
            raise InputError(f"{self.key}.therapeutic_params: therapy_specific names {wrong} are "
                             "shared or unknown; expected ligand-specific parameters of "
                             f"{therapeutic.name!r}")
        params.update(extra)
        params.update({n: diagnostic_params[n] for n in shared})
        return params

    def diagnostic_params(self, therapeutic_params: Mapping, diagnostic: PbpkModel,
                          therapeutic: PbpkModel) -> dict:
        """The diagnostic model's parameters for the patient of ``therapeutic_params``: shared
        values from it, the diagnostic ligand's own values at their defaults."""
        missing = [n for n in therapeutic.parameter_names if n not in therapeutic_params]
        if missing:
            raise InputError(f"{self.key}.diagnostic_params: therapeutic_params lacks "
                             f"{missing}; expected every parameter of {therapeutic.name!r}")
        params = dict(diagnostic.default_params())
        params.update({n: therapeutic_params[n]
                       for n in self.shared_parameters(diagnostic, therapeutic)})
        return params


_PAIRS: dict[str, TheranosticPair] = {}


def register_pair(pair: TheranosticPair, replace: bool = False) -> TheranosticPair:
    """Add ``pair`` under ``pair.key`` (twice is an error unless ``replace``)."""
    if not isinstance(pair, TheranosticPair):
        raise InputError(f"register_pair: expected a TheranosticPair, got {type(pair).__name__}")
    old = _PAIRS.get(pair.key)
    if old is not None and old != pair and not replace:
        raise InputError(f"register_pair: {pair.key!r} is already registered; pass replace=True")
    _PAIRS[pair.key] = pair
    return pair


def get_pair(name: str) -> TheranosticPair:
    """The registered :class:`TheranosticPair` ``name`` (or the pair whose diagnostic or
    therapeutic model key is ``name``, when exactly one matches)."""
    if name in _PAIRS:
        return _PAIRS[name]
    matches = [p for p in _PAIRS.values() if name in (p.diagnostic, p.therapeutic)]
    if len(matches) == 1:
        return matches[0]
    raise unknown_name_error("theranostic pair", name, pair_names())


def pair_names() -> tuple[str, ...]:
    return tuple(sorted(_PAIRS))


def check_pair_models(pair: TheranosticPair, organs: Sequence[str]) -> None:
    """Raise when ``organs`` (PET VOIs) are not organs of the diagnostic model."""
    known = pair.diagnostic_spec.organs
    for organ in organs:
        if not is_lesion_compartment(organ) and organ not in known:
            raise unknown_name_error(f"{pair.key} organ", organ, known)


register_pair(TheranosticPair(
    key="psma11_psma617", diagnostic="psma11", therapeutic="psma617",
    # EANM/SNMMI guideline 1.8-2.2 MBq/kg (Fendler WP, et al. EJNMMI 2017;44:1014; recalled,
    # not verified) -> 150 MBq for 75 kg; 1-10 nmol typical for PET (Begum NJ, et al. Sci Rep
    # 2019;9:20041, abstract checked): 2 nmol (ASSUMPTION within that range)
    diagnostic_activity_mbq=150.0, diagnostic_ligand_nmol=2.0,
    therapy_activity_mbq=7400.0, therapy_ligand_nmol=150.0,
    citation="Begum NJ, et al. Sci Rep 2019;9:20041 (PSMA PBPK for 68Ga imaging and 177Lu "
             "therapy); data_catalog/pbpk/psma11_ga68.yaml"))

register_pair(TheranosticPair(
    key="dotatate_ga68_lu177", diagnostic="dotatate_ga68", therapeutic="dotatate",
    # median 92.7 MBq labelled on 12.3 ug peptide in 41 patients (Siebinga H, et al. EJNMMI Res
    # 2021, doi:10.1186/s13550-021-00821-7, abstract checked); 12.3 ug / 1435.6 g/mol DOTA-TATE
    # = 8.6 nmol
    diagnostic_activity_mbq=92.7, diagnostic_ligand_nmol=8.6,
    therapy_activity_mbq=7400.0, therapy_ligand_nmol=100.0,
    citation="Vasic V, et al. EJNMMI Phys 2026;13:9, doi:10.1186/s40658-025-00826-4; Siebinga "
             "H, et al. EJNMMI Res 2021; data_catalog/pbpk/dotatate_ga68.yaml"))
