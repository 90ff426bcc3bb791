"""Watching the server: its own counters show a stream left open by `break` still generating,
and one closed with close() stopping at once."""

from __future__ import annotations

from helpers import server_activity
from helpers.server_activity import Reading, ServerWatch, read_activity, watch_server
from helpers.server_metrics import ServerMetrics, server_slots
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings

SOMEWHERE = ConnectionSettings(base_url="http://127.0.0.1:9/v1", model=OFFLINE_MODEL_ID)


def metrics(tokens, running=None):
    return ServerMetrics(tokens_generated_total=tokens, prompt_tokens_total=None,
                         requests_running=running, source="test")


def slot(slot_id, task, decoded):
    return {"id": slot_id, "id_task": task, "is_processing": True,
            "next_token": [{"n_decoded": decoded}]}


def test_a_reading_adds_the_answers_in_progress_and_retries_when_one_ends_meanwhile(monkeypatch):
    # llama.cpp: the counter holds finished answers only. Between the first /slots and the
    # counter, slot 1's answer (40 tokens) ends: that reading is dropped and taken again.
    slots_seen = iter([[slot(0, 7, 5), slot(1, 8, 40)], [slot(0, 7, 9)],
                       [slot(0, 7, 9)], [slot(0, 7, 10)]])
    counters = iter([metrics(100), metrics(140)])
    monkeypatch.setattr(server_activity, "server_json", lambda *a: next(slots_seen))
    monkeypatch.setattr(server_activity, "read_metrics", lambda *a: next(counters))
    reading = read_activity(SOMEWHERE, at_s=1.5)
    assert reading == Reading(at_s=1.5, requests_running=1, tokens_generated=150)


def test_a_nim_reading_is_its_metrics(monkeypatch):
    monkeypatch.setattr(server_activity, "server_json", lambda *a: None)  # no /slots
    monkeypatch.setattr(server_activity, "read_metrics", lambda *a: metrics(4000, running=3))
    assert read_activity(SOMEWHERE) == Reading(at_s=0.0, requests_running=3, tokens_generated=4000)


def watch_of(*readings):
    return ServerWatch("test", [Reading(t, running, tokens) for t, running, tokens in readings])


def test_generating_means_still_growing_in_the_second_half():
    growing = watch_of((0, 1, 100), (1, 1, 130), (2, 1, 160))
    assert growing.generating and growing.tokens_generated == 60
    assert "60 tokens generated in 2.0 s, 1 request(s) running" in growing.summary()
    assert growing.summary().endswith("still generating")
    # a closed stream: the server needs a moment to notice, then nothing more
    stopped = watch_of((0, 1, 100), (0.5, 0, 103), (1.2, 0, 103), (2, 0, 103))
    assert not stopped.generating and stopped.tokens_generated == 3
    assert stopped.summary().endswith("idle")
    assert stopped.tokens_since_start() == [0, 3, 3, 3]
    # readings far apart (a busy server answers slowly): one reading in each half is enough
    slow = watch_of((0, 1, 100), (0.9, 1, 120), (2.3, 1, 150))
    assert slow.generating


def test_a_server_without_counters_is_said_so_and_not_polled(monkeypatch):
    monkeypatch.setattr(server_activity, "server_json", lambda *a: None)
    monkeypatch.setattr(server_activity, "read_metrics", lambda *a: None)
    naps = []
    watch = watch_server(SOMEWHERE, seconds=5, verbose=False, sleep=naps.append)
    assert naps == [] and len(watch.readings) == 1
    assert watch.generating is None and "does not report" in watch.summary()
    assert server_slots(SOMEWHERE) is None
