"""The paper's released measurements (Gadre et al. 2024): import into a :class:`RunTable`, and
download the public release at a pinned commit with integrity checks.

Layout of a testbed folder (``exp_data`` of the authors' repository)::

    models/<dataset>-<model>-<cc_mult>.json    one training run, 8 validation losses
    evals/evaluation_<same stem>_heavy.json    46 downstream accuracies
    eval_metadata.csv                          task metadata and random baselines
    heavy.yaml, grid.json                      task suite as run; hyper-parameter search
"""

from __future__ import annotations

import functools
import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale._io import atomic_write, read_json, sha256_file
from lmscale.compute import flops
from lmscale.errors import DownloadError, InputError
from lmscale.run_table import RunTable
from lmscale.tasks import TaskInfo, read_task_metadata
from lmscale.train.shapes import count_params

#: The authors' repository and the commit whose ``exp_data`` lmscale pins.
UPSTREAM_REPO = "mlfoundations/scaling"
UPSTREAM_COMMIT = "79adc26378fb1286fd9a31d0e40e86663d48dcf1"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}/{UPSTREAM_COMMIT}/exp_data/"

#: Validation-set key for each ``val_data`` path of the release (PAPER.md §3).
VAL_SET_KEYS = {
    "openlm": "openlm",
    "c4_val": "c4_val",
    "paloma_c4_en": "paloma_c4_en",
    "paloma_dolma_100_programing_languages": "paloma_dolma_100_programing_languages",
    "paloma_falcon-refinedweb": "paloma_falcon-refinedweb",
    "paloma_ptb": "paloma_ptb",
    "paloma_redpajama": "paloma_redpajama",
    "de-en": "val_de-en_100",
}
VAL_SETS = tuple(VAL_SET_KEYS.values())


def resolve(path: str | Path) -> Path:
    """Accept the ``exp_data`` folder itself or a folder that contains it."""
    path = Path(path).expanduser()
    for cand in (path, path / "exp_data", path / "testbed" / "exp_data"):
        if (cand / "models").is_dir():
            return cand
    raise InputError(
        f"{path}: not a testbed folder (expected models/, evals/ and eval_metadata.csv; "
        "get one with `lmscale testbed download --dest DIR`)"
    )


def _val_key(val_data: list, where: str) -> str:
    if not val_data:
        raise InputError(f"{where}: a result has an empty 'val_data'")
    parts = str(val_data[0]).split("/")
    folder = parts[-2] if len(parts) > 1 else parts[-1]
    key = VAL_SET_KEYS.get(folder)
    if key is None:
        raise InputError(f"{where}: unknown validation set {val_data[0]!r}")
    return key


def _run_row(model_json: Path, evals_dir: Path) -> dict:
    data = read_json(model_json)
    where = str(model_json)
    try:
        hp = data["hyperparameters"]
        row = {
            "run_id": model_json.stem,
            "dataset": data["dataset_name"],
            "model": Path(hp["model"]).stem,
            "n_params": float(hp["params"]),
            "n_tokens": float(hp["tokens"]),
            "multiplier": 20.0 * float(hp["chinchilla_multiplier"]),
        }
        for res in data["results"]:
            key = _val_key(res["val_data"], where)
            row[f"loss_{key}"] = float(res["loss"])
            row[f"loss_lower_{key}"] = float(res["loss_sequences_lower_95"])
            row[f"loss_upper_{key}"] = float(res["loss_sequences_upper_95"])
    except KeyError as exc:
        raise InputError(f"{where}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: bad value: {exc}") from None
    eval_json = evals_dir / f"evaluation_{model_json.stem}_heavy.json"
    if not eval_json.is_file():
        raise InputError(f"{eval_json}: downstream evaluation of run {model_json.stem!r} not found")
    try:
        icl = read_json(eval_json)["eval_metrics"]["icl"]
    except KeyError as exc:
        raise InputError(f"{eval_json}: missing field {exc.args[0]!r}") from None
    for task, acc in icl.items():
        row[f"acc_{task}"] = acc
    return row


def load(path: str | Path) -> RunTable:
    """Read the released testbed folder into a :class:`RunTable` (104 runs for the paper's)."""
    root = resolve(path)
    models = sorted((root / "models").glob("*.json"))
    if not models:
        raise InputError(f"{root / 'models'}: no run files (*.json)")
    rows = [_run_row(p, root / "evals") for p in models]
    import pandas as pd

    return RunTable.from_frame(
        pd.DataFrame.from_records(rows), str(root / "models"), row_labels=[p.name for p in models]
    )


def load_task_metadata(path: str | Path) -> dict[str, TaskInfo]:
    """Task metadata and random baselines of a testbed folder."""
    return read_task_metadata(resolve(path) / "eval_metadata.csv")


