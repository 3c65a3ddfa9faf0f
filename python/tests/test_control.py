"""The control channel without a framework (docs/CONTROL.md): the file's rules, the grammar, the bounds, partial
lines, concurrent writers, pausing, the distributed schedule (two ranks as threads) and the ledger."""
import _thread
import contextlib
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from bnscope import _control
from bnscope._control import HEADER, MAX_BYTES, At, Bad, Command, Control, Refused, control_path, parse
from test_log import deadline


def send(log: Path, *lines: str) -> None:
    """Appends commands as the TUI does: O_WRONLY | O_APPEND | O_NOFOLLOW, one write per line."""
    fd = os.open(control_path(log), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    try:
        for line in lines:
            os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


def append_raw(log: Path, data: bytes) -> None:
    with open(control_path(log), "ab") as f:
        f.write(data)


class Run:
    """A Control with a fake model: `applied` the commands that reached `apply`, `events` the ledger."""

    def __init__(self, log: Path, *, fail: Optional[Exception] = None, **kwargs: Any) -> None:
        self.events: List[Dict[str, Any]] = []
        self.applied: List[Command] = []
        self.fail = fail
        kwargs.setdefault("recalibrate", True)
        kwargs.setdefault("evaluate", True)
        self.control = Control(log, self.apply, self.events.append, **kwargs)

    def apply(self, cmd: Command) -> Dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.applied.append(cmd)
        if cmd.verb in ("momentum", "cumulative"):
            return {"value": cmd.value}
        if cmd.verb == "recalibrate":
            return {"value": "3 batches"}
        if cmd.verb == "evaluate":
            return {"eval_running": {"acc": 0.5}, "eval_batch": {"acc": 1.0}}
        return {}

    def steps(self, n: int) -> None:
        for _ in range(n):
            self.control.boundary()

    def kinds(self) -> List[Any]:
        return [(e["step"], e["what"], e.get("value"), e.get("id")) for e in self.events]


# --- grammar -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, value", [
    ("cmd 1 momentum 0.9", 0.9), ("cmd a.B_c-9 momentum 0", 0.0), ("cmd x momentum .5", 0.5),
    ("cmd x momentum 9e-1", 0.9), ("cmd x momentum +0.25", 0.25), ("cmd x momentum 0.999999", 0.999999),
    ("cmd x cumulative on", True), ("cmd x cumulative off", False), ("cmd 4242-3 pause", None),
    ("cmd x resume", None), ("cmd x step", None), ("cmd x reset", None), ("cmd x recalibrate", None),
    ("cmd x evaluate", None), ("cmd " + "i" * 32 + " pause", None),
])
def test_grammar_accepts(line: str, value: Any) -> None:
    cmd = parse(line.encode())
    assert isinstance(cmd, Command) and cmd.value == value and cmd.line == line
    assert cmd.verb == line.split(" ")[2] and cmd.id == line.split(" ")[1]


@pytest.mark.parametrize("line, reason, ident", [
    ("cmd 1 momentum 1", "momentum must be in [0, 1)", "1"),
    ("cmd 1 momentum 1.5", "momentum must be in [0, 1)", "1"),
    ("cmd 1 momentum -0.1", "momentum must be in [0, 1)", "1"),
    ("cmd 1 momentum 1e999", "momentum must be finite", "1"),
    ("cmd 1 momentum nan", "momentum takes one number", "1"),
    ("cmd 1 momentum inf", "momentum takes one number", "1"),
    ("cmd 1 momentum 0x1", "momentum takes one number", "1"),
    ("cmd 1 momentum 1_0", "momentum takes one number", "1"),
    ("cmd 1 momentum", "momentum takes one number", "1"),
    ("cmd 1 momentum 0.5 0.6", "momentum takes one number", "1"),
    ("cmd 1 momentum  0.5", "momentum takes one number", "1"),
    ("cmd 1 cumulative yes", "cumulative takes on or off", "1"),
    ("cmd 1 pause now", "pause takes no argument", "1"),
    ("cmd 1 explode", "unknown verb 'explode'", "1"),
    ("cmd 1 __import__('os')", "unknown verb", "1"),
    ("cmd " + "i" * 33 + " pause", "the id must be", None),
    ("cmd a/b pause", "the id must be", None),
    ("cmd", "not a command", None),
    ("", "not a command", None),
    ("hello", "not a command", None),
    ("cmd 1 pause\r", "control characters", "1"),
    ("cmd 1\tpause", "control characters", None),
    ("cmd 1 pause \x1b[2J", "control characters", "1"),
    ("cmd 1 mömentum 0.9", "not ASCII", "1"),
    ("at 1", "an at line is", "1"),
    ("at 1 -5", "an at line is", "1"),
    ("at 1 5x", "an at line is", "1"),
    ("cmd 1 momentum 0." + "0" * 200, "longer than 200 bytes", "1"),
])
def test_grammar_refuses(line: str, reason: str, ident: Optional[str]) -> None:
    with pytest.raises(Bad) as e:
        parse(line.encode())
    assert reason in str(e.value) and e.value.ident == ident


