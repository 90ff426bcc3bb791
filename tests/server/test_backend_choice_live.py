"""`pick_backend` with the real offline server: a running one is reused (and left running), a
configured one that answers is used as is, and on a free port one is started, answers, and is
gone after the `with`."""

from __future__ import annotations

import httpx

from helpers.ports import free_port, port_is_free
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings
from llm_kit.backend import pick_backend
from llm_kit.offline import server_status

from support import assert_none_left, offline_server_pids


def test_a_running_offline_server_is_reused_and_a_configured_one_used(offline_server):
    said = []
    with pick_backend(offline_server.port, say=said.append) as backend:
        assert not backend.configured and not backend.started
        assert backend.server.pid == offline_server.pid
    assert said == [f"Reusing the offline server already running on port {offline_server.port}."]
    assert server_status(offline_server.port).running, "a reused server is left running"

    configured = ConnectionSettings(base_url=offline_server.base_url, model=OFFLINE_MODEL_ID)
    with pick_backend(free_port(), configured, say=None) as backend:
        assert backend.configured and backend.settings == configured and backend.server is None


def test_on_a_free_port_one_is_started_and_stopped_on_leaving():
    port, said = free_port(), []
    with pick_backend(port, say=said.append) as backend:
        assert backend.started and backend.server.running
        health = httpx.get(f"{backend.settings.server_root}/health", timeout=10)
        assert health.status_code == 200
        with pick_backend(port, say=None) as again:  # a second command on the same port
            assert not again.started and again.server.pid == backend.server.pid
        assert server_status(port).running, "the second command must not stop the first's server"
    assert said[0].startswith(f"Starting the offline server on port {port}")
    assert said[-1] == f"Stopped the offline server on port {port}."
    assert not server_status(port).running
    assert_none_left(lambda: offline_server_pids(port), "the started server survived")
    assert_none_left(lambda: [] if port_is_free("127.0.0.1", port) else [port], "port still taken")