# ------------------------------------------------------------------------------------- download
def manifest() -> dict[str, dict]:
    """Relative path → {sha256, size} of every file of the pinned release."""
    text = resources.files("lmscale").joinpath("data/testbed_manifest.json").read_text(encoding="utf-8")
    return json.loads(text)["files"]


def download(
    dest: str | Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 30.0,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Fetch the pinned release into ``dest/exp_data``, verifying every file's SHA-256.

    Files already present with the right hash are kept, so an interrupted download resumes.
    Each file is written atomically. ``progress(name, done, total)`` is called after each file.
    Returns the ``exp_data`` folder, ready for :func:`load`.
    """
    files = manifest()
    root = Path(dest).expanduser() / "exp_data"
    base = base_url if base_url.endswith("/") else base_url + "/"
    parts = urllib.parse.urlparse(base)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
        raise InputError(f"--base-url {base_url!r} is not an http(s):// or file:// address")
    total = len(files)
    for done, (rel, meta) in enumerate(sorted(files.items()), 1):
        target = root / rel
        if not (
            target.is_file()
            and target.stat().st_size == meta["size"]
            and sha256_file(target) == meta["sha256"]
        ):
            url = base + urllib.request.pathname2url(rel)
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    payload = resp.read()
            except urllib.error.HTTPError as exc:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DownloadError(
                    f"{url}: could not connect ({reason}); check the network or pass --base-url"
                ) from None
            got = hashlib.sha256(payload).hexdigest()
            if got != meta["sha256"] or len(payload) != meta["size"]:
                raise DownloadError(
                    f"{url}: integrity check failed for {rel}: expected sha256 {meta['sha256']} "
                    f"({meta['size']} bytes), got {got} ({len(payload)} bytes)"
                )
            atomic_write(target, functools.partial(_write_bytes, payload), binary=True)
        if progress is not None:
            progress(rel, done, total)
    return root


# ------------------------------------------------------------------ hyper-parameter grid
#: the paper's vocabulary size (GPT-NeoX tokenizer, padded): N of the grid's shapes counts it
PAPER_VOCAB = 50432


def read_grid(path: str | Path) -> pd.DataFrame:
    """The testbed's hyper-parameter grid (``grid.json``) as one row per run. Keys read
    ``d=<d>_l=<l>_h=<heads>-<batch>-<lr>-<wd>-<batch>-<tokens>-<warmup>-<final lr>``."""
    path = Path(path)
    raw = read_json(path)
    rows = []
    for key, raw_loss in raw.items():
        try:
            shape, batch, lr, wd, _batch2, tokens, warmup, *_ = key.split("-")
            dims = dict(p.split("=") for p in shape.split("_"))
            d, layers, heads = int(dims["d"]), int(dims["l"]), int(dims["h"])
            tokens, loss = float(tokens), float(raw_loss)
        except (ValueError, KeyError) as exc:
            raise InputError(f"{path}: entry {key!r} does not parse as a grid run ({exc})") from None
        if not (np.isfinite(loss) and loss > 0):
            raise InputError(f"{path}: entry {key!r} has a non-positive or non-finite loss {loss!r}")
        n = count_params(d, layers, PAPER_VOCAB)
        rows.append(
            {
                "d_model": d,
                "n_layers": layers,
                "n_heads": heads,
                "batch": int(batch),
                "lr": float(lr),
                "weight_decay": float(wd),
                "warmup": int(warmup),
                "n_params": n,
                "n_tokens": tokens,
                "flops": flops(n, tokens),
                "loss": loss,
            }
        )
    return pd.DataFrame(rows)


def _write_bytes(data: bytes, fh) -> None:
    fh.write(data)


def as_runs(runs: RunTable | pd.DataFrame | str | Path) -> RunTable:
    """A run table from what a notebook holds: a :class:`RunTable`, a DataFrame in the run-table
    schema (validated), or a path (:func:`load_runs`)."""
    if isinstance(runs, RunTable):
        return runs
    if isinstance(runs, pd.DataFrame):
        return RunTable.from_frame(runs.reset_index(drop=True), source="<DataFrame>")
    if isinstance(runs, (str, Path)):
        return load_runs(runs)
    raise InputError(
        f"expected a RunTable, a pandas DataFrame or a path to a run table, got {type(runs).__name__}"
    )


def load_runs(path: str | Path) -> RunTable:
    """A run table from a file (.csv / .jsonl / .parquet) or from a testbed folder (the paper's
    released ``exp_data`` layout)."""
    p = Path(path)
    if p.is_dir():
        return load(p)
    return RunTable.read(p)
