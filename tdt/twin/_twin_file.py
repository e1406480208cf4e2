"""Save / load a twin: a versioned zip file.

Members:

- ``header.json``: ``{"format": "tdt-twin", "format_version": N, "tdt_version", "saved_utc",
  "members": {name: sha256}, "audit_head", "integrity": {"algorithm": "HMAC-SHA256", "key_id",
  "mac"}}`` — ``mac`` is the HMAC (:mod:`tdt.integrity`, the installation key) of the canonical
  JSON of the header without ``integrity``; through the members' sha256 it covers the state,
  the arrays and the audit log, and ``audit_head`` ties the log's keyed chain to the file;
- ``state.json``: record, model specification, settings, cycles' data, QA reports;
- ``arrays.nc``: NetCDF-4 (xarray, h5netcdf) with the prior and posterior (mean and covariance
  of log θ; since format 2 also the posterior after each assimilated cycle, ``filtered_*``, from
  which the delivered dose is backward-sampled), the standard normals behind the draws, the posterior parameter draws, the delivered
  dose / BED per draw (for readers; recomputed on load) and the dose matrix — float64, so predictions reproduce exactly;
- ``audit.jsonl``: the audit log (MAC-chained, :mod:`tdt.twin._audit`).

The **PBPK twin** (``Twin(record, model="psma617")``, format 4): ``state.json`` has ``"kind":
"pbpk"`` (record, model name, settings incl. drift prior, interval and ligand amounts, cycles,
QA reports) and ``arrays.nc`` is the NUTS posterior's own NetCDF
(:meth:`tdt.inference.Posterior.to_netcdf`, itself sealed; empty before the first cycle):
:mod:`tdt.twin._pbpk_twin_file`. Linear twins are still written as format 3 (readable by the
tdt versions before PBPK twin files); a PBPK state in a file claiming format < 4 is refused.

Loading checks the format name, refuses a ``format_version`` newer than this tdt reads, checks
the header's HMAC, then re-hashes every member: an edited file — even one whose sha256s were
recomputed — is an :class:`InputError`. Files without a MAC (format < 3) are refused unless
``allow_unsigned=True`` (then a warning). Any malformed content (not a zip, truncated NetCDF,
malformed ``state.json``, missing keys) is one InputError naming the file and what is wrong.
Writing is atomic (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import xarray as xr

import tdt
from tdt import integrity
from tdt.errors import InputError
from tdt.pbpk import reduced_linear
from tdt.twin._assimilate import DriftModel, GaussianPosterior
from tdt.twin._audit import AuditLog
from tdt.twin._pbpk_twin_file import pbpk_state, rebuild_pbpk
from tdt.twin._qa import QAReport
from tdt.twin._record import CycleData, PatientRecord
from tdt.twin._response import DoseMatrix

FORMAT = "tdt-twin"
#: newest format this tdt reads. 2: per-cycle posteriors (filtered_*); 3: keyed MAC over the
#: header; 4: PBPK twins (state "kind": "pbpk")
FORMAT_VERSION = 4
LINEAR_VERSION = 3  # linear twins need nothing of format 4: older tdt versions still read them
PBPK_SINCE = 4
SIGNED_SINCE = 3
MEMBERS = ("state.json", "arrays.nc", "audit.jsonl")


def _arrays_dataset(twin):

    names = list(twin.posterior.names)
    draws = np.exp(twin.posterior.log_draws(twin._z))
    delivered_dose, delivered_bed = twin.delivered()
    p = len(names)
    filtered_mean = np.array([f.mean for f in twin.filtered]).reshape(-1, p)
    filtered_cov = np.array([f.cov for f in twin.filtered]).reshape(-1, p, p)
    return xr.Dataset(
        {
            "filtered_mean_log": (("cycle", "parameter"), filtered_mean),
            "filtered_cov_log": (("cycle", "parameter", "parameter_2"), filtered_cov),
            "prior_mean_log": (("parameter",), twin.prior.mean),
            "prior_cov_log": (("parameter", "parameter_2"), twin.prior.cov),
            "posterior_mean_log": (("parameter",), twin.posterior.mean),
            "posterior_cov_log": (("parameter", "parameter_2"), twin.posterior.cov),
            "standard_normals": (("draw", "parameter"), twin._z),
            "parameter_draws": (("draw", "parameter"), draws),
            "delivered_dose_gy": (("draw", "target"), delivered_dose),
            "delivered_bed_gy": (("draw", "target"), delivered_bed),
            "dose_matrix_gy_per_mbq_h": (("target", "source"), twin.matrix.values),
        },
        coords={"parameter": names, "parameter_2": names, "draw": np.arange(twin.n_draws),
                "target": list(twin.matrix.targets), "source": list(twin.matrix.sources)},
        attrs={"units": "log of 1/h (rate constants); Gy; Gy/(MBq h)"},
    )


def _signed_part(header: dict) -> bytes:
    body = {k: v for k, v in header.items() if k != "integrity"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def save_twin(twin, path) -> str:
    """Write ``twin`` to ``path`` (zip; see module docstring); returns the header's MAC."""
    if twin.is_pbpk:
        state, arrays = pbpk_state(twin)
        members = {"state.json": json.dumps(state, sort_keys=True, default=_default).encode(),
                   "arrays.nc": arrays, "audit.jsonl": twin.audit.to_jsonl().encode()}
        return write_twin_file(path, members, twin.audit.head, PBPK_SINCE)
    return write_twin_file(path, _linear_members(twin), twin.audit.head, LINEAR_VERSION)


