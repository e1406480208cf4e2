"""Make docs/figures/ligand_sink.png: absorbed dose per activity vs ligand amount (sink effect).

Run: ``.venv/bin/python docs/figures/make_ligand_sink.py`` (about a minute on 2 cores).
177Lu-PSMA-617 PBPK (tdt.pbpk.psma617, literature defaults, one 10 mL lesion), 7.4 GBq bolus,
organ doses with tdt.dosimetry.organ_doses (adult-male phantom).
"""

from __future__ import annotations

from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from tdt.dosimetry import organ_doses  # noqa: E402
from tdt.pbpk import Administration, Schedule, psma617  # noqa: E402

LIGAND_NMOL = np.array([15.0, 50.0, 100.0, 150.0, 300.0, 600.0, 1000.0, 2000.0])
ACTIVITY_MBQ = 7400.0


def dose_per_gbq(model, ligand_nmol: float) -> dict[str, float]:
    sim = model.simulate(model.default_params(),
                         Schedule([Administration(0.0, ACTIVITY_MBQ, ligand_nmol)]), [1.0])
    tia = {k: v for k, v in sim.tia_mbq_h.items() if k != "urine"}
    doses = organ_doses(tia, lesion_volumes_ml={"lesion_1": 10.0})
    return {k: float(v) / (ACTIVITY_MBQ / 1000.0) for k, v in doses.items()}


def main() -> Path:
    model = psma617(lesions=1)
    rows = [dose_per_gbq(model, amount) for amount in LIGAND_NMOL]
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    for organ, label in (("kidneys", "kidneys"), ("salivary_glands", "salivary glands"),
                         ("lesion_1", "lesion (10 mL, R = 100 nM)")):
        ax.plot(LIGAND_NMOL, [r[organ] for r in rows], marker="o", label=label)
    ax.axvspan(100, 200, color="0.9", label="clinical 100-200 nmol")
    ax.set_xscale("log")
    ax.set_xlabel("administered ligand amount (nmol), 7.4 GBq 177Lu-PSMA-617")
    ax.set_ylabel("absorbed dose per activity (Gy/GBq)")
    ax.set_title("Sink / saturation effect in the PSMA-617 PBPK model")
    ax.legend(frameon=False)
    fig.tight_layout()
    out = Path(__file__).with_name("ligand_sink.png")
    fig.savefig(out)
    for amount, r in zip(LIGAND_NMOL, rows, strict=True):
        print(f"{amount:7.0f} nmol  kidneys {r['kidneys']:.3f}  salivary "
              f"{r['salivary_glands']:.3f}  lesion {r['lesion_1']:.3f} Gy/GBq")
    return out


if __name__ == "__main__":
    main()
