"""Framework-free parts: the writer, the helpers, the spec checker against docs/LOG_FORMAT.md, importing without
torch or keras, and the fixtures in tests/fixtures/logs."""
import contextlib
import json
import math
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import logspec
from bnscope import SCHEMA, rank_path
from bnscope import LogFileError
from bnscope._log import (JsonlWriter, add_info, check_info, check_options, clean, common, encode, gap, metric,
                          probe_log, short)

FIXTURES = logspec.REPO / "tests" / "fixtures" / "logs"
PYTHON_DIR = Path(__file__).resolve().parents[1]


def test_rank_path() -> None:
    assert rank_path("out/run.jsonl", 3) == Path("out/run.rank3.jsonl")
    assert rank_path("ddp.jsonl", 0).name == "ddp.rank0.jsonl"
    assert rank_path("log", 1).name == "log.rank1"


def test_writer_one_line_per_record_and_null_for_non_finite(tmp_path: Path) -> None:
    w = JsonlWriter(tmp_path / "a.jsonl")
    w.write({"type": "epoch", "epoch": 1, "train": {"loss": float("nan"), "acc": 1.0}, "xs": [1.0, float("inf")]})
    assert (tmp_path / "a.jsonl").read_text().endswith("\n")  # flushed without close
    w.close()
    assert w.closed
    with pytest.raises(ValueError):
        w.write({"type": "end"})
    rec = json.loads((tmp_path / "a.jsonl").read_text())
    assert rec == {"type": "epoch", "epoch": 1, "train": {"loss": None, "acc": 1.0}, "xs": [1.0, None]}


def test_helpers() -> None:
    assert clean({"a": (float("-inf"), 2)}) == {"a": [None, 2]}
    assert short([0.1234567891, -1.0e-9, float("nan")]) == [0.1234568, -1e-09, None]
    assert metric(None) is None and metric({"loss": 1, "other": 3}) == {"loss": 1.0}
    assert common([0.9, 0.9]) == 0.9 and common([0.9, 0.99]) is None and common([]) is None
    assert math.isclose(gap([1.0, 1.0], [0.0, 1.0]), 1.0, rel_tol=1e-6)
    rec = {"type": "run"}
    add_info(rec, {"seed": 3})
    assert rec["seed"] == 3
    with pytest.raises(ValueError):
        add_info(rec, {"schema": 2})


def test_checker_required_fields_match_the_spec() -> None:
    spec = logspec.required_in_spec()
    for kind in ("run", "epoch", "bn", "inspect"):
        assert spec[kind] == logspec.REQUIRED[kind], kind
    text = logspec.SPEC.read_text(encoding="utf-8")
    assert "# bnscope log format, version 1" in text and SCHEMA == 1
    for field in ("source", "rank", "world_size", "num_batches_tracked", "bn_variance", "momentum_note"):
        assert f"`{field}`" in text, field


def test_checker_rejects_a_missing_required_field() -> None:
    run = {"type": "run", "schema": 1, "convention": "keras", "bn_layers": [{"name": "bn", "channels": 2}]}
    good: List[Dict[str, Any]] = [
        run,
        {"type": "epoch", "epoch": 1},
        {"type": "bn", "epoch": 1, "layers": [{"name": "bn"}]},
        {"type": "future_record"},  # unknown record types are ignored
        {"type": "end", "epochs": 1, "reason": "done"},
    ]
    logspec.check(good)
    for i, field in ((0, "schema"), (1, "epoch"), (2, "layers"), (4, "reason")):
        bad = [dict(r) for r in good]
        del bad[i][field]
        with pytest.raises((AssertionError, KeyError)):
            logspec.check(bad)


def test_imports_without_torch_or_keras() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['keras'] = None\n"
        "import bnscope; assert bnscope.SCHEMA == 1\n"
        "try:\n    bnscope.watch\nexcept ImportError:\n    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(PYTHON_DIR)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


FIXTURE_NAMES = ["torch_resnet18.jsonl", "keras_small.jsonl", "ddp.rank0.jsonl", "ddp.rank1.jsonl"]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_follows_the_spec(name: str) -> None:
    path = FIXTURES / name
    assert path.stat().st_size < 300_000, "fixtures stay small"
    records = logspec.read(path)
    logspec.check(records)
    assert records[-1]["type"] == "end"


