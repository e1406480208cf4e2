"""Pipeline: cold run vs cache hit of the reference study (`tdt run`).

The cache hit must take < 3 s (issue 8), measured as the wall time of the `tdt run` command
(interpreter start, study validation, dataset and notebook hashing, run verification), and
in-process (``run_study``). The cold run executes every notebook with papermill.

``quick``, or while the reference study's notebooks do not exist yet, uses the tiny fixture
study of tests/pipeline instead (said in the ``note``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "studies" / "reference_patient.yaml"
FIXTURES = ROOT / "tests" / "pipeline" / "fixtures"


def _tiny_study(root: Path) -> Path:
    (root / "studies").mkdir(parents=True)
    path = root / "studies" / "tiny.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: tiny
        version: 1
        notebooks: [{FIXTURES / 'tiny.ipynb'}, {FIXTURES / 'tiny_plot.ipynb'}]
        datasets: [icrp107_mean_energies]
        parameters: {{x: 2.0}}
        """))
    return path


def _reference_available() -> bool:
    from tdt.errors import TdtError
    from tdt.pipeline import load_study

    try:
        load_study(REFERENCE)
    except TdtError:
        return False
    return True


def run(quick: bool = False) -> list[dict]:
    from tdt.errors import TdtError
    from tdt.pipeline import run_study

    with tempfile.TemporaryDirectory(prefix="tdt-bench-pipeline-") as tmp:
        tmp_path = Path(tmp)
        use_reference = not quick and _reference_available()
        study = REFERENCE if use_reference else _tiny_study(tmp_path)
        label = "reference_patient" if use_reference else "tiny fixture study"
        runs = tmp_path / "runs"
        start = time.perf_counter()
        try:
            cold = run_study(study, runs_dir=runs)
        except TdtError as exc:
            if not use_reference:
                raise
            print(f"# bench_pipeline: the reference study failed ({exc}); using the tiny "
                  "fixture study")
            study, label = _tiny_study(tmp_path), "tiny fixture study (reference failed)"
            start = time.perf_counter()
            cold = run_study(study, runs_dir=runs)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        hit = run_study(study, runs_dir=runs)
        hit_s = time.perf_counter() - start
        assert hit.cache_hit and hit.run_dir == cold.run_dir
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "tdt.cli", "run", str(study), "--runs-dir",
                              str(runs), "--no-progress"], capture_output=True, text=True,
                             env=env, check=True)
        cli_s = time.perf_counter() - start
        assert out.stdout.startswith("cache hit"), out.stdout
    note = f"{label}; {len(cold.manifest['outputs'])} output files"
    return [
        {"case": f"{label}: cold run (papermill)", "tdt": cold_s, "baseline": None, "unit": "s",
         "target": "-", "note": note},
        {"case": f"{label}: cache hit, run_study", "tdt": hit_s, "baseline": cold_s, "unit": "s",
         "target": "< 3 s", "note": "baseline = cold run"},
        {"case": f"{label}: cache hit, `tdt run` CLI wall", "tdt": cli_s, "baseline": cold_s,
         "unit": "s", "target": "< 3 s", "note": "includes interpreter + imports"},
    ]
