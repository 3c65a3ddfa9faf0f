"""bnscope.inspect on PyTorch models (CPU): every figure against a plain PyTorch computation written here, and the
model left bit-identical. The torchvision ones are marked heavy (`-m 'not heavy'` deselects them)."""
import copy
import json
import math
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest

torch = pytest.importorskip("torch")

import bnscope  # noqa: E402
import logspec  # noqa: E402
from bnscope._log import gap  # noqa: E402
from torch import nn  # noqa: E402

BN = nn.modules.batchnorm._BatchNorm


@pytest.fixture(autouse=True)
def quick_cpu() -> Iterator[None]:
    """Random weights can drive activations into the denormal range, where CPU kernels crawl: flushed to zero. One
    thread: on a shared machine OpenMP's spinning threads made these tests 5-10x slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


def randomise(model: Any, seed: int = 0) -> Any:
    """Random running statistics and affine parameters in every BatchNorm layer."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BN):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
                m.num_batches_tracked.fill_(100)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
    return model


# --- a plain PyTorch computation of every figure ------------------------------------------------------------------


def forward_order(model: Any, x: Any) -> List[str]:
    """BatchNorm layer names in the order of their first call (eval-mode forward, on a copy)."""
    names = {m: n for n, m in model.named_modules() if isinstance(m, BN)}
    order: List[str] = []

    def hook(module: Any, inputs: Any) -> None:
        if names[module] not in order:
            order.append(names[module])

    handles = [m.register_forward_pre_hook(hook) for m in names]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(x)
    model.train(was)
    for h in handles:
        h.remove()
    return order


def scores(model: Any, batches: Sequence[Tuple[Any, Any]]) -> Tuple[float, float, Any]:
    """Mean cross-entropy, accuracy and all logits over the batches, as the model is set now."""
    with torch.no_grad():
        out = torch.cat([model(x) for x, _ in batches])
    y = torch.cat([y for _, y in batches])
    return float(nn.functional.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean()), out


class Plain:
    """One copy of the model, set for each evaluation: eval mode, the named BatchNorm layers in training mode (batch
    statistics), and its running statistics put back to the original's before each (training mode updates them)."""

    def __init__(self, model: Any) -> None:
        self.copy = copy.deepcopy(model)
        self.modules = dict(self.copy.named_modules())
        self.buffers = {n: [b.clone() for b in m.buffers(recurse=False)] for n, m in self.modules.items()
                        if isinstance(m, BN)}

    def __call__(self, names: Sequence[str] = ()) -> Any:
        with torch.no_grad():
            for n, saved in self.buffers.items():
                for b, v in zip(self.modules[n].buffers(recurse=False), saved):
                    b.copy_(v)
        self.copy.eval()
        for n in names:
            self.modules[n].train()
        return self.copy


def recalibrated_copy(model: Any, batches: Sequence[Tuple[Any, Any]]) -> Any:
    """update_bn's arithmetic with only the BatchNorm layers in training mode."""
    c = copy.deepcopy(model).eval()
    with torch.no_grad():
        for m in c.modules():
            if isinstance(m, BN):
                m.reset_running_stats()
                m.momentum = None
                m.train()
        for x, _ in batches:
            c(x)
    return c.eval()


def snapshot(model: Any) -> Tuple[Dict[str, Any], List[Tuple[str, bool]], List[Any]]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [(n, m.training) for n, m in model.named_modules()]
    bn_attrs = [(m.momentum, m.track_running_stats) for m in model.modules() if isinstance(m, BN)]
    return state, flags, bn_attrs


