"""A progress bar for a loop over a batch's answers as they finish: an instrument the loop updates.

`batch_as_completed` (LangChain) yields `(index, answer)` pairs in the order the answers
finish; the loop that reads them is the lesson's (notebook 6), and tells the instrument each
answer with `arrived`. The bar counts them, the arrivals list shows that order, and once the
loop is over the answers are listed in the order of the prompts, as `batch` would have
returned them.

Widget output is not saved by headless runs (nbclient, autograding): in JupyterLab the widgets
are shown and a plain summary (text/plain + text/markdown) below them; elsewhere each arrival is
printed as a line of text.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from .chunks import chunk_text
from .friendly_errors import explain
from .live_display import choose_mode


def preview(answer: Any, width: int = 70) -> str:
    """An answer on one short line (a failed call: ✗ and what went wrong)."""
    if isinstance(answer, Exception):
        return "✗ " + explain(answer).splitlines()[0][: width - 2]
    text = " ".join(chunk_text(answer).split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class BatchRun:
    """What a batch delivered: answers in prompt order, and the order they arrived in."""

    prompts: list[str]  # as shown (the labels, when given)
    answers: list[Any]  # answers[i] answers prompts[i] (an exception where it failed)
    arrival_order: list[int]  # prompt indices, first finished first
    arrival_s: list[float]  # seconds since the start, per arrival
    total_s: float

    @property
    def out_of_order(self) -> bool:
        return self.arrival_order != sorted(self.arrival_order)

    def summary(self) -> str:
        numbers = ", ".join(f"Q{i + 1}" for i in self.arrival_order)
        lines = [f"{len(self.arrival_order)}/{len(self.prompts)} answers in {self.total_s:.1f} s",
                 f"arrival order: {numbers}"
                 + ("" if self.out_of_order else " (this time in prompt order)"),
                 "in prompt order:"]
        lines += [f"  Q{i + 1} {prompt}\n      → {preview(answer)}"
                  for i, (prompt, answer) in enumerate(zip(self.prompts, self.answers, strict=True))]
        return "\n".join(lines)


class BatchProgress:
    """The widgets for one batch: a bar, a count, the arrivals, the answers in order. The loop
    over the answers is the caller's; the instrument only draws what it is told:

    >>> with BatchProgress(prompts) as progress:
    ...     for index, answer in llm.batch_as_completed(prompts):
    ...         progress.arrived(index, answer)
    >>> progress.run  # a BatchRun: the answers in prompt order, when each arrived

    The clock starts when the `with` block does. A block that raises leaves the bar red, with
    the count reached and what went wrong. `labels` names the prompts where they are shown
    (default: the prompts themselves).
    """

    def __init__(self, prompts: Sequence[Any], *, labels: Sequence[str] | None = None,
                 display: str = "auto", out=None, clock: Callable[[], float] = time.perf_counter):
        self.prompts = list(prompts)
        self.labels = [str(p) for p in (prompts if labels is None else labels)]
        if len(self.labels) != len(self.prompts):
            raise ValueError(f"{len(self.labels)} labels for {len(self.prompts)} prompts")
        self.mode = choose_mode(display)
        self.out = out or sys.stdout
        self.clock = clock
        n = len(self.prompts)
        self.bar = widgets.IntProgress(value=0, min=0, max=n, description="answers",
                                       bar_style="info")
        self.count = widgets.Label(value=f"0/{n}")
        self.arrivals = widgets.HTML(value="")
        self.in_order = widgets.HTML(value="")
        for widget, name in ((self.bar, "bar"), (self.count, "count"),
                             (self.arrivals, "arrivals"), (self.in_order, "in-order")):
            widget.add_class(f"kit-batch-{name}")
        self.box = widgets.VBox([widgets.HBox([self.bar, self.count]),
                                 widgets.HBox([self.arrivals, self.in_order])])
        self.run: BatchRun | None = None  # set when the loop is over
        self._answers: list[Any] = [None] * n
        self._order: list[int] = []
        self._times: list[float] = []
        self._start_s: float | None = None
        self._handle = None

    def __enter__(self) -> BatchProgress:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.finish()
        else:
            self.fail(exc)

    def start(self) -> None:
        """Show the widgets and start the clock (the `with` block does it)."""
        self._start_s = self.clock()
        self._draw_start()

    def arrived(self, index: int, answer: Any) -> None:
        """Count the answer to prompt `index` (an exception where the call failed)."""
        if self._start_s is None:
            self.start()
        self._times.append(self.clock() - self._start_s)
        self._order.append(index)
        self._answers[index] = answer
        self._arrived(index, answer, self._times[-1], len(self._order))

    def finish(self) -> BatchRun:
        """All answers are in: the bar turns green and the answers are listed in prompt order."""
        total = self.clock() - self._start_s if self._start_s is not None else 0.0
        self.run = BatchRun(self.labels, list(self._answers), list(self._order),
                            list(self._times), total)
        self._finish(self.run)
        return self.run

    def fail(self, exc: BaseException) -> None:
        """The loop raised: the bar turns red and says how far it got and what went wrong."""
        self.bar.bar_style = "danger"
        self.count.value = (f"{len(self._order)}/{len(self.prompts)}, then: "
                            f"{explain(exc).splitlines()[0]}")
        if self.mode == "plain":
            self.out.write(f"stopped after {self.count.value}\n")
        elif self._handle is not None:
            said = f"stopped after {self.count.value}"
            self._handle.update({"text/plain": said, "text/markdown": said}, raw=True)

    # ── drawing ────────────────────────────────────────────────────────────────────────

    def _draw_start(self) -> None:
        if self.mode == "rich":
            from IPython.display import display

            display(self.box)
            waiting = f"waiting for {len(self.prompts)} answers…"
            self._handle = display({"text/plain": waiting, "text/markdown": waiting},
                                   raw=True, display_id=True)

    def _arrived(self, index: int, answer: Any, at_s: float, done: int) -> None:
        n = len(self.prompts)
        self.bar.value = done
        self.count.value = f"{done}/{n}"
        line = f"{done:2}. Q{index + 1} after {at_s:.1f} s: {preview(answer, 50)}"
        self.arrivals.value += f"<div>{html.escape(line)}</div>"
        if self.mode == "plain":
            self.out.write(f"[{done:2}/{n}] {line[4:]}\n")
            self.out.flush()

    def _finish(self, run: BatchRun) -> None:
        self.bar.bar_style = "success"
        self.arrivals.value = "<b>as they finished</b>" + self.arrivals.value
        rows = "".join(f"<div>Q{i + 1}: {html.escape(preview(answer, 50))}</div>"
                       for i, answer in enumerate(run.answers))
        self.in_order.value = "<b>in prompt order</b>" + rows
        summary = run.summary()
        if self.mode == "plain":
            self.out.write(summary + "\n")
        elif self._handle is not None:
            markdown = "```text\n" + summary + "\n```"
            self._handle.update({"text/plain": summary, "text/markdown": markdown}, raw=True)

