"""The ``tdt`` command line. Subcommands register themselves in :data:`COMMANDS`.

A :class:`~tdt.errors.TdtError` becomes one line on stderr (``tdt: error: ...``) and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from tdt import __version__
from tdt.errors import TdtError
from tdt.physics import nuclide
from tdt.units import HOURS_PER_DAY, mev_to_kev

#: name → "module:function" that adds the subcommand's arguments and returns its handler.
#: Modules are imported only when their subcommand is used, so ``tdt --help`` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "nuclide": ("tdt.cli", "_register_nuclide"),
    "catalog": ("tdt.pipeline._cli", "register_catalog"),
    "run": ("tdt.pipeline._cli", "register_run"),
    "verify": ("tdt.pipeline._cli", "register_verify"),
    "report": ("tdt.pipeline._cli", "register_report"),
    "demo": ("tdt.pipeline._cli", "register_demo"),
    "dose": ("tdt.pipeline._cli", "register_dose"),
}

HELP = {
    "nuclide": "show half-life and mean emitted energies of a radionuclide",
    "catalog": "list, build or verify the data catalog",
    "run": "execute a study (papermill), writing runs/<study>/<run-id>/",
    "verify": "re-hash a run's outputs against its manifest",
    "report": "build a static HTML supplement from runs",
    "demo": "build the catalog, run the reference study and its supplement",
    "dose": "organ-dose report (HTML, PDF, CSV) from a patient's DICOM folder",
}


def _register_nuclide(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("name", help="e.g. Lu-177, lu177, 177Lu")
    parser.add_argument("--chain", action="store_true", help="sum daughters (Ac-225, Pb-212)")

    def handler(args: argparse.Namespace) -> int:
        n = nuclide(args.name, chain=args.chain)
        print(f"{n.name}{' (+ daughters: ' + ', '.join(n.chain) + ')' if n.chain else ''}")
        print(f"  half-life            {n.half_life_h:.4f} h ({n.half_life_h / HOURS_PER_DAY:.4f} d)")
        print(f"  decay constant       {n.decay_constant_per_h:.6e} 1/h")
        print(f"  electrons            {mev_to_kev(n.energy_electron_mev):.3f} keV/decay")
        print(f"  alphas               {mev_to_kev(n.energy_alpha_mev):.3f} keV/decay")
        print(f"  non-penetrating      {mev_to_kev(n.energy_nonpenetrating_mev):.3f} keV/decay")
        print(f"  penetrating (photon) {mev_to_kev(n.energy_penetrating_mev):.3f} keV/decay")
        print("  source: ICRP Publication 107 (via data_catalog/nuclides)")
        return 0

    return handler


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable]]:
    parser = argparse.ArgumentParser(
        prog="tdt",
        description="Theranostic digital twins: reproducible, Bayesian, mechanistic RPT dosimetry.",
    )
    parser.add_argument("--version", action="version", version=f"tdt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    handlers: dict[str, Callable] = {}
    for name, (module_name, func_name) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=HELP.get(name))
        try:
            register = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError):
            continue  # a subcommand whose module is not built yet
        handlers[name] = register(sub_parser)
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tdt`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "--version"}:
        # fast path: no subcommand modules needed
        parser, _ = _light_parser()
        parser.parse_args(argv or ["--help"])
        return 0
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    handler = handlers.get(args.command)
    if handler is None:
        print(f"tdt: error: command {args.command!r} is not available in this build", file=sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except TdtError as exc:
        print(f"tdt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tdt: interrupted", file=sys.stderr)
        return 130


def _light_parser() -> tuple[argparse.ArgumentParser, None]:
    parser = argparse.ArgumentParser(
        prog="tdt",
        description="Theranostic digital twins: reproducible, Bayesian, mechanistic RPT dosimetry.",
    )
    parser.add_argument("--version", action="version", version=f"tdt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        sub.add_parser(name, help=HELP.get(name))
    return parser, None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
