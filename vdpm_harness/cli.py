"""The ``vdpm-harness`` command line. Read ``run`` top to bottom to follow the evaluation pipeline."""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Union, get_args, get_origin

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .config import ConfigError, build_config, judge_options
from .plugins import KINDS, PluginError, get_host
from .records import SchemaVersionError
from .store import OutputError, StoreError, output_error
from .summary import report_errors, score_text

console = Console(stderr=True)
KIND_ALIASES = {"benches": "benchmarks", "bench": "benchmarks", "model": "models", "generator": "generators",
                "judge": "judges", "reporter": "reporters"}  # fmt: skip


#: ``--max-error-rate``: of ``run``, ``rescore`` and ``leaderboard``.
MAX_ERROR_RATE = click.option(
    "--max-error-rate", type=click.FloatRange(0, 1),
    help="A pair with a larger share of errors is marked failed on the leaderboard (default 0.5); one without a "
    "successful sample always is.",
)  # fmt: skip


def fail(message: str, code: int = 2):
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def interrupted(out: str | None) -> NoReturn:
    """Ctrl-C: say what is kept and exit with 130 (128 + SIGINT, what a shell reports).

    Every finished batch is already durable in the store, so nothing is left to save. If the interpreter's own
    shutdown then takes longer than a few seconds (a plugin's thread blocked in a call), the process ends anyway.
    """
    where = f" in {out}" if out else ""
    console.print(f"[yellow]interrupted[/yellow]: finished samples are stored{where}; run the same command again to "
                  "resume", highlight=False, soft_wrap=True)  # fmt: skip
    watchdog = threading.Timer(3.0, os._exit, args=(130,))
    watchdog.daemon = True  # never waited for itself
    watchdog.start()
    sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vdpm-harness")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging details.")