def test_resnet18_fixture_shows_the_gap() -> None:
    records = logspec.read(FIXTURES / "torch_resnet18.jsonl")
    run = records[0]
    assert run["source"] == "torch" and len(run["bn_layers"]) == 20 and run["momentum"] == 0.99
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(epochs) == 5
    last = epochs[-1]
    assert last["eval_batch"]["acc"] > last["eval_running"]["acc"]
    bns = [r for r in records if r["type"] == "bn"]
    assert all("mean_gap" in layer for r in bns for layer in r["layers"])
    # Per-channel arrays only in the last bn record (4800 channels × 4 arrays × 5 epochs would be ~1 MB).
    assert [("running_mean" in r["layers"][0]) for r in bns] == [False] * 4 + [True]


def test_keras_fixture() -> None:
    records = logspec.read(FIXTURES / "keras_small.jsonl")
    run = records[0]
    assert run["source"] == "keras" and run["bn_variance"] == "biased" and run["momentum"] == 0.99
    bns = [r for r in records if r["type"] == "bn"]
    assert bns and all(r["batch"] == "eval_data" for r in bns)
    assert all(len(e["predictions_batch"]) == run["images"] for e in records if e["type"] == "epoch")


def test_ddp_fixtures_differ_by_rank() -> None:
    runs = [logspec.read(FIXTURES / f"ddp.rank{r}.jsonl") for r in (0, 1)]
    assert [rs[0]["rank"] for rs in runs] == [0, 1] and all(rs[0]["world_size"] == 2 for rs in runs)
    names = [[layer["name"] for layer in rs[0]["bn_layers"]] for rs in runs]
    assert names[0] == names[1] and not any(n.startswith("module.") for n in names[0])
    last = [[r for r in rs if r["type"] == "bn"][-1]["layers"][0]["running_mean"] for rs in runs]
    assert last[0] != last[1], "no SyncBatchNorm: each rank's running statistics are its own"


# --- the writer under hostile input (#24): the rules of bnscope's own --log -------------------------------------

RUN = '{"type":"run","schema":1,"convention":"keras","bn_layers":[{"name":"bn","channels":2}]}\n'


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fails the test instead of hanging it (SIGALRM interrupts a blocking open)."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def lines(path: Path) -> List[str]:
    return path.read_text().splitlines()


