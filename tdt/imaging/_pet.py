"""Quantitative PET: PET Image Storage series → activity concentration at the scan start.

Attributes read (DICOM PS3.3 C.8.9.1 PET Series module, C.8.9.4 PET Image module,
C.8.9.2 PET Isotope module):

- ``Units`` (0054,1001), Type 1: ``BQML`` (Bq/mL), ``CNTS`` or ``GML`` (SUVbw). CNTS needs a factor
  in Bq/mL per count: the ``bqml_per_count`` argument, else the Philips private *Activity
  Concentration Scale Factor* (7053,1009) (creator "Philips PET Private Group"), as in the QIBA/UW
  vendor-neutral SUV pseudo-code. GML is converted back with PatientWeight and the injected
  activity (:func:`_gml_to_bqml`). Anything else → :class:`~tdt.errors.UnitError` naming Units.
- ``DecayCorrection`` (0054,1102), Type 1: ``START`` — every slice is decay-corrected to the
  series reference time; ``ADMIN`` — to the administration time (Radiopharmaceutical Start
  DateTime/Time); ``NONE`` — each slice holds the mean over its own frame
  [AcquisitionDateTime, + ActualFrameDuration (0018,1242)].
- ``DecayFactor`` (0054,1321), per slice: the factor the scanner applied. It is checked, not
  used: for START (ADMIN) it should be exp(λ·(t_k − t_ref)) (exp(λ·(t_k − t_inj))), times the
  within-frame factor λT/(1 − e^{−λT}) on some systems; a mismatch of more than 1 % with both forms
  is a :class:`~tdt.errors.PlausibilityWarning` (wrong reference time or half-life).
- ``RescaleSlope``/``RescaleIntercept`` (0028,1053/1052) per slice (they differ slice to slice on
  most scanners).
- Series reference time t_ref ("scan start"), as the QIBA/UW pseudo-code: SeriesDate +
  SeriesTime (0008,0021/0031) when not later than every slice's acquisition start, else (a
  post-processed series) the earliest AcquisitionDate + AcquisitionTime.
- SUV: RadionuclideTotalDose (0018,1074, Bq), RadiopharmaceuticalStartDateTime (0018,1078) or
  StartTime (0018,1072), RadionuclideHalfLife (0018,1075, s) and PatientWeight (0010,1030, kg):
  SUVbw = C(t_ref) · W / (A_inj · e^{−λ (t_ref − t_inj)}) (QIBA FDG-PET/CT profile, UW
  vendor-neutral pseudo-code; Kinahan & Fletcher, Semin Ultrasound CT MR 2010;31:496).

All decay arithmetic uses the ICRP-107 half-life of :func:`tdt.physics.nuclide` (one home for
decay data); the header RadionuclideHalfLife is checked against it (> 1 % apart → warning).

Output: :class:`PetImage`, an :class:`~tdt.imaging._nm.NmImage` whose ``values`` are activity
concentrations (Bq/mL, ``units="BQML"``) decay-corrected to t_ref (``decay_correction="START"``,
``acquisition_datetime`` = t_ref), so ``load_study`` treats it like a SPECT time point.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from tdt.errors import DicomError, UnitError, warn_implausible
from tdt.imaging._calibration import DECAY_CORRECTIONS
from tdt.imaging._dicom_io import parse_date, parse_datetime, parse_time, read_dataset, required
from tdt.imaging._nm import NmImage
from tdt.imaging._plausibility import check_image_values
from tdt.imaging._radiopharmaceutical import read_radiopharmaceutical
from tdt.imaging._series import stack_slices
from tdt.physics import nuclide as _nuclide
from tdt.units import bq_to_mbq, h_to_seconds, kg_to_g, mbq_to_bq, ms_to_s, per_h_to_per_s

#: Units of PET images tdt converts (PS3.3 C.8.9.1.1.3 defined terms it supports)
PET_UNITS = ("BQML", "CNTS", "GML")
#: private creator and element of the Philips activity-concentration scale factor (Bq/mL/count)
PHILIPS_CREATOR = "Philips PET Private Group"
PHILIPS_BQML_ELEMENT = (0x7053, 0x09)
#: relative tolerance on DecayFactor and RadionuclideHalfLife consistency checks
DECAY_CHECK_RTOL = 0.01
#: plausible adult patient weights (kg); outside, the weight may be in g or lb, or mistyped
WEIGHT_RANGE_KG = (20.0, 300.0)


@dataclass
class PetImage(NmImage):
    """A PET volume as activity concentration (Bq/mL) at the scan start t_ref.

    Extra attributes: ``stored_units`` and ``stored_decay_correction`` (as in the file),
    ``patient_weight_kg`` (None when absent) and ``suv_bw_g_per_mbq``: SUVbw = concentration
    (MBq/mL) × this factor (g/MBq); None without PatientWeight or RadionuclideTotalDose.
    """

    stored_units: str = "BQML"
    stored_decay_correction: str = "START"
    patient_weight_kg: float | None = None
    suv_bw_g_per_mbq: float | None = None

    @property
    def concentration_mbq_per_ml(self) -> np.ndarray:
        """Activity concentration (MBq/mL) at t_ref, ``[k, j, i]``."""
        return bq_to_mbq(self.values)

    @property
    def suv_bw(self) -> np.ndarray | None:
        """Body-weight SUV (g/mL) per voxel, or None when the SUV factor is unknown."""
        if self.suv_bw_g_per_mbq is None:
            return None
        return self.concentration_mbq_per_ml * self.suv_bw_g_per_mbq


def header_extras(ds: Dataset) -> dict:
    """Attributes de-identification removes that quantification needs, read *before* it.

    PatientWeight (0010,1030) is removed by the PS3.15 basic profile and private tags are
    removed too; ``load_study`` calls this on each PET dataset before de-identifying it and passes
    the result to :func:`read_pet`. Only numbers are kept (no identifying text).
    """
    extras: dict = {}
    weight = ds.get("PatientWeight")
    if weight not in (None, ""):
        extras["PatientWeight"] = weight
    try:
        block = ds.private_block(PHILIPS_BQML_ELEMENT[0], PHILIPS_CREATOR)
        element = block[PHILIPS_BQML_ELEMENT[1]]
    except (KeyError, ValueError):
        return extras
    value = element.value
    if isinstance(value, bytes):  # implicit VR files give UN: an FL (4 bytes) or a DS string
        value = (float(np.frombuffer(value[:4], "<f4")[0]) if len(value) == 4
                 else value.decode(errors="replace").strip("\0 "))
    extras["ActivityConcentrationScaleFactor"] = value
    return extras


def _slice_start(ds: Dataset, series_date: _dt.date | None, name: str) -> _dt.datetime | None:
    """Acquisition start of one slice (frame), or None when the slice does not state it."""
    try:
        if ds.get("AcquisitionDateTime"):
            return parse_datetime(ds.AcquisitionDateTime)
        if ds.get("AcquisitionTime"):
            date = parse_date(ds.AcquisitionDate) if ds.get("AcquisitionDate") else series_date
            if date is None:
                raise DicomError("no AcquisitionDate or SeriesDate for the time")
            return _dt.datetime.combine(date, parse_time(ds.AcquisitionTime))
    except DicomError as exc:
        raise DicomError(f"{name}: AcquisitionDate/AcquisitionTime (0008,0022/0032): {exc}"
                         ) from None
    return None


def _series_reference(first: Dataset, starts: list[_dt.datetime | None],
                      source: str) -> _dt.datetime:
    """t_ref: SeriesDate+SeriesTime unless later than the earliest slice start (QIBA/UW)."""
    series = _series_datetime(first, source)
    known = [s for s in starts if s is not None]
    earliest = min(known) if known else None
    if series is not None and (earliest is None or series <= earliest):
        return series
    if earliest is None:
        raise DicomError(f"{source}: missing required tag SeriesTime (0008,0031) and no "
                         "AcquisitionTime (0008,0032); expected the scan start time")
    return earliest


def _series_datetime(first: Dataset, source: str) -> _dt.datetime | None:
    date, time = first.get("SeriesDate"), first.get("SeriesTime")
    if not (date and time):
        return None
    try:
        return _dt.datetime.combine(parse_date(date), parse_time(time))
    except DicomError as exc:
        raise DicomError(f"{source}: SeriesDate/SeriesTime (0008,0021/0031): {exc}") from None


def _same_everywhere(items: list[tuple[Path, Dataset]], keyword: str, source: str) -> None:
    values = {str(ds.get(keyword, "")).strip().upper() for _, ds in items}
    if len(values) > 1:
        raise DicomError(f"{source}: {keyword} differs between the slices ({sorted(values)}); "
                         "expected one value per series")


def _counts_factor(bqml_per_count: float | None, extras: dict, source: str) -> float:
    value, origin = bqml_per_count, "bqml_per_count"
    if value is None and extras.get("ActivityConcentrationScaleFactor") not in (None, ""):
        value = extras["ActivityConcentrationScaleFactor"]
        origin = "ActivityConcentrationScaleFactor (7053,1009)"
    if value is None:
        raise UnitError(
            f"{source}: Units (0054,1001) is CNTS (counts); a calibration factor is required to "
            "convert counts to Bq/mL: pass bqml_per_count (Bq/mL per count) or provide the "
            "Philips private ActivityConcentrationScaleFactor (7053,1009)")
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise UnitError(f"{source}: {origin} {value!r} is not a number; expected Bq/mL per "
                        "count > 0") from None
    if not (math.isfinite(factor) and factor > 0):
        raise UnitError(f"{source}: {origin} {factor!r}; expected a finite factor > 0 "
                        "(Bq/mL per count)")
    return factor


def _gml_to_bqml(state: str, weight_kg: float | None, injected_mbq: float | None,
                 decay_exponent: float, source: str) -> float:
    """Bq/mL per SUVbw unit (g/mL) of an image stored in Units GML, in its stored decay state.

    SUVbw = C·W/D with D the injected activity decayed to the image's decay reference: t_ref for
    START (D = A_inj·e^{−λ(t_ref−t_inj)}, ``decay_exponent`` = λ(t_ref−t_inj)), the injection
    for ADMIN (D = A_inj). NONE has no single reference and is refused.
    """
    if weight_kg is None or not injected_mbq:
        raise UnitError(f"{source}: Units (0054,1001) is GML (SUVbw); PatientWeight (0010,1030) "
                        "and RadionuclideTotalDose (0018,1074) are required to convert it to Bq/mL")
    if state == "NONE":
        raise UnitError(f"{source}: Units (0054,1001) GML with DecayCorrection (0054,1102) NONE; "
                        "expected START or ADMIN (the SUV's dose reference time)")
    dose_bq = mbq_to_bq(injected_mbq) * (math.exp(-decay_exponent) if state == "START" else 1.0)
    return dose_bq / kg_to_g(weight_kg)


def _patient_weight_kg(extras: dict, source: str) -> float | None:
    raw = extras.get("PatientWeight")
    if raw in (None, ""):
        return None
    try:
        weight = float(raw)
    except (TypeError, ValueError):
        raise DicomError(f"{source}: PatientWeight (0010,1030) {raw!r} is not a number; "
                         "expected the weight in kg") from None
    if not (math.isfinite(weight) and weight > 0):
        raise DicomError(f"{source}: PatientWeight (0010,1030) {weight:g} kg; expected a "
                         "weight > 0 kg")
    lo, hi = WEIGHT_RANGE_KG
    if not lo <= weight <= hi:
        warn_implausible(f"{source}: PatientWeight (0010,1030)", f"{weight:g} kg",
                         f"{lo:g}-{hi:g} kg for an adult (a weight in g or lb?)")
    return weight


def _check_half_life(first: Dataset, nuclide: str, source: str) -> None:
    seq = first.get("RadiopharmaceuticalInformationSequence")
    raw = seq[0].get("RadionuclideHalfLife") if seq else None
    if raw in (None, ""):
        return
    icrp_s = h_to_seconds(_nuclide(nuclide).half_life_h)
    try:
        header_s = float(raw)
    except (TypeError, ValueError):
        raise DicomError(f"{source}: RadionuclideHalfLife (0018,1075) {raw!r}; expected "
                         "seconds") from None
    if not abs(header_s - icrp_s) <= DECAY_CHECK_RTOL * icrp_s:
        warn_implausible(f"{source}: RadionuclideHalfLife (0018,1075)", f"{header_s:g} s",
                         f"the ICRP-107 half-life of {nuclide}, {icrp_s:g} s (wrong nuclide "
                         "code, or the half-life in another unit?)")


def _decay_factor_mismatch(ds: Dataset, expected: float, lam_s: float,
                           duration_s: float | None, name: str) -> str | None:
    """A description of a DecayFactor (0054,1321) inconsistent with the timing, else None."""
    raw = ds.get("DecayFactor")
    if raw in (None, ""):
        return None
    try:
        stated = float(raw)
    except (TypeError, ValueError):
        return f"{name}: {raw!r} (not a number)"
    lt = lam_s * (duration_s or 0.0)
    within = lt / -math.expm1(-lt) if lt > 0 else 1.0
    candidates = (expected, expected * within)
    if any(abs(stated - c) <= DECAY_CHECK_RTOL * c for c in candidates):
        return None
    return (f"{name}: {stated:.6g}, expected {expected:.6g} (or {expected * within:.6g} with the "
            "within-frame factor)")


def read_pet(
    paths: list[Path] | Path,
    datasets: list[Dataset] | None = None,
    *,
    bqml_per_count: float | None = None,
    extras: dict | None = None,
) -> PetImage:
    """Read one PET Image Storage series (one file per slice) as Bq/mL at the scan start.

    Parameters
    ----------
    paths, datasets: the files of one series (datasets read from ``paths`` when not given).
    bqml_per_count: calibration for ``Units`` CNTS (Bq/mL per count); default the Philips
        private factor (7053,1009) when present.
    extras: :func:`header_extras` of the original (not de-identified) first dataset; default
        read from ``datasets[0]`` itself.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    datasets = datasets or [read_dataset(p) for p in paths]
    items = list(zip(paths, datasets, strict=True))
    source = (f"PET series of {len(items)} files ({paths[0].name}, ...)" if len(items) > 1
              else paths[0].name)
    first = datasets[0]
    extras = header_extras(first) if extras is None else extras
    units, state = _check_series_header(first, items, source)

    values, geometry, order = stack_slices(items, source)
    by_path = dict(items)
    ordered = [by_path[p] for p in order]
    slopes = [float(ds.get("RescaleSlope", 1.0) or 1.0) for ds in ordered]
    check_image_values(values, units, min(slopes), source)

    # times: slice starts, series reference t_ref, injection
    series = _series_datetime(first, source)
    starts = [_slice_start(ds, series.date() if series else None, p.name)
              for p, ds in zip(order, ordered, strict=True)]
    reference = _series_reference(first, starts, source)
    starts = [reference if s is None else s for s in starts]
    info = read_radiopharmaceutical(first, source, reference)
    nuc = info["nuclide"]
    _check_half_life(first, nuc, source)
    lam_s = per_h_to_per_s(_nuclide(nuc).decay_constant_per_h)
    injection = info["injection_datetime"]
    if reference < injection:
        raise DicomError(f"{source}: scan start (SeriesDate/SeriesTime) {reference} is before "
                         f"the injection (RadiopharmaceuticalStartDateTime (0018,1078)) "
                         f"{injection}; expected a scan after the administration")
    ref_since_inj = (reference - injection).total_seconds()
    durations = []
    for ds in ordered:
        raw = ds.get("ActualFrameDuration")  # ms
        durations.append(None if raw in (None, "") else ms_to_s(float(raw)))

    weight = _patient_weight_kg(extras, source)
    injected = info["injected_activity_mbq"]
    if units == "CNTS":
        values = values * _counts_factor(bqml_per_count, extras, source)
    elif units == "GML":
        values = values * _gml_to_bqml(state, weight, injected, lam_s * ref_since_inj, source)
    since_ref = np.array([(s - reference).total_seconds() for s in starts])
    since_inj = np.array([(s - injection).total_seconds() for s in starts])
    _decay_correct_to_reference(values, ordered, order, state=state, lam_s=lam_s,
                                since_ref=since_ref, since_inj=since_inj,
                                ref_since_inj=ref_since_inj, durations=durations,
                                source=source)
    suv = None
    if weight is not None and injected:
        decayed = injected * math.exp(-lam_s * ref_since_inj)
        suv = kg_to_g(weight) / decayed
    ends = [s + (d or 0.0) for s, d in zip(since_ref, durations, strict=True)]
    return PetImage(
        values=values, geometry=geometry, units="BQML", decay_correction="START",
        acquisition_datetime=reference, duration_s=float(max(ends)) if ends else None,
        nuclide=nuc, injection_datetime=injection, injected_activity_mbq=injected,
        series_instance_uid=str(first.get("SeriesInstanceUID", "")), files=list(order),
        stored_units=units, stored_decay_correction=state, patient_weight_kg=weight,
        suv_bw_g_per_mbq=suv,
    )


