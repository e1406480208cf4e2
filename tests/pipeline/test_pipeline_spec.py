"""Study schema: strict validation, overrides, grids, and the CLI's one-line exit 2."""

from __future__ import annotations

import itertools

import pytest
from pipeline_helpers import run_cli, write_study

from tdt.errors import StudyError
from tdt.pipeline._spec import load_study, parse_override

BASE = "datasets: [tinydata]\nparameters: {x: 2.0, label: b, sleep_s: 0.0, fail: false}\n"


def _study(tmp_path, extra: str = "", body: str | None = None, **kwargs):
    return write_study(tmp_path, body=(BASE + extra) if body is None else body, **kwargs)


def test_valid_study_defaults(tmp_path, catalog_env):
    spec = load_study(_study(tmp_path))
    assert spec.name == "tiny" and spec.version == "1" and spec.seed == 0
    assert spec.executor == "local" and spec.datasets == ("tinydata",)
    assert spec.notebook_paths[0] == (tmp_path / "notebooks" / "tiny.ipynb").resolve()
    assert spec.points() == [{"x": 2.0, "label": "b", "sleep_s": 0.0, "fail": False}]
    assert "x" in spec.declared[0] and "datasets" in spec.declared[0]


def test_grid_is_cartesian_product(tmp_path, catalog_env):
    spec = load_study(_study(tmp_path, "grid: {x: [1, 2, 3], label: [p, q]}\n"))
    points = spec.points()
    expected = list(itertools.product(["p", "q"], [1, 2, 3]))  # keys sorted: label, x
    assert [(p["label"], p["x"]) for p in points] == expected
    assert all(p["sleep_s"] == 0.0 for p in points)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("colour: red\n", r"unknown key 'colour'"),
        ("notebok: x.ipynb\n", r"unknown key 'notebok'"),
        ("seed: -1\n", r"seed = -1; expected a non-negative integer"),
        ("seed: abc\n", r"seed = 'abc'"),
        ("executor: slurm\n", r"executor = 'slurm'; expected 'local' or 'dask'"),
        ("workers: 0\n", r"workers = 0"),
        ("timeout_s: fast\n", r"timeout_s = 'fast'"),
        ("grid: {y: [1, 2]}\n", r"grid: 'y' is not a parameter"),
        ("grid: {x: []}\n", r"grid: x = \[\]; expected a non-empty list"),
        ("grid: {x: 3}\n", r"grid: x = 3"),
        ("grid: {x: [1, 1]}\n", r"duplicate values"),
        ("grid: [x]\n", r"grid = \['x'\]; expected a mapping"),
    ],
)
def test_invalid_study_fields(tmp_path, catalog_env, extra, match):
    with pytest.raises(StudyError, match=match):
        load_study(_study(tmp_path, extra))


