"""The one error hierarchy of tdt.

Every public entry point validates its inputs and raises a subclass of :class:`TdtError` with a
message that names the field, the offending value and what was expected. The CLI turns any
``TdtError`` into one line on stderr and exit code 2 (no traceback for a user mistake).
"""

from __future__ import annotations

import contextlib
import difflib
import warnings
from collections.abc import Iterable, Iterator


class TdtError(Exception):
    """Base class of every error tdt raises on purpose."""


class InputError(TdtError, ValueError):
    """A value given to a public function is invalid (shape, unit, range, name...)."""


class UnitError(InputError):
    """A quantity has the wrong or an unknown unit."""


class DicomError(TdtError):
    """A DICOM file or series cannot be used (not DICOM, truncated, missing tag, geometry)."""


class CatalogError(TdtError):
    """A data-catalog entry is missing, or its content does not match its recorded sha256."""


class StudyError(TdtError):
    """A study specification is invalid, or a study run failed."""


class ConvergenceError(TdtError):
    """A numerical solve or a sampler did not converge where convergence was required."""


class SolverError(TdtError):
    """An ODE solve failed (outside a sampler, where failures become -inf log-density)."""


class PlausibilityWarning(UserWarning):
    """A value is valid but implausible (a unit that looks wrong, activity beyond what was given).

    Issued with :func:`warn_implausible`; the pipeline records every such warning and shows it
    in the executed notebook, the QA report and the supplement. Impossible values raise
    :class:`InputError` instead.
    """

    def __init__(self, field: str, value: object, expected: str):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"{field}: {value!r} is implausible; expected {expected}")


def warn_implausible(field: str, value: object, expected: str, stacklevel: int = 2) -> None:
    """Issue a :class:`PlausibilityWarning` naming the field, the value and what was expected."""
    warnings.warn(PlausibilityWarning(field, value, expected), stacklevel=stacklevel + 1)


@contextlib.contextmanager
def collect_implausible(reemit: bool = True) -> Iterator[list[PlausibilityWarning]]:
    """Collect the :class:`PlausibilityWarning` s issued inside the block into a list.

    Other warnings pass through untouched. With ``reemit`` (default) each collected warning is
    issued again on leaving the block, so that a caller (or ``pytest.warns``) still sees it; the
    list is what an object records (e.g. ``Study.warnings``) to show the user later.
    """
    collected: list[PlausibilityWarning] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield collected
    for item in caught:
        if isinstance(item.message, PlausibilityWarning):
            collected.append(item.message)
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    if reemit:
        for w in collected:
            warnings.warn(w, stacklevel=3)


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" Did you mean 'a', 'b'?"`` for close matches of ``name`` (or ``""``)."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + ", ".join(repr(lowered[c]) for c in close) + "?"


def unknown_name_error(field: str, name: str, choices: Iterable[str]) -> InputError:
    """Build the standard error for an unknown name (organ, nuclide, phantom, parameter...)."""
    choices = sorted(choices)
    return InputError(
        f"{field}: unknown value {name!r}.{suggest(name, choices)} "
        f"Expected one of: {', '.join(choices[:30])}{' ...' if len(choices) > 30 else ''}."
    )
