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

Handler = Callable[[argparse.Namespace], int]


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------ catalog


def register_catalog(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("action", choices=("list", "build", "verify"),
                        help="list entries, build generator entries, or re-hash everything")
    parser.add_argument("names", nargs="*", help="dataset names (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="build: rebuild generator entries even when up to date")

    def handler(args: argparse.Namespace) -> int:
        from tdt import catalog

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
            for result in catalog.build(*args.names, force=args.force):
                print(f"{result.name}: {result.action} ({result.seconds:.1f} s) "
                      f"sha256 {result.sha256[:16]}...")
                if result.action == "recorded":
                    print(f"  recorded its sha256 in {catalog.catalog_dir() / catalog.CATALOG_FILE}")
        results = catalog.verify(*args.names)
        bad = [r for r in results if r.ok is False]
        for r in results:
            if args.action == "verify" or r.ok is not True:
                label = {True: "ok", False: "FAILED", None: "not built"}[r.ok]
                print(f"{r.name:<44} {label}" + (f"  {r.message}" if r.ok is False else ""))
        if bad:
            _err(f"tdt: {len(bad)} catalog entr{'y' if len(bad) == 1 else 'ies'} failed "
                 "verification")
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
    from tdt.pipeline.executors import tls_security
    from tdt.pipeline.runner import run_study

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
        from tdt.pipeline.spec import parse_override

        overrides = dict(parse_override(p) for p in args.param)
        _run(args, args.study, overrides)
        return 0

    return handler


# ------------------------------------------------------------------------ verify


def register_verify(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("runs", nargs="+", help="run directories runs/<study>/<run-id>")
    parser.add_argument("--against", metavar="RUN",
                        help="also compare the results (JSON numbers) with this other run, "
                             "e.g. a reviewer's re-run against the published one")
    parser.add_argument("--rtol", type=float, default=1e-9,
                        help="relative tolerance of --against (default 1e-9)")

    def handler(args: argparse.Namespace) -> int:
        from tdt.pipeline.manifest import compare_runs, verify_run

        failed = 0
        for run in [*args.runs, *([args.against] if args.against else [])]:
            problems = verify_run(Path(run))
            if problems:
                failed += 1
                print(f"FAILED {run}")
                for problem in problems:
                    print(f"  {problem}")
            else:
                print(f"ok     {run}")
        if failed:
            _err(f"tdt: {failed} run(s) failed verification")
            return 1
        if args.against:
            for run in args.runs:
                differences = compare_runs(Path(run), Path(args.against), rtol=args.rtol)
                if differences:
                    failed += 1
                    print(f"DIFFERENT results: {run} vs {args.against}")
                    for line in differences:
                        print(f"  {line}")
                else:
                    print(f"same results: {run} and {args.against} (rtol {args.rtol:g})")
            if failed:
                _err(f"tdt: {failed} run(s) differ from {args.against}")
        return 1 if failed else 0

    return handler


# ------------------------------------------------------------------------ report


def register_report(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("runs", nargs="+", help="run directories runs/<study>/<run-id>")
    parser.add_argument("-o", "--output", help="supplement directory (default runs/_supplement/...)")

    def handler(args: argparse.Namespace) -> int:
        from tdt.pipeline.report import build_report

        index = build_report([Path(r) for r in args.runs], args.output)
        print(f"supplement: {index}")
        return 0

    return handler


# ------------------------------------------------------------------------ demo


def register_demo(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--study", default=None,
                        help="study to run (default studies/reference_patient.yaml)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter of the study; repeatable")
    _add_run_options(parser)

    def handler(args: argparse.Namespace) -> int:
        from tdt import catalog
        from tdt.pipeline.report import build_report
        from tdt.pipeline.spec import parse_override

        study = args.study or str(_repo_root() / "studies" / "reference_patient.yaml")
        print("[1/3] data catalog: build + verify")
        for result in catalog.build():
            print(f"  {result.name}: {result.action} ({result.seconds:.1f} s)")
        bad = [r for r in catalog.verify() if r.ok is False]
        if bad:
            from tdt.errors import CatalogError

            raise CatalogError(bad[0].message)
        print(f"[2/3] run {study}")
        overrides = dict(parse_override(p) for p in args.param)
        result = _run(args, study, overrides)
        print("[3/3] supplement")
        index = build_report([result.run_dir])
        print(f"\nrun directory: {result.run_dir}")
        print(f"open the supplement: {index}")
        print(f"  (file://{index.resolve()})")
        return 0

    return handler
