"""`tdt dose DICOM_DIR`: the organ-dose report from the phantom's DICOM in one command (#24)."""

from __future__ import annotations

import csv

import pytest
from pipeline_helpers import main_cli

from tdt import catalog


@pytest.fixture(scope="module")
def phantom_dir():
    return catalog.dataset_path("phantom_patient")


def test_dose_command_writes_html_pdf_csv(phantom_dir, tmp_path, capsys):
    code, out, err = main_cli(capsys, "dose", str(phantom_dir), "--runs-dir", str(tmp_path),
                              "--cycles", "4")
    assert code == 0, err
    for stage in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert stage in out  # progress names every stage
    [folder] = list((tmp_path / "dose").iterdir())
    rows = list(csv.DictReader((folder / "organ_doses.csv").open()))
    by_target = {r["target"]: r for r in rows}
    kidneys = by_target["kidneys"]
    # Gy/GBq and 4 cycles follow from the per-cycle dose and the 7,400 MBq in the DICOM
    assert float(kidneys["dose_gy_per_gbq"]) == pytest.approx(
        float(kidneys["dose_gy_per_cycle"]) / 7.4, rel=1e-9)
    assert float(kidneys["dose_gy_4_cycles"]) == pytest.approx(
        4 * float(kidneys["dose_gy_per_cycle"]), rel=1e-9)
    assert 0.2 < float(kidneys["dose_gy_per_gbq"]) < 1.5  # published PSMA-617 range 0.4-0.8
    pdf = (folder / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 2
    html = (folder / "report.html").read_text()
    assert "Gy/GBq" in html and "Effective dose (ICRP 103)" in html
    # de-identified: nothing of the phantom's identity or of the input path in any output
    for path in folder.iterdir():
        text = path.read_bytes()
        assert b"Phantom^Seed0" not in text and str(phantom_dir).encode() not in text


def test_dose_command_bad_folder_is_one_line(tmp_path, capsys):
    code, _, err = main_cli(capsys, "dose", str(tmp_path / "nope"))
    assert code == 2 and len(err.strip().splitlines()) == 1
