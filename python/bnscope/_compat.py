"""PyTorch version and mode checks shared by the hooks and `inspect` (torch imported by the caller)."""
from __future__ import annotations

from typing import Dict

import torch


def compiling() -> bool:
    """Whether torch.compile (dynamo) is tracing the code that calls this (a constant True inside a trace)."""
    for owner in (getattr(torch, "compiler", None), getattr(torch, "_dynamo", None)):
        check = getattr(owner, "is_compiling", None)
        if check is not None:
            return bool(check())
    return False


LAZY_BN = (torch.nn.LazyBatchNorm1d, torch.nn.LazyBatchNorm2d, torch.nn.LazyBatchNorm3d)
"""BatchNorm layers that learn their size at the first forward (and then become BatchNorm1d/2d/3d)."""


def uninitialized(model: torch.nn.Module) -> bool:
    """Whether a lazy parameter or buffer of `model` still waits for the first forward."""
    lazy = (torch.nn.parameter.UninitializedParameter, torch.nn.parameter.UninitializedBuffer)
    return any(isinstance(t, lazy) for t in [*model.parameters(), *model.buffers()])


def dtype_str(dtype: torch.dtype) -> str:
    """`torch.bfloat16` → `"bfloat16"`."""
    return str(dtype).replace("torch.", "")


def dtype_name(layer: torch.nn.Module) -> Dict[str, str]:
    """`{"dtype": ..}` of a BatchNorm layer's running statistics (float32 under AMP; the model's after `.to(..)`)."""
    running = getattr(layer, "running_mean", None)
    return {"dtype": dtype_str(running.dtype)} if isinstance(running, torch.Tensor) else {}


def params_dtype(model: torch.nn.Module) -> Dict[str, str]:
    """`{"dtype": ..}` of the model's floating-point parameters when they share one (e.g. `"bfloat16"` after
    `model.to(torch.bfloat16)`; AMP keeps them float32), `"mixed"` when they differ, `{}` without any."""
    lazy = torch.nn.parameter.UninitializedParameter
    kinds = {p.dtype for p in model.parameters() if not isinstance(p, lazy) and p.is_floating_point()}
    if not kinds:
        return {}
    return {"dtype": dtype_str(kinds.pop()) if len(kinds) == 1 else "mixed"}
