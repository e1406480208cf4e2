"""Content identity of generated datasets: what the data *are*, not the bytes a writer chose.

A generator entry (e.g. the phantom patient) is identified by :func:`content_sha256` of its
directory, not by the sha256 of its file bytes. Bytes change with things that do not change the
data: a DICOM writer's padding or value formatting, the implementation version string in the
file meta, how a float is printed in JSON. The identity is the sha256 of a canonical text made
from the content:

- DICOM files (``*.dcm``): every data element outside the file meta (group 0002) and the group
  lengths, as ``tag VR value`` with numbers normalised (``DS``/``IS``/binary numbers → float
  printed with 8 significant digits), text stripped of padding, sequences item by item, and
  the pixel data as the decoded array (dtype, shape, bytes). ``SoftwareVersions`` and the
  instance-creation date and time are left out (they name the writer, not the data).
- JSON files: the parsed value, keys sorted, floats printed with 8 significant digits.
- any other file: its bytes.

A change of one voxel or one tag value changes the identity; rebuilding the same content with
another patch release of pydicom or numpy, or on another CPU, does not. 8 significant digits
keep every value a generator means while dropping float noise: the phantom's ground truth differs
by up to 7e-13 relative between OpenBLAS kernels (Haswell vs SkylakeX: measured on the same
machine with ``OPENBLAS_CORETYPE``; XLA/NumPy SIMD levels alike), which 12 digits did not absorb
(version 1 of the identity: the recorded phantom sha256 held only on AVX-512 OpenBLAS kernels).
A value within ~1e-12 of a rounding boundary at 8 digits could still flip (probability ~1e-5 per
value).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

#: Tags that describe the writing software or the moment of writing, not the data.
_WRITER_TAGS = {
    0x00181020,  # SoftwareVersions
    0x00080012,  # InstanceCreationDate
    0x00080013,  # InstanceCreationTime
}
_NUMBER_VRS = {"DS", "IS", "FL", "FD", "US", "SS", "UL", "SL", "UV", "SV"}
_SIGNIFICANT_DIGITS = 8
IDENTITY_VERSION = "tdt-content-identity-2"


def _number(value: float) -> str:
    return format(float(value), f".{_SIGNIFICANT_DIGITS}g")


def _dicom_value(element) -> str:
    # pydicom is heavy; only DICOM content needs it
    from pydicom.multival import MultiValue

    value = element.value
    if value is None:
        return ""
    items = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
    if element.VR in _NUMBER_VRS and not isinstance(value, bytes):
        return "\\".join(_number(v) if str(v).strip() else "" for v in items)
    if isinstance(value, bytes):
        return value.hex()
    return "\\".join(str(v).strip(" \x00") for v in items)


def _dicom_lines(dataset, digest, prefix: str = "") -> None:
    for element in dataset:
        tag = int(element.tag)
        if (tag >> 16) == 0x0002 or (tag & 0xFFFF) == 0 or tag in _WRITER_TAGS:
            continue
        if element.VR == "SQ":
            digest.update(f"{prefix}{tag:08X} SQ {len(element.value)}\n".encode())
            for index, item in enumerate(element.value):
                _dicom_lines(item, digest, prefix=f"{prefix}{tag:08X}[{index}].")
            continue
        if tag == 0x7FE00010:  # PixelData: the decoded array, not its encoding
            pixels = dataset.pixel_array
            digest.update(f"{prefix}7FE00010 {pixels.dtype.str} {pixels.shape}\n".encode())
            digest.update(pixels.astype(pixels.dtype.newbyteorder("<")).tobytes())
            digest.update(b"\n")
            continue
        digest.update(f"{prefix}{tag:08X} {element.VR} {_dicom_value(element)}\n".encode())


def _json_canonical(value):
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dict):
        return {str(k): _json_canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_canonical(v) for v in value]
    return value


def file_content_sha256(path: Path | str) -> str:
    """sha256 of one file's content (DICOM and JSON canonicalised; other files: bytes)."""
    path = Path(path)
    digest = hashlib.sha256()
    suffix = path.suffix.lower()
    if suffix == ".dcm":
        # pydicom is heavy; only DICOM content needs it
        import pydicom

        _dicom_lines(pydicom.dcmread(path), digest)
    elif suffix == ".json":
        canonical = _json_canonical(json.loads(path.read_text()))
        digest.update(json.dumps(canonical, sort_keys=True, ensure_ascii=True).encode())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def content_files(directory: Path | str) -> dict[str, str]:
    """``{relative posix path: content sha256}`` of every regular file under ``directory``."""
    root = Path(directory)
    return {
        path.relative_to(root).as_posix(): file_content_sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def content_sha256(directory: Path | str) -> str:
    """Content identity of a directory: sha256 of ``"<path>\\t<content sha256>\\n"`` lines.

    Sorted by relative path, prefixed by :data:`IDENTITY_VERSION` so that a future change of
    the canonical form cannot be mistaken for a change of the data.
    """
    digest = hashlib.sha256(f"{IDENTITY_VERSION}\n".encode())
    for relative, file_hash in sorted(content_files(directory).items()):
        digest.update(f"{relative}\t{file_hash}\n".encode())
    return digest.hexdigest()
