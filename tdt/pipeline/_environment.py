"""The software environment of a run: the committed lock file and what is installed.

``make venv`` installs every package from ``requirements.lock`` (pip-tools, exact versions and
sha256 hashes) and then tdt itself without dependencies. A run's manifest records the lock's
sha256 and every installed distribution with its version, so that ``tdt verify`` can say, in
one line, which packages differ between the run and the machine that checks it.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path
from typing import Any

from tdt.catalog import sha256_file

LOCK_FILE = "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def normalise_name(name: str) -> str:
    """PEP 503 normalised distribution name (``Foo_Bar`` → ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_path(root: Path | None = None) -> Path:
    """The committed lock file at the repository root (``root``, default: tdt's checkout)."""
    base = root if root is not None else Path(__file__).resolve().parents[2]
    return base / LOCK_FILE


def lock_pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of every ``name==version`` line of a pip-tools lock."""
    pins = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[normalise_name(match.group(1))] = match.group(2)
    return pins


def installed_distributions() -> dict[str, str]:
    """``{normalised name: version}`` of every distribution installed in this interpreter."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            found.setdefault(normalise_name(name), dist.version)
    return dict(sorted(found.items()))


def lock_info(root: Path | None = None) -> dict[str, Any]:
    """The lock's relative path and sha256, and whether what is installed matches its pins.

    ``matches_installed`` is False when any locked package is missing or at another version
    (tdt itself is not in the lock: it is installed from the checkout).
    """
    path = lock_path(root)
    if not path.is_file():
        return {"file": LOCK_FILE, "sha256": None, "matches_installed": None, "differences": []}
    pins = lock_pins(path)
    installed = installed_distributions()
    differences = sorted(
        f"{name} {installed.get(name, 'missing')} (lock {version})"
        for name, version in pins.items() if installed.get(name) != version
    )
    return {"file": LOCK_FILE, "sha256": sha256_file(path),
            "matches_installed": not differences, "differences": differences[:50]}


def environment_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Packages whose version differs between two manifests' ``environment`` sections.

    Uses the full ``installed`` table when both have it, else the recorded ``packages``.
    Each item reads ``"name A → B"`` (``missing`` where a side lacks the package).
    """
    key = "installed" if recorded.get("installed") and current.get("installed") else "packages"
    before = {normalise_name(k): v for k, v in (recorded.get(key) or {}).items()}
    after = {normalise_name(k): v for k, v in (current.get(key) or {}).items()}
    out = []
    for name in sorted(set(before) | set(after)):
        if name == "tdt":
            continue  # tdt's own code is compared by its source sha256
        a, b = before.get(name), after.get(name)
        if a != b:
            out.append(f"{name} {a or 'missing'} → {b or 'missing'}")
    return out


def environment_warning(recorded: dict[str, Any], current: dict[str, Any]) -> str | None:
    """One line naming what differs between the run's environment and this one, or None."""
    parts = []
    lock_a = (recorded.get("lock") or {}).get("sha256")
    lock_b = (current.get("lock") or {}).get("sha256")
    if lock_a and lock_b and lock_a != lock_b:
        parts.append(f"lock sha256 {lock_a[:12]}… → {lock_b[:12]}…")
    packages = environment_differences(recorded, current)
    if packages:
        shown = ", ".join(packages[:8]) + (f" and {len(packages) - 8} more"
                                            if len(packages) > 8 else "")
        parts.append(f"packages: {shown}")
    py_a = (recorded.get("platform") or {}).get("python")
    py_b = (current.get("platform") or {}).get("python")
    if py_a and py_b and py_a != py_b:
        parts.append(f"python {py_a} → {py_b}")
    if not parts:
        return None
    return "warning: this environment differs from the run's (" + "; ".join(parts) + \
        "); numbers may differ"
