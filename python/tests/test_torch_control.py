"""The control channel on PyTorch (docs/CONTROL.md): a plain training loop with only `watch(..., control=True)` and
`scope.epoch()`; commands appended to the file as the TUI does."""
import copy
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

torch = pytest.importorskip("torch")

import bnscope  # noqa: E402
import logspec  # noqa: E402
from test_control import send  # noqa: E402
from test_log import deadline  # noqa: E402
from test_torch import free_port, small  # noqa: E402
from torch import nn  # noqa: E402

BATCHES = [torch.randn(6, 3, 8, 8) * (1 + i % 3) + i % 2 for i in range(40)]
LABELS = torch.tensor([0, 1, 0, 1, 0, 1])


def norms(model: Any) -> List[Any]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def train(model: Any, scope: Any, steps: int, before: Optional[Callable[[int], None]] = None) -> None:
    """The user's loop: nothing of bnscope in it but `scope.epoch()` every 5 steps."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(steps):
        if before is not None:
            before(step)
        model.train()
        loss = nn.functional.cross_entropy(model(BATCHES[step]), LABELS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 5 == 4:
            scope.epoch(train={"loss": loss})


def events(path: Path) -> List[Dict[str, Any]]:
    records = logspec.read(path)
    logspec.check(records)
    return [r for r in records if r["type"] == "event"]


def test_the_run_record_names_the_channel(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    with bnscope.watch(small(), log, control=True, evaluate=lambda m: {}) as scope:
        assert scope.control is not None
    run = logspec.read(log)[0]
    assert run["control"] == {"path": str(tmp_path / "run.jsonl.control"), "pid": os.getpid(),
                              "host": run["control"]["host"], "recalibrate": False, "evaluate": True}
    with bnscope.watch(small(), log) as scope:  # control off: no control object, no pre-hook
        assert scope.control is None and not scope.model._forward_pre_hooks
    assert "control" not in logspec.read(log)[-2]


def test_momentum_changes_every_layer_at_the_stated_step(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    model = small()
    reference = copy.deepcopy(model)
    scope = bnscope.watch(model, log, control=True)
    train(model, scope, 10, lambda s: send(log, "cmd m-1 momentum 0.8") if s == 3 else None)
    scope.close()

    def by_hand(step: int) -> None:
        if step == 3:
            for m in norms(reference):
                m.momentum = 1 - 0.8

    train(reference, type("NoScope", (), {"epoch": lambda self, **k: None})(), 10, by_hand)
    for (k, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), k  # the same numbers as changing it by hand before step 3
    assert all(m.momentum == 1 - 0.8 for m in norms(model))
    ev = events(log)
    assert ev == [{"type": "event", "epoch": 0, "step": 3, "what": "momentum", "value": 0.8, "id": "m-1",
                   "source": "control"}]
    epochs = [r for r in logspec.read(log) if r["type"] == "epoch"]
    assert epochs[-1]["momentum"] == 0.8 and epochs[-1]["cumulative"] is False


def test_cumulative_on_and_off(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    model = small(0.3)
    model[2].momentum = 0.2
    seen: List[List[Any]] = []
    with bnscope.watch(model, log, control=True) as scope:
        model.register_forward_pre_hook(lambda m, a: seen.append([n.momentum for n in norms(m)]))
        train(model, scope, 8, lambda s: send(log, {2: "cmd u1 cumulative on", 5: "cmd u2 cumulative off"}[s])
              if s in (2, 5) else None)
    assert seen[1] == [0.3, 0.2, 0.3] and seen[2] == seen[4] == [None] * 3 and seen[5] == [0.3, 0.2, 0.3]
    assert [(e["step"], e["what"], e["value"]) for e in events(log)] == [(2, "cumulative", True),
                                                                          (5, "cumulative", False)]


def test_reset(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    model = small()
    at: Dict[str, Any] = {}
    def capture(m: Any, a: Any) -> None:
        at[len(at)] = copy.deepcopy(m.state_dict())

    with bnscope.watch(model, log, control=True) as scope:
        model.register_forward_pre_hook(capture)
        train(model, scope, 4, lambda s: send(log, "cmd r1 reset") if s == 2 else None)
    for m in (dict(model.named_modules())[n] for n in ("0", "2", "5")):
        assert int(m.num_batches_tracked) == 2  # reset before step 2: steps 2 and 3 counted
    state = at[2]
    assert all(torch.equal(state[f"{n}.running_mean"], torch.zeros_like(state[f"{n}.running_mean"])) and
               torch.equal(state[f"{n}.running_var"], torch.ones_like(state[f"{n}.running_var"])) and
               int(state[f"{n}.num_batches_tracked"]) == 0 for n in ("0", "2", "5"))
    assert [(e["step"], e["what"]) for e in events(log)] == [(2, "reset_stats")]


def test_recalibrate_is_exactly_update_bn(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    model = small()
    model.append(nn.Dropout(0.5))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(20, 3, 8, 8) * 2 + 1,
                                                                        torch.zeros(20)), batch_size=6)
    got: Dict[str, Any] = {}

    def before(step: int) -> None:
        if step == 3:
            model[0].eval()  # a frozen layer: its flag must survive
            got["expected"] = copy.deepcopy(model)
            got["momenta"] = [m.momentum for m in norms(model)]
            send(log, "cmd c1 recalibrate")

    def capture(m: Any, a: Any) -> None:
        if len(got) == 2 and torch.is_grad_enabled():  # the training forward, not recalibration's own
            got["state"] = copy.deepcopy(m.state_dict())
            got["flags"] = [x.training for x in m.modules()]

    with bnscope.watch(model, log, control=True, recalibrate=loader) as scope:
        model.register_forward_pre_hook(capture)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for step in range(5):
            before(step)
            if step != 3:
                model.train()
            loss = nn.functional.cross_entropy(model(BATCHES[step]), LABELS)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step == 3:
                assert not model[0].training and model[2].training and model[7].training
                model.train()
    expected = got["expected"]
    torch.manual_seed(5)
    torch.optim.swa_utils.update_bn(loader, expected)
    for key, value in expected.state_dict().items():
        if "running" in key or "num_batches" in key:
            assert torch.equal(got["state"][key], value), key
    assert got["flags"] == [True, False, True, True, True, True, True, True, True]
    assert [m.momentum for m in norms(model)] == got["momenta"]
    assert [(e["step"], e["what"], e["value"]) for e in events(log)] == [(3, "recalibrate", "4 batches")]


def test_recalibrate_over_one_batch_says_1_batch(tmp_path: Path) -> None:
    """#23: the event's words: "1 batch", not "1 batches"."""
    log = tmp_path / "run.jsonl"
    model = small()
    loader = [torch.randn(6, 3, 8, 8)]
    with bnscope.watch(model, log, control=True, recalibrate=loader) as scope:
        train(model, scope, 3, lambda s: send(log, "cmd c1 recalibrate") if s == 1 else None)
    assert [(e["what"], e["value"]) for e in events(log)] == [("recalibrate", "1 batch")]


