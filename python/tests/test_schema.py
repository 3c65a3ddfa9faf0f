"""docs/log.schema.json (#27) against a log the PyTorch hook writes: every record (run, epoch, bn with the arrays,
event, end) validates. Skipped without torch, and without the `jsonschema` package (not a dependency of bnscope)."""
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
jsonschema = pytest.importorskip("jsonschema")

import bnscope  # noqa: E402
from torch import nn  # noqa: E402

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "log.schema.json"


def validator() -> "jsonschema.Draft202012Validator":
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_a_log_the_hook_writes_follows_the_schema(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=None), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    with bnscope.watch(model, tmp_path / "r.jsonl", info={"model": "small", "seed": 0}) as scope:
        for _ in range(2):
            model.train()
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            scope.epoch(train={"loss": loss, "acc": float("nan")})
        scope.event("momentum", 0.9)
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["type"] for r in records] == ["run", "epoch", "bn", "epoch", "bn", "event", "end"]
    v = validator()
    errors = [f"line {i + 1}: {e.message} at {list(e.path)}" for i, r in enumerate(records) for e in v.iter_errors(r)]
    assert errors == []


def test_the_schema_refuses_a_torch_convention_run() -> None:
    v = validator()
    assert not v.is_valid({"type": "run", "schema": 1, "convention": "torch", "bn_layers": []})
    assert not v.is_valid({"type": "epoch"})
