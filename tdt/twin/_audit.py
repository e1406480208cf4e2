"""Append-only audit log: one JSON object per line, chained with a keyed MAC.

Every entry carries ``seq``, ``time_utc``, ``event``, ``payload``, ``prev_hash`` and ``hash`` =
HMAC-SHA256 (:mod:`tdt.integrity`, the installation key) of the canonical JSON of the entry
without its own hash. Editing, deleting or reordering any earlier line breaks the chain, which
:meth:`AuditLog.verify` reports; without the key the chain cannot be recomputed after an edit.
A saved twin stores the head of its chain in its signed header, and the "save" entry records the
file's MAC, so log and file vouch for each other. Logs written before keyed chains (plain
sha256) verify only with ``legacy=True`` (loading an unsigned twin with ``allow_unsigned``). The log is only ever
appended to (file opened in ``"a"`` mode); it holds no PHI (the patient id is an opaque label).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from tdt.errors import InputError
from tdt.integrity import mac_json
from tdt.twin._record import canonical_hash

GENESIS = "0" * 64


class AuditLog:
    """Hash-chained, append-only event log, in memory and optionally mirrored to a file."""

    def __init__(self, path: str | Path | None = None, entries: list[dict] | None = None,
                 legacy: bool = False):
        self.path = None if path is None else Path(path)
        self._entries: list[dict] = list(entries or [])
        if self.path is not None and self.path.exists() and not self._entries:
            self._entries = read_entries(self.path)
        self.verify(legacy=legacy)

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
        entry["hash"] = mac_json(entry)
        self._entries.append(entry)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
        return entry

    def verify(self, legacy: bool = False) -> bool:
        """Check the keyed chain; raise InputError naming the first broken entry.

        ``legacy=True`` also accepts the unkeyed sha256 chain of logs written before tdt keyed
        them (unauthenticated: anyone can recompute it)."""
        previous = GENESIS
        for i, entry in enumerate(self._entries):
            if not isinstance(entry, dict):
                raise InputError(f"audit log: entry {i} is {type(entry).__name__}; expected an "
                                 "object")
            body = {k: v for k, v in entry.items() if k != "hash"}
            if entry.get("seq") != i or entry.get("prev_hash") != previous:
                raise InputError(f"audit log: entry {i} is out of sequence or its prev_hash does "
                                 "not match the previous entry (log edited or truncated)")
            if entry.get("hash") not in ((mac_json(body), canonical_hash(body)) if legacy
                                         else (mac_json(body),)):
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
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    return str(value)
