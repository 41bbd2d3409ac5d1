"""The paper report: run the analyses, then write ``report.md``, ``report.html`` (figures inline),
``figures/<name>.png`` and ``tables/<name>.csv`` + ``.json``. Every file is written atomically."""

from __future__ import annotations

import base64
import functools
import io
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lmscale._io import atomic_write, atomic_write_text
from lmscale.analyses import downstream, headline, hparams, sweeps
from lmscale.analyses.context import Analysis, Context, md_escape
from lmscale.errors import InputError, LmscaleError
from lmscale.report.figures import PLOTS

#: every analysis of the report, in order (key → function of a Context)
ANALYSES: dict[str, Callable[[Context], Analysis]] = {
    "figure1": headline.figure1,
    "table6": headline.table6,
    "heatmaps": headline.heatmaps,
    "per_task": downstream.per_task,
    "table7": downstream.table7,
    "rank_correlation": downstream.rank_correlation,
    "threshold_sweep": downstream.threshold_sweep,
    "exponent_vs_m": sweeps.exponent_vs_m,
    "undertraining": sweeps.undertraining,
    "compute_sweep": sweeps.compute_sweep,
    "tied_vs_untied": sweeps.tied_vs_untied,
    "hparam_search": hparams.hparam_search,
}


def run_analyses(
    ctx: Context, only: Sequence[str] | None = None, progress: Callable[[str], None] | None = None
) -> tuple[list[Analysis], dict[str, str]]:
    """Run the analyses (all, or ``only``). An analysis whose inputs are missing (no grid.json,
    no task baselines) is skipped with its reason, never silently."""
    keys = list(only or ANALYSES)
    unknown = [k for k in keys if k not in ANALYSES]
    if unknown:
        raise InputError(f"unknown analysis {', '.join(unknown)}; known: {', '.join(ANALYSES)}")
    done, skipped = [], {}
    for k in keys:
        try:
            done.append(ANALYSES[k](ctx))
        except LmscaleError as exc:
            skipped[k] = str(exc)
        if progress is not None:
            progress(k)
    return done, skipped


def _jsonable(df):
    return json.loads(df.to_json(orient="records", double_precision=15))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


