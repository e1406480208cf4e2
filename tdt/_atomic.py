"""Write a directory atomically: build it under a temporary name, then rename it into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(target: Path | str) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``target``; on success it replaces ``target``.

    The temporary directory is ``<parent>/.tmp-<name>-<uuid>``. If the block raises, it is
    removed and ``target`` is untouched; a process killed inside the block leaves only the
    ``.tmp-*`` folder, which callers clean up on their next run. An existing ``target`` is
    moved aside first and deleted after the rename, so readers never see a half-written one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:12]}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
