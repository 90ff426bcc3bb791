"""A chat panel for a notebook: a text box, Send and Stop, the answer streamed into the panel
with its time to first token and tokens/s live, and after Stop what the server did.

The answer streams on a background thread, so the kernel stays free to handle the Stop click.
Stop closes the stream (`close()`: the server sees the connection go and frees its slot), then
the panel reads the server's own counters (`helpers.server_activity`): it stopped if its
tokens-generated counter stands still. On a shared server (a workshop NIM) other people's
requests count too: when the server was busy before Send, or runs more requests than this one,
a moving counter gets no verdict, and the panel says why.

Widget output is not saved by headless runs (nbclient, autograding), so the panel also keeps a
plain display (text/plain + text/markdown) with one line per turn.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from .live_display import choose_mode
from .server_activity import AfterStop, server_after_stop, server_busy
from .server_metrics import read_metrics
from .settings import ConnectionSettings
from .streaming import StreamRecorder, StreamResult


@dataclass
class Turn:
    """One question and its answer, as the panel saw it and as the server reported it."""

    prompt: str
    result: StreamResult = field(default_factory=StreamResult)
    outcome: str = "streaming"  # streaming | finished | stopped | failed
    stop_latency_s: float | None = None  # Stop click -> stream closed
    tokens_before: float | None = None  # the server's tokens-generated counter before Send
    tokens_after: float | None = None  # ... and after the turn (after the watch, on Stop)
    after_stop: AfterStop | None = None  # the server right after Stop
    busy_before: bool | None = None  # whether the server was generating before Send

    @property
    def server_stopped(self) -> bool | None:
        """After Stop: whether the server stopped generating (None: not stopped, or the server
        does not report what it does)."""
        return None if self.after_stop is None else self.after_stop.stopped

    def stats_line(self) -> str:
        return self.result.stats_line()

    def server_line(self) -> str:
        counter = ""
        if self.tokens_before is not None and self.tokens_after is not None:
            counter = f" (its tokens-generated counter {self.tokens_before:.0f} → {self.tokens_after:.0f})"
        if self.outcome != "stopped":
            return f"server: answer {self.outcome}{counter}" if self.outcome != "streaming" else ""
        after = self.after_stop or AfterStop(None, None, None, None, 0.0)  # nothing reported
        return after.summary() + counter

    def summary(self) -> str:
        """Plain text: the prompt, the answer, the live stats and what the server did."""
        if self.outcome == "stopped":
            how = f"stopped by you, stream closed {self.stop_latency_s * 1000:.0f} ms after the click"
        elif self.outcome == "failed":
            how = f"failed: {self.result.error_message}"
        else:
            how = self.outcome
        lines = [f"You: {self.prompt}",
                 f"Model ({how}, {len(self.result.text)} characters): {self.result.text.strip()}",
                 f"[{self.stats_line()}]"]
        return "\n".join(lines + [line for line in [self.server_line()] if line])


class ChatPanel:
    """Text box, Send, Stop; answers stream into the panel.

    `llm` is any LangChain chat model; `settings` says where its server is (for the server's
    counters after Stop). The last `memory` exchanges are sent with each question.
    `display`: "auto" (widgets in JupyterLab, plain text in a headless run), "rich", "plain"
    or "none" (no display: the widgets only, for tests).
    """

    def __init__(self, llm, settings: ConnectionSettings, *, memory: int = 3,
                 watch_s: float = 1.5, max_fps: float = 10.0, display: str = "auto",
                 clock: Callable[[], float] = time.perf_counter, **stream_kwargs: Any):
        self.llm = llm
        self.settings = settings
        self.memory = memory
        self.watch_s = watch_s
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.mode = choose_mode(display)
        self.clock = clock
        self.stream_kwargs = stream_kwargs
        self.turns: list[Turn] = []
        self._stop = threading.Event()
        self._stop_clicked_at: float | None = None
        self._worker: threading.Thread | None = None
        self._handle = None

        self.prompt = widgets.Textarea(placeholder="Ask the model something, then click Send",
                                       layout=widgets.Layout(width="100%", height="4em"))
        self.send_button = widgets.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True)
        self.status = widgets.Label(value="Ready.")
        self.conversation = widgets.HTML(value="")
        self.stats = widgets.Label(value="")
        self.server = widgets.Label(value="")
        for widget, name in ((self.prompt, "prompt"), (self.send_button, "send"),
                             (self.stop_button, "stop"), (self.status, "status"),
                             (self.conversation, "conversation"), (self.stats, "stats"),
                             (self.server, "server")):
            widget.add_class(f"kit-chat-{name}")  # stable names for a browser to find them
        self.send_button.on_click(self._on_send)
        self.stop_button.on_click(self._on_stop)
        self.box = widgets.VBox([self.prompt,
                                 widgets.HBox([self.send_button, self.stop_button, self.status]),
                                 self.conversation, self.stats, self.server])
        self.box.add_class("kit-chat-panel")

    # ── showing it ─────────────────────────────────────────────────────────────────────

    def show(self) -> None:
        """Display the panel (JupyterLab) and the plain record of its turns (kept when saved)."""
        from IPython.display import display

        if self.mode == "none":
            return
        if self.mode == "rich":
            display(self.box)
        self._handle = display(self._bundle(), raw=True, display_id=True)

    def _bundle(self) -> dict:
        if not self.turns:
            note = ("Chat panel: type a prompt, click Send, and Stop to cut the answer short "
                    "(the buttons work in JupyterLab).")
            return {"text/plain": note, "text/markdown": note}
        plain = "\n\n".join(f"Turn {i}\n{turn.summary()}" for i, turn in enumerate(self.turns, 1))
        rows = ["| # | prompt | outcome | stats | server |", "|---|---|---|---|---|"]
        for i, turn in enumerate(self.turns, 1):
            cells = [str(i), turn.prompt, turn.outcome, turn.stats_line(), turn.server_line()]
            rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        return {"text/plain": plain, "text/markdown": "**Chat panel turns**\n\n" + "\n".join(rows)}

    def _publish(self) -> None:
        if self._handle is not None:
            self._handle.update(self._bundle(), raw=True)

    # ── what the buttons do ────────────────────────────────────────────────────────────

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def _on_send(self, _button=None) -> None:
        prompt = self.prompt.value.strip()
        if self.busy:
            return
        if not prompt:
            self.status.value = "Type a question first."
            return
        self._stop.clear()
        self._stop_clicked_at = None
        self.turns.append(Turn(prompt))
        self.prompt.value = ""
        self._set_busy(True, "Waiting for the first token…")
        self._worker = threading.Thread(target=self._run_turn, args=(self.turns[-1],),
                                        name="chat-panel", daemon=True)
        self._worker.start()

    def _on_stop(self, _button=None) -> None:
        if not self.busy or self._stop.is_set():
            return
        self._stop_clicked_at = self.clock()
        self._stop.set()
        self.stop_button.disabled = True
        self.status.value = "Stopping…"

    def _set_busy(self, busy: bool, status: str) -> None:
        self.prompt.disabled = busy
        self.send_button.disabled = busy
        self.stop_button.disabled = not busy
        self.status.value = status

    # ── the turn, on the background thread ─────────────────────────────────────────────

    def _messages(self, prompt: str) -> list[tuple[str, str]]:
        earlier = self.turns[:-1][-self.memory:] if self.memory > 0 else []
        messages = []
        for turn in earlier:
            if turn.result.text:
                messages += [("human", turn.prompt), ("ai", turn.result.text)]
        return messages + [("human", prompt)]

    def _draw(self, turn: Turn) -> None:
        parts = []
        for shown in self.turns:
            answer = html.escape(shown.result.text) or "…"
            mark = " <i>(stopped)</i>" if shown.outcome == "stopped" else ""
            parts.append(f"<p><b>You:</b> {html.escape(shown.prompt)}</p>"
                         f"<p style='white-space: pre-wrap'><b>Model:</b> {answer}{mark}</p>")
        self.conversation.value = "".join(parts)
        self.stats.value = turn.stats_line()

    def _run_turn(self, turn: Turn) -> None:
        turn.busy_before = server_busy(self.settings)  # other users' work, before ours starts
        metrics = read_metrics(self.settings)
        turn.tokens_before = metrics.tokens_generated_total if metrics else None
        recorder = StreamRecorder(clock=self.clock)
        result = turn.result = recorder.result
        last_draw = float("-inf")

        def show(recorder: StreamRecorder, text: str) -> bool:
            nonlocal last_draw
            if text and result.content_chunks == 1:
                self.status.value = "Streaming…"
            if self._stop.is_set():
                return True  # Stop: the stream is closed, the server sees the connection go
            if text and self.clock() - last_draw >= self.min_interval:
                self._draw(turn)
                last_draw = self.clock()
            return False

        recorder.consume(lambda: self.llm.stream(self._messages(turn.prompt), **self.stream_kwargs),
                         on_chunk=show)
        stopped = self._stop.is_set()
        closed_at = recorder.ended_at
        turn.outcome = "failed" if result.error else "stopped" if stopped else "finished"
        if stopped:
            turn.stop_latency_s = closed_at - (self._stop_clicked_at or closed_at)
            self._draw(turn)
            self.status.value = "Stopped. Watching the server…"
            turn.after_stop = server_after_stop(self.settings, self.watch_s,
                                                busy_before=turn.busy_before)
        metrics = read_metrics(self.settings)
        turn.tokens_after = metrics.tokens_generated_total if metrics else None
        self._draw(turn)
        self.server.value = turn.server_line()
        status = {"finished": f"Answer complete ({result.finish_reason or 'done'}).",
                  "stopped": "Stopped by you.",
                  "failed": f"Failed: {result.error_message}"}[turn.outcome]
        self._set_busy(False, status)
        self._publish()

    # ── driving it from code ───────────────────────────────────────────────────────────

    def wait(self, timeout_s: float = 300.0) -> Turn:
        """Wait until the current turn has ended (after Stop: after the server watch)."""
        if self._worker is not None:
            self._worker.join(timeout_s)
            if self._worker.is_alive():
                raise TimeoutError(f"the chat panel's answer did not end within {timeout_s:.0f} s")
        self._publish()  # from the caller's thread too: a headless run saves this one
        return self.turns[-1]

    def ask(self, prompt: str, stop_after_s: float | None = None, timeout_s: float = 300.0) -> Turn:
        """Type `prompt`, click Send, and (if given) click Stop `stop_after_s` seconds after the
        first token; returns the turn once it has ended. The same code the buttons run."""
        self.prompt.value = prompt
        self.send_button.click()
        if stop_after_s is not None:
            deadline = self.clock() + timeout_s
            while self.busy and self.turns[-1].result.ttft_s is None and self.clock() < deadline:
                time.sleep(0.02)
            time.sleep(stop_after_s)
            self.stop_button.click()
        return self.wait(timeout_s)
