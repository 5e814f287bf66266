"""The run configuration: one schema for config files (TOML or YAML) and command-line overrides.

A config file looks like this (TOML; YAML has the same keys)::

    out = "results"
    seed = 0
    limit = 100

    [[models]]
    name = "qwen25vl-7b"
    options = { batch_size = 4 }

    [[benches]]
    name = "dsr"
    frames = { nframes = 32 }   # explicit override of the benchmark's frame policy, recorded in the run

Unknown keys are rejected with the path of the offending key. ``${VAR}`` in a string value is replaced by the
environment variable ``VAR`` (an unset variable is an error). Values of keys that look like secrets (``api_key``,
``token``, ``password``, ...) are masked wherever the configuration is written down.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from .records import FramePolicy, Strict

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

#: Keys whose values are secrets. ``token`` only as a word of its own (``hf_token``, ``access_token``), so that
#: counts such as ``max_new_tokens`` and names such as ``tokenizer`` are neither masked nor redacted.
SECRET_KEY = re.compile(r"(api[_-]?key|(?<![a-z])token(?![a-z])|secret|password|passwd|authorization|credential)", re.I)
MASK = "***"
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A configuration file or option is invalid; the message names the file and the key."""


class ModelSpec(Strict):
    name: str
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class BenchSpec(Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    frames: FramePolicy | None = None


class RunConfig(Strict):
    models: list[ModelSpec] = Field(default_factory=list)
    benches: list[BenchSpec] = Field(default_factory=list)
    out: str = "results"
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    judge: str | None = None
    judge_options: dict[str, Any] = Field(default_factory=dict)
    decode_workers: int = Field(default=2, ge=0)
    prefetch: int = Field(default=8, ge=1)
    video_backend: str | None = None
    retry_errors: bool = True

    @field_validator("models", "benches", mode="before")
    @classmethod
    def _names_as_specs(cls, value):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        return [{"name": v} if isinstance(v, str) else v for v in value]


def _expand_env(value: Any, where: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where}: environment variable '{name}' is not set")
            return os.environ[name]

        return _ENV_VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML file into a plain dict (validated later, together with command-line overrides)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: unknown config format '{path.suffix}' (use .toml, .yaml or .yml)")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table of keys")
    return _expand_env(data, str(path))


def parse_value(text: str) -> Any:
    """Command-line values: JSON literals (numbers, true/false, null, lists, objects), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: tuple[str, ...] | list[str], flag: str) -> list[tuple[str | None, str, Any]]:
    """``[NAME:]key=value`` strings -> (name or None for all, key, value)."""
    parsed = []
    for item in items:
        target, key_value = item.split(":", 1) if re.match(r"^[\w.\-]+:[\w\-]+=", item) else (None, item)
        key, sep, value = key_value.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects [NAME:]key=value, got '{item}'")
        parsed.append((target, key.strip(), parse_value(value)))
    return parsed


def build_config(
    file: str | Path | None = None,
    models: str | None = None,
    benches: str | None = None,
    model_args: tuple[str, ...] = (),
    bench_args: tuple[str, ...] = (),
    judge_args: tuple[str, ...] = (),
    host: Any = None,
    **overrides: Any,
) -> RunConfig:
    """Merge a config file with command-line values (the command line wins) and validate the result.

    A benchmark name that stands for a group (``4dbench``: ``4dbench-qa`` and ``4dbench-caption``) is replaced by its
    members, as registered with ``host`` (default: the process-wide host); see :func:`expand_groups`.
    """
    data: dict[str, Any] = load_config_file(file) if file else {}
    source = str(file) if file else "command-line options"
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    for field, names in (("models", models), ("benches", benches)):
        if names:
            known = {spec.get("name") if isinstance(spec, dict) else spec: spec for spec in data.get(field, [])}
            data[field] = [known.get(name, name) for name in (n.strip() for n in names.split(",")) if name]
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
    if host is None:
        from .plugins import get_host

        host = get_host()
    groups = expand_groups(config, host.registry("benchmarks"))
    for specs, items, flag in ((config.models, model_args, "--model-arg"), (config.benches, bench_args, "--bench-arg")):
        for target, key, value in parse_assignments(items, flag):
            chosen = [s for s in specs if target in (None, s.name, groups.get(s.name))]
            if target and not chosen:
                raise ConfigError(f"{flag} {target}:{key}=...: '{target}' is not selected")
            for spec in chosen:
                spec.options[key] = value
    config.judge_options.update(judge_options(judge_args))
    if not config.models:
        raise ConfigError("no model selected: pass --model or list [[models]] in the config file")
    if not config.benches:
        raise ConfigError("no benchmark selected: pass --bench or list [[benches]] in the config file")
    return config


def expand_groups(config: RunConfig, registry) -> dict[str, str]:
    """Replace each selected benchmark name that names a group in ``registry`` (a :class:`~.plugins.Registry`) by its
    members, in place and in order, each with the group's options and frame policy; a benchmark selected twice (by
    its name and through a group) is run once, at its first place. Returns member name -> group name, so that
    ``--bench-arg GROUP:key=value`` reaches every member."""
    benches: list[BenchSpec] = []
    member_of: dict[str, str] = {}
    for spec in config.benches:
        members = registry.expand(spec.name)
        for name in members:
            if any(b.name == name for b in benches):
                continue
            if members == [spec.name]:
                benches.append(spec)
                continue
            benches.append(spec.model_copy(update={"name": name}, deep=True))
            member_of[name] = spec.name
    config.benches = benches
    return member_of


def judge_options(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--judge-arg key=value`` strings -> options of the judge."""
    return {key: value for _, key, value in parse_assignments(items, "--judge-arg")}


def is_secret_key(key: str) -> bool:
    """Keys that hold secrets: ``api_key``, ``token``, ... but not ``api_key_env`` (the *name* of a variable)."""
    return bool(key) and bool(SECRET_KEY.search(key)) and not key.lower().endswith("_env")


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with every secret-looking key's value replaced by ``***``."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if is_secret_key(key) and value not in (None, ""):
        return MASK
    return value


def secret_values(value: Any, key: str = "") -> set[str]:
    """Every secret in ``value`` (by key name) and in the environment (variables named like secrets)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found |= secret_values(v, k)
    elif isinstance(value, list):
        for v in value:
            found |= secret_values(v, key)
    elif is_secret_key(key) and isinstance(value, str) and len(value) >= 4:
        found.add(value)
    if not key:
        found |= {v for k, v in os.environ.items() if is_secret_key(k) and len(v) >= 4}
    return found


def redact(text: str, secrets: set[str]) -> str:
    """``text`` with every secret value replaced by ``***`` (for error messages, argv and logs)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
