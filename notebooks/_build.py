"""Generate the tdt notebooks from code: ``python notebooks/_build.py`` (``--check`` to verify).

The ``.ipynb`` files are build products, kept in git without outputs so that reviews read their
sources: ``notebooks/_src/NN_name.py`` holds the cells of ``notebooks/NN_name.ipynb`` and
``notebooks/_src/_common.py`` what they share (kernel metadata, the papermill ``parameters``
cell, the setup cell). Adding a notebook is adding one source module. Every notebook has one
code cell tagged ``parameters`` (papermill); ``tdt run`` injects ``seed``, ``output_dir`` (the
run directory) and ``datasets`` after it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "_src"
#: name under which the sources package is loaded (``notebooks/`` itself is not a package)
PACKAGE = "tdt_notebook_sources"


def _load_sources():
    """Load ``notebooks/_src`` afresh as package ``PACKAGE``; return it and its notebook modules."""
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        PACKAGE, SOURCES / "__init__.py", submodule_search_locations=[str(SOURCES)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    modules = {path.stem: importlib.import_module(f"{PACKAGE}.{path.stem}")
               for path in sorted(SOURCES.glob("[0-9][0-9]_*.py"))}
    return importlib.import_module(f"{PACKAGE}._common"), modules


_COMMON, _MODULES = _load_sources()
#: kernel metadata of every notebook
METADATA = _COMMON.METADATA
#: notebook file name -> function returning its cells
NOTEBOOKS: dict[str, Callable[[], list]] = {
    f"{stem}.ipynb": module.cells for stem, module in _MODULES.items()}


def build(name: str):
    """The notebook ``name`` as an nbformat node (no outputs, deterministic cell ids)."""
    nb = new_notebook(cells=NOTEBOOKS[name](), metadata=METADATA)
    for i, cell in enumerate(nb.cells):
        cell.id = f"{Path(name).stem[:2]}-{i:02d}"
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    """The notebook's file content (nbformat JSON, trailing newline)."""
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str]) -> int:
    """Write every notebook, or with ``--check`` report (exit 1) those that differ from the sources."""
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = render(name)
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python notebooks/_build.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
