"""The LLM generators' common machinery: :class:`BatchedLLMGenerator`, an item generator whose work items are batches.

A work item is a batch of ``batch_size`` consecutive inputs (captions, videos or tracks), named by its input range
and a hash of its input keys; the inputs of a batch are asked for on ``concurrency`` threads. The driver
(:class:`vdpm_harness.ItemGenerator`) records a finished batch atomically, so a run killed at any moment resumes with
the first unfinished batch; the replies of that batch's first attempts are in the reply cache and cost nothing again.
Every input is processed, the last partial batch included (the DSR Suite's scripts split the inputs into
``process_num`` chunks of ``N // process_num`` and never process the remainder; TencentARC/DSR_Suite,
``data/deepseek_motion.py``).

After each batch a progress line gives the requests, tokens and cost of this run so far. ``--dry-run`` sends
nothing: it prints the first prompts and the projected number of requests and their cost, and writes no file.
"""

from __future__ import annotations

import sys
from abc import abstractmethod
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import Field

from vdpm_harness import ItemGenerator, ItemResults, stable_hash

from .asking import Asker, LLMOptions


class BatchedLLMGenerator(ItemGenerator):
    """Inputs in batches, each input processed by :meth:`process` on a thread; see the module docstring."""

    class Options(LLMOptions):
        batch_size: int = Field(16, ge=1, description="Inputs per work item (the unit of resumption).")
        dry_run: bool = Field(False, description="Print the first prompts and the projected requests and cost; "
                              "send nothing, write nothing.")  # fmt: skip
        show_prompts: int = Field(2, ge=0, description="Prompts --dry-run prints.")
        expected_completion_tokens: int = Field(300, ge=0, description="Completion tokens per request that "
                                                "--dry-run's cost projection assumes.")  # fmt: skip

    #: the inputs' name in messages ("captions", "tracks")
    unit = "inputs"

    def __init__(self, options=None):
        super().__init__(options)
        self.askers: dict[str, Asker] = {}
        self._batches: dict[str, list[tuple[str, Any]]] = {}
        self._done = 0
        self._total = 0

    # --- what a generator provides ---

    @abstractmethod
    def inputs(self) -> list[tuple[str, Any]]:
        """``(key, input)`` in output order; keys are unique (video ids)."""

    @abstractmethod
    def open_askers(self) -> dict[str, Asker]:
        """The askers by name (creating one checks its API key)."""

    @abstractmethod
    def process(self, key: str, value: Any, seed: int, files) -> dict[str, Any]:
        """The JSON record of one input; raising fails its batch (the next run retries it)."""

    @abstractmethod
    def finish(self, out: Path, seed: int, records: list[dict[str, Any]], failed: dict[str, str]) -> dict[str, Any]:
        """Write the outputs from every finished input's record (in input order) and return the statistics;
        ``failed`` maps the batches that failed to their error."""

    @abstractmethod
    def preview(self, seed: int) -> dict[str, Any]:
        """For ``--dry-run``: ``{"prompts": [first prompts], "requests": {step: at most n}, "prompt_chars":
        {step: characters}}``."""

    # --- the item generator ---

    def run(self, out: Path, seed: int = 0, *, dist=None) -> dict[str, Any]:
        if self.options.dry_run:
            return self.dry_run(seed)
        self.askers = self.open_askers()  # no API key: a clear error before anything is read or written
        try:
            return super().run(out, seed, dist=dist)
        finally:
            for asker in self.askers.values():
                asker.close()
            self.askers = {}

    def items(self, seed: int) -> list[str]:
        inputs = self.inputs()
        repeated = [key for key, n in Counter(key for key, _ in inputs).items() if n > 1]
        if repeated:
            raise ValueError(f"{self.id}: input keys repeat: {', '.join(repeated[:5])}")
        size = self.options.batch_size
        self._batches = {}
        for start in range(0, len(inputs), size):
            batch = inputs[start : start + size]
            name = f"{start:07d}-{start + len(batch) - 1:07d}-{stable_hash([key for key, _ in batch], 8)}"
            self._batches[name] = batch
        self._total, self._done = len(inputs), 0
        return list(self._batches)

    def produce(self, item: str, seed: int, files) -> dict[str, Any]:
        if not self._batches:
            self.items(seed)
        if not self.askers:
            self.askers = self.open_askers()
        batch = self._batches[item]
        with ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(batch))) as pool:
            futures = [pool.submit(self.process, key, value, seed, files) for key, value in batch]
        records, failure = [], None
        for (key, _), future in zip(batch, futures):
            try:
                records.append(future.result())
            except Exception as exc:  # noqa: BLE001 - the batch fails, naming the input; the others' replies are cached
                failure = failure or RuntimeError(f"{key}: {type(exc).__name__}: {exc}")
        if failure is not None:
            raise failure
        self._done += len(batch)
        self.progress()
        return {"inputs": records}

    def combine(self, out: Path, seed: int, results: ItemResults) -> dict[str, Any]:
        records = [record for item in results.items if item in results.records
                   for record in results.records[item]["inputs"]]  # fmt: skip
        return self.finish(Path(out), seed, records, dict(results.failures))

    # --- reporting ---

    def progress(self) -> None:
        """One line after each batch: inputs, requests (from the cache), tokens and cost of this run so far."""
        usage: Counter = Counter()
        for asker in self.askers.values():
            usage.update(asker.usage)
        priced = any(a.options.price_per_1k_prompt or a.options.price_per_1k_completion for a in self.askers.values())
        cost = f", ${usage['cost_usd']:.4f} spent" if priced else ""
        print(f"{self.id}: {self._done}/{self._total} {self.unit} this run, {usage['requests']} requests "
              f"({usage['cache_hits']} from the cache), {usage['tokens']} tokens{cost}", file=sys.stderr)  # fmt: skip

    def dry_run(self, seed: int) -> dict[str, Any]:
        """Print the first prompts and the projection; send nothing, write nothing."""
        preview = self.preview(seed)
        o = self.options
        for i, text in enumerate(preview["prompts"][: o.show_prompts]):
            print(f"--- prompt {i + 1} ---\n{text}", file=sys.stderr)
        requests = sum(preview["requests"].values())
        prompt_tokens = sum(preview["prompt_chars"].values()) // 4  # about four characters a token
        completion_tokens = requests * o.expected_completion_tokens
        projection = {
            "dry_run": True, "inputs": preview["inputs"], "requests_at_most": preview["requests"],
            "prompt_tokens_estimate": prompt_tokens, "completion_tokens_assumed": completion_tokens,
            "note": "prompt tokens estimated as characters / 4 (images not counted); re-asks not counted",
        }  # fmt: skip
        if o.price_per_1k_prompt is not None or o.price_per_1k_completion is not None:
            cost = prompt_tokens * (o.price_per_1k_prompt or 0) + completion_tokens * (o.price_per_1k_completion or 0)
            projection["cost_usd_estimate"] = round(cost / 1000, 4)
        print(f"{self.id} (dry run): {preview['inputs']} {self.unit}, at most {requests} requests, about "
              f"{prompt_tokens} prompt tokens", file=sys.stderr)  # fmt: skip
        return projection
