"""Canonical organ names (docs/architecture.md) ↔ labels of the vendored S-value tables, aliases."""

from __future__ import annotations

import re

from tdt.errors import InputError, unknown_name_error

#: Phantoms with vendored S-values: canonical name → (table kind, sex).
PHANTOMS: dict[str, tuple[str, str]] = {
    "adult-male": ("olinda", "male"),
    "adult-female": ("olinda", "female"),
    "icrp110-am": ("opendose", "AM"),
    "icrp110-af": ("opendose", "AF"),
}
_PHANTOM_ALIASES = {
    "male": "adult-male", "am": "adult-male", "adult_male": "adult-male",
    "female": "adult-female", "af": "adult-female", "adult_female": "adult-female",
    "icrp110_am": "icrp110-am", "opendose-am": "icrp110-am", "opendose_am": "icrp110-am",
    "icrp110_af": "icrp110-af", "opendose-af": "icrp110-af", "opendose_af": "icrp110-af",
}

#: OLINDA-style SOURCE column labels (as in the CSV header, trailing spaces included).
OLINDA_SOURCES: dict[str, str] = {
    "Adrenals ": "adrenals", "Brain": "brain", "Breasts  ": "breasts", "Esophagus": "esophagus",
    "Eyes": "eyes", "GB Cont": "gallbladder_contents", "LLI Cont ": "lli_contents",
    "SI Cont": "small_intestine_contents", "StomCont": "stomach_contents",
    "ULI Cont": "uli_contents", "Rectum": "rectum", "HeartCon": "heart_contents",
    "Hrt Wall": "heart_wall", "Kidneys ": "kidneys", "Liver": "liver", "Lungs": "lungs",
    "Ovaries": "ovaries", "Pancreas": "pancreas", "Prostate": "prostate",
    "Salivary": "salivary_glands", "Red Mar.": "red_marrow", "CortBone": "cortical_bone",
    "TrabBone": "trabecular_bone", "Spleen": "spleen", "Testes": "testes", "Thymus": "thymus",
    "Thyroid": "thyroid", "UB Cont": "urinary_bladder_contents", "Uterus": "uterus",
    "Tot Body": "total_body",
}
#: OLINDA-style TARGET row labels.
OLINDA_TARGETS: dict[str, str] = {
    "Adrenals": "adrenals", "Brain": "brain", "Breasts": "breasts", "Esophagus": "esophagus",
    "Eyes": "eyes", "Gallbladder Wall": "gallbladder_wall", "LLI Wall": "lli_wall",
    "Small Intestine": "small_intestine", "Stomach Wall": "stomach_wall", "ULI Wall": "uli_wall",
    "Rectum": "rectum", "Heart Wall": "heart_wall", "Kidneys": "kidneys", "Liver": "liver",
    "Lungs": "lungs", "Ovaries": "ovaries", "Pancreas": "pancreas", "Prostate": "prostate",
    "Salivary Glands": "salivary_glands", "Red Marrow": "red_marrow",
    "Osteogenic Cells": "osteogenic_cells", "Spleen": "spleen", "Testes": "testes",
    "Thymus": "thymus", "Thyroid": "thyroid", "Urinary Bladder Wall": "urinary_bladder_wall",
    "Uterus": "uterus", "Total Body": "total_body",
}

#: OpenDose sources vendored (file stem → canonical) and the named targets.
OPENDOSE_SOURCES: dict[str, str] = {
    "left_kidney": "left_kidney", "right_kidney": "right_kidney", "liver": "liver",
    "spleen": "spleen",
}
OPENDOSE_TARGETS: dict[str, str] = {
    "RKidney + LKidney": "kidneys", "Left kidney C+M+P": "left_kidney",
    "Right kidney C+M+P": "right_kidney", "Liver": "liver", "Spleen": "spleen",
    "Salivary glands": "salivary_glands", "Total body except organ contents": "total_body",
    "Urinary bladder wall": "urinary_bladder_wall", "Pancreas": "pancreas",
    "Adrenal, left": "left_adrenal", "Thyroid": "thyroid", "Brain": "brain",
    "RLung + LLung": "lungs", "Heart wall": "heart_wall", "Stomach wall": "stomach_wall",
    "Small intestine wall": "small_intestine", "Colon": "colon", "Oesophagus": "esophagus",
    "Prostate": "prostate", "Testes": "testes", "Muscle": "muscle", "Skin": "skin",
    "Spinal cord": "spinal_cord", "Thymus": "thymus", "Gall bladder wall": "gallbladder_wall",
    "Lymph nodes": "lymph_nodes", "Lenses of eye": "eye_lenses",
}

