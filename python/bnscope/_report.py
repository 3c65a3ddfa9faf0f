"""`inspect`'s framework-free half: the passes it makes (through a `Backend` that the PyTorch and Keras sides
implement), the `Report` with its log record (`inspect`, docs/LOG_FORMAT.md) and text, and the diagnosis in words.

The model is evaluated with its running statistics, with each batch's own statistics, and after a recalibration on
the data (running statistics reset, then the cumulative average over the batches, as
`torch.optim.swa_utils.update_bn`, with only the BatchNorm layers in training mode). The recalibrated statistics
are "the data's statistics" each layer's running ones are compared with. The blame pass switches one layer (`alone`)
or the first k layers in forward order (`prefix`) to batch statistics and measures what that does.
"""
from __future__ import annotations

import abc
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Dict, List, Optional, Sequence, Tuple

from ._log import Record, clean, gap, short

FAR = 0.5
"""A gap (relative L2 distance) from which the running statistics no longer describe the data (as Rust `inspect`)."""
ACC_MARGIN = 0.1
"""Accuracy differences smaller than this are not called a difference (as Rust `inspect`)."""
LOSS_MARGIN = 0.01
"""A relative loss difference from which the blame measures the loss (when the accuracy moves less than ACC_MARGIN)."""
SPREAD_MARGIN = 0.02
"""A recalibration spread (max − min accuracy over the shuffles) from which the diagnosis mentions it."""
NAMED = 3
"""At most this many layers are named as carrying the gap."""


@dataclass
class Score:
    """One evaluation over the data: mean loss and accuracy (or the user's metric) over the samples, and the logits of
    the first samples (at most the report's `logits_cap`, only for `(N, C)` outputs). `error` says why there are no
    numbers (e.g. one value per channel in training mode)."""

    loss: Optional[float] = None
    acc: Optional[float] = None
    logits: List[List[float]] = field(default_factory=list, repr=False)
    error: Optional[str] = None

    def record(self) -> Record:
        out: Record = {"loss": self.loss, "acc": self.acc}
        if self.logits:
            out["logits"] = [short(row) for row in self.logits]
        if self.error is not None:
            out["error"] = self.error
        return out


class Sums:
    """Accumulates per-batch means weighted by the batch size."""

    def __init__(self) -> None:
        self.n = 0
        self.loss = 0.0
        self.acc = 0.0
        self.has_loss = True
        self.has_acc = True
        self.logits: List[List[float]] = []

    def add(self, n: int, loss: Optional[float], acc: Optional[float]) -> None:
        self.n += n
        if loss is None:
            self.has_loss = False
        else:
            self.loss += n * loss
        if acc is None:
            self.has_acc = False
        else:
            self.acc += n * acc

    def score(self) -> Score:
        if self.n == 0:
            return Score(error="no samples")
        return Score(
            self.loss / self.n if self.has_loss else None, self.acc / self.n if self.has_acc else None, self.logits
        )


@dataclass
class Blame:
    """Loss and accuracy with some layers on batch statistics and the rest on running statistics, and the share of
    the gap between all-running (0) and all-batch (1) on the blame samples that this closes (None where the two do not
    differ). Rust `inspect --json`'s `BlameFigure`."""

    loss: Optional[float]
    acc: Optional[float]
    loss_share: Optional[float]
    acc_share: Optional[float]

    def record(self) -> Record:
        return {"loss": self.loss, "acc": self.acc, "loss_share": self.loss_share, "acc_share": self.acc_share}


