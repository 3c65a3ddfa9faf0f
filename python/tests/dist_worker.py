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


def train_control(rank: int, world: int, init: str, path: str) -> Any:
    """Both ranks train 10 steps with control=True. Rank 0 plays the TUI: before its step 2 it appends a pause, once
    it is paused a resume, and before step 6 a momentum change. Each rank writes the momentum every layer had at
    each step (seen by a pre-hook that runs after bnscope's) to PATH.momenta{R}.json."""
    import json
    import os
    import threading

    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        inner = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        model = nn.parallel.DistributedDataParallel(inner)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(100 + rank)
        x, y = torch.randn(2, 3, 8, 8) + rank, torch.tensor([0, 1])
        seen = []
        scope = bnscope.watch(model, path, control=True)
        model.register_forward_pre_hook(lambda m, a: seen.append(inner[1].momentum) if m.training else None)

        def send(line: str) -> None:
            fd = os.open(path + ".control", os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
            os.write(fd, line.encode() + b"\n")
            os.close(fd)

        for step in range(10):
            if rank == 0 and step == 2:
                send("cmd p1 pause")
                threading.Thread(target=resume_when_paused, args=(scope, send), daemon=True).start()
            if rank == 0 and step == 6:
                send("cmd m1 momentum 0.5")
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 5 == 4:
                scope.epoch(train={"loss": loss})
        scope.close()
        with open(f"{path}.momenta{rank}.json", "w") as f:
            json.dump(seen, f)
    finally:
        torch.distributed.destroy_process_group()


def resume_when_paused(scope: Any, send: Any) -> None:
    import time

    limit = time.monotonic() + 60
    while not scope.control.paused and time.monotonic() < limit:
        time.sleep(0.01)
    time.sleep(0.3)
    send("cmd r1 resume")
