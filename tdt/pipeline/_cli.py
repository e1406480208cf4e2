"""Subcommands ``tdt catalog | run | verify | report | demo`` (registered by :mod:`tdt.cli`).

Each ``register_*`` adds its arguments to an argparse sub-parser and returns the handler.
Heavy modules (papermill, nbconvert, dask) are imported inside the handlers only.
A ``TdtError`` raised by a handler becomes one line on stderr and exit code 2 (tdt.cli).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from tdt import catalog
from tdt.errors import CatalogError
from tdt.pipeline._compare import compare_outputs, format_table, write_csv
from tdt.pipeline._environment import environment_warning
from tdt.pipeline._executors import tls_security
from tdt.pipeline._manifest import environment, read_manifest, verify_run
from tdt.pipeline._rerun import rerun
from tdt.pipeline._runner import repo_root, run_study
from tdt.pipeline._spec import parse_override
from tdt.pipeline.report import build_report

Handler = Callable[[argparse.Namespace], int]


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


#: The study `tdt demo` (and `make demo`) runs: the receptor-PBPK twin of 177Lu-PSMA-617 on the
#: phantom whose kinetics it generated (its intervals are checked against that truth).
DEMO_STUDY = "reference_patient_pbpk.yaml"

# ------------------------------------------------------------------------ catalog


def register_catalog(parser: argparse.ArgumentParser) -> Handler:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the entries (and whether generators are built)")
    building = actions.add_parser("build", help="build generator entries, then verify them")
    checking = actions.add_parser(
        "verify", help="re-check every entry (generators not built are built in a temp folder)")
    for sub in (listing, building, checking):
        sub.add_argument("names", nargs="*", help="dataset names (default: all)")
    building.add_argument("--force", action="store_true",
                          help="rebuild generator entries even when up to date")
    building.add_argument("--record", action="store_true",
                          help="rebuild and record the new content sha256 in catalog.yaml "
                               "(after a deliberate change of a generator)")
    checking.add_argument("--no-build", action="store_true",
                          help="do not build generator entries that are not built; skip them")

    def handler(args: argparse.Namespace) -> int:
        if args.action == "list":
            table = catalog.entries()
            selected = [catalog.entry(n) for n in args.names] if args.names else table.values()
            for item in selected:
                state = item.kind
                if item.kind == "generator":
                    built = catalog.generated_path(item).is_dir()
                    state = f"generator ({'built' if built else 'not built'})"
                print(f"{item.name:<44} {state:<24} {item.description[:70]}")
            return 0
        if args.action == "build":
            for result in catalog.build(*args.names, force=args.force, record=args.record):
                print(f"{result.name}: {result.action} ({result.seconds:.1f} s) "
                      f"sha256 {result.sha256[:16]}...")
                if result.action == "recorded":
                    print(f"  recorded its sha256 in {catalog.catalog_dir() / catalog.CATALOG_FILE}")
        results = catalog.verify(*args.names,
                                 build_missing=not getattr(args, "no_build", False))
        bad = [r for r in results if r.ok is False]
        for r in results:
            if args.action == "verify" or r.ok is not True:
                label = {True: "ok", False: "FAILED", None: "not built"}[r.ok]
                detail = r.message if r.ok is not True or "temporary" in r.message else ""
                print(f"{r.name:<44} {label}" + (f"  {detail}" if detail and r.ok is not None
                                                  else ""))
        skipped = [r for r in results if r.ok is None]
        if skipped:
            print(f"catalog: {len(skipped)} generator entr{'y' if len(skipped) == 1 else 'ies'} "
                  f"not built and not checked ({', '.join(r.name for r in skipped)}): "
                  "run without --no-build to check them")
        if bad:
            _err(f"tdt: {len(bad)} catalog entr{'y' if len(bad) == 1 else 'ies'} failed "
                 "verification; see the lines above for what to do")
            return 1
        print(f"catalog: {sum(r.ok is True for r in results)} of {len(results)} entries verified")
        return 0

    return handler


# ------------------------------------------------------------------------ run


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executor", choices=("local", "dask"), default=None,
                        help="where grid points run (default: the study's executor)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="Dask scheduler address (tcp://... or tls://...); implies dask")
    parser.add_argument("--tls-ca-file", help="TLS: CA certificate for the scheduler")
    parser.add_argument("--tls-cert", help="TLS: client certificate")
    parser.add_argument("--tls-key", help="TLS: client private key")
    parser.add_argument("--workers", type=int, help="Dask LocalCluster workers")
    parser.add_argument("--runs-dir", default="runs", help="where runs are written (runs/)")
    parser.add_argument("--force", action="store_true", help="execute even on a cache hit")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars")


def _run(args: argparse.Namespace, study: str, overrides: dict) -> object:
    security = tls_security(args.tls_ca_file, args.tls_cert, args.tls_key)
    result = run_study(study, overrides, executor=args.executor, scheduler=args.scheduler,
                       security=security, workers=args.workers, runs_dir=args.runs_dir,
                       force=args.force, progress=args.progress, log=_err)
    what = "cache hit" if result.cache_hit else "complete"
    print(f"{what}: {result.run_dir} ({result.seconds:.1f} s)")
    if result.manifest.get("converged") is False:
        _err("tdt: WARNING: some fits of this run did not converge (see manifest.json "
             "'convergence')")
    return result


def register_run(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("study", help="study file, e.g. studies/reference_patient.yaml")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter (value parsed as YAML); repeatable")
    _add_run_options(parser)

    def handler(args: argparse.Namespace) -> int:
        overrides = dict(parse_override(p) for p in args.param)
        result = _run(args, args.study, overrides)
        print(f"next: `tdt report {result.run_dir}` builds the HTML supplement; "
              f"`tdt verify --rerun {result.run_dir}` re-executes it and compares every number")
        return 0

    return handler


# ------------------------------------------------------------------------ verify


def register_verify(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("runs", nargs="+", help="run directories runs/<study>/<run-id>")
    parser.add_argument("--against", metavar="RUN",
                        help="also compare the results (JSON and NetCDF numbers) with this other "
                             "run, e.g. a reviewer's re-run against the published one")
    parser.add_argument("--rerun", action="store_true",
                        help="re-execute each run's study from its manifest into "
                             "runs/_rerun/<time>/ and compare every number with the original")
    parser.add_argument("--rtol", type=float, default=1e-9,
                        help="relative tolerance of --against/--rerun (default 1e-9: the same "
                             "locked environment and CPU give the same numbers)")

    def handler(args: argparse.Namespace) -> int:
        failed = 0
        current = environment(repo_root(Path.cwd()))
        for run in [*args.runs, *([args.against] if args.against else [])]:
            problems = verify_run(Path(run))
            if problems:
                failed += 1
                print(f"FAILED {run}")
                for problem in problems:
                    print(f"  {problem}")
                continue
            print(f"ok     {run}")
            warning = environment_warning(read_manifest(run).get("environment") or {}, current)
            if warning:
                print(f"  {warning}")
        if failed:
            _err(f"tdt: {failed} run(s) failed verification")
            return 1
        comparisons = []
        if args.against:
            comparisons += [(Path(run), Path(args.against), None) for run in args.runs]
        if args.rerun:
            for run in args.runs:
                print(f"re-executing {run} from its manifest ...", flush=True)
                result = rerun(run, rtol=args.rtol, progress=sys.stdout.isatty(),
                               log=lambda msg: print(f"  {msg}", flush=True))
                print(f"  re-run: {result.rerun}")
                comparisons.append((result.original, result.rerun, result.rows))
        for first, second, computed in comparisons:
            rows = computed if computed is not None else compare_outputs(first, second,
                                                                         rtol=args.rtol)
            print(format_table(rows))
            if args.rerun:
                table = write_csv(rows, second.parent.parent / f"comparison-{first.name}.csv")
                print(f"full table: {table}")
            bad = [r for r in rows if not r.ok]
            if bad:
                failed += 1
                print(f"DIFFERENT results: {first} vs {second}: {len(bad)} of {len(rows)} "
                      f"quantities disagree (rtol {args.rtol:g})")
            else:
                print(f"same results: {first} and {second}: {len(rows)} quantities agree "
                      f"(rtol {args.rtol:g})")
        if failed:
            _err(f"tdt: {failed} comparison(s) found different results")
        return 1 if failed else 0

    return handler


# ------------------------------------------------------------------------ report


def register_report(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("runs", nargs="+", help="run directories runs/<study>/<run-id>")
    parser.add_argument("-o", "--output", help="supplement directory (default runs/_supplement/...)")

    def handler(args: argparse.Namespace) -> int:
        index = build_report([Path(r) for r in args.runs], args.output)
        print(f"supplement: {index}")
        return 0

    return handler


# ------------------------------------------------------------------------ demo


def register_demo(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--study", default=None,
                        help=f"study to run (default studies/{DEMO_STUDY}: the "
                             "receptor-PBPK twin on its own phantom)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter of the study; repeatable")
    _add_run_options(parser)

    def handler(args: argparse.Namespace) -> int:
        study = args.study or str(_repo_root() / "studies" / DEMO_STUDY)
        print("[1/4] data catalog: build the generated datasets, verify every entry", flush=True)
        for result in catalog.build():
            print(f"  {result.name}: {result.action} ({result.seconds:.1f} s)", flush=True)
        bad = [r for r in catalog.verify() if r.ok is False]
        if bad:
            raise CatalogError(bad[0].message)
        print(f"[2/4] run the study {Path(study).name} (papermill)", flush=True)
        overrides = dict(parse_override(p) for p in args.param)
        result = _run(args, study, overrides)
        print("[3/4] verify the run (re-hash every output)", flush=True)
        problems = verify_run(result.run_dir)
        if problems:
            _err(f"tdt: the demo's run fails verification: {problems[0]}")
            return 1
        print("[4/4] supplement (HTML)", flush=True)
        index = build_report([result.run_dir])
        print(f"\nrun directory: {result.run_dir}")
        print(f"open the supplement: {index}")
        print(f"  (file://{index.resolve()})")
        print(f"a reviewer re-runs it with: tdt verify --rerun {result.run_dir}")
        converged = result.manifest.get("converged")
        if converged is False:
            _err("tdt: the demo's posterior did NOT pass the convergence gate (R-hat, ESS, "
                 "divergences): see 'convergence' in manifest.json and the supplement")
            return 1
        print("convergence gate: every posterior passed (R-hat, bulk/tail ESS, divergences)"
              if converged else "convergence gate: no posterior in this study")
        return 0

    return handler


# ------------------------------------------------------------------------ dose


def register_dose(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("dicom_dir", help="folder with one administration's SPECT/CT, "
                                          "RTSTRUCT/SEG (any layout)")
    parser.add_argument("--phantom", default="adult-male",
                        help="S-value phantom (adult-male, adult-female)")
    parser.add_argument("--cycles", type=int, default=1,
                        help="also report the dose of this many identical cycles")
    parser.add_argument("--activity-gbq", type=float, default=None,
                        help="administered activity per cycle (default: from the DICOM)")
    parser.add_argument("--runs-dir", default="runs", help="reports go to RUNS/dose/<id>/")

    def handler(args: argparse.Namespace) -> int:
        # pulls in imaging (pydicom) and dosimetry; only for `tdt dose`
        from tdt.pipeline._dose_report import dose_report

        result = dose_report(args.dicom_dir, runs_dir=args.runs_dir, phantom=args.phantom,
                             n_cycles=args.cycles, activity_gbq=args.activity_gbq,
                             log=lambda msg: print(msg, flush=True))
        for warning in result.warnings:
            _err(f"tdt: warning: {warning}")
        print(f"\nreport: {result.directory / 'report.html'}")
        print(f"        {result.directory / 'report.pdf'}, {result.directory / 'organ_doses.csv'}")
        return 0

    return handler