def cli(verbose: bool):
    """Evaluate vision-language models on dynamic spatial (4D) reasoning in videos."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


# --- introspection -------------------------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool):
    """Every installed plugin: its distribution, version and hooks; broken plugins with their error."""
    host = get_host()
    rows = [
        {"name": p.name, "module": p.module, "distribution": p.distribution, "version": p.version, "hooks": p.hooks}
        for p in host.plugins.values()
    ]
    registered = {kind: [entry.id for entry in host.registry(kind)] for kind in KINDS}
    broken = [{"name": name, "error": error} for name, error in host.broken.items()]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "registered": registered, "broken": broken}, indent=2))
        return
    table = Table("plugin", "distribution", "version", "hooks")
    for row in rows:
        table.add_row(row["name"], row["distribution"] or "-", row["version"] or "-", ", ".join(row["hooks"]))
    Console().print(table)
    for item in broken:
        console.print(f"[red]broken plugin {escape(item['name'])}[/red]: {escape(item['error'])}", highlight=False)


@cli.command(name="list")
@click.argument("kind", type=click.Choice([*KINDS, *KIND_ALIASES]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(kind: str, as_json: bool):
    """List registered models, benches, generators, judges or reporters (without importing them)."""
    kind = KIND_ALIASES.get(kind, kind)
    entries = list(get_host().registry(kind))
    rows = [{"id": e.id, "aliases": list(e.aliases), "plugin": e.plugin, "description": e.description} for e in entries]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "aliases", "plugin", "description")
    for row in rows:
        table.add_row(row["id"], ", ".join(row["aliases"]), row["plugin"], row["description"])
    Console().print(table)


# --- evaluation ----------------------------------------------------------------------------------------------------


@cli.command()
@click.option("--model", "models", help="Model ids or aliases, comma-separated.")
@click.option("--bench", "benches", help="Benchmark ids or aliases, comma-separated.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Run configuration (TOML or YAML).")
@click.option("--limit", type=int, help="Evaluate only the first N samples of each benchmark.")
@click.option("--out", help="Results folder (default: results).")
@click.option("--seed", type=int, help="Run seed (default 0).")
@click.option("--judge", help="Judge plugin that reads answers instead of the rules.")
@click.option("--judge-arg", multiple=True, help="Judge option key=value (repeatable).")
@click.option("--model-arg", multiple=True, help="Model option [MODEL:]key=value (repeatable).")
@click.option("--bench-arg", multiple=True, help="Benchmark option [BENCH:]key=value (repeatable).")
@click.option("--decode-workers", type=int, help="Video decoding worker processes (0 decodes inline).")
@click.option(
    "--video-backend", type=click.Choice(["pyav", "decord"]), help="Video decoder (default: the fastest installed)."
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Leaderboard label (results folder name) of the model: LABEL, or MODEL:LABEL with several models.",
)
@MAX_ERROR_RATE
def run(models, benches, config_file, limit, out, seed, judge, judge_arg, model_arg, bench_arg, decode_workers,
        video_backend, labels, max_error_rate):  # fmt: skip
    """Evaluate models on benchmarks and update the leaderboard. Rerunning the same command resumes."""
    from .pipeline import Runner

    config = None
    try:
        config = build_config(
            config_file, models, benches, model_arg, bench_arg, judge_arg, limit=limit, out=out, seed=seed, judge=judge,
            decode_workers=decode_workers, video_backend=video_backend, labels=labels, max_error_rate=max_error_rate,
        )  # fmt: skip
        runner = Runner(config, get_host(), console)
        outcomes = runner.run()
    except (ConfigError, PluginError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        interrupted(config.out if config else out)
    if not runner.dist.is_main:  # rank 0 reports for every rank
        sys.exit(1 if any(o.error for o in outcomes) else 0)
    table = Table("model", "benchmark", "score", "n", "errors", "unparsed", "new", "reused", title="vdpm-harness run")
    for o in outcomes:
        if o.result is None:
            table.add_row(o.label, o.benchmark, "[red]failed[/red]", "", "", "", "", "")
            continue
        result = o.result
        score = score_text(result, config.max_error_rate)
        unparsed = f"{result.unparsed_rate:.1%}" if result.unparsed_rate is not None else "-"
        new = str(o.counts["ok"] + o.counts["error"])
        table.add_row(o.label, o.benchmark, score, str(result.n_samples), str(result.n_errors), unparsed, new,
                      str(o.counts["reused"]))  # fmt: skip
    Console().print(table)
    unsuccessful = report_errors(console, [o.result for o in outcomes if o.result is not None], runner.secrets)
    print(f"results in {config.out}", file=sys.stderr)
    if any(o.result is None for o in outcomes) or unsuccessful:
        sys.exit(1)


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--judge", help="Judge plugin that reads answers instead of the rules.")
@click.option("--judge-arg", multiple=True, help="Judge option key=value (repeatable).")
@click.option("--results", "results_dir", type=click.Path(file_okay=False),
              help="Results folder whose leaderboard to regenerate (default: two levels above each pair).")  # fmt: skip
@MAX_ERROR_RATE
def rescore(run_dir, judge, judge_arg, results_dir, max_error_rate):
    """Re-extract and re-score stored responses (all pairs under RUN_DIR) without running any model."""
    from .scoring import PairRefused, pair_folders, write_leaderboard
    from .scoring import rescore as rescore_pair

    host = get_host()
    folders = pair_folders(Path(run_dir))
    if not folders:
        fail(f"no run.json under {run_dir}: not a vdpm-harness results folder")
    roots, failed = set(), 0
    try:
        judge_plugin = host.create("judges", judge, judge_options(judge_arg)) if judge else None
        for folder in folders:
            try:
                result = rescore_pair(host, folder, judge_plugin)
            except (StoreError, SchemaVersionError, PairRefused, OutputError) as exc:  # this pair only
                console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
                failed += 1
                continue
            metric = result.metrics[result.primary]
            n = f"n={result.n_samples}"
            if not result.complete:
                n += f" of {result.n_expected}, INCOMPLETE"
            click.echo(f"{result.model} · {result.benchmark}: {result.primary} {metric.value:.2f} ({n})")
            failed += len(report_errors(console, [result]))
            roots.add(Path(results_dir) if results_dir else folder.parent.parent)
    except PluginError as exc:
        fail(str(exc))
    for root in sorted(roots):
        for path in write_leaderboard(host, root, max_error_rate=max_error_rate):
            console.print(f"wrote {path}", soft_wrap=True, highlight=False)
    if failed:
        sys.exit(1)


@cli.command()
@click.option("--results", "results_dir", default="results", show_default=True, type=click.Path(file_okay=False))
@MAX_ERROR_RATE
def leaderboard(results_dir, max_error_rate):
    """Regenerate the leaderboard (markdown, xlsx, ...) from every results.json under a results folder."""
    from .scoring import write_leaderboard

    if not Path(results_dir).is_dir():
        fail(f"results folder not found: {results_dir}")
    for path in write_leaderboard(get_host(), Path(results_dir), max_error_rate=max_error_rate):
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("bench")
@click.option("--bench-arg", multiple=True, help="Benchmark option key=value (repeatable).")
@click.option("--train-bench", help="Benchmark whose samples train blind-prior (default: BENCH, video held out).")
@click.option("--train-bench-arg", multiple=True, help="Option key=value of the training benchmark (repeatable).")
@click.option("--model", "models", multiple=True, help="Also run this model text-only (blind=true) (repeatable).")
@click.option("--model-arg", multiple=True, help="Option [MODEL:]key=value of those models (repeatable).")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results folder: the runs go there (and on its leaderboard), the report to OUT/audit/.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed (ties are drawn with it).")
@click.option("--limit", type=int, help="Audit only the first N samples.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Family-wise significance level.")
@click.option("--fail-on-flag", is_flag=True, help="Exit with status 1 when a blind baseline beats chance.")
def audit(bench, bench_arg, train_bench, train_bench_arg, models, model_arg, out, seed, limit, alpha, fail_on_flag):
    """How much of BENCH can be answered without its videos: blind baselines (and text-only models) per category
    against chance, with the distributions of correct letters and answers; flags every significant blind advantage."""
    from .audit import audit_config, run_audit, to_markdown, write_report

    host = get_host()
    try:
        config = audit_config(host, bench, tuple(bench_arg), out=out, seed=seed, limit=limit,
                              train_bench=train_bench, train_args=tuple(train_bench_arg), models=tuple(models),
                              model_args=tuple(model_arg))  # fmt: skip
        report = run_audit(host, config, alpha, console)
    except (ConfigError, PluginError, ValueError, RuntimeError) as exc:
        fail(str(exc))
    click.echo(to_markdown(report))
    for path in write_report(report, Path(out) / "audit"):
        console.print(f"wrote {path}", soft_wrap=True, highlight=False)
    if fail_on_flag and report.flags:
        sys.exit(1)


# --- data and imports ----------------------------------------------------------------------------------------------


def _benchmark(name: str, bench_args: tuple[str, ...], data_dir: str | None = None):
    from .config import command_line_options

    options = command_line_options(bench_args, "--bench-arg")
    if data_dir:
        options["data_dir"] = data_dir
    return get_host().create("benchmarks", name, options)


@dataclass(frozen=True)
class Dataset:
    """Data that ``data pull`` downloads and ``data verify`` checks but that no benchmark reads, such as a trainer's
    training data. A package of the ``vdpm_harness.commands`` entry points registers it with :func:`add_dataset`
    (the trainer registers ``dsr-train``), so the core names no such package."""

    name: str
    description: str
    #: Downloads into the empty folder it is given; ``data pull`` builds that folder beside ``--to`` and puts it in
    #: its place only when this returns (``store.building``: files the harness did not create are never touched).
    #: Raises OSError, RuntimeError or ValueError with a message that says what to do (offline, for one).
    pull: Callable[[Path], None]
    #: Problems of a local copy, each naming its file; [] when it can be used.
    verify: Callable[[Path], list[str]]
    #: The folder when ``--to`` (``--data-dir``) is not given.
    default_folder: str
    #: How to use the folder once pulled: a command with ``{folder}`` in it.
    usage: str = ""


#: The datasets ``data pull`` knows besides benchmarks, by name.
DATASETS: dict[str, Dataset] = {}


def add_dataset(dataset: Dataset) -> None:
    """Make ``dataset`` pullable by its name (a later registration of the same name replaces the earlier)."""
    DATASETS[dataset.name] = dataset


def pullable() -> list[tuple[str, str]]:
    """``(name, description)`` of everything ``data pull`` downloads: the datasets, then every benchmark that
    implements ``pull`` (their classes are loaded to tell, their modules being light)."""
    from .interfaces import Benchmark

    rows = [(d.name, d.description) for d in sorted(DATASETS.values(), key=lambda d: d.name)]
    for entry in get_host().registry("benchmarks"):
        try:
            downloads = entry.load_class().pull is not Benchmark.pull
        except Exception:  # noqa: BLE001 - a broken plugin is reported by `vdpm-harness plugins`
            continue
        if downloads and entry.id not in DATASETS:
            rows.append((entry.id, f"benchmark: {entry.description}" if entry.description else "benchmark"))
    return rows


def _pullable_text() -> str:
    return ", ".join(name for name, _ in pullable()) + " (`vdpm-harness data pull --help` describes them)"


class PullCommand(click.Command):
    """``data pull``, whose help ends with what can be pulled (read when shown: the entry-point packages add their
    datasets after the command line is built)."""

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        with formatter.section("Can be pulled"):
            formatter.write_dl(pullable())


@cli.group()
def data():
    """Download and check benchmark data and other datasets such as training data (runs themselves never touch the
    network)."""


def _pull_dataset(dataset: Dataset, to: str | None) -> NoReturn:
    from .progress import watching_folder
    from .store import ForeignFolderError, building

    folder = Path(to or dataset.default_folder)
    try:
        with building(folder) as staging:
            with watching_folder(console, f"{dataset.name}: downloading into {folder}", staging):
                dataset.pull(staging)
    except ForeignFolderError as exc:
        fail(f"{dataset.name}: {exc}")
    except (OSError, RuntimeError, ValueError) as exc:
        fail(f"{dataset.name}: download failed, {folder} left as it was: {exc}")
    problems = dataset.verify(folder)
    _report_pulled(dataset.name, folder, problems)
    if dataset.usage:
        click.echo("use it: " + dataset.usage.format(folder=folder))
    sys.exit(1 if problems else 0)


def _report_pulled(name: str, folder: Path | str, problems: list[str]) -> None:
    """What ``data pull`` says after a download: each problem of the verification, then where the data is."""
    for problem in problems:
        console.print(f"[red]{escape(problem)}[/red]", soft_wrap=True, highlight=False)
    click.echo(f"{name}: data in {folder}" + (f" with {len(problems)} problems" if problems else ", verified"))


@data.command(cls=PullCommand)
@click.argument("name")
@click.option("--to", "to", type=click.Path(file_okay=False),
              help="Folder to download into (required for a benchmark; a dataset has a default).")  # fmt: skip
@click.option("--bench-arg", multiple=True, help="Benchmark option key=value (repeatable).")
def pull(name, to, bench_arg):
    """Download NAME into a folder: a benchmark's data (then pass it as --bench-arg data_dir=FOLDER) or a dataset
    such as training data (`data pull dsr-train`, then `train gsm --train FOLDER`). A dataset goes into a new or
    empty folder, or one it was pulled into before, which is then replaced; a folder holding anything else is
    refused and left as it is."""
    from .progress import watching_folder

    if name in DATASETS:
        if bench_arg:
            fail(f"{name} is a dataset, not a benchmark: it takes no --bench-arg")
        _pull_dataset(DATASETS[name], to)
    registry = get_host().registry("benchmarks")
    try:
        registry.get(name)
    except PluginError as exc:
        if name in registry.groups or name in registry.conflicts:  # a group or an ambiguous name: say which
            fail(str(exc))
        close = difflib.get_close_matches(name, [n for n, _ in pullable()], n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        fail(f"nothing called '{name}' can be pulled; {hint}what can be pulled: {_pullable_text()}")
    if not to:
        fail(f"{name} is a benchmark: pass --to FOLDER (its data_dir)")
    benchmark = _benchmark(name, bench_arg, data_dir=to)
    try:
        with watching_folder(console, f"{benchmark.id}: downloading into {to}", Path(to)):
            benchmark.pull(Path(to))
    except (OSError, RuntimeError, ValueError, NotImplementedError) as exc:
        fail(f"{benchmark.id}: download failed: {exc}")
    problems = benchmark.verify()
    _report_pulled(benchmark.id, to, problems)
    sys.exit(1 if problems else 0)


@data.command()
@click.argument("bench")
@click.option("--data-dir", type=click.Path(file_okay=False), help="The benchmark's (or dataset's) data folder.")
@click.option("--bench-arg", multiple=True, help="Benchmark option key=value (repeatable).")
def verify(bench, data_dir, bench_arg):
    """Check BENCH's (or a pullable dataset's) local data: checksums, missing files (each named)."""
    if bench in DATASETS:
        dataset = DATASETS[bench]
        folder = Path(data_dir or dataset.default_folder)
        problems = dataset.verify(folder)
        for problem in problems:
            click.echo(problem)
        click.echo(f"{bench}: {len(problems)} problems in {folder}" if problems else f"{bench}: {folder} verified")
        sys.exit(1 if problems else 0)
    benchmark = _benchmark(bench, bench_arg, data_dir)
    problems = benchmark.verify()
    for problem in problems:
        click.echo(problem)
    click.echo(f"{benchmark.id}: {len(problems)} problems" if problems else f"{benchmark.id}: data verified")
    sys.exit(1 if problems else 0)


@cli.command(name="import")
@click.argument("bench")
@click.argument("path", type=click.Path(exists=True))
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--judge", help="Judge plugin for scoring the imported responses (default: the benchmark's rules).")
@click.option("--judge-arg", multiple=True, help="Judge option key=value (repeatable).")
@click.option("--bench-arg", multiple=True, help="Benchmark option key=value (repeatable).")
def import_(bench, path, out, judge, judge_arg, bench_arg):
    """Import another harness's or a paper's output files for BENCH as runs, score them, update the leaderboard."""
    from .progress import stepping
    from .scoring import import_runs, write_leaderboard

    try:
        judge_plugin = get_host().create("judges", judge, judge_options(judge_arg)) if judge else None
        with stepping(console, f"import {path}") as step:
            results = import_runs(get_host(), _benchmark(bench, bench_arg), Path(path), Path(out), judge_plugin, step)
    except (OSError, ValueError, RuntimeError, NotImplementedError) as exc:
        fail(f"import of {path} failed: {exc}")
    for result in results:
        metric = result.metrics[result.primary]
        click.echo(f"{result.model} · {result.benchmark}: {result.primary} {metric.value:.2f} (n={result.n_samples})")
    unsuccessful = report_errors(console, results)
    for written in write_leaderboard(get_host(), Path(out)):
        console.print(f"wrote {written}", soft_wrap=True, highlight=False)
    if unsuccessful:
        sys.exit(1)


# --- data generation -------------------------------------------------------------------------------------------------


def list_item_type(annotation: Any) -> Any | None:
    """The item type of an option declared ``list[X]`` (or ``list[X] | None``; ``Any`` for a bare ``list``), else
    None."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
        annotation = kinds[0] if len(kinds) == 1 else None
    if annotation is not list and get_origin(annotation) is not list:
        return None
    return (get_args(annotation) or (Any,))[0]


