"""Plumbing for serving streams from a notebook: a background uvicorn server, server-sent
events (writing and reading them, with arrival times), merged streams and a micro-batcher."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .chunks import chunk_text
from .ports import LOOPBACK, free_port
from .waiting import poll_until


class BackgroundServer:
    """Run an ASGI app (FastAPI) with uvicorn in a background thread, on 127.0.0.1.

    >>> server = BackgroundServer(app).start()   # returns once it accepts connections
    >>> server.url                               # 'http://127.0.0.1:PORT'
    >>> server.stop()                            # finishes open requests, frees the port
    Also a context manager. The notebook's own event loop stays free: the server runs its
    own loop in its own thread.
    """

    def __init__(self, app: Any, port: int | None = None, host: str = LOOPBACK,
                 log_level: str = "warning"):
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.config = uvicorn.Config(app, host=host, port=self.port, log_level=log_level,
                                     loop="asyncio", lifespan="off", ws="auto")
        self.server = uvicorn.Server(self.config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, timeout_s: float = 15.0) -> BackgroundServer:
        if self.running:
            return self
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}",
                                       daemon=True)
        self.thread.start()
        def started(_waited: float) -> bool | None:
            if self.server.started:
                return True
            if not self.thread.is_alive():
                raise RuntimeError(f"The server on port {self.port} stopped during start-up "
                                   "(is the port taken?).")
            return None

        try:
            poll_until(started, timeout_s=timeout_s, interval_s=0.02)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"The server on port {self.port} did not start in {timeout_s} s.") from None
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for its thread (forcing it after timeout_s)."""
        if self.thread is None:
            return
        self.server.should_exit = True
        self.thread.join(timeout_s / 2)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout_s / 2)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


# ── server-sent events ─────────────────────────────────────────────────────────────────────

def sse_event(data: Any, event: str | None = None) -> str:
    """One server-sent event. Data that is not a string is sent as JSON; line breaks in it
    become several `data:` lines, as the SSE format asks."""
    text = data if isinstance(data, str) else json.dumps(data)
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


@dataclass(frozen=True)
class SSEEvent:
    event: str  # "message" unless the server named it
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Turn SSE lines (without line ends) into events, each as soon as its blank line arrives."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue  # a comment (servers send them to keep connections alive)
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:
        yield SSEEvent(event, "\n".join(data))


def sse_lines(url: str, payload: dict | None = None, method: str = "POST",
              timeout_s: float = 120.0) -> Iterator[str]:
    """The raw lines of an SSE response, each as it arrives. Closing the generator closes the
    connection."""
    import httpx

    with httpx.Client(timeout=timeout_s) as client:
        kwargs = {"json": payload} if method.upper() != "GET" else {"params": payload}
        with client.stream(method, url, **kwargs) as response:
            response.raise_for_status()
            yield from response.iter_lines()


def iter_sse_text(url: str, payload: dict | None = None, method: str = "POST",
                  done_event: str = "done", field: str = "delta",
                  timeout_s: float = 120.0) -> Iterator[str]:
    """The text pieces of a kit-style SSE stream (`data: {"delta": ...}` events, then an event
    named `done`), each as it arrives. Feed it to `stream_print` for timing and display."""
    for event in parse_sse(sse_lines(url, payload, method, timeout_s)):
        if event.event == done_event:
            return
        if event.event == "error":
            raise RuntimeError(f"the server reported an error: {event.data}")
        yield event.json().get(field, "")


# ── several streams at once ────────────────────────────────────────────────────────────────

def is_finished(item: Any) -> bool:
    """Ray Serve's marker for 'this request is done' in a streamed batch: StopIteration."""
    return item is StopIteration or isinstance(item, StopIteration)


