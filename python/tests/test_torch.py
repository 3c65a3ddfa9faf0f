"""bnscope.watch on PyTorch models (CPU)."""
import os
import socket
from pathlib import Path
from typing import Any, Dict, List

import pytest

torch = pytest.importorskip("torch")

import bnscope  # noqa: E402
import logspec  # noqa: E402
from torch import nn  # noqa: E402


def small(momentum: Any = 0.1) -> Any:
    """BatchNorm2d on the input, conv, BatchNorm2d, flatten, BatchNorm1d, linear."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.BatchNorm2d(3, momentum=momentum), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=momentum),
        nn.ReLU(), nn.Flatten(), nn.BatchNorm1d(4 * 6 * 6, momentum=momentum), nn.Linear(4 * 6 * 6, 2),
    )


def layer(records: List[Dict[str, Any]], name: str, kind: str = "bn") -> Dict[str, Any]:
    bn = [r for r in records if r["type"] == kind][-1]
    return next(entry for entry in bn["layers"] if entry["name"] == name)


def test_resnet18_has_20_bn_layers_named_as_named_modules(tmp_path: Path) -> None:
    tv = pytest.importorskip("torchvision")
    model = tv.models.resnet18(num_classes=3)
    with bnscope.watch(model, tmp_path / "r.jsonl") as scope:
        names = [n for n, _ in scope.layers]
    expected = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(names) == 20 and names == expected
    assert names[:3] == ["bn1", "layer1.0.bn1", "layer1.0.bn2"] and "layer4.0.downsample.1" in names
    run = logspec.read(tmp_path / "r.jsonl")[0]
    assert [entry["name"] for entry in run["bn_layers"]] == names
    assert sum(entry["channels"] for entry in run["bn_layers"]) == 4800


def test_log_follows_the_spec(tmp_path: Path) -> None:
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.resnet18(num_classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    with bnscope.watch(model, tmp_path / "r.jsonl", info={"model": "resnet18", "seed": 0}) as scope:
        for _ in range(2):
            model.train()
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                running = (model(x).argmax(1) == y).float().mean()
            with scope.batch_eval():
                batch = (model(x).argmax(1) == y).float().mean()
            scope.epoch(train={"loss": loss}, eval_running={"acc": running}, eval_batch={"acc": batch})
        scope.event("momentum", 0.9)
    records = logspec.read(tmp_path / "r.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "epoch", "bn", "epoch", "bn", "event", "end"]
    run, end = records[0], records[-1]
    assert run["source"] == "torch" and run["framework"] == "torch" and run["schema"] == 1
    assert run["bn_eps"] == 1e-5 and run["bn_variance"] == "unbiased" and run["model"] == "resnet18"
    assert "rank" not in run and "world_size" not in run
    assert records[3]["epoch"] == 2 and records[3]["t"] == 2 and set(records[3]) >= {"train", "eval_batch"}
    assert set(records[3]["train"]) == {"loss"}  # what was not given stays out of the log
    assert end == {"type": "end", "epochs": 2, "reason": "done"}
    entry = layer(records, "layer3.1.bn2")
    assert entry["num_batches_tracked"] == 2 and entry["n"] == 4 * 2 * 2 and entry["channels"] == 256


def test_batch_stats_equal_a_manual_computation(tmp_path: Path) -> None:
    model = small()
    torch.manual_seed(1)
    x = torch.randn(5, 3, 8, 8) * 2 + 1
    with bnscope.watch(model, tmp_path / "s.jsonl") as scope:
        model.train()
        model(torch.randn(5, 3, 8, 8))
        model(x)  # the last training batch is the one recorded ...
        model.eval()
        model(torch.randn(5, 3, 8, 8))  # ... eval-mode forwards are not
        scope.epoch()
        assert all(not t.requires_grad for stats in scope._last.values() for t in stats[:2])
    records = logspec.read(tmp_path / "s.jsonl")
    for name in ("0", "2", "5"):
        bn, entry = dict(model.named_modules())[name], layer(records, name)
        assert torch.allclose(torch.tensor(entry["running_mean"]), bn.running_mean, rtol=1e-6, atol=1e-7)
        assert torch.allclose(torch.tensor(entry["running_var"]), bn.running_var, rtol=1e-6)
        assert entry["num_batches_tracked"] == 2
    model.train()
    with torch.no_grad():
        inputs = {"0": x, "2": model[:2](x), "5": model[:5](x)}  # each layer's input in that training forward
    for name, inp in inputs.items():
        dims = [0, *range(2, inp.dim())]
        entry = layer(records, name)
        assert entry["n"] == inp.numel() // inp.shape[1]
        assert torch.allclose(torch.tensor(entry["batch_mean"]), inp.mean(dims), rtol=1e-5, atol=1e-6)
        assert torch.allclose(torch.tensor(entry["batch_var"]), inp.var(dims, unbiased=False), rtol=1e-5)
        run, bat = torch.tensor(entry["running_mean"]), torch.tensor(entry["batch_mean"])
        assert entry["mean_gap"] == pytest.approx(float((run - bat).norm() / bat.norm()), rel=1e-5)


def test_running_var_moves_toward_the_unbiased_batch_var(tmp_path: Path) -> None:
    model = small(0.1)
    with bnscope.watch(model, tmp_path / "u.jsonl") as scope:
        model(torch.randn(3, 3, 8, 8))
        scope.epoch()
    for name in ("0", "2", "5"):
        entry = layer(logspec.read(tmp_path / "u.jsonl"), name)
        batch_mean, batch_var = torch.tensor(entry["batch_mean"]), torch.tensor(entry["batch_var"])
        batch_var = batch_var * entry["n"] / (entry["n"] - 1)  # the log's batch_var is the biased one
        # One update from mean 0 / var 1 with PyTorch momentum 0.1 (Keras 0.9).
        assert torch.allclose(torch.tensor(entry["running_mean"]), 0.1 * batch_mean, rtol=1e-5, atol=1e-6)
        assert torch.allclose(torch.tensor(entry["running_var"]), 0.9 + 0.1 * batch_var, rtol=1e-5)


@pytest.mark.parametrize("torch_m, keras_m", [(0.1, 0.9), (0.01, 0.99), (0.3, 0.7), (1.0, 0.0)])
def test_momentum_is_written_in_keras_convention(tmp_path: Path, torch_m: float, keras_m: float) -> None:
    with bnscope.watch(small(torch_m), tmp_path / "m.jsonl") as scope:
        scope.epoch()
    records = logspec.read(tmp_path / "m.jsonl")
    assert records[0]["momentum"] == keras_m and records[0]["cumulative"] is False
    assert {entry["momentum"] for entry in records[0]["bn_layers"]} == {keras_m}
    assert records[1]["momentum"] == keras_m and layer(records, "2")["momentum"] == keras_m


def test_cumulative_and_mixed_momenta(tmp_path: Path) -> None:
    with bnscope.watch(small(None), tmp_path / "c.jsonl", momentum_note="cumulative average") as scope:
        scope.epoch()
    run = logspec.read(tmp_path / "c.jsonl")[0]
    assert run["cumulative"] is True and "momentum" not in run and run["momentum_note"] == "cumulative average"
    assert all(entry == {**entry, "cumulative": True} and "momentum" not in entry for entry in run["bn_layers"])
    model = small(0.1)
    model[2].momentum = 0.2
    with bnscope.watch(model, tmp_path / "x.jsonl") as scope:
        scope.epoch()
    records = logspec.read(tmp_path / "x.jsonl")
    logspec.check(records)
    assert "momentum" not in records[0] and [e["momentum"] for e in records[0]["bn_layers"]] == [0.9, 0.8, 0.9]


def test_summary_mode_and_nothing_seen_yet(tmp_path: Path) -> None:
    model = small()
    with bnscope.watch(model, tmp_path / "g.jsonl", log_bn="summary") as scope:
        scope.epoch()  # no training forward yet: no batch statistics, no gaps
        model(torch.randn(4, 3, 8, 8))
        scope.epoch()
        scope.epoch(bn="full")
    records = logspec.read(tmp_path / "g.jsonl")
    logspec.check(records)
    bns = [r for r in records if r["type"] == "bn"]
    assert set(bns[0]["layers"][0]) == {"name", "channels", "momentum", "num_batches_tracked"}
    assert "mean_gap" in bns[1]["layers"][0] and "running_mean" not in bns[1]["layers"][0]
    assert "running_mean" in bns[2]["layers"][0]


class Wrapper(nn.Module):
    """Stands in for DistributedDataParallel: the model as the only child, called `module`."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module