def read_list_option(flag: str, item_type: Any, texts: tuple[str, ...]) -> list[Any]:
    """The items of a repeatable (list) option of ``generate``, as ``run`` reads ``--model-arg``: each occurrence is
    one item, read into the item type; an occurrence that is not one item may hold several, comma-separated (read
    as the whole list, the single-text form)."""
    from .config import read_option_text

    items: list[Any] = []
    for text in texts:
        try:
            items.append(read_option_text(item_type, text))
        except ValueError as exc:
            try:
                items.extend(read_option_text(list[item_type], text))
            except ValueError:
                fail(f"{flag}: {exc}")
    return items


class GeneratorGroup(click.Group):
    """``vdpm-harness generate ID``: one subcommand per registered generator, options from its ``Options``; an
    option declared as a list is repeatable."""

    def list_commands(self, ctx):
        return sorted(entry.id for entry in get_host().registry("generators"))

    def get_command(self, ctx, name):
        try:
            entry = get_host().get("generators", name)
        except PluginError as exc:
            fail(str(exc))
        cls = entry.load_class()
        #: the repeatable (list) options: name -> (flag, item type)
        lists: dict[str, tuple[str, Any]] = {}

        def callback(out, seed, **values):
            from .config import CommandLineOptions
            from .distributed import Distributed
            from .generation import GenerationError
            from .interfaces import ItemGenerator

            # a text click did not type (an ``int | None`` or ``Literal`` option) is read into the declared type
            options = CommandLineOptions({k: v for k, v in values.items()
                                          if v is not None and not isinstance(v, (str, tuple))})  # fmt: skip
            for key, value in values.items():
                if isinstance(value, str):
                    options.set_text(key, value)
                elif isinstance(value, tuple) and value:  # a list option given at least once
                    options[key] = read_list_option(*lists[key], value)
            generator = entry.create(options)
            dist = Distributed()
            try:
                if isinstance(generator, ItemGenerator):  # resumable; shares its items under torchrun
                    dist = Distributed.from_env()
                    stats = generator.run(Path(out), seed=seed, dist=dist)
                elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
                    fail(f"generator '{name}' cannot share its work between processes: run it without torchrun")
                else:
                    stats = generator.run(Path(out), seed=seed)
            except (GenerationError, ValueError) as exc:
                if not dist.is_main:
                    sys.exit(1)  # rank 0 reports
                fail(str(exc), code=1)
            dist.close()
            if dist.is_main:
                click.echo(json.dumps(stats, indent=2, default=str))

        params = [
            click.Option(["--out"], required=True, type=click.Path(file_okay=False), help="Output folder."),
            click.Option(["--seed"], type=int, default=0, show_default=True, help="Random seed."),
        ]
        for field_name, field in cls.Options.model_fields.items():
            annotation = field.annotation
            kind = annotation if annotation in (int, float, str, bool) else None
            flag = "--" + field_name.replace("_", "-")
            if kind is bool:
                flag = f"{flag}/--no-{field_name.replace('_', '-')}"
            item_type = list_item_type(annotation)
            if item_type is not None:
                lists[field_name] = (flag, item_type)
                text = (field.description or "").rstrip(". ")
                params.append(click.Option([flag, field_name], multiple=True, help=f"{text} (repeatable).".lstrip()))
                continue
            params.append(click.Option([flag, field_name], type=kind, default=None, help=field.description or ""))
        return click.Command(name, params=params, callback=callback, help=entry.description)


