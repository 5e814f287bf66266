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
environment variable ``VAR`` (an unset variable is an error). Values of keys that name secrets (``api_key``,
``hf_token``, ``password``, ...: :func:`is_secret_key`) and credentials inside URLs (``http://user:KEY@host``) are
masked wherever the configuration is written down.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from .leaderboard import DEFAULT_MAX_ERROR_RATE
from .records import FramePolicy, Strict

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

#: A key names a secret when its last word is one of these (``api_key``: the last two words), in any case and with
#: ``_``, ``-`` or camelCase between words: ``hf_token``, ``ACCESS-TOKEN``, ``client_secret``, ``apiKey``. Counts and
#: ids whose names only contain such a word (``max_new_tokens``, ``pad_token_id``, ``tokenizer``) are not secrets.
SECRET_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "passphrase", "authorization", "credential", "credentials", "apikey",
     "cookie"}
)  # fmt: skip
SECRET_WORD_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")})
_KEY_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
#: ``scheme://user:password@host`` (or ``scheme://token@host``): the credentials part of a URL.
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/?#@\s:]*)(?::(?P<password>[^/?#@\s]*))?@"
)
#: ``?name=value`` / ``&name=value`` in a URL, for query parameters named like secrets (``?api_key=...``).
_QUERY_PARAMETER = re.compile(r"(?P<lead>[?&])(?P<name>[^=&#\s]+)=(?P<value>[^&#\s]*)")
MASK = "***"
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A configuration file or option is invalid; the message names the file and the key."""


#: A model's label names its results folder: letters, digits, ``.``, ``_``, ``+`` and ``-``, not starting with ``.``.
LABEL_PATTERN = r"[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*"


class ModelSpec(Strict):
    name: str
    label: str | None = Field(default=None, pattern=f"^{LABEL_PATTERN}$")
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
    #: A pair with a larger share of errors is marked failed on the leaderboard (as is one without a success).
    max_error_rate: float = Field(default=DEFAULT_MAX_ERROR_RATE, ge=0, le=1)

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


def _describe(error: ValidationError, source: str, data: dict[str, Any] | None = None) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item, (path, message, shown) in zip(error.errors(), _error_items(error, data)):
        lines.append(f"  {path}: {'unknown key' if item['type'] == 'extra_forbidden' else message}{shown}")
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


class Assignment(tuple):
    """One ``[NAME:]key=value`` of the command line: the tuple ``(target, key, value)`` (target ``None`` for every
    selected plugin, ``value`` the text read by :func:`parse_value`) and, as ``text``, the text as typed, which the
    plugin's creation reads into the option's declared type (:func:`typed_options`)."""

    text: str

    def __new__(cls, target: str | None, key: str, text: str):
        assignment = super().__new__(cls, (target, key, parse_value(text)))
        assignment.text = text
        return assignment


def parse_assignments(items: tuple[str, ...] | list[str], flag: str) -> list[Assignment]:
    """``[NAME:]key=value`` strings -> :class:`Assignment` ``(name or None for all, key, value)``."""
    parsed = []
    for item in items:
        target, key_value = item.split(":", 1) if re.match(r"^[\w.\-]+:[\w\-]+=", item) else (None, item)
        key, sep, value = key_value.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects [NAME:]key=value, got '{item}'")
        parsed.append(Assignment(target, key.strip(), value))
    return parsed


class CommandLineOptions(dict):
    """A plugin's options, some typed on the command line (``--model-arg key=value``).

    The dict holds every value (those from the command line read as JSON, for display); ``texts`` keeps the text
    typed for each command-line key, which :func:`typed_options` reads into the type the plugin declares for the key
    when the plugin is created: ``label=2024`` stays the text ``"2024"`` for a ``str`` option, ``ids=a,b`` becomes
    ``["a", "b"]`` for a ``list[str]`` one.
    """

    def __init__(self, values: dict[str, Any] | None = None, texts: dict[str, str] | None = None):
        super().__init__(values or {})
        self.texts: dict[str, str] = {**getattr(values, "texts", {}), **(texts or {})}

    def set_text(self, key: str, text: str) -> None:
        self[key] = parse_value(text)
        self.texts[key] = text


def command_line_options(items: tuple[str, ...] | list[str], flag: str) -> CommandLineOptions:
    """``key=value`` strings (``--judge-arg``, ``--bench-arg`` of ``data``/``import``) -> the options of one plugin."""
    options = CommandLineOptions()
    for assignment in parse_assignments(items, flag):
        options.set_text(assignment[1], assignment.text)
    return options


def read_option_text(annotation: Any, text: str) -> Any:
    """The command-line ``text`` of an option read into its declared type ``annotation``, trying in turn: the text
    itself as a string (``str``, paths, names of choices), the text as JSON (numbers, ``true``/``false``, ``null``,
    ``[...]``, ``{...}``), and a comma-separated list (``a,b``, each item a string or JSON). Each reading is
    validated strictly, so ``yes`` is not a bool and ``3.5`` not an int. ``Any`` takes the text as JSON, else as it
    is. Raises ``ValueError`` when no reading fits."""
    if annotation is Any:
        return parse_value(text)
    try:
        adapter = TypeAdapter(annotation)
    except Exception:  # noqa: BLE001 - a type pydantic cannot build a validator for: read the text as JSON
        return parse_value(text)
    parts = [part.strip() for part in text.split(",")]
    readings = [json.dumps(text)]
    if text.strip() and parse_value(text) is not text:
        readings.append(text)
    readings += [json.dumps(parts), json.dumps([parse_value(part) for part in parts])]
    for reading in readings:
        try:
            return adapter.validate_json(reading, strict=True)
        except ValidationError:
            continue
    name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    raise ValueError(f"cannot read {text!r} as {name}")


def typed_options(options_class: type, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with each command-line text (:class:`CommandLineOptions`) read into the type that
    ``options_class`` (a pydantic model) declares for its key. Unknown keys are left for validation to name.
    Raises ``ValueError`` naming the option (never showing a secret's text)."""
    texts = getattr(options, "texts", None)
    fields = getattr(options_class, "model_fields", None)
    if not texts or not fields:
        return options
    typed = dict(options)
    for key, text in texts.items():
        if key not in fields:
            continue
        try:
            typed[key] = read_option_text(fields[key].annotation, text)
        except ValueError as exc:
            reason = "cannot read the given text as its type" if is_secret_key(key) else str(exc)
            raise ValueError(f"option '{key}' from the command line: {reason}") from None
    return typed