def _linear_members(twin) -> dict[str, bytes]:
    model = twin.model
    state = {
        "record": twin.record.to_dict(),
        "model": {"name": twin.model_name, "organs": list(model.organs),
                  "nuclide": getattr(model, "nuclide", twin.record.nuclide),
                  "dataset": getattr(model, "dataset", None)},
        "settings": {"n_draws": twin.n_draws, "total_cycles": twin.total_cycles,
                     "drift": twin.drift.to_dict(), "calibration_sd": twin.calibration_sd,
                     "dosimetry": twin.dosimetry, "seed": twin.seed, "engine": twin.engine,
                     "nuts_options": twin.nuts_options},
        "dose_matrix_method": twin.matrix.method,
        "posterior": {"method": twin.posterior.method, "diagnostics": twin.posterior.diagnostics},
        "prior": {"method": twin.prior.method},
        "filtered": [{"method": f.method, "diagnostics": f.diagnostics} for f in twin.filtered],
        "cycles": [c.to_dict() for c in twin.cycles],
        "qa_reports": [r.to_dict() for r in twin.qa_reports],
    }
    with tempfile.TemporaryDirectory() as tmp:
        nc = Path(tmp) / "arrays.nc"
        _arrays_dataset(twin).to_netcdf(nc, engine="h5netcdf")
        members = {
            "state.json": json.dumps(state, sort_keys=True, default=_default).encode(),
            "arrays.nc": nc.read_bytes(),
            "audit.jsonl": twin.audit.to_jsonl().encode(),
        }
    return members


def write_twin_file(path, members: dict[str, bytes], audit_head, version: int) -> str:
    """The signed envelope (header with the members' sha256 and the keyed MAC), written
    atomically; returns the header's MAC."""
    path = Path(path)
    header = {"format": FORMAT, "format_version": int(version), "tdt_version": tdt.__version__,
              "saved_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
              "members": {k: hashlib.sha256(v).hexdigest() for k, v in members.items()},
              "audit_head": audit_head}
    key = integrity.installation_key()
    header["integrity"] = {"algorithm": integrity.ALGORITHM, "key_id": integrity.key_id(key),
                           "mac": integrity.mac(_signed_part(header), key)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("header.json", json.dumps(header, indent=2, sort_keys=True))
            for name, data in members.items():
                zf.writestr(name, data)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return header["integrity"]["mac"]


def _default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _read_members(path: Path, allow_unsigned: bool = False) -> tuple[dict, dict[str, bytes]]:
    if not path.is_file():
        raise InputError(f"path: no twin file at {str(path)!r}")
    try:
        with zipfile.ZipFile(path) as zf:
            header = json.loads(zf.read("header.json"))
            data = {name: zf.read(name) for name in zf.namelist() if name != "header.json"}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError, zipfile.LargeZipFile) as exc:
        raise InputError(f"{path.name}: not a readable tdt twin file (corrupted?): {exc}") from None
    except Exception as exc:  # zlib errors, CRC failures
        raise InputError(f"{path.name}: corrupted twin file ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path.name}: header.json is {type(header).__name__}; expected an "
                         "object")
    if header.get("format") != FORMAT:
        raise InputError(f"{path.name}: format {header.get('format')!r}; expected {FORMAT!r}")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(
            f"{path.name}: format_version {version!r} is newer than this tdt reads "
            f"({FORMAT_VERSION}); upgrade tdt to load it")
    if version >= SIGNED_SINCE:
        seal = header.get("integrity")
        if not isinstance(seal, dict):
            raise InputError(f"{path.name}: header.json has no integrity record (edited file)")
        integrity.verify(_signed_part(header), seal.get("mac"), path.name, seal.get("key_id"))
    elif not allow_unsigned:
        raise InputError(
            f"{path.name}: format_version {version} carries no keyed integrity (written before "
            "tdt signed twins), so edits cannot be detected; load it with "
            "allow_unsigned=True only if you trust where it came from")
    else:
        warnings.warn(f"{path.name}: unsigned twin file (format_version {version}) loaded "
                      "without an integrity check", UserWarning, stacklevel=3)
    members = header.get("members")
    if not isinstance(members, dict) or any(m not in members for m in MEMBERS):
        raise InputError(f"{path.name}: header.json lists members {members!r}; expected "
                         f"{', '.join(MEMBERS)}")
    for name, digest in members.items():
        if name not in data:
            raise InputError(f"{path.name}: member {name!r} is missing (corrupted file)")
        if hashlib.sha256(data[name]).hexdigest() != digest:
            raise InputError(f"{path.name}: member {name!r} does not match its sha256 in the "
                             "header (corrupted or edited file)")
    return header, data


