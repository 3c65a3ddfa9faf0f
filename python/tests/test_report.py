"""`inspect`'s framework-free half (bnscope._report) with a made-up backend: the blame's arithmetic, the diagnosis, the
record and the text. Runs without torch or keras; so do the messages for a missing framework."""
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Collection, Dict, List, Optional, Tuple

import pytest

import logspec
from bnscope._report import Backend, Layer, Score, examine

PYTHON_DIR = Path(__file__).resolve().parents[1]


class Fake(Backend):
    """Three layers; forward order 2, 0, 1. The loss is 1 + the sum of the switched layers' `cost`, the accuracy 0.5
    minus 0.1 per switched layer. The running statistics are given, the data's are mean 1 and variance 2 everywhere;
    after a recalibration that changed them the loss is 0.5 and the accuracy 0.8 (+ 0.05 · the shuffle's seed)."""

    def __init__(self, running: List[Tuple[List[float], List[float]]], cost: Tuple[float, ...] = (0.1, 0.6, 0.3)):
        self.layers = [Layer(f"l{i}", 2, 1e-5) for i in range(3)]
        self.samples, self.batch_sizes, self.labels = 40, [16, 16, 8], [0, 1, 2]
        self.cost = cost
        self.running = running
        self.now = [(list(m), list(v)) for m, v in running]
        self.calls: List[Tuple[Tuple[int, ...], Optional[int]]] = []
        self.seeds: List[Optional[int]] = []

    def evaluate(self, batch_layers: Collection[int], limit: Optional[int] = None, logits: int = 0) -> Score:
        self.calls.append((tuple(sorted(batch_layers)), limit))
        recal = self.now[0] != self.running[0]
        if recal:
            return Score(0.5, 0.8 + 0.05 * (self.seeds[-1] or 0), [[1.0, 2.0]][:logits])
        loss = 1.0 + sum(self.cost[i] for i in batch_layers)
        return Score(loss, 0.5 - 0.1 * len(batch_layers), [[1.0, 2.0]][:logits])

    def order(self) -> List[int]:
        return [2, 0, 1]

    def min_n(self) -> Dict[int, int]:
        return {0: 16, 1: 4, 2: 64}

    def recalibrate(self, seed: Optional[int] = None) -> None:
        self.seeds.append(seed)
        self.now = [([1.0, 1.0], [2.0, 2.0]) for _ in range(3)]

    def stats(self) -> List[Tuple[List[float], List[float]]]:
        return [(list(m), list(v)) for m, v in self.now]

    def restore(self) -> None:
        self.now = [(list(m), list(v)) for m, v in self.running]


FIT = [([1.0, 1.0], [2.0, 2.0])] * 3
OFF = [([0.5, 1.0], [2.0, 2.0])] * 3


def run(backend: Fake, **kw: object) -> object:
    args = dict(source="torch", model="Fake", shuffles=3, blame=True, blame_samples=16, logits_cap=1, progress=False)
    args.update(kw)
    return examine(backend, **args)  # type: ignore[arg-type]


def test_blame_arithmetic_and_forward_order() -> None:
    b = Fake(FIT)
    r = run(b)
    assert [layer.name for layer in r.layers] == ["l2", "l0", "l1"]
    total = 0.1 + 0.6 + 0.3
    assert r.blame_running.loss == 1.0 and r.blame_batch.loss == pytest.approx(1.0 + total)
    alone = {layer.name: layer.alone.loss_share for layer in r.layers}
    assert alone == pytest.approx({"l0": 0.1 / total, "l1": 0.6 / total, "l2": 0.3 / total})
    prefix = [layer.prefix.loss_share for layer in r.layers]
    assert prefix == pytest.approx([0.3 / total, 0.4 / total, 1.0])
    assert r.blame_by == "acc"  # the accuracy moves by 0.3: three equal steps of the prefix curve
    assert len(r.blamed) == 2 and {n for n, _ in r.blamed} <= {"l0", "l1", "l2"}
    assert [share for _, share in r.blamed] == pytest.approx([1 / 3, 1 / 3])
    assert all(limit == 16 for layers, limit in b.calls[3:] if limit is not None)
    assert (((2,), 16) in b.calls) and (((0, 2), 16) in b.calls)  # prefixes in forward order
    assert r.layers[0].n == 64 and r.layers[2].n == 4