async def stream_group(llm: Any, prompts: Sequence[Any], **kwargs: Any) -> AsyncIterator[list[Any]]:
    """Stream answers to several prompts at once and yield rows aligned with `prompts`.

    Each row holds, per prompt, the text that arrived since the last row ("" if none) or
    `StopIteration` once that answer is complete: the contract of a streaming
    `@serve.batch` method. A failing prompt raises out of the group.
    """
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(i: int, prompt: Any) -> None:
        try:
            async for chunk in llm.astream(prompt, **kwargs):
                text = chunk_text(chunk)
                if text:
                    await queue.put((i, text))
            await queue.put((i, done))
        except Exception as exc:  # noqa: BLE001 - handed on to the reader
            await queue.put((i, exc))

    tasks = [asyncio.ensure_future(pump(i, p)) for i, p in enumerate(prompts)]
    finished = [False] * len(prompts)
    try:
        while not all(finished):
            arrived = [await queue.get()]
            while not queue.empty():
                arrived.append(queue.get_nowait())
            row: list[Any] = ["" if not f else StopIteration for f in finished]
            for i, item in arrived:
                if isinstance(item, Exception):
                    raise item
                if item is done:
                    finished[i] = True
                    row[i] = StopIteration
                else:
                    row[i] += item
            yield row
    finally:
        for task in tasks:
            task.cancel()


_END = object()


class MicroBatcher:
    """Gather requests that arrive within `wait_s` of each other (at most `max_batch_size`),
    send each group to `batch_stream(requests)`, and stream every answer back to its own caller.

    `batch_stream` yields rows aligned with its requests (see `stream_group`): new output per
    request, "" or None for nothing new, `StopIteration` when that request is complete.
    `groups` records the size of every group sent.
    """

    def __init__(self, batch_stream: Callable[[list[Any]], AsyncIterator[list[Any]]],
                 max_batch_size: int = 8, wait_s: float = 0.02):
        self.batch_stream = batch_stream
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self.groups: list[int] = []
        self._incoming: asyncio.Queue | None = None
        self._collector: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        """Submit one request; yield its answer's pieces as the group produces them."""
        self._ensure_collector()
        answer: asyncio.Queue = asyncio.Queue()
        await self._incoming.put((request, answer))
        while True:
            item = await answer.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _ensure_collector(self) -> None:
        if self._collector is None or self._collector.done():
            self._incoming = asyncio.Queue()
            self._collector = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._incoming.get()]
            deadline = loop.time() + self.wait_s
            while len(group) < self.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    group.append(await asyncio.wait_for(self._incoming.get(), remaining))
                except asyncio.TimeoutError:
                    break
            self.groups.append(len(group))
            task = asyncio.ensure_future(self._run(group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, group: list[tuple[Any, asyncio.Queue]]) -> None:
        queues = [answer for _, answer in group]
        open_ = [True] * len(group)
        try:
            async for row in self.batch_stream([request for request, _ in group]):
                for i, item in enumerate(row):
                    if not open_[i]:
                        continue
                    if is_finished(item):
                        open_[i] = False
                        queues[i].put_nowait(_END)
                    elif item is not None and item != "":
                        queues[i].put_nowait(item)
        except Exception as exc:  # noqa: BLE001 - every caller of the group hears of it
            for i, queue in enumerate(queues):
                if open_[i]:
                    open_[i] = False
                    queue.put_nowait(exc)
        for i, queue in enumerate(queues):
            if open_[i]:
                queue.put_nowait(_END)

    async def aclose(self) -> None:
        """Stop collecting (groups already sent finish on their own)."""
        if self._collector is not None:
            self._collector.cancel()
            try:
                await self._collector
            except asyncio.CancelledError:
                pass


async def gather_texts(streams: Iterable[AsyncIterator[str]]) -> list[str]:
    """Consume several async text streams at once; return each one's whole text."""
    async def collect(stream: AsyncIterator[str]) -> str:
        return "".join([piece async for piece in stream])

    return list(await asyncio.gather(*(collect(s) for s in streams)))


# ── processes a server left behind ─────────────────────────────────────────────────────────

RAY_MARKERS = ("raylet", "gcs_server", "ray::", "/ray/", "ray.dashboard", "ray._private")


def looks_like_ray(cmdline: Sequence[str], name: str = "") -> bool:
    """True for the processes a local Ray instance runs (GCS, raylet, workers, agents)."""
    text = " ".join(cmdline)
    return name in ("raylet", "gcs_server") or any(marker in text for marker in RAY_MARKERS)


def ray_processes(parent_pid: int | None = None) -> list:
    """Ray's processes among the descendants of `parent_pid` (default: this process)."""
    import psutil

    try:
        children = psutil.Process(parent_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and looks_like_ray(child.cmdline(), child.name()):
                found.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def resident_gb(processes: Iterable) -> float:
    """Resident memory of the given psutil processes together, in GB."""
    import psutil

    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 1e9