def load_twin(path, twin_class, allow_unsigned: bool = False):
    """Read a twin written by :func:`save_twin` (see module docstring for the checks).

    ``twin_class``: the class to rebuild (:class:`tdt.twin.Twin`, passed by ``Twin.load``), so
    that this file format module does not import the twin module that uses it (no cycle).
    """
    path = Path(path)
    header, data = _read_members(path, allow_unsigned)
    try:
        twin = _rebuild(header, data, twin_class,
                        legacy=header["format_version"] < SIGNED_SINCE)
    except InputError as exc:
        raise InputError(f"{path.name}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OSError) as exc:
        raise InputError(f"{path.name}: malformed content ({type(exc).__name__}: {exc}); "
                         "expected a twin written by Twin.save") from None
    if header["format_version"] >= SIGNED_SINCE and twin.audit.head != header.get("audit_head"):
        raise InputError(f"{path.name}: the audit log's head does not match the signed header")
    return twin


def _rebuild(header: dict, data: dict[str, bytes], twin_class, legacy: bool):
    """The twin from verified members (errors are turned into InputError by load_twin)."""

    state = json.loads(data["state.json"])
    audit = AuditLog(entries=[json.loads(line) for line in
                              data["audit.jsonl"].decode().splitlines() if line.strip()],
                     legacy=legacy)
    if isinstance(state, dict) and state.get("kind") == "pbpk":
        if header["format_version"] < PBPK_SINCE:
            raise InputError(f"format_version {header['format_version']!r} with a PBPK twin "
                             f"state; PBPK twins are written as format >= {PBPK_SINCE} "
                             "(edited or wrong-version file)")
        return rebuild_pbpk(state, data["arrays.nc"], twin_class, audit)
    with xr.open_dataset(io.BytesIO(data["arrays.nc"]), engine="h5netcdf") as ds:
        arrays = {k: np.asarray(ds[k].values, dtype=float) for k in ds.data_vars}
        names = tuple(str(n) for n in ds["parameter"].values)
        targets = tuple(str(n) for n in ds["target"].values)
        sources = tuple(str(n) for n in ds["source"].values)
    record = PatientRecord.from_dict(state["record"])
    spec = state["model"]
    kwargs = {"dataset": spec["dataset"]} if spec.get("dataset") else {}
    model = reduced_linear(tuple(spec["organs"]), nuclide=spec["nuclide"], **kwargs)
    settings = state["settings"]
    prior = GaussianPosterior(names, arrays["prior_mean_log"], arrays["prior_cov_log"],
                              state["prior"]["method"])
    twin = twin_class(record, model, prior, n_draws=int(settings["n_draws"]),
                total_cycles=int(settings["total_cycles"]),
                drift=DriftModel(**settings["drift"]),
                calibration_sd=float(settings["calibration_sd"]),
                dosimetry=settings["dosimetry"], seed=int(settings["seed"]),
                engine=settings.get("engine", "laplace"),
                nuts_options=settings.get("nuts_options"), _audit=audit)
    twin.model_name = spec["name"]
    twin.posterior = GaussianPosterior(names, arrays["posterior_mean_log"],
                                       arrays["posterior_cov_log"], state["posterior"]["method"],
                                       state["posterior"]["diagnostics"])
    twin._z = arrays["standard_normals"]
    # format 1 files have no per-cycle posteriors: the twin then falls back to the current
    # posterior for past cycles (Twin.past_log_draws)
    if "filtered_mean_log" in arrays and len(state.get("filtered", [])) == len(state["cycles"]):
        twin.filtered = [
            GaussianPosterior(names, arrays["filtered_mean_log"][j], arrays["filtered_cov_log"][j],
                              f["method"], f["diagnostics"])
            for j, f in enumerate(state["filtered"])]
    twin.matrix = DoseMatrix(targets, sources, arrays["dose_matrix_gy_per_mbq_h"],
                             state["dose_matrix_method"])
    twin.targets = targets
    twin.cycles = [CycleData.from_dict(c) for c in state["cycles"]]
    twin.qa_reports = [QAReport.from_dict(r) for r in state["qa_reports"]]
    return twin
