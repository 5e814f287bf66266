"""The ``vdpm-harness models`` commands of the ``qwen25vl`` plugin: offline checkpoints (:mod:`.checkpoints`,
:mod:`.gsm.checkpoints`).

``models make-tiny DIR [--seed S] [--gsm]`` builds the tiny random-weight model (tests, smoke runs); ``models
make-random DIR --config 7b [--gsm]`` writes a config-only checkpoint of a real size, run with ``random_weights=true``.
``--gsm``: the GSM model of ``qwen25vl-gsm`` on the same Qwen2.5-VL, in the checkpoint layout it loads.
"""

from __future__ import annotations

import json

import click

GSM_HELP = "Build the GSM model (qwen25vl-gsm): Qwen2.5-VL with the Pi3 encoder and two Q-Formers."


def add_models_commands(cli: click.Group) -> None:
    """Add ``make-tiny`` and ``make-random`` to the ``models`` group of ``cli`` (created when no plugin has yet)."""
    group = cli.commands.get("models")
    if group is None:

        @cli.group(name="models")
        def group():
            """Build offline model checkpoints (tiny test models, config-only real sizes)."""

    @group.command("make-tiny")
    @click.argument("out", type=click.Path(file_okay=False))
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of the tokenizer corpus and weights.")
    @click.option("--gsm", is_flag=True, help=GSM_HELP)
    def make_tiny(out, seed, gsm):
        """Build a tiny random-weight Qwen2.5-VL (or GSM) in OUT, fully offline (tests, smoke runs)."""
        if gsm:
            from .gsm.checkpoints import make_tiny as build
        else:
            from .checkpoints import make_tiny as build

        click.echo(json.dumps(build(out, seed), indent=2))

    @group.command("make-random")
    @click.argument("out", type=click.Path(file_okay=False))
    @click.option("--config", "size", required=True, help="Real configuration to write, e.g. 7b.")
    @click.option("--gsm", is_flag=True, help=GSM_HELP)
    def make_random(out, size, gsm):
        """Write a config-only Qwen2.5-VL (or GSM) checkpoint of a real size to OUT; run it with random_weights=true."""
        from .checkpoints import REAL_CONFIGS

        if size.lower() not in REAL_CONFIGS:
            raise click.BadParameter(f"unknown configuration {size!r}; known: {', '.join(REAL_CONFIGS)}",
                                     param_hint="--config")  # fmt: skip
        if gsm:
            from .gsm.checkpoints import make_random as write
        else:
            from .checkpoints import make_random as write
        click.echo(json.dumps(write(out, size), indent=2))
