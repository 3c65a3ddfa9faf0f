"""One process of the two-process gloo test (test_torch.py), importable by torch.multiprocessing.spawn."""
from typing import Any

import torch
from torch import nn

import bnscope


def train(rank: int, world: int, init: str, path: str) -> Any:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(
            nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(100 + rank)  # each rank its own data
        x, y = torch.randn(2, 3, 8, 8) + rank, torch.tensor([0, 1])
        with bnscope.watch(model, path) as scope:
            for _ in range(2):
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                scope.epoch(train={"loss": loss})
    finally:
        torch.distributed.destroy_process_group()