def _check_series_header(first: Dataset, items: list, source: str) -> tuple[str, str]:
    """Check the series-level PET header; returns ``(Units, DecayCorrection)`` upper-cased."""
    if int(first.get("NumberOfFrames", 1) or 1) > 1:
        raise DicomError(f"{source}: NumberOfFrames (0028,0008) {first.NumberOfFrames}; tdt "
                         "reads PET Image Storage as one slice per file")
    series_type = [str(v).strip().upper() for v in (first.get("SeriesType") or [])]
    if series_type and series_type[0] in ("DYNAMIC", "GATED"):
        raise DicomError(f"{source}: SeriesType (0054,1000) {series_type[0]!r}; tdt reads STATIC "
                         "or WHOLE BODY PET series (one volume per series)")
    units = str(required(first, "Units", source)).strip().upper()
    state = str(required(first, "DecayCorrection", source)).strip().upper()
    for keyword in ("Units", "DecayCorrection", "SeriesInstanceUID"):
        _same_everywhere(items, keyword, source)
    if units not in PET_UNITS:
        raise UnitError(f"{source}: Units (0054,1001) {units!r} is not supported for PET; "
                        f"expected one of {', '.join(PET_UNITS)}")
    if state not in DECAY_CORRECTIONS:
        raise DicomError(f"{source}: DecayCorrection (0054,1102) {state!r}; expected one of "
                         f"{', '.join(DECAY_CORRECTIONS)}")
    raw_corrected = first.get("CorrectedImage") or []
    if isinstance(raw_corrected, str):  # one value: pydicom gives the string itself
        raw_corrected = [raw_corrected]
    corrected = {str(v).strip().upper() for v in raw_corrected}
    if "ATTN" not in corrected:
        warn_implausible(f"{source}: CorrectedImage (0028,0051)", sorted(corrected),
                         "ATTN (PET without attenuation correction is not quantitative)")
    if state != "NONE" and "DECY" not in corrected:
        warn_implausible(f"{source}: CorrectedImage (0028,0051)", sorted(corrected),
                         f"DECY, as DecayCorrection (0054,1102) is {state}")
    return units, state


