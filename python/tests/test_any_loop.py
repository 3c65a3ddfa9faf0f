"""bnscope.watch in other training loops: torch.compile, lazy BatchNorm layers, AMP and bf16 models (CPU)."""
from pathlib import Path
from typing import Any, Dict, List

import pytest

torch = pytest.importorskip("torch")

import bnscope  # noqa: E402
import logspec  # noqa: E402
from torch import nn  # noqa: E402


def small() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.BatchNorm1d(4 * 6 * 6), nn.Linear(144, 2)
    )


def bn(records: List[Dict[str, Any]], name: str) -> Dict[str, Any]:
    last = [r for r in records if r["type"] == "bn"][-1]
    return next(entry for entry in last["layers"] if entry["name"] == name)


def breaks(model: Any, x: Any) -> int:
    torch._dynamo.reset()
    return int(torch._dynamo.explain(model)(x).graph_break_count)


@pytest.mark.heavy
def test_hook_adds_no_graph_breaks_on_resnet18(tmp_path: Path) -> None:
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.resnet18(num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    without = breaks(model, x)
    with bnscope.watch(model, tmp_path / "c.jsonl") as scope:
        with_hook = breaks(model, x)
        assert len(scope._last) == 20  # the hooks ran inside the trace
    assert with_hook <= without, f"graph breaks: {without} without the hook, {with_hook} with it"


def test_compiled_model_records_the_same_statistics_under_its_own_names(tmp_path: Path) -> None:
    model = small()
    compiled = torch.compile(model, backend="eager")
    x = torch.randn(5, 3, 8, 8) * 2 + 1
    with bnscope.watch(compiled, tmp_path / "c.jsonl") as scope:
        assert [n for n, _ in scope.layers] == ["1", "4"]  # not "_orig_mod.1"
        compiled(x).sum().backward()
        traced = {k: (v.mean.clone(), v.var().clone(), v.n) for k, v in scope._last.items()}
        scope._last.clear()
        model(x)  # eager: the statistics the kernel saved
        for name, (mean, var, n) in traced.items():
            eager = scope._last[name]
            assert n == eager.n and torch.allclose(mean, eager.mean, atol=1e-6)
            assert torch.allclose(var, eager.var(), rtol=1e-4, atol=1e-6)
        compiled(torch.randn(7, 3, 8, 8))  # another batch size: recompiled, still recorded
        assert scope._last["4"].n == 7
        scope.epoch()
    records = logspec.read(tmp_path / "c.jsonl")
    logspec.check(records)
    assert [e["name"] for e in records[0]["bn_layers"]] == ["1", "4"]


def lazy() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Flatten(), nn.LazyBatchNorm1d(), nn.LazyLinear(2)
    )


def test_lazy_batchnorm_layers_are_found_when_they_materialise(tmp_path: Path) -> None:
    model = lazy()
    with bnscope.watch(model, tmp_path / "l.jsonl") as scope:  # not refused: its BatchNorm layers are lazy
        assert [n for n, _ in scope.layers] == ["1", "4"]
        assert (tmp_path / "l.jsonl").read_text() == ""  # sizes unknown yet: the run record waits
        with pytest.raises(ValueError, match="lazy"):
            scope.epoch()
        model(torch.randn(5, 3, 8, 8)).sum().backward()
        scope.epoch()
    records = logspec.read(tmp_path / "l.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "epoch", "bn", "end"]
    assert [(e["name"], e["channels"]) for e in records[0]["bn_layers"]] == [("1", 4), ("4", 144)]
    assert records[0]["params"] == sum(p.numel() for p in model.parameters())
    assert bn(records, "4")["n"] == 5 and len(bn(records, "4")["batch_mean"]) == 144


def test_lazy_model_closed_before_any_forward_still_writes_a_valid_log(tmp_path: Path) -> None:
    with bnscope.watch(lazy(), tmp_path / "l.jsonl"):
        pass
    records = logspec.read(tmp_path / "l.jsonl")
    logspec.check(records)
    assert records[0]["bn_layers"] == [] and "params" not in records[0] and records[-1]["reason"] == "done"


def test_autocast_keeps_float32_statistics_and_logs_them(tmp_path: Path) -> None:
    model = small()
    x = torch.randn(6, 3, 8, 8)
    with bnscope.watch(model, tmp_path / "a.jsonl") as scope:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
            inputs = model[0](x)  # the bf16 map BatchNorm saw
        out.float().sum().backward()
        scope.epoch()
    assert model[1].running_mean.dtype == torch.float32 and inputs.dtype == torch.bfloat16
    records = logspec.read(tmp_path / "a.jsonl")
    logspec.check(records)
    assert records[0]["dtype"] == "float32" and {e["dtype"] for e in records[0]["bn_layers"]} == {"float32"}
    entry = bn(records, "1")
    expected = inputs.float().mean((0, 2, 3))
    assert torch.allclose(torch.tensor(entry["batch_mean"]), expected, rtol=1e-3, atol=1e-4)
    assert torch.allclose(torch.tensor(entry["running_mean"]), model[1].running_mean, rtol=1e-6, atol=1e-7)


def test_bfloat16_model_is_logged_with_its_dtype(tmp_path: Path) -> None:
    model = small().to(torch.bfloat16)
    x = torch.randn(6, 3, 8, 8, dtype=torch.bfloat16)
    with bnscope.watch(model, tmp_path / "b.jsonl") as scope:
        model(x).float().sum().backward()
        scope.epoch()
        with torch.no_grad():  # computed by the hook instead of read from autograd
            model(x)
        scope.epoch()
    records = logspec.read(tmp_path / "b.jsonl")
    logspec.check(records)
    assert records[0]["dtype"] == "bfloat16" and {e["dtype"] for e in records[0]["bn_layers"]} == {"bfloat16"}
    entry = bn(records, "1")
    with torch.no_grad():
        inputs = model[0](x).float()
    assert torch.allclose(torch.tensor(entry["running_mean"]), model[1].running_mean.float(), rtol=1e-6)
    assert torch.allclose(torch.tensor(entry["batch_mean"]), inputs.mean((0, 2, 3)), rtol=1e-2, atol=1e-3)
    assert torch.allclose(torch.tensor(entry["batch_var"]), inputs.var((0, 2, 3), unbiased=False), rtol=2e-2)