@dataclass
class Layer:
    """One BatchNorm layer: its running statistics against the data's (the recalibrated ones) and its blame.
    `reached` False: no forward on the data went through it (no gaps, no blame). `tracks` False: it has no running
    statistics (`track_running_stats=False`) or cannot be switched (a frozen Keras layer), so it has no gap or blame."""

    name: str
    channels: int
    eps: float
    dtype: Optional[str] = None
    reached: bool = True
    tracks: bool = True
    n: Optional[int] = None
    running_mean: List[float] = field(default_factory=list, repr=False)
    running_var: List[float] = field(default_factory=list, repr=False)
    data_mean: List[float] = field(default_factory=list, repr=False)
    data_var: List[float] = field(default_factory=list, repr=False)
    mean_gap: Optional[float] = None
    var_gap: Optional[float] = None
    alone: Optional[Blame] = None
    prefix: Optional[Blame] = None

    def worst(self) -> float:
        """The larger gap; NaN/Inf sort first (as Rust `inspect`); no gap last."""
        if self.mean_gap is None or self.var_gap is None:
            return -1.0
        v = max(self.mean_gap, self.var_gap)
        return math.inf if not math.isfinite(self.mean_gap) or not math.isfinite(self.var_gap) else v

    def record(self, arrays: bool) -> Record:
        out: Record = {"name": self.name, "channels": self.channels}
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if not self.reached:
            out["reached"] = False
        if not self.tracks:
            out["tracks"] = False
        if self.n is not None:
            out["n"] = self.n
        if self.mean_gap is not None:
            out["mean_gap"], out["var_gap"] = self.mean_gap, self.var_gap
        if arrays:
            for key in ("running_mean", "running_var", "data_mean", "data_var"):
                values: List[float] = getattr(self, key)
                if values:
                    out[key] = short(values)
        return out


