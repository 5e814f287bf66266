"""``openai-judge``: an LLM judge behind any OpenAI-compatible endpoint (OpenAI, or a local vLLM/SGLang server).

The benchmark owns the wording: for every response the judge sends ``benchmark.judge_prompt(sample, response)``
(with ``response_format = {"type": "json_schema", ...}`` when the prompt carries a schema) and reads the reply with
``benchmark.parse_judgement(sample, reply)``. The judge owns the transport (:mod:`vdpm_harness.llm`:
concurrency, retries, the reply cache, token accounting).

Defaults follow VLM4D's official judge (ShijieZhou-UCLA/VLM4D, the judge call of its evaluation script): model
``o4-mini``, ``temperature = 1.0`` (the only value
o-series models accept), a budget of 1024 completion tokens sent as ``max_completion_tokens`` (for o-series models it
covers the reasoning tokens too). Because the judge samples at temperature 1, a rerun without the cache can judge
differently; the cache keeps a rescore stable.

Every extraction carries ``method = judge:openai-judge@<version>`` and, in ``detail``, the requested judge model
(``judge_model``), the model id the server reported (``served_model``), the raw reply and its token usage. A judge
failure, i.e. a call that still fails after its retries (an HTTP error, a timeout), a reply that is empty or not the
JSON its schema asked for, a reply the benchmark's reader raises on, or a prompt the benchmark cannot build for
that sample, gives no verdict: the extraction carries ``error`` (and ``detail["error"]``), so the sample is reported
as an error (counted in ``n_errors`` and among its reasons; in the accuracy it counts as wrong, as every error does),
never scored as a wrong answer nor answered by rules instead, and ``rescore`` asks again (failed replies are not
cached). A missing API key stops the scoring before
anything is sent.

Options come from ``--judge-arg key=value`` (``run``, ``rescore`` and ``import``) or ``judge_options`` in a run
config; the key comes from ``OPENAI_API_KEY`` or the variable named by ``api_key_env``::

    OPENAI_API_KEY=EMPTY vdpm-harness rescore results/gpt-4o/vlm4d --judge openai-judge \\
        --judge-arg base_url=http://localhost:8000/v1 --judge-arg model=Qwen/Qwen2.5-72B-Instruct
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from vdpm_harness import (
    DEFAULT_BASE_URL,
    ApiOptions,
    Benchmark,
    ChatClient,
    Extraction,
    Judge,
    JudgePrompt,
    PluginError,
    Prediction,
    Sample,
    hookimpl,
    mask_url_credentials,
    resolve_api_key,
)


def json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    """The ``json_schema`` member of ``response_format``: a bare JSON schema is wrapped as a strict schema named after
    its ``title``; an already wrapped ``{"name", "schema", ...}`` is passed as it is. Strict mode needs every property
    required and ``additionalProperties: false`` (what pydantic's structured-output helper emits for VLM4D)."""
    if "schema" in schema and "name" in schema:
        return schema
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title") or "judgement"))[:64]
    return {"name": name, "schema": schema, "strict": True}


class OpenAIJudge(Judge):
    """Judges responses with a chat model; the benchmark supplies the prompt and reads the reply."""

    version = "1"

    class Options(ApiOptions):
        model: str = "o4-mini"
        base_url: str = DEFAULT_BASE_URL
        temperature: float = Field(default=1.0, ge=0)
        max_tokens: int = Field(default=1024, ge=1, description="sent as max_completion_tokens")

    def __init__(self, options=None):
        super().__init__(options)
        resolve_api_key(self.options, "openai-judge")  # no key: a clear error now, before anything is scored

    def describe(self) -> dict[str, Any]:
        return {"model": self.options.model, "base_url": self.options.base_url}

    def payload(self, prompt: JudgePrompt) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.options.model,
            "messages": prompt.messages,
            "temperature": self.options.temperature,
            "max_completion_tokens": self.options.max_tokens,
        }
        if prompt.response_schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": json_schema_format(prompt.response_schema)}
        return body

    def failure(self, error: str, detail: dict[str, Any] | None = None) -> Extraction:
        """The extraction of a sample the judge gave no verdict for (see the module docstring). The error may name
        the endpoint: credentials inside its URL (``http://user:KEY@host``) are masked."""
        error = mask_url_credentials(error)
        return Extraction(parsed=False, method=self.tag, detail={**(detail or {}), "error": error}, error=error)

    def judge(self, benchmark: Benchmark, items: list[tuple[Sample, Prediction]]) -> list[Extraction]:
        prompts: list[JudgePrompt | str] = []  # a prompt, or why the benchmark could not build it
        for sample, prediction in items:
            try:
                prompts.append(benchmark.judge_prompt(sample, prediction.response or ""))
            except NotImplementedError as exc:
                raise PluginError(f"judge '{self.id}' cannot score {benchmark.id}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - one sample's prompt failing is that sample's judge failure
                prompts.append(f"judge_prompt failed: {type(exc).__name__}: {exc}")
        sent = [prompt for prompt in prompts if isinstance(prompt, JudgePrompt)]
        with ChatClient(self.id or "openai-judge", self.options) as client:
            answered = iter(client.complete_many([self.payload(prompt) for prompt in sent]))
        extractions = []
        for (sample, _), prompt in zip(items, prompts):
            if isinstance(prompt, str):
                extractions.append(self.failure(prompt, {"judge_model": self.options.model}))
                continue
            reply = next(answered)
            detail = {"judge_model": self.options.model, "served_model": reply.model, "usage": reply.usage}
            if reply.error is not None:
                extractions.append(self.failure(reply.error, detail))
                continue
            try:
                parsed = benchmark.parse_judgement(sample, reply.text)
            except Exception as exc:  # noqa: BLE001 - a reply the benchmark cannot read is no verdict, not a crash
                extractions.append(self.failure(f"parse_judgement failed: {type(exc).__name__}: {exc}",
                                                {**detail, "reply": reply.text}))  # fmt: skip
                continue
            detail = {**parsed.detail, **detail, "reply": reply.text}
            extractions.append(parsed.model_copy(update={"method": self.tag, "detail": detail}))
        return extractions


@hookimpl
def register_judges(register):
    register(
        "openai-judge",
        OpenAIJudge,
        description="LLM judge on any OpenAI-compatible endpoint (default o4-mini, as VLM4D); benchmark-owned prompts.",
    )