def build_config(
    file: str | Path | None = None,
    models: str | None = None,
    benches: str | None = None,
    model_args: tuple[str, ...] = (),
    bench_args: tuple[str, ...] = (),
    judge_args: tuple[str, ...] = (),
    host: Any = None,
    labels: tuple[str, ...] = (),
    **overrides: Any,
) -> RunConfig:
    """Merge a config file with command-line values (the command line wins) and validate the result.

    Values from the file are validated strictly (``"yes"`` is not a bool, ``"3"`` not an int); plugin options given
    as ``key=value`` keep their text, read into each option's declared type when the plugin is created
    (:class:`CommandLineOptions`). ``labels`` are ``--label [MODEL:]LABEL`` values (:func:`apply_labels`).

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
        config = validate_strictly(RunConfig, data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, data)) from None
    if host is None:
        from .plugins import get_host

        host = get_host()
    groups = expand_groups(config, host.registry("benchmarks"))
    for specs, items, flag in ((config.models, model_args, "--model-arg"), (config.benches, bench_args, "--bench-arg")):
        for assignment in parse_assignments(items, flag):
            target, key, _ = assignment
            chosen = [s for s in specs if target in (None, s.name, groups.get(s.name))]
            if target and not chosen:
                raise ConfigError(f"{flag} {target}:{key}=...: '{target}' is not selected")
            for spec in chosen:
                spec.options = CommandLineOptions(spec.options)
                spec.options.set_text(key, assignment.text)
    given = judge_options(judge_args)
    config.judge_options = CommandLineOptions(config.judge_options)
    for key, text in given.texts.items():
        config.judge_options.set_text(key, text)
    apply_labels(config, labels)
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


def judge_options(items: tuple[str, ...] | list[str]) -> CommandLineOptions:
    """``--judge-arg key=value`` strings -> options of the judge."""
    return command_line_options(items, "--judge-arg")


def apply_labels(config: RunConfig, labels: tuple[str, ...] | list[str]) -> None:
    """Set models' leaderboard labels from ``--label [MODEL:]LABEL`` values: ``LABEL`` alone when one model is
    selected, ``MODEL:LABEL`` for the model selected as ``MODEL``. A label is a folder name (:data:`LABEL_PATTERN`)."""
    for item in labels:
        target, _, label = item.rpartition(":")
        if not target:
            if len(config.models) != 1:
                raise ConfigError(f"--label {item}: {len(config.models)} models are selected; name one as "
                                  "--label MODEL:LABEL")  # fmt: skip
            chosen = config.models
        else:
            chosen = [spec for spec in config.models if spec.name == target]
            if not chosen:
                raise ConfigError(f"--label {item}: model '{target}' is not selected")
        if not re.fullmatch(LABEL_PATTERN, label):
            raise ConfigError(f"--label {item}: a label is a folder name: letters, digits, '.', '_', '+' and '-', "
                              "not starting with '.'")  # fmt: skip
        for spec in chosen:
            spec.label = label


def validate_strictly(model: type[BaseModel], data: dict[str, Any]):
    """``data`` (a config file's or a plugin's options) validated as JSON data in pydantic's strict mode: no value is
    coerced (``"yes"`` is not a bool, ``"3"`` not an int, ``3.5`` not an int), while JSON's own types still fit
    (a string for a path or a choice, a list for a tuple, an int for a float). Data JSON cannot hold (Python
    objects, e.g. from a plugin that creates another) is validated as it is, in strict mode."""
    try:
        text = json.dumps(data)
    except (TypeError, ValueError):
        return model.model_validate(data, strict=True)
    return model.model_validate_json(text, strict=True)


def checked_options(options_class: type, options: dict[str, Any]) -> dict[str, Any]:
    """The options a plugin is created with: command-line texts read into their declared types
    (:func:`typed_options`), then the whole checked by :func:`validate_strictly`. Raises ``ValueError`` (a text that
    fits no reading) or pydantic's ``ValidationError``."""
    options = typed_options(options_class, options)
    if isinstance(options_class, type) and issubclass(options_class, BaseModel):
        try:
            json.dumps(options)
        except (TypeError, ValueError):
            return options  # Python objects: the plugin validates them as its options class says
        validate_strictly(options_class, options)
    return options


