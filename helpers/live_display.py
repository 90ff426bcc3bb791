"""A throttled live display: a Jupyter display handle in JupyterLab, plain text elsewhere."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

DISPLAY_ENV = "KIT_DISPLAY"  # force "rich" or "plain"


def _kernel_with_human_frontend() -> bool:
    """True inside a Jupyter kernel driven by a person's frontend (JupyterLab, Notebook).

    Headless executors (nbclient, nbconvert, nbgrader autograde) send their execute
    requests with allow_stdin=False; JupyterLab sends allow_stdin=True.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    kernel = getattr(shell, "kernel", None)
    return bool(getattr(kernel, "_allow_stdin", False))


def choose_mode(requested: str = "auto") -> str:
    """Resolve 'auto' to 'rich' or 'plain' (an explicit KIT_DISPLAY wins over detection)."""
    if requested in ("rich", "plain", "none"):
        return requested
    forced = os.environ.get(DISPLAY_ENV, "").strip().lower()
    if forced in ("rich", "plain", "none"):
        return forced
    return "rich" if _kernel_with_human_frontend() else "plain"


class ThrottledDisplay:
    """What every live display of the kit shares: the mode ('rich' in JupyterLab, 'plain'
    headless, or 'none'), a redraw cap of `max_fps`, and in rich mode one Jupyter display
    (text/markdown + text/plain) updated in place. Subclasses build the bundle and the text."""

    def __init__(self, mode: str = "auto", max_fps: float = 20.0, title: str | None = None,
                 clock: Callable[[], float] = time.perf_counter, out=None):
        self.mode = choose_mode(mode)
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.title = title
        self.clock = clock
        self.out = out or sys.stdout
        self.redraws = 0
        self._handle = None
        self._last_draw = float("-inf")

    def due(self) -> bool:
        """Whether the redraw cap allows drawing now (cheap: call it for every chunk)."""
        return self.clock() - self._last_draw >= self.min_interval

    def _mark_drawn(self) -> None:
        self._last_draw = self.clock()

    def _show(self, bundle: dict) -> None:
        """Rich mode: create the display on first use, then update it in place."""
        if self._handle is None:
            from IPython.display import display

            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)


class LiveDisplay(ThrottledDisplay):
    """Shows growing text plus a stats line, redrawn at most `max_fps` times a second.

    rich: one Jupyter display (text/markdown + text/plain) updated in place.
    plain: new text written to stdout as it arrives (flushed at the same cap), stats at the end.
    """

    def __init__(self, mode: str = "auto", max_fps: float = 20.0, title: str | None = None,
                 clock: Callable[[], float] = time.perf_counter, out=None):
        super().__init__(mode=mode, max_fps=max_fps, title=title, clock=clock, out=out)
        self._written = 0  # plain mode: characters already written

    def start(self) -> None:
        if self.mode == "rich":
            self._show(self._bundle("", "waiting for the first token…"))
        elif self.mode == "plain" and self.title:
            self.out.write(f"── {self.title} ──\n")

    def update(self, text: str, stats: str) -> bool:
        """Redraw if the cap allows; returns True when it drew."""
        if not self.due():
            return False
        self._draw(text, stats)
        self._mark_drawn()
        return True

    def finish(self, text: str, stats: str, note: str | None = None) -> None:
        """Final redraw, always: the saved output holds the whole text."""
        self._draw(text, stats, note=note, final=True)

    def _bundle(self, text: str, stats: str, note: str | None = None) -> dict:
        plain = text + (f"\n\n⚠ {note}" if note else "") + f"\n\n[{stats}]"
        title = f"**{self.title}**\n\n" if self.title else ""
        markdown = title + text + (f"\n\n> ⚠ {note}" if note else "") + f"\n\n<sub>{stats}</sub>"
        return {"text/plain": plain, "text/markdown": markdown}

    def _draw(self, text: str, stats: str, note: str | None = None, final: bool = False) -> None:
        self.redraws += 1
        if self.mode == "rich":
            self._show(self._bundle(text, stats, note))
        elif self.mode == "plain":
            self.out.write(text[self._written:])
            self._written = len(text)
            if final:
                if note:
                    self.out.write(f"\n\n⚠ {note}")
                self.out.write(f"\n\n[{stats}]\n")
            self.out.flush()
