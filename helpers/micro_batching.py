"""A micro-batcher with a pluggable batch function (notebook 7 writes its own, which sends each
group as one /v1/completions call; this is the same collection rule, reusable): it groups
requests arriving close together and streams every answer back to its own caller, as Ray
Serve's @serve.batch does. `stream_group` is one such batch function: it streams each prompt of
a group as its own request, for a server that batches in flight, and yields the rows a
streaming `@serve.batch` method yields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from .chunks import chunk_text


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
    `groups` records the size of every group sent, `arrivals` the event-loop time
    (`loop.time()`) at which every request arrived; a group's window opens at the arrival of
    its first request.
    """

    def __init__(self, batch_stream: Callable[[list[Any]], AsyncIterator[list[Any]]],
                 max_batch_size: int = 8, wait_s: float = 0.02):
        self.batch_stream = batch_stream
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self.groups: list[int] = []
        self.arrivals: list[float] = []
        self._incoming: asyncio.Queue | None = None
        self._collector: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        """Submit one request; yield its answer's pieces as the group produces them."""
        self._ensure_collector()
        answer: asyncio.Queue = asyncio.Queue()
        arrived = asyncio.get_running_loop().time()
        self.arrivals.append(arrived)
        await self._incoming.put((request, answer, arrived))
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
        held = None  # a request that arrived after the last group's window: it opens the next
        while True:
            group = [held or await self._incoming.get()]
            held = None
            deadline = group[0][2] + self.wait_s
            while len(group) < self.max_batch_size:
                item = await self._next_before(deadline)
                if item is None:
                    break
                if item[2] >= deadline:
                    held = item
                    break
                group.append(item)
            self.groups.append(len(group))
            task = asyncio.ensure_future(self._run(group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_before(self, deadline: float):
        """The next queued request, waiting for one until `deadline` (None if none came).
        Judged by arrival time, so a busy event loop does not change the groups."""
        loop = asyncio.get_running_loop()
        while self._incoming.empty():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                return await asyncio.wait_for(self._incoming.get(), remaining)
            except asyncio.TimeoutError:
                continue  # one may have arrived as the wait ended: look again
        return self._incoming.get_nowait()

    async def _run(self, group: list[tuple[Any, asyncio.Queue, float]]) -> None:
        queues = [answer for _, answer, _ in group]
        open_ = [True] * len(group)
        try:
            async for row in self.batch_stream([request for request, _, _ in group]):
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