#: Alias → canonical organ name.
ALIASES: dict[str, str] = {
    "kidney": "kidneys", "both_kidneys": "kidneys", "liver": "liver", "spleen": "spleen",
    "salivary": "salivary_glands", "salivary_gland": "salivary_glands", "parotids": "salivary_glands",
    "parotid": "salivary_glands", "red_mar": "red_marrow", "bone_marrow": "red_marrow",
    "marrow": "red_marrow", "rm": "red_marrow", "ub_cont": "urinary_bladder_contents",
    "bladder": "urinary_bladder_contents", "bladder_contents": "urinary_bladder_contents",
    "urinary_bladder": "urinary_bladder_contents", "tot_body": "total_body",
    "whole_body": "total_body", "wb": "total_body", "body": "total_body", "tb": "total_body",
    "oesophagus": "esophagus", "heartcon": "heart_contents", "hrt_wall": "heart_wall",
    "gb_cont": "gallbladder_contents", "si_cont": "small_intestine_contents",
    "stomcont": "stomach_contents", "uli_cont": "uli_contents", "lli_cont": "lli_contents",
    "cortbone": "cortical_bone", "trabbone": "trabecular_bone", "lung": "lungs",
    "adrenal": "adrenals", "testis": "testes", "ovary": "ovaries", "eye": "eyes",
    "salivary_glands": "salivary_glands", "rest_of_body": "remainder", "remainder_of_body": "remainder",
    "rob": "remainder", "ub_wall": "urinary_bladder_wall", "bladder_wall": "urinary_bladder_wall",
    "left_kidney_c+m+p": "left_kidney", "right_kidney_c+m+p": "right_kidney",
    "lacrimal": "lacrimal_glands", "lacrimal_gland": "lacrimal_glands",
    "tear_glands": "lacrimal_glands",
}

#: Organs absent from the vendored S-value tables, dosed as uniform spheres (self-dose only,
#: :func:`tdt.dosimetry.sphere_dose`): canonical name -> (reference total mass g, number of
#: identical glands sharing the TIA and the mass). Lacrimal glands: ~0.7 g each in adults
#: (cadaver and imaging series, e.g. Orbit 2009;28:137-146, doi:10.1080/01676830902766014;
#: value recalled, not verified). Their cross-dose to other organs (1.4 g in the orbits) is
#: neglected; with a whole-body TIA they are subtracted from the remainder like any source.
SPHERE_ORGANS: dict[str, tuple[float, int]] = {"lacrimal_glands": (1.4, 2)}


def sphere_organ(name: str) -> str | None:
    """Canonical name of a sphere-modelled organ (:data:`SPHERE_ORGANS`), else None."""
    key = normalise(name)
    key = ALIASES.get(key, key)
    return key if key in SPHERE_ORGANS else None

#: Canonical VOI names (architecture.md) that are not organs of the S-value tables: their TIA is
#: activity in the rest of the body and is added to the remainder (see organ_doses).
REMAINDER_TISSUES = ("remainder", "plasma", "blood", "muscle", "gi")

#: name prefixes of tumour VOIs (after :func:`normalise`)
LESION_PREFIXES = ("lesion", "tumour", "tumor")


def normalise(name: str) -> str:
    """'Kidneys ' → 'kidneys', 'Red Mar.' → 'red_mar', 'UB Cont' → 'ub_cont'."""
    text = str(name).strip().lower()
    text = re.sub(r"[.\s\-/,()]+", "_", text).strip("_")
    return text


def is_lesion(name: str) -> bool:
    """True for a tumour VOI name: ``lesion_1``, ``Lesion 2``, ``tumour``, ``tumor_liver``...

    The one rule of tdt for "is this region a tumour" (dosimetry: sphere S-values; radiobiology:
    tumour alpha/beta, TCP; planning: the objective; re-exported by ``tdt.radiobiology``).
    Case, spaces, dots and hyphens are ignored (:func:`normalise`); the name must start with
    ``lesion``, ``tumour`` or ``tumor``. (Model compartment names are stricter, ``lesion_<n>``:
    :func:`tdt.pbpk._organs.lesion_names` validates those.)
    """
    return normalise(name).startswith(LESION_PREFIXES)


def canonical_organ(name: str, choices, field: str = "organ") -> str:
    """Canonical name of ``name`` among ``choices`` (canonical names); InputError with
    suggestions otherwise."""
    if not isinstance(name, str):
        raise InputError(f"{field}: expected an organ name (str), got {type(name).__name__}")
    key = normalise(name)
    key = ALIASES.get(key, key)
    if key in choices:
        return key
    raise unknown_name_error(field, name, choices)


def canonical_phantom(phantom: str) -> str:
    """Canonical phantom name ('adult-male', 'adult-female', 'icrp110-am', 'icrp110-af')."""
    if not isinstance(phantom, str):
        raise InputError(f"phantom: expected a name such as 'adult-male', got {phantom!r}")
    key = phantom.strip().lower()
    key = _PHANTOM_ALIASES.get(key, key)
    if key not in PHANTOMS:
        raise unknown_name_error("phantom", phantom, PHANTOMS)
    return key
