"""One question to an LLM with a bounded number of re-asks: :class:`Asker` and its :class:`Outcome`.

The DSR Suite's scripts re-post a request forever while the HTTP status is not 200 or the reply has the wrong number
of lines, without backoff (TencentARC/DSR_Suite, ``data/deepseek_motion.py``, ``data/deepseek_agent.py``,
``data/qa_nontemp.py``), so one malformed reply can hang a worker. Here:

* the transport (the core's :class:`~vdpm_harness.ChatClient`) retries 429, 408, 5xx, timeouts and connection errors
  ``max_retries`` times with exponential backoff. When they persist the request is :class:`Transient`: the work item
  fails and the next run retries it (a server outage never becomes a rejected video);
* a reply that cannot be read (the parser raises :class:`~.replies.Unparseable`, or the body is malformed or empty) is
  asked again at most ``parse_retries`` times, then the outcome is ``unparseable`` with the last problem: recorded,
  never guessed;
* any other refusal (400 context too long, 401, 404, ...) is final: the outcome is ``refused`` with the error.

The first attempt of a request goes through the reply cache (a rerun of an interrupted batch costs nothing); re-asks
bypass it, since the cached reply is the one that could not be read. Every attempt is recorded (reply text, error,
parse problem, tokens and their price); the API key never is (the client scrubs it from errors).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field

from vdpm_harness import ApiOptions, ChatClient

from .replies import Unparseable

TRANSIENT_STATUS = re.compile(r"HTTP (408|429|5\d\d) from")
TRANSIENT_WORDS = ("timed out after", "connection failed")
REFUSED_STATUS = re.compile(r"HTTP (\d{3}) from")


class LLMOptions(ApiOptions):
    """The endpoint and how it is asked (the transport fields are the core's :class:`~vdpm_harness.ApiOptions`)."""

    model: str = Field("deepseek-r1", description="Model name the endpoint serves (the original's 'deepseek-r1').")
    temperature: float | None = Field(None, ge=0, description="Sampling temperature; unset sends none (original).")
    max_tokens: int | None = Field(None, ge=1, description="Completion token cap; unset sends none (original).")
    parse_retries: int = Field(3, ge=0, description="Re-asks after a reply that cannot be read; then 'unparseable'.")
    system_prompt: str | None = Field(None, description="System message (default: the original's).")


class Transient(RuntimeError):
    """A request that still failed after the transport's retries (rate limit, server error, timeout, no
    connection): the work item fails and the next run asks again."""


@dataclass
class Outcome:
    """What one question came to: ``ok`` with the parsed ``value``, ``unparseable`` (``problem`` says why) or
    ``refused`` (the endpoint's final error in ``problem``); ``attempts`` holds every reply."""

    status: str
    value: Any = None
    problem: str | None = None
    request_sha256: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self, value: Any = None) -> dict[str, Any]:
        """The JSON record (``value`` replaces the parsed value when that is not JSON itself)."""
        return {"status": self.status, "value": self.value if value is None else value, "problem": self.problem,
                "request_sha256": self.request_sha256, "attempts": self.attempts}  # fmt: skip


