"""Estimate vs ground truth for phantom inputs (``ground_truth.json`` of
:func:`tdt.imaging.make_phantom_patient`): the project's accuracy check (docs/imaging.md,
"Harmonisation / truth").

:func:`load_truth` reads the truth beside a patient folder (None for real patients);
:func:`truth_rows` compares point estimates and credible intervals with it, quantity by
quantity: relative bias ``estimate / truth − 1`` and whether each interval covers the truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tdt.dosimetry import KERNEL_DENSITY_G_PER_ML, is_lesion
from tdt.errors import InputError

#: quantity → key of ground_truth.json
TRUTH_KEYS = {"tia_mbq_h": "tia_mbq_h", "dose_gy": "mird_dose_gy"}


def load_truth(patient_dir) -> dict | None:
    """The phantom's ground truth (dict) if ``patient_dir/ground_truth.json`` exists, else None."""
    if patient_dir is None:
        return None
    path = Path(patient_dir) / "ground_truth.json"
    return json.loads(path.read_text()) if path.is_file() else None


def voi_organ_masses_g(volume_ml: dict[str, float], organs=None) -> dict[str, float]:
    """Patient organ masses (g) for MIRD mass scaling: VOI volume (mL) × 1.03 g/mL (soft
    tissue, `tdt.dosimetry.KERNEL_DENSITY_G_PER_ML`), for the non-lesion source organs whose
    self-S is mass-scaled (not red marrow or bladder contents). The phantom's MIRD truth uses
    the same convention."""
    organs = list(volume_ml) if organs is None else list(organs)
    return {o: float(volume_ml[o]) * KERNEL_DENSITY_G_PER_ML for o in organs
            if o in volume_ml and not is_lesion(o)
            and o not in ("red_marrow", "urinary_bladder_contents", "background")}


def truth_rows(truth: dict, quantity: str, estimates: dict[str, np.ndarray | float]) -> list[dict]:
    """Compare ``estimates`` (organ → draws, or a point value) of ``quantity`` (``"tia_mbq_h"``
    or ``"dose_gy"``) with the truth. Rows: organ, truth, median, ci50/ci90 bounds (draws only),
    bias (median / truth − 1), covered50, covered90."""
    if quantity not in TRUTH_KEYS:
        raise InputError(f"truth_rows: quantity {quantity!r}; expected one of {list(TRUTH_KEYS)}")
    reference = truth.get(TRUTH_KEYS[quantity], {})
    rows = []
    for organ, values in estimates.items():
        if organ not in reference:
            continue
        x = np.asarray(values, dtype=float).ravel()
        t = float(reference[organ])
        row = {"quantity": quantity, "organ": organ, "truth": t, "median": float(np.median(x))}
        if x.size > 1:
            q = np.quantile(x, [0.05, 0.25, 0.75, 0.95])
            row.update(ci90_low=float(q[0]), ci50_low=float(q[1]), ci50_high=float(q[2]),
                       ci90_high=float(q[3]), covered50=bool(q[1] <= t <= q[2]),
                       covered90=bool(q[0] <= t <= q[3]))
        row["bias"] = row["median"] / t - 1.0 if t else float("nan")
        rows.append(row)
    return rows
