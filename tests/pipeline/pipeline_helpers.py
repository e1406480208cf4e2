"""Helpers shared by the pipeline tests (a private catalog, a tiny study, the CLI)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def write_catalog(directory: Path, data: bytes = b"hello tdt\n", extra: str = "") -> str:
    """A catalog with one file entry (``tinydata``) and generator entries; returns its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "d.txt").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (directory / "catalog.yaml").write_text(textwrap.dedent(f"""\
        # test catalog
        version: 1
        datasets:
          tinydata:
            kind: file
            path: d.txt
            sha256: {digest}
            description: "a tiny text file"
            licence: CC0-1.0
            citation: "none"
          tinygen:
            kind: generator
            generator: "tiny_generator:make"
            params: {{seed: 3, n: 5}}
            description: "deterministic generated values"
            licence: CC0-1.0
            citation: "none"
          # a comment that must survive
        """) + extra)
    return digest


def write_study(root: Path, name: str = "tiny", notebooks=("tiny.ipynb",), body: str = "") -> Path:
    """Copy fixture notebooks into ``root/notebooks`` and write ``root/studies/<name>.yaml``."""
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "studies").mkdir(exist_ok=True)
    for nb in notebooks:
        if not (root / "notebooks" / nb).exists():
            shutil.copyfile(FIXTURES / nb, root / "notebooks" / nb)
    listed = ", ".join(f"notebooks/{nb}" for nb in notebooks)
    text = body or textwrap.dedent("""\
        datasets: [tinydata]
        parameters: {x: 2.0, label: b, sleep_s: 0.0, fail: false}
        seed: 7
        """)
    path = root / "studies" / f"{name}.yaml"
    path.write_text(f"name: {name}\nversion: 1\nnotebooks: [{listed}]\n" + text)
    return path


def run_cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``python -m tdt.cli ARGS`` with this environment (TDT_CATALOG, PYTHONPATH)."""
    return subprocess.run([sys.executable, "-m", "tdt.cli", *args], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def main_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``tdt ARGS`` in this process (no interpreter start-up): (exit code, stdout, stderr)."""
    from tdt.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
