"""The run configuration: TOML and YAML files, command-line overrides, unknown keys, env expansion, secrets."""

import pytest

from vdpm_harness.config import ConfigError, build_config, mask_secrets, parse_assignments, redact, secret_values


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