def test_recalibrate_that_fails_changes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    model = small()
    bad = [torch.randn(4, 3, 8, 8), torch.randn(4, 5, 8, 8)]  # the second batch has the wrong channels
    with bnscope.watch(model, log, control=True, recalibrate=bad) as scope:
        train(model, scope, 2)
        before = copy.deepcopy(model.state_dict())
        send(log, "cmd c1 recalibrate")
        model.eval()
        scope.control.boundary()  # the boundary alone, as at the next training forward
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    ev = events(log)
    assert ev[0]["what"] == "refused" and ev[0]["reason"].startswith("RuntimeError") and ev[0]["id"] == "c1"
    assert not model.training


def test_evaluate_runs_both_ways_and_updates_nothing(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    model = small()
    x, y = torch.randn(8, 3, 8, 8) + 3, torch.tensor([0, 1] * 4)
    modes: List[Any] = []

    def evaluate(m: Any) -> Dict[str, Any]:
        modes.append((m.training, m[0].training, torch.is_grad_enabled()))
        out = m(x)
        return {"loss": nn.functional.cross_entropy(out, y), "acc": (out.argmax(1) == y).float().mean()}

    with bnscope.watch(model, log, control=True, evaluate=evaluate) as scope:
        train(model, scope, 3)
        state = copy.deepcopy(model.state_dict())
        model.eval()
        with torch.no_grad():
            running = float(nn.functional.cross_entropy(model(x), y))
        with scope.batch_eval():
            batch = float(nn.functional.cross_entropy(model(x), y))
        model.train()
        dropout = nn.Dropout()
        model.append(dropout)
        dropout.eval()  # a module the user keeps in eval mode
        send(log, "cmd e1 evaluate")
        assert scope.control is not None
        scope.control.boundary()  # what the next training forward's pre-hook does
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # nothing updated
        assert model.training and model[0].training and not dropout.training  # every flag as it was
    assert modes == [(False, False, False), (False, True, False)]
    ev = events(log)[0]
    assert ev["what"] == "evaluate" and ev["step"] == 3 and ev["id"] == "e1"
    assert ev["eval_running"]["loss"] == pytest.approx(running, rel=1e-6)
    assert ev["eval_batch"]["loss"] == pytest.approx(batch, rel=1e-6)


def test_pause_step_resume_in_a_plain_loop(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    model = small()
    times: List[float] = []
    reached = [threading.Event() for _ in range(8)]
    sent: Dict[str, float] = {}

    def writer() -> None:
        for step, line in ((2, "cmd s1 step"), (3, "cmd r1 resume")):
            reached[step].wait(20)  # the loop is at (or in) step `step`'s boundary
            time.sleep(0.4)
            sent[line] = time.monotonic()
            send(log, line)

    def before(step: int) -> None:
        times.append(time.monotonic())
        reached[step].set()
        if step == 2:
            send(log, "cmd p1 pause")
            threading.Thread(target=writer, daemon=True).start()

    with deadline(60):
        with bnscope.watch(model, log, control=True) as scope:
            train(model, scope, 6, before)
    # Step 3 began only after the step command, step 4 only after the resume: the loop was blocked at 2 and at 3.
    assert times[3] >= sent["cmd s1 step"] and times[4] >= sent["cmd r1 resume"], (times, sent)
    assert [(e["step"], e["what"]) for e in events(log)] == [(2, "pause"), (2, "step"), (3, "resume")]


def test_a_refused_channel_leaves_the_training_alone(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    (tmp_path / "run.jsonl.control").symlink_to("/etc/passwd")
    model = small()
    with bnscope.watch(model, log, control=True) as scope:
        train(model, scope, 3)
    assert logspec.read(log)[0]["control"] == {"refused": f"{tmp_path}/run.jsonl.control is a symlink"}
    assert events(log) == []


def test_ddp_two_gloo_ranks_apply_at_the_same_step(tmp_path: Path) -> None:
    import dist_worker

    mp = pytest.importorskip("torch.multiprocessing")
    path = str(tmp_path / "ddp.jsonl")
    spawned = mp.spawn(dist_worker.train_control, args=(2, f"tcp://127.0.0.1:{free_port()}", path), nprocs=2,
                       join=False)
    limit = time.monotonic() + 180
    while not spawned.join(timeout=1):  # raises if a rank failed
        if time.monotonic() > limit:
            for proc in spawned.processes:
                proc.kill()
            pytest.fail("the two ranks did not finish in 180 s")
    for rank in (0, 1):
        ev = events(tmp_path / f"ddp.rank{rank}.jsonl")
        assert [(e["step"], e["what"], e["id"]) for e in ev] == [(4, "pause", "p1"), (4, "resume", "r1"),
                                                                  (8, "momentum", "m1")], rank
        assert not any("late" in e for e in ev)
        seen = json.loads((tmp_path / f"ddp.jsonl.momenta{rank}.json").read_text())
        assert seen == [0.1] * 8 + [0.5, 0.5], rank
    text = (tmp_path / "ddp.jsonl.control").read_text()
    assert "at p1 4\n" in text and "at r1 4\n" in text and "at m1 8\n" in text


def test_a_deep_copy_of_the_watched_model_is_not_watched(tmp_path: Path) -> None:
    """EMA / AveragedModel deep-copy the model with its hooks: the copy's forwards are nobody's steps, and the copy
    going away closes none of the original's files."""
    import gc

    log = tmp_path / "run.jsonl"
    model = small()
    with bnscope.watch(model, log, control=True) as scope:
        train(model, scope, 2)
        twin = copy.deepcopy(model)
        ema = torch.optim.swa_utils.AveragedModel(model)
        twin.train()
        twin(BATCHES[0])
        ema.train()
        ema(BATCHES[1])
        assert scope.control is not None and scope.control.step == 2
        del twin, ema
        gc.collect()
        send(log, "cmd m1 momentum 0.5")
        train(model, scope, 2)
    assert [(e["step"], e["what"]) for e in events(log)] == [(2, "momentum")]
