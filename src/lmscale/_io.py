"""The one file-reading and writing layer. Writes are atomic: a temporary file in the same folder,
fsync, then rename, so that a reader never sees half a file and an interrupted write leaves the old
file intact. Reads are bounded: only regular files are opened (a FIFO, a device, a symlink to
``/dev/zero`` or a folder named like a file is refused before a byte is read), sizes are capped,
and parsed JSON/YAML is limited in nesting depth (:data:`MAX_DEPTH`) with integers within float
range."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import stat
import sys
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


#: configuration files (ladder configs, task suites, metric maps) are small; larger ones are refused unread
MAX_CONFIG_BYTES = 1 << 20
#: any other JSON document read whole (saved fits, run records, lm-eval results, manifests)
MAX_JSON_BYTES = 256 << 20
#: deepest nesting of lists and objects accepted in a JSON or YAML document (lmscale's own files
#: and the tools' it imports nest fewer than ten levels; thousands would exhaust the parser's stack)
MAX_DEPTH = 100
#: integers with more digits than this are beyond float range (about 1.8e308)
_MAX_INT_DIGITS = 308


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` if it is (or links to) a regular file; a missing path, a folder, a FIFO, a device
    (``/dev/zero`` behind a symlink too) or a socket is an :class:`InputError` naming it. For
    readers handed to other libraries (pandas, pyarrow, TensorBoard): their own open would block
    on a FIFO or read a device forever."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # follows symlinks: what the link points at is what is read
    except FileNotFoundError:
        raise InputError(f"{what} {path} not found: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: {what} is {_kind(mode)}, not a regular file")
    return path


def open_regular(path: str | os.PathLike, what: str = "file") -> IO[bytes]:
    """``path`` opened for binary reading, after checking on the open descriptor that it is a
    regular file (opened non-blocking, so a FIFO cannot hang the open itself)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{what} {path} not found: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: {what} is a folder, not a regular file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError(f"{path}: {what} is {_kind(mode)}, not a regular file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def check_tree(data: Any, source: object, max_depth: int = MAX_DEPTH) -> Any:
    """``data`` (parsed JSON or YAML) if it nests at most ``max_depth`` levels and its integers
    fit a float; an :class:`InputError` naming ``source`` otherwise. Iterative: no recursion."""
    stack = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth >= max_depth:
                raise InputError(f"{source}: nested more than {max_depth} levels deep")
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > sys.float_info.max:
            raise InputError(f"{source}: integer with {len(str(abs(node)))} digits is beyond float range")
    return data


def read_json(
    path: str | os.PathLike,
    *,
    expect: type | None = dict,
    max_bytes: int = MAX_JSON_BYTES,
    what: str = "JSON file",
):
    """A whole JSON file; a missing file or one that is not a regular file, one over
    ``max_bytes``, malformed JSON, nesting beyond :data:`MAX_DEPTH` or (with ``expect``) the wrong
    top-level type is an :class:`InputError` naming the file and position."""
    path = Path(path)
    data = parse_json(read_text(path, max_bytes=max_bytes, what=what), path)
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


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"integer {text[:12]}… ({len(text.lstrip('-'))} digits) is beyond float range")
    return int(text)


def parse_json(text: str, source: object, *, allow_nan: bool = False):
    """Strict JSON: no NaN/Infinity literals (``allow_nan``: Python's own ``NaN`` tokens pass), no
    out-of-range numbers, at most :data:`MAX_DEPTH` levels of nesting; any problem is an
    :class:`InputError` naming ``source`` and the position."""
    try:
        if allow_nan:
            data = json.loads(text, parse_int=_bounded_int)
        else:
            data = json.loads(
                text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int
            )
        return check_tree(data, source)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source}: malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise InputError(f"{source}: malformed JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested more than {MAX_DEPTH} levels deep") from None


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
            obj = check_tree(json.loads(line, parse_int=_bounded_int), f"{source}, line {lineno}")
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{source}, line {lineno}: malformed JSON: {exc.msg} (column {exc.colno})"
            ) from None
        except ValueError as exc:  # an integer beyond float range
            raise InputError(f"{source}, line {lineno}: {exc}") from None
        except RecursionError:
            raise InputError(
                f"{source}, line {lineno}: JSON nested more than {MAX_DEPTH} levels deep"
            ) from None
        if not isinstance(obj, dict):
            raise InputError(f"{source}, line {lineno}: expected a JSON object, found {type(obj).__name__}")
        yield lineno, obj


def read_text(path: str | os.PathLike, *, max_bytes: int | None = None, what: str = "file") -> str:
    """A UTF-8 text file; a missing or unreadable file, one that is not a regular file (see
    :func:`open_regular`), one over ``max_bytes``, or one that is not UTF-8 is an
    :class:`InputError` naming the file."""
    path = Path(path)
    try:
        with open_regular(path, what) as fh:
            size = os.fstat(fh.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise InputError(f"{path}: {what} is {size} bytes; at most {max_bytes} are read")
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:  # it grew while being read
            raise InputError(f"{path}: {what} is over {max_bytes} bytes")
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def read_yaml(path: str | os.PathLike, *, what: str = "config"):
    """A YAML file parsed safely: no tags, no aliases (an 800-byte alias bomb expands to
    gigabytes once serialised), at most :data:`MAX_DEPTH` levels of nesting (counted while
    composing, so a deep document stops early); at most :data:`MAX_CONFIG_BYTES`."""
    import yaml

    class _NoAliases(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases (*name) are not accepted in lmscale files", event.start_mark
                )
            if self.depth > MAX_DEPTH:
                raise RecursionError
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    text = read_text(path, max_bytes=MAX_CONFIG_BYTES, what=what)
    try:
        data = yaml.load(text, Loader=_NoAliases)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: malformed YAML ({exc})") from None
    except RecursionError:
        raise InputError(f"{path}: {what} nested more than {MAX_DEPTH} levels deep") from None
    return check_tree(data, path)