def test_invalid_study_other_problems(tmp_path, catalog_env):
    with pytest.raises(StudyError, match=r"datasets: 'tinydat' is not in the data catalog"):
        load_study(_study(tmp_path, body="datasets: [tinydat]\n"))
    with pytest.raises(StudyError, match=r"parameters: 'seed' is reserved"):
        load_study(_study(tmp_path, body="parameters: {seed: 1}\n"))
    with pytest.raises(StudyError, match=r"parameter 'zzz' is not assigned"):
        load_study(_study(tmp_path, body="parameters: {zzz: 1}\n"))
    with pytest.raises(StudyError, match=r"no cell tagged 'parameters'"):
        load_study(_study(tmp_path, body="parameters: {}\n", notebooks=("no_params.ipynb",)))
    path = _study(tmp_path)
    path.write_text(path.read_text().replace("tiny.ipynb", "missing.ipynb"))
    with pytest.raises(StudyError, match=r"'notebooks/missing.ipynb' not found"):
        load_study(path)
    path.write_text("name: tiny\nversion: 1\n")
    with pytest.raises(StudyError, match=r"missing required key 'notebooks'"):
        load_study(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(StudyError, match=r"line 2"):
        load_study(path)
    path.write_text("name: Bad Name\nversion: 1\nnotebooks: [notebooks/tiny.ipynb]\n")
    with pytest.raises(StudyError, match=r"name = 'Bad Name'; expected a study name"):
        load_study(path)
    with pytest.raises(StudyError, match=r"study file .* not found"):
        load_study(tmp_path / "nope.yaml")


def test_overrides(tmp_path, catalog_env):
    path = _study(tmp_path, "grid: {x: [1.0, 2.0]}\n")
    spec = load_study(path, {"x": 5, "label": "zz", "seed": 3})
    assert spec.points() == [{"x": 5, "label": "zz", "sleep_s": 0.0, "fail": False}]
    assert spec.grid == {} and spec.seed == 3  # pinning a grid key removes it from the sweep
    assert load_study(path, {"label": 12}).parameters["label"] == "12"
    with pytest.raises(StudyError, match=r"-p xx: unknown parameter. Did you mean 'x'"):
        load_study(path, {"xx": 1})
    with pytest.raises(StudyError, match=r"-p fail=3: expected a bool"):
        load_study(path, {"fail": 3})
    with pytest.raises(StudyError, match=r"-p x=.abc.: expected a float"):
        load_study(path, {"x": "abc"})
    assert parse_override("x=7.4") == ("x", 7.4)
    assert parse_override("flags=[1, 2]") == ("flags", [1, 2])
    assert parse_override("name=a=b") == ("name", "a=b")
    with pytest.raises(StudyError, match="expected key=value"):
        parse_override("novalue")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [("colour: red\n", "unknown key 'colour'"),
     ("datasets: [nope]\n", "'nope' is not in the data catalog")],
)
def test_cli_invalid_study_is_one_line_exit_2(tmp_path, catalog_env, extra, needle):
    body = BASE.replace("datasets: [tinydata]\n", "") + extra if "datasets" in extra else None
    path = _study(tmp_path, extra, body=body)
    out = run_cli("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-progress")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("tdt: error:")
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_shipped_studies_validate(repo_root, monkeypatch):
    """Every studies/*.yaml is valid once the notebooks it names exist (written separately)."""
    import yaml

    monkeypatch.delenv("TDT_CATALOG", raising=False)
    checked, waiting = [], []
    for path in sorted((repo_root / "studies").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if not all((repo_root / nb).is_file() for nb in data["notebooks"]):
            waiting.append(path.name)
            continue
        spec = load_study(path)
        assert spec.name == path.stem
        checked.append(path.name)
    assert checked or waiting
    if not checked:
        pytest.skip(f"notebooks of {', '.join(waiting)} not written yet")


def test_cache_key_follows_tdt_source_and_package_versions(monkeypatch):
    """A change in tdt's code or in a result-computing package must re-run a study."""
    from tdt.pipeline import _manifest as mf
    from tdt.pipeline import _runner as runner

    class _Spec:
        def canonical(self):
            return {"name": "s"}

    inputs = {"notebooks": {"a.ipynb": "0" * 64}, "datasets": {}}
    base = runner.cache_key(_Spec(), inputs)
    assert runner.cache_key(_Spec(), inputs) == base
    monkeypatch.setattr(mf, "tdt_source_sha256", lambda: "f" * 64)
    changed_source = runner.cache_key(_Spec(), inputs)
    assert changed_source != base
    monkeypatch.setattr(mf, "package_versions", lambda names=mf.PACKAGES: {n: "9.9" for n in names})
    assert runner.cache_key(_Spec(), inputs) not in {base, changed_source}



def test_the_demo_runs_the_pbpk_twin_on_its_own_phantom(repo_root, monkeypatch):
    """`tdt demo` (`make demo`) runs the receptor-PBPK twin (issue 21: the PBPK twin by default)
    on the phantom whose kinetics it generated, at draws that passed the gate with a margin
    (4 x 500: R-hat 1.006, bulk ESS 1695, docs/notebooks.md)."""
    from tdt.pipeline._cli import DEMO_STUDY

    monkeypatch.delenv("TDT_CATALOG", raising=False)
    spec = load_study(repo_root / "studies" / DEMO_STUDY)
    assert spec.parameters["model"] == "psma617"
    assert spec.parameters["dataset"] == "phantom_patient_pbpk"
    assert "phantom_patient_pbpk" in spec.datasets
    assert spec.parameters["chains"] * spec.parameters["draws"] >= 2000
