"""The run configuration: TOML and YAML files, command-line overrides, unknown keys, env expansion, secrets."""

import pytest

from vdpm_harness.config import (
    ConfigError,
    build_config,
    command_line_options,
    is_secret_key,
    mask_secrets,
    parse_assignments,
    read_option_text,
    redact,
    secret_values,
)
from vdpm_harness.plugins import PluginError

from .conftest import run_cli


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_and_yaml_give_the_same_config(tmp_path):
    toml = write(
        tmp_path,
        "run.toml",
        """
out = "res"
seed = 3
limit = 5
[[models]]
name = "random"
options = { batch_size = 4 }
[[benches]]
name = "motion-basics"
frames = { nframes = 8 }
""",
    )
    yaml = write(
        tmp_path,
        "run.yaml",
        """
out: res
seed: 3
limit: 5
models:
  - name: random
    options: {batch_size: 4}
benches:
  - name: motion-basics
    frames: {nframes: 8}
""",
    )
    a, b = build_config(toml), build_config(yaml)
    assert a == b
    assert a.models[0].options == {"batch_size": 4} and a.benches[0].frames.nframes == 8 and a.limit == 5


@pytest.mark.parametrize(
    "text, where",
    [
        ("outt = 'x'\nmodels = ['random']\nbenches = ['b']", "outt: unknown key"),
        ("models = [{name = 'random', optoins = {}}]\nbenches = ['b']", "models.0.optoins: unknown key"),
        ("models = ['random']\n[[benches]]\nname = 'b'\nframes = {nframes = 8, fsp = 1}", "benches.0.frames.fsp"),
    ],
)
def test_unknown_keys_are_rejected_with_their_path(tmp_path, text, where):
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert where in str(err.value) and str(path) in str(err.value)


def test_unknown_plugin_option_is_rejected_by_the_plugin(host):
    with pytest.raises(Exception) as err:
        host.create("models", "random", {"batch_sise": 3})
    assert "batch_sise" in str(err.value) and "random" in str(err.value)


def test_command_line_overrides_the_file(tmp_path):
    path = write(
        tmp_path, "run.toml", "seed = 1\n[[models]]\nname = 'echo'\noptions = {delay = 0.5}\n[[benches]]\nname = 'x'\n"
    )
    config = build_config(path, models="echo,random", benches=None, model_args=("echo:delay=0", "batch_size=8"), seed=9)
    assert config.seed == 9
    assert [m.name for m in config.models] == ["echo", "random"]
    assert config.models[0].options == {"delay": 0, "batch_size": 8}  # file options kept, then overridden
    assert config.models[1].options == {"batch_size": 8}


def test_assignments_parse_json_values_and_targets():
    assert parse_assignments(["a=1", "m:b=true", "c=[1, 2]", "d=text", "e=a=b"], "--x") == [
        (None, "a", 1),
        ("m", "b", True),
        (None, "c", [1, 2]),
        (None, "d", "text"),
        (None, "e", "a=b"),
    ]
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["novalue"], "--model-arg")


def test_selection_is_required():
    with pytest.raises(ConfigError, match="no model"):
        build_config(models=None, benches="b")
    with pytest.raises(ConfigError, match="not selected"):
        build_config(models="a", benches="b", model_args=("zzz:k=1",))


def test_env_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-live-123456")
    path = write(
        tmp_path, "run.toml", "models = [{name = 'echo', options = {api_key = '${MY_KEY}'}}]\nbenches = ['b']\n"
    )
    assert build_config(path).models[0].options["api_key"] == "sk-live-123456"
    missing = write(tmp_path, "missing.toml", "out = '${NOT_SET_ANYWHERE_42}'\nmodels=['a']\nbenches=['b']\n")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE_42"):
        build_config(missing)