HTML_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
code{background:#f5f5f5;padding:1px 3px}h2{border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:2em}"""


def write_report(
    ctx: Context,
    out_dir: str | Path,
    analyses: Sequence[Analysis],
    skipped: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    elapsed: float | None = None,
    title: str = "lmscale: the paper's analyses, reproduced",
    source_label: str = "Testbed",
) -> Path:
    """Write the report of ``analyses`` into ``out_dir``; returns the path of ``report.md``."""

    final = Path(out_dir)
    if not final.resolve().name:
        raise InputError(f"{out_dir!r} cannot hold a report: give a folder of its own (e.g. report/)")
    if final.exists() and not final.is_dir():
        raise InputError(f"{final} exists and is not a folder")
    if final.is_dir() and any(final.iterdir()) and not (final / "report.md").is_file():
        raise InputError(
            f"{final} holds other files and no lmscale report; give a new or empty folder (a report "
            "replaces its folder whole)"
        )
    # written into a staging folder, then swapped in: a kill leaves the old report whole, never a mix
    out = final.parent / f".{final.name}.partial"
    shutil.rmtree(out, ignore_errors=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    s = ctx.setting
    md = [
        f"# {title}",
        "",
        f"{source_label} `{ctx.runs.source}`: {len(ctx.runs)} runs; training sets "
        f"{md_escape(', '.join(ctx.train_sets))}. "
        f"Setting: {s.describe()}.",
        "",
        f"Fit spec `{s.spec.name}`: loss law on `{s.spec.loss_fit}`; error law on `{s.spec.error_fit}`; "
        f"held out `{s.spec.heldout}`.",
        "",
    ]
    images: dict[str, bytes] = {}
    for a in analyses:
        md += [f"## {a.title}", "", a.text, ""]
        for name, fig in PLOTS.get(a.key, lambda _a: [])(a):
            data = _png(fig)
            atomic_write(out / "figures" / f"{name}.png", functools.partial(_write_bytes, data), binary=True)
            images[f"figures/{name}.png"] = data
            md += [f"![{name}](figures/{name}.png)", ""]
        links = []
        for tname, df in a.tables.items():
            atomic_write(out / "tables" / f"{tname}.csv", functools.partial(_write_csv, df))
            atomic_write_text(
                out / "tables" / f"{tname}.json", json.dumps(_jsonable(df), indent=1, allow_nan=True)
            )
            links.append(f"[{tname}.csv](tables/{tname}.csv) / [json](tables/{tname}.json)")
        md += ["Tables: " + ", ".join(links), ""]
        if progress is not None:
            progress(a.key)
    if skipped:
        md += ["## Skipped", ""] + [f"- `{k}`: {why}" for k, why in skipped.items()] + [""]
    if elapsed is not None:
        md += [f"_Analyses computed in {elapsed:.1f} s._", ""]
    text = "\n".join(md)
    path = atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.html", inline_images(_html(text), images))
    numbers = {
        a.key: {k: (None if not np.isfinite(v) else v) for k, v in a.numbers.items()} for a in analyses
    }
    atomic_write_text(out / "numbers.json", json.dumps(numbers, indent=1))
    _swap_in(out, final)
    return final / path.name


def _swap_in(staged: Path, final: Path) -> None:
    """Replace ``final`` by ``staged`` with two renames (the old one is removed last)."""
    old = final.parent / f".{final.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _html(md_text: str) -> str:
    """Markdown → one self-contained HTML page: each ``figures/x.png`` image is inlined."""
    import markdown

    md = markdown.Markdown(extensions=["tables"])
    # raw HTML in the text is shown as text, never rendered: run ids and names come from user files
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    # nor is <https://…> or <a@b.c> in the data a live link (the report's own links use [text](path))
    md.inlinePatterns.deregister("autolink")
    md.inlinePatterns.deregister("automail")
    body = md.convert(md_text)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>lmscale report</title>"
        f"<style>{HTML_STYLE}</style></head><body>{body}</body></html>"
    )


def inline_images(html: str, images: dict[str, bytes]) -> str:
    """Replace ``src="figures/x.png"`` by data URIs of the PNG bytes just written, so the page
    stands alone."""
    import re

    def sub(m):
        data = images.get(m.group(1))
        return (
            m.group(0)
            if data is None
            else f'src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}"'
        )

    return re.sub(r'src="(figures/[^"]+\.png)"', sub, html)


class BuiltReport(NamedTuple):
    """What :func:`build_report` wrote."""

    #: the report's markdown file (``report.html`` and ``figures/``, ``tables/`` sit beside it)
    path: Path
    #: the analyses that ran, in report order
    analyses: list[Analysis]
    #: analysis key → why it was skipped (missing inputs)
    skipped: dict[str, str]
    #: wall time of the analyses, figures and files
    seconds: float


def build_report(
    ctx: Context,
    out_dir: str | Path,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuiltReport:
    """Run the analyses and write the report."""
    t0 = time.perf_counter()
    analyses, skipped = run_analyses(ctx, only, progress)
    elapsed = time.perf_counter() - t0
    path = write_report(ctx, out_dir, analyses, skipped, progress, elapsed)
    return BuiltReport(path, analyses, skipped, time.perf_counter() - t0)


def save_figures(out_dir: str | Path, tables: dict, figures) -> list[Path]:
    """Write CSV tables and PNG figures (``[(name, Figure)]``) into ``out_dir``, each atomically;
    returns the paths written."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write into {out}: {exc.strerror or exc}") from None
    paths = []
    for name, df in tables.items():
        atomic_write(out / name, functools.partial(_write_csv, df))
        paths.append(out / name)
    for name, fig in figures:
        data = _png(fig)
        atomic_write(out / f"{name}.png", functools.partial(_write_bytes, data), binary=True)
        paths.append(out / f"{name}.png")
    return paths


def _write_bytes(data: bytes, fh) -> None:
    fh.write(data)


def _write_csv(df, fh) -> None:
    df.to_csv(fh, index=False)
