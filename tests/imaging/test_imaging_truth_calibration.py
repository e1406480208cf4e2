"""The coverage study's miscalibration and red-marrow remainder cross-dose (issue 18 follow-up,
benchmarks/bench_truth.py).

Oracles: the drawn calibration errors follow the measurement model's prior (sample log-SD vs
``PatientData.calibration_sd``); an image read through the rewritten ``calibration.json`` is the
factor × the image read through the original (``activity_per_voxel_mbq``, the loader's own
counts → MBq conversion); the remainder cross-dose is the difference of two full MIRD sums
(with and without the remainder source), i.e. the MIRD superposition identity.
"""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_true_calibration_errors_follow_the_model_prior():
    from benchmarks.bench_truth import CALIBRATION_SD, true_calibration_factor
    from tdt.inference import PatientData

    assert CALIBRATION_SD == PatientData.__dataclass_fields__["calibration_sd"].default
    logs = np.log([true_calibration_factor(seed) for seed in range(4000)])
    # SE of a sample SD of 4000 normal draws: SD / sqrt(2 n) ≈ 1.1 % of the SD
    assert np.std(logs) == pytest.approx(CALIBRATION_SD, rel=0.05)
    assert abs(np.mean(logs)) < 4 * CALIBRATION_SD / np.sqrt(4000)
    assert true_calibration_factor(7) == true_calibration_factor(7)
    assert true_calibration_factor(7, sd=0.0) == 1.0


def test_miscalibrated_sidecar_scales_activity_by_the_factor(tmp_path):
    import datetime as dt

    from benchmarks.bench_truth import miscalibrate
    from tdt.imaging import CameraCalibration, activity_per_voxel_mbq

    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"cps_per_mbq": 12.0, "nuclide": "Lu-177", "date": "2024-01-01"}))
    counts = np.array([100.0, 2500.0, 7.0])

    def read():
        spec = json.loads(path.read_text())
        cal = CameraCalibration(cps_per_mbq=spec["cps_per_mbq"],
                                date=dt.date.fromisoformat(spec["date"]))
        return activity_per_voxel_mbq(counts, "CNTS", 1.0, 900.0, cal)

    before = read()
    miscalibrate(path, 1.04)
    np.testing.assert_allclose(read() / before, 1.04, rtol=1e-12)
    assert json.loads(path.read_text())["date"] == "2024-01-01"


def test_remainder_marrow_dose_is_the_missing_mird_term():
    from benchmarks.bench_truth import remainder_marrow_dose_gy
    from tdt.dosimetry import organ_doses

    tia = {"kidneys": 15800.0, "liver": 9000.0, "spleen": 2500.0, "salivary_glands": 3000.0,
           "red_marrow": 1200.0, "urinary_bladder_contents": 800.0}
    masses = {"kidneys": 330.0, "liver": 1700.0, "spleen": 160.0, "salivary_glands": 80.0}
    remainder = 29700.0
    full = organ_doses({**tia, "remainder": remainder}, organ_masses_g=masses)["red_marrow"]
    without = organ_doses(tia, organ_masses_g=masses)["red_marrow"]
    cross = remainder_marrow_dose_gy(remainder, masses, list(tia))
    assert cross == pytest.approx(float(full - without), rel=1e-10)
    assert remainder_marrow_dose_gy(2 * remainder, masses, list(tia)) == pytest.approx(2 * cross)
    # the remainder excludes the segmented organs (red marrow among them): S(RM <- RB) computed
    # without them would over-count, which is why the sources must be passed
    assert remainder_marrow_dose_gy(remainder, masses, []) > 1.5 * cross