def test_secret_masking_and_redaction(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-999")
    data = {
        "models": [{"options": {"api_key": "sk-abc-123", "Authorization": "Bearer x1y2", "batch_size": 2}}],
        "judge_token": "t0k3n-value",
        "out": "results",
    }
    masked = mask_secrets(data)
    assert masked["models"][0]["options"] == {"api_key": "***", "Authorization": "***", "batch_size": 2}
    assert masked["judge_token"] == "***" and masked["out"] == "results"
    secrets = secret_values(data)
    assert {"sk-abc-123", "Bearer x1y2", "t0k3n-value", "sk-from-env-999"} <= secrets
    assert redact("401 for key sk-abc-123 and sk-from-env-999", secrets) == "401 for key *** and ***"


def test_token_counts_and_tokenizers_are_not_secrets():
    """``token`` marks a secret only as a word of its own: counts (``max_new_tokens``) and names (``tokenizer``)
    stay readable in run records (``rescore`` re-creates the benchmark from them) and are never redacted."""
    data = {"hf_token": "hf_abc", "ACCESS-TOKEN": "x9y8z7", "max_new_tokens": 8, "max_tokens": 1024,
            "tokenizer": "qwen", "tokens_per_second": 2, "prompt_tokens": 11714}  # fmt: skip
    masked = mask_secrets(data)
    assert masked == {**data, "hf_token": "***", "ACCESS-TOKEN": "***"}
    assert secret_values(data) >= {"hf_abc", "x9y8z7"} and not secret_values(data) & {"qwen", "11714"}


# --- issue 17: secrets by what they are, strict values, typed command-line options, labels ---------------------------


def test_token_ids_are_not_secrets_and_url_credentials_are():
    """Issue 17 repro: ``run.json`` masked the token ids of a model's generation config as ``***`` and wrote a key
    inside ``base_url`` (``http://user:KEY@host``) unmasked."""
    data = {
        "details": {"generation": {"pad_token_id": 151643, "bos_token_id": 151643, "eos_token_id": 151645}},
        "judge": {"base_url": "http://user:sk-url-KEY-4242@127.0.0.1:8000/v1", "model": "m"},
        "mirror": "https://ghp_TOKENvalue99@github.com/org/repo.git",
        "query": "https://host/v1?api_key=sk-query-777&model=m",
        "plain": "https://api.openai.com/v1",
    }
    masked = mask_secrets(data)
    assert masked["details"] == data["details"]
    assert masked["judge"] == {"base_url": "http://user:***@127.0.0.1:8000/v1", "model": "m"}
    assert masked["mirror"] == "https://***@github.com/org/repo.git"
    assert masked["query"] == "https://host/v1?api_key=***&model=m"
    assert masked["plain"] == data["plain"]
    secrets = secret_values(data)
    assert {"sk-url-KEY-4242", "ghp_TOKENvalue99", "sk-query-777"} <= secrets and "151643" not in secrets
    message = "ConnectionError: http://user:sk-url-KEY-4242@127.0.0.1:8000/v1 refused"
    assert redact(message, secrets) == "ConnectionError: http://user:***@127.0.0.1:8000/v1 refused"
    assert [k for k in ("pad_token_id", "token_ids", "api_key_env", "tokens") if is_secret_key(k)] == []
    assert all(is_secret_key(k) for k in ("apiKey", "OPENAI_API_KEY", "client_secret", "x-api-key", "hf_token"))


def test_option_validation_errors_never_print_a_secret(host):
    """Issue 17 repro: an invalid option printed pydantic's ``input_value='sk-...'`` on the console. A missing option
    (whose input is every option given), a misspelt key and a wrongly typed secret must not show it."""
    secret = "sk-validation-SECRET-31337"
    cases = [
        {"api_key": secret},  # "model" missing: pydantic's input is the whole dict
        {"model": "m", "api_kye": secret},  # a misspelt key holding the key
        {"model": "m", "api_key": [secret]},  # a secret of the wrong type
        {"model": "m", "base_url": f"http://u:{secret}@h/v1", "timeout": "soon"},  # a URL credential elsewhere
    ]
    for options in cases:
        with pytest.raises(PluginError) as raised:
            host.create("models", "openai-chat", options)
        text = str(raised.value)
        assert "invalid options for model 'openai-chat'" in text and secret not in text, text
        assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(PluginError, match=r"timeout\n  Input should be a valid number.*\(got 'soon'\)"):
        host.create("models", "openai-chat", {"model": "m", "timeout": "soon"})


def test_option_validation_errors_on_the_console_never_print_a_secret(tmp_path):
    secret = "sk-console-SECRET-8080"
    proc = run_cli("run", "--model", "openai-chat", "--model-arg", f"api_key={secret}", "--bench", "motion-basics",
                   "--out", str(tmp_path / "res"), check=False)  # fmt: skip
    assert proc.returncode == 2 and "invalid options for model 'openai-chat'" in proc.stderr
    assert "model\n  Field required" in proc.stderr
    assert secret not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    "line, key",
    [("retry_errors = 'yes'", "retry_errors"), ("seed = '3'", "seed"), ("limit = 2.5", "limit")],
)
def test_config_values_are_not_coerced(tmp_path, line, key):
    """Issue 17 repro: ``"yes"`` became true and ``"3"`` became 3 where the configuration declares a bool or an int."""
    path = write(tmp_path, "run.toml", f"{line}\nmodels = ['random']\nbenches = ['motion-basics']\n")
    with pytest.raises(ConfigError, match=rf"{key}: .*\(got "):
        build_config(path)


