"""The data catalog: named, hashed datasets under ``data_catalog/`` (see ``catalog.yaml``).

Every vendored file (S-value tables, voxel kernels, nuclide energies, PBPK parameters) is an
entry with its sha256, licence and citation. Loading checks the hash; a mismatch is a
:class:`~tdt.errors.CatalogError`, never a silent reload.

Two kinds of entry:

``file``
    ``path`` (relative to the catalog directory) and the ``sha256`` of its bytes.
``generator``
    ``generator: "package.module:function"`` and ``params`` (a mapping, e.g. ``{seed: 0}``). The
    function is called as ``function(out_dir, **params)`` and must write the dataset
    deterministically into ``out_dir``; tdt builds it into ``generated/<name>/`` (git-ignored),
    atomically (temporary directory, then rename). Its ``sha256`` is the :func:`tree_sha256` of
    the built directory (sorted relative paths and file hashes). The first build records it in
    ``catalog.yaml``; every later build or load must reproduce it, else ``CatalogError``.

The catalog directory is ``$TDT_CATALOG`` when set, else ``data_catalog/`` at the repository
root (tdt is installed editable from its repository).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdt.errors import CatalogError

CATALOG_FILE = "catalog.yaml"
GENERATED_DIR = "generated"
KINDS = ("file", "generator")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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
    :func:`tree_sha256` of the built directory).
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
    import yaml

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
    from tdt.errors import unknown_name_error

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


def verify_generated(entry: CatalogEntry) -> Path:
    """Check a built generator entry against its recorded sha256 and return its directory."""
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
    actual = tree_sha256(path)
    if actual != entry.sha256:
        raise CatalogError(
            f"catalog: dataset {entry.name!r}: sha256 of generated/{entry.name} is {actual}, "
            f"expected {entry.sha256} (the generator or its output changed; rebuild with "
            f"`tdt catalog build --force {entry.name}` or update catalog.yaml deliberately)"
        )
    return path


def dataset_path(name: str) -> Path:
    """Verified path of dataset ``name``: a file, or the directory of a generator entry.

    A generator entry that is not built yet is built first (deterministically) and checked.
    """
    item = entry(name)
    if item.kind == "file":
        return verify_file(item)
    if not generated_path(item).is_dir() or item.sha256 is None:
        build(name)
        item = entry(name)
    return verify_generated(item)


def dataset_sha256(name: str) -> str:
    """The verified sha256 of dataset ``name`` (file bytes, or tree hash of a generated dir)."""
    dataset_path(name)
    digest = entry(name).sha256
    assert digest is not None  # verified above
    return digest


def reference_path(relative_path: str) -> Path:
    """Verified path of the file entry whose ``path`` is ``relative_path``."""
    for item in entries().values():
        if item.kind == "file" and item.path == relative_path:
            return verify_file(item)
    raise CatalogError(f"catalog: no dataset has path {relative_path!r} in catalog.yaml")


# --------------------------------------------------------------------------- building


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive ``fcntl.flock`` on ``lock_path`` (released by the OS if the process dies)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _resolve_generator(item: CatalogEntry):
    module_name, _, func_name = (item.generator or "").partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CatalogError(
            f"catalog: dataset {item.name!r}: generator module {module_name!r} cannot be "
            f"imported ({exc})"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise CatalogError(
            f"catalog: dataset {item.name!r}: generator {item.generator!r} has no callable "
            f"{func_name!r}"
        )
    return func


def _record_sha256(name: str, digest: str) -> None:
    """Write ``sha256: <digest>`` into the entry ``name`` of catalog.yaml, keeping the rest."""
    path = catalog_dir() / CATALOG_FILE
    lines = path.read_text().splitlines(keepends=True)
    header = re.compile(rf"^(\s+){re.escape(name)}:\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        raise CatalogError(f"catalog.yaml: cannot find the block of dataset {name!r}")
    indent = len(header.match(lines[start]).group(1))
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    body = range(start + 1, end)
    child_indent = next(
        (len(lines[i]) - len(lines[i].lstrip()) for i in body if lines[i].strip()), indent + 2
    )
    new_line = " " * child_indent + f"sha256: {digest}\n"
    sha_line = next((i for i in body if lines[i].lstrip().startswith("sha256:")), None)
    if sha_line is not None:
        lines[sha_line] = new_line
    else:
        lines.insert(start + 1, new_line)
    tmp = path.with_name(f".{CATALOG_FILE}.{uuid.uuid4().hex}")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)


@dataclass(frozen=True)
class BuildResult:
    """Outcome of building one generator entry."""

    name: str
    path: Path
    sha256: str
    action: str  # "built", "recorded" (first build, sha256 written), "up to date"
    seconds: float


def _build_one(item: CatalogEntry, force: bool) -> BuildResult:
    start = time.perf_counter()
    target = generated_path(item)
    root = target.parent
    with _locked(root / f".lock-{item.name}"):
        item = entries()[item.name]  # re-read: another process may have recorded the sha256
        if target.is_dir() and not force and item.sha256 is not None:
            verify_generated(item)
            return BuildResult(item.name, target, item.sha256, "up to date",
                               time.perf_counter() - start)
        func = _resolve_generator(item)
        tmp = root / f".tmp-{item.name}-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            func(tmp, **item.params)
            digest = tree_sha256(tmp)
            if item.sha256 is not None and digest != item.sha256:
                raise CatalogError(
                    f"catalog: dataset {item.name!r}: the generator {item.generator} built "
                    f"content with sha256 {digest}, expected {item.sha256} (not deterministic, "
                    "or changed since the sha256 was recorded)"
                )
            if target.exists():
                shutil.rmtree(target)
            os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        action = "built"
        if item.sha256 is None:
            _record_sha256(item.name, digest)
            action = "recorded"
        return BuildResult(item.name, target, digest, action, time.perf_counter() - start)


def build(*names: str, force: bool = False) -> list[BuildResult]:
    """Build generator entries (all when no name is given) into ``generated/<name>/``.

    Up-to-date entries are only verified; ``force`` rebuilds them (and still requires the
    recorded sha256). Raises ``CatalogError`` on a mismatch.
    """
    table = entries()
    selected = [entry(n) for n in names] if names else list(table.values())
    for item in selected:
        if names and item.kind != "generator":
            raise CatalogError(
                f"catalog: dataset {item.name!r} is a {item.kind} entry; only generator entries "
                "are built"
            )
    return [_build_one(item, force) for item in selected if item.kind == "generator"]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one entry: ``ok`` is True, False (mismatch/missing) or None."""

    name: str
    kind: str
    ok: bool | None
    message: str


def verify(*names: str) -> list[VerifyResult]:
    """Check the sha256 of every (or the named) entries; a generator not built is ``ok=None``."""
    selected = [entry(n) for n in names] if names else list(entries().values())
    results = []
    for item in selected:
        try:
            if item.kind == "file":
                verify_file(item)
            elif not generated_path(item).is_dir():
                results.append(VerifyResult(item.name, item.kind, None, "not built"))
                continue
            else:
                verify_generated(item)
        except CatalogError as exc:
            results.append(VerifyResult(item.name, item.kind, False, str(exc)))
            continue
        results.append(VerifyResult(item.name, item.kind, True, "ok"))
    return results