@dataclass
class Spread:
    """The recalibrated evaluation over `shuffles` random splits of the samples into batches of the same sizes."""

    shuffles: int
    acc_min: Optional[float] = None
    acc_max: Optional[float] = None
    acc_mean: Optional[float] = None
    loss_min: Optional[float] = None
    loss_max: Optional[float] = None
    loss_mean: Optional[float] = None
    note: Optional[str] = None

    def record(self) -> Record:
        out: Record = {"shuffles": self.shuffles}
        for key in ("acc_min", "acc_max", "acc_mean", "loss_min", "loss_max", "loss_mean", "note"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Report:
    """What `bnscope.inspect` / `bnscope.keras_inspect` found. `str(report)` is the readable report, `to_json()` the
    `inspect` log record (docs/LOG_FORMAT.md) as one JSON line."""

    source: str
    model: str
    samples: int
    batches: int
    batch_size: int
    eval_running: Score
    eval_batch: Score
    recalibrated: Score
    recalibration_spread: Optional[Spread]
    layers: List[Layer]
    """Every BatchNorm layer in forward order (the order of their first call; unreached layers last). The record
    lists them largest gap first (as Rust `inspect --json`), and their blame in forward order under `blame`."""
    findings: List[str]
    blame_samples: int
    blame_by: Optional[str] = None
    """`"acc"` or `"loss"`: what the diagnosis's blame sentences measure (None: no gap to blame, or no blame pass)."""
    blamed: List[Tuple[str, float]] = field(default_factory=list)
    """The layers the diagnosis names, each with its step of the prefix curve (share of the gap), largest first."""
    blame_running: Optional[Score] = None
    """All layers on running statistics, on the blame samples (the 0 of the shares)."""
    blame_batch: Optional[Score] = None
    """All layers on batch statistics, on the blame samples (the 1 of the shares)."""
    logits_cap: int = 0
    labels: List[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def diagnosis(self) -> str:
        """The findings as one paragraph (as Rust `inspect --json`'s `diagnosis`)."""
        return " ".join(self.findings)

    def record(self, arrays: bool = True) -> Record:
        """The `inspect` log record (docs/LOG_FORMAT.md)."""
        rec: Record = {
            "type": "inspect",
            "source": self.source,
            "model": self.model,
            "samples": self.samples,
            "batches": self.batches,
            "batch_size": self.batch_size,
            "recalibration": "cumulative",
            "eval_running": self.eval_running.record(),
            "eval_batch": self.eval_batch.record(),
            "recalibrated": self.recalibrated.record(),
        }
        if self.recalibration_spread is not None:
            rec["recalibration_spread"] = self.recalibration_spread.record()
        rec["blame_samples"] = self.blame_samples
        blame = [
            {"name": x.name, "alone": x.alone.record(), "prefix": x.prefix.record()}
            for x in self.layers
            if x.alone is not None and x.prefix is not None
        ]
        if blame:
            rec["blame"] = blame
        if self.blame_running is not None and self.blame_batch is not None:
            rec["blame_running"], rec["blame_batch"] = self.blame_running.record(), self.blame_batch.record()
        if self.blame_by is not None:
            rec["blame_by"] = self.blame_by
            rec["blamed"] = [{"name": n, "share": s} for n, s in self.blamed]
        rec["logits_cap"] = self.logits_cap
        if self.labels:
            rec["labels"] = self.labels
        rec["layers"] = [layer.record(arrays) for layer in sorted(self.layers, key=lambda x: -x.worst())]
        rec["findings"] = list(self.findings)
        rec["diagnosis"] = self.diagnosis
        rec["seconds"] = round(self.seconds, 3)
        return rec

    def to_json(self, arrays: bool = True) -> str:
        """The `inspect` record as one line of JSON (non-finite numbers as `null`)."""
        return json.dumps(clean(self.record(arrays)), allow_nan=False, separators=(",", ":"))

    def __str__(self) -> str:
        return text(self)


# --- the passes ----------------------------------------------------------------------------------------------------


class Backend(abc.ABC):
    """What `examine` needs of a framework. Layer indices refer to `layers` (the framework's BatchNorm layers)."""

    layers: List[Layer]
    samples: int
    batch_sizes: List[int]
    labels: List[int]

    @abc.abstractmethod
    def evaluate(self, batch_layers: Collection[int], limit: Optional[int] = None, logits: int = 0) -> Score:
        """Evaluates the first `limit` samples (all: None) with the layers in `batch_layers` on each batch's own
        statistics and every other layer on its running statistics, nothing updated, no dropout. Keeps the logits of
        the first `logits` samples. Fills `order` and `n` as it goes."""

    @abc.abstractmethod
    def order(self) -> List[int]:
        """The layers in the order of their first call in the forwards so far."""

    @abc.abstractmethod
    def min_n(self) -> Dict[int, int]:
        """The fewest values per channel each layer saw in one batch."""

    @abc.abstractmethod
    def recalibrate(self, seed: Optional[int] = None) -> None:
        """Replaces the running statistics with the data's: reset, then the cumulative average over the batches (over
        a random re-split of the samples into batches of the same sizes with `seed`)."""

    @abc.abstractmethod
    def stats(self) -> List[Tuple[List[float], List[float]]]:
        """Every layer's running mean and variance now (empty lists where it has none)."""

    @abc.abstractmethod
    def restore(self) -> None:
        """Puts back the running statistics the model came with."""

    def can_shuffle(self) -> Optional[str]:
        """None when `recalibrate(seed)` can re-split the samples, else why not."""
        return None

    def nonfinite_weight(self) -> Optional[str]:
        """The first parameter with NaN/Inf (not a running statistic), or None."""
        return None

    def tracked(self) -> Optional[int]:
        """Updates behind the running statistics (PyTorch `num_batches_tracked`), when known."""
        return None


Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _share(value: Optional[float], zero: Optional[float], one: Optional[float]) -> Optional[float]:
    """How much of the gap from `zero` (all running) to `one` (all batch) `value` closes; None (as Rust `inspect`'s
    NaN) where the two ends agree to 1e-6."""
    if value is None or zero is None or one is None:
        return None
    d = one - zero
    if not math.isfinite(d) or abs(d) < 1e-6 or not math.isfinite(value):
        return None
    return (value - zero) / d


def _blame(s: Score, zero: Score, one: Score) -> Blame:
    return Blame(s.loss, s.acc, _share(s.loss, zero.loss, one.loss), _share(s.acc, zero.acc, one.acc))


def examine(
    backend: Backend,
    *,
    source: str,
    model: str,
    shuffles: int,
    blame: bool,
    blame_samples: int,
    logits_cap: int,
    progress: Optional[bool],
    say: Progress = _stderr,
) -> Report:
    """Runs every pass of `inspect` through `backend` and builds the report. The backend's running statistics are
    restored after each recalibration (the caller restores everything else)."""
    t0 = time.perf_counter()
    layers = backend.layers
    running = backend.evaluate((), logits=logits_cap)
    order = backend.order()
    switchable = [i for i in order if layers[i].tracks]
    every = [i for i, layer in enumerate(layers) if layer.tracks]
    batch = _guarded(lambda: backend.evaluate(every, logits=logits_cap))
    before = backend.stats()
    try:
        recal_error: Optional[str] = None
        try:
            backend.recalibrate()
        except (RuntimeError, ValueError) as e:
            recal_error = str(e)
        after = backend.stats()
        recalibrated = Score(error=recal_error) if recal_error else backend.evaluate((), logits=logits_cap)
    finally:
        backend.restore()
    n = backend.min_n()
    for i, layer in enumerate(layers):
        layer.reached = i in n
        layer.n = n.get(i)
        layer.running_mean, layer.running_var = before[i]
        if layer.reached and layer.tracks and recal_error is None:
            layer.data_mean, layer.data_var = after[i]
            layer.mean_gap = gap(layer.running_mean, layer.data_mean)
            layer.var_gap = gap(layer.running_var, layer.data_var)
    spread = _spread(backend, shuffles, recal_error) if shuffles > 0 else None
    report = Report(
        source=source,
        model=model,
        samples=backend.samples,
        batches=len(backend.batch_sizes),
        batch_size=max(backend.batch_sizes, default=0),
        eval_running=running,
        eval_batch=batch,
        recalibrated=recalibrated,
        recalibration_spread=spread,
        layers=[layers[i] for i in order] + [layer for i, layer in enumerate(layers) if i not in order],
        findings=[],
        blame_samples=0,
        logits_cap=logits_cap,
        labels=backend.labels[:logits_cap],
    )
    blame_error: Optional[str] = None
    if blame and switchable and batch.error is None:
        report.blame_samples = _blame_limit(backend.batch_sizes, blame_samples)
        try:
            _blame_pass(backend, report, switchable, t0, progress, say)
        except (RuntimeError, ValueError) as e:
            blame_error = str(e)
            report.blame_by, report.blamed = None, []
    report.findings = findings(report, backend)
    if blame_error is not None:
        report.findings.append(f"The blame pass failed: {blame_error}")
    report.seconds = time.perf_counter() - t0
    return report


def _blame_limit(batch_sizes: Sequence[int], wanted: int) -> int:
    """`wanted` samples, at most all, one fewer where that would leave a last batch of one sample (which training
    mode refuses where a layer then sees one value per channel)."""
    limit = min(max(wanted, 1), sum(batch_sizes))
    done = 0
    for size in batch_sizes:
        if limit - done == 1 and done > 0:
            return limit - 1
        if limit - done <= size:
            break
        done += size
    return limit


def _guarded(run: Callable[[], Score]) -> Score:
    try:
        return run()
    except (RuntimeError, ValueError) as e:  # e.g. "Expected more than 1 value per channel when training"
        return Score(error=str(e))


def _spread(backend: Backend, shuffles: int, recal_error: Optional[str]) -> Spread:
    out = Spread(shuffles)
    why = recal_error or backend.can_shuffle()
    if why is None and len(backend.batch_sizes) < 2:
        why = "one batch: the recalibration does not depend on a split"
    if why is not None:
        out.shuffles, out.note = 0, why
        return out
    scores: List[Score] = []
    for seed in range(shuffles):
        try:
            backend.recalibrate(seed)
            scores.append(backend.evaluate(()))
        except (RuntimeError, ValueError) as e:
            out.shuffles, out.note = len(scores), f"shuffle {seed}: {e}"
            break
        finally:
            backend.restore()
    for key in ("acc", "loss"):
        values = [getattr(s, key) for s in scores]
        if values and all(v is not None for v in values):
            setattr(out, f"{key}_min", min(values))
            setattr(out, f"{key}_max", max(values))
            setattr(out, f"{key}_mean", sum(values) / len(values))
    return out


def _blame_pass(
    backend: Backend, report: Report, switchable: List[int], t0: float, progress: Optional[bool], say: Progress
) -> None:
    limit = report.blame_samples
    zero = backend.evaluate((), limit)
    one = backend.evaluate(switchable, limit)
    by = _blame_by(zero, one)
    report.blame_by, report.blame_running, report.blame_batch = by, zero, one
    last_said = time.perf_counter()
    total = len(switchable)
    for k, i in enumerate(switchable):
        layer = backend.layers[i]
        layer.alone = _blame(backend.evaluate((i,), limit), zero, one)
        prefix = one if k == total - 1 else backend.evaluate(switchable[: k + 1], limit)
        layer.prefix = _blame(prefix, zero, one)
        now = time.perf_counter()
        if progress or (progress is None and now - t0 > 10.0 and now - last_said > 5.0):
            say(f"bnscope.inspect: blame {k + 1}/{total} layers ({now - t0:.0f} s)")
            last_said = now
    if by is None:
        return
    steps: List[Tuple[str, float]] = []
    previous = 0.0
    for i in switchable:
        b = backend.layers[i].prefix
        value = getattr(b, f"{by}_share") if b is not None else None
        if value is None:
            continue
        steps.append((backend.layers[i].name, value - previous))
        previous = value
    steps.sort(key=lambda s: -s[1])
    named: List[Tuple[str, float]] = []
    for name, step in steps:
        if step <= 0 or len(named) == NAMED:
            break
        named.append((name, step))
        if sum(s for _, s in named) >= 0.5:
            break
    report.blamed = named


def _blame_by(zero: Score, one: Score) -> Optional[str]:
    """What the blame is measured in: accuracy where it differs enough, else the loss where it does."""
    if zero.acc is not None and one.acc is not None and abs(one.acc - zero.acc) >= ACC_MARGIN:
        return "acc"
    if zero.loss is not None and one.loss is not None and math.isfinite(zero.loss) and math.isfinite(one.loss):
        if abs(one.loss - zero.loss) >= LOSS_MARGIN * max(abs(zero.loss), abs(one.loss), 1e-6):
            return "loss"
    return None


# --- the diagnosis -------------------------------------------------------------------------------------------------


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100.0 * x:.0f} %"


def _finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def findings(r: Report, backend: Backend) -> List[str]:
    """The diagnosis, most important first (the sentences of Rust `inspect`, plus the blame and the spread)."""
    out: List[str] = []
    tracked = [layer for layer in r.layers if layer.tracks and layer.running_mean]
    bad = [layer.name for layer in tracked if not (_finite(layer.running_mean) and _finite(layer.running_var))]
    if bad:
        out.append(
            f"NaN or Inf in the running statistics of {len(bad)} layer(s), first {bad[0]}: every evaluation with "
            "running statistics passes them on to the output."
        )
    weight = backend.nonfinite_weight()
    if weight is not None:
        out.append(f"NaN or Inf in {weight}: the weights themselves are broken.")
    at_start = bool(tracked) and all(
        all(v == 0.0 for v in layer.running_mean) and all(v == 1.0 for v in layer.running_var) for layer in tracked
    )
    if at_start:
        t = backend.tracked()
        seen = f" (num_batches_tracked {t})" if t is not None else ""
        out.append(
            f"The running statistics are still at their start (mean 0, variance 1{seen}): they were never updated, so "
            "evaluation normalises with numbers that describe nothing. Recalibrate them on your data "
            "(torch.optim.swa_utils.update_bn, or a few training-mode forwards without optimizer steps)."
        )
    zero = [(layer, sum(1 for v in layer.running_var if v <= 0.0)) for layer in tracked]
    zero = [(layer, k) for layer, k in zero if k > 0]
    if zero:
        first = zero[0][0]
        out.append(
            f"{sum(k for _, k in zero)} channel(s) in {len(zero)} layer(s) have running variance 0 or less (first "
            f"{first.name}): such a channel is scaled by 1/√ε = {1.0 / math.sqrt(first.eps):.0f} as soon as "
            "anything reaches it."
        )
    single = next((layer for layer in r.layers if layer.n == 1), None)
    if single is not None:
        out.append(
            f"{single.name} sees one value per channel in a batch: its batch statistics are degenerate (PyTorch "
            'refuses to train it: "Expected more than 1 value per channel"); use larger batches or inputs.'
        )
    gapped = [layer for layer in r.layers if layer.mean_gap is not None and layer.var_gap is not None]
    far = [layer for layer in gapped if layer.worst() > FAR]
    first_layer = gapped[0] if gapped and gapped[0] is r.layers[0] else None
    if not at_start and first_layer is not None and first_layer.worst() > FAR:
        out.append(
            f"The first BatchNorm layer ({first_layer.name}) already sees inputs unlike its running statistics (mean "
            f"{_pct(first_layer.mean_gap)} off, variance {_pct(first_layer.var_gap)} off): the preprocessing or the "
            "kind of inputs differs from what the model was trained on, and every later layer inherits it."
        )
    elif not at_start and far:
        worst = max(far, key=lambda layer: layer.worst())
        out.append(
            f"The running statistics of {len(far)} of {len(gapped)} layers are far from this data's (largest "
            f"{worst.name}: mean {_pct(worst.mean_gap)} off, variance {_pct(worst.var_gap)} off) while the first "
            "layer's fit: stale or unconverged statistics (too few updates at a high momentum, or weights that "
            "changed after the statistics were taken)."
        )
    run, bat, rec = r.eval_running.acc, r.eval_batch.acc, r.recalibrated.acc
    if run is not None and rec is not None and rec - run >= ACC_MARGIN:
        out.append(
            f"Recalibrating the statistics on this data (AdaBN) takes accuracy with running statistics from "
            f"{_pct(run)} to {_pct(rec)} (batch statistics: {_pct(bat)}): the statistics, not the weights, are what "
            "is wrong."
        )
    elif run is not None and bat is not None and bat - run >= ACC_MARGIN:
        out.append(
            f"Evaluation with batch statistics scores {_pct(bat)} against {_pct(run)} with running statistics, and a "
            f"recalibration {_pct(rec)}: the batch statistics of these batches differ from the data set's as a whole."
        )
    elif not out and run is not None and bat is not None and rec is not None:
        out.append(
            f"The running statistics fit this data: evaluation with them ({_pct(run)}) agrees with batch statistics "
            f"({_pct(bat)}) and with a recalibration ({_pct(rec)})."
        )
    if r.eval_batch.error is not None:
        out.append(f"Evaluation with batch statistics failed: {r.eval_batch.error}")
    if r.recalibrated.error is not None:
        out.append(f"The recalibration failed: {r.recalibrated.error}")
    out.extend(_blame_findings(r))
    s = r.recalibration_spread
    if s is not None and s.acc_min is not None and s.acc_max is not None and s.acc_max - s.acc_min >= SPREAD_MARGIN:
        out.append(
            f"The recalibrated accuracy depends on how the samples fall into batches: {_pct(s.acc_min)} to "
            f"{_pct(s.acc_max)} (mean {_pct(s.acc_mean)}) over {s.shuffles} random splits; the figure above is one "
            "of them. More data per recalibration batch narrows it."
        )
    return out


def _blame_findings(r: Report) -> List[str]:
    if not r.blamed or r.blame_by is None:
        return []
    by = r.blame_by
    what = "accuracy" if by == "acc" else "loss"

    def fmt(v: Optional[float]) -> str:
        return _pct(v) if by == "acc" else ("n/a" if v is None else f"{v:.4g}")

    zero = fmt(getattr(r.blame_running, by)) if r.blame_running else "n/a"
    one = fmt(getattr(r.blame_batch, by)) if r.blame_batch else "n/a"
    named = ", ".join(f"{name} ({_pct(step)} of it)" for name, step in r.blamed)
    out = [
        f"On {r.blame_samples} samples, switching the layers to batch statistics one after another in forward order, "
        f"the {what} moves from {zero} (all running) to {one} (all batch); most of that gap "
        f"is made at {named}."
    ]
    alone = [layer for layer in r.layers if layer.alone is not None and getattr(layer.alone, f"{by}_share") is not None]
    if alone:
        top = max(alone, key=lambda layer: float(getattr(layer.alone, f"{by}_share")))
        frac = getattr(top.alone, f"{by}_share")
        if frac > 0:
            out.append(f"Switched alone, {top.name} carries the most: {_pct(frac)} of the gap.")
    return out


# --- the text ------------------------------------------------------------------------------------------------------

SHOWN_LAYERS = 12


def _num(v: Optional[float], spec: str) -> str:
    return "n/a" if v is None or not math.isfinite(v) else format(v, spec)


def text(r: Report) -> str:
    """The report as text, ending in a newline (the layout of Rust `bnscope inspect`)."""
    lines = [f"{r.model} on {r.samples} samples ({r.batches} batches of up to {r.batch_size})", ""]
    lines.append("                               loss     acc")
    for what, s in (
        ("eval, running statistics", r.eval_running),
        ("eval, batch statistics", r.eval_batch),
        ("eval, recalibrated (AdaBN)", r.recalibrated),
    ):
        acc = "  n/a" if s.acc is None else f"{100.0 * s.acc:5.1f} %"
        row = f"  {what:<27} {_num(s.loss, '>7.4f'):>7}  {acc}"
        sp = r.recalibration_spread
        if s is r.recalibrated and sp is not None and sp.acc_min is not None and sp.acc_max is not None:
            row += f"   ({sp.shuffles} shuffles: {100 * sp.acc_min:.1f}–{100 * sp.acc_max:.1f} %)"
        if s.error:
            row += f"   ({s.error})"
        lines.append(row)
    lines.append("")
    shown = sorted((layer for layer in r.layers if layer.mean_gap is not None), key=lambda x: -x.worst())
    lines.append("BatchNorm layers, running statistics vs this data's (relative L2 gap), largest first:")
    width = max([len(layer.name) for layer in shown] + [5])
    head = f"  {'layer':<{width}}  mean gap   var gap"
    blame = r.blame_by
    if blame is not None:
        head += f"   alone   prefix  ({'accuracy' if blame == 'acc' else 'loss'} share of the gap)"
    lines.append(head)
    for layer in shown[:SHOWN_LAYERS]:
        row = f"  {layer.name:<{width}}  {_gap(layer.mean_gap):>8}  {_gap(layer.var_gap):>8}"
        if blame is not None:
            a = getattr(layer.alone, f"{blame}_share") if layer.alone else None
            p = getattr(layer.prefix, f"{blame}_share") if layer.prefix else None
            row += f"  {_pct(a):>6}  {_pct(p):>7}"
        lines.append(row)
    if len(shown) > SHOWN_LAYERS:
        lines.append(f"  … {len(shown) - SHOWN_LAYERS} more (to_json() lists them all)")
    if r.blame_samples:
        lines.append(f"  (blame measured on {r.blame_samples} samples)")
    lines.append("")
    lines.append("Diagnosis:")
    lines.extend(f"  • {f}" for f in r.findings)
    return "\n".join(lines) + "\n"


def _gap(v: Optional[float]) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if math.isfinite(v) else "NaN/Inf")
