"""What every command shares: the two consoles, the error-to-exit-code group, number formatting and
the options several commands take. No library logic lives in the CLI package: each command parses,
calls one library function and prints."""

from __future__ import annotations

import math
import sys

import click
from rich.console import Console
from rich.text import Text

from lmscale.errors import LmscaleError
from lmscale.fit.method import DEFAULT, NAMES

# a pipe or a file gets wide tables rather than rich's 80-column default. Markup is off: messages
# carry user data (run ids, file names, headers, metric names, cell text), and "[/red]" or "[bold]"
# in them must print as typed; styled parts are built as Text (see :func:`labelled`)
out = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, markup=False, width=None if sys.stderr.isatty() else 160)


def labelled(label: str, style: str, message: object) -> Text:
    """``label`` in ``style``, then ``message`` printed literally (never read as markup)."""
    return Text.assemble((label, style), " ", str(message))


class ErrorsAsMessages(click.Group):
    """Turns lmscale's own errors (and OS errors) into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LmscaleError as exc:
            err.print(labelled("error:", "bold red", exc), soft_wrap=True)
            sys.exit(2)
        except OSError as exc:  # permissions, a file where a folder should be, a full disk …
            where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
            err.print(
                labelled("error:", "bold red", f"cannot read or write{where}: {exc.strerror or exc}"),
                soft_wrap=True,
            )
            sys.exit(2)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)


class Size(click.ParamType):
    """A positive number of parameters, tokens or FLOPs: ``1B``, ``900M``, ``20B``, ``5e8``."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        from lmscale.errors import InputError
        from lmscale.units import parse_size

        try:
            return parse_size(value, "value")
        except InputError as exc:
            self.fail(str(exc).replace("value ", "", 1), param, ctx)


SIZE = Size()


def finite(ctx, param, value):
    """Option callback: refuse nan and ±inf (click's FloatRange lets NaN through, as every
    comparison with it is false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number")
    return value


def byte_size(ctx, param, value):
    """Option callback: a size in bytes (256MB, 1.5GiB, 1e9; k/M/G/T count powers of 1024) as a
    positive integer; text that is not a size, NaN, infinity, zero or a negative are refused."""
    from lmscale.errors import InputError
    from lmscale.train.memory import parse_bytes

    if value is None:
        return None
    try:
        v = (
            float(value)
            if isinstance(value, int) and not isinstance(value, bool)
            else parse_bytes(str(value))
        )
    except InputError:
        raise click.BadParameter(f"expected a size such as 256MB, 2GiB or 1e9 bytes, got {value!r}") from None
    if not math.isfinite(v) or v < 1 or v > 2**62:
        raise click.BadParameter(f"{value!r} is not a size between 1 byte and 4 EiB")
    return int(v)


def fmt(v, digits: int = 6) -> str:
    """A number for a table: ``digits`` significant digits, — for missing."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def format_option(*choices: str):
    """``--format table|json|…`` (table is the default)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices or ("table", "json"))),
        default="table",
        show_default=True,
    )


METHOD_HELP = (
    "default (rel-ls-size for loss laws, varpro for the error law; chosen by the accuracy benchmark), "
    "paper (the authors' LM on raw least squares), varpro (exact least squares, fast), rel-ls, "
    "rel-ls-size, ls-log, huber-log"
)


def method_option(what: str = "Fitting method", default: str | None = DEFAULT, *, multiple: bool = False):
    """``--method``, one of :data:`lmscale.fit.method.NAMES` (repeatable with ``multiple``, into
    ``methods``); ``default`` is lmscale's default everywhere but the paper report."""
    if multiple:
        return click.option(
            "--method", "methods", multiple=True, type=click.Choice(NAMES), help=f"{what}: {METHOD_HELP}."
        )
    return click.option(
        "--method",
        type=click.Choice(NAMES),
        default=default,
        show_default=True,
        help=f"{what}: {METHOD_HELP}.",
    )


def warn(message: str) -> None:
    err.print(labelled("warning:", "yellow", message), soft_wrap=True)


def suite_tasks(suite, data_root, task_labels):
    from lmscale.evaluate.icl import select_tasks

    if suite is None:
        raise click.UsageError("give the task suite: --suite FILE.yaml")

    def missing(t):
        err.print(labelled("skipping", "yellow", f"{t.label}: {t.path} not found"), soft_wrap=True)

    return select_tasks(suite, data_root, task_labels, on_missing=missing)


def suite_options(f):
    for opt in reversed(
        [
            click.option(
                "--suite",
                type=click.Path(exists=True, dir_okay=False),
                help="Task suite in LLM-Foundry's icl_tasks YAML form (e.g. the testbed's heavy.yaml).",
            ),
            click.option(
                "--data-root",
                type=click.Path(exists=True, file_okay=False),
                help="Folder the suite's dataset_uri paths are relative to (default: the suite's folder).",
            ),
            click.option("--task", "task_labels", multiple=True, help="Only these tasks."),
            click.option(
                "--limit",
                type=click.IntRange(min=1),
                default=None,
                help="Score at most this many items per task.",
            ),
        ]
    ):
        f = opt(f)
    return f
