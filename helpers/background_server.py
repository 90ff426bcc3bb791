"""Run an ASGI app (your FastAPI endpoints) with uvicorn in a background thread, on 127.0.0.1."""

from __future__ import annotations

import threading
from typing import Any

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
