"""The supplement reads like a paper's supplement: methods, formatted results, diagnostics (#24)."""

from __future__ import annotations

import json

from pipeline_helpers import main_cli, write_study

from tdt.pipeline._runner import run_study
from tdt.pipeline.report import build_report
from tdt.pipeline.report._html import number
from tdt.pipeline.report._results import render_value


def test_numbers_are_formatted_for_readers():
    assert number(13897.080487372948) == "13,897"
    assert number(0.0750213) == "0.075"
    assert number(3.2612e-20) == "3.26e-20"
    assert number(118.46) == "118"
    assert number(7) == "7" and number(None) == "—" and number(float("nan")) == "—"


def test_interval_records_become_one_readable_table():
    records = [{"ci90_high": 14612.2, "ci90_low": 13271.6, "median": 13897.1, "organ": "kidneys",
                "quantity": "tia_mbq_h", "unit": "MBq·h", "flag": ""}]
    html = render_value(records)
    assert "13,897 [13,272–14,612]" in html and "MBq·h" in html
    assert "median [90 % CrI]" in html and "ci90" not in html
    # labels first: organ and quantity come before the value column
    assert html.index("organ") < html.index("median [90 % CrI]")


def test_run_page_has_methods_results_and_no_raw_json(tmp_path, catalog_env, capsys):
    study = write_study(tmp_path, notebooks=("tiny.ipynb", "tiny_plot.ipynb"))
    run = run_study(study, runs_dir=tmp_path / "runs").run_dir
    index = build_report([run], tmp_path / "supp")
    page = (index.parent / f"tiny-{run.name}" / "index.html").read_text()
    for heading in ("Methods", "Convergence", "Results", "Figures", "Executed notebooks"):
        assert f"<h2>{heading}</h2>" in page
    assert "papermill" in page and "seed 7" in page  # the generated methods paragraph
    assert "\\u00b7" not in page and str(tmp_path) not in page  # no escaped units, no local paths
    assert "<pre>{" not in page  # no raw JSON dump on the page
    assert page.index("<details>") > page.index("<h2>Results</h2>")  # provenance collapsed, last
    # the supplement's files/ is a verifiable copy of the run
    files = index.parent / f"tiny-{run.name}" / "files"
    assert json.loads((files / "manifest.json").read_text())["run_id"] == run.name
    code, out, err = main_cli(capsys, "verify", str(run), "--against", str(files))
    assert code == 0 and "same results" in out, out + err


def test_input_warnings_are_shown_at_the_top(tmp_path):
    from tdt.pipeline.report._build import _input_checks

    (tmp_path / "input_warnings.json").write_text(json.dumps(
        {"warnings": ["activity_mbq: 7400000.0 is implausible; expected MBq"],
         "skipped": [["CT_0003.dcm", "malformed StudyDate"]]}))
    box = _input_checks(tmp_path, ["input_warnings.json"])
    assert "1 plausibility warning(s), 1 skipped file(s)" in box and "CT_0003.dcm" in box
    (tmp_path / "input_warnings.json").write_text(json.dumps({"warnings": [], "skipped": []}))
    assert "input checks passed" in _input_checks(tmp_path, ["input_warnings.json"])
    assert _input_checks(tmp_path, []) == ""
