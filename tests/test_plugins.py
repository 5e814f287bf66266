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


# --- kinds, creation checks, composition, isolation of every hook --------------------------------------------------


def test_kinds_come_from_the_hookspecs():
    """A kind is one ``@kind`` registration hookspec with its base class: the host reads them, nothing else."""
    from vdpm_harness import hookspecs, interfaces
    from vdpm_harness.plugins import KIND_BASES, KINDS

    declared = [name.removeprefix("register_") for name, fn in vars(hookspecs).items() if hasattr(fn, "plugin_base")]
    assert list(KINDS) == declared == ["models", "benchmarks", "generators", "judges", "reporters", "detectors",
                                       "trackers", "reconstructors", "orientation_estimators"]  # fmt: skip
    for kind, base in KIND_BASES.items():
        module, _, name = base.partition(":")
        assert module == "vdpm_harness.interfaces" and issubclass(getattr(interfaces, name), interfaces.Plugin), kind


def _inline_host(*plugins) -> Host:
    host = Host(load_entry_points=True)
    for i, plugin in enumerate(plugins):
        host.register(plugin, name=f"inline-{i}")
    return host


def test_a_plugin_missing_a_required_method_fails_at_creation_naming_it(host):
    from vdpm_harness import Benchmark, Model, hookimpl

    class NoGenerate(Model):
        pass

    class HalfBenchmark(Benchmark):
        def samples(self):
            return []

    class NotAModel:
        def __init__(self, options):
            pass

    class Plugin:
        @staticmethod
        @hookimpl
        def register_models(register):
            register("no-generate", NoGenerate)
            register("not-a-model", NotAModel)

        @staticmethod
        @hookimpl
        def register_benchmarks(register):
            register("half", HalfBenchmark)

    host.register(Plugin, name="inline")
    with pytest.raises(PluginError, match=r"model 'no-generate' \(plugin 'inline'\): NoGenerate does not implement"):
        host.create("models", "no-generate")
    with pytest.raises(PluginError, match="HalfBenchmark does not implement build_request, extract, score"):
        host.create("benchmarks", "half")
    with pytest.raises(PluginError, match="NotAModel must subclass vdpm_harness.Model"):
        host.create("models", "not-a-model")


def test_registration_calls_pass_only_the_arguments_an_implementation_declares(host):
    """hookspecs promises pluggy's pruning: an implementation may take a subset of a hook's arguments (so hooks
    can gain arguments). Registration hooks are called one implementation at a time, and keep that promise."""
    from vdpm_harness import hookimpl
    from vdpm_harness.plugins import call_pruned

    seen = []

    class NoArguments:
        @staticmethod
        @hookimpl
        def register_reporters():
            seen.append("called")

    host.register(NoArguments, name="no-arguments")
    assert "markdown" in {e.id for e in host.registry("reporters")}
    assert seen == ["called"] and "no-arguments" not in host.broken
    # a hook that gained an argument still calls an implementation written against the old signature
    [impl] = [i for i in host.pm.hook.register_reporters.get_hookimpls() if i.plugin is NoArguments]
    call_pruned(impl, register=None, new_argument=1)
    assert seen == ["called", "called"]


def test_a_register_commands_that_raises_breaks_no_command(tmp_path):
    """One plugin's failing ``register_commands`` is reported as broken; every other command still works."""
    site = tmp_path / "site"
    (site / "bad_cli-1.0.dist-info").mkdir(parents=True)
    (site / "bad_cli-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-cli\nVersion: 1.0\n")
    (site / "bad_cli-1.0.dist-info" / "entry_points.txt").write_text("[vdpm_harness]\nbad-cli = bad_cli\n")
    (site / "bad_cli.py").write_text(
        "from vdpm_harness import hookimpl\n\n"
        "@hookimpl\ndef register_commands(cli):\n    raise RuntimeError('cannot add my command')\n"
    )
    env = cli_env()
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    data = json.loads(run_cli("plugins", "--json", env=env).stdout)
    broken = {b["name"]: b["error"] for b in data["broken"]}
    assert "register_commands" in broken["bad-cli"] and "cannot add my command" in broken["bad-cli"]
    assert run_cli("hello", "world", env=env).stdout.strip() == "hello world"  # another plugin's command
    assert "random" in run_cli("list", "models", env=env).stdout