def test_line_length_counts_the_newline() -> None:
    line = "cmd 1 momentum 0." + "5" * (199 - len("cmd 1 momentum 0."))
    assert len(line) + 1 == 200 and isinstance(parse(line.encode()), Command)
    with pytest.raises(Bad, match="longer than 200"):
        parse((line + "5").encode())
    assert parse(b"at x-1 12") == At("x-1", 12)


# --- the file ------------------------------------------------------------------------------------------------------

def test_the_file_is_made_0600_whatever_the_umask_with_its_header(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        run = Run(tmp_path / "run.jsonl")
    finally:
        os.umask(old)
    path = tmp_path / "run.jsonl.control"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == HEADER
    assert run.control.info == {"path": str(path), "pid": os.getpid(), "host": run.control.info["host"],
                                "recalibrate": True, "evaluate": True}
    run.control.close()
    old = os.umask(0o277)  # a umask that takes the owner's bits too
    try:
        Run(tmp_path / "b.jsonl").control.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b.jsonl.control").stat().st_mode) == 0o600


def test_an_existing_file_is_reused_and_old_commands_are_not_replayed(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    Run(log).control.close()
    send(log, "cmd old-1 pause", "cmd old-2 momentum 0.5")
    append_raw(log, b"cmd old-3 res")  # cut short by a writer that died: skipped, not read as a new line
    run = Run(log)
    run.steps(2)
    append_raw(log, b"ume\n")
    send(log, "cmd new-1 momentum 0.7")
    run.steps(1)
    assert run.kinds() == [(2, "momentum", 0.7, "new-1")]


def refused(tmp_path: Path, why: str, **kwargs: Any) -> Run:
    run = Run(tmp_path / "run.jsonl", **kwargs)
    assert run.control.quiet and why in run.control.info["refused"], run.control.info
    assert set(run.control.info) == {"refused"}
    run.steps(3)  # the training goes on; nothing is read
    assert run.events == [] and run.control.step == 3
    return run


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(HEADER)
    target.chmod(0o600)
    (tmp_path / "run.jsonl.control").symlink_to(target)
    refused(tmp_path, "run.jsonl.control is a symlink")
    (tmp_path / "run.jsonl.control").unlink()
    (tmp_path / "run.jsonl.control").symlink_to(tmp_path / "nowhere")  # dangling: not created through it
    refused(tmp_path, "is a symlink")
    assert not (tmp_path / "nowhere").exists()


def test_another_owner_is_refused(tmp_path: Path, monkeypatch: Any) -> None:
    Run(tmp_path / "run.jsonl").control.close()
    uid = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: uid + 1)
    refused(tmp_path, "belongs to another user")


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_group_or_world_writable_is_refused(tmp_path: Path, mode: int) -> None:
    Run(tmp_path / "run.jsonl").control.close()
    (tmp_path / "run.jsonl.control").chmod(mode)
    refused(tmp_path, "is group- or world-writable")


@pytest.mark.parametrize("content", [b"", b"cmd 1 pause\n", b"bnscope-control 2\n", b"bnscope-control 1"])
def test_a_missing_header_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run.jsonl.control"
    path.write_bytes(content)
    path.chmod(0o600)
    refused(tmp_path, "does not start with the header")
    assert path.read_bytes() == content


def test_a_fifo_or_a_directory_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "run.jsonl.control", 0o600)
    with deadline(10):
        refused(tmp_path, "is not a regular file (a FIFO)")
    os.unlink(tmp_path / "run.jsonl.control")
    (tmp_path / "run.jsonl.control").mkdir(0o700)
    refused(tmp_path, "cannot open")


