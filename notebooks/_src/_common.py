"""What every notebook shares: kernel metadata, the papermill parameters, the setup cell, cell helpers.

Every notebook has one code cell tagged ``parameters`` (papermill); ``tdt run`` injects ``seed``,
``output_dir`` (the run directory) and ``datasets`` after it. Notebooks stay thin: the logic is in
the tdt package, the notebook narrates and plots.
"""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_markdown_cell

#: kernel metadata of every notebook (the venv's default "python3" kernel)
METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                   "name": "python3"},
    "language_info": {"name": "python"},
}

COMMON_PARAMETERS = '''seed = 0            # random seed (injected by `tdt run`)
output_dir = None   # run directory: results are saved there when set (injected by `tdt run`)
datasets = {}       # data-catalog name -> path (injected by `tdt run`)'''

SETUP = '''import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# inline figures even when MPLBACKEND=Agg is set (tests, CI): the executed notebook keeps them
%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import tdt
from tdt import plotting
from tdt.pipeline import results

SAVE = output_dir is not None  # interactive use writes nothing unless output_dir is set'''


def md(text: str):
    """A markdown cell (leading/trailing blank lines stripped)."""
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: tuple[str, ...] = ()):
    """A code cell with optional cell tags."""
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def parameters(extra: str):
    """The papermill ``parameters`` cell: the common parameters, then the notebook's own."""
    return code(COMMON_PARAMETERS + "\n" + extra.strip("\n"), tags=("parameters",))
