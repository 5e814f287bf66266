"""Plugin discovery, registries, broken-plugin isolation, VDPM_LOAD_PLUGINS, tracing, and one test per hook.

The hook tests are named ``test_hook_<name>``; ``test_docs.py`` fails when a hook has no such test.
"""

import json

import pytest

from vdpm_harness.plugins import Entry, Host, PluginError, Registry

from .conftest import cli_env, run_cli


def test_builtins_are_entry_points(host):
    for name in ("random", "motion-basics", "markdown", "xlsx"):
        plugin = host.plugins[name]
        assert plugin.distribution == "vdpm-harness" and plugin.version
    assert host.plugins["fixture"].distribution == "vdpm-fixture-plugin"
    assert {"random", "echo"} <= {e.id for e in host.registry("models")}


def test_plugins_command_json_lists_hooks_and_versions():
    data = json.loads(run_cli("plugins", "--json").stdout)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["random"]["hooks"] == ["register_models"]
    assert by_name["fixture"]["version"] == "0.1"
    assert "benchmark_finished" in by_name["fixture"]["hooks"]
    assert data["broken"] == []
    assert "motion-basics" in data["registered"]["benchmarks"]


def test_list_command_does_not_import_lazy_factories(tmp_path):
    out = run_cli("list", "models", "--json").stdout
    assert {row["id"] for row in json.loads(out)} >= {"random", "echo"}
    # a lazy factory pointing to a module that does not exist is listed fine, and fails only when selected
    entry = Entry("ghost", "models", "no_such_module_xyz:Model", plugin="p")
    with pytest.raises(PluginError, match="model 'ghost' .*failed to load no_such_module_xyz:Model"):
        entry.create()


def test_unknown_names_suggest_close_ones(host):
    with pytest.raises(PluginError, match="did you mean 'random'"):
        host.get("models", "randmo")
    with pytest.raises(PluginError, match="unknown benchmark 'zzz'; available: .*motion-basics"):
        host.get("benchmarks", "zzz")
    with pytest.raises(PluginError, match="unknown plugin kind"):
        host.registry("widgets")


def test_aliases_resolve_and_conflicts_fail_only_when_selected():
    registry = Registry("models", {})
    registry.add(Entry("a", "models", object, aliases=("x",), plugin="p1"))
    registry.add(Entry("b", "models", object, aliases=("x",), plugin="p2"))
    assert registry.get("a").id == "a" and registry.get("b").id == "b"
    with pytest.raises(PluginError, match="'x' is registered by both plugin 'p1' and plugin 'p2'"):
        registry.get("x")


def _broken_dist(tmp_path):
    """An installed distribution whose plugin module raises at import."""
    site = tmp_path / "site"
    (site / "broken_pkg-1.0.dist-info").mkdir(parents=True)
    (site / "broken_pkg-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-pkg\nVersion: 1.0\n"
    )
    (site / "broken_pkg-1.0.dist-info" / "entry_points.txt").write_text("[vdpm_harness]\nbroken = broken_plugin\n")
    (site / "broken_plugin.py").write_text("import this_dependency_is_not_installed\n")
    return site


def test_broken_plugin_is_isolated_and_reported(tmp_path):
    site = _broken_dist(tmp_path)
    env = cli_env()
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    data = json.loads(run_cli("plugins", "--json", env=env).stdout)
    broken = {b["name"]: b["error"] for b in data["broken"]}
    assert "this_dependency_is_not_installed" in broken["broken"] and "broken-pkg" in broken["broken"]
    assert "random" in data["registered"]["models"]  # the others still load
    # a run that does not select it works; one that selects a missing name names the broken plugin
    out = tmp_path / "res"
    run_cli("run", "--model", "random", "--bench", "motion-basics", "--limit", "3", "--out", str(out), env=env)
    proc = run_cli(
        "run", "--model", "broken-model", "--bench", "motion-basics", "--out", str(out), env=env, check=False
    )
    assert proc.returncode == 2
    assert "unknown model 'broken-model'" in proc.stderr and "broken:" in proc.stderr


