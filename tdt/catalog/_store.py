"""Catalog entries, their hashes and their verification (no building: see ``_build``)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tdt.catalog._identity import IDENTITY_VERSION, content_sha256
from tdt.errors import CatalogError, unknown_name_error

CATALOG_FILE = "catalog.yaml"
GENERATED_DIR = "generated"
KINDS = ("file", "generator")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def catalog_dir() -> Path:
    """The directory holding ``catalog.yaml`` and the vendored files."""
    env = os.environ.get("TDT_CATALOG")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "data_catalog"
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


#: (path, mtime_ns, size) -> sha256, so that repeated loads do not re-read unchanged files.
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = sha256_file(path)
    return _FILE_HASHES[key]


def tree_files(directory: Path | str) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every regular file under ``directory`` (sorted)."""
    root = Path(directory)
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[path.relative_to(root).as_posix()] = _cached_sha256(path)
    return files


def tree_sha256(directory: Path | str) -> str:
    """sha256 of a directory: of the lines ``"<relative path>\\t<file sha256>\\n"``, sorted by path.

    Independent of timestamps, permissions and the directory's own location.
    """
    digest = hashlib.sha256()
    for relative, file_hash in sorted(tree_files(directory).items()):
        digest.update(f"{relative}\t{file_hash}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class CatalogEntry:
    """One dataset of the catalog.

    ``kind`` is ``"file"`` (``path`` in the catalog directory, fixed ``sha256``) or
    ``"generator"`` (built deterministically by ``generator`` with ``params``; ``sha256`` is the
    content identity, :func:`~tdt.catalog.content_sha256`, of the built directory).
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


def _check_entry(entry: CatalogEntry) -> None:
    where = f"catalog.yaml: dataset {entry.name!r}"
    if entry.kind not in KINDS:
        raise CatalogError(f"{where}: kind {entry.kind!r}; expected one of {', '.join(KINDS)}")
    if entry.kind == "file" and not isinstance(entry.path, str):
        raise CatalogError(f"{where}: path {entry.path!r}; expected a relative file path")
    if entry.kind == "generator":
        if not isinstance(entry.generator, str) or entry.generator.count(":") != 1:
            raise CatalogError(
                f"{where}: generator {entry.generator!r}; expected 'package.module:function'"
            )
        if not isinstance(entry.params, dict):
            raise CatalogError(f"{where}: params {entry.params!r}; expected a mapping")
    if entry.sha256 is not None and not (
        isinstance(entry.sha256, str) and _HEX64.match(entry.sha256)
    ):
        raise CatalogError(f"{where}: sha256 {entry.sha256!r}; expected 64 lowercase hex digits")


@functools.lru_cache(maxsize=8)
def _load_entries(directory: str, _mtime_ns: int = 0) -> dict[str, CatalogEntry]:
    raw = yaml.safe_load((Path(directory) / CATALOG_FILE).read_text()) or {}
    if not isinstance(raw, dict):
        raise CatalogError(f"catalog.yaml in {directory}: expected a mapping at top level")
    entries: dict[str, CatalogEntry] = {}
    for name, spec in (raw.get("datasets") or {}).items():
        if not isinstance(spec, dict):
            raise CatalogError(f"catalog.yaml: dataset {name!r}: expected a mapping, got {spec!r}")
        try:
            entry = CatalogEntry(name=name, **spec)
        except TypeError as exc:
            raise CatalogError(f"catalog.yaml: dataset {name!r}: {exc}") from None
        _check_entry(entry)
        entries[name] = entry
    return entries


def entries() -> dict[str, CatalogEntry]:
    """All catalog entries by name (re-read when ``catalog.yaml`` changes)."""
    directory = catalog_dir()
    return _load_entries(str(directory), (directory / CATALOG_FILE).stat().st_mtime_ns)


def entry(name: str) -> CatalogEntry:
    """The catalog entry ``name`` (``InputError`` naming close matches when unknown)."""
    table = entries()
    if name not in table:
        raise unknown_name_error("catalog dataset", name, table)
    return table[name]


def verify_file(entry: CatalogEntry) -> Path:
    """Check a file entry's sha256 and return its absolute path (hash cached per mtime)."""
    if entry.kind != "file" or entry.path is None:
        raise CatalogError(f"catalog: dataset {entry.name!r} is not a file entry")
    path = catalog_dir() / entry.path
    if not path.is_file():
        raise CatalogError(f"catalog: dataset {entry.name!r}: file {entry.path} is missing")
    actual = _cached_sha256(path)
    if actual != entry.sha256:
        raise CatalogError(
            f"catalog: dataset {entry.name!r}: sha256 of {entry.path} is {actual}, expected "
            f"{entry.sha256} (the file changed; restore it or update catalog.yaml deliberately)"
        )
    return path


def generated_path(entry: CatalogEntry) -> Path:
    """Where the generator entry ``entry`` is built: ``<catalog>/generated/<name>/``."""
    return catalog_dir() / GENERATED_DIR / entry.name


def generated_sha256(path: Path) -> str:
    """Content identity (:func:`content_sha256`) of a built directory, cached on its bytes.

    Decoding every DICOM file takes a second or two, so the identity is remembered in memory and
    in ``generated/.<name>.identity.json`` next to the tree hash of the bytes it was computed from;
    any changed byte changes that tree hash and forces a recomputation.
    """
    bytes_hash = tree_sha256(path)
    sidecar = path.parent / f".{path.name}.identity.json"
    key = (str(path), bytes_hash)
    if key in _IDENTITIES:
        return _IDENTITIES[key]
    try:
        cached = json.loads(sidecar.read_text())
        if cached.get("bytes_sha256") == bytes_hash and cached.get("version") == IDENTITY_VERSION:
            _IDENTITIES[key] = cached["content_sha256"]
            return _IDENTITIES[key]
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    identity = content_sha256(path)
    _IDENTITIES[key] = identity
    tmp = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": IDENTITY_VERSION, "bytes_sha256": bytes_hash,
                               "content_sha256": identity}))
    os.replace(tmp, sidecar)
    return identity


