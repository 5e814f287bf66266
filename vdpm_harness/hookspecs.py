"""Every hook a vdpm-harness plugin can implement. This module is the plugin API reference.

A plugin is a module (or object) with functions decorated by ``vdpm_harness.hookimpl`` whose names are the hook
names below. It is found through the ``vdpm_harness`` entry-point group::

    [project.entry-points.vdpm_harness]
    my-plugin = "my_package.plugin_module"

The built-in plugins are registered the same way. An implementation may accept a subset of a hook's arguments
(pluggy prunes the rest), so hooks can gain arguments without breaking existing plugins.

Registration hooks receive a ``register`` callback::

    register(id, factory, *, aliases=(), description="", **capabilities)

``factory`` is either a class / callable or a lazy ``"module.path:Attribute"`` string, so listing plugins never
imports heavy dependencies. The object it produces is constructed with the validated options of the run, e.g.
``factory(options)``; see :mod:`vdpm_harness.interfaces` for the base classes.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("vdpm_harness")
hookimpl = pluggy.HookimplMarker("vdpm_harness")


def kind(base: str):
    """Declare a registration hook as a plugin kind whose objects are instances of ``base`` (``"module:Class"``).

    The host derives its kinds from these declarations: adding a kind is one hookspec here, one base class in
    :mod:`vdpm_harness.interfaces`, its section of ``docs/plugins.md`` and its ``test_hook_*``.
    """

    def declare(function):
        function.plugin_base = base
        return function

    return declare


# --- registration -------------------------------------------------------------------------------------------------


@hookspec
@kind("vdpm_harness.interfaces:Model")
def register_models(register):
    """Register model plugins: ``register(id, factory, aliases=(), description="")``.

    The factory builds a :class:`vdpm_harness.interfaces.Model` subclass instance from its ``Options``.
    """


@hookspec
@kind("vdpm_harness.interfaces:Benchmark")
def register_benchmarks(register):
    """Register benchmark plugins: ``register(id, factory, aliases=(), description="")``.

    The factory builds a :class:`vdpm_harness.interfaces.Benchmark` subclass instance from its ``Options``.
    """


@hookspec
@kind("vdpm_harness.interfaces:Generator")
def register_generators(register):
    """Register QA-data generators: ``register(id, factory, aliases=(), description="")``.

    The factory builds a :class:`vdpm_harness.interfaces.Generator`; ``vdpm-harness generate ID`` runs it, with
    one command-line option per field of its ``Options``.
    """


@hookspec
@kind("vdpm_harness.interfaces:Judge")
def register_judges(register):
    """Register answer judges: ``register(id, factory, aliases=(), description="")``.

    The factory builds a :class:`vdpm_harness.interfaces.Judge`, used by ``run --judge ID`` and
    ``rescore --judge ID`` to read answers out of free-form responses.
    """


@hookspec
@kind("vdpm_harness.interfaces:Reporter")
def register_reporters(register):
    """Register report writers: ``register(id, factory, aliases=(), description="")``.

    The factory builds a :class:`vdpm_harness.interfaces.Reporter`; every registered reporter writes its view of
    the leaderboard whenever it is regenerated.
    """


@hookspec
@kind("vdpm_harness.interfaces:Detector")
def register_detectors(register):
    """Register open-vocabulary object detectors: ``register(id, factory, aliases=(), description="")``.

    The factory builds a :class:`vdpm_harness.interfaces.Detector`, a perception stage of ``video-tracks``.
    """


@hookspec
@kind("vdpm_harness.interfaces:Tracker")
def register_trackers(register):
    """Register video object trackers (and single-image segmenters): ``register(id, factory, ...)``.

    The factory builds a :class:`vdpm_harness.interfaces.Tracker`, a perception stage of ``video-tracks``.
    """


@hookspec
@kind("vdpm_harness.interfaces:Reconstructor")
def register_reconstructors(register):
    """Register 3D reconstructors (per-frame points and camera poses): ``register(id, factory, ...)``.

    The factory builds a :class:`vdpm_harness.interfaces.Reconstructor`, a perception stage of ``video-tracks``.
    """


@hookspec
@kind("vdpm_harness.interfaces:OrientationEstimator")
def register_orientation_estimators(register):
    """Register object orientation estimators: ``register(id, factory, aliases=(), description="")``.

    The factory builds a :class:`vdpm_harness.interfaces.OrientationEstimator`, a perception stage of
    ``video-tracks``.
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``vdpm-harness`` command line. ``cli`` is the root ``click.Group``::

    @hookimpl
    def register_commands(cli):
        @cli.command()
        def hello():
            click.echo("hello")
    """


# --- run lifecycle events -----------------------------------------------------------------------------------------


@hookspec
def benchmark_finished(result, run_dir):
    """Called when one (model, benchmark) pair has been scored and its ``results.json`` written.

    ``result`` is the :class:`vdpm_harness.records.BenchmarkResult`; ``run_dir`` the folder holding its records.
    Trackers (W&B and the like) subscribe here without changes to the core.
    """


@hookspec
def run_finished(results, out_dir):
    """Called once at the end of ``vdpm-harness run``, after the leaderboard is written.

    ``results`` is the list of :class:`vdpm_harness.records.BenchmarkResult` produced by this run (errors excluded);
    ``out_dir`` the results folder.
    """
