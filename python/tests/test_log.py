"""Framework-free parts: the writer, the helpers, the spec checker against docs/LOG_FORMAT.md, importing without
torch or keras, and the fixtures in tests/fixtures/logs."""
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

import logspec
from bnscope import SCHEMA, rank_path
from bnscope._log import JsonlWriter, add_info, clean, common, gap, metric, short

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