def test_wrapper_prefix_is_dropped(tmp_path: Path) -> None:
    with bnscope.watch(Wrapper(small()), tmp_path / "w.jsonl") as scope:
        assert [n for n, _ in scope.layers] == ["0", "2", "5"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_ddp_in_one_gloo_process(tmp_path: Path) -> None:
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(small())
        with bnscope.watch(ddp, tmp_path / "d.jsonl") as scope:
            ddp(torch.randn(4, 3, 8, 8)).sum().backward()
            scope.epoch()
    finally:
        dist.destroy_process_group()
    records = logspec.read(tmp_path / "d.jsonl")  # world size 1: no rank suffix
    logspec.check(records)
    assert [e["name"] for e in records[0]["bn_layers"]] == ["0", "2", "5"]
    assert records[0]["rank"] == 0 and records[0]["world_size"] == 1 and records[0]["model"] == "Sequential"
    assert layer(records, "2")["num_batches_tracked"] == 1


def test_two_gloo_processes_write_one_log_each(tmp_path: Path) -> None:
    import dist_worker

    mp = pytest.importorskip("torch.multiprocessing")
    mp.spawn(dist_worker.train, args=(2, f"tcp://127.0.0.1:{free_port()}", str(tmp_path / "ddp.jsonl")), nprocs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.rank0.jsonl", "ddp.rank1.jsonl"]
    logs = [logspec.read(tmp_path / f"ddp.rank{r}.jsonl") for r in (0, 1)]
    for rank, records in enumerate(logs):
        logspec.check(records)
        assert records[0]["rank"] == rank and records[0]["world_size"] == 2
    means = [layer(records, "1")["running_mean"] for records in logs]
    assert means[0] != means[1]


def test_batch_eval_changes_nothing(tmp_path: Path) -> None:
    model = small()
    dropout = nn.Dropout()
    model.append(dropout)
    model.train()
    with bnscope.watch(model, tmp_path / "b.jsonl") as scope:
        model(torch.randn(4, 3, 8, 8))
        before = {k: v.clone() for k, v in model.state_dict().items()}
        last = {k: v[0].clone() for k, v in scope._last.items()}
        with scope.batch_eval():
            assert model[0].training and not dropout.training and not torch.is_grad_enabled()
            model(torch.randn(4, 3, 8, 8) + 5)
        assert model.training and dropout.training
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
        assert all(torch.equal(scope._last[k][0], v) for k, v in last.items())


def test_exception_in_context_ends_with_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with bnscope.watch(small(), tmp_path / "e.jsonl") as scope:
            scope.epoch(train={"loss": float("nan"), "acc": 0.5})
            raise RuntimeError("boom")
    scope.close()  # a second close does nothing
    records = logspec.read(tmp_path / "e.jsonl")
    logspec.check(records)
    assert records[1]["train"] == {"loss": None, "acc": 0.5}
    assert records[-1] == {"type": "end", "epochs": 1, "reason": "error", "message": "RuntimeError: boom"}
    assert not any(m._forward_hooks for m in scope.model.modules())  # hooks removed


def test_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        bnscope.watch(nn.Linear(2, 2), tmp_path / "n.jsonl")
    with pytest.raises(ValueError):
        bnscope.watch(small(), tmp_path / "n.jsonl", log_bn="some")
    with pytest.raises(ValueError):
        bnscope.watch(small(), tmp_path / "n.jsonl", info={"type": "x"})


def test_constant_channel_and_the_var_mean_fallback(monkeypatch: Any) -> None:
    from bnscope import _torch

    x = torch.randn(4, 3, 5, 5)
    x[:, 1] = 2.0  # zero variance: the CPU kernel reports invstd 0 for it
    batch = _torch.batch_stats(x)
    assert batch.n == 100 and batch.var()[1] == 0 and batch.mean[1] == 2
    assert torch.allclose(batch.var(), x.var([0, 2, 3], unbiased=False), rtol=1e-5)

    def unsupported(*args: Any) -> Any:
        raise NotImplementedError("no such kernel here")

    monkeypatch.setattr(torch, "native_batch_norm", unsupported)
    fallback = _torch.batch_stats(x)
    assert fallback.eps is None and torch.equal(fallback.mean, batch.mean)
    assert torch.allclose(fallback.var(), batch.var(), rtol=1e-5, atol=1e-7)


def test_saved_statistics_are_used_when_autograd_recorded_them(tmp_path: Path) -> None:
    """With autograd recording, the hook reads what the kernel saved for backward (free); under no_grad it computes
    them. Both give the same numbers. (If a torch release renames the saved fields, the first assert fails: the
    hook then still works, computing every time.)"""
    model = small()
    x = torch.randn(6, 3, 8, 8) * 3 + 1
    with bnscope.watch(model, tmp_path / "f.jsonl") as scope:
        model(x)
        saved = dict(scope._last)
        with torch.no_grad():
            model(x)
        computed = dict(scope._last)
    assert all(b.eps == 1e-5 for b in saved.values()), "the free path was not taken"
    assert all(b.eps == 0.0 for b in computed.values())
    for name in saved:
        assert not saved[name].mean.requires_grad and saved[name].mean.grad_fn is None
        assert torch.allclose(saved[name].mean, computed[name].mean, atol=1e-6)
        assert torch.allclose(saved[name].var(), computed[name].var(), rtol=1e-4, atol=1e-6)


# --- the log file under hostile input (#24) ------------------------------------------------------------------------

def hooked(model: Any) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_watch_refuses_a_file_that_is_not_a_log_and_leaves_no_hooks(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("import torch\n")
    model = small()
    with pytest.raises(bnscope.LogFileError, match=r"train\.py: exists and is not a bnscope log"):
        bnscope.watch(model, script)
    assert script.read_text() == "import torch\n" and not hooked(model)
    with bnscope.watch(model, script, overwrite=True) as scope:
        scope.epoch()
    assert logspec.read(script)[0]["type"] == "run"


def test_a_new_watch_appends_a_new_run(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    model = small()
    for _ in range(2):
        with bnscope.watch(model, path) as scope:
            model(torch.randn(4, 3, 8, 8))
            scope.epoch()
            scope.epoch()
    records = logspec.read(path)
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "epoch", "bn", "epoch", "bn", "end"] * 2


def test_two_watchers_on_one_path(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    first_model, second_model = small(), small()
    with bnscope.watch(first_model, path) as scope:
        with pytest.raises(bnscope.LogFileError, match=r"r\.jsonl: in use by this process \(bnscope.watch of Seq"):
            bnscope.watch(second_model, path)
        assert not hooked(second_model)
        first_model(torch.randn(4, 3, 8, 8))
        scope.epoch()
    records = logspec.read(path)  # every line whole: nothing interleaved
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "epoch", "bn", "end"]


def test_bad_arguments_touch_neither_the_model_nor_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("")
    with bnscope.watch(small(), path) as scope:
        scope.epoch()
    before = path.read_text()
    model = small()
    bad: List[Dict[str, Any]] = [
        {"info": {"seed": object()}}, {"info": {"schema": 2}}, {"log_bn": "some"}, {"momentum_note": 3},
        {"overwrite": 1}, {"control": "yes"}, {"recalibrate": torch.randn(4, 3, 8, 8)},
        {"recalibrate": iter([torch.randn(4, 3, 8, 8)])}, {"recalibrate": 3}, {"evaluate": "acc"},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            bnscope.watch(model, path, **kwargs)
        assert not hooked(model) and path.read_text() == before, kwargs
    with pytest.raises(ValueError):
        bnscope.watch(model, b"r.jsonl")
    with pytest.raises(ValueError):
        bnscope.watch("not a model", path)
    assert not (tmp_path / "r.jsonl.control").exists()


def test_a_failure_after_the_hooks_removes_them(tmp_path: Path, monkeypatch: Any) -> None:
    from bnscope import _log

    def full(self: Any, record: Any) -> None:
        raise _log.LogFileError("disk full")

    monkeypatch.setattr(_log.JsonlWriter, "write", full)
    model = small()
    with pytest.raises(OSError, match="disk full"):
        bnscope.watch(model, tmp_path / "r.jsonl", control=True)
    assert not hooked(model)
    monkeypatch.undo()
    with bnscope.watch(model, tmp_path / "r.jsonl", control=True) as scope:  # the log and the channel are free again
        assert scope.control is not None and not scope.control.quiet


def test_watch_on_a_fifo_does_not_hang(tmp_path: Path) -> None:
    import test_log

    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    model = small()
    with test_log.deadline(10), pytest.raises(bnscope.LogFileError, match="a FIFO"):
        bnscope.watch(model, fifo)
    assert not hooked(model)
