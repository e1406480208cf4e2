"""Building generator entries and verifying the whole catalog.

Builds are atomic (a temporary directory renamed into place) and serialised by an ``flock`` on
the ``generated/`` directory itself, so no lock file is left behind. A build that was killed
leaves a ``.tmp-<name>-*`` directory; the next build of that entry, holding the lock, removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tdt._atomic import atomic_directory
from tdt.catalog._identity import content_sha256
from tdt.catalog._store import (
    CATALOG_FILE,
    GENERATED_DIR,
    CatalogEntry,
    catalog_dir,
    entries,
    entry,
    generated_path,
    mismatch_advice,
    verify_file,
    verify_generated,
)
from tdt.errors import CatalogError


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
    """The verified sha256 of dataset ``name`` (file bytes, or content identity of a generator)."""
    dataset_path(name)
    digest = entry(name).sha256
    assert digest is not None  # verified above
    return digest


@contextlib.contextmanager
def _locked_directory(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``directory`` itself (released by the OS if the process dies)."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


def _remove_leftovers(root: Path, name: str) -> None:
    """Remove what a killed build of ``name`` left (call only while holding the lock)."""
    for leftover in [*root.glob(f".tmp-{name}-*"), *root.glob(f".old-{name}-*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    stale_lock = root / f".lock-{name}"  # lock files of earlier tdt versions
    if stale_lock.is_file():
        stale_lock.unlink(missing_ok=True)


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
    action: str  # "built", "recorded" (sha256 written to catalog.yaml), "up to date"
    seconds: float


def _build_one(item: CatalogEntry, force: bool, record: bool) -> BuildResult:
    start = time.perf_counter()
    target = generated_path(item)
    root = target.parent
    with _locked_directory(root):
        _remove_leftovers(root, item.name)
        item = entries()[item.name]  # re-read: another process may have recorded the sha256
        if target.is_dir() and not force and not record and item.sha256 is not None:
            verify_generated(item)
            return BuildResult(item.name, target, item.sha256, "up to date",
                               time.perf_counter() - start)
        func = _resolve_generator(item)
        with atomic_directory(target) as tmp:
            func(tmp, **item.params)
            digest = content_sha256(tmp)
            if item.sha256 is not None and digest != item.sha256 and not record:
                raise CatalogError(
                    f"catalog: dataset {item.name!r}: the generator {item.generator} built "
                    f"content with sha256 {digest}, expected {item.sha256} (not deterministic, "
                    f"or changed since the sha256 was recorded). " + mismatch_advice(item.name)
                )
        action = "built"
        if item.sha256 != digest:
            _record_sha256(item.name, digest)
            action = "recorded"
        return BuildResult(item.name, target, digest, action, time.perf_counter() - start)


def build(*names: str, force: bool = False, record: bool = False) -> list[BuildResult]:
    """Build generator entries (all when no name is given) into ``generated/<name>/``.

    Up-to-date entries are only verified; ``force`` rebuilds them (and still requires the
    recorded sha256); ``record`` rebuilds and writes the new content identity into catalog.yaml
    (for a deliberate change of the generator). Raises ``CatalogError`` on a mismatch.
    """
    selected = [entry(n) for n in names] if names else list(entries().values())
    for item in selected:
        if names and item.kind != "generator":
            raise CatalogError(
                f"catalog: dataset {item.name!r} is a {item.kind} entry; only generator entries "
                "are built"
            )
    return [_build_one(item, force, record) for item in selected if item.kind == "generator"]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one entry: ``ok`` is True, False (mismatch/missing) or None."""

    name: str
    kind: str
    ok: bool | None
    message: str


def _verify_unbuilt(item: CatalogEntry) -> VerifyResult:
    """Build a generator entry into a temporary folder and compare its content identity."""
    if item.sha256 is None:
        return VerifyResult(item.name, item.kind, None,
                            f"not built, no sha256 recorded yet; run `tdt catalog build "
                            f"{item.name}` to build it and record one")
    func = _resolve_generator(item)
    with tempfile.TemporaryDirectory(prefix=f"tdt-verify-{item.name}-") as tmp:
        func(Path(tmp), **item.params)
        digest = content_sha256(tmp)
    if digest != item.sha256:
        return VerifyResult(
            item.name, item.kind, False,
            f"built in a temporary folder: content sha256 {digest}, expected {item.sha256}. "
            + mismatch_advice(item.name))
    return VerifyResult(item.name, item.kind, True, "ok (built in a temporary folder)")


def verify(*names: str, build_missing: bool = True) -> list[VerifyResult]:
    """Check every (or the named) entries.

    A generator entry that is not built is built into a temporary folder and compared, unless
    ``build_missing`` is False (then ``ok=None``, "not built").
    """
    selected = [entry(n) for n in names] if names else list(entries().values())
    results = []
    for item in selected:
        try:
            if item.kind == "file":
                verify_file(item)
            elif not generated_path(item).is_dir():
                results.append(_verify_unbuilt(item) if build_missing else
                               VerifyResult(item.name, item.kind, None,
                                            "not built (skipped: --no-build)"))
                continue
            else:
                verify_generated(item)
        except CatalogError as exc:
            results.append(VerifyResult(item.name, item.kind, False, str(exc)))
            continue
        results.append(VerifyResult(item.name, item.kind, True, "ok"))
    return results


__all__ = ["GENERATED_DIR", "BuildResult", "VerifyResult", "build", "dataset_path",
           "dataset_sha256", "verify"]