def test_vdpm_load_plugins_restricts_loading():
    data = json.loads(run_cli("plugins", "--json", env=cli_env(VDPM_LOAD_PLUGINS="random,markdown")).stdout)
    assert sorted(p["name"] for p in data["plugins"]) == ["markdown", "random"]
    data = json.loads(run_cli("plugins", "--json", env=cli_env(VDPM_LOAD_PLUGINS="")).stdout)
    assert data["plugins"] == []


def test_tracing_prints_hook_calls():
    proc = run_cli("list", "models", env=cli_env(VDPM_TRACE_PLUGINS="1"))
    assert "[vdpm trace] register_models(register) -> plugin random registered ['random']" in proc.stderr
    assert "[vdpm trace] register_commands(cli)" in proc.stderr


def test_in_process_register_and_unregister():
    host = Host(load_entry_points=False)

    class Plugin:
        from vdpm_harness import hookimpl

        @staticmethod
        @hookimpl
        def register_models(register):
            register("inline", object, description="inline")

    host.register(Plugin, name="inline-plugin")
    assert host.get("models", "inline").plugin == "inline-plugin"
    host.unregister("inline-plugin")
    with pytest.raises(PluginError):
        host.get("models", "inline")


# --- one test per hook -----------------------------------------------------------------------------------------------


def test_hook_register_models(host):
    model = host.create("models", "echo-a", {"batch_size": 3})
    assert model.id == "echo" and model.batch_size == 3


def test_hook_register_benchmarks(host, tmp_path):
    bench = host.create("benchmarks", "fixture-videos", {"data_dir": str(tmp_path), "broken": False})
    samples = list(bench.samples())
    assert len(samples) == 12 and samples[0].category == "first"


def test_hook_register_generators(tmp_path):
    proc = run_cli("generate", "count-gen", "--out", str(tmp_path / "g"), "--seed", "5", "--n-files", "3")
    assert json.loads(proc.stdout) == {"written": 3, "seed": 5}
    assert sorted(p.read_text() for p in (tmp_path / "g").iterdir()) == ["5", "6", "7"]
    assert "--n-files" in run_cli("generate", "count-gen", "--help").stdout


def test_hook_register_judges(host):
    from vdpm_harness.records import GenerationSettings, Prediction, Sample

    judge = host.create("judges", "last-letter")
    sample = Sample(sample_id="1", video_id="v", options=["A. x", "B. y"], answer="B")
    prediction = Prediction(key="k", sample_id="1", video_id="v", benchmark="b", benchmark_version="1", model="m",
                            model_fingerprint="f", prompt_hash="p", generation=GenerationSettings(), status="ok",
                            response="A or rather B", created="t")  # fmt: skip
    [extraction] = judge.judge(None, [(sample, prediction)])
    assert extraction.answer == "B" and extraction.method == "judge:last-letter@7"


def test_hook_register_reporters(host):
    assert {"markdown", "xlsx", "tsv"} <= {e.id for e in host.registry("reporters")}


def test_hook_register_commands():
    assert run_cli("hello", "world").stdout.strip() == "hello world"


@pytest.fixture(scope="module")
def lifecycle_events(tmp_path_factory):
    """The events the fixture plugin saw during one small run."""
    tmp = tmp_path_factory.mktemp("events")
    events = tmp / "events.jsonl"
    env = cli_env(VDPM_TEST_EVENTS=str(events))
    run_cli("run", "--model", "random", "--bench", "motion-basics", "--limit", "4", "--out", str(tmp / "r"), env=env)
    return tmp / "r", [json.loads(line) for line in events.read_text().splitlines()]


def test_hook_benchmark_finished(lifecycle_events):
    out, events = lifecycle_events
    assert events[0] == {
        "event": "benchmark_finished",
        "model": "random",
        "benchmark": "motion-basics",
        "run_dir": str(out / "random" / "motion-basics"),
    }


def test_hook_run_finished(lifecycle_events):
    out, events = lifecycle_events
    assert events[-1] == {"event": "run_finished", "n": 1, "out_dir": str(out)}
