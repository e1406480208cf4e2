"""The data catalog: named, hashed datasets under ``data_catalog/`` (see ``catalog.yaml``).

Every vendored file (S-value tables, voxel kernels, nuclide energies, PBPK parameters) is an
entry with its sha256, licence and citation. Loading checks the hash; a mismatch is a
:class:`~tdt.errors.CatalogError`, never a silent reload.

The catalog directory is ``$TDT_CATALOG`` when set, else ``data_catalog/`` at the repository
root (tdt is installed editable from its repository).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdt.errors import CatalogError

CATALOG_FILE = "catalog.yaml"


def catalog_dir() -> Path:
    """The directory holding ``catalog.yaml`` and the vendored files."""
    env = os.environ.get("TDT_CATALOG")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "data_catalog"
    if not (path / CATALOG_FILE).is_file():
        raise CatalogError(
            f"data catalog: no {CATALOG_FILE} in {path}; set TDT_CATALOG to the data_catalog "
            "directory of a tdt checkout"
        )
    return path


def sha256_file(path: Path | str, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CatalogEntry:
    """One dataset of the catalog.

    ``kind`` is ``"file"`` (``path`` in the catalog directory, fixed ``sha256``) or
    ``"generator"`` (built deterministically by ``generator`` with ``params``; ``sha256`` is that of
    the built manifest).
    """

    name: str
    kind: str
    description: str
    licence: str
    citation: str
    path: str | None = None
    sha256: str | None = None
    generator: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _load_entries(directory: str) -> dict[str, CatalogEntry]:
    import yaml

    raw = yaml.safe_load((Path(directory) / CATALOG_FILE).read_text())
    entries: dict[str, CatalogEntry] = {}
    for name, spec in (raw.get("datasets") or {}).items():
        try:
            entries[name] = CatalogEntry(name=name, **spec)
        except TypeError as exc:
            raise CatalogError(f"catalog.yaml: dataset {name!r}: {exc}") from None
    return entries


def entries() -> dict[str, CatalogEntry]:
    """All catalog entries by name."""
    return _load_entries(str(catalog_dir()))


_VERIFIED: dict[tuple[str, float], str] = {}


def verify_file(entry: CatalogEntry) -> Path:
    """Check a file entry's sha256 and return its absolute path (hash cached per mtime)."""
    if entry.kind != "file" or entry.path is None:
        raise CatalogError(f"catalog: dataset {entry.name!r} is not a file entry")
    path = catalog_dir() / entry.path
    if not path.is_file():
        raise CatalogError(f"catalog: dataset {entry.name!r}: file {entry.path} is missing")
    key = (str(path), path.stat().st_mtime)
    actual = _VERIFIED.get(key) or sha256_file(path)
    if actual != entry.sha256:
        raise CatalogError(
            f"catalog: dataset {entry.name!r}: sha256 of {entry.path} is {actual}, expected "
            f"{entry.sha256} (the file changed; restore it or update catalog.yaml deliberately)"
        )
    _VERIFIED[key] = actual
    return path


def dataset_path(name: str) -> Path:
    """Verified path of the file dataset ``name``."""
    from tdt.errors import unknown_name_error

    table = entries()
    if name not in table:
        raise unknown_name_error("catalog dataset", name, table)
    return verify_file(table[name])


def reference_path(relative_path: str) -> Path:
    """Verified path of the file entry whose ``path`` is ``relative_path``."""
    for entry in entries().values():
        if entry.kind == "file" and entry.path == relative_path:
            return verify_file(entry)
    raise CatalogError(f"catalog: no dataset has path {relative_path!r} in catalog.yaml")
