"""Benchmark groups: a name registered with ``group=`` stands for all its members where a run selects benchmarks.

``4dbench`` is the group of ``4dbench-qa`` and ``4dbench-caption`` (4D-Bench's two tasks), so ``--bench 4dbench`` runs
both; a group is expanded by the run configuration, with its options and frame policy, and rejected where one plugin
is wanted (``data pull``, ``verify``), naming its members.
"""

from __future__ import annotations

import pytest

from vdpm_harness import hookimpl
from vdpm_harness.config import build_config
from vdpm_harness.plugins import Entry, PluginError, Registry


def _registry() -> Registry:
    registry = Registry("benchmarks", {})
    registry.add(Entry("suite-a", "benchmarks", object, plugin="p", capabilities={"group": "suite"}))
    registry.add(Entry("other", "benchmarks", object, plugin="p"))
    registry.add(Entry("suite-b", "benchmarks", object, plugin="q", capabilities={"group": ("suite", "all")}))
    return registry


def test_a_group_expands_to_its_members_in_registration_order():
    registry = _registry()
    assert registry.expand("suite") == ["suite-a", "suite-b"] and registry.expand("all") == ["suite-b"]
    assert registry.expand("other") == ["other"] and registry.expand("nothing") == ["nothing"]
    with pytest.raises(PluginError, match=r"'suite' is a group of benchmarks \(suite-a, suite-b\)"):
        registry.get("suite")
    with pytest.raises(PluginError, match="did you mean 'suite'"):
        registry.get("suiet")


def test_a_group_name_that_is_also_a_benchmark_is_a_conflict_when_selected():
    registry = _registry()
    registry.add(Entry("all", "benchmarks", object, plugin="r"))
    assert registry.get("all").id == "all"  # one plugin wanted: the benchmark itself
    with pytest.raises(PluginError, match="'all' is both a benchmark of plugin 'r' and a group of benchmarks"):
        registry.expand("all")


def test_4dbench_is_qa_and_captioning(host):
    assert host.registry("benchmarks").expand("4dbench") == ["4dbench-qa", "4dbench-caption"]
    config = build_config(models="random", benches="dsr,4dbench,vlm4d", host=host,
                          bench_args=("4dbench:data_dir=/data/4d", "4dbench-qa:frames_cache=/tmp/f",
                                      "dsr:data_dir=/data/dsr"))  # fmt: skip
    assert [b.name for b in config.benches] == ["dsr", "4dbench-qa", "4dbench-caption", "vlm4d"]
    options = {b.name: b.options for b in config.benches}
    assert options["4dbench-qa"] == {"data_dir": "/data/4d", "frames_cache": "/tmp/f"}
    assert options["4dbench-caption"] == {"data_dir": "/data/4d"} and options["dsr"] == {"data_dir": "/data/dsr"}
    # a member selected by name too runs once, at its first place
    config = build_config(models="random", benches="4dbench-caption,4dbench", host=host)
    assert [b.name for b in config.benches] == ["4dbench-caption", "4dbench-qa"]


def test_a_group_in_a_config_file_carries_its_options_and_frames(host, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[[models]]\nname = "random"\n\n[[benches]]\nname = "4dbench"\noptions = { data_dir = "/d" }\n'
                    "frames = { nframes = 6 }\n")  # fmt: skip
    config = build_config(path, host=host)
    assert [(b.name, b.options, b.frames.nframes) for b in config.benches] == [
        ("4dbench-qa", {"data_dir": "/d"}, 6), ("4dbench-caption", {"data_dir": "/d"}, 6)]  # fmt: skip
    assert config.benches[0].options is not config.benches[1].options  # each member owns its options


class _GroupPlugin:
    """A third-party plugin declaring a group through the registration hook's ``group=`` capability."""

    @hookimpl
    def register_benchmarks(self, register):
        for name in ("mini-a", "mini-b"):
            register(name, "vdpm_harness_plugins.benchmarks.motion_basics:MotionBasics", group="mini")


def test_hook_registration_declares_a_group_that_a_run_selects(host):
    host.register(_GroupPlugin(), "group-plugin")
    try:
        config = build_config(models="random", benches="mini", host=host, limit=1)
        assert [b.name for b in config.benches] == ["mini-a", "mini-b"]
        assert [host.create("benchmarks", b.name).id for b in config.benches] == ["mini-a", "mini-b"]
        with pytest.raises(PluginError, match=r"'mini' is a group of benchmarks \(mini-a, mini-b\)"):
            host.create("benchmarks", "mini")
    finally:
        host.unregister("group-plugin")
