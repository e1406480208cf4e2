"""The locked environment in the manifest, environment warnings, a reviewer's re-run (#17)."""

from __future__ import annotations

import json

from pipeline_helpers import main_cli, write_study

from tdt.catalog import sha256_file
from tdt.pipeline import _manifest as mf
from tdt.pipeline._compare import compare_outputs
from tdt.pipeline._environment import environment_warning, lock_pins
from tdt.pipeline._rerun import rerun
from tdt.pipeline._runner import run_study


def _rewrite(run_dir, name, edit):
    """Edit an output and re-record its sha256, as a wrong (not a tampered) run would look."""
    path = run_dir / name
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    manifest = mf.read_manifest(run_dir)
    manifest["outputs"][name] = sha256_file(path)
    mf.write_json_atomic(run_dir / mf.MANIFEST, manifest)


def test_manifest_records_the_lock_and_every_installed_package(tmp_path, catalog_env,
                                                               repo_root):
    result = run_study(write_study(tmp_path), runs_dir=tmp_path / "runs")
    env = result.manifest["environment"]
    assert env["lock"]["sha256"] == sha256_file(repo_root / "requirements.lock")
    assert env["lock"]["file"] == "requirements.lock"
    pins = lock_pins(repo_root / "requirements.lock")
    assert "numpy" in pins and "pymc" in pins  # the lock pins the whole transitive set
    assert env["installed"]["numpy"] == env["packages"]["numpy"]


def test_verify_warns_when_the_environment_differs(tmp_path, catalog_env, capsys):
    result = run_study(write_study(tmp_path), runs_dir=tmp_path / "runs")
    code, out, _ = main_cli(capsys, "verify", str(result.run_dir))
    assert code == 0 and "differs" not in out
    manifest = mf.read_manifest(result.run_dir)
    manifest["environment"]["installed"]["numpy"] = "0.0.1"
    manifest["environment"]["lock"]["sha256"] = "0" * 64
    mf.write_json_atomic(result.run_dir / mf.MANIFEST, manifest)
    code, out, _ = main_cli(capsys, "verify", str(result.run_dir))
    warning = [line for line in out.splitlines() if "differs" in line]
    assert code == 0 and len(warning) == 1
    assert "numpy 0.0.1 →" in warning[0] and "lock sha256 000000000000" in warning[0]
    same = environment_warning(manifest["environment"], manifest["environment"])
    assert same is None


def test_rerun_agrees_then_detects_a_perturbed_result(tmp_path, catalog_env, capsys,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    original = run_study(write_study(tmp_path), runs_dir=tmp_path / "runs").run_dir
    result = rerun(original)
    assert result.rerun != original and result.rerun.is_relative_to(tmp_path / "runs" / "_rerun")
    assert result.agrees and any(r.quantity == "summary.json:y" for r in result.rows)
    assert mf.verify_run(original) == []  # the original was only read
    # a published number that the computation does not reproduce is found
    _rewrite(original, "summary.json", lambda d: d.update(y=d["y"] * (1 + 1e-6)))
    code, out, err = main_cli(capsys, "verify", "--rerun", str(original))
    assert code == 1 and "DIFFERENT" in out and "summary.json:y" in out
    assert "quantities disagree" in out and "different results" in err
    rows = compare_outputs(original, result.rerun, rtol=1e-3)  # a looser tolerance accepts it
    assert all(r.ok for r in rows)


def test_executed_notebooks_and_manifest_hold_no_absolute_paths(tmp_path, catalog_env):
    result = run_study(write_study(tmp_path, notebooks=("tiny.ipynb", "tiny_plot.ipynb")),
                       runs_dir=tmp_path / "runs")
    for name in ("tiny.ipynb", "tiny_plot.ipynb", "manifest.json", "study.yaml"):
        text = (result.run_dir / name).read_text()
        assert str(tmp_path) not in text, name  # neither the catalog nor the checkout path
    meta = json.loads((result.run_dir / "tiny.ipynb").read_text())["metadata"]["papermill"]
    assert meta["input_path"] == "notebooks/tiny.ipynb" and meta["output_path"] == "tiny.ipynb"