def test_a_plugin_creates_another_by_id_and_the_record_lists_it(host):
    """Composition through the host: a model made of the registered ``random`` model, created by id."""
    from vdpm_harness import Model, Strict, hookimpl

    class Committee(Model):
        version = "3"

        class Options(Strict):
            api_key: str = "sk-secret-value"

        def __init__(self, options=None):
            super().__init__(options)
            self.member = self.create_plugin("models", "random", {"batch_size": 7})

        def generate(self, batch):
            return self.member.generate(batch)

    class Plugin:
        @staticmethod
        @hookimpl
        def register_models(register):
            register("committee", Committee)

    host.register(Plugin, name="inline")
    committee = host.create("models", "committee")
    assert committee.member.host is host and committee.member.batch_size == 7
    record = committee.provenance()
    assert record["id"] == "committee" and record["version"] == "3" and record["plugin"] == "inline"
    assert record["options"]["api_key"] == "***"  # secrets masked
    [member] = record["components"]
    assert member["kind"] == "models" and member["id"] == "random" and member["options"] == {"batch_size": 7}
    assert member["distribution"] == "vdpm-harness" and member["components"] == []
    with pytest.raises(PluginError, match="unknown model 'nope'"):
        Committee.create_plugin(committee, "models", "nope")


# --- the perception kinds (their built-in plugins are tested in test_perception*.py and test_video_tracks.py) ------


def _perception_clip():
    import numpy as np

    from vdpm_harness import Clip

    frames = np.zeros((3, 8, 10, 3), np.uint8)
    return Clip(frames=frames, indices=np.arange(3), timestamps=np.arange(3) / 10.0)


def _perception_host(hook: str, factory) -> Host:
    """A host whose one plugin registers ``factory`` as ``inline`` through the registration hook ``hook``."""
    from vdpm_harness import hookimpl

    host = Host(load_entry_points=False)

    class Plugin:
        pass

    def register(register):
        register("inline", factory, description="inline")

    setattr(Plugin, hook, staticmethod(hookimpl(register)))
    host.register(Plugin, name="inline-perception")
    return host


def test_hook_register_detectors(host):
    from vdpm_harness import Detection, Detector

    assert {"grounding-dino", "oracle"} <= {e.id for e in host.registry("detectors")}

    class Boxes(Detector):
        def detect(self, clip, frames, phrases):
            return [[Detection(box=(0, 0, 2, 2), score=1.0, phrase=phrases[0])] for _ in frames]

    inline = _perception_host("register_detectors", Boxes).create("detectors", "inline")
    assert inline.detect(_perception_clip(), [0, 2], ["cat"])[1][0].phrase == "cat"


def test_hook_register_trackers(host):
    import numpy as np

    from vdpm_harness import Tracker, Tracks

    assert {"sam2", "oracle"} <= {e.id for e in host.registry("trackers")}

    class Still(Tracker):
        def track(self, clip, frame, boxes):
            masks = np.zeros((len(boxes), len(clip), 8, 10), bool)
            masks[:, :, 1:3, 2:5] = True
            return Tracks.from_masks(masks)

    tracker = _perception_host("register_trackers", Still).create("trackers", "inline")
    np.testing.assert_array_equal(tracker.track(_perception_clip(), 0, np.zeros((1, 4))).boxes[0, 2], [2, 1, 5, 3])
    assert tracker.segment(np.zeros((8, 10, 3), np.uint8), np.zeros((2, 4))).shape == (2, 8, 10)  # the default


def test_hook_register_reconstructors(host):
    import numpy as np

    from vdpm_harness import Reconstruction, Reconstructor, Tracks

    assert {"pi3", "oracle"} <= {e.id for e in host.registry("reconstructors")}

    class Plane(Reconstructor):
        def reconstruct(self, clip):
            points = np.zeros((len(clip), 4, 5, 3), np.float32)
            points[..., 2] = 2.0
            return Reconstruction(points, np.ones((len(clip), 4, 5), bool), np.tile(np.eye(4), (len(clip), 1, 1)))

    reconstructor = _perception_host("register_reconstructors", Plane).create("reconstructors", "inline")
    clip = _perception_clip()
    masks = np.zeros((1, 3, 8, 10), bool)
    masks[0, 1, 2:4, 2:4] = True
    positions = reconstructor.locate(clip, reconstructor.reconstruct(clip), Tracks.from_masks(masks))
    np.testing.assert_allclose(positions[0, 1], [0, 0, 2])  # the mean of the masked points
    assert np.isnan(positions[0, 0]).all()  # no mask on frame 0


def test_hook_register_orientation_estimators(host):
    import numpy as np

    from vdpm_harness import Orientation, OrientationEstimator

    assert {"orient-anything", "oracle"} <= {e.id for e in host.registry("orientation_estimators")}

    class Away(OrientationEstimator):
        def estimate(self, clip, requests):
            return [Orientation(azimuth=180.0, polar=0.0, rotation=0.0, confidence=0.9) for _ in requests]

    estimator = _perception_host("register_orientation_estimators", Away).create("orientation_estimators", "inline")
    [orientation] = estimator.estimate(_perception_clip(), [(0, np.ones((8, 10), bool))])
    np.testing.assert_allclose(orientation.facing(), [0, 0, 1], atol=1e-12)  # azimuth 180: facing away
