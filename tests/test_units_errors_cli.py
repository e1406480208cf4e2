"""Units, the error hierarchy and the CLI's error contract."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tdt
from tdt import units
from tdt.errors import InputError, TdtError, UnitError


def test_svalue_conversion_is_3_6():
    # 1 mGy/(MBq s) x 3600 s/h / 1000 mGy/Gy = 3.6 Gy/(MBq h)  (DESIGN.md)
    assert units.svalue_mgy_per_mbq_s_to_gy_per_mbq_h(1.0) == pytest.approx(3.6)
    # kidney self-S: 7.76e-5 mGy/(MBq s) = 2.794e-4 Gy/(MBq h)  (issue text / OLINDA table)
    assert units.svalue_mgy_per_mbq_s_to_gy_per_mbq_h(7.76e-5) == pytest.approx(2.794e-4, rel=1e-3)


def test_time_units():
    assert units.time_to_h(90, "min") == 1.5
    assert units.time_to_h(1, "d") == 24
    assert units.per_min_to_per_h(0.001) == pytest.approx(0.06)
    with pytest.raises(UnitError, match="fortnight"):
        units.time_to_h(1, "fortnight")


def test_energy_to_dose_constant():
    # 1 MeV per decay, 1 MBq for 1 h into 1 g: 1.602e-13 J x 3.6e9 decays / 1e-3 kg = 0.5768 Gy
    assert units.mev_per_decay_to_gy_g_per_mbq_h(1.0) == pytest.approx(0.5768, rel=1e-3)


def test_activity_units():
    assert units.gbq_to_mbq(7.4) == pytest.approx(7400)
    assert units.mci_to_mbq(200) == pytest.approx(7400)


def test_hierarchy():
    assert issubclass(InputError, TdtError)
    assert issubclass(UnitError, InputError)
    assert issubclass(tdt.CatalogError, TdtError)
    assert issubclass(tdt.DicomError, TdtError)


def _tdt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tdt.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_version_and_help():
    out = _tdt("--version")
    assert out.returncode == 0 and tdt.__version__ in out.stdout
    out = _tdt("--help")
    assert out.returncode == 0 and "nuclide" in out.stdout


def test_cli_user_error_is_one_line_exit_2():
    out = _tdt("nuclide", "Lu-17")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "Traceback" not in out.stderr and "Lu-177" in out.stderr


def test_cli_nuclide():
    out = _tdt("nuclide", "177Lu")
    assert out.returncode == 0
    assert "159.5" in out.stdout and "147.9" in out.stdout
