"""Content identity of generated datasets, leftovers of killed builds, catalog CLI (issue #17)."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from pipeline_helpers import main_cli

from tdt import catalog
from tdt.errors import CatalogError
from tdt.imaging._dicom_io import NM_IMAGE_STORAGE, deterministic_uid, new_file_dataset


def _write_dicom(path, pixels, spacing="4.7952", version_name="TDT_0_1"):
    ds = new_file_dataset(NM_IMAGE_STORAGE, deterministic_uid("identity-test", path.name))
    ds.file_meta.ImplementationVersionName = version_name
    ds.Modality = "NM"
    ds.PixelSpacing = [spacing, spacing]
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _dataset(directory, pixels, **kwargs):
    directory.mkdir(parents=True, exist_ok=True)
    _write_dicom(directory / "img.dcm", pixels, **kwargs)
    (directory / "truth.json").write_text(json.dumps({"tia_mbq_h": 15800.123456789, "n": 3}))
    (directory / "notes.txt").write_text("synthetic\n")
    return directory


@pytest.fixture
def pixels():
    return np.arange(64, dtype=np.uint16).reshape(8, 8) * 7


def test_identity_ignores_incidental_bytes(tmp_path, pixels):
    first = _dataset(tmp_path / "a", pixels)
    # the same content written differently: other writer version string, other DS spelling,
    # other JSON float printing and layout
    second = _dataset(tmp_path / "b", pixels, spacing="4.79520", version_name="OTHER_9_9")
    (second / "truth.json").write_text('{\n  "n": 3,\n  "tia_mbq_h": 1.5800123456789e4\n}\n')
    assert catalog.tree_sha256(first) != catalog.tree_sha256(second)  # the bytes differ
    assert catalog.content_sha256(first) == catalog.content_sha256(second)


def test_identity_detects_one_voxel_one_tag_one_number(tmp_path, pixels):
    reference = catalog.content_sha256(_dataset(tmp_path / "ref", pixels))
    changed = pixels.copy()
    changed[3, 4] += 1
    assert catalog.content_sha256(_dataset(tmp_path / "voxel", changed)) != reference
    assert catalog.content_sha256(_dataset(tmp_path / "tag", pixels, spacing="4.3")) != reference
    other = _dataset(tmp_path / "json", pixels)
    (other / "truth.json").write_text(json.dumps({"tia_mbq_h": 15800.2, "n": 3}))
    assert catalog.content_sha256(other) != reference
    extra = _dataset(tmp_path / "extra", pixels)
    (extra / "more.txt").write_text("x")
    assert catalog.content_sha256(extra) != reference


def test_dicom_tag_edit_changes_identity(tmp_path, pixels):
    directory = _dataset(tmp_path / "d", pixels)
    before = catalog.content_sha256(directory)
    ds = pydicom.dcmread(directory / "img.dcm")
    ds.RescaleSlope = "2"
    ds.save_as(directory / "img.dcm")
    assert catalog.content_sha256(directory) != before


def test_killed_build_leaves_nothing_behind(catalog_env):
    generated = catalog_env / "generated"
    leftover = generated / ".tmp-tinygen-deadbeef"
    (leftover / "sub").mkdir(parents=True)
    (generated / ".lock-tinygen").write_text("")  # lock file of an earlier tdt version
    catalog.build("tinygen")
    names = sorted(p.name for p in generated.iterdir())
    assert not [n for n in names if n.startswith((".tmp-", ".lock-"))], names


def test_verify_builds_unbuilt_generators_in_a_temporary_folder(catalog_env):
    [built] = catalog.build("tinygen")
    import shutil

    shutil.rmtree(built.path)
    [result] = catalog.verify("tinygen")
    assert result.ok is True and "temporary" in result.message
    assert not built.path.exists()  # verification did not install anything
    [skipped] = catalog.verify("tinygen", build_missing=False)
    assert skipped.ok is None
    # a generator whose output changed is caught without a build in place
    yaml_path = catalog_env / "catalog.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("seed: 3", "seed: 4"))
    [changed] = catalog.verify("tinygen")
    assert changed.ok is False and "tdt catalog build --record tinygen" in changed.message


def test_catalog_cli_force_and_record(catalog_env, capsys):
    code, out, err = main_cli(capsys, "catalog", "build", "--force", "tinygen")
    assert code == 0, err
    code, out, err = main_cli(capsys, "catalog", "build", "tinygen", "--force")
    assert code == 0 and "tinygen: built" in out, err
    yaml_path = catalog_env / "catalog.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("seed: 3", "seed: 4"))
    with pytest.raises(CatalogError, match="--record tinygen"):
        catalog.build("tinygen", force=True)
    code, out, err = main_cli(capsys, "catalog", "build", "--record", "tinygen")
    assert code == 0 and "tinygen: recorded" in out, err
    code, out, _ = main_cli(capsys, "catalog", "verify", "--no-build")
    assert code == 0


def test_identity_absorbs_float_noise_between_cpus_but_not_a_real_change(tmp_path, pixels):
    """Values that differ by BLAS/SIMD float noise (measured up to 7e-13 relative in the phantom's
    ground truth between OpenBLAS kernels) have one identity; a change in the 7th digit does not."""
    reference = catalog.content_sha256(_dataset(tmp_path / "ref", pixels))
    noisy = _dataset(tmp_path / "noisy", pixels)
    (noisy / "truth.json").write_text(json.dumps({"tia_mbq_h": 15800.123456789 * (1 + 7e-13),
                                                  "n": 3}))
    assert catalog.content_sha256(noisy) == reference
    changed = _dataset(tmp_path / "changed", pixels)
    (changed / "truth.json").write_text(json.dumps({"tia_mbq_h": 15800.133456789, "n": 3}))
    assert catalog.content_sha256(changed) != reference


@pytest.mark.slow
@pytest.mark.parametrize("name", ["phantom_patient", "phantom_patient_pbpk"])
def test_phantom_identity_is_the_same_with_other_blas_kernels(tmp_path, name):
    """The shipped phantoms' recorded identities hold whichever OpenBLAS kernel and XLA
    instruction set the CPU selects (the reason for identity version 2): built in subprocesses
    with the Prescott (SSE3) and Haswell (AVX2) kernels forced — on an AVX-512 machine these gave
    different version-1 identities (Prescott = SkylakeX's, Haswell another) —, XLA's code limited
    to the same instruction sets (``--xla_cpu_max_isa``: the receptor-PBPK phantom's activities
    come from a JAX ODE solve); each equals the sha256 recorded in catalog.yaml."""
    import os
    import platform
    import subprocess
    import sys

    if platform.machine() != "x86_64":
        pytest.skip("OpenBLAS kernel names below are x86_64's")
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    kernels = {"Prescott": "SSE4_2"} | ({"Haswell": "AVX2"} if " avx2" in flags else {})

    params = catalog.entries()[name].params
    code = ("import sys, json; from tdt.imaging import make_phantom_patient; "
            "from tdt.catalog import content_sha256; "
            "make_phantom_patient(sys.argv[1], **json.loads(sys.argv[2])); "
            "print(content_sha256(sys.argv[1]))")
    expected = catalog.entries()[name].sha256
    for kernel, isa in kernels.items():
        env = dict(os.environ, OPENBLAS_CORETYPE=kernel, XLA_FLAGS=f"--xla_cpu_max_isa={isa}")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / kernel),
                              json.dumps(params)], env=env,
                             capture_output=True, text=True, check=True).stdout.split()[-1]
        assert out == expected, kernel
