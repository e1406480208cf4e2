"""Trailing-edge debouncing of widget callbacks on the kernel's asyncio loop.

Inside a Jupyter kernel, comm messages (slider moves) are handled while an asyncio loop runs;
a burst of changes then schedules one update ``delay_s`` after the last change. Outside a
running loop (headless tests, scripts) the update runs at once, synchronously, so tests see its
result immediately. Hand-written because ipywidgets ships no debouncer (its docs show this same
``call_later`` pattern); it is 30 lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Debouncer:
    """Call ``function()`` once, ``delay_s`` after the last :meth:`trigger` (or at once)."""

    def __init__(self, function: Callable[[], None], delay_s: float = 0.1):
        self.function = function
        self.delay_s = float(delay_s)
        self._handle: asyncio.TimerHandle | None = None

    def trigger(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self.delay_s <= 0:
            self.cancel()
            self.function()
            return
        self.cancel()
        self._handle = loop.call_later(self.delay_s, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.function()

    @property
    def pending(self) -> bool:
        return self._handle is not None

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def flush(self) -> None:
        """Run a pending call now (no-op when none is pending)."""
        if self._handle is not None:
            self.cancel()
            self.function()
