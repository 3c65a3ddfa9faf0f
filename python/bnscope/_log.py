"""The JSONL writer shared by the PyTorch and Keras sides, and the framework-free helpers (docs/LOG_FORMAT.md)."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import stat
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

SCHEMA = 1
"""The log format version written in every `run` record."""

Record = Dict[str, Any]
PathLike = Union[str, "Path"]


def clean(value: Any) -> Any:
    """`value` made JSON-safe: non-finite floats become None (written `null`), containers are walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def short(values: Sequence[float], digits: int = 7) -> List[Optional[float]]:
    """Floats rounded to `digits` significant digits (float32 carries about 7), non-finite ones as None."""
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in values]


def metric(value: Optional[Mapping[str, Any]]) -> Optional[Record]:
    """A `{loss, acc}` dict with plain floats (tensors and numpy scalars are converted); None stays None."""
    if value is None:
        return None
    out: Record = {}
    for key in ("loss", "acc"):
        v = value.get(key)
        if v is not None:
            out[key] = float(v.item() if hasattr(v, "item") else v)
    return out


def gap(running: Sequence[float], batch: Sequence[float]) -> float:
    """`‖running − batch‖₂ / (‖batch‖₂ + 1e-8)`."""
    diff = math.sqrt(sum((r - b) ** 2 for r, b in zip(running, batch)))
    return diff / (math.sqrt(sum(b * b for b in batch)) + 1e-8)


def common(values: Sequence[Any]) -> Optional[Any]:
    """The value all entries share, or None when they differ (or there are none)."""
    return values[0] if values and all(v == values[0] for v in values) else None


RESERVED = {"type", "schema", "convention", "source", "bn_layers", "bn_variance", "control"}
"""`run` fields that the user's `info` may not replace."""


def add_info(rec: Record, info: Mapping[str, Any]) -> None:
    """Adds the user's extra `run` fields (`model`, `seed`, `lr`, `classes`, ...) to `rec`."""
    for key, value in check_info(info).items():
        rec[key] = value


def check_info(info: Any) -> Dict[str, Any]:
    """The user's `info` as a dict, or a ValueError naming the first field bnscope cannot write: a key that is not
    a string, one bnscope writes itself, or a value JSON cannot hold."""
    if info is None:
        return {}
    if not isinstance(info, Mapping):
        raise ValueError(f"info={info!r}: must be a dict of run fields")
    out: Dict[str, Any] = {}
    for key, value in info.items():
        if not isinstance(key, str):
            raise ValueError(f"info[{key!r}]: field names are strings")
        if key in RESERVED:
            raise ValueError(f"info[{key!r}]: bnscope writes this field itself")
        try:
            json.dumps(clean(value), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"info[{key!r}]: cannot be written as JSON ({e})") from None
        out[key] = value
    return out


def check_options(log_bn: Any, momentum_note: Any, overwrite: Any) -> None:
    """ValueErrors for the options the PyTorch and Keras writers share."""
    if log_bn not in ("full", "summary"):
        raise ValueError(f"log_bn={log_bn!r}: must be 'full' or 'summary'")
    if momentum_note is not None and not isinstance(momentum_note, str):
        raise ValueError(f"momentum_note={momentum_note!r}: must be a str or None")
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite={overwrite!r}: must be True or False")


def rank_path(path: PathLike, rank: int) -> Path:
    """`run.jsonl` → `run.rank{rank}.jsonl` (the file of one process of a distributed run)."""
    p = Path(path)
    return p.with_name(f"{p.stem}.rank{rank}{p.suffix}")


class LogFileError(OSError):
    """A log file that bnscope will not write: not a regular file, not a bnscope log, or in use by another writer.
    The message names the path."""


FIRST_LINE_MAX = 64 << 20
"""How much of an existing file is read to find its first line (a `run` record with image names can be long)."""

