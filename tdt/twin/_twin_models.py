"""Which model a :class:`tdt.Twin` runs: the default (the receptor PBPK of the record's
radiopharmaceutical), the registered models with a reduced linear table, and the linear model
built for a record."""

from __future__ import annotations

from tdt.errors import InputError
from tdt.pbpk import get_model, model_names, reduced_linear
from tdt.twin._record import PatientRecord

__all__ = ["DEFAULT_MODEL_ORGANS", "default_twin_model", "twin_model_names"]

#: Organs of the default reduced model (lesions are added from the record); lacrimal glands:
#: dose-only target (no LQ parameters, no published limit), reported, never constrained.
DEFAULT_MODEL_ORGANS = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow", "remainder",
                        "lacrimal_glands")


def default_twin_model(record: PatientRecord) -> str:
    """The model of ``Twin(record)``: the registered receptor PBPK whose radiopharmaceutical is
    ``record.radiopharmaceutical`` (``"177Lu-PSMA-617"`` → ``"psma617"``, ``"177Lu-DOTATATE"``
    → ``"dotatate"``, ``"177Lu-PSMA-I&T"`` → ``"psma_it"``)."""
    names = [n for n in model_names("pbpk")
             if get_model(n).radiopharmaceutical == record.radiopharmaceutical]
    if not names:
        known = sorted({get_model(n).radiopharmaceutical for n in model_names("pbpk")})
        raise InputError(f"record.radiopharmaceutical: {record.radiopharmaceutical!r} has no "
                         f"registered receptor PBPK; expected one of {known}, or pass "
                         "model='reduced' (the reduced linear 177Lu-PSMA-617 model)")
    return names[0]


def twin_model_names() -> tuple[str, ...]:
    """Registered models the (linear) twin can run: those with a reduced linear table."""
    return tuple(n for n in model_names() if get_model(n).linear_dataset is not None)


def _build_model(model, record: PatientRecord):
    if not isinstance(model, str):
        return model, getattr(model, "kind", type(model).__name__)
    spec = get_model(model)  # unknown names: InputError listing the registered models
    if spec.linear_dataset is None:
        raise InputError(f"model: {model!r} ({spec.radiopharmaceutical}) has no reduced (linear) "
                         "parameter table yet; the twin runs on "
                         f"{list(twin_model_names())}, or pass a tdt.pbpk.reduced_linear "
                         "model built on a dataset of this radiopharmaceutical")
    lesions = sorted(record.lesions, key=lambda n: int(n.split("_")[1]))
    forward = reduced_linear(DEFAULT_MODEL_ORGANS, nuclide=record.nuclide, lesions=lesions,
                     dataset=spec.linear_dataset)
    return forward, spec.linear_dataset.removeprefix("pbpk_")


def _is_pbpk(model) -> bool:
    """A registered receptor-PBPK name (not "reduced", not a model object)."""
    return isinstance(model, str) and model != "reduced" and get_model(model).kind == "pbpk"
