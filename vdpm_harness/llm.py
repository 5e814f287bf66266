"""The transport shared by the OpenAI-compatible plugins (model ``openai-chat``, judge ``openai-judge``).

:class:`ChatClient` sends chat-completions requests to any OpenAI-compatible endpoint (OpenAI, or a local vLLM or
SGLang server) through the ``openai`` package:

* **bounded concurrency**: a batch of requests runs on at most ``concurrency`` threads, replies in input order;
* **retries**: 429 (honouring ``Retry-After`` / ``retry-after-ms``), 408, 5xx, timeouts and connection errors are
  retried up to ``max_retries`` times with exponential backoff and jitter; any other 4xx is final;
* **a reply cache** on disk (sqlite, ``$VDPM_CACHE/api/<name>.sqlite``), keyed by the base URL and the hash of the
  full request payload (model name, messages with their images, decoding settings), so a rerun costs nothing.
  Only good replies are cached. A sampled reply (temperature > 0) is cached too: a rerun repeats that sample;
* **accounting**: prompt and completion tokens per call, cost when per-1k-token prices are given, and running totals;
* **malformed replies** (non-JSON body, no choices, empty content, invalid JSON where structured output was asked
  for) become a :class:`Reply` with ``error`` set, never an exception.

The API key is read from the ``api_key`` option or the environment variable named by ``api_key_env``. It is sent in
the ``Authorization`` header and nowhere else: never cached, logged or put into an error message.

The ``openai`` package is imported on first use, so listing plugins works without it (``pip install
vdpm-harness[api]``).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import Field

from .plugins import PluginError
from .records import Strict
from .store import cache_root

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
CONTEXT_OVERFLOW = ("context length", "maximum context", "context_length_exceeded")


class ApiOptions(Strict):
    """Options every OpenAI-compatible plugin shares (transport only: none of them changes a reply)."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(default=8, ge=1)
    max_retries: int = Field(default=5, ge=0)
    timeout: float = Field(default=120.0, gt=0, description="seconds per attempt")
    backoff: float = Field(default=1.0, ge=0, description="first retry delay in seconds; doubles per attempt")
    max_backoff: float = Field(default=60.0, ge=0, description="cap on one delay, Retry-After included")
    cache: bool = True
    price_per_1k_prompt: float | None = Field(default=None, ge=0)
    price_per_1k_completion: float | None = Field(default=None, ge=0)


#: Option names of :class:`ApiOptions` that never change a reply (the models exclude them from their fingerprint).
TRANSPORT_OPTIONS = frozenset(
    {"api_key_env", "concurrency", "max_retries", "timeout", "backoff", "max_backoff", "cache",
     "price_per_1k_prompt", "price_per_1k_completion"}
)  # fmt: skip


def resolve_api_key(options: ApiOptions, who: str) -> str:
    """The key from the ``api_key`` option, else from the environment variable ``api_key_env``; a clear error if
    neither is set (never a silent default)."""
    if options.api_key:
        return options.api_key
    value = os.environ.get(options.api_key_env, "")
    if value:
        return value
    raise PluginError(
        f"{who}: no API key: set the environment variable {options.api_key_env} (or name another one with the option "
        "api_key_env, or pass the option api_key). A local server without authentication accepts any value, e.g. EMPTY."
    )


@dataclass
class Reply:
    """One completed call: ``text`` or ``error``; ``model`` is the model id the server reported; ``usage`` holds
    ``prompt_tokens``, ``completion_tokens``, ``cached``, ``finish_reason`` and ``cost_usd`` (when priced)."""

    text: str | None = None
    error: str | None = None
    model: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)


