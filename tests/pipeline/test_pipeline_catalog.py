"""Data catalog: file and generator entries, hashing, build/verify/list, CLI."""

from __future__ import annotations

import hashlib

import pytest
from pipeline_helpers import main_cli

from tdt import catalog
from tdt.errors import CatalogError


def test_shipped_catalog_entries_verify(monkeypatch):
    monkeypatch.delenv("TDT_CATALOG", raising=False)
    results = catalog.verify()
    assert results and all(r.ok is not False for r in results), [r for r in results if not r.ok]
    # the existing API other modules use keeps working
    path = catalog.dataset_path("icrp107_mean_energies")
    assert catalog.sha256_file(path) == catalog.entries()["icrp107_mean_energies"].sha256
    assert catalog.reference_path("nuclides/icrp107_mean_energies.csv") == path


def test_tree_sha256_matches_its_definition(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_bytes(b"xx")
    (tmp_path / "a.txt").write_bytes(b"a")
    # independent construction of the documented definition
    lines = [f"a.txt\t{hashlib.sha256(b'a').hexdigest()}\n",
             f"b/x.txt\t{hashlib.sha256(b'xx').hexdigest()}\n"]
    assert catalog.tree_sha256(tmp_path) == hashlib.sha256("".join(lines).encode()).hexdigest()


def test_file_entry_mismatch_is_catalog_error(catalog_env):
    assert catalog.dataset_path("tinydata").read_bytes() == b"hello tdt\n"
    (catalog_env / "d.txt").write_bytes(b"hello tdT\n")  # one byte changed
    with pytest.raises(CatalogError, match=r"dataset 'tinydata': sha256 of d.txt is"):
        catalog.dataset_path("tinydata")
    assert catalog.verify("tinydata")[0].ok is False
    (catalog_env / "d.txt").unlink()
    with pytest.raises(CatalogError, match="is missing"):
        catalog.dataset_path("tinydata")


def test_generator_build_records_then_checks(catalog_env):
    text_before = (catalog_env / "catalog.yaml").read_text()
    assert catalog.verify("tinygen")[0].ok is None  # not built yet
    [first] = catalog.build("tinygen")
    assert first.action == "recorded"
    text_after = (catalog_env / "catalog.yaml").read_text()
    assert f"sha256: {first.sha256}" in text_after
    assert "# a comment that must survive" in text_after
    assert text_after.replace(f"    sha256: {first.sha256}\n", "") == text_before
    assert catalog.entries()["tinygen"].sha256 == first.sha256
    built = catalog.dataset_path("tinygen")
    assert sorted(p.name for p in built.rglob("*")) == ["meta.txt", "sub", "values.csv"]
    assert catalog.content_sha256(built) == first.sha256
    # deterministic: a forced rebuild reproduces the recorded hash
    [again] = catalog.build("tinygen", force=True)
    assert again.action == "built" and again.sha256 == first.sha256
    assert catalog.build("tinygen")[0].action == "up to date"
    # tampering with the built data is detected on load
    (built / "values.csv").write_text("0\n")
    with pytest.raises(CatalogError, match=r"sha256 of generated/tinygen is"):
        catalog.dataset_path("tinygen")
    assert catalog.verify("tinygen")[0].ok is False
    # a changed generator (other params) no longer reproduces the recorded hash
    yaml_path = catalog_env / "catalog.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("seed: 3", "seed: 4"))
    with pytest.raises(CatalogError, match="built content with sha256"):
        catalog.build("tinygen", force=True)
    assert not any(p.name.startswith(".tmp-") for p in (catalog_env / "generated").iterdir())


def test_dataset_path_builds_generator_on_first_load(catalog_env):
    path = catalog.dataset_path("tinygen")
    assert (path / "values.csv").is_file()
    assert catalog.entries()["tinygen"].sha256 == catalog.content_sha256(path)


def test_bad_generator_entries(catalog_env):
    yaml_path = catalog_env / "catalog.yaml"
    base = yaml_path.read_text()
    yaml_path.write_text(base.replace("tiny_generator:make", "tiny_generator:nothing"))
    with pytest.raises(CatalogError, match="has no callable 'nothing'"):
        catalog.build("tinygen")
    yaml_path.write_text(base.replace("tiny_generator:make", "no_such_module_xyz:make"))
    with pytest.raises(CatalogError, match="cannot be imported"):
        catalog.build("tinygen")
    yaml_path.write_text(base.replace("tiny_generator:make", "tiny_generator.make"))
    with pytest.raises(CatalogError, match="expected 'package.module:function'"):
        catalog.entries()
    yaml_path.write_text(base.replace("kind: generator", "kind: magic"))
    with pytest.raises(CatalogError, match="kind 'magic'"):
        catalog.entries()
    yaml_path.write_text(base.replace("tiny_generator:make", "tiny_generator:make_nondeterministic")
                         .replace("params: {seed: 3, n: 5}", "params: {}"))
    catalog.build("tinygen")
    with pytest.raises(CatalogError, match="not deterministic"):
        catalog.build("tinygen", force=True)
    with pytest.raises(CatalogError, match="only generator entries are built"):
        catalog.build("tinydata")


def test_catalog_cli(catalog_env, capsys):
    code, out, _ = main_cli(capsys, "catalog", "list")
    assert code == 0 and "tinydata" in out and "not built" in out
    code, out, err = main_cli(capsys, "catalog", "build")
    assert code == 0, err
    assert "tinygen: recorded" in out and "2 of 2 entries verified" in out
    code, out, _ = main_cli(capsys, "catalog", "verify")
    assert code == 0 and "tinygen" in out
    (catalog_env / "d.txt").write_bytes(b"tampered\n")
    code, out, _ = main_cli(capsys, "catalog", "verify")
    assert code == 1 and "FAILED" in out
    code, _, err = main_cli(capsys, "catalog", "verify", "nope")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "'nope'" in err
