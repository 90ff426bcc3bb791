"""Notebook 10's bridge (the exercise's solution, `in_thread`) against the real offline server: a
client that hangs up stops the model's work, whichever client library the endpoint streams from
(the fact the exercise's close rule stands on)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from helpers.background_server import BackgroundServer
from helpers.sse import sse_event, sse_lines

from support.solutions import notebook_bridge

DEADLINE_S = 5.0  # how long a hang-up may take to reach the model server (a deadline, not a timing)


class Ask(BaseModel):
    prompt: str


@pytest.mark.parametrize("client", ["ChatNVIDIA", "openai"])
def test_a_client_that_hangs_up_stops_the_model_server(offline_server, client):
    from langchain_nvidia_ai_endpoints import ChatNVIDIA
    from openai import OpenAI

    from helpers.server_metrics import read_metrics, requests_in_flight
    from helpers.settings import load_settings

    settings = load_settings()
    closed = threading.Event()
    llm = ChatNVIDIA(base_url=settings.base_url, model=settings.model, temperature=0)
    sdk = OpenAI(base_url=settings.base_url, api_key="not-needed")

    def chat_nvidia_pieces(prompt):
        try:
            for chunk in llm.stream(prompt, max_completion_tokens=250):
                yield chunk.content
        finally:
            closed.set()

    class OpenAIPieces:  # the SDK's stream, whose close() closes the connection
        def __init__(self, prompt):
            self.stream = sdk.chat.completions.create(
                model=settings.model, messages=[{"role": "user", "content": prompt}],
                max_tokens=250, stream=True)

        def __iter__(self):
            return (c.choices[0].delta.content or "" for c in self.stream if c.choices)

        def close(self):
            self.stream.close()
            closed.set()

    in_thread = notebook_bridge()  # the bridge notebook 10's learners write (its solution)
    app = FastAPI()

    @app.post("/stream")
    async def stream(ask: Ask):
        source = OpenAIPieces(ask.prompt) if client == "openai" else chat_nvidia_pieces(ask.prompt)

        async def events():
            async for piece in in_thread(source):
                yield sse_event({"delta": piece})
            yield sse_event({}, event="done")

        return StreamingResponse(events(), media_type="text/event-stream")

    with BackgroundServer(app) as server:
        reader = sse_lines(f"{server.url}/stream", {"prompt": "Write a long essay about bread."})
        opening = list(itertools.islice(reader, 6))
        assert any(line.startswith("data:") for line in opening)
        assert requests_in_flight(settings) == 1, "the model is generating for the connected client"
        reader.close()
        assert closed.wait(DEADLINE_S), "the hang-up did not close the blocking stream"
        deadline = time.monotonic() + DEADLINE_S
        while requests_in_flight(settings) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert requests_in_flight(settings) == 0, "the model server still generates for nobody"
        before = read_metrics(settings).tokens_generated_total
        time.sleep(0.5)
        assert read_metrics(settings).tokens_generated_total == before
