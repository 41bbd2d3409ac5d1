"""The ``lmscale`` command line: a thin layer over the library, one module per command group
(:mod:`.fitting`: fit, predict, backtest, plan; :mod:`.paper`: reproduce, testbed, benchmark;
:mod:`.ladder`: ladder plan/run/eval; :mod:`.cluster`: ladder submit/status; :mod:`.pipeline`: eval, loop, report; :mod:`.interop`: import, export). Errors are one clear message on stderr and exit code 2,
never a traceback."""

from __future__ import annotations

import click

from lmscale.cli._common import ErrorsAsMessages


@click.group(cls=ErrorsAsMessages, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lmscale")
def cli():
    """Predict the loss and downstream error of large, over-trained language-model runs from small ones."""


def _register() -> None:
    from lmscale.cli import cluster, data, fitting, interop, ladder, paper, pipeline

    for module in (fitting, paper, ladder, cluster, pipeline, data, interop):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main(argv=None):
    cli.main(args=argv, prog_name="lmscale")


__all__ = ["cli", "main"]