def test_plugin_options_from_files_are_not_coerced(host, tmp_path):
    """A model option from a file must have its declared type: ``batch_size = "3"`` and ``check_frames = "yes"`` are
    errors, not 3 and true; JSON's own types still fit (a float option given an int)."""
    for options in ({"batch_size": "3"}, {"check_frames": "yes"}):
        with pytest.raises(PluginError, match="invalid options for model 'echo'"):
            host.create("models", "echo", options)
    assert host.create("models", "echo", {"batch_size": 3, "delay": 0}).options.delay == 0.0


def test_command_line_texts_are_read_into_the_declared_types(host):
    """``key=value`` texts are read into each option's declared type when the plugin is created: a list option takes
    ``a,b`` (issue 17: it needed JSON), a text option keeps digits as text, a bool takes true/false only."""
    config = build_config(models="echo", benches="vlm4d", model_args=("fail_on=0-1,2-0", "batch_size=3", "delay=1e-3"),
                          bench_args=("ids=real/validation_3,synthetic/test_5",))  # fmt: skip
    echo = host.create("models", "echo", config.models[0].options)
    assert echo.options.fail_on == ["0-1", "2-0"] and echo.options.batch_size == 3 and echo.options.delay == 0.001
    assert host.create("benchmarks", "vlm4d", config.benches[0].options).options.ids == [
        "real/validation_3", "synthetic/test_5",
    ]  # fmt: skip
    assert host.create("models", "echo", command_line_options(["fail_on=[\"a\", \"b\"]"], "-")).options.fail_on == [
        "a", "b",
    ]  # fmt: skip
    assert host.create("models", "echo", command_line_options(["fail_on=single"], "-")).options.fail_on == ["single"]
    assert read_option_text(str, "2024") == "2024" and read_option_text(str | None, "null") == "null"
    assert read_option_text(int | None, "null") is None and read_option_text(dict, '{"a": 1}') == {"a": 1}
    with pytest.raises(PluginError, match="option 'check_frames' from the command line: cannot read 'yes' as bool"):
        host.create("models", "echo", command_line_options(["check_frames=yes"], "--model-arg"))
    with pytest.raises(PluginError, match="cannot read '2.5' as int"):
        host.create("models", "echo", command_line_options(["batch_size=2.5"], "--model-arg"))


def test_label_from_the_command_line(tmp_path):
    """Issue 17: a model's leaderboard label could be set only in a config file."""
    assert build_config(models="random", benches="b", labels=("chance",)).models[0].label == "chance"
    config = build_config(models="random,echo", benches="b", labels=("echo:parrot",))
    assert [m.label for m in config.models] == [None, "parrot"]
    with pytest.raises(ConfigError, match="2 models are selected"):
        build_config(models="random,echo", benches="b", labels=("x",))
    with pytest.raises(ConfigError, match="'zzz' is not selected"):
        build_config(models="random", benches="b", labels=("zzz:x",))
    with pytest.raises(ConfigError, match="a label is a folder name"):
        build_config(models="random", benches="b", labels=("../up",))
    path = write(tmp_path, "run.toml", "models = [{name = 'random', label = '../../etc'}]\nbenches = ['b']\n")
    with pytest.raises(ConfigError, match="models.0.label"):
        build_config(path)
