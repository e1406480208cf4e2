"""Regenerate ``data_catalog/nuclides/icrp107_mean_energies.csv`` from ICRP Publication 107.

Source: ICRP, 2008. Nuclear Decay Data for Dosimetric Calculations. ICRP Publication 107.
Ann. ICRP 38(3). The numbers are read from the ``icrp107-database`` package (OpenGATE, LGPL-3.0),
a JSON transcription of the publication's supplemental data; only derived facts (sums of
energy x yield per decay) are vendored here.

Run: ``pip install icrp107-database==0.0.3 && python data_catalog/scripts/make_icrp107_mean_energies.py``
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

NUCLIDES = [
    # therapy and imaging nuclides named by the foundation issue
    "Lu-177", "Y-90", "I-131", "Tb-161", "Ga-68", "Tc-99m", "In-111", "Pb-212", "Ac-225",
    # positron emitters of theranostic pairs (pre-therapy PET; issue #25)
    "F-18", "Cu-64", "Zr-89", "I-124",
    # daughters needed for chain sums in secular equilibrium
    "Bi-212", "Po-212", "Tl-208",
    "Fr-221", "At-217", "Bi-213", "Po-213", "Tl-209", "Pb-209", "Rn-217",
]
COLUMNS = ["alpha", "alpha recoil", "beta-", "beta+", "IE", "auger", "gamma", "X", "annihilation"]


def main() -> None:
    root = resources.files("icrp107_database") / "icrp107"
    out = Path(__file__).resolve().parents[1] / "nuclides" / "icrp107_mean_energies.csv"
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["nuclide", "half_life", "half_life_unit"]
            + [f"{c.replace(' ', '_').replace('-', 'minus').replace('+', 'plus')}_mev" for c in COLUMNS]
        )
        for name in NUCLIDES:
            record = json.loads(json.loads((root / f"{name}.json").read_text()))
            emissions = record["emissions"]
            sums = [sum(e * y for e, y in emissions.get(c, []) or []) for c in COLUMNS]
            writer.writerow(
                [name, record["half_life"], record["time_unit"]] + [f"{s:.6e}" for s in sums]
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