@cli.group(cls=GeneratorGroup)
def generate():
    """Generate data (videos, tracks, QA records) with a generator plugin. For an item generator (synth-scenes,
    dsr-templates), rerunning an interrupted command resumes it, and under torchrun the processes share the work."""


# --- entry point ---------------------------------------------------------------------------------------------------


#: Entry points of packages that add commands to the command line without being plugins, such as the trainers of
#: ``training/`` (``train``), which import plugins and so cannot be one: each names a function
#: ``register_commands(cli)``. The core reads the group without naming any such package.
COMMAND_ENTRY_POINTS = "vdpm_harness.commands"


def add_entry_point_commands(group: click.Group) -> None:
    """Call every ``vdpm_harness.commands`` entry point with ``group``; one that fails is reported as broken
    (``vdpm-harness plugins``) and the other commands still work."""
    import traceback
    from importlib import metadata

    host = get_host()
    for ep in metadata.entry_points(group=COMMAND_ENTRY_POINTS):
        try:
            ep.load()(group)
        except Exception:  # noqa: BLE001 - reported by `vdpm-harness plugins`
            host.broken[f"{COMMAND_ENTRY_POINTS}:{ep.name}"] = f"{ep.value}: {traceback.format_exc()}"


def main(argv=None):
    get_host().add_commands(cli)
    add_entry_point_commands(cli)
    try:
        cli.main(args=argv, prog_name="vdpm-harness")
    except (ConfigError, PluginError) as exc:
        fail(str(exc))
    except (StoreError, SchemaVersionError) as exc:  # a folder that cannot be used
        fail(str(exc), code=1)
    except OSError as exc:  # one that cannot be written (a full disk, a read-only folder), whoever wrote
        error = output_error(exc)
        if error is None:
            raise
        fail(str(error), code=1)


if __name__ == "__main__":  # pragma: no cover
    main()
