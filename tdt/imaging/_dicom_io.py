"""Low-level DICOM helpers shared by the readers and writers (pydicom 3).

- :func:`read_dataset`: ``dcmread(force=False)``; a truncated or non-DICOM file becomes a
  :class:`~tdt.errors.DicomError` naming the file (never a pydicom traceback for user input).
- :func:`required`: a required attribute, or a ``DicomError`` naming keyword and tag.
- :func:`deterministic_uid`: UIDs derived from a seed and a name (``pydicom.uid.generate_uid`` with
  ``entropy_srcs``) so that a phantom written twice with the same seed is byte-identical.
- :func:`parse_datetime`: DICOM DA/TM/DT → naive :class:`datetime.datetime`.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tdt.errors import DicomError

#: SOP Class UIDs (DICOM PS3.4 Annex B)
NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"

SOP_CLASS_NAMES = {
    NM_IMAGE_STORAGE: "NM", CT_IMAGE_STORAGE: "CT", PET_IMAGE_STORAGE: "PT",
    RT_STRUCTURE_SET_STORAGE: "RTSTRUCT", RT_DOSE_STORAGE: "RTDOSE",
    SEGMENTATION_STORAGE: "SEG",
}

#: pydicom's registered UID root (used for tdt-generated UIDs)
UID_PREFIX = pydicom.uid.PYDICOM_ROOT_UID


def read_dataset(path: str | Path, stop_before_pixels: bool = False) -> Dataset:
    """Read one DICOM file; raise :class:`DicomError` naming the file if it cannot be used."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path, force=False, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise DicomError(f"{path.name}: not a DICOM file (no DICM preamble): {exc}") from None
    except FileNotFoundError:
        raise DicomError(f"{path}: file not found") from None
    except (EOFError, ValueError, TypeError, KeyError, OSError, AttributeError) as exc:
        raise DicomError(f"{path.name}: unreadable or truncated DICOM file ({exc})") from None
    if "SOPClassUID" not in ds:
        raise DicomError(f"{path.name}: missing required tag SOPClassUID (0008,0016)")
    return ds


def pixel_array(ds: Dataset, name: str) -> np.ndarray:
    """``ds.pixel_array`` with errors (truncated pixel data, missing tags) as DicomError."""
    try:
        return ds.pixel_array
    except AttributeError as exc:
        raise DicomError(f"{name}: missing required pixel attribute ({exc})") from None
    except (ValueError, TypeError, RuntimeError, NotImplementedError, KeyError) as exc:
        raise DicomError(f"{name}: cannot decode PixelData (7FE0,0010): {exc}") from None


def required(ds: Dataset, keyword: str, name: str):
    """Value of the attribute ``keyword``; :class:`DicomError` naming it when missing/empty."""
    value = ds.get(keyword)
    if value is None or (value == "" and not isinstance(value, (int, float))):
        tag = pydicom.datadict.tag_for_keyword(keyword)
        tag_text = f" ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else ""
        raise DicomError(f"{name}: missing required tag {keyword}{tag_text}")
    return value


def deterministic_uid(*parts: object) -> str:
    """A valid UID derived only from ``parts`` (SHA-512 of their text, pydicom's algorithm)."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[str(p) for p in parts])


def parse_date(value: str) -> _dt.date:
    """DICOM DA ``YYYYMMDD`` → date (DicomError naming the value if malformed)."""
    try:
        return _dt.datetime.strptime(str(value).strip()[:8], "%Y%m%d").date()
    except ValueError:
        raise DicomError(f"malformed DA (date) value {str(value)!r}; expected YYYYMMDD") from None


def parse_time(value: str) -> _dt.time:
    """DICOM TM ``HHMMSS.FFFFFF`` (also ``HHMM``, ``HH``, legacy ``HH:MM:SS``) → time."""
    text = str(value).strip().replace(":", "")
    try:
        if not text:
            raise ValueError("empty TM")
        main, _, frac = text.partition(".")
        main = main.ljust(6, "0")
        micro = int((frac + "000000")[:6]) if frac else 0
        return _dt.time(int(main[:2]), int(main[2:4]), int(main[4:6]), micro)
    except ValueError:
        raise DicomError(f"malformed TM (time) value {str(value)!r}; expected HHMMSS.FFFFFF"
                         ) from None


def parse_datetime(value: str) -> _dt.datetime:
    """DICOM DT ``YYYYMMDDHHMMSS.FFFFFF&ZZXX`` → naive datetime (a UTC offset is dropped after
    converting to the local time it states; all times of one study share one clock)."""
    text = str(value).strip()
    for sign in "+-":
        if sign in text[8:]:
            text = text[: 8 + text[8:].index(sign)]
    date = parse_date(text[:8])
    time = parse_time(text[8:]) if len(text) > 8 else _dt.time(0)
    return _dt.datetime.combine(date, time)


def format_date(value: _dt.date) -> str:
    """date → DA."""
    return value.strftime("%Y%m%d")


def format_time(value: _dt.datetime | _dt.time) -> str:
    """time → TM with microseconds (``HHMMSS.FFFFFF``) so that round trips are exact."""
    return value.strftime("%H%M%S.%f")


def format_datetime(value: _dt.datetime) -> str:
    """datetime → DT with microseconds."""
    return value.strftime("%Y%m%d%H%M%S.%f")


def new_file_dataset(sop_class_uid: str, sop_instance_uid: str) -> FileDataset:
    """An empty :class:`FileDataset` with file meta (Explicit VR Little Endian) and SOP UIDs."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = deterministic_uid("tdt-implementation-class")
    meta.ImplementationVersionName = "TDT_0_1"
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def save(ds: FileDataset, path: str | Path) -> Path:
    """Write ``ds`` as a DICOM Part 10 file (atomic: temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    ds.save_as(tmp, enforce_file_format=True)
    tmp.replace(path)
    return path


def set_patient_study(ds: Dataset, info: dict) -> None:
    """Copy patient / study / frame-of-reference attributes from a plain dict onto ``ds``."""
    for keyword in (
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
        "PatientWeight", "PatientSize", "StudyInstanceUID", "StudyID", "StudyDate", "StudyTime",
        "AccessionNumber", "ReferringPhysicianName", "FrameOfReferenceUID",
        "PositionReferenceIndicator", "Manufacturer", "InstitutionName", "StudyDescription",
    ):
        if keyword in info:
            setattr(ds, keyword, info[keyword])
