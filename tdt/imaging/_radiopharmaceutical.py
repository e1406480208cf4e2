"""Radiopharmaceutical Information Sequence (0054,0016): nuclide, injected activity, times."""

from __future__ import annotations

import datetime as _dt
import math
import re

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tdt.errors import DicomError, warn_implausible
from tdt.imaging._dicom_io import format_datetime, format_time, parse_datetime, parse_time
from tdt.physics import nuclide as _nuclide
from tdt.units import bq_to_mbq, h_to_seconds, mbq_to_bq

_ELEMENTS = {
    "lutetium": "Lu", "terbium": "Tb", "actinium": "Ac", "lead": "Pb", "yttrium": "Y",
    "iodine": "I", "technetium": "Tc", "gallium": "Ga", "fluorine": "F", "radium": "Ra",
    "bismuth": "Bi", "holmium": "Ho", "copper": "Cu", "indium": "In", "astatine": "At",
    "thorium": "Th", "scandium": "Sc", "samarium": "Sm", "strontium": "Sr", "erbium": "Er",
}
_NAMES = {symbol: name.capitalize() for name, symbol in _ELEMENTS.items()}
#: Coding scheme of the codes tdt writes (a local scheme: the meaning carries the nuclide)
CODING_SCHEME = "99TDT"


def nuclide_from_text(text: str) -> str:
    """Canonical nuclide name from DICOM code meanings such as ``^177^Lutetium``, ``Lu-177``."""
    text = str(text).strip()
    m = re.fullmatch(r"\^?(\d{1,3})\^?\s*([A-Za-z]+)", text) or re.fullmatch(
        r"([A-Za-z]+)[\s\-^]*(\d{1,3})", text
    )
    if m:
        a, b = m.groups()
        mass, element = (a, b) if a.isdigit() else (b, a)
        symbol = _ELEMENTS.get(element.lower(), element)
        return _nuclide(f"{symbol}-{mass}").name
    return _nuclide(text).name


def read_radiopharmaceutical(ds: Dataset, name: str, acquisition: _dt.datetime) -> dict:
    """Return ``{"nuclide", "injection_datetime", "injected_activity_mbq", "radiopharmaceutical"}``.

    The injection time is ``RadiopharmaceuticalStartDateTime`` (DT), else
    ``RadiopharmaceuticalStartTime`` on the acquisition date (an injection "after" the acquisition
    time is then taken on the previous day, the usual DICOM ambiguity of TM without a date).
    """
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        raise DicomError(
            f"{name}: missing required tag RadiopharmaceuticalInformationSequence (0054,0016) "
            "(injection time and radionuclide)"
        )
    item = seq[0]
    nuclide = None
    codes = item.get("RadionuclideCodeSequence")
    if codes:
        try:
            nuclide = nuclide_from_text(codes[0].get("CodeMeaning", ""))
        except Exception:  # noqa: BLE001 - fall through to the error below
            nuclide = None
    if nuclide is None and item.get("Radionuclide"):
        nuclide = nuclide_from_text(item.Radionuclide)
    if nuclide is None:
        raise DicomError(
            f"{name}: missing required tag RadionuclideCodeSequence (0054,0300) with a known "
            "radionuclide code meaning (e.g. '^177^Lutetium')"
        )
    try:
        if item.get("RadiopharmaceuticalStartDateTime"):
            injection = parse_datetime(item.RadiopharmaceuticalStartDateTime)
        elif item.get("RadiopharmaceuticalStartTime"):
            injection = _dt.datetime.combine(
                acquisition.date(), parse_time(item.RadiopharmaceuticalStartTime)
            )
    except DicomError as exc:
        raise DicomError(f"{name}: RadiopharmaceuticalStartDateTime (0018,1078): {exc}") from None
    if item.get("RadiopharmaceuticalStartDateTime") or item.get("RadiopharmaceuticalStartTime"):
        if not item.get("RadiopharmaceuticalStartDateTime") and injection > acquisition:
            injection -= _dt.timedelta(days=1)
    else:
        raise DicomError(
            f"{name}: missing required tag RadiopharmaceuticalStartDateTime (0018,1078) "
            "(injection time)"
        )
    try:
        dose_bq = item.get("RadionuclideTotalDose")
        injected = None if dose_bq in (None, "") else bq_to_mbq(float(dose_bq))
    except (ValueError, TypeError, OverflowError):
        raise DicomError(f"{name}: RadionuclideTotalDose (0018,1074) is malformed; expected a "
                         "decimal number of Bq") from None
    if injected is not None and not (math.isfinite(injected) and injected > 0):
        raise DicomError(f"{name}: RadionuclideTotalDose (0018,1074) {dose_bq!r} Bq; expected "
                         "the administered activity > 0 Bq")
    if injected is not None and not 1.0 <= injected <= 1e5:
        warn_implausible(f"{name}: RadionuclideTotalDose (0018,1074)", f"{injected:.4g} MBq",
                         "1 MBq to 100 GBq (the tag is in Bq: a value in MBq reads 1e6x low)")
    return {
        "nuclide": nuclide,
        "injection_datetime": injection,
        "injected_activity_mbq": injected,
        "radiopharmaceutical": str(item.get("Radiopharmaceutical", "")),
    }


def radiopharmaceutical_sequence(
    nuclide: str, injection: _dt.datetime, injected_activity_mbq: float, radiopharmaceutical: str
) -> Sequence:
    """Build the Radiopharmaceutical Information Sequence tdt writes."""
    canonical = _nuclide(nuclide).name
    symbol, mass = canonical.split("-")
    code = Dataset()
    code.CodeValue = canonical
    code.CodingSchemeDesignator = CODING_SCHEME
    code.CodeMeaning = f"^{mass}^{_NAMES.get(symbol, symbol)}"
    item = Dataset()
    item.Radiopharmaceutical = radiopharmaceutical
    item.RadiopharmaceuticalStartDateTime = format_datetime(injection)
    item.RadiopharmaceuticalStartTime = format_time(injection)
    item.RadionuclideTotalDose = f"{mbq_to_bq(injected_activity_mbq):.10g}"
    item.RadionuclideHalfLife = f"{h_to_seconds(_nuclide(canonical).half_life_h):.10g}"
    item.RadionuclideCodeSequence = Sequence([code])
    return Sequence([item])