def test_a_full_file_and_one_in_use_are_refused(tmp_path: Path) -> None:
    first = Run(tmp_path / "run.jsonl")
    refused(tmp_path, "is in use by another run")
    first.control.close()
    append_raw(tmp_path / "run.jsonl", b"#" * MAX_BYTES + b"\n")
    refused(tmp_path, "is full (1 MiB)")


def test_no_directory_is_refused(tmp_path: Path) -> None:
    run = Run(tmp_path / "no" / "run.jsonl")
    assert "cannot create" in run.control.info["refused"]


# --- reading ------------------------------------------------------------------------------------------------------

def test_partial_lines_wait_for_their_newline(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log)
    append_raw(log, b"cmd 1 mom")
    run.steps(2)
    append_raw(log, b"entum 0.")
    run.steps(1)
    assert run.events == []
    append_raw(log, b"25\ncmd 2 res")
    run.steps(1)
    append_raw(log, b"et\n")
    run.steps(1)
    assert run.kinds() == [(3, "momentum", 0.25, "1"), (4, "reset_stats", None, "2")]


def test_an_endless_line_is_refused_at_200_bytes_and_skipped_to_its_end(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log)
    append_raw(log, b"cmd big momentum 0." + b"1" * 300)
    run.steps(1)
    assert [(e["what"], e["id"], len(e["value"])) for e in run.events] == [("refused", "big", 200)]
    assert "longer than 200 bytes" in run.events[0]["reason"]
    append_raw(log, b"1" * 5000)
    run.steps(1)
    append_raw(log, b"1\ncmd 2 pause\ncmd 3 resume\n")
    run.steps(1)
    assert [e["what"] for e in run.events] == ["refused", "pause", "resume"]


def test_refused_lines_are_in_the_ledger_and_never_applied(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log, recalibrate=False, evaluate=False)
    send(log, "cmd 1 momentum 1.5", "rm -rf /", "cmd 2 recalibrate", "cmd 3 evaluate", "cmd 4 step",
         "cmd 5 resume", "at 6 9", "cmd 7 momentum 0.5", "cmd 7 momentum 0.6", "cmd 8 cumulative on")
    append_raw(log, "cmd 9 pause \u00e9\n".encode())
    run.steps(1)
    got = [(e["what"], e.get("id"), e.get("reason")) for e in run.events]
    assert got == [
        ("refused", "1", "momentum must be in [0, 1)"),
        ("refused", None, "not a command: a line is `cmd ID VERB [ARG]`"),
        ("refused", "2", "no recalibrate data was given"),
        ("refused", "3", "no evaluate function or data was given"),
        ("refused", "4", "not paused"),
        ("refused", "5", "not paused"),
        ("refused", "6", "at lines come from rank 0 of a distributed run"),
        ("momentum", "7", None),
        ("refused", "7", "this id was used before"),
        ("cumulative", "8", None),
        ("refused", "9", "the line is not ASCII"),
    ]
    assert run.events[1]["value"] == "rm -rf /" and run.events[-1]["value"] == "cmd 9 pause \u00e9"
    assert all(e["source"] == "control" and e["step"] == 0 for e in run.events)
    assert [c.id for c in run.applied] == ["7", "8"]


def test_a_command_that_raises_is_refused_and_the_run_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log, fail=ValueError("no such layer"))
    send(log, "cmd 1 reset")
    run.steps(1)
    assert run.events[0]["what"] == "refused" and run.events[0]["reason"] == "ValueError: no such layer"
    run.fail = None
    send(log, "cmd 2 reset")
    run.steps(1)
    assert run.kinds()[-1] == (1, "reset_stats", None, "2")


