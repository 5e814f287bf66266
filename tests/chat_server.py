"""A scriptable chat-completions server on the loopback interface, for testing API models and judges.

It speaks the subset of the OpenAI chat-completions protocol the harness uses: ``POST /v1/chat/completions`` with a
JSON body, answered with ``{id, object, created, model, choices: [{index, message: {role, content}, finish_reason}],
usage}``. It binds to 127.0.0.1 only, on a free port, and records every request it receives.

Scripting: ``server.enqueue(*actions)`` queues what the next calls get, one action per call, in arrival order;
when the queue is empty, ``server.responder(body)`` decides from the request: it returns the content of a normal
reply (a string) or one of the actions below (so a test can make one sample fail every time). Actions:

* ``Status(code, body, headers)``: an error status (e.g. 429 with ``Retry-After``, 500, 400);
* ``Hang(seconds, text)``: wait that long (or until the server stops), then reply with ``text``: longer than the
  client's timeout, it is a timeout;
* ``Raw(body)``: a 200 reply with this exact body (malformed JSON, a reply without ``choices``, ...);
* ``Content(text)``: a normal reply with this content (``None`` gives ``"content": null``).

Usage figures are deterministic: ``prompt_tokens = 10 + 100 * images + characters of text // 4`` and
``completion_tokens = words of the reply``; each call's figures are kept in ``calls`` to compare with what the client
accounted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Status:
    code: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hang:
    seconds: float
    text: str = "The answer is (A)."


@dataclass
class Raw:
    body: bytes


@dataclass
class Content:
    text: str | None


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: Any
    arrived: float


def message_parts(body: dict) -> list[dict]:
    """Every content part of every message, in order (a string content counts as one text part)."""
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append({"type": "text", "text": content})
        else:
            parts.extend(content or [])
    return parts


def count_images(body: dict) -> int:
    return sum(part.get("type") == "image_url" for part in message_parts(body))


def all_text(body: dict) -> str:
    return "".join(part.get("text", "") for part in message_parts(body) if part.get("type") == "text")


class ChatServer:
    """A threaded HTTP server in a background thread; use as a context manager or call ``start``/``stop``."""

    def __init__(self, model: str = "test-model-2026-01-01", responder: Callable[[dict], Any] | None = None):
        self.model = model
        self.responder = responder or (lambda body: "The answer is (A).")
        self.requests: list[Received] = []
        self.calls: list[dict] = []  # {"status": ..., "usage": ...} per request, in arrival order
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests handled at the same time
        self._queue: list[Any] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def enqueue(self, *actions) -> None:
        with self._lock:
            self._queue.extend(actions)

    def start(self) -> ChatServer:
        handler = type("Handler", (_Handler,), {"chat": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- request handling --------------------------------------------------------------------------------------------

    def _next_action(self):
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def reply_json(self, body: dict, content: str | None) -> dict:
        text = all_text(body)
        usage = {
            "prompt_tokens": 10 + 100 * count_images(body) + len(text) // 4,
            "completion_tokens": len((content or "").split()),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage,
        }


class _Handler(BaseHTTPRequestHandler):
    chat: ChatServer

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def _send(self, code: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to answer
            pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        with self.chat._lock:
            self.chat.in_flight += 1
            self.chat.max_in_flight = max(self.chat.max_in_flight, self.chat.in_flight)
        try:
            self._answer()
        finally:
            with self.chat._lock:
                self.chat.in_flight -= 1

    def _answer(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        chat = self.chat
        with chat._lock:
            chat.requests.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
            )
        if self.path.rstrip("/") != "/v1/chat/completions" or not isinstance(body, dict):
            self._record(404, None)
            self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
            return
        action = chat._next_action()
        if action is None:
            action = chat.responder(body)
        if not isinstance(action, (Status, Raw, Hang, Content)):
            action = Content(action)
        if isinstance(action, Status):
            self._record(action.code, None)
            payload = action.body if action.body is not None else {"error": {"message": f"status {action.code}"}}
            self._send(action.code, json.dumps(payload).encode(), action.headers)
            return
        if isinstance(action, Raw):
            self._record(200, None)
            self._send(200, action.body)
            return
        if isinstance(action, Hang):
            chat._stopping.wait(action.seconds)
        reply = chat.reply_json(body, action.text)
        self._record(200, reply["usage"])
        self._send(200, json.dumps(reply).encode())

    def _record(self, status: int, usage: dict | None) -> None:
        with self.chat._lock:
            self.chat.calls.append({"status": status, "usage": usage})