def request_hash(payload: dict) -> str:
    """sha256 of the request body (model, messages with their images, settings): what the reply cache is keyed on."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part (errors name the endpoint; they must not name its credentials)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def classify(error: str) -> str:
    """``transient``, ``refused`` or ``garbage`` (a 200 reply without usable content) for a client error message."""
    if TRANSIENT_STATUS.search(error) or any(word in error for word in TRANSIENT_WORDS):
        return "transient"
    if REFUSED_STATUS.search(error):
        return "refused"
    return "garbage"


class Asker:
    """Asks one endpoint: ``payload(content)`` builds the request, ``ask(payload, parse)`` gets an :class:`Outcome`.

    ``name`` names the reply cache (``$VDPM_CACHE/api/<name>.sqlite``). Thread-safe: the generators ask for the
    inputs of a batch on ``concurrency`` threads, one request at a time each."""

    def __init__(self, name: str, options: LLMOptions, system: str):
        self.options = options
        self.system = options.system_prompt if options.system_prompt is not None else system
        self.first = ChatClient(name, options)
        self.again = ChatClient(name, options.model_copy(update={"cache": False})) if options.cache else self.first
        self.base_url = self.first.base_url
        self.usage: Counter = Counter()  # this run: requests, tokens and cost, for the progress line
        self._lock = threading.Lock()

    def payload(self, content: str | list[dict[str, Any]]) -> dict[str, Any]:
        """The request body: the original's ``{'model', 'messages': [system, user]}``, plus the decoding settings
        that are set."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        body: dict[str, Any] = {
            "model": self.options.model,
            "messages": [*messages, {"role": "user", "content": content}],
        }
        if self.options.temperature is not None:
            body["temperature"] = self.options.temperature
        if self.options.max_tokens is not None:
            body["max_tokens"] = self.options.max_tokens
        return body

    def ask(self, payload: dict[str, Any], parse: Callable[[str], Any]) -> Outcome:
        """Ask until ``parse`` accepts the reply, at most ``1 + parse_retries`` times; raises :class:`Transient`."""
        outcome = Outcome("unparseable", request_sha256=request_hash(payload))
        for attempt in range(1 + self.options.parse_retries):
            reply = (self.first if attempt == 0 else self.again).complete(payload)
            if reply.error is not None:
                reply.error = reply.error.replace(self.base_url, without_credentials(self.base_url))
            entry = {"reply": reply.text, "error": reply.error, "problem": None, **self.tokens(reply.usage)}
            outcome.attempts.append(entry)
            self.count(reply.usage)
            if reply.error is not None:
                kind = classify(reply.error)
                if kind == "transient":
                    raise Transient(reply.error)
                if kind == "refused":
                    outcome.status, outcome.problem = "refused", reply.error
                    return outcome
                entry["problem"] = outcome.problem = f"garbage: {reply.error}"
                continue
            try:
                outcome.value = parse(reply.text)
            except Unparseable as exc:
                entry["problem"] = outcome.problem = str(exc)
                continue
            outcome.status, outcome.problem = "ok", None
            return outcome
        return outcome

    def tokens(self, usage: dict[str, Any]) -> dict[str, Any]:
        """Tokens of one reply and their price at the options' rates (the same whether the reply came from the
        cache or not, so records do not depend on an interruption)."""
        prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
        entry = {"prompt_tokens": prompt, "completion_tokens": completion}
        o = self.options
        if o.price_per_1k_prompt is not None or o.price_per_1k_completion is not None:
            cost = prompt * (o.price_per_1k_prompt or 0.0) + completion * (o.price_per_1k_completion or 0.0)
            entry["cost_usd"] = round(cost / 1000, 8)
        return entry

    def count(self, usage: dict[str, Any]) -> None:
        with self._lock:
            self.usage["requests"] += 1
            if usage.get("cached"):
                self.usage["cache_hits"] += 1
            self.usage["tokens"] += (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
            if "cost_usd" in usage:
                self.usage["cost_usd"] = round(self.usage["cost_usd"] + usage["cost_usd"], 8)

    def close(self) -> None:
        self.first.close()
        if self.again is not self.first:
            self.again.close()


def summed(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Attempts, re-asks, tokens and cost over outcome records (for the statistics)."""
    total: Counter = Counter()
    for record in records:
        total["questions"] += 1
        total[record["status"]] += 1
        for i, attempt in enumerate(record["attempts"]):
            total["attempts"] += 1
            total["re_asks"] += i > 0
            total["prompt_tokens"] += attempt.get("prompt_tokens") or 0
            total["completion_tokens"] += attempt.get("completion_tokens") or 0
            if "cost_usd" in attempt:
                total["cost_usd"] = round(total["cost_usd"] + attempt["cost_usd"], 8)
    return dict(sorted(total.items()))