def is_secret_key(key: str) -> bool:
    """Whether a key names a secret: its last word (or last two) names one (:data:`SECRET_WORDS`); a key ending in
    ``_env`` holds the *name* of a variable (``api_key_env``), which is not a secret."""
    words = [word.lower() for word in _KEY_WORDS.findall(key or "")]
    if not words or words[-1] == "env":
        return False
    return words[-1] in SECRET_WORDS or tuple(words[-2:]) in SECRET_WORD_PAIRS


def url_secrets(text: str) -> set[str]:
    """The credentials inside the URLs of ``text``: the password of ``user:password@``, the token of ``token@``, and
    the values of query parameters named like secrets (``?api_key=...``)."""
    found = set()
    for match in _URL_CREDENTIALS.finditer(text):
        found.add(match["password"] if match["password"] is not None else match["user"])
    for match in _QUERY_PARAMETER.finditer(text):
        if is_secret_key(match["name"]):
            found.add(match["value"])
    return {secret for secret in found if secret}


def mask_url_credentials(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***`` (``http://user:***@host``,
    ``https://***@host``, ``?api_key=***``); the rest of each URL is kept."""

    def userinfo(match: re.Match) -> str:
        if match["password"] is not None:
            return f"{match['scheme']}{match['user']}:{MASK if match['password'] else ''}@"
        return f"{match['scheme']}{MASK if match['user'] else ''}@"

    def parameter(match: re.Match) -> str:
        if is_secret_key(match["name"]) and match["value"]:
            return f"{match['lead']}{match['name']}={MASK}"
        return match[0]

    if "://" in text:
        text = _URL_CREDENTIALS.sub(userinfo, text)
    if "=" in text and "?" in text:
        text = _QUERY_PARAMETER.sub(parameter, text)
    return text


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with the value of every key that names a secret (:func:`is_secret_key`) replaced by
    ``***``, and the credentials inside URLs in any string masked (:func:`mask_url_credentials`)."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if is_secret_key(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return mask_url_credentials(value)
    return value


def secret_values(value: Any, key: str = "") -> set[str]:
    """Every secret in ``value`` (the values of keys that name secrets, credentials inside URLs) and in the
    environment (variables named like secrets, credentials in URLs such as a proxy's)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found |= secret_values(v, k)
    elif isinstance(value, list):
        for v in value:
            found |= secret_values(v, key)
    elif isinstance(value, str):
        if is_secret_key(key):
            found.add(value)
        found |= url_secrets(value)
    if not key:
        for name, text in os.environ.items():
            found |= {text} if is_secret_key(name) else url_secrets(text)
    return {secret for secret in found if len(secret) >= 4}


def _error_items(error: ValidationError, data: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """``(path, pydantic's message, " (got VALUE)" or "")`` per error. The value is left out for a key that names a
    secret, for an unknown key (a misspelt ``api_kye`` may hold a key) and for whole tables (a missing option's
    input is every option given); every other secret in ``data`` is redacted."""
    secrets = secret_values(data or {})
    items = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        last = next((p for p in reversed(item["loc"]) if isinstance(p, str)), "")
        value = item.get("input")
        hidden = is_secret_key(last) or item["type"] == "extra_forbidden" or isinstance(value, (dict, list))
        shown = "" if hidden else f" (got {value!r})"
        items.append((redact(path, secrets), redact(item["msg"], secrets), redact(shown, secrets)))
    return items


def describe_option_errors(error: ValidationError, options: dict[str, Any] | None) -> str:
    """A plugin's option errors in pydantic's layout (the option's path, then its message) with the given value
    where it is not a secret, instead of pydantic's own text, which prints ``input_value='sk-...'``."""
    items = _error_items(error, options)
    lines = [f"{len(items)} validation error{'s' if len(items) != 1 else ''} for {error.title}"]
    for path, message, shown in items:
        lines += [path, f"  {message}{shown}"]
    return "\n".join(lines)


def redact(text: str, secrets: set[str]) -> str:
    """``text`` with every secret value replaced by ``***`` (for error messages, argv and logs)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
