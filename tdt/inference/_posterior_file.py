"""JSON metadata stored with a posterior's NetCDF file, its keyed MAC, and the rebuild from it.

Stored: the model kind, options, sampled names, prior (loc, Cholesky factor), fixed parameters,
the patient data (times, activities, volumes, sessions — no identifiers beyond the opaque
``patient_id``), the schedule, the measurement model and the diagnostics.

Integrity: the attribute ``tdt_integrity`` holds an HMAC-SHA256 (:mod:`tdt.integrity`, the
installation key) over the metadata JSON and the content of every variable and coordinate of
every group (name, dtype, shape and bytes): an edited draw, an edited metadata field or a
re-hashed file no longer verifies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np

from tdt import integrity
from tdt.errors import InputError
from tdt.inference._data import BloodSamples, OrganSeries, PatientData
from tdt.inference._diagnostics import Diagnostics
from tdt.inference._measurement import MeasurementModel
from tdt.inference._models import TwinModel, custom_model
from tdt.pbpk import Administration, Schedule, get_model

FORMAT_VERSION = 1
INTEGRITY_ATTR = "tdt_integrity"


def _content(idata, metadata_json: str) -> bytes:
    """Canonical bytes of a posterior: the metadata JSON, then every array of every group."""
    digest = hashlib.sha256(metadata_json.encode())
    for group in sorted(idata.groups()):
        ds = idata[group]
        for name in sorted(str(n) for n in ds.variables):
            values = np.asarray(ds[name].values)
            digest.update(f"|{group}/{name}|{values.shape}|".encode())
            if values.dtype.kind in "OUSM":
                digest.update(json.dumps([str(v) for v in values.ravel()]).encode())
            else:
                digest.update(values.dtype.kind.encode() + str(values.dtype.itemsize).encode())
                digest.update(np.ascontiguousarray(
                    values, dtype=values.dtype.newbyteorder("<")).tobytes())
    return digest.digest()


def seal(idata, metadata_json: str) -> str:
    """The JSON integrity record to store as the ``tdt_integrity`` attribute."""
    key = integrity.installation_key()
    return json.dumps({"algorithm": integrity.ALGORITHM, "key_id": integrity.key_id(key),
                       "mac": integrity.mac(_content(idata, metadata_json), key)})


def check_seal(idata, metadata_json: str, record: str | None, what: str) -> None:
    """InputError naming ``what`` unless ``record`` is a valid seal of the content."""
    if record is None:
        raise InputError(f"{what}: no {INTEGRITY_ATTR} attribute (unsigned posterior, written "
                         "before tdt signed them, or stripped); pass allow_unsigned=True only "
                         "if you trust where it came from")
    try:
        fields = json.loads(record)
        mac, key_id = fields["mac"], fields.get("key_id")
    except (ValueError, TypeError, KeyError):
        raise InputError(f"{what}: malformed {INTEGRITY_ATTR} attribute") from None
    integrity.verify(_content(idata, metadata_json), mac, what, key_id)


def _schedule_to_list(schedule):
    if schedule is None:
        return None
    admins = getattr(schedule, "administrations", None)
    if not admins:
        return None
    return [[a.time_h, a.activity_mbq, a.ligand_nmol, a.infusion_h] for a in admins]


def _schedule_from_list(items):
    if items is None:
        return None

    return Schedule([Administration(*item) for item in items])


def _series_to_dict(s: OrganSeries) -> dict:
    return {"times_h": s.times_h.tolist(), "activity_mbq": s.activity_mbq.tolist(),
            "volume_ml": s.volume_ml, "recovery": s.recovery, "recovery_sd": s.recovery_sd,
            "sessions": list(s.sessions)}


def _data_to_dict(data: PatientData | None):
    if data is None:
        return None
    out = {
        "organs": {name: _series_to_dict(s) for name, s in data.organs.items()},
        "calibration_sd": data.calibration_sd,
        "administered_activity_mbq": data.administered_activity_mbq,
        "ligand_nmol": data.ligand_nmol, "injection_time_h": data.injection_time_h,
        "fwhm_mm": data.fwhm_mm, "nuclide": data.nuclide, "patient_id": data.patient_id,
    }
    # red-marrow inputs (blood samples, L2-L4 VOI): only when present (older files unchanged)
    if data.blood is not None:
        b = data.blood
        out["blood"] = {"times_h": b.times_h.tolist(), "hematocrit": b.hematocrit,
                        "concentration_mbq_per_ml": b.concentration_mbq_per_ml.tolist(),
                        "sample": b.sample}
    if data.marrow_l2_l4 is not None:
        out["marrow_l2_l4"] = _series_to_dict(data.marrow_l2_l4)
    return out


def posterior_attrs(posterior) -> dict:
    twin: TwinModel | None = posterior.twin
    model = None
    if twin is not None:
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in twin.options.items()}
        model = {"kind": twin.kind, "options": options, "sampled": list(twin.sampled),
                 "prior_loc": np.asarray(twin.prior_loc).tolist(),
                 "prior_chol": np.asarray(twin.prior_chol).tolist(), "fixed": twin.fixed}
    return {
        "format_version": FORMAT_VERSION,
        "model": model,
        "data": _data_to_dict(posterior.data),
        "schedule": _schedule_to_list(posterior.schedule),
        "measurement": asdict(posterior.measurement),
        "diagnostics": asdict(posterior.diagnostics),
    }


def _rebuild_forward(kind: str, options: dict, forward):
    if forward is not None:
        return forward
    if kind == "reduced":
        return get_model("reduced").build(organs=tuple(options["organs"]),
                                          nuclide=options["nuclide"])
    if kind == "pbpk":
        # files written before the model registry carry no "model" option: PSMA-617 then
        opts = dict(options)
        spec = get_model(opts.pop("model", "psma617"))
        lesions = tuple(opts.pop("lesions", ()))
        return spec.build(lesions=lesions, **opts)
    return None


def restore(attrs: dict, forward=None):
    """(twin, data, schedule, measurement, diagnostics) from :func:`posterior_attrs`."""
    if attrs.get("format_version") != FORMAT_VERSION:
        raise InputError(f"posterior metadata: format_version {attrs.get('format_version')!r}; "
                         f"expected {FORMAT_VERSION}")
    twin = None
    model = attrs.get("model")
    if model is not None:
        fwd = _rebuild_forward(model["kind"], model["options"], forward)
        options = {k: tuple(v) if isinstance(v, list) else v
                   for k, v in model["options"].items()}
        if fwd is not None:
            twin = custom_model(fwd, sampled=model["sampled"], kind=model["kind"],
                                options=options)
        else:
            twin = TwinModel(model["kind"], None, tuple(model["sampled"]),
                             np.zeros(len(model["sampled"])), np.eye(len(model["sampled"])),
                             {}, options)
        twin = TwinModel(twin.kind, twin.forward, tuple(model["sampled"]),
                         np.asarray(model["prior_loc"], dtype=float),
                         np.asarray(model["prior_chol"], dtype=float),
                         {k: float(v) for k, v in model["fixed"].items()}, options)
    data = None
    if attrs.get("data") is not None:
        d = dict(attrs["data"])
        organs = {name: OrganSeries(**series) for name, series in d.pop("organs").items()}
        if d.get("blood") is not None:
            d["blood"] = BloodSamples(**d["blood"])
        if d.get("marrow_l2_l4") is not None:
            d["marrow_l2_l4"] = OrganSeries(**d["marrow_l2_l4"])
        data = PatientData(organs=organs, **d)
    schedule = _schedule_from_list(attrs.get("schedule"))
    if data is not None and schedule is not None:
        data = data._replace(schedule=schedule)
    measurement = MeasurementModel(**attrs["measurement"])
    diagnostics = Diagnostics(**attrs["diagnostics"])
    return twin, data, schedule, measurement, diagnostics
