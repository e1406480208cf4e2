"""Helpers of the bad-input corpus (tests/robustness)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom

from tdt.errors import PlausibilityWarning, collect_implausible


def edit_dicom(paths, **attributes):
    """Set DICOM ``attributes`` (keyword=value, invalid values allowed) in every file of paths."""
    for path in paths:
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the invalid values we write
            for keyword, value in attributes.items():
                if callable(value):
                    value(ds)
                else:
                    setattr(ds, keyword, value)
            ds.save_as(path)


def nm_files(folder: Path) -> list[Path]:
    return sorted((folder / "NM").glob("*.dcm"))


def recorded(call):
    """Run ``call()`` and return (result, [PlausibilityWarning messages]) without re-emitting."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with collect_implausible(reemit=False) as found:
            result = call()
    assert all(isinstance(w, PlausibilityWarning) for w in found)
    return result, [str(w) for w in found]
