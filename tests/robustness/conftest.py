"""The bad-input corpus: one small phantom patient per session, corrupted copies per case.

Every case asserts either a clean :class:`tdt.errors.TdtError` (no raw exception) or a recorded
:class:`tdt.errors.PlausibilityWarning`; see docs/imaging.md "Input checks".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_phantom(tmp_path_factory):
    """A 3-time-point phantom on a narrow grid (80 × 40 × 40 SPECT voxels, CT 80 × 80 × 80)."""
    from tdt.imaging import make_phantom_patient

    return make_phantom_patient(tmp_path_factory.mktemp("robust") / "p", seed=0,
                                times_h=(4.0, 24.0, 48.0), shape=(80, 40, 40))


@pytest.fixture
def corrupt(small_phantom, tmp_path):
    """``corrupt(parts, edit=None)``: copy ``parts`` of the phantom (``"NM"``, ``"CT"``,
    ``"RTSTRUCT.dcm"``, ``"SEG.dcm"``, ``"calibration.json"``) and apply ``edit(folder)``."""

    def make(parts=("NM", "calibration.json"), edit=None) -> Path:
        out = tmp_path / "case"
        out.mkdir()
        for part in parts:
            source = small_phantom.directory / part
            if source.is_dir():
                shutil.copytree(source, out / part)
            else:
                shutil.copy2(source, out / part)
        if edit is not None:
            edit(out)
        return out

    return make