_IDENTITIES: dict[tuple[str, str], str] = {}


def mismatch_advice(name: str) -> str:
    """What a user should do when a generated dataset does not match its recorded identity."""
    return (
        "If your environment is not the locked one, rebuild it (`rm -rf .venv && make venv`) "
        f"and retry; if you changed the generator on purpose, record the new identity with "
        f"`tdt catalog build --record {name}` and commit catalog.yaml"
    )


def verify_generated(entry: CatalogEntry) -> Path:
    """Check a built generator entry against its recorded content identity; return its dir."""
    if entry.kind != "generator":
        raise CatalogError(f"catalog: dataset {entry.name!r} is not a generator entry")
    path = generated_path(entry)
    if not path.is_dir():
        raise CatalogError(
            f"catalog: dataset {entry.name!r} is not built; run `tdt catalog build {entry.name}`"
        )
    if entry.sha256 is None:
        raise CatalogError(
            f"catalog: dataset {entry.name!r} has no recorded sha256; run "
            f"`tdt catalog build {entry.name}` to record it"
        )
    actual = generated_sha256(path)
    if actual != entry.sha256:
        raise CatalogError(
            f"catalog: dataset {entry.name!r}: content sha256 of generated/{entry.name} is "
            f"{actual}, expected {entry.sha256} (the built data were edited, or the generator's "
            f"output changed). Rebuild with `tdt catalog build --force {entry.name}`. "
            + mismatch_advice(entry.name)
        )
    return path


def reference_path(relative_path: str) -> Path:
    """Verified path of the file entry whose ``path`` is ``relative_path``."""
    for item in entries().values():
        if item.kind == "file" and item.path == relative_path:
            return verify_file(item)
    raise CatalogError(f"catalog: no dataset has path {relative_path!r} in catalog.yaml")


