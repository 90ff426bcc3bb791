"""A learner or instructor at the hub, from Python: sign in through the login form, start the
server, and use it as JupyterLab does (contents, nbgrader's Assignments actions, a kernel). The
classroom's tests and bench/classroom_learners.py drive the hub with it."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from urllib.parse import quote

import httpx

from helpers.waiting import poll_until


class HubUser:
    """One person signed in at the hub at `base` (http://127.0.0.1:8100)."""

    def __init__(self, base: str, name: str, password: str, timeout_s: float = 60):
        self.base, self.name = base.rstrip("/"), name
        self.http = httpx.Client(base_url=self.base, timeout=timeout_s)
        self.token = self._sign_in(password)
        self.http.headers["Authorization"] = f"token {self.token}"  # from here on, not the cookie

    def _sign_in(self, password: str) -> str:
        """The hub's login form (what a browser posts), then an API token for this session."""
        self.http.get("/hub/login")
        xsrf = self.http.cookies.get("_xsrf", "")
        signed_in = self.http.post("/hub/login", data={"username": self.name, "password": password,
                                                      "_xsrf": xsrf})
        if signed_in.status_code != 302:
            raise PermissionError(f"{self.name} could not sign in (HTTP {signed_in.status_code})")
        xsrf = self.http.cookies.get("_xsrf", xsrf)  # signing in sets a new one
        made = self.http.post(f"/hub/api/users/{self.name}/tokens", headers={"X-XSRFToken": xsrf},
                              json={"note": "llm-kit classroom client", "expires_in": 3600})
        made.raise_for_status()
        self.http.cookies.clear()
        return made.json()["token"]

    def model(self) -> dict:
        return self.http.get(f"/hub/api/users/{self.name}").raise_for_status().json()

    def start_server(self, timeout_s: float = 180) -> str:
        """Start this user's server (as the spawn page does) and wait until it answers; its URL."""
        started = self.http.post(f"/hub/api/users/{self.name}/server")
        if started.status_code not in (201, 202, 400):  # 400: already running
            started.raise_for_status()

        def ready(_waited: float) -> str | None:
            server = self.model().get("servers", {}).get("", {})
            return server.get("url") if server.get("ready") else None

        url = poll_until(ready, timeout_s, 0.3, f"{self.name}'s server did not start in {timeout_s:.0f} s")
        self.server = f"{self.base}{url.rstrip('/')}"
        return self.server

    def stop_server(self) -> None:
        self.http.delete(f"/hub/api/users/{self.name}/server")

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A request to this user's own server (`path` after /user/<name>)."""
        return self.http.request(method, f"{self.server}{path}", **kwargs)

    def assignment(self, action: str, course_id: str, assignment: str) -> list | dict:
        """nbgrader's Assignments tab: fetch, submit, fetch_feedback (or list, for action "")."""
        params = {"course_id": course_id}
        if not action:
            return self.api("GET", "/assignments", params=params).raise_for_status().json()
        done = self.api("POST", f"/assignments/{action}", params={**params, "assignment_id": assignment},
                        timeout=300)
        return done.raise_for_status().json()

    def write_notebook(self, path: str, notebook: dict) -> None:
        self.api("PUT", f"/api/contents/{quote(path)}",
                 json={"type": "notebook", "format": "json", "content": notebook}).raise_for_status()

    def read_notebook(self, path: str) -> dict:
        return self.api("GET", f"/api/contents/{quote(path)}").raise_for_status().json()["content"]

    def run(self, code: str, timeout_s: float = 120) -> tuple[str, str]:
        """Run `code` in a new kernel of this user's server: (its output, "ok" or "error: …")."""
        with self.kernel() as execute:
            return execute(code, timeout_s)

    @contextlib.contextmanager
    def kernel(self):
        """A new kernel of this user's server, kept for several runs and shut down after: yields
        `execute(code, timeout_s=120)` -> (its output, "ok" or "error: …")."""
        kernel = self.api("POST", "/api/kernels", json={"name": "python3"}).raise_for_status().json()
        try:
            yield lambda code, timeout_s=120: self._execute(kernel["id"], code, timeout_s)
        finally:
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def _execute(self, kernel_id: str, code: str, timeout_s: float) -> tuple[str, str]:
        from websockets.sync.client import connect

        url = self.server.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
        msg_id, deadline = uuid.uuid4().hex, time.monotonic() + timeout_s
        request = {"header": {"msg_id": msg_id, "username": self.name, "session": uuid.uuid4().hex,
                              "msg_type": "execute_request", "version": "5.3"},
                   "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                   "content": {"code": code, "silent": False, "store_history": False,
                               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}
        output, status, idle = [], "no reply", False
        with connect(url, additional_headers={"Authorization": f"token {self.token}"},
                     open_timeout=timeout_s, max_size=None) as socket:
            socket.send(json.dumps(request))
            while not idle or status == "no reply":  # the output has all come, and the reply
                message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    output.append(content["text"])
                elif kind == "error":
                    output.append(f"{content['ename']}: {content['evalue']}\n")
                elif kind == "execute_reply":
                    status = "ok" if content["status"] == "ok" else f"error: {content.get('ename')}"
                elif kind == "status":
                    idle = content["execution_state"] == "idle"
        return "".join(output), status

    def close(self) -> None:
        self.http.close()
