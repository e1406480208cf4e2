"""End to end: papermill runs, cache, atomicity, tampering, kill, concurrency, Dask, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_helpers import main_cli, run_cli, write_catalog, write_study

from tdt.errors import CatalogError, StudyError
from tdt.pipeline import _manifest as mf
from tdt.pipeline import _runner as runner
from tdt.pipeline._compare import compare_runs
from tdt.pipeline._runner import run_study
from tdt.pipeline.report import build_report


def _forbid_execution(monkeypatch):
    def boom(task):
        raise AssertionError("a notebook was executed on what should be a cache hit")

    monkeypatch.setattr(runner, "execute_task", boom)


def _summary(run_dir: Path, point: str = ".") -> dict:
    return json.loads((run_dir / point / "summary.json").read_text())


def test_tiny_study_end_to_end_and_cache(tmp_path, catalog_env, monkeypatch, capsys):
    study = write_study(tmp_path)
    runs = tmp_path / "runs"
    first = run_study(study, runs_dir=runs)
    assert not first.cache_hit and first.run_dir.parent == runs / "tiny"
    assert mf.verify_run(first.run_dir) == []
    # the notebook computed y = 2x with the injected parameters, seed and dataset path
    assert _summary(first.run_dir) == {"y": 4.0, "label": "b", "seed": 7,
                                       "data_bytes": {"tinydata": len(b"hello tdt\n")}}
    m = first.manifest
    assert m["status"] == "complete" and m["converged"] is None  # no convergence flags saved
    assert m["points"][0]["parameters"]["x"] == 2.0
    assert m["inputs"]["datasets"]["tinydata"]["sha256"] == catalog_env.joinpath(
        "catalog.yaml").read_text().split("sha256: ")[1].split()[0]
    assert set(m["outputs"]) >= {"tiny.ipynb", "summary.json", "study.yaml", "started.marker"}
    assert m["environment"]["packages"]["papermill"] and "python" in m["environment"]["platform"]
    assert m["reproduce"].startswith("tdt run ")
    assert str(tmp_path) not in json.dumps(m["environment"])  # no local paths / host names
    # papermill injected the parameters into the executed notebook
    executed = json.loads((first.run_dir / "tiny.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])

    # same inputs: cache hit, nothing executed, fast
    with monkeypatch.context() as patch:
        _forbid_execution(patch)
        start = time.perf_counter()
        again = run_study(study, runs_dir=runs)
        assert again.cache_hit and again.run_dir == first.run_dir
        assert time.perf_counter() - start < 3.0

    # one parameter changed: re-executed into a new run
    changed = run_study(study, {"x": 3.0}, runs_dir=runs)
    assert not changed.cache_hit and changed.run_dir != first.run_dir
    assert _summary(changed.run_dir)["y"] == 6.0

    # one byte of an input dataset changed without updating the catalog: refused
    data = catalog_env / "d.txt"
    data.write_bytes(b"hello tdT\n")
    with pytest.raises(CatalogError, match="tinydata"):
        run_study(study, runs_dir=runs)
    # ...and once the catalog records the new content deliberately, the study re-runs
    write_catalog(catalog_env, data=b"hello tdT\n")
    with monkeypatch.context() as patch:
        _forbid_execution(patch)
        with pytest.raises(AssertionError, match="was executed"):
            run_study(study, runs_dir=runs)
    write_catalog(catalog_env)  # back to the original bytes: the first run is a cache hit again
    with monkeypatch.context() as patch:
        _forbid_execution(patch)
        assert run_study(study, runs_dir=runs).run_dir == first.run_dir

    # one byte of a notebook changed: different cache key
    nb = tmp_path / "notebooks" / "tiny.ipynb"
    original = nb.read_bytes()
    nb.write_bytes(original.replace(b"# tiny fixture study", b"# tiny fixture study!"))
    with monkeypatch.context() as patch:
        _forbid_execution(patch)
        with pytest.raises(AssertionError, match="was executed"):
            run_study(study, runs_dir=runs)
    nb.write_bytes(original)

    # a supplement of two runs: an index with the commands that reproduce both
    index = build_report([first.run_dir, changed.run_dir], tmp_path / "supp")
    assert "tdt run studies/tiny.yaml -p x=3.0" in index.read_text()
    assert f"tdt verify runs/tiny/{changed.run_dir.name}" in index.read_text()
    assert str(tmp_path) not in index.read_text()  # no local absolute paths in the supplement
    assert (index.parent / f"tiny-{changed.run_dir.name}" / "tiny.html").is_file()

    # tampering with an output: verify fails, the cache refuses, the report refuses
    (first.run_dir / "summary.json").write_text('{"y": 5.0}')
    problems = mf.verify_run(first.run_dir)
    assert problems and "summary.json: sha256" in problems[0]
    with pytest.raises(StudyError, match="fails verification"):
        run_study(study, runs_dir=runs)
    with pytest.raises(StudyError, match="fails verification"):
        build_report([first.run_dir])
    (first.run_dir / "extra.txt").write_text("x")
    assert any("extra.txt: not recorded" in p for p in mf.verify_run(first.run_dir))
    code, stdout, _ = main_cli(capsys, "verify", str(first.run_dir), str(changed.run_dir))
    assert code == 1 and "FAILED" in stdout and f"ok     {changed.run_dir}" in stdout
    # --force re-executes and replaces the tampered run
    forced = run_study(study, runs_dir=runs, force=True)
    assert forced.run_dir == first.run_dir and mf.verify_run(forced.run_dir) == []
    # a re-execution gives the same numbers; another parameter gives other numbers
    assert compare_runs(forced.run_dir, changed.run_dir) == ["summary.json:y: 4 vs 6"]
    code, stdout, _ = main_cli(capsys, "verify", str(changed.run_dir), "--against",
                               str(forced.run_dir))
    assert code == 1 and "summary.json:y" in stdout and "DIFFERENT" in stdout


def test_manifest_records_the_commit_that_ran_not_a_later_one(tmp_path, catalog_env,
                                                              monkeypatch):
    """A commit made while a long study runs is not the run's code: the manifest's git commit
    (and dirty flag) is the repository's state when the notebooks started."""
    state = {"executed": False}
    execute = runner.execute_task

    def execute_and_commit(task):
        record = execute(task)
        state["executed"] = True  # as if someone committed while the notebook ran
        return record

    monkeypatch.setattr(runner, "execute_task", execute_and_commit)
    monkeypatch.setattr(mf, "git_info", lambda root: {
        "commit": ("b" if state["executed"] else "a") * 40, "dirty": state["executed"]})
    result = run_study(write_study(tmp_path), runs_dir=tmp_path / "runs")
    assert state["executed"]
    assert result.manifest["environment"]["git"] == {"commit": "a" * 40, "dirty": False}