def test_blamed_layers_are_the_largest_steps_of_the_prefix_curve() -> None:
    b2 = Fake(FIT, cost=(0.0, 0.9, 0.1))
    b2.evaluate = lambda layers, limit=None, logits=0: Score(  # type: ignore[method-assign]
        1.0 + sum(b2.cost[i] for i in layers), 0.5, []
    )
    r2 = run(b2)
    assert r2.blame_by == "loss" and r2.blamed == [("l1", pytest.approx(0.9))]
    assert any("most of that gap is made at l1 (90 % of it)" in f for f in r2.findings)
    assert any(f == "Switched alone, l1 carries the most: 90 % of the gap." for f in r2.findings)


def test_nothing_to_blame_and_no_blame_pass() -> None:
    b = Fake(FIT, cost=(0.0, 0.0, 0.0))
    b.evaluate = lambda layers, limit=None, logits=0: Score(1.0, 0.5, [])  # type: ignore[method-assign]
    r = run(b)
    assert r.blame_by is None and r.blamed == [] and r.layers[0].alone.loss_share is None
    assert "blame_by" not in r.record() and r.record()["blame_samples"] == 16
    r = run(Fake(FIT), blame=False)
    assert r.blame_samples == 0 and all(layer.alone is None for layer in r.layers)


def test_recalibration_spread() -> None:
    b = Fake(OFF)
    r = run(b, shuffles=3)
    assert b.seeds == [None, 0, 1, 2]
    s = r.recalibration_spread
    assert s.shuffles == 3 and s.acc_min == pytest.approx(0.8) and s.acc_max == pytest.approx(0.9)
    assert s.acc_mean == pytest.approx(0.85) and s.loss_min == s.loss_max == 0.5
    assert any("depends on how the samples fall into batches: 80 % to 90 % (mean 85 %) over 3" in f for f in r.findings)
    one = Fake(OFF)
    one.batch_sizes = [40]
    r = run(one)
    assert r.recalibration_spread.shuffles == 0 and "one batch" in r.recalibration_spread.note


def test_diagnosis() -> None:
    start = [([0.0, 0.0], [1.0, 1.0])] * 3
    r = run(Fake(start))
    assert r.findings[0].startswith("The running statistics are still at their start")
    assert any(f.startswith("Recalibrating the statistics on this data (AdaBN) takes accuracy with running "
                            "statistics from 50 % to 80 % (batch statistics: 20 %)") for f in r.findings)
    r = run(Fake(FIT))
    assert r.findings[0].startswith("The running statistics fit this data")
    broken = [([float("nan"), 0.0], [1.0, 1.0]), ([1.0, 1.0], [0.0, 2.0]), ([1.0, 1.0], [2.0, 2.0])]
    r = run(Fake(broken))
    assert r.findings[0] == (
        "NaN or Inf in the running statistics of 1 layer(s), first l0: every evaluation with running statistics "
        "passes them on to the output."
    )
    assert any(f.startswith("1 channel(s) in 1 layer(s) have running variance 0 or less (first l1)") for f in r.findings)
    first_off = [([1.0, 1.0], [2.0, 2.0]), ([1.0, 1.0], [2.0, 2.0]), ([9.0, 9.0], [2.0, 2.0])]
    r = run(Fake(first_off))
    assert any(f.startswith("The first BatchNorm layer (l2) already sees inputs unlike") for f in r.findings)
    stale = [([1.0, 1.0], [2.0, 2.0]), ([5.0, 5.0], [2.0, 2.0]), ([1.0, 1.0], [2.0, 2.0])]
    r = run(Fake(stale))
    assert any(f.startswith("The running statistics of 1 of 3 layers are far from this data's (largest l1") for f in
               r.findings)


