"""bnscope.lightning.BnscopeCallback and bnscope.hf.BnscopeCallback: a three-epoch run of a tiny BatchNorm model in
each, whose log follows the spec and holds the trainer's own metrics (CPU). Skipped without the framework."""
from pathlib import Path
from typing import Any, Dict, List

import pytest

torch = pytest.importorskip("torch")

import logspec  # noqa: E402
from torch import nn  # noqa: E402


def net() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(4),
        nn.Linear(4, 3),
    )


def images(n: int = 24) -> Any:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = torch.rand(n, 3, 8, 8, generator=g) + y[:, None, None, None] * 0.5
    return x, y


def epochs(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in records if r["type"] == "epoch"]


def test_lightning_callback_writes_the_trainers_metrics(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    import lightning as L

    from bnscope.lightning import BnscopeCallback

    class Module(L.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = net()
            self.seen: List[Dict[str, float]] = []

        def forward(self, x: Any) -> Any:
            return self.net(x)

        def training_step(self, batch: Any, i: int) -> Any:
            x, y = batch
            out = self(x)
            loss = nn.functional.cross_entropy(out, y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            self.log("train_acc", (out.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch: Any, i: int) -> None:
            x, y = batch
            out = self(x)
            self.log("val_loss", nn.functional.cross_entropy(out, y))
            self.log("val_acc", (out.argmax(1) == y).float().mean())

        def on_train_epoch_end(self) -> None:
            m = self.trainer.callback_metrics
            self.seen.append({k: float(m[k]) for k in ("train_loss", "train_acc", "val_loss", "val_acc")})

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x, y = images()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    module = Module()
    trainer = L.Trainer(
        max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[BnscopeCallback(tmp_path / "pl.jsonl", info={"seed": 0})],
    )
    trainer.fit(module, loader, loader)
    records = logspec.read(tmp_path / "pl.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run"] + ["epoch", "bn"] * 3 + ["end"]
    run = records[0]
    assert run["source"] == "torch" and run["model"] == "Module" and run["seed"] == 0
    assert [e["name"] for e in run["bn_layers"]] == ["net.1", "net.5"]
    for rec, seen in zip(epochs(records), module.seen):
        assert rec["train"] == pytest.approx({"loss": seen["train_loss"], "acc": seen["train_acc"]})
        assert rec["eval_running"] == pytest.approx({"loss": seen["val_loss"], "acc": seen["val_acc"]})
    assert [r["epoch"] for r in epochs(records)] == [1, 2, 3] and epochs(records)[-1]["t"] == 9
    assert records[-2]["layers"][0]["n"] == 8 * 6 * 6 and records[-1]["reason"] == "done"


def test_hf_trainer_callback_writes_the_trainers_metrics(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # the Trainer needs it with PyTorch
    np = pytest.importorskip("numpy")
    from bnscope.hf import BnscopeCallback

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net()

        def forward(self, pixel_values: Any, labels: Any = None) -> Any:
            logits = self.net(pixel_values)
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = nn.functional.cross_entropy(logits, labels)
            return out

    class Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self) -> None:
            self.x, self.y = images()

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> Dict[str, Any]:
            return {"pixel_values": self.x[i], "labels": self.y[i]}

    evaluations: List[Dict[str, float]] = []

    def accuracy(p: Any) -> Dict[str, float]:
        acc = float(np.mean(np.argmax(p.predictions, -1) == p.label_ids))
        evaluations.append({"acc": acc})
        return {"accuracy": acc}

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=3, per_device_train_batch_size=8,
        per_device_eval_batch_size=8, eval_strategy="epoch", logging_strategy="epoch", save_strategy="no",
        report_to="none", use_cpu=True, learning_rate=0.1, disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=Model(), args=args, train_dataset=Data(), eval_dataset=Data(), compute_metrics=accuracy,
        callbacks=[BnscopeCallback(tmp_path / "hf.jsonl")],
    )
    trainer.train()
    records = logspec.read(tmp_path / "hf.jsonl")
    logspec.check(records)
    assert [r["type"] for r in records] == ["run"] + ["epoch", "bn"] * 3 + ["end"]
    assert records[0]["model"] == "Model" and records[0]["lr"] == 0.1 and records[0]["batch_size"] == 8
    history = trainer.state.log_history
    train_losses = [h["loss"] for h in history if "loss" in h]
    eval_logs = [h for h in history if "eval_loss" in h]
    assert len(train_losses) == 3 and len(eval_logs) == 3
    for rec, loss, ev, mine in zip(epochs(records), train_losses, eval_logs, evaluations):
        assert rec["train"] == pytest.approx({"loss": loss})
        assert rec["eval_running"] == pytest.approx({"loss": ev["eval_loss"], "acc": ev["eval_accuracy"]})
        assert ev["eval_accuracy"] == mine["acc"]
    assert epochs(records)[-1]["t"] == 9 and records[-1]["reason"] == "done"