def _decay_correct_to_reference(values: np.ndarray, ordered: list[Dataset], order: list[Path],
                                *, state: str, lam_s: float, since_ref, since_inj,
                                ref_since_inj: float, durations: list, source: str) -> None:
    """Bring every slice (in place) to the activity at the series reference time t_ref and
    check each DecayFactor (0054,1321) against the factor the timing implies."""
    mismatches = []
    for k, (ds, path) in enumerate(zip(ordered, order, strict=True)):
        if state == "START":
            expected = math.exp(lam_s * since_ref[k])
        elif state == "ADMIN":
            expected = math.exp(lam_s * since_inj[k])
            values[k] *= math.exp(-lam_s * ref_since_inj)
        else:  # NONE: frame mean → activity at the frame start → at t_ref
            if durations[k] is None:
                raise DicomError(f"{path.name}: missing required tag ActualFrameDuration "
                                 "(0018,1242); needed to decay-correct an image with "
                                 "DecayCorrection NONE")
            lt = lam_s * durations[k]
            within = lt / -math.expm1(-lt) if lt > 0 else 1.0
            values[k] *= within * math.exp(lam_s * since_ref[k])
            expected = 1.0
        mismatch = _decay_factor_mismatch(ds, expected, lam_s, durations[k], path.name)
        if mismatch:
            mismatches.append(mismatch)
    if mismatches:  # one warning per series, not one per slice
        warn_implausible(f"{source}: DecayFactor (0054,1321)",
                         f"{len(mismatches)} of {len(ordered)} slices off, e.g. {mismatches[0]}",
                         "the factor implied by the slice time, the reference time "
                         f"({state}) and the half-life, within {DECAY_CHECK_RTOL:.0%}")
