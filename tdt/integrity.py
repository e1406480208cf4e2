"""Keyed integrity of saved twins, posteriors and audit logs: HMAC-SHA256 (RFC 2104) with a
per-installation secret key.

A plain sha256 stored next to the data proves nothing: whoever edits the data recomputes it. An
HMAC can only be recomputed by someone holding the key, so an edited file, re-hashed or not, is
refused by any tdt installation that did not write it with the same key.

The key: 32 random bytes, hex-encoded, in ``$TDT_HMAC_KEY_FILE`` if set, else
``$XDG_CONFIG_HOME/tdt/hmac.key`` (default ``~/.config/tdt/hmac.key``). It is created on first
use with mode 0600 (its folder 0700); a key file readable by group or others is refused. To
exchange signed twins between machines, give both the same key file (docs/twin.md). Losing the
key makes existing files unverifiable (they can then only be loaded with an explicit opt-out).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

from tdt.errors import InputError

KEY_ENV = "TDT_HMAC_KEY_FILE"
ALGORITHM = "HMAC-SHA256"
_KEY_BYTES = 32


def key_path() -> Path:
    """Where the installation key lives (see the module docstring)."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "tdt" / "hmac.key"


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:  # O_EXCL: two processes creating the key at once agree on the first one
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(_KEY_BYTES) + "\n")


def installation_key() -> bytes:
    """The secret key (created on first use); InputError if the file is unusable."""
    path = key_path()
    if not path.exists():
        _create(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise InputError(f"{KEY_ENV} / key file {str(path)!r}: cannot be read ({exc})") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"key file {str(path)!r}: mode {stat.S_IMODE(mode):04o}; expected 0600 "
                         f"(the key must be private: chmod 600 {path})")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise InputError(f"key file {str(path)!r}: expected at least 32 hex digits "
                         "(a 128-bit or longer key)")
    return key


def key_id(key: bytes | None = None) -> str:
    """A short public fingerprint of the key, stored with signed files to explain mismatches."""
    key = installation_key() if key is None else key
    return hashlib.sha256(b"tdt-key-id|" + key).hexdigest()[:16]


def mac(data: bytes, key: bytes | None = None) -> str:
    """HMAC-SHA256 of ``data`` (hex)."""
    return hmac.new(installation_key() if key is None else key, data, hashlib.sha256).hexdigest()


def mac_json(obj, key: bytes | None = None) -> str:
    """HMAC-SHA256 of ``obj`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return mac(text.encode(), key)


def verify(data: bytes, tag: object, what: str, stored_key_id: object = None) -> None:
    """Raise InputError naming ``what`` unless ``tag`` is the HMAC of ``data`` under this key."""
    key = installation_key()
    if isinstance(tag, str) and hmac.compare_digest(mac(data, key), tag):
        return
    if stored_key_id is not None and stored_key_id != key_id(key):
        raise InputError(f"{what}: signed with another installation's key (key id "
                         f"{stored_key_id!r}, this installation {key_id(key)!r}); set "
                         f"{KEY_ENV} to the key file it was written with")
    raise InputError(f"{what}: its {ALGORITHM} does not match the content (the file was edited "
                     "or corrupted after it was saved)")