def test_failing_notebook_is_kept_but_never_cached(tmp_path, catalog_env):
    study = write_study(tmp_path)
    runs = tmp_path / "runs"
    with pytest.raises(StudyError, match=r"notebook notebooks/tiny.ipynb failed: ValueError: "
                                         r"fixture asked to fail"):
        run_study(study, {"fail": True}, runs_dir=runs)
    [failed] = [p for p in (runs / "tiny").iterdir() if not p.name.startswith(".lock")]
    assert failed.name.startswith("failed-")
    assert mf.read_manifest(failed)["status"] == "failed"
    assert mf.verify_run(failed) == ["status is 'failed', not 'complete'"]


def _processes_in(directory: Path) -> list[int]:
    """Pids (of our own children, e.g. an orphaned kernel) whose working directory is inside."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(Path(os.readlink(proc / "cwd"))).startswith(str(directory)):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_killed_run_never_looks_complete(tmp_path, catalog_env):
    study = write_study(tmp_path)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tdt.cli", "run", str(study), "-p", "sleep_s=60",
         "--runs-dir", str(runs), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not list((runs / "tiny").glob(".tmp-*/started.marker")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    [tmp] = list((runs / "tiny").glob(".tmp-*"))
    for pid in _processes_in(tmp):  # the kernel, if it outlived its parent
        os.kill(pid, signal.SIGKILL)
    assert [p.name for p in (runs / "tiny").iterdir() if not p.name.startswith(".")] == []
    assert mf.verify_run(tmp) and "temporary directory" in mf.verify_run(tmp)[0]
    assert run_cli("verify", str(tmp)).returncode == 1
    spec = runner.load_study(study, {"sleep_s": 60})
    run_id = runner.cache_key(spec, runner.resolve_inputs(spec))[:16]
    assert runner.find_cached(spec, runs, run_id) is None
    assert tmp.name.startswith(f".tmp-{run_id}-")
    # the next run of the same inputs removes the debris and completes (sleep skipped by env,
    # which is not part of the cache key)
    os.environ["TDT_TEST_SKIP_SLEEP"] = "1"
    try:
        result = run_study(study, {"sleep_s": 60}, runs_dir=runs)
    finally:
        del os.environ["TDT_TEST_SKIP_SLEEP"]
    assert result.run_dir.name == run_id and not tmp.exists()
    assert mf.verify_run(result.run_dir) == []


def test_concurrent_runs_do_not_corrupt_each_other(tmp_path, catalog_env):
    study = write_study(tmp_path)
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "tdt.cli", "run", str(study), "-p", "sleep_s=1",
           "--runs-dir", str(runs), "--no-progress"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    lines = sorted(o[0].strip().split(":")[0] for o in outs)
    assert lines == ["cache hit", "complete"], outs  # exactly one executed
    done = [p for p in (runs / "tiny").iterdir() if not p.name.startswith(".")]
    assert len(done) == 1 and mf.verify_run(done[0]) == []
    assert not list((runs / "tiny").glob(".tmp-*"))


def test_grid_on_dask_localhost(tmp_path, catalog_env):
    from tdt.pipeline._executors import DaskExecutor

    with DaskExecutor(n_workers=2, processes=False) as pool:
        assert pool.client.scheduler.address.startswith("inproc://") or \
            pool.client.scheduler.address.startswith("tcp://127.0.0.1")
        assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]
    study = write_study(tmp_path, body="datasets: [tinydata]\nparameters: {x: 1.0, label: a}\n"
                                       "grid: {x: [1.0, 2.5]}\nexecutor: dask\nworkers: 2\n")
    result = run_study(study, runs_dir=tmp_path / "runs", processes=False)
    assert result.manifest["executor"]["kind"] == "dask"
    dirs = [p["dir"] for p in result.manifest["points"]]
    assert dirs == ["points/000", "points/001"]
    assert [_summary(result.run_dir, d)["y"] for d in dirs] == [2.0, 5.0]
    assert mf.verify_run(result.run_dir) == []


def test_dask_cluster_refuses_foreign_clients_and_serves_no_http():
    """The private cluster: 127.0.0.1 only, mutual TLS with a per-run credential, no HTTP
    server (distributed would otherwise serve /info, /json and /metrics on :8787)."""
    import psutil
    from distributed import Client

    from tdt.pipeline._executors import DaskExecutor, run_security

    with DaskExecutor(n_workers=1, processes=True) as pool:
        address = pool.client.scheduler.address
        workers = list(pool.client.scheduler_info()["workers"])
        assert address.startswith("tls://127.0.0.1:")
        assert workers and all(w.startswith("tls://127.0.0.1:") for w in workers)
        assert pool.map(abs, [-1, -2]) == [1, 2]
        # every listening socket of this process tree is a TLS comm port on 127.0.0.1
        me = psutil.Process()
        pids = {me.pid} | {c.pid for c in me.children(recursive=True)}
        listening = {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in pids}
        comm_ports = {int(a.rsplit(":", 1)[1]) for a in [address, *workers]}
        nanny_ports = {int(w["nanny"].rsplit(":", 1)[1])
                       for w in pool.client.scheduler_info()["workers"].values()}
        assert {ip for ip, _ in listening} == {"127.0.0.1"}
        assert {port for _, port in listening} == comm_ports | nanny_ports
        assert 8787 not in {port for _, port in listening}
        # a foreign client: plain TCP, or TLS with a credential of its own, to the scheduler
        # and straight to a worker: all refused
        with Client(address, security=pool.security, timeout="10s") as own:  # control
            assert own.submit(abs, -3).result(timeout=10) == 3
        stranger = run_security()
        for target in (address, workers[0]):
            for scheme, security in (("tcp://", None), ("tls://", stranger)):
                with pytest.raises((OSError, TimeoutError)):
                    foreign = Client(scheme + target.split("://", 1)[1], security=security,
                                     timeout="3s")
                    foreign.submit(abs, -1).result(timeout=3)


def test_demo_cli_on_a_two_notebook_study(tmp_path, catalog_env, capsys):
    study = write_study(tmp_path, notebooks=("tiny.ipynb", "tiny_plot.ipynb"))
    code, stdout, stderr = main_cli(capsys, "demo", "--study", str(study), "--runs-dir",
                                    str(tmp_path / "runs"), "--no-progress")
    assert code == 0, stderr
    assert "tinygen: recorded" in stdout and "open the supplement:" in stdout
    index = Path(stdout.split("open the supplement: ")[1].split()[0])
    assert index.is_file() and index.parent.parent.name == "_supplement"
    run_dir = Path(stdout.split("run directory: ")[1].split()[0])
    # the second notebook read the first one's results and saved a figure
    assert (run_dir / "figures" / "bar.png").is_file() and (run_dir / "tiny_plot.ipynb").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["converged"] is True
    assert manifest["convergence"] == {".": {"toy_fit": {"converged": True, "r_hat_max": 1.0}}}
    assert manifest["priors"] == {".": {"toy_prior": {"source": "toy", "n_patients": 3}}}
    # the supplement renders executed notebooks (nbconvert), figures, manifest and commands
    page = (index.parent / f"tiny-{run_dir.name}" / "index.html").read_text()
    assert "files/figures/bar.png" in page and "converged" in page
    assert "Priors used" in page and "toy_prior" in page  # where the prior came from
    assert "tdt run studies/tiny.yaml" in page and "tdt catalog build" in page
    rendered = (index.parent / f"tiny-{run_dir.name}" / "tiny.html").read_text()
    assert "y = 4.0" in rendered  # the executed cell's output
    assert (index.parent / f"tiny-{run_dir.name}" / "files" / "manifest.json").is_file()
    code, stdout, _ = main_cli(capsys, "report", str(run_dir), "-o", str(tmp_path / "supp2"))
    assert code == 0 and (tmp_path / "supp2" / "index.html").is_file()
    code, stdout, _ = main_cli(capsys, "verify", str(run_dir))
    assert code == 0 and stdout.startswith("ok")


@pytest.mark.slow
def test_shipped_virtual_trial_on_dask_processes(tmp_path, repo_root, monkeypatch):
    """The shipped grid study on a real (process-based) LocalCluster, with a small cohort."""
    monkeypatch.delenv("TDT_CATALOG", raising=False)
    result = run_study(repo_root / "studies" / "virtual_trial_reduced.yaml",
                       {"n_patients": 6, "n_draws": 100}, runs_dir=tmp_path / "runs")
    assert result.manifest["executor"] == {"kind": "dask", "workers": 2, "remote": False}
    scales = [p["parameters"]["kidney_uptake_scale"] for p in result.manifest["points"]]
    assert scales == [0.68, 1.0, 1.36]  # the grid of the shipped study, one point per worker task
    for point in result.manifest["points"]:
        trial = json.loads((result.run_dir / point["dir"] / "virtual_trial.json").read_text())
        rows = {row["arm"]: row for row in trial["table"]}
        assert {"fixed 7.4 GBq x 6", "dosimetry-guided"} <= set(rows)
    assert mf.verify_run(result.run_dir) == []


def test_demo_fails_when_its_posterior_fails_the_convergence_gate(tmp_path, catalog_env, capsys):
    study = write_study(tmp_path, notebooks=("tiny.ipynb", "tiny_plot.ipynb"))
    code, stdout, stderr = main_cli(capsys, "demo", "--study", str(study), "-p", "x=60",
                                    "--runs-dir", str(tmp_path / "runs"), "--no-progress")
    assert code == 1 and "did NOT pass the convergence gate" in stderr
    assert "open the supplement:" in stdout  # the run and its supplement are still shown
