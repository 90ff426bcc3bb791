"""helpers.server_activity on the real offline server: a stream left open keeps it generating,
a closed one stops it."""

from __future__ import annotations

from helpers.server_activity import watch_server
from helpers.server_metrics import server_slots
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings
from llm_kit.offline.config import DEFAULT_PARALLEL


def test_break_keeps_the_server_generating_close_stops_it(offline_server, llm):
    settings = ConnectionSettings(base_url=offline_server.base_url, model=OFFLINE_MODEL_ID)
    assert server_slots(settings) == DEFAULT_PARALLEL
    stream = llm.stream("Write a long essay about the history of bread.", max_completion_tokens=200)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    left_open = watch_server(settings, seconds=1.5, verbose=False)
    stream.close()
    closed = watch_server(settings, seconds=1.5, verbose=False)
    assert left_open.generating and left_open.requests_running >= 1, left_open.summary()
    assert left_open.tokens_generated >= 5, left_open.summary()
    assert not closed.generating and closed.requests_running == 0, closed.summary()
    assert closed.tokens_generated <= max(3, left_open.tokens_generated / 4), closed.summary()
