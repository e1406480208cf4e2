"""The model registry: one entry per radiopharmaceutical model, looked up by name.

A :class:`ModelSpec` says everything the layers above need to know about a model without naming
it in their code: the radiopharmaceutical and nuclide, the factory that builds the forward model,
its organs, the catalog dataset holding its parameters and cited priors, the rule that picks the
parameters a few SPECT time points identify, and the dosimetry hooks (which organs are dose
sources, which carry the receptor). Inference (:func:`tdt.inference.pbpk_model`,
``resolve_model``), posterior persistence and the twin look models up here by name.

Each model module registers itself at import (``register_model(ModelSpec(...))`` at its end);
:mod:`tdt.pbpk` imports every built-in model module, so ``get_model`` sees them all. Adding a
model is one module (factory + registration) and one catalog YAML (docs/pbpk.md, "Adding a
model").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tdt.errors import InputError, unknown_name_error

__all__ = ["KINDS", "PSMA_KIDNEY_ROUTES", "ModelSpec", "get_model", "identifiable_receptor_parameters",
           "model_names", "register_model"]

#: ``pbpk``: receptor PBPK (:class:`tdt.pbpk.PbpkModel`); ``reduced_linear``: the linear
#: plasma <-> organ exchange model (:class:`tdt.pbpk.LinearModel`).
KINDS = ("pbpk", "reduced_linear")


def identifiable_receptor_parameters(forward, observed: Sequence[str],
                                     uptake: Mapping[str, str] | None = None,
                                     also: Mapping[str, Sequence[str]] | None = None
                                     ) -> tuple[str, ...]:
    """Identifiable subset of a receptor PBPK for the observed VOIs ``observed``.

    The glomerular filtration ``GFR`` (plasma clearance, kidney input) and, per observed
    organ/lesion, its uptake amplitude — the receptor density ``R_<organ>``, or the parameter
    ``uptake[organ]`` when the organ's uptake is not receptor-driven (e.g. ``f_reabs`` for the
    kidneys under DOTATATE, tubular reabsorption) — and its release rate ``krel_<organ>``: what
    a few SPECT time points constrain (uptake amplitude and washout). ``also[organ]``: further
    parameters sampled when ``organ`` is imaged, appended after the rest (e.g.
    :data:`PSMA_KIDNEY_ROUTES`, the PSMA models' rule: ``f_reabs`` for PSMA kidneys, whose uptake
    is receptor binding *plus* tubular reabsorption; with the reabsorption fixed, a patient whose
    kidneys take up less than it alone delivers cannot be fitted — docs/twin.md, "Sampling the
    reabsorption"). Everything else stays at its literature value. Names the model does not
    have are skipped.
    """
    names = set(forward.parameter_names)
    uptake, also = dict(uptake or {}), dict(also or {})
    sampled = [n for n in ("GFR",) if n in names]
    for organ in observed:
        first = uptake.get(organ, f"R_{organ}")
        sampled += [n for n in (first, f"krel_{organ}") if n in names and n not in sampled]
    for organ in observed:
        sampled += [n for n in also.get(organ, ()) if n in names and n not in sampled]
    return tuple(sampled)


#: PSMA ligands: kidney uptake is PSMA binding and tubular reabsorption; ``also=`` this samples
#: both amplitudes when the kidneys are imaged (the rule of psma617 and psma_it; docs/twin.md)
PSMA_KIDNEY_ROUTES = {"kidneys": ("f_reabs",)}


def all_parameters(forward, observed: Sequence[str]) -> tuple[str, ...]:
    """Identifiable subset of the reduced linear model: every rate constant (each organ's
    in/out rates are fixed by its own time-activity curve)."""
    return tuple(forward.parameter_names)


@dataclass(frozen=True)
class ModelSpec:
    """A registered radiopharmaceutical model.

    key: registry name (``"psma617"``); radiopharmaceutical: e.g. ``"177Lu-PSMA-617"``;
    nuclide: default nuclide (``"Lu-177"``); kind: one of :data:`KINDS`; factory: builds the
    forward model (``factory(lesions=..., nuclide=..., **solver_options)`` for ``pbpk``,
    ``factory(organs, nuclide=..., lesions=..., dataset=...)`` for ``reduced_linear``);
    organs: the model's organs (lesions are added per patient); dataset: catalog entry of the
    parameters and cited priors; identifiable: ``(forward, observed VOIs) -> sampled names``;
    receptor_organs / source_organs: dosimetry hooks (receptor-bearing organs; organs whose TIA
    is a dose source); linear_dataset: the reduced linear parameter table the (linear) twin uses
    for this radiopharmaceutical, or None when there is none yet; citation: the main sources.
    """

    key: str
    radiopharmaceutical: str
    nuclide: str
    kind: str
    factory: Callable[..., Any]
    organs: tuple[str, ...]
    dataset: str
    identifiable: Callable[[Any, Sequence[str]], tuple[str, ...]] = identifiable_receptor_parameters
    receptor_organs: frozenset[str] = frozenset()
    source_organs: tuple[str, ...] = ()
    linear_dataset: str | None = None
    citation: str = ""
    aliases: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if not (isinstance(self.key, str) and self.key.isidentifier()):
            raise InputError(f"ModelSpec.key: got {self.key!r}; expected a Python identifier "
                             "such as 'psma617'")
        if self.kind not in KINDS:
            raise InputError(f"ModelSpec.kind of {self.key!r}: got {self.kind!r}; expected one "
                             f"of {KINDS}")
        if not callable(self.factory):
            raise InputError(f"ModelSpec.factory of {self.key!r}: got {self.factory!r}; "
                             "expected a callable")
        unknown = set(self.receptor_organs) - set(self.organs)
        if unknown:
            raise InputError(f"ModelSpec.receptor_organs of {self.key!r}: {sorted(unknown)} are "
                             f"not among its organs {self.organs}")

    def build(self, **options):
        """The forward model (``options`` go to the factory)."""
        if self.kind == "reduced_linear":
            options.setdefault("organs", self.organs)
            options.setdefault("dataset", self.dataset)
        options.setdefault("nuclide", self.nuclide)
        return self.factory(**options)

    def identifiable_parameters(self, forward, observed: Sequence[str]) -> tuple[str, ...]:
        """The sampled subset of ``forward``'s parameters for the observed VOIs."""
        return tuple(self.identifiable(forward, tuple(observed)))


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def register_model(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Add ``spec`` under ``spec.key`` (and its aliases). Registering a key twice is an error
    unless ``replace=True`` (re-registration of the same spec, e.g. a module reload, is fine)."""
    if not isinstance(spec, ModelSpec):
        raise InputError(f"register_model: expected a ModelSpec, got {type(spec).__name__}")
    for name in (spec.key, *spec.aliases):
        owner = _ALIASES.get(name, name if name in _REGISTRY else None)
        if owner is not None and owner != spec.key and not replace:
            raise InputError(f"register_model: name {name!r} is already registered for "
                             f"{owner!r}")
    old = _REGISTRY.get(spec.key)
    if old is not None and not replace and (old.factory.__qualname__, old.dataset) != (
            spec.factory.__qualname__, spec.dataset):
        raise InputError(f"register_model: {spec.key!r} is already registered "
                         f"({old.radiopharmaceutical}, dataset {old.dataset!r}); pass "
                         "replace=True to override")
    _REGISTRY[spec.key] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.key
    return spec


def get_model(name: str) -> ModelSpec:
    """The registered :class:`ModelSpec` named ``name`` (a key or an alias)."""
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in _REGISTRY:
        raise unknown_name_error("model", name, model_names())
    return _REGISTRY[key]


def model_names(kind: str | None = None) -> tuple[str, ...]:
    """Registered model keys (sorted), optionally only those of ``kind``."""
    return tuple(sorted(k for k, s in _REGISTRY.items() if kind is None or s.kind == kind))



# -- diagnostic ligands of the theranostic pairs (issue #25, tdt.pbpk._pairs) -------------------
# Registered here with factories imported on first use: the factory modules import the
# therapeutic modules, which import this registry (no import cycle at module level).
import functools  # noqa: E402


def _lazy_factory(module: str, name: str) -> Callable[..., Any]:
    def factory(**options):
        # deferred: the factory module imports the therapeutic model modules, which import this
        # registry; importing it at module level would be an import cycle
        import importlib

        return getattr(importlib.import_module(module), name)(**options)

    factory.__qualname__ = f"{module}.{name}"
    factory.__doc__ = f"Imports {module} and calls {name}(**options)."
    return factory


#: organs of tdt.pbpk.psma617 / tdt.pbpk.dotatate (tests/pbpk/test_pbpk_pairs.py checks them)
_PSMA_ORGANS = ("kidneys", "salivary_glands", "lacrimal_glands", "liver", "spleen", "gi",
                "red_marrow", "remainder")
_SSTR_ORGANS = ("kidneys", "spleen", "liver", "gi", "red_marrow", "remainder")

register_model(ModelSpec(
    key="psma11", radiopharmaceutical="68Ga-PSMA-11", nuclide="Ga-68", kind="pbpk",
    factory=_lazy_factory("tdt.pbpk._psma11", "psma11"), organs=_PSMA_ORGANS,
    dataset="pbpk_psma11_ga68",
    receptor_organs=frozenset(_PSMA_ORGANS) - {"red_marrow", "remainder"},
    source_organs=_PSMA_ORGANS,
    citation="PSMA-617 receptor PBPK structure and shared patient parameters; PSMA-11 ligand "
             "values (data_catalog/pbpk/psma11_ga68.yaml; Begum NJ, et al. Sci Rep "
             "2019;9:20041)"))
register_model(ModelSpec(
    key="dotatate_ga68", radiopharmaceutical="68Ga-DOTATATE", nuclide="Ga-68", kind="pbpk",
    factory=_lazy_factory("tdt.pbpk._dotatate_ga68", "dotatate_ga68"), organs=_SSTR_ORGANS,
    dataset="pbpk_dotatate_ga68",
    receptor_organs=frozenset(_SSTR_ORGANS) - {"red_marrow", "remainder"},
    source_organs=_SSTR_ORGANS,
    # as 177Lu-DOTATATE: renal uptake is tubular reabsorption (f_reabs, shared by the pair)
    identifiable=functools.partial(identifiable_receptor_parameters,
                                   uptake={"kidneys": "f_reabs"}),
    citation="Vasic V, et al. EJNMMI Phys 2026;13:9 (one PBPK for [68Ga]Ga- and "
             "[177Lu]Lu-DOTA-TATE); data_catalog/pbpk/dotatate_ga68.yaml"))
