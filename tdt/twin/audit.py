"""Append-only audit log: one JSON object per line, hash-chained.

Every entry carries ``seq``, ``time_utc``, ``event``, ``payload``, ``prev_hash`` and ``hash`` =
sha256 of the canonical JSON of the entry without its own hash. Editing, deleting or reordering
any earlier line breaks the chain, which :meth:`AuditLog.verify` reports. The log is only ever
appended to (file opened in ``"a"`` mode); it holds no PHI (the patient id is an opaque label).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from tdt.errors import InputError
from tdt.twin.record import canonical_hash

GENESIS = "0" * 64


class AuditLog:
    """Hash-chained, append-only event log, in memory and optionally mirrored to a file."""

    def __init__(self, path: str | Path | None = None, entries: list[dict] | None = None):
        self.path = None if path is None else Path(path)
        self._entries: list[dict] = list(entries or [])
        if self.path is not None and self.path.exists() and not self._entries:
            self._entries = read_entries(self.path)
        self.verify()

    @property
    def entries(self) -> tuple[dict, ...]:
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def head(self) -> str:
        return self._entries[-1]["hash"] if self._entries else GENESIS

    def append(self, event: str, payload: dict) -> dict:
        """Add an entry (JSON-serialisable payload) and return it."""
        entry = {
            "seq": len(self._entries),
            "time_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "event": str(event),
            "payload": json.loads(json.dumps(payload, default=_jsonable)),
            "prev_hash": self.head,
        }
        entry["hash"] = canonical_hash(entry)
        self._entries.append(entry)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
        return entry

    def verify(self) -> bool:
        """Check the hash chain; raise InputError naming the first broken entry."""
        previous = GENESIS
        for i, entry in enumerate(self._entries):
            body = {k: v for k, v in entry.items() if k != "hash"}
            if entry.get("seq") != i or entry.get("prev_hash") != previous:
                raise InputError(f"audit log: entry {i} is out of sequence or its prev_hash does "
                                 "not match the previous entry (log edited or truncated)")
            if canonical_hash(body) != entry.get("hash"):
                raise InputError(f"audit log: entry {i} ({entry.get('event')!r}) does not match "
                                 "its hash (log edited)")
            previous = entry["hash"]
        return True

    def to_jsonl(self) -> str:
        return "".join(json.dumps(e, sort_keys=True) + "\n" for e in self._entries)


def read_entries(path: str | Path) -> list[dict]:
    """Entries of a JSON-lines audit file."""
    entries = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                raise InputError(f"audit log {path}: line {n + 1} is not valid JSON") from None
    return entries


def _jsonable(value):
    try:
        import numpy as np  # noqa: PLC0415

        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    return str(value)