_HOLDERS: "weakref.WeakValueDictionary[Tuple[int, int], JsonlWriter]" = weakref.WeakValueDictionary()
"""The logs this process has open, by (device, inode): to say who holds a lock, and to let an owner reclaim one."""


def not_regular(mode: int) -> Optional[str]:
    """What a file that is not a regular one is, in words (`a FIFO`), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, words in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "not a regular file"


def check_path(path: Any, what: str = "path") -> Path:
    """`path` as a Path, or a ValueError when it is not a non-empty str / os.PathLike naming a file."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what}={path!r}: must be a str or os.PathLike")
    p = Path(path)
    if not str(path) or str(path).endswith(os.sep) or p.name in ("", ".", ".."):
        raise ValueError(f"{what}={str(path)!r}: must name a file")
    return p


def holder(st: os.stat_result) -> str:
    """Who holds the lock on the file `st` describes: a writer of this process, else `process PID (NAME)` from
    /proc/locks, else "another process"."""
    mine = _HOLDERS.get((st.st_dev, st.st_ino))
    if mine is not None:
        return f"this process ({mine.owner})"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            locks = f.read()
    except OSError:
        return "another process"
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in locks.splitlines():
        # `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF` (waiters have a `->` after the number).
        fields = [f for f in line.split() if f != "->"]
        try:
            major, minor, ino = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(ino)) != want:
                continue
            pid = int(fields[4])
        except (IndexError, ValueError):
            continue
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
                comm = "".join(c for c in f.read().strip() if c.isprintable())
        except OSError:
            comm = ""
        return f"process {pid} ({comm})" if comm else f"process {pid}"
    return "another process"


class JsonlWriter:
    """The log file of one writer, by the rules of bnscope's own `--log` (src/log.rs `JsonlLog::open`):

    * a new file is created; an existing bnscope log (its first line a `run` record; an empty file counts) is
      appended to, after a `\\n` if its last line lacks one (a writer died mid-record); anything else is refused
      with a `LogFileError` naming the path, unless `overwrite` (then the regular file is emptied first);
    * only a regular file: a FIFO, a device, a socket or a directory is refused without blocking (`O_NONBLOCK`);
    * locked (`flock(LOCK_EX | LOCK_NB)`) while open, like bnscope's own log, so two writers (Python or bnscope)
      never share one: a held lock is refused, naming the holder;
    * one record = one `write` of the whole line, unbuffered; a write that fails half-way is cut back off.

    `owner` says who writes, in the refusal another writer of this process gets. `reclaim`, if given, is called
    when another writer of this process meets the lock held by this one: returning True means it closed this
    writer (a Keras callback whose `fit` died), so the newcomer may take the file."""

    def __init__(self, path: PathLike, overwrite: bool = False, owner: str = "a bnscope writer",
                 reclaim: Optional[Callable[[], bool]] = None) -> None:
        self.path = check_path(path)
        self.owner = owner
        self.reclaim = reclaim
        self._fd: Optional[int] = None
        self._key: Optional[Tuple[int, int]] = None
        shown = str(self.path)
        try:
            before = os.stat(self.path)
        except FileNotFoundError:
            before = None
            if not self.path.parent.is_dir():
                raise LogFileError(f"{shown}: cannot create the log file: its directory does not exist") from None
        except OSError as e:
            raise LogFileError(f"{shown}: {e.strerror or e}") from None
        if before is not None:  # refused before opening: opening a device can have effects of its own
            kind = not_regular(before.st_mode)
            if kind:
                raise LogFileError(f"{shown}: not a regular file ({kind})")
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as e:
            raise LogFileError(f"{shown}: {e.strerror or e}") from None
        try:
            st = os.fstat(fd)  # again on the open file: the path may have changed in between
            kind = not_regular(st.st_mode)
            if kind:
                raise LogFileError(f"{shown}: not a regular file ({kind})")
            self._lock(fd, st)
            size = st.st_size
            if size and overwrite:
                os.ftruncate(fd, 0)
                size = 0
            if size:
                if not is_bnscope_log(fd):
                    raise LogFileError(
                        f"{shown}: exists and is not a bnscope log; move it away or pass overwrite=True")
                if os.pread(fd, 1, size - 1) != b"\n":  # a writer died mid-record: end its line first
                    write_all(fd, b"\n")
                    size += 1
        except LogFileError:
            os.close(fd)
            raise
        except OSError as e:
            os.close(fd)
            raise LogFileError(f"{shown}: {e.strerror or e}") from None
        self._fd, self._len, self._key = fd, size, (st.st_dev, st.st_ino)
        _HOLDERS[self._key] = self

    def _lock(self, fd: int, st: os.stat_result) -> None:
        for attempt in (0, 1):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except OSError:
                return  # no locking on this file system (some network mounts): go on without, as bnscope does
            mine = _HOLDERS.get((st.st_dev, st.st_ino))
            if attempt == 0 and mine is not None and mine.reclaim is not None and mine.reclaim():
                continue
            raise LogFileError(f"{self.path}: in use by {holder(st)}; two writers cannot share one log")

    def write(self, record: Mapping[str, Any]) -> None:
        """Writes one record as one line (one `write` call), at once."""
        if self._fd is None:
            raise ValueError(f"{self.path}: the log is closed")
        line = encode(record)
        try:
            write_all(self._fd, line)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._len)  # no half record stays behind (we hold the lock)
            raise LogFileError(f"{self.path}: cannot write the log: {e.strerror or e}") from None
        self._len += len(line)

    def close(self) -> None:
        if self._fd is not None:
            if self._key is not None and _HOLDERS.get(self._key) is self:
                del _HOLDERS[self._key]
            os.close(self._fd)  # releases the lock
            self._fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __copy__(self) -> "JsonlWriter":
        return self  # one open file has one owner: a copy would close it under the original

    def __deepcopy__(self, memo: Dict[int, Any]) -> "JsonlWriter":
        return self

    @property
    def closed(self) -> bool:
        return self._fd is None


