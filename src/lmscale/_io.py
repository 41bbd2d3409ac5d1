"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename, so
that a reader never sees half a file and an interrupted write leaves the old file intact."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from lmscale.errors import InputError


def _umask() -> int:
    """The process umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_mode(fd_or_path: int | str | os.PathLike) -> None:
    """Give a file made by ``tempfile.mkstemp`` (always 0600) the mode a plain ``open`` would:
    0o666 less the umask (0644 under umask 022), so teammates can read what lmscale writes."""
    mode = 0o666 & ~_umask()
    if isinstance(fd_or_path, int):
        os.fchmod(fd_or_path, mode)
    else:
        os.chmod(fd_or_path, mode)


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read 1 MiB at a time (hex digest)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(
    path: str | os.PathLike, writer: Callable[[IO[Any]], object], *, binary: bool = False
) -> Path:
    """Call ``writer(fileobj)`` on a temporary file and move it onto ``path`` atomically. The file
    gets the umask's mode (0644 under umask 022), as a plain ``open`` would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        share_mode(fd)
        fh: IO[Any]
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text))


def read_json(path: str | os.PathLike, *, expect: type | None = dict):
    """A whole JSON file; a missing file, malformed JSON or (with ``expect``) the wrong top-level
    type is an :class:`InputError` naming the file and position."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    data = parse_json(read_text(path, what="JSON file"), path)
    if expect is not None and not isinstance(data, expect):
        raise InputError(
            f"{path}: expected a JSON {'object' if expect is dict else expect.__name__}, "
            f"found {type(data).__name__}"
        )
    return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON (write null for a missing value)")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text[:20]} is out of range")
    return v


def parse_json(text: str, source: object):
    """Strict JSON: no NaN/Infinity literals, no out-of-range numbers, bounded nesting; any
    problem is an :class:`InputError` naming ``source`` and the position."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source}: malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise InputError(f"{source}: malformed JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply") from None


def iter_json_lines(lines: Iterable[str], source: object) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSONL text; a malformed line, one that
    is not a JSON object, or bytes that are not UTF-8 are an :class:`InputError` naming ``source``
    and the line. (NaN literals pass here: run tables name them as non-finite measurements.)"""
    lineno = 0
    it = iter(lines)
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise InputError(f"{source}: not UTF-8 text (after line {lineno})") from None
        lineno += 1
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{source}, line {lineno}: malformed JSON: {exc.msg} (column {exc.colno})"
            ) from None
        except RecursionError:
            raise InputError(f"{source}, line {lineno}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise InputError(f"{source}, line {lineno}: expected a JSON object, found {type(obj).__name__}")
        yield lineno, obj


#: configuration files (ladder configs, task suites) are small; larger ones are refused unread
MAX_CONFIG_BYTES = 1 << 20


def read_text(path: str | os.PathLike, *, max_bytes: int | None = None, what: str = "file") -> str:
    """A UTF-8 text file; a missing or unreadable file, one over ``max_bytes``, or one that is not
    UTF-8 is an :class:`InputError` naming the file."""
    path = Path(path)
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise InputError(f"{path}: {what} is {path.stat().st_size} bytes; at most {max_bytes} are read")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path} not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def read_yaml(path: str | os.PathLike, *, what: str = "config"):
    """A YAML file parsed safely: no tags, and no aliases (an 800-byte alias bomb expands to
    gigabytes once serialised); at most :data:`MAX_CONFIG_BYTES`."""
    import yaml

    class _NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases (*name) are not accepted in lmscale files", event.start_mark
                )
            return super().compose_node(parent, index)

    text = read_text(path, max_bytes=MAX_CONFIG_BYTES, what=what)
    try:
        return yaml.load(text, Loader=_NoAliases)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: malformed YAML ({exc})") from None
