"""The reference study's supplement in headless Chromium: figures, results, diagnostics (#24).

Runs the shipped reference study (a few minutes: slow), builds its supplement and looks at it as
a reader would: every rendered notebook shows figures, the run page has a results table with
units and credible intervals and MCMC diagnostic plots, and no raw JSON above the fold.
"""

from __future__ import annotations

import json

import pytest
from browser_servers import launch_chromium, require_browser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def supplement(tmp_path_factory, repo_root):
    from tdt.pipeline._runner import run_study
    from tdt.pipeline.report import build_report

    runs = tmp_path_factory.mktemp("runs")
    result = run_study(repo_root / "studies" / "reference_patient.yaml", runs_dir=runs)
    return result, build_report([result.run_dir])


def test_executed_notebooks_carry_their_figures(supplement):
    result, _ = supplement
    for notebook in sorted(result.run_dir.glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        images = sum("image/png" in out.get("data", {}) for c in cells
                     for out in c.get("outputs", []))
        assert images >= 1, f"{notebook.name}: no figure in the executed notebook"


def test_supplement_reads_like_a_supplement_in_chromium(supplement, tmp_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    result, index = supplement
    run_page = index.parent / f"reference_patient-{result.run_dir.name}" / "index.html"
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(run_page.as_uri())
        page.screenshot(path=str(tmp_path / "run_page.png"))
        above_fold = page.evaluate("document.body.innerText").split("Results")[0]
        assert "{" not in above_fold  # no raw JSON above the results
        text = page.evaluate("document.body.innerText")
        assert "median [90 % CrI]" in text and "MBq·h" in text and "Gy" in text
        assert "\\u00b7" not in text and str(result.run_dir.parent.parent) not in text
        assert page.query_selector("span.bad") is None  # no NOT CONVERGED badge
        assert page.query_selector("span.good") is not None
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
        assert any("diagnostics/" in src and width > 0 for src, width in images)  # rank/trace
        assert all(width > 0 for _, width in images)  # every image loads
        notebook_links = page.eval_on_selector_all(
            "a[href$='.html']", "els => els.map(e => e.getAttribute('href'))")
        rendered = [h for h in notebook_links if not h.startswith("..")]
        assert len(rendered) == 3
        for href in rendered:
            page.goto((run_page.parent / href).as_uri())
            shown = page.evaluate("Array.from(document.images).filter(i => i.naturalWidth > 0)"
                                  ".length")
            assert shown >= 1, f"{href}: no figure shown"
        browser.close()
