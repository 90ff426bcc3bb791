"""helpers.server_metrics on the real offline server: its counters move when it answers."""

from __future__ import annotations

from helpers.server_metrics import busy_slots, read_metrics
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings

from support import wait_until


def test_the_offline_server_reports_tokens_and_slots(offline_server, llm):
    settings = ConnectionSettings(base_url=offline_server.base_url, model=OFFLINE_MODEL_ID)
    before = read_metrics(settings)
    assert before is not None
    llm.invoke("Say hello.", max_completion_tokens=8)
    # llama.cpp sends the answer, then frees the slot and counts its tokens: wait (bounded) for both.
    wait_until(lambda: read_metrics(settings).tokens_generated_total > before.tokens_generated_total,
               30, "the answer's tokens counted")
    wait_until(lambda: busy_slots(settings) == 0, 30, "every slot idle after the answer")