def test_writer_creates_a_new_file(tmp_path: Path) -> None:
    w = JsonlWriter(tmp_path / "new.jsonl")
    w.write({"type": "run"})
    w.close()
    assert lines(tmp_path / "new.jsonl") == ['{"type":"run"}']
    assert oct((tmp_path / "new.jsonl").stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_writer_appends_to_a_bnscope_log_and_keeps_every_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    old = RUN + "".join(f'{{"type":"event","epoch":0,"what":"x","value":{i}}}\n' for i in range(7))
    path.write_text(old)
    w = JsonlWriter(path)
    w.write({"type": "run", "n": 2})
    w.close()
    assert path.read_text() == old + '{"type":"run","n":2}\n'
    path.write_text("")  # an empty file counts as a log
    with contextlib.closing(JsonlWriter(path)) as w:
        w.write({"type": "run"})
    assert lines(path) == ['{"type":"run"}']


def test_writer_ends_a_cut_line_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_text(RUN + '{"type":"epoch","ep')  # a writer died in the middle of a record
    with contextlib.closing(JsonlWriter(path)) as w:
        w.write({"type": "run"})
    assert path.read_text() == RUN + '{"type":"epoch","ep\n{"type":"run"}\n'


@pytest.mark.parametrize("content", ["import torch\nprint('train')\n", '{"type":"epoch"}\n', "not json", "\n"])
def test_writer_refuses_a_file_that_is_not_a_log(tmp_path: Path, content: str) -> None:
    path = tmp_path / "train.py"
    path.write_text(content)
    with pytest.raises(LogFileError, match=r"train\.py: exists and is not a bnscope log.*overwrite=True"):
        JsonlWriter(path)
    with pytest.raises(LogFileError, match="not a bnscope log"):
        probe_log(path, overwrite=False)
    assert path.read_text() == content  # untouched
    probe_log(path, overwrite=True)
    with contextlib.closing(JsonlWriter(path, overwrite=True)) as w:  # asked for: emptied
        w.write({"type": "run"})
    assert lines(path) == ['{"type":"run"}']


def test_a_run_record_cut_short_is_not_a_log(tmp_path: Path) -> None:
    path = tmp_path / "half.jsonl"
    path.write_text('{"type":"run","sch')  # only the first line tells; it must be whole
    with pytest.raises(LogFileError):
        JsonlWriter(path)


def test_two_writers_on_one_path_the_second_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    first = JsonlWriter(path, owner="the first writer")
    first.write({"type": "run"})
    with pytest.raises(LogFileError, match=r"shared\.jsonl: in use by this process \(the first writer\)"):
        JsonlWriter(path)
    with pytest.raises(LogFileError, match="in use"):  # another name for the same file
        JsonlWriter(tmp_path / "." / "shared.jsonl")
    first.write({"type": "end"})
    first.close()
    with contextlib.closing(JsonlWriter(path)) as second:  # the lock goes with the writer
        second.write({"type": "run"})
    assert lines(path) == ['{"type":"run"}', '{"type":"end"}', '{"type":"run"}']


def test_a_writer_may_give_its_file_up(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    asked: List[bool] = []

    def reclaim() -> bool:
        asked.append(True)
        first.close()
        return True

    first = JsonlWriter(path, reclaim=reclaim)
    with contextlib.closing(JsonlWriter(path)) as second:
        second.write({"type": "run"})
    assert asked == [True] and first.closed


def test_a_lock_held_by_another_process_is_named(tmp_path: Path) -> None:
    path = tmp_path / "locked.jsonl"
    path.write_text(RUN)
    code = ("import fcntl, sys, time\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\ntime.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(LogFileError, match=rf"locked\.jsonl: in use by process {proc.pid}\b"):
            JsonlWriter(path)
    finally:
        proc.kill()
        proc.wait()
    assert path.read_text() == RUN


def test_fifo_device_directory_and_missing_directory_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    (tmp_path / "dir.jsonl").mkdir()
    cases = [(fifo, "a FIFO"), (tmp_path / "dir.jsonl", "a directory"), (Path("/dev/null"), "a character device"),
             (tmp_path / "no" / "such.jsonl", "directory does not exist")]
    with deadline(10):
        for path, words in cases:
            with pytest.raises(LogFileError, match=re.escape(str(path)) + ".*" + words):
                JsonlWriter(path)
            with pytest.raises(LogFileError, match=words):
                probe_log(path, overwrite=True)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_fifo_swapped_in_after_the_check_is_refused_on_the_open_file(tmp_path: Path, monkeypatch: Any) -> None:
    fifo = tmp_path / "late.jsonl"
    os.mkfifo(fifo)
    real_stat = os.stat

    def looks_missing(p: Any, *a: Any, **k: Any) -> Any:
        if Path(p) == fifo:
            raise FileNotFoundError(p)
        return real_stat(p, *a, **k)

    monkeypatch.setattr(os, "stat", looks_missing)
    with deadline(10), pytest.raises(LogFileError, match="a FIFO"):
        JsonlWriter(fifo)


@pytest.mark.parametrize("bad", [b"run.jsonl", "", 3, None, "somedir/"])
def test_bad_paths_are_value_errors(bad: Any) -> None:
    with pytest.raises(ValueError, match="path="):
        JsonlWriter(bad)


def test_a_record_that_fails_half_way_is_cut_back_off(tmp_path: Path) -> None:
    """A full disk, played by RLIMIT_FSIZE: the record that does not fit leaves nothing behind."""
    code = (
        "import resource, signal, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from bnscope._log import JsonlWriter, LogFileError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))\n"
        "w = JsonlWriter(sys.argv[1])\n"
        "w.write({'type': 'run'})\n"
        "try:\n    w.write({'type': 'event', 'value': 'x' * 200})\nexcept LogFileError as e:\n    print(e)\n"
        "w.write({'type': 'end'})\n"
    )
    path = tmp_path / "full.jsonl"
    out = subprocess.run([sys.executable, "-c", code, str(path), str(PYTHON_DIR)], capture_output=True, text=True,
                         check=True, timeout=60)
    assert "full.jsonl: cannot write the log" in out.stdout
    assert lines(path) == ['{"type":"run"}', '{"type":"end"}']


def test_info_is_checked_field_by_field() -> None:
    assert check_info(None) == {} and check_info({"seed": 1, "lr": 0.1}) == {"seed": 1, "lr": 0.1}
    assert math.isnan(check_info({"loss": float("nan")})["loss"])  # written as null
    for bad, match in (({"x": object()}, r"info\['x'\]: cannot be written as JSON"), ({1: 2}, "strings"),
                       ({"control": {}}, "bnscope writes this field"), ([("a", 1)], "must be a dict"),
                       ({"x": {"y": {1, 2}}}, r"info\['x'\]")):
        with pytest.raises(ValueError, match=match):
            check_info(bad)
    with pytest.raises(ValueError, match="log_bn"):
        check_options("some", None, False)
    with pytest.raises(ValueError, match="momentum_note"):
        check_options("full", 0.9, False)
    with pytest.raises(ValueError, match="overwrite"):
        check_options("full", None, "yes")


def test_encode_refuses_what_json_cannot_hold() -> None:
    assert encode({"a": float("inf")}) == b'{"a":null}\n'
    with pytest.raises(ValueError, match="JSON"):
        encode({"a": object()})
