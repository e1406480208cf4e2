"""Serve a notebook as a Voilà app, bound to 127.0.0.1 and requiring a token.

Voilà alone serves without authentication (``Voila.token`` is unset by default) and runs
arbitrary code in a kernel per visitor, so tdt never starts it without a token:

    python -m tdt.widgets._serve notebooks/04_treatment_planning.ipynb [--port 8866]

prints ``http://127.0.0.1:PORT/?token=...`` (a fresh 128-bit token per launch, or
``$TDT_VOILA_TOKEN``). A request without the token is redirected to the login page. JupyterLab
(``make lab``) needs no flag for this: Jupyter Server generates a token by default.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

from tdt.errors import InputError

TOKEN_ENV = "TDT_VOILA_TOKEN"


def voila_command(notebook: str | Path, port: int = 8866,
                  token: str | None = None) -> tuple[list[str], str]:
    """The Voilà command line (localhost only, token required) and its token."""
    path = Path(notebook)
    if path.suffix != ".ipynb" or not path.is_file():
        raise InputError(f"notebook: {str(path)!r} is not a .ipynb file")
    if not (isinstance(port, int) and 0 < port < 65536):
        raise InputError(f"port: {port!r}; expected an integer in 1..65535")
    token = token or os.environ.get(TOKEN_ENV) or secrets.token_hex(16)
    if len(token) < 16:
        raise InputError(f"token: {len(token)} characters; expected at least 16")
    command = [sys.executable, "-m", "voila", str(path), "--no-browser",
               "--Voila.ip=127.0.0.1", f"--port={port}", "--Voila.port_retries=0",
               f"--token={token}"]
    return command, token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tdt.widgets._serve",
                                     description="Serve a notebook with Voilà (token required)")
    parser.add_argument("notebook")
    parser.add_argument("--port", type=int, default=8866)
    args = parser.parse_args(argv)
    try:
        command, token = voila_command(args.notebook, args.port)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"serving on http://127.0.0.1:{args.port}/?token={token}", flush=True)
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
