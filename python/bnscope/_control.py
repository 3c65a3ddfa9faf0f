"""The control channel (docs/CONTROL.md, version 1): commands that `bnscope watch` (or anyone: `echo "cmd 1 pause" >>
run.jsonl.control`) appends to `LOG.control`, read and applied at the training's step boundaries.

This module is framework-free: the file (`Channel`), the closed grammar (`parse`) and the scheduling, pausing and
ledger (`Control`). What a command does to a model is the caller's `apply` function (PyTorch: _torch.py, Keras:
_keras.py). Nothing read here is evaluated; nothing here raises into the training loop except KeyboardInterrupt.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import re
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple, Union

from ._log import PathLike, Record, not_regular, write_all

HEADER = b"bnscope-control 1\n"
MAX_BYTES = 1 << 20
"""The control file's bound: a reader reads no byte past it."""
MAX_LINE = 200
"""Bytes of one line, its `\\n` included."""
POLL_S = 0.05
"""How often a paused training looks at the file."""
FIND_EVERY_STEP = 100
"""Ranks > 0 ask the torch.distributed store for rank 0's channel at each of their first boundaries, then once a
second (rank 0 may have called `watch` late, or not at all)."""

VERBS = {
    "momentum": "momentum",
    "cumulative": "cumulative",
    "reset": "reset_stats",
    "recalibrate": "recalibrate",
    "pause": "pause",
    "resume": "resume",
    "step": "step",
    "evaluate": "evaluate",
}
"""Each verb and the ledger event kind it becomes."""

_ID = re.compile(r"[A-Za-z0-9._-]{1,32}\Z")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_STEP = re.compile(r"[0-9]{1,18}\Z")


class Refused(Exception):
    """A command, a line or a channel that is not used; the message is the reason, as the ledger says it."""


class Bad(Refused):
    """A line outside the grammar; `ident` is its id where one could be read."""

    def __init__(self, reason: str, ident: Optional[str] = None) -> None:
        super().__init__(reason)
        self.ident = ident


class Command(NamedTuple):
    """`cmd ID VERB [ARG]`: `value` is the momentum (float, Keras convention) or cumulative's on/off (bool)."""

    id: str
    verb: str
    value: Union[float, bool, None]
    line: str


class At(NamedTuple):
    """`at ID STEP`: rank 0 of a distributed run tells every rank to apply command ID at the boundary before STEP."""

    id: str
    step: int


def control_path(log_path: PathLike) -> Path:
    """`run.jsonl` → `run.jsonl.control` (the path given to the writer, before any `.rank{R}`)."""
    return Path(os.fspath(log_path) + ".control")


def shown(raw: bytes) -> str:
    """A line as the ledger shows it: decoded (undecodable bytes as U+FFFD), cut to 200 characters."""
    return raw.decode("utf-8", errors="replace")[:MAX_LINE]


def parse(raw: bytes) -> Union[Command, At]:
    """One line (without its `\\n`) in the closed grammar, or a `Bad` with the reason."""
    head = raw[:MAX_LINE].split(b" ")
    ident = None
    if len(head) > 1 and head[0] in (b"cmd", b"at") and _ID.match(head[1].decode("ascii", errors="replace")):
        ident = head[1].decode("ascii")
    if len(raw) + 1 > MAX_LINE:
        raise Bad(f"the line is longer than {MAX_LINE} bytes", ident)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise Bad("the line is not ASCII", ident) from None
    if not text.isprintable():
        raise Bad("the line has control characters", ident)
    words = text.split(" ")
    if words[0] == "at":
        if len(words) != 3 or ident is None or not _STEP.match(words[2]):
            raise Bad("an at line is `at ID STEP`", ident)
        return At(ident, int(words[2]))
    if words[0] != "cmd" or len(words) < 3:
        raise Bad("not a command: a line is `cmd ID VERB [ARG]`", ident)
    if ident is None:
        raise Bad("the id must be 1-32 characters of A-Z a-z 0-9 . _ -")
    verb, args = words[2], words[3:]
    if verb not in VERBS:
        raise Bad(f"unknown verb {verb!r}", ident)
    if verb == "momentum":
        if len(args) != 1 or not _NUMBER.match(args[0]):
            raise Bad("momentum takes one number", ident)
        m = float(args[0])
        if not math.isfinite(m):
            raise Bad("momentum must be finite", ident)
        if not 0.0 <= m < 1.0:
            raise Bad("momentum must be in [0, 1)", ident)
        return Command(ident, verb, m, text)
    if verb == "cumulative":
        if args not in (["on"], ["off"]):
            raise Bad("cumulative takes on or off", ident)
        return Command(ident, verb, args[0] == "on", text)
    if args:
        raise Bad(f"{verb} takes no argument", ident)
    return Command(ident, verb, None, text)


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


