"""Notebook 8's MicroBatcher (the notebook's own class) when the group's one call misbehaves:
every caller hears how its answer ended, none waits for ever. The call is a stand-in here; the
notebook's run against the real server is in tests/server/test_advanced_notebooks.py."""

from __future__ import annotations

import asyncio

import pytest

from support.solutions import solution_function


def batcher_over(send_group, max_batch_size=2):
    cls = solution_function("08_batching_in_a_service", "MicroBatcher", asyncio=asyncio,
                            send_group=send_group)
    return cls(client=None, max_batch_size=max_batch_size, wait_s=0.05)


async def answers(batcher, prompts):
    async def one(prompt):
        return "".join([piece async for piece in batcher.stream(prompt)])

    return await asyncio.wait_for(asyncio.gather(*(one(p) for p in prompts), return_exceptions=True), 5)


def test_each_caller_gets_its_own_answer():
    async def send_group(client, prompts):
        for i, prompt in enumerate(prompts):
            yield i, prompt.upper(), False
        for i in range(len(prompts)):
            yield i, "", True

    assert asyncio.run(answers(batcher_over(send_group), ["a", "b"])) == ["A", "B"]


def test_a_call_cut_short_ends_the_unfinished_answers_with_an_error():
    async def send_group(client, prompts):  # ends after the first prompt's answer, as a cut stream
        yield 0, "first", True

    first, second = asyncio.run(answers(batcher_over(send_group), ["a", "b"]))
    assert first == "first"
    assert isinstance(second, ConnectionError) and "ended before" in str(second), second


def test_a_failed_call_reaches_every_caller():
    async def send_group(client, prompts):
        raise RuntimeError("[503] Service Unavailable")
        yield  # an async generator

    results = asyncio.run(answers(batcher_over(send_group), ["a", "b"]))
    assert all(isinstance(r, RuntimeError) and "503" in str(r) for r in results), results


@pytest.mark.parametrize("size", [1, 3])
def test_groups_follow_the_size_limit(size):
    async def send_group(client, prompts):
        for i in range(len(prompts)):
            yield i, "x", True

    batcher = batcher_over(send_group, max_batch_size=size)
    asyncio.run(answers(batcher, ["a", "b", "c"]))
    assert batcher.groups == ([1, 1, 1] if size == 1 else [3])
