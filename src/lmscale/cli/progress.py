"""The one progress layer of the long commands (``loop``, ``ladder run``, ``ladder eval``, ``plan``,
``reproduce``).

On a terminal it draws rich bars on stderr, as before. When stdout is not a terminal (a log file,
SLURM, nohup, CI) it prints plain timestamped lines to stdout instead, so the log shows where a job
is: the start and end of the command and of every run, and in between at most one line every
:data:`INTERVAL_S` seconds (run i/n, step, tokens/s, ETA). ``--quiet`` silences both.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from typing import IO

import click

#: seconds between two progress lines inside a run (start and end lines always print);
#: LMSCALE_PROGRESS_INTERVAL overrides it
INTERVAL_S = 20.0
_QUIET = {"on": False}


def _set_quiet(ctx, param, value):
    if value:
        _QUIET["on"] = True
    return value


quiet_option = click.option(
    "--quiet", "-q", is_flag=True, expose_value=False, callback=_set_quiet, help="No progress output."
)


def duration(seconds: float) -> str:
    """3725 → '1h02m', 125 → '2m05s', 7 → '7s'."""
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


class LadderProgress:
    """Progress of a command over ``total`` items (runs, runs × tasks, analyses, candidates).
    ``on_run``/``on_step``/``on_eval`` are the ladder trainer's callbacks; ``advance`` counts one
    item done, with a label. Use as a context manager.

    ``mode``: ``bar``, ``lines`` or ``quiet``; by default ``quiet`` under ``--quiet``, ``lines``
    when stdout is not a terminal, else ``bar``. ``stream``: where lines go (stdout by default;
    stderr for a command whose stdout is JSON)."""

    def __init__(
        self,
        total: int,
        what: str = "ladder",
        *,
        transient: bool = False,
        mode: str | None = None,
        stream: IO[str] | None = None,
        interval_s: float | None = None,
    ):
        self.total, self.what, self.transient = total, what, transient
        self.mode = mode or ("quiet" if _QUIET["on"] else "bar" if sys.stdout.isatty() else "lines")
        self.stream = stream
        env = os.environ.get("LMSCALE_PROGRESS_INTERVAL")
        self.interval = interval_s if interval_s is not None else float(env) if env else INTERVAL_S
        self.done, self.t0, self.last_line = 0, time.monotonic(), -float("inf")
        self.run_name, self.run_t0, self.run_label = "", self.t0, ""

    # ------------------------------------------------------------------------------ plumbing
    def _line(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        stream = self.stream or sys.stdout
        stream.write(f"{stamp} [{self.what}] {text}\n")
        stream.flush()
        self.last_line = time.monotonic()

    def _due(self) -> bool:
        return time.monotonic() - self.last_line >= self.interval

    def _eta(self) -> str:
        if not self.done or not self.total:
            return ""
        per = (time.monotonic() - self.t0) / self.done
        return f", ETA {duration(per * (self.total - self.done))}"

    def __enter__(self):
        if self.mode == "bar":
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            from lmscale.cli._common import err

            self.bar = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                TextColumn("{task.fields[info]}", markup=False),
                TimeRemainingColumn(),
                console=err,
                transient=self.transient,
            )
            self.bar.__enter__()
            self.top = self.bar.add_task(self.what, total=self.total, info="")
            self.sub = self.bar.add_task("run", total=1, info="")
        elif self.mode == "lines":
            self._line(f"start: {self.total} item(s)" if self.total else "start")
        return self

    def __exit__(self, *exc):
        if self.mode == "bar":
            self.bar.update(self.top, completed=self.total)
            return self.bar.__exit__(*exc)
        if self.mode == "lines":
            if self.run_name and not exc[0]:
                self.done = max(self.done, self.total)
                spent = duration(time.monotonic() - self.run_t0)
                self._line(f"run {self.run_label} {self.run_name}: finished in {spent}")
            took = duration(time.monotonic() - self.t0)
            self._line(f"{'failed' if exc[0] else 'done'} after {took} ({self.done}/{self.total})")
        return False

    # ---------------------------------------------------------------------------- callbacks
    def on_run(self, k: int, n: int, r) -> None:
        """Run ``k`` (0-based) of ``n`` starts; ``r`` has a ``run_id``."""
        if self.mode == "bar":
            self.bar.update(self.top, completed=k, description=f"train run {k + 1}/{n}")
            self.bar.update(self.sub, completed=0, total=1, description=r.run_id, info="preparing")
        elif self.mode == "lines":
            if self.run_name:
                self._line(
                    f"run {self.run_label} {self.run_name}: finished in {duration(time.monotonic() - self.run_t0)}"
                )
            self.done, self.total = k, n
            self.run_name, self.run_label, self.run_t0 = r.run_id, f"{k + 1}/{n}", time.monotonic()
            self._line(f"run {k + 1}/{n} {r.run_id}: start{self._eta()}")

    def on_step(self, step: int, n_steps: int, tps: float) -> None:
        if self.mode == "bar":
            self.bar.update(self.sub, completed=step, total=n_steps, info=f"{tps:,.0f} tokens/s")
        elif self.mode == "lines" and (self._due() or step >= n_steps):
            spent = time.monotonic() - self.run_t0
            eta = f", run ETA {duration(spent / step * (n_steps - step))}" if 0 < step < n_steps else ""
            self._line(
                f"run {self.run_label} {self.run_name}: step {step}/{n_steps}, {tps:,.0f} tokens/s{eta}"
            )

    def on_eval(self, label: str) -> None:
        if self.mode == "bar":
            self.bar.update(self.sub, advance=1, description=f"evaluate: {label}", info="")
        elif self.mode == "lines" and self._due():
            self._line(f"evaluate: {label}")

    def advance(self, label: str = "") -> None:
        """One item done (``label`` names it: a run, a task, an analysis)."""
        self.done += 1
        if self.mode == "bar":
            desc = f"{self.what}: {label}" if label else self.what
            self.bar.update(self.top, advance=1, total=self.total or None, description=desc)
        elif self.mode == "lines" and (self._due() or self.done >= self.total):
            self._line(f"{self.done}/{self.total}{' ' + label if label else ''}{self._eta()}")