class Channel:
    """The open control file: `poll()` returns the complete lines appended since the last call (one `fstat` when
    there are none), `append()` writes one line (rank 0's `at` lines)."""

    def __init__(self, fd: int, path: Path, pos: int, skip: bool, writable: bool) -> None:
        self.fd, self.path, self.pos, self.skip, self.writable = fd, path, pos, skip, writable
        self.partial = b""

    @classmethod
    def open(cls, path: Path, *, create: bool) -> "Channel":
        """Creates the file (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600, the header) or reuses one that passes the
        checks, locks it, and reads on from its end. With `create` False (ranks > 0) only an existing file is
        opened, read-only and unlocked. Raises Refused."""
        name = str(path)
        common = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        if create:
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | common, 0o600)
            except FileExistsError:
                pass
            except OSError as e:
                raise Refused(f"cannot create {name}: {_reason(e)}") from None
            else:
                try:
                    os.fchmod(fd, 0o600)  # whatever the umask
                    write_all(fd, HEADER)
                    cls._lock(fd, name)
                except (OSError, Refused) as e:
                    with contextlib.suppress(OSError):
                        if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                            os.unlink(path)  # ours, made a moment ago: nothing of the user's is lost
                    os.close(fd)
                    raise Refused(f"cannot create {name}: {_reason(e) if isinstance(e, OSError) else e}") from None
                return cls(fd, path, len(HEADER), False, True)
        try:
            fd = os.open(path, (os.O_RDWR | os.O_APPEND if create else os.O_RDONLY) | common)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EMLINK):
                raise Refused(f"{name} is a symlink") from None
            raise Refused(f"cannot open {name}: {_reason(e)}") from None
        try:
            st = os.fstat(fd)
            kind = not_regular(st.st_mode)
            if kind:
                raise Refused(f"{name} is not a regular file ({kind})")
            if st.st_uid != os.geteuid():
                raise Refused(f"{name} belongs to another user")
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise Refused(f"{name} is group- or world-writable")
            if os.pread(fd, len(HEADER), 0) != HEADER:
                raise Refused(f"{name} does not start with the header {HEADER.decode().strip()!r}")
            if create:
                cls._lock(fd, name)
                if st.st_size >= MAX_BYTES:
                    raise Refused(f"{name} is full (1 MiB); remove it to start a new one")
            # A line cut short at the end (a writer that died mid-write) is old: skip to the next `\n`.
            skip = os.pread(fd, 1, st.st_size - 1) != b"\n"
        except Refused:
            os.close(fd)
            raise
        except OSError as e:
            os.close(fd)
            raise Refused(f"cannot read {name}: {_reason(e)}") from None
        return cls(fd, path, st.st_size, skip, create)

    @staticmethod
    def _lock(fd: int, name: str) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused(f"{name} is in use by another run") from None
        except OSError:
            pass  # no locking on this file system: go on without

    def identity(self) -> Tuple[int, int]:
        st = os.fstat(self.fd)
        return st.st_dev, st.st_ino

    def poll(self) -> List[bytes]:
        """The complete lines appended since the last call, without their `\\n`; a line that is already longer than
        allowed comes back cut at 201 bytes (refused by `parse`) and the rest of it is skipped. Raises Refused when
        the file was removed, replaced, truncated or is full; OSError for I/O errors."""
        st = os.fstat(self.fd)
        if st.st_nlink == 0:
            raise Refused("the control file was removed")
        if st.st_size == self.pos:
            return []
        if st.st_size < self.pos:
            raise Refused("the control file was truncated")
        if self.pos >= MAX_BYTES:
            raise Refused("the control file is full")
        data = os.pread(self.fd, min(st.st_size, MAX_BYTES) - self.pos, self.pos)
        self.pos += len(data)
        parts = (self.partial + data).split(b"\n")
        self.partial = parts.pop()
        if self.skip:
            if parts:
                parts.pop(0)
                self.skip = False
            else:
                self.partial = b""
        if len(self.partial) >= MAX_LINE:
            parts.append(self.partial[: MAX_LINE + 1])
            self.partial, self.skip = b"", True
        return parts

    def append(self, line: str) -> None:
        """One line in one `write` (O_APPEND), never past the bound."""
        data = line.encode("ascii") + b"\n"
        if os.fstat(self.fd).st_size + len(data) > MAX_BYTES:
            raise Refused("the control file is full")
        if os.write(self.fd, data) != len(data):
            raise Refused("cannot write to the control file: short write")

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()

    def __copy__(self) -> "Channel":
        return self  # one open file has one owner: a copy would close it under the original

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Channel":
        return self


