"""De-identification on ingest: the DICOM PS3.15 Annex E Basic Application Level Confidentiality
Profile, with the Retain Longitudinal Temporal Information with Modified Dates Option.

The action of every attribute comes from PS3.15 Table E.1-1 (2024b), vendored as the catalog
dataset ``dicom_ps315_basic_profile`` (data_catalog/dicom/ps3.15_annex_e_basic_profile.csv,
621 rows, hash-checked on load). Actions, applied at every depth of nested sequences:

- ``X`` remove; ``Z`` zero-length value (an empty sequence for SQ); ``K`` keep;
- ``D`` a dummy value of the attribute's VR: the patient's name and ID become a pseudonym derived
  from a secret salt (the files of one patient stay linked); a sequence is kept and its items
  are de-identified;
- ``U`` a UID that is not registered by DICOM is remapped with
  ``generate_uid(entropy_srcs=[salt, old])``: the same input UID gives the same output UID for one
  salt, so references between objects stay intact (every non-registered UID, listed or not, is
  remapped);
- ``C`` clean: a retained free text loses every token of the patient's names and identifiers;
- combined actions resolve to the choice that always keeps an instance conformant:
  ``X/Z`` → Z, ``X/D``, ``Z/D``, ``X/Z/D`` → D, ``X/Z/U*`` → U for a UID, and for a reference
  sequence its items are kept with their UIDs remapped.

Retain Longitudinal Temporal Information with Modified Dates (on by default): where the option
column says ``C``, DA and DT values are shifted by one whole number of days (derived from the salt)
and TM values kept, so every interval (injection → acquisitions) is preserved exactly. DA/DT
values of attributes not in the table (e.g. inside the radiopharmaceutical sequence) are shifted
too. Private attributes (odd groups), curves (50xx) and overlays (60xx) are removed.

Beyond the basic profile, the structure names a dosimetry study needs (``ROIName``, which the
profile empties) are *cleaned* (Clean Descriptors Option) instead: kept, minus any name or ID
of the patient. Every other retained free text (LO, SH, ST, LT, UT, UC, PN) is cleaned the same
way, so a label such as "Smith^John kidneys" does not carry the name through.

A malformed DA/DT value is emptied with a :class:`DeidentificationWarning` naming the file and the
tag (never the value); it never aborts a study load. Nothing identifying is logged.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import re
import secrets
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import UID, generate_uid

from tdt.catalog import dataset_path
from tdt.errors import PlausibilityWarning
from tdt.imaging._dicom_io import UID_PREFIX

PROFILE_DATASET = "dicom_ps315_basic_profile"
#: attributes cleaned (C) rather than given their basic-profile action (tdt needs them)
DEFAULT_CLEANED = ("ROIName",)
_TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "UC", "PN"}
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR = {
    "AS": "000Y", "CS": "ANONYMIZED", "DA": "19000101", "DT": "19000101000000.000000",
    "TM": "000000.00", "DS": "0", "IS": "0", "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "UL": 0,
    "US": 0, "UV": 0, "SV": 0, "OB": b"\x00\x00", "UN": b"\x00\x00", "OW": b"\x00\x00",
    "UR": "urn:tdt:anonymized",
}
_MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64}
#: DICOM codes stating what was done (CID 7050 De-identification Method)
_METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)


class DeidentificationWarning(PlausibilityWarning):
    """A value could not be de-identified as the profile says and was emptied instead.

    A :class:`~tdt.errors.PlausibilityWarning` (the input is malformed, the load goes on), so
    ``load_study`` records it in ``Study.warnings`` and notebooks, QA reports and supplements
    show it.
    """

    def __init__(self, where: str, reason: str):
        super().__init__(f"de-identification: {where}", "a malformed value (emptied)",
                         f"a valid DICOM value ({reason})")


@dataclass(frozen=True)
class ProfileRow:
    """One row of PS3.15 Table E.1-1: the basic-profile action and two option columns."""

    tag: str
    keyword: str
    name: str
    basic: str
    modified_dates: str
    clean_descriptors: str


@lru_cache(maxsize=1)
def profile_table() -> dict[int, ProfileRow]:
    """Table E.1-1 by tag (int), read from the hash-checked catalog file.

    The four pattern rows (private attributes, curves 50xx, overlays 60xx) have no single tag
    and are applied by group in :meth:`Deidentifier._visit`.
    """
    path = Path(dataset_path(PROFILE_DATASET))
    table: dict[int, ProfileRow] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            digits = row["tag"].strip("()").replace(",", "")
            if not re.fullmatch(r"[0-9A-Fa-f]{8}", digits):
                continue
            table[int(digits, 16)] = ProfileRow(
                row["tag"], row["keyword"], row["name"], row["basic_profile"],
                row["retain_longitudinal_modified_dates"], row["clean_descriptors"])
    return table


class _ProfileByKeyword(Mapping):
    """keyword → basic-profile action, loaded from the vendored table on first use."""

    def _data(self) -> dict[str, str]:
        return {r.keyword: r.basic for r in profile_table().values() if r.keyword}

    def __getitem__(self, key: str) -> str:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


#: keyword → basic-profile action code (PS3.15 Table E.1-1), e.g. ``PROFILE["PatientName"] == "Z"``
PROFILE: Mapping[str, str] = _ProfileByKeyword()


def _is_registered_uid(value: str) -> bool:
    """True for UIDs defined by the DICOM standard (classes, transfer syntaxes, coding schemes)."""
    uid = UID(value)
    return uid.name != str(uid) or str(uid).startswith("1.2.840.10008.")


def _resolve(action: str, vr: str) -> str:
    """One of X, Z, D, U, K, C for a (possibly combined) table action."""
    if action in ("X/Z",):
        return "Z"
    if action in ("X/D", "Z/D", "X/Z/D"):
        return "D"
    if action == "X/Z/U*":
        return "U" if vr == "UI" else ("D" if vr == "SQ" else "Z")
    return action or "K"


@dataclass
class Deidentifier:
    """Applies the profile with one salt, so that many files of a study map consistently.

    Attributes
    ----------
    salt: secret text; the same salt gives the same UIDs, pseudonyms and date shift. Default:
        a random 128-bit token (not reproducible across runs).
    date_shift_days: whole days added to every date; default derived from the salt, in
        [-3650, -365] (dates move into the past).
    retain_longitudinal: the Retain Longitudinal Temporal Information with Modified Dates
        Option (dates shifted, times kept); ``False`` applies the basic actions to dates too.
    cleaned: keywords kept but cleaned of the patient's names/IDs instead of their basic action.
    uid_map: old → new UIDs seen so far (kept in memory only, never logged or written).
    warnings: ``(file, tag, reason)`` of every value emptied because it was malformed.
    """

    salt: str = field(default_factory=lambda: secrets.token_hex(16))
    date_shift_days: int | None = None
    retain_longitudinal: bool = True
    cleaned: tuple[str, ...] = DEFAULT_CLEANED
    uid_map: dict[str, str] = field(default_factory=dict, repr=False)
    warnings: list[tuple[str, str, str]] = field(default_factory=list, repr=False)

    def __post_init__(self):
        if self.date_shift_days is None:
            digest = hashlib.sha256(("date-shift:" + self.salt).encode()).digest()
            self.date_shift_days = -365 - int.from_bytes(digest[:4], "big") % 3286
        self._identifiers: re.Pattern | None = None
        self._file = "<dataset>"

    # --------------------------------------------------------------- values
    def new_uid(self, old: str) -> str:
        if old not in self.uid_map:
            self.uid_map[old] = generate_uid(prefix=UID_PREFIX, entropy_srcs=[self.salt, old])
        return self.uid_map[old]

    def pseudonym(self, text: str) -> str:
        return "TDT-" + hashlib.sha256((self.salt + "|" + text).encode()).hexdigest()[:12].upper()

    def _shift_da(self, value: str) -> str:
        date = _dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()
        if len(value.strip()) != 8:
            raise ValueError("not YYYYMMDD")
        return (date + _dt.timedelta(days=self.date_shift_days)).strftime("%Y%m%d")

    def _shift_dt(self, value: str) -> str:
        value = value.strip()
        rest = value[8:]
        if not re.fullmatch(r"(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?([+-]\d{4})?", rest):
            raise ValueError("not YYYYMMDDHHMMSS.FFFFFF&ZZXX")
        return self._shift_da(value[:8]) + rest

    def _uid(self, value: str) -> str:
        return value if _is_registered_uid(value) else self.new_uid(value)

    def _clean(self, text: str) -> str:
        if self._identifiers is None or not text:
            return text
        return self._identifiers.sub("XXX", text)

    # --------------------------------------------------------------- elements
    def _map_values(self, element, fn) -> None:
        """Apply ``fn`` to each value of a (possibly multi-valued) string element."""
        value = element.value
        if isinstance(value, (list, tuple, MultiValue)):
            element.value = [fn(str(v)) for v in value if str(v).strip()]
        elif value not in (None, ""):
            element.value = fn(str(value))

    def _shift(self, element) -> None:
        try:
            self._map_values(element, self._shift_da if element.VR == "DA" else self._shift_dt)
        except ValueError:
            element.value = ""
            self._warn(element.tag, f"malformed {element.VR} value could not be date-shifted; "
                       "emptied (value not shown: it may identify the patient)")

    def _dummy(self, element) -> None:
        vr, keyword = element.VR, element.keyword
        if keyword in ("PatientName", "PatientID"):
            element.value = self.pseudonym(str(element.value or ""))
        elif vr == "SQ":
            for item in element.value:
                self._visit(item)
        elif vr == "UI":
            element.value = self.new_uid(str(element.value or "dummy"))
        elif vr in ("DA", "DT") and self.retain_longitudinal and element.value:
            self._shift(element)
        elif vr in _DUMMY_BY_VR:
            element.value = _DUMMY_BY_VR[vr]
        else:  # text VRs (AE, LO, SH, ST, LT, UT, UC, PN)
            element.value = _DUMMY_TEXT[:_MAX_LENGTH.get(vr, 64)]

    def _warn(self, tag, reason: str) -> None:
        where = f"{self._file}: {Tag(tag)}"
        self.warnings.append((self._file, str(Tag(tag)), reason))
        warnings.warn(DeidentificationWarning(where, reason), stacklevel=4)

    def _apply(self, ds: Dataset, tag: int) -> None:
        element = ds[tag]
        vr = element.VR
        row = profile_table().get(tag)
        action = _resolve(row.basic, vr) if row else "K"
        if row and self.retain_longitudinal and row.modified_dates == "C" and vr in ("DA", "DT",
                                                                                    "TM"):
            action = "C-date"
        elif row and element.keyword in self.cleaned:
            action = "C"
        if action == "X":
            del ds[tag]
        elif action == "Z":
            element.value = [] if vr == "SQ" else ("" if vr not in _DUMMY_BY_VR
                                                   or isinstance(_DUMMY_BY_VR[vr], str) else None)
        elif action == "D":
            self._dummy(element)
        elif vr == "SQ":  # K, C or U on a sequence: keep it, de-identify its items
            for item in element.value:
                self._visit(item)
        elif vr == "UI" and element.value:  # U, and every non-registered UID not in the table
            self._map_values(element, self._uid)
        elif vr in ("DA", "DT") and element.value:  # modified dates, or dates not in the table
            self._shift(element)
        elif vr in _TEXT_VRS and element.value:  # C, and every other retained free text
            self._map_values(element, self._clean)

    def _visit(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            if tag.is_private or (tag.group & 0xFF00) in (0x5000, 0x6000):
                del ds[tag]
                continue
            try:
                self._apply(ds, tag)
            except (ValueError, TypeError, KeyError, OverflowError) as exc:
                if tag in ds:
                    del ds[tag]
                self._warn(tag, f"unreadable value removed ({type(exc).__name__})")

    def _collect_identifiers(self, ds: Dataset) -> None:
        """The patient's name parts and IDs, to be cleaned out of retained free text."""
        tokens: set[str] = set()
        for keyword in ("PatientName", "OtherPatientNames", "PatientBirthName",
                        "PatientMotherBirthName", "PatientID", "OtherPatientIDs",
                        "MedicalRecordLocator", "AccessionNumber", "ResponsiblePerson"):
            try:
                value = ds.get(keyword)
            except (ValueError, TypeError):
                continue
            values = value if isinstance(value, (list, tuple, MultiValue)) else [value]
            for v in values:
                tokens.update(t for t in re.split(r"[\^=\s,]+", str(v or "")) if len(t) >= 2)
        if tokens:
            alternatives = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
            self._identifiers = re.compile(rf"(?i)(?<![A-Za-z0-9])(?:{alternatives})"
                                           r"(?![A-Za-z0-9])")
        else:
            self._identifiers = None

    def __call__(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (and its file meta) and return it."""
        self._file = Path(str(getattr(ds, "filename", "") or "<dataset>")).name
        self._collect_identifiers(ds)
        self._visit(ds)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = self._uid(str(meta.MediaStorageSOPInstanceUID))
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = (
            "MODIFIED" if self.retain_longitudinal else "REMOVED")
        ds.DeidentificationMethod = "tdt: PS3.15-2024b Basic; dates shifted; ROIName cleaned"
        codes = []
        for value, meaning in _METHOD_CODES[: 2 if self.retain_longitudinal else 1]:
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
            codes.append(code)
        ds.DeidentificationMethodCodeSequence = codes
        self._identifiers = None
        return ds


def deidentify(ds: Dataset, salt: str | None = None,
               date_shift_days: int | None = None) -> Dataset:
    """De-identify one dataset in place (for many files, use one :class:`Deidentifier`)."""
    tool = Deidentifier(salt=salt) if salt is not None else Deidentifier()
    if date_shift_days is not None:
        tool.date_shift_days = date_shift_days
    return tool(ds)