def test_record_follows_the_spec_and_text() -> None:
    r = run(Fake(OFF))
    rec = json.loads(r.to_json())
    run_record = {"type": "run", "schema": 1, "convention": "keras",
                  "bn_layers": [{"name": f"l{i}", "channels": 2} for i in range(3)]}
    logspec.check([run_record, rec, {"type": "end", "epochs": 0, "reason": "done"}])
    assert rec["eval_running"] == {"loss": 1.0, "acc": 0.5, "logits": [[1.0, 2.0]]}
    assert [b["name"] for b in rec["blame"]] == ["l2", "l0", "l1"]  # forward order
    assert [layer["name"] for layer in rec["layers"]] == ["l2", "l0", "l1"]  # equal gaps: forward order kept
    assert rec["layers"][1]["data_mean"] == [1.0, 1.0] and rec["layers"][1]["running_mean"] == [0.5, 1.0]
    assert rec["diagnosis"] == " ".join(rec["findings"]) and rec["labels"] == [0]
    assert "running_mean" not in r.record(arrays=False)["layers"][0]
    spec = (logspec.SPEC.read_text(encoding="utf-8").split("## `inspect`")[1].split("\n## ")[0])
    documented = set(re.findall(r"\w+", " ".join(re.findall(r"`([^`]*)`", spec))))
    assert set(rec) <= documented, set(rec) - documented
    for layer in rec["layers"]:
        assert set(layer) <= documented, set(layer) - documented
    assert set(rec["recalibration_spread"]) <= documented and set(rec["blame"][0]) <= documented
    assert set(rec["blame"][0]["alone"]) <= documented
    text = str(r)
    assert text.startswith("Fake on 40 samples (3 batches of up to 16)")
    assert "eval, recalibrated (AdaBN)" in text and "(3 shuffles:" in text and text.endswith("\n")


@pytest.mark.parametrize(
    "attr, module, message",
    [
        ("inspect", "torch", "bnscope.inspect needs PyTorch: pip install bnscope[torch]"),
        ("keras_inspect", "keras", "bnscope.keras_inspect needs Keras 3: pip install bnscope[keras]"),
        ("watch", "torch", "bnscope.watch needs PyTorch: pip install bnscope[torch]"),
    ],
)
def test_missing_framework_is_named(attr: str, module: str, message: str) -> None:
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "import bnscope\n"
        f"try:\n    bnscope.{attr}\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(PYTHON_DIR)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith(message), out.stdout


@pytest.mark.parametrize(
    "module, framework, message",
    [
        ("bnscope.lightning", "lightning pytorch_lightning",
         "bnscope.lightning needs PyTorch Lightning: pip install bnscope[lightning]"),
        ("bnscope.hf", "transformers", "bnscope.hf needs Hugging Face transformers: pip install bnscope[hf]"),
    ],
)
def test_missing_callback_framework_is_named(module: str, framework: str, message: str) -> None:
    code = (
        f"import sys; sys.modules.update(dict.fromkeys({framework.split()!r}))\n"
        f"try:\n    import {module}\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(PYTHON_DIR)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith(message), out.stdout


def test_blame_limit_avoids_a_last_batch_of_one() -> None:
    from bnscope._report import _blame_limit

    assert _blame_limit([16, 16, 16], 128) == 48
    assert _blame_limit([16, 16, 16], 17) == 16
    assert _blame_limit([16, 16, 16], 18) == 18
    assert _blame_limit([16, 16, 16], 16) == 16
    assert _blame_limit([16, 16], 1) == 1  # one sample asked for, one given (a first batch is not cut to nothing)