Apply = Callable[[Command], Record]
"""Applies momentum, cumulative, reset, recalibrate or evaluate to the model: the event's fields (`value`,
`eval_running`, ...), or raises Refused (or anything else: refused with the exception as the reason)."""
Emit = Callable[[Record], None]
"""Writes an event record to the log (the caller adds `type` and `epoch`)."""

_FOLLOWED: Dict[str, int] = {}
"""Ranks > 0: per control path, the number of the last run of rank 0 this process followed."""


class Control:
    """The control channel of one run: call `boundary()` at every step boundary (before each training step).

    One process (world size 1): a command read at the boundary before step S is applied there. Distributed: rank 0
    appends `at ID S+2` for a command read at S (`at ID S` while paused) and every rank applies it at that boundary;
    ranks > 0 learn where rank 0's channel starts through the torch.distributed store (`store`, with `set`,
    `check` and `get`), so they read exactly the lines rank 0 reads. While paused, commands scheduled for later
    steps are applied at once, in order (they were given before the resume that would let the training reach
    them). Every command, applied or refused, is one event through `emit`."""

    def __init__(
        self,
        log_path: PathLike,
        apply: Apply,
        emit: Emit,
        *,
        recalibrate: bool,
        evaluate: bool,
        rank: int = 0,
        world: int = 1,
        store: Any = None,
    ) -> None:
        self.path = control_path(log_path)
        self.apply, self.emit = apply, emit
        self.can_recalibrate, self.can_evaluate = recalibrate, evaluate
        self.rank, self.world, self.store = rank, world, store
        self.step = 0
        self.paused = False
        self._repause = False
        self._quiet = False
        self._said = False
        self._seen: Set[str] = set()
        self._pending: Dict[str, Command] = {}
        self._sched: List[Tuple[int, int, Command]] = []
        self._seq = 0
        self._next_due: Optional[int] = None
        self._next_find = 0.0
        self.channel: Optional[Channel] = None
        self._key = f"bnscope-control/{self.path}"
        self._run = 0  # distributed: which of rank 0's runs on this path (the store numbers them)
        self.info: Record = {
            "path": os.path.abspath(self.path),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "recalibrate": recalibrate,
            "evaluate": evaluate,
        }
        if world > 1 and rank > 0:
            try:
                if store is None:
                    raise Refused("no torch.distributed store to learn where rank 0's channel starts")
                self._find(0)
            except Exception as e:
                self.info, self._quiet = {"refused": str(e) if isinstance(e, Refused) else repr(e)}, True
            return
        try:
            self.channel = Channel.open(self.path, create=True)
        except Refused as e:
            self.info, self._quiet = {"refused": str(e)}, True
        if world > 1:
            self._publish()

    # --- distributed: where rank 0's channel starts ------------------------------------------------------------

    def _publish(self) -> None:
        """Rank 0: says in the store where its channel starts, numbered, so that a rank's second `watch` of the same
        path does not take rank 0's first channel for its own."""
        if self.store is None:
            return
        if self.channel is None:
            value = f"refused {self.info.get('refused', '')}"
        else:
            dev, ino = self.channel.identity()
            value = f"ok {dev} {ino} {self.channel.pos} {int(self.channel.skip)}"
        try:
            self._run = self.store.add(self._key + "/runs", 1)
            self.store.set(self._key, f"{self._run} {value}")
        except Exception as e:  # the store is gone: ranks > 0 will not find the channel; rank 0 still works
            self._say(f"cannot tell the other ranks where the control channel is ({e}); they will not follow it")

    def _find(self, step: int) -> None:
        """Ranks > 0: opens rank 0's channel once rank 0 has said where it starts (a run this process has not
        followed yet)."""
        if step >= FIND_EVERY_STEP:
            now = time.monotonic()
            if now < self._next_find:
                return
            self._next_find = now + 1.0
        if not self.store.check([self._key]):
            return
        words = self.store.get(self._key).decode("utf-8", errors="replace").split(" ", 2)
        n = int(words[0])
        if n <= _FOLLOWED.get(self._key, 0):
            return  # rank 0's previous run: this one's rank 0 has not opened its channel yet
        _FOLLOWED[self._key] = self._run = n
        if words[1] != "ok":
            raise Refused(f"rank 0 has no control channel: {words[2] if len(words) > 2 else '?'}")
        dev, ino, pos, skip = (int(w) for w in words[2].split(" "))
        channel = Channel.open(self.path, create=False)
        if channel.identity() != (dev, ino):
            channel.close()
            raise Refused(f"{self.path} is not the file rank 0 opened (not a shared file system?)")
        channel.pos, channel.skip = pos, bool(skip)
        self.channel = channel

    def _tell_followers(self, why: str) -> None:
        """Rank 0, going quiet or closing: ranks > 0 that are paused waiting for its `at` lines go on."""
        if self.world > 1 and self.rank == 0 and self.store is not None and self._run:
            with contextlib.suppress(Exception):
                self.store.set(f"{self._key}/{self._run}/quiet", why)

    def _leader_quiet(self) -> None:
        """Ranks > 0, while paused: raises Refused if rank 0's channel went quiet or closed."""
        key = f"{self._key}/{self._run}/quiet"
        if self.store.check([key]):
            why = self.store.get(key).decode("utf-8", errors="replace")
            raise Refused(f"rank 0's control channel is off ({why})")

    # --- the boundary ------------------------------------------------------------------------------------------

    def boundary(self) -> None:
        """The step boundary before step `self.step`: with nothing to do, one `fstat`. Applies what is due, blocks
        while paused (polling every 50 ms; KeyboardInterrupt still works). Never raises anything else."""
        step = self.step
        self.step = step + 1
        if self._quiet:
            return
        ch = self.channel
        if ch is not None and not self.paused and not self._repause and (
                self._next_due is None or self._next_due > step):
            try:
                st = os.fstat(ch.fd)
                if st.st_size == ch.pos and st.st_nlink:
                    return
            except OSError:
                pass  # the slow path says what went wrong
        self._slow(step)

    def _slow(self, step: int) -> None:
        try:
            if self.channel is None:
                self._find(step)
                if self.channel is None:
                    return
            if self._repause:
                self._repause, self.paused = False, True
            self._read(step)
            self._run_due(step)
            while self.paused and not self._quiet:
                time.sleep(POLL_S)
                if self.rank > 0:
                    self._leader_quiet()
                self._read(step)
                self._run_due(step)
        except KeyboardInterrupt:
            if self.paused:
                self.paused = False
                with contextlib.suppress(Exception):
                    self.emit({"step": step, "what": "resume", "source": "control", "reason": "KeyboardInterrupt"})
            raise
        except Exception as e:
            self._fail(step, e)

    def _read(self, step: int) -> None:
        assert self.channel is not None
        for raw in self.channel.poll():
            self._line(step, raw)
            if self._quiet:
                return

    def _line(self, step: int, raw: bytes) -> None:
        try:
            item = parse(raw)
        except Bad as e:
            self._refuse(step, shown(raw), str(e), e.ident)
            return
        if isinstance(item, At):
            if self.world == 1:
                self._refuse(step, shown(raw), "at lines come from rank 0 of a distributed run", item.id)
            elif self.rank > 0:
                cmd = self._pending.pop(item.id, None)
                if cmd is None:
                    self._refuse(step, shown(raw), "no command with this id is waiting", item.id)
                else:
                    self._schedule(item.step, cmd)
            return  # rank 0: its own line
        if item.id in self._seen:
            self._refuse(step, item.line, "this id was used before", item.id)
            return
        self._seen.add(item.id)
        if self.world == 1:
            self._apply(step, item, 0)
        elif self.rank == 0:
            target = step if self.paused else step + 2
            assert self.channel is not None
            self.channel.append(f"at {item.id} {target}")
            self._schedule(target, item)
        else:
            self._pending[item.id] = item

    def _schedule(self, target: int, cmd: Command) -> None:
        self._seq += 1
        self._sched.append((target, self._seq, cmd))
        self._sched.sort(key=lambda s: (s[0], s[1]))
        self._next_due = self._sched[0][0]

    def _run_due(self, step: int) -> None:
        while self._sched and (self._sched[0][0] <= step or self.paused) and not self._quiet:
            target, _, cmd = self._sched.pop(0)
            self._next_due = self._sched[0][0] if self._sched else None
            self._apply(step, cmd, max(0, step - target))

    def _apply(self, step: int, cmd: Command, late: int) -> None:
        fields: Record = {}
        try:
            if cmd.verb == "pause":
                if self.paused:
                    raise Refused("already paused")
                self.paused, self._repause = True, False
            elif cmd.verb in ("resume", "step"):
                if not self.paused:
                    raise Refused("not paused")
                self.paused, self._repause = False, cmd.verb == "step"
            elif cmd.verb == "recalibrate" and not self.can_recalibrate:
                raise Refused("no recalibrate data was given")
            elif cmd.verb == "evaluate" and not self.can_evaluate:
                raise Refused("no evaluate function or data was given")
            else:
                fields = dict(self.apply(cmd))
        except Refused as e:
            self._refuse(step, cmd.line, str(e), cmd.id, late)
            return
        except Exception as e:
            self._refuse(step, cmd.line, f"{type(e).__name__}: {e}", cmd.id, late)
            return
        event: Record = {"step": step, "what": VERBS[cmd.verb]}
        if "value" in fields:
            event["value"] = fields.pop("value")
        event.update({"id": cmd.id, "source": "control"})
        if late:
            event["late"] = late
        event.update(fields)
        self.emit(event)

    def _refuse(self, step: int, line: str, reason: str, ident: Optional[str], late: int = 0) -> None:
        event: Record = {"step": step, "what": "refused", "value": line[:MAX_LINE], "reason": reason}
        if ident is not None:
            event["id"] = ident
        event["source"] = "control"
        if late:
            event["late"] = late
        self.emit(event)

    def _fail(self, step: int, e: BaseException) -> None:
        """Control goes quiet for the rest of the run (a paused training goes on); said once in the ledger, or on
        stderr when the log cannot take it."""
        reason = str(e) if isinstance(e, Refused) else f"{type(e).__name__}: {e}"
        self._quiet, self.paused, self._repause = True, False, False
        self._sched.clear()
        self._next_due = None
        if self.channel is not None:
            self.channel.close()
        self._tell_followers(reason)
        try:
            self.emit({"step": step, "what": "refused", "reason": reason, "source": "control"})
        except Exception as e2:
            self._say(f"{reason}; control is off (and the log cannot say so: {e2})")

    def _say(self, message: str) -> None:
        if not self._said:
            self._said = True
            with contextlib.suppress(Exception):
                sys.stderr.write(f"bnscope: control channel {self.path}: {message}\n")

    @property
    def quiet(self) -> bool:
        return self._quiet

    def close(self) -> None:
        if not self._quiet:
            self._tell_followers("rank 0 closed it")
        self._quiet, self.paused = True, False
        if self.channel is not None:
            self.channel.close()