def parse_reply(body: str, structured: bool) -> Reply:
    """Read a chat-completions response body. Anything malformed gives a reply with ``error`` set."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return Reply(error=f"malformed reply: the body is not JSON: {body[:200]!r}")
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
        return Reply(error=f"malformed reply: no choices: {body[:200]!r}")
    choice = data["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    model = data.get("model") if isinstance(data.get("model"), str) else None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    finish = choice.get("finish_reason") if isinstance(choice, dict) else None
    tokens = {
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "finish_reason": finish,
    }
    if not isinstance(content, str) or not content.strip():
        return Reply(error=f"empty reply content (finish_reason={finish})", model=model, usage=tokens)
    if structured:
        try:
            json.loads(content)
        except json.JSONDecodeError:
            return Reply(error=f"structured output was requested but the reply is not JSON: {content[:200]!r}",
                         model=model, usage=tokens)  # fmt: skip
    return Reply(text=content, model=model, usage=tokens)


def retry_after(headers) -> float | None:
    """Seconds to wait as the server asks (``retry-after-ms``, ``retry-after`` in seconds or as an HTTP date)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) * scale, 0.0)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)
    return None


def is_structured(payload: dict) -> bool:
    return (payload.get("response_format") or {}).get("type") in ("json_schema", "json_object")


