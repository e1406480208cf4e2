"""Run the benchmarks: ``python -m benchmarks [NAME ...] [--quick]`` (``make bench`` runs all).

Each ``benchmarks/bench_<name>.py`` exposes ``run(quick: bool) -> list[dict]``; every row has
``case``, ``tdt`` (seconds or a figure), ``baseline`` (same unit), ``unit``, ``target`` and ``note``.
The table prints the ratio baseline / tdt (higher is better for times) and writes
``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

HERE = Path(__file__).resolve().parent


def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="bench modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)
    available = sorted(
        m.name[len("bench_"):] for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_")
    )
    names = args.names or available
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    print(f"# tdt benchmarks on {platform.node()} ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, jax {jax.__version__} {jax.default_backend()})")
    header = f"{'benchmark':<12} {'case':<46} {'tdt':>10} {'baseline':>10} {'unit':<8} {'ratio':>8}  target / note"
    print(header)
    print("-" * len(header))
    failed = 0
    for name in names:
        if name not in available:
            print(f"{name:<12} unknown benchmark; available: {', '.join(available)}")
            failed += 1
            continue
        module = importlib.import_module(f"benchmarks.bench_{name}")
        start = time.perf_counter()
        rows = module.run(quick=args.quick)
        for row in rows:
            ratio = row.get("ratio")
            if ratio is None and row.get("baseline") and row.get("tdt"):
                ratio = row["baseline"] / row["tdt"]
                row["ratio"] = ratio
            print(f"{name:<12} {row['case'][:46]:<46} {_format(row.get('tdt')):>10} "
                  f"{_format(row.get('baseline')):>10} {row.get('unit', 's'):<8} {_format(ratio):>8}  "
                  f"{row.get('target', '')} {row.get('note', '')}")
        (results_dir / f"{name}.json").write_text(json.dumps(
            {"benchmark": name, "seconds": time.perf_counter() - start, "rows": rows,
             "platform": platform.platform(), "python": sys.version}, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