def bits(t: Any) -> Any:
    """The tensor's bytes (NaN and -0.0 compared as bits)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def assert_unchanged(model: Any, before: Tuple[Dict[str, Any], List[Tuple[str, bool]], List[Any]]) -> None:
    state, flags, bn_attrs = before
    now = model.state_dict()
    assert now.keys() == state.keys()
    for k, v in state.items():
        assert now[k].dtype == v.dtype and torch.equal(bits(now[k]), bits(v)), f"{k} changed"
    assert [(n, m.training) for n, m in model.named_modules()] == flags
    assert [(m.momentum, m.track_running_stats) for m in model.modules() if isinstance(m, BN)] == bn_attrs
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


def check_report(model: Any, batches: List[Tuple[Any, Any]], report: Any, blame_samples: int, picks: Sequence[int]) -> None:
    """The three evaluations, the gaps and the blame of `picks` (forward indices) against the plain computation."""
    approx = lambda v: pytest.approx(v, rel=2e-5, abs=2e-6)  # noqa: E731
    plain = Plain(model)
    loss, acc, out = scores(plain(), batches)
    assert (report.eval_running.loss, report.eval_running.acc) == (approx(loss), approx(acc))
    cap = report.logits_cap
    assert torch.allclose(torch.tensor(report.eval_running.logits), out[:cap], rtol=1e-5, atol=1e-5)
    everything = [n for n, m in model.named_modules() if isinstance(m, BN)]
    loss, acc, _ = scores(plain(everything), batches)
    assert (report.eval_batch.loss, report.eval_batch.acc) == (approx(loss), approx(acc))
    recal = recalibrated_copy(model, batches)
    loss, acc, _ = scores(recal, batches)
    assert (report.recalibrated.loss, report.recalibrated.acc) == (approx(loss), approx(acc))
    # the layers in forward order, with running-vs-data gaps against the recalibrated copy's statistics
    order = forward_order(model, batches[0][0])
    assert [layer.name for layer in report.layers] == order
    mine, theirs = dict(model.named_modules()), dict(recal.named_modules())
    for layer in (report.layers[0], report.layers[-1]):
        m, r = mine[layer.name], theirs[layer.name]
        assert layer.mean_gap == pytest.approx(gap(m.running_mean.tolist(), r.running_mean.tolist()), rel=1e-4)
        assert layer.var_gap == pytest.approx(gap(m.running_var.tolist(), r.running_var.tolist()), rel=1e-4)
    # blame: only the first `blame_samples` samples
    head: List[Tuple[Any, Any]] = []
    left = blame_samples
    for x, y in batches:
        if left > 0:
            head.append((x[:left], y[:left]))
            left -= len(head[-1][0])
    assert report.blame_samples == blame_samples
    zero = scores(plain(), head)
    one = scores(plain(everything), head)
    for k in picks:
        layer = report.layers[k]
        for kind, names in (("alone", [order[k]]), ("prefix", order[: k + 1])):
            loss, acc, _ = scores(plain(names), head)
            b = getattr(layer, kind)
            assert (b.loss, b.acc) == (approx(loss), approx(acc)), f"{kind} of {layer.name}"
            if abs(one[0] - zero[0]) > 1e-6:
                assert b.loss_share == pytest.approx((loss - zero[0]) / (one[0] - zero[0]), rel=1e-3, abs=1e-4)
    assert report.layers[-1].prefix.loss == approx(one[0])


# --- a small MLP whose BatchNorm layers are declared in the other order than they run ------------------------------


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn_late = nn.BatchNorm1d(16)
        self.bn_early = nn.BatchNorm1d(32)
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 32), nn.Linear(32, 16), nn.Linear(16, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: Any) -> Any:
        h = self.drop(torch.relu(self.bn_early(self.fc1(x))))
        return self.fc3(torch.relu(self.bn_late(self.fc2(h))))


def mlp_data(n: int = 48, batch: int = 16, seed: int = 1) -> List[Tuple[Any, Any]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g) * 2 + 0.5
    y = (x[:, 0] > 0.5).long() + (x[:, 1] > 1.0).long()
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def test_mlp_figures_match_plain_pytorch_and_nothing_changes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = randomise(MLP())
    model.train()
    model.fc3.eval()  # mixed flags come back as they were
    batches = mlp_data()
    before = snapshot(model)
    report = bnscope.inspect(model, batches, tmp_path / "mlp.jsonl", blame_samples=24, shuffles=3, logits=5)
    assert_unchanged(model, before)
    assert [n for n, m in model.named_modules() if isinstance(m, BN)] == ["bn_late", "bn_early"]
    assert [layer.name for layer in report.layers] == ["bn_early", "bn_late"]  # forward order
    check_report(model, batches, report, 24, picks=(0, 1))
    assert report.samples == 48 and report.batches == 3 and report.batch_size == 16
    assert len(report.eval_running.logits) == 5 and report.labels == batches[0][1][:5].tolist()
    assert [layer.n for layer in report.layers] == [16, 16]
    s = report.recalibration_spread
    assert s is not None and s.shuffles == 3 and s.acc_min <= s.acc_mean <= s.acc_max
    again = bnscope.inspect(model, batches, blame_samples=24, shuffles=3, logits=5)
    assert again.record(arrays=True) == {**report.record(arrays=True), "seconds": again.record()["seconds"]}
    records = logspec.read(tmp_path / "mlp.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "inspect", "end"]
    assert records[2] == {"type": "end", "epochs": 0, "reason": "done"}
    assert records[0]["source"] == "torch" and records[0]["images"] == 48 and records[0]["labels"] == report.labels
    rec = records[1]
    assert json.loads(report.to_json()) == rec
    assert set(rec["eval_running"]) == {"loss", "acc", "logits"} and rec["recalibration_spread"]["shuffles"] == 3
    assert [b["name"] for b in rec["blame"]] == ["bn_early", "bn_late"]  # forward order, as Rust's --json
    assert set(rec["blame"][1]["alone"]) == {"loss", "acc", "loss_share", "acc_share"}
    assert rec["blame"][1]["prefix"]["loss_share"] == 1.0
    gaps = [max(layer["mean_gap"], layer["var_gap"]) for layer in rec["layers"]]
    assert gaps == sorted(gaps, reverse=True)  # largest gap first, as Rust's --json
    assert {layer["name"]: len(layer["data_mean"]) for layer in rec["layers"]} == {"bn_early": 32, "bn_late": 16}
    assert rec["diagnosis"] == " ".join(rec["findings"]) and rec["findings"]
    text = str(report)
    assert "eval, recalibrated (AdaBN)" in text and "Diagnosis:" in text and "bn_early" in text


def test_recalibration_is_update_bns_arithmetic_without_dropout() -> None:
    """Without dropout, `recalibrated` is exactly what torch.optim.swa_utils.update_bn gives; with it, update_bn
    (which puts the whole model in training mode) differs, and inspect stays deterministic."""
    torch.manual_seed(0)
    model = randomise(MLP())
    batches = mlp_data()
    plain = copy.deepcopy(model)
    plain.drop.p = 0.0
    torch.optim.swa_utils.update_bn([x for x, _ in batches], plain)
    loss, acc, _ = scores(plain.eval(), batches)
    report = bnscope.inspect(model, batches, blame=False, shuffles=0)
    assert report.recalibrated.loss == pytest.approx(loss, rel=1e-5) and report.recalibrated.acc == pytest.approx(acc)
    noisy = copy.deepcopy(model)
    torch.manual_seed(5)
    torch.optim.swa_utils.update_bn([x for x, _ in batches], noisy)  # dropout on
    assert scores(noisy.eval(), batches)[0] != pytest.approx(loss, rel=1e-6)


def test_lowest_level_inputs_and_custom_scores() -> None:
    torch.manual_seed(0)
    model = randomise(MLP())
    batches = mlp_data()
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    only_x = bnscope.inspect(model, x, batch_size=16, blame=False, shuffles=0)  # a tensor, re-split
    assert only_x.eval_running.loss is None and only_x.eval_running.acc is None and only_x.batches == 3
    assert only_x.layers[0].mean_gap is not None
    pair = bnscope.inspect(model, (x, y), batch_size=16, blame=False, shuffles=0, max_samples=40)
    assert pair.samples == 40 and pair.batches == 3
    mse = lambda out, t: ((out.softmax(1) - nn.functional.one_hot(t, 3)) ** 2).sum(1).mean()  # noqa: E731
    top2 = lambda out, t: (out.topk(2, 1).indices == t[:, None]).any(1).float().mean()  # noqa: E731
    custom = bnscope.inspect(model, batches, loss_fn=mse, metric_fn=top2, blame=False, shuffles=0)
    with torch.no_grad():
        out = model.eval()(x)
    assert custom.eval_running.loss == pytest.approx(float(mse(out, y)), rel=1e-5)
    assert custom.eval_running.acc == pytest.approx(float(top2(out, y)), rel=1e-6)


def test_wrapped_and_compiled_models_are_inspected_as_their_own_module() -> None:
    torch.manual_seed(0)
    model = randomise(MLP())
    batches = mlp_data()
    plain = bnscope.inspect(model, batches, blame=False, shuffles=0)
    compiled = torch.compile(model, backend="eager")
    report = bnscope.inspect(compiled, batches, blame=False, shuffles=0)
    assert [layer.name for layer in report.layers] == ["bn_early", "bn_late"]
    assert report.eval_running.loss == plain.eval_running.loss and report.model == "MLP"


def test_diagnosis_names_what_is_wrong() -> None:
    torch.manual_seed(0)
    model = MLP()  # running statistics at their (0, 1) start
    batches = mlp_data()
    report = bnscope.inspect(model, batches, blame_samples=48, shuffles=0)
    assert any("still at their start" in f and "num_batches_tracked 0" in f for f in report.findings)
    model = randomise(MLP())
    with torch.no_grad():
        model.bn_late.running_var[3] = 0.0
        model.bn_early.running_mean[0] = float("nan")
    report = bnscope.inspect(model, batches, shuffles=0)
    assert report.findings[0].startswith("NaN or Inf in the running statistics of 1 layer(s), first bn_early")
    assert any("running variance 0 or less (first bn_late)" in f for f in report.findings)
    assert json.loads(report.to_json())["layers"][0]["mean_gap"] is None  # NaN written as null
    # the first layer far off: preprocessing
    model = randomise(MLP())
    shifted = [(x * 10 + 30, y) for x, y in batches]
    report = bnscope.inspect(model, shifted, shuffles=0)
    assert any(f.startswith("The first BatchNorm layer (bn_early) already sees inputs unlike") for f in report.findings)


def test_stale_deeper_layer_is_found_and_blamed() -> None:
    """Running statistics right everywhere but in bn_late: the diagnosis says stale, the blame names bn_late, and
    recalibrating helps."""
    torch.manual_seed(0)
    model = randomise(MLP())
    batches = mlp_data(n=96, batch=32)
    fitted = recalibrated_copy(model, batches)
    model.load_state_dict(fitted.state_dict())
    with torch.no_grad():
        model.bn_late.running_mean += 3.0 * model.bn_late.running_var.sqrt()
    report = bnscope.inspect(model, batches, blame_samples=96, shuffles=0)
    early, late = report.layers
    assert early.worst() < 0.05 and late.worst() > 0.5
    assert any(f.startswith("The running statistics of 1 of 2 layers are far") for f in report.findings)
    assert report.blamed and report.blamed[0][0] == "bn_late"
    assert late.alone is not None and late.alone.loss_share == pytest.approx(1.0, abs=0.1)
    assert early.prefix is not None and abs(early.prefix.loss_share) < 0.1
    assert report.recalibrated.loss < report.eval_running.loss


def test_one_value_per_channel_is_reported_not_raised() -> None:
    torch.manual_seed(0)
    model = randomise(MLP())
    x, y = mlp_data()[0]
    batches = [(x[:8], y[:8]), (x[8:9], y[8:9])]  # a last batch of one sample
    report = bnscope.inspect(model, batches, shuffles=0)
    assert report.eval_batch.error is not None and report.eval_batch.loss is None
    assert any("one value per channel" in f for f in report.findings)
    assert report.layers[0].n == 1 and report.blame_samples == 0


def test_sync_batchnorm_without_a_process_group_is_inspected_like_batchnorm() -> None:
    torch.manual_seed(0)
    model = randomise(MLP())
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
    assert isinstance(sync.bn_early, nn.SyncBatchNorm)
    batches = mlp_data()
    a, b = (bnscope.inspect(m, batches, blame_samples=16, shuffles=2) for m in (model, sync))
    assert b.record() == {**a.record(), "seconds": b.record()["seconds"]}


def test_refuses_a_model_without_batchnorm_or_with_unsized_lazy_layers() -> None:
    with pytest.raises(ValueError, match="no BatchNorm"):
        bnscope.inspect(nn.Linear(2, 2), [torch.randn(4, 2)])
    lazy = nn.Sequential(nn.LazyLinear(4), nn.LazyBatchNorm1d())
    with pytest.raises(ValueError, match="call it once on a batch first"):
        bnscope.inspect(lazy, [torch.randn(4, 2)])
    lazy(torch.randn(4, 2))
    assert bnscope.inspect(lazy, [torch.randn(4, 2)], shuffles=0).layers[0].channels == 4


# --- torchvision architectures (random weights, randomised BatchNorm) -----------------------------------------------

ARCHS = ["mobilenet_v3_small", "efficientnet_b0", "densenet121", "vgg11_bn", "regnet_x_400mf"]


@pytest.mark.heavy
@pytest.mark.parametrize("arch", ARCHS)
def test_torchvision_architectures(arch: str, tmp_path: Path) -> None:
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = randomise(getattr(tv.models, arch)(weights=None, num_classes=5))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 3, 64, 64, generator=g), torch.randint(0, 5, (8,), generator=g)
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    model.train()  # the training flags come back, whatever they were
    before = snapshot(model)
    report = bnscope.inspect(model, batches, tmp_path / "a.jsonl", blame_samples=4, shuffles=2, logits=8)
    assert_unchanged(model, before)
    middle = len(report.layers) // 2
    check_report(model, batches, report, 4, picks=(0, middle))
    assert all(layer.alone is not None and layer.prefix is not None for layer in report.layers)
    assert report.recalibration_spread is not None and report.recalibration_spread.shuffles == 2
    records = logspec.read(tmp_path / "a.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run", "inspect", "end"]
    assert {layer["name"] for layer in records[1]["layers"]} == {e["name"] for e in records[0]["bn_layers"]}
    assert all(math.isfinite(layer["mean_gap"]) for layer in records[1]["layers"])


def test_bfloat16_model_is_inspected_in_its_dtype(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = randomise(MLP()).to(torch.bfloat16)
    batches = [(x.bfloat16(), y) for x, y in mlp_data()]
    before = snapshot(model)
    report = bnscope.inspect(model, batches, tmp_path / "bf.jsonl", blame_samples=16, shuffles=2)
    assert_unchanged(model, before)
    loss, acc, _ = scores(Plain(model)(), batches)
    assert report.eval_running.loss == pytest.approx(loss, rel=1e-2) and report.eval_running.acc == pytest.approx(acc)
    assert [layer.dtype for layer in report.layers] == ["bfloat16", "bfloat16"]
    records = logspec.read(tmp_path / "bf.jsonl")
    logspec.check(records)
    assert records[0]["dtype"] == "bfloat16" and records[1]["layers"][0]["dtype"] == "bfloat16"
