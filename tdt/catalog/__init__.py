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
    atomically (temporary directory, then rename). Its ``sha256`` is the *content identity*
    (:func:`content_sha256`: DICOM elements and decoded pixels, parsed JSON, other bytes) of the
    built directory, so that rebuilding the same data with another patch release of pydicom or
    numpy still matches while a changed voxel or tag does not. The first build records it in
    ``catalog.yaml``; every later build or load must reproduce it, else ``CatalogError``.

The catalog directory is ``$TDT_CATALOG`` when set, else ``data_catalog/`` at the repository
root (tdt is installed editable from its repository).
"""

from tdt.catalog._build import (
    BuildResult,
    VerifyResult,
    build,
    dataset_path,
    dataset_sha256,
    verify,
)
from tdt.catalog._identity import content_files, content_sha256, file_content_sha256
from tdt.catalog._store import (
    CATALOG_FILE,
    GENERATED_DIR,
    KINDS,
    CatalogEntry,
    catalog_dir,
    entries,
    entry,
    generated_path,
    generated_sha256,
    reference_path,
    sha256_file,
    tree_files,
    tree_sha256,
    verify_file,
    verify_generated,
)

__all__ = [
    "CATALOG_FILE", "GENERATED_DIR", "KINDS", "BuildResult", "CatalogEntry", "VerifyResult",
    "build", "catalog_dir", "content_files", "content_sha256", "dataset_path", "dataset_sha256",
    "entries", "entry", "file_content_sha256", "generated_path", "generated_sha256",
    "reference_path", "sha256_file", "tree_files", "tree_sha256", "verify", "verify_file",
    "verify_generated",
]
