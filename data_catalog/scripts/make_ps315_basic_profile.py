"""Regenerate ``data_catalog/dicom/ps3.15_annex_e_basic_profile.csv`` from DICOM PS3.15.

Source: DICOM PS3.15 2024b, Annex E, Table E.1-1 "Application Level Confidentiality Profile
Attributes" (NEMA; the standard may be used and redistributed freely). The rows are read from
the machine-readable extraction ``standard/confidentiality_profile_attributes.json`` of
innolitics/dicom-standard (MIT licence), commit 8670abdd9ad16c61af5146ef857899699bdd9c5f
("Update standard to rev2024b"). The pydicom keyword of each tag is added (empty for tag
patterns such as ``(50XX,XXXX)`` and for tags pydicom does not know).

Run: ``python data_catalog/scripts/make_ps315_basic_profile.py confidentiality_profile_attributes.json``
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

#: JSON key → CSV column (PS3.15 Table E.1-1 column headings, abbreviated)
COLUMNS = {
    "stdCompIOD": "in_std_composite_iod",
    "basicProfile": "basic_profile",
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_longitudinal_full_dates",
    "rtnLongModifDatesOpt": "retain_longitudinal_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}


def _keyword(tag: str) -> str:
    from pydicom.datadict import keyword_for_tag

    digits = tag.strip("()").replace(",", "")
    if len(digits) != 8 or not all(c in "0123456789ABCDEFabcdef" for c in digits):
        return ""
    return keyword_for_tag(int(digits, 16)) or ""


def main(source: str) -> None:
    rows = json.loads(Path(source).read_text())
    out = Path(__file__).resolve().parents[1] / "dicom" / "ps3.15_annex_e_basic_profile.csv"
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["tag", "keyword", "name", *COLUMNS.values()])
        for row in sorted(rows, key=lambda r: r["tag"]):
            writer.writerow([row["tag"], _keyword(row["tag"]), " ".join(row["name"].split()),
                             *(row.get(key, "") for key in COLUMNS)])
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
