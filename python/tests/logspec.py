"""A checker for docs/LOG_FORMAT.md (version 1), used by the tests on fresh logs and on tests/fixtures/logs."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Set

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "docs" / "LOG_FORMAT.md"

REQUIRED: Dict[str, Set[str]] = {
    "run": {"type", "schema", "convention", "bn_layers"},
    "epoch": {"type", "epoch"},
    "bn": {"type", "epoch", "layers"},
    "event": {"type", "epoch", "what"},
    "end": {"type", "epochs", "reason"},
    "inspect": {"type", "samples", "eval_running", "eval_batch", "recalibrated", "layers", "findings"},
}
ARRAYS = ("running_mean", "running_var", "batch_mean", "batch_var")


def required_in_spec() -> Dict[str, Set[str]]:
    """The fields the spec's tables mark R, per record type (`run`, `epoch`, `bn`)."""
    out: Dict[str, Set[str]] = {}
    section = ""
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        head = re.match(r"## `(\w+)`", line)
        if head:
            section = head.group(1)
        row = re.match(r"\|\s*(.+?)\s*\|\s*R\s*\|", line)
        if row and section:
            out.setdefault(section, set()).update(re.findall(r"`(\w+)`", row.group(1)))
    return out


def read(path: Path) -> List[Dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def _metric(m: Any, where: str) -> None:
    assert isinstance(m, dict), where
    for key in ("loss", "acc"):
        if key in m:
            assert _number(m[key]), f"{where}.{key}"
    if m.get("acc") is not None:
        assert 0.0 <= m["acc"] <= 1.0, f"{where}.acc"


def _momentum(rec: Mapping[str, Any], where: str) -> None:
    if rec.get("momentum") is not None:
        assert 0.0 <= rec["momentum"] <= 1.0, f"{where}: momentum {rec['momentum']} (Keras convention)"
    if "cumulative" in rec:
        assert isinstance(rec["cumulative"], bool), where


def _blame_figure(b: Any, where: str) -> None:
    assert isinstance(b, dict) and {"loss", "acc", "loss_share", "acc_share"} >= b.keys(), where
    _metric({k: b[k] for k in ("loss", "acc") if k in b}, where)
    for key in ("loss_share", "acc_share"):
        assert _number(b.get(key)), f"{where}.{key}"


def _inspect(rec: Mapping[str, Any], layers: Mapping[str, int], where: str) -> None:
    """The `inspect` record (bnscope.inspect / keras_inspect)."""
    assert isinstance(rec["samples"], int) and rec["samples"] >= 1, where
    cap = rec.get("logits_cap")
    for key in ("eval_running", "eval_batch", "recalibrated", "blame_running", "blame_batch"):
        if key in rec:
            _metric(rec[key], f"{where}.{key}")
            rows = rec[key].get("logits", [])
            assert cap is not None or not rows, f"{where}.{key}: logits without logits_cap"
            assert len(rows) <= (cap or 0) and len({len(r) for r in rows}) <= 1, f"{where}.{key}.logits"
            assert all(_number(v) for r in rows for v in r), f"{where}.{key}.logits"
    spread = rec.get("recalibration_spread")
    if spread is not None:
        assert isinstance(spread["shuffles"], int) and spread["shuffles"] >= 0, where
        for m in ("acc", "loss"):
            if f"{m}_min" in spread:
                assert spread[f"{m}_min"] <= spread[f"{m}_mean"] + 1e-12 <= spread[f"{m}_max"] + 2e-12, where
    assert rec.get("blame_by") in (None, "acc", "loss"), where
    names = [layer["name"] for layer in rec["layers"]]
    assert len(set(names)) == len(names), f"{where}: a layer listed twice"
    for entry in rec.get("blamed", []):
        assert entry["name"] in names and _number(entry["share"]), where
    for layer in rec["layers"]:
        name = layer["name"]
        lw = f"{where} {name}"
        assert name in layers, f"{lw}: not in run.bn_layers"
        assert layer.get("channels", layers[name]) == layers[name], lw
        for key in ("running_mean", "running_var", "data_mean", "data_var"):
            if key in layer:
                assert len(layer[key]) == layers[name] and all(_number(v) for v in layer[key]), f"{lw}.{key}"
        for key in ("mean_gap", "var_gap"):
            if layer.get(key) is not None:
                assert layer[key] >= 0, f"{lw}.{key}"
        if "n" in layer:
            assert isinstance(layer["n"], int) and layer["n"] >= 1, lw
    blamed = [entry["name"] for entry in rec.get("blame", [])]
    assert len(set(blamed)) == len(blamed) and set(blamed) <= set(names), f"{where}.blame: names"
    for entry in rec.get("blame", []):
        for key in ("alone", "prefix"):
            _blame_figure(entry[key], f"{where}.blame {entry['name']}.{key}")
    assert isinstance(rec["findings"], list) and all(isinstance(f, str) for f in rec["findings"]), where


def check(records: Sequence[Mapping[str, Any]]) -> None:
    """Asserts that `records` (one log file) follow the spec."""
    assert records and records[0]["type"] == "run", "a log starts with a run record"
    layers: Dict[str, int] = {}
    run: Mapping[str, Any] = {}
    last_epoch = None
    for i, rec in enumerate(records):
        kind = rec.get("type")
        where = f"record {i + 1} ({kind})"
        if kind not in REQUIRED:
            continue  # unknown record types are ignored
        missing = REQUIRED[kind] - rec.keys()
        assert not missing, f"{where}: missing required {sorted(missing)}"
        if kind == "run":
            run = rec
            assert rec["schema"] == 1 and rec["convention"] == "keras", where
            assert rec.get("source", "bnscope") in ("bnscope", "torch", "keras"), where
            assert rec.get("bn_variance", "unbiased") in ("biased", "unbiased"), where
            layers = {layer["name"]: layer["channels"] for layer in rec["bn_layers"]}
            assert len(layers) == len(rec["bn_layers"]) and all(c > 0 for c in layers.values()), where
            _momentum(rec, where)
            if "rank" in rec:
                assert 0 <= rec["rank"] < rec["world_size"], where
        elif kind == "epoch":
            assert isinstance(rec["epoch"], int) and rec["epoch"] >= 1, where
            _momentum(rec, where)
            for key in ("train", "eval_running", "eval_batch"):
                if key in rec:
                    _metric(rec[key], f"{where}.{key}")
            for key in ("predictions_running", "predictions_batch"):
                for row in rec.get(key, []):
                    assert abs(sum(row) - 1.0) < 1e-3, f"{where}.{key}: rows are probabilities"
            last_epoch = rec["epoch"]
        elif kind == "bn":
            assert records[i - 1]["type"] == "epoch" and rec["epoch"] == last_epoch, f"{where}: follows its epoch"
            assert rec.get("batch", "train") in ("train", "eval_data"), where
            for layer in rec["layers"]:
                name = layer["name"]
                assert name in layers, f"{where}: layer {name} not in run.bn_layers"
                _momentum(layer, f"{where} {name}")
                for key in ARRAYS:
                    if key in layer:
                        assert len(layer[key]) == layers[name], f"{where} {name}.{key}: one value per channel"
                        assert all(_number(v) for v in layer[key]), f"{where} {name}.{key}"
                for key in ("mean_gap", "var_gap"):
                    if layer.get(key) is not None:
                        assert layer[key] >= 0, f"{where} {name}.{key}"
                if "n" in layer:
                    assert isinstance(layer["n"], int) and layer["n"] >= 1, where
        elif kind == "inspect":
            _inspect(rec, layers, where)
        elif kind == "event":
            assert isinstance(rec["what"], str), where
        elif kind == "end":
            assert rec["reason"] in ("done", "quit", "signal", "error"), where
            assert i == len(records) - 1 or records[i + 1]["type"] == "run", f"{where}: end is last"
    assert run, "no run record"