def probe_log(path: PathLike, overwrite: bool) -> None:
    """Raises the LogFileError that opening `path` for writing would raise for what is there now (not a regular
    file, not a bnscope log, no directory), without creating, locking or changing anything: for a writer that opens
    its file later (a Keras callback, when fit begins)."""
    p = check_path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if not p.parent.is_dir():
            raise LogFileError(f"{p}: cannot create the log file: its directory does not exist") from None
        return
    except OSError as e:
        raise LogFileError(f"{p}: {e.strerror or e}") from None
    kind = not_regular(st.st_mode)
    if kind:
        raise LogFileError(f"{p}: not a regular file ({kind})")
    if st.st_size == 0 or overwrite:
        return
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise LogFileError(f"{p}: {e.strerror or e}") from None
    try:
        if not_regular(os.fstat(fd).st_mode) is None and not is_bnscope_log(fd):
            raise LogFileError(f"{p}: exists and is not a bnscope log; move it away or pass overwrite=True")
    finally:
        os.close(fd)


def encode(record: Mapping[str, Any]) -> bytes:
    """One record as its line: compact JSON, non-finite numbers as null, `\\n` at the end. A value JSON cannot
    hold raises a ValueError saying which."""
    try:
        text = json.dumps(clean(record), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot write this record as JSON: {e}") from None
    return (text + "\n").encode("utf-8")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[n:]


def is_bnscope_log(fd: int) -> bool:
    """Whether the file's first line is a `run` record (JSON with `"type": "run"`)."""
    first = b""
    while len(first) < FIRST_LINE_MAX:
        chunk = os.pread(fd, 1 << 16, len(first))
        if not chunk:
            break
        cut = chunk.find(b"\n")
        if cut >= 0:
            first += chunk[:cut]
            break
        first += chunk
    try:
        value = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(value, dict) and value.get("type") == "run"