class ReplyCache:
    """Good replies on disk: sqlite table ``replies(key, model, reply, created)``; safe to share between threads."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT NOT NULL, reply TEXT NOT NULL, "
                "created TEXT NOT NULL)"
            )
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise PluginError(f"reply cache {path} cannot be opened ({exc}); delete the file to start afresh") from exc

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, reply: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                (key, model, json.dumps(reply), datetime.now(timezone.utc).isoformat(timespec="seconds")),
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ChatClient:
    """Chat completions against one endpoint, with retries, a reply cache and token accounting.

    ``name`` names the cache file (``$VDPM_CACHE/api/<name>.sqlite``) and prefixes error messages.
    """

    def __init__(self, name: str, options: ApiOptions):
        import openai

        self.name = name
        self.options = options
        self.base_url = options.base_url.rstrip("/")
        self._api_key = resolve_api_key(options, name)
        self._openai = openai
        self._client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key, max_retries=0,
                                     timeout=options.timeout)  # fmt: skip
        self.cache = ReplyCache(cache_root() / "api" / f"{name}.sqlite") if options.cache else None
        self.totals: Counter = Counter()
        self._lock = threading.Lock()

    # -- public ------------------------------------------------------------------------------------------------------

    def complete_many(self, payloads: list[dict]) -> list[Reply]:
        """Send every payload (at most ``concurrency`` at a time); replies in input order.

        The requests run on daemon threads, so an interrupt (Ctrl-C) returns at once: no new request starts, and
        the requests in flight are abandoned rather than waited for (the threads of a ``ThreadPoolExecutor`` are
        joined when the interpreter exits, which would wait for each of them up to ``timeout`` times its retries).
        """
        if not payloads:
            return []
        replies: list[Reply | None] = [None] * len(payloads)
        failures: list[BaseException] = []
        indices = iter(range(len(payloads)))
        lock, stop = threading.Lock(), threading.Event()

        def work() -> None:
            while not stop.is_set():
                with lock:
                    index = next(indices, None)
                if index is None:
                    return
                try:
                    replies[index] = self.complete(payloads[index])
                except BaseException as exc:  # noqa: BLE001 - raised in the calling thread below
                    failures.append(exc)
                    stop.set()

        threads = [
            threading.Thread(target=work, name=f"{self.name}-{i}", daemon=True)
            for i in range(min(self.options.concurrency, len(payloads)))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        finally:
            stop.set()
        if failures:
            raise failures[0]
        return replies

    def complete(self, payload: dict) -> Reply:
        """Send one chat-completions payload (a JSON-serializable dict), from the cache when it holds the reply."""
        key = hashlib.sha256(
            json.dumps({"base_url": self.base_url, "payload": payload}, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        stored = self.cache.get(key) if self.cache else None
        if stored is not None:
            reply = Reply(text=stored["text"], model=stored["model"], usage={**stored["usage"], "cached": True})
            if self._priced:
                reply.usage["cost_usd"] = 0.0  # nothing was spent on this call
        else:
            reply = self._call(payload)
            if reply.error is None and self.cache:
                stored = {"text": reply.text, "model": reply.model, "usage": dict(reply.usage)}  # the tokens only
                self.cache.put(key, str(payload.get("model")), stored)
            reply.usage["cached"] = False
            if self._priced:
                reply.usage["cost_usd"] = self._cost(reply.usage)
        self._account(reply)
        return reply

    def close(self) -> None:
        """Log the totals, close the cache and the HTTP connections."""
        if self.totals:
            log.info("%s totals: %s", self.name, dict(self.totals))
        if self.cache:
            self.cache.close()
        self._client.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------------------

    @property
    def _priced(self) -> bool:
        return self.options.price_per_1k_prompt is not None or self.options.price_per_1k_completion is not None

    def _cost(self, usage: dict) -> float:
        prompt = (usage.get("prompt_tokens") or 0) * (self.options.price_per_1k_prompt or 0.0)
        completion = (usage.get("completion_tokens") or 0) * (self.options.price_per_1k_completion or 0.0)
        return round((prompt + completion) / 1000, 8)

    def _account(self, reply: Reply) -> None:
        with self._lock:
            self.totals["calls"] += 1
            self.totals["cache_hits" if reply.usage.get("cached") else "live_calls"] += 1
            self.totals["errors"] += reply.error is not None
            for name in ("prompt_tokens", "completion_tokens"):
                self.totals[name] += reply.usage.get(name) or 0
            if "cost_usd" in reply.usage:
                self.totals["cost_usd"] = round(self.totals["cost_usd"] + reply.usage["cost_usd"], 8)

    def _delay(self, attempt: int, headers=None) -> float:
        asked = retry_after(headers)
        if asked is not None:
            return min(asked, self.options.max_backoff)
        step = min(self.options.max_backoff, self.options.backoff * 2**attempt)
        return step / 2 + random.uniform(0, step / 2)

    def _call(self, payload: dict) -> Reply:
        """One request with retries; every failure comes back as a :class:`Reply` with ``error``."""
        openai = self._openai
        extra = {k: v for k, v in payload.items() if k not in ("model", "messages")}
        attempt = 0
        while True:
            retries_left = attempt < self.options.max_retries
            try:
                raw = self._client.chat.completions.with_raw_response.create(
                    model=payload["model"], messages=payload["messages"], extra_body=extra
                )
            except openai.APIStatusError as exc:
                status = exc.status_code
                if (status in (408, 429) or status >= 500) and retries_left:
                    time.sleep(self._delay(attempt, exc.response.headers))
                    attempt += 1
                    continue
                return Reply(error=self._status_error(status, exc, attempt + 1))
            except openai.APIConnectionError as exc:  # timeouts included
                if retries_left:
                    time.sleep(self._delay(attempt))
                    attempt += 1
                    continue
                kind = "timed out" if isinstance(exc, openai.APITimeoutError) else f"connection failed ({exc})"
                return Reply(
                    error=self._scrub(f"{self.name}: request to {self.base_url} {kind} after {attempt + 1} attempts")
                )
            reply = parse_reply(raw.text, is_structured(payload))
            if reply.error:
                reply.error = self._scrub(f"{self.name}: {reply.error}")
            return reply

    def _status_error(self, status: int, exc, attempts: int) -> str:
        body = exc.body
        detail = body.get("message") if isinstance(body, dict) and body.get("message") else exc.message
        prefix = f"{self.name}: HTTP {status} from {self.base_url}"
        if status == 400 and any(marker in str(detail).lower() for marker in CONTEXT_OVERFLOW):
            return self._scrub(f"{prefix}: context length exceeded (the request is too long for the model): {detail}")
        retried = f" after {attempts} attempts" if attempts > 1 else ""
        return self._scrub(f"{prefix}{retried}: {detail}")

    def _scrub(self, text: str) -> str:
        """Never let the key into an error message, whatever a server echoes back."""
        return text.replace(self._api_key, "***") if len(self._api_key) >= 4 else text
