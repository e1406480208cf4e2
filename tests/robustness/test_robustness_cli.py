"""Bad-input corpus, command line: ``-p`` values and study paths relative to the study file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdt.errors import StudyError
from tdt.pipeline._spec import load_study, parse_override

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, value", [
    ("x=1e-3", 1e-3), ("x=1E5", 1e5), ("x=-2.5e-3", -2.5e-3), ("x=3e0", 3.0),
    ("x=0.05", 0.05), ("x=7", 7), ("x=abc", "abc"), ("x=1e", "1e"), ("x=inf", "inf"),
    ("x=[1, 2]", [1, 2]), ("x=true", True),
])
def test_parse_override_values(text, value):
    key, parsed = parse_override(text)
    assert key == "x" and parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("text", ["novalue", "=3", "  =x"])
def test_parse_override_malformed(text):
    with pytest.raises(StudyError, match="key=value"):
        parse_override(text)


def test_study_found_from_its_own_folder(monkeypatch):
    """``cd studies && tdt run stp_vs_mtp.yaml``: the notebook path is relative to the repo."""
    monkeypatch.chdir(REPO / "studies")
    spec = load_study("stp_vs_mtp.yaml", dict([parse_override("noise_sd=1e-3")]))
    assert spec.notebook_paths[0] == (REPO / "notebooks" / "06_stp_vs_mtp.ipynb").resolve()
    assert spec.parameters["noise_sd"] == pytest.approx(1e-3)


@pytest.mark.parametrize("argv, text", [
    (["run", "stp_vs_mtp.yaml", "-p", "noise_sd=abc"], "noise_sd"),
    (["run", "stp_vs_mtp.yaml", "-p", "noise_sdd=0.1"], "noise_sdd"),
    (["run", "stp_vs_mtp.yaml", "-p", "novalue"], "key=value"),
    (["run", "no_such_study.yaml"], "no_such_study"),
])
def test_cli_bad_input_is_one_line(argv, text, monkeypatch, capsys, tmp_path):
    from tdt.cli import main

    monkeypatch.chdir(REPO / "studies")
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tdt: error:") and text in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ipynb"))