def test_the_ledger_has_each_command_once_in_order_with_its_step(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log)
    run.steps(3)
    send(log, "cmd a momentum 0.9", "cmd b cumulative on")
    run.steps(4)
    send(log, "cmd c reset", "cmd d recalibrate", "cmd e evaluate", "cmd f cumulative off")
    run.steps(1)
    run.steps(5)
    assert run.kinds() == [
        (3, "momentum", 0.9, "a"), (3, "cumulative", True, "b"), (7, "reset_stats", None, "c"),
        (7, "recalibrate", "3 batches", "d"), (7, "evaluate", None, "e"), (7, "cumulative", False, "f"),
    ]
    assert run.events[4]["eval_running"] == {"acc": 0.5} and run.events[4]["eval_batch"] == {"acc": 1.0}
    assert list(run.events[0]) == ["step", "what", "value", "id", "source"]
    assert run.control.step == 13


def test_the_full_file_is_said_once_and_control_goes_quiet(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log)
    filler = ("cmd " + "f" * 32 + " pause " + "x" * 150 + "\n").encode()
    append_raw(log, filler * (MAX_BYTES // len(filler) + 1))
    send(log, "cmd late pause")
    with deadline(10):
        run.steps(3)
    assert [e["what"] for e in run.events if e.get("reason") != "pause takes no argument"] == ["refused"]
    assert run.events[-1]["reason"] == "the control file is full" and "value" not in run.events[-1]
    assert run.control.quiet and not run.control.paused


def test_a_removed_file_ends_control_and_releases_a_pause(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log)
    send(log, "cmd 1 pause")

    def remove() -> None:
        until_paused(run.control)
        os.unlink(control_path(log))

    t = threading.Thread(target=remove)
    t.start()
    with deadline(10):
        run.steps(2)  # blocks at step 0 until the file is gone
    t.join()
    assert run.kinds() == [(0, "pause", None, "1"), (0, "refused", None, None)]
    assert run.events[-1]["reason"] == "the control file was removed" and run.control.step == 2


def test_a_log_that_cannot_be_written_silences_control_once(tmp_path: Path, capsys: Any) -> None:
    log = tmp_path / "run.jsonl"

    def full(rec: Dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    control = Control(log, lambda c: {}, full, recalibrate=False, evaluate=False)
    send(log, "cmd 1 pause", "cmd 2 reset")
    with deadline(10):
        for _ in range(3):
            control.boundary()  # never raises, never blocks
    assert control.quiet and not control.paused
    err = capsys.readouterr().err
    assert err.count("bnscope: control channel") == 1 and "No space left on device" in err


def test_two_writers_appending_at_once(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log)
    code = ("import os, sys, time\nfd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)\n"
            "for i in range(300):\n    os.write(fd, f'cmd w{sys.argv[2]}-{i} momentum 0.{i + 1:03d}\\n'.encode())\n"
            "    time.sleep(0.001 if i % 10 == 0 else 0)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(control_path(log)), str(w)]) for w in (0, 1)]
    with deadline(60):
        while any(p.poll() is None for p in procs):
            run.steps(1)
        run.steps(1)
    assert all(p.returncode == 0 for p in procs)
    ids = [e["id"] for e in run.events]
    assert all(e["what"] == "momentum" for e in run.events) and len(ids) == 600 == len(set(ids))
    for w in (0, 1):
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(f"w{w}-")]
        assert mine == list(range(300))
    steps = [e["step"] for e in run.events]
    assert steps == sorted(steps) and len(set(steps)) > 2  # read in several pieces, while they wrote


def until_paused(control: Control) -> None:
    """Waits (in a helper thread) until the training thread is blocked in a pause."""
    limit = time.monotonic() + 20
    while not control.paused and time.monotonic() < limit:
        time.sleep(0.01)
    time.sleep(0.1)


# --- pause, step, resume ----------------------------------------------------------------------------------------

def test_pause_step_resume(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log)
    ends: List[float] = []
    sent: Dict[str, float] = {}

    def writer() -> None:
        for line in ("cmd 2 step", "cmd 3 momentum 0.5", "cmd 4 resume"):
            time.sleep(0.3)
            sent[line] = time.monotonic()
            send(log, line)

    run.steps(2)
    send(log, "cmd 1 pause")
    t = threading.Thread(target=writer)
    t.start()
    with deadline(20):
        for _ in range(4):
            run.control.boundary()  # a boundary that blocked when it should not would run into the deadline
            ends.append(time.monotonic())
    t.join()
    assert run.kinds() == [(2, "pause", None, "1"), (2, "step", None, "2"), (3, "momentum", 0.5, "3"),
                           (3, "resume", None, "4")]
    # Blocked at 2 until the step, at 3 until the resume (a command while paused is applied at once).
    assert ends[0] >= sent["cmd 2 step"] and ends[1] >= sent["cmd 4 resume"], (ends, sent)
    assert not run.control.paused


def test_keyboard_interrupt_still_works_while_paused(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    run = Run(log)
    send(log, "cmd 1 pause")

    def interrupt() -> None:
        until_paused(run.control)
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    with deadline(10), pytest.raises(KeyboardInterrupt):
        run.steps(1)
    assert run.events[-1] == {"step": 0, "what": "resume", "source": "control", "reason": "KeyboardInterrupt"}
    run.steps(1)  # not paused any more
    assert not run.control.paused


# --- distributed: two ranks as threads, in lockstep ------------------------------------------------------------

class Store:
    """torch.distributed's store as far as Control uses it."""

    def __init__(self) -> None:
        self.data: Dict[str, bytes] = {}

    def set(self, key: str, value: str) -> None:
        self.data[key] = value.encode()

    def add(self, key: str, n: int) -> int:
        value = int(self.data.get(key, b"0")) + n
        self.data[key] = str(value).encode()
        return value

    def check(self, keys: List[str]) -> bool:
        return all(k in self.data for k in keys)

    def get(self, key: str) -> bytes:
        return self.data[key]


def ranks(tmp_path: Path, steps: int, actions: Dict[int, List[str]], lag: int = 0) -> List[Run]:
    """Runs two ranks of `steps` boundaries in lockstep (a barrier after each step stands for the all-reduce);
    rank 0 sends `actions[S]` just before its boundary S. Rank 1 starts `lag` steps late (it ran them unwatched)."""
    log, store = tmp_path / "run.jsonl", Store()
    runs: List[Optional[Run]] = [None, None]
    barrier = threading.Barrier(2, timeout=20)
    errors: List[BaseException] = []

    def rank(r: int) -> None:
        try:
            if r == 1:
                barrier.wait()  # rank 0 has made its channel
            runs[r] = run = Run(log, rank=r, world=2, store=store)
            if r == 0:
                barrier.wait()
            for s in range(steps):
                if r == 0 and s in actions:
                    send(log, *actions[s])
                if not (r == 1 and s < lag):
                    run.control.boundary()
                else:
                    run.control.step += 1
                barrier.wait()
        except BaseException as e:
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all(r is not None for r in runs)
    return [r for r in runs if r is not None]


def test_distributed_commands_apply_at_the_same_step_on_every_rank(tmp_path: Path) -> None:
    runs = ranks(tmp_path, 10, {3: ["cmd m1 momentum 0.5", "cmd bad momentum 2"], 6: ["cmd r1 reset"]})
    for run in runs:
        assert [k for k in run.kinds() if k[1] != "refused"] == [(5, "momentum", 0.5, "m1"),
                                                                 (8, "reset_stats", None, "r1")]
        assert [(e["id"], e["reason"]) for e in run.events if e["what"] == "refused"] == [
            ("bad", "momentum must be in [0, 1)")]
        assert not any("late" in e for e in run.events)
    text = control_path(tmp_path / "run.jsonl").read_text()
    assert text.endswith("cmd m1 momentum 0.5\ncmd bad momentum 2\nat m1 5\ncmd r1 reset\nat r1 8\n")


def test_distributed_a_rank_that_reads_late_applies_at_once_and_says_so(tmp_path: Path) -> None:
    runs = ranks(tmp_path, 10, {1: ["cmd m1 momentum 0.5"]}, lag=6)
    assert runs[0].kinds() == [(3, "momentum", 0.5, "m1")]
    assert runs[1].kinds() == [(6, "momentum", 0.5, "m1")] and runs[1].events[0]["late"] == 3


def test_distributed_pause_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"

    def writer() -> None:
        deadline_s = time.monotonic() + 20
        while time.monotonic() < deadline_s and not (
                control_path(log).exists() and "at p1" in control_path(log).read_text()):
            time.sleep(0.02)
        time.sleep(0.4)
        send(log, "cmd s1 step")
        time.sleep(0.4)
        send(log, "cmd r1 resume")

    t = threading.Thread(target=writer)
    t.start()
    t0 = time.monotonic()
    runs = ranks(tmp_path, 8, {2: ["cmd p1 pause"]})
    t.join()
    assert time.monotonic() - t0 >= 0.8
    for run in runs:
        assert run.kinds() == [(4, "pause", None, "p1"), (4, "step", None, "s1"), (5, "resume", None, "r1")]
    text = control_path(log).read_text()
    assert "at p1 4\n" in text and "at s1 4\n" in text and "at r1 5\n" in text


def test_distributed_rank_0_refused_tells_the_others(tmp_path: Path) -> None:
    (tmp_path / "run.jsonl.control").symlink_to(tmp_path / "x")
    runs = ranks(tmp_path, 3, {})
    assert "symlink" in runs[0].control.info["refused"]
    said = [runs[1].control.info.get("refused", "")] + [e["reason"] for e in runs[1].events]
    assert runs[1].control.quiet and any("rank 0 has no control channel: " in s and "symlink" in s for s in said)


def test_rank_0_cannot_append_past_the_bound(tmp_path: Path) -> None:
    log, store = tmp_path / "run.jsonl", Store()
    path = control_path(log)
    path.write_bytes(HEADER + b"#" * (MAX_BYTES - 14 - len(HEADER) - 1) + b"\n")
    path.chmod(0o600)
    leader = Run(log, rank=0, world=2, store=store)
    assert not leader.control.quiet
    send(log, "cmd a reset")  # 12 bytes: the file is 2 bytes under the bound, too few for `at a 2`
    with deadline(10):
        leader.steps(3)
    assert [(e["what"], e["reason"]) for e in leader.events] == [("refused", "the control file is full")]
    assert leader.applied == [] and leader.control.quiet and path.stat().st_size == MAX_BYTES - 2


def test_paused_ranks_go_on_when_rank_0_closes_its_channel(tmp_path: Path) -> None:
    """Rank 0 interrupted (or its channel quiet) while the others are paused: they must not wait for ever."""
    log, store = tmp_path / "run.jsonl", Store()
    leader = Run(log, rank=0, world=2, store=store)
    follower = Run(log, rank=1, world=2, store=store)
    send(log, "cmd p1 pause")
    leader.steps(1)  # reads it at 0: at p1 2
    follower.steps(2)
    timer = threading.Timer(0.3, leader.control.close)
    timer.start()
    with deadline(10):
        follower.steps(1)  # paused at 2 until rank 0 lets go
    timer.join()
    assert [(e["step"], e["what"]) for e in follower.events] == [(2, "pause"), (2, "refused")]
    assert follower.events[-1]["reason"] == "rank 0's control channel is off (rank 0 closed it)"
    assert follower.control.quiet and not follower.control.paused


def test_a_rank_without_a_store_has_no_control(tmp_path: Path) -> None:
    run = Run(tmp_path / "run.jsonl", rank=1, world=2, store=None)
    assert "no torch.distributed store" in run.control.info["refused"]
    assert not (tmp_path / "run.jsonl.control").exists()  # only rank 0 makes the file


def test_nothing_is_evaluated(tmp_path: Path, monkeypatch: Any) -> None:
    import builtins

    def forbidden(*args: Any) -> Any:
        raise AssertionError("evaluated")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    log = tmp_path / "run.jsonl"
    run = Run(log)
    send(log, "cmd 1 momentum __import__('os').system('true')", "cmd 2 momentum 0.5")
    run.steps(1)
    assert [e["what"] for e in run.events] == ["refused", "momentum"]
    assert not hasattr(_control, "pickle")
