"""A progress bar while a batch completes: answers shown as they finish, then in prompt order.

`batch_as_completed` (LangChain) yields `(index, answer)` pairs in the order the answers
finish. The bar counts them, the arrivals list shows that order, and once all are in the answers
are listed in the order of the prompts, as `batch` would have returned them.

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
    """The widgets for one batch: a bar, a count, the arrivals, the answers in order.

    `labels` names the prompts where they are shown (default: the prompts themselves).
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
        self._handle = None

    def run(self, llm, config=None, *, return_exceptions: bool = False, **kwargs: Any) -> BatchRun:
        """`llm.batch_as_completed(prompts, config, **kwargs)`, shown as it completes."""
        n = len(self.prompts)
        answers: list[Any] = [None] * n
        order: list[int] = []
        times: list[float] = []
        self._start()
        start = self.clock()
        try:
            for index, answer in llm.batch_as_completed(self.prompts, config,
                                                        return_exceptions=return_exceptions, **kwargs):
                times.append(self.clock() - start)
                order.append(index)
                answers[index] = answer
                self._arrived(index, answer, times[-1], len(order))
        except Exception as exc:
            self.bar.bar_style = "danger"
            self.count.value = f"{len(order)}/{n}, then: {explain(exc).splitlines()[0]}"
            raise
        run = BatchRun(self.labels, answers, order, times, self.clock() - start)
        self._finish(run)
        return run

    # ── drawing ────────────────────────────────────────────────────────────────────────

    def _start(self) -> None:
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


def batch_with_progress(llm, prompts: Sequence[Any], config=None, *,
                        labels: Sequence[str] | None = None, display: str = "auto",
                        **kwargs: Any) -> BatchRun:
    """Run a batch with a progress bar; returns the answers in prompt order and when each came."""
    return BatchProgress(prompts, labels=labels, display=display).run(llm, config, **kwargs)
