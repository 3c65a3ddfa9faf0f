"""The JSONL writer shared by the PyTorch and Keras sides, and the framework-free helpers (docs/LOG_FORMAT.md)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Union

SCHEMA = 1
"""The log format version written in every `run` record."""

Record = Dict[str, Any]
PathLike = Union[str, "Path"]


def clean(value: Any) -> Any:
    """`value` made JSON-safe: non-finite floats become None (written `null`), containers are walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def short(values: Sequence[float], digits: int = 7) -> List[Optional[float]]:
    """Floats rounded to `digits` significant digits (float32 carries about 7), non-finite ones as None."""
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in values]


def metric(value: Optional[Mapping[str, Any]]) -> Optional[Record]:
    """A `{loss, acc}` dict with plain floats (tensors and numpy scalars are converted); None stays None."""
    if value is None:
        return None
    out: Record = {}
    for key in ("loss", "acc"):
        v = value.get(key)
        if v is not None:
            out[key] = float(v.item() if hasattr(v, "item") else v)
    return out


def gap(running: Sequence[float], batch: Sequence[float]) -> float:
    """`‖running − batch‖₂ / (‖batch‖₂ + 1e-8)`."""
    diff = math.sqrt(sum((r - b) ** 2 for r, b in zip(running, batch)))
    return diff / (math.sqrt(sum(b * b for b in batch)) + 1e-8)


def common(values: Sequence[Any]) -> Optional[Any]:
    """The value all entries share, or None when they differ (or there are none)."""
    return values[0] if values and all(v == values[0] for v in values) else None


RESERVED = {"type", "schema", "convention", "source", "bn_layers", "bn_variance"}
"""`run` fields that the user's `info` may not replace."""


def add_info(rec: Record, info: Mapping[str, Any]) -> None:
    """Adds the user's extra `run` fields (`model`, `seed`, `lr`, `classes`, ...) to `rec`."""
    for key, value in info.items():
        if key in RESERVED:
            raise ValueError(f"info[{key!r}]: bnscope writes this field itself")
        rec[key] = value


def rank_path(path: PathLike, rank: int) -> Path:
    """`run.jsonl` → `run.rank{rank}.jsonl` (the file of one process of a distributed run)."""
    p = Path(path)
    return p.with_name(f"{p.stem}.rank{rank}{p.suffix}")


class JsonlWriter:
    """One JSON object per line, each written with one `write` call and flushed at once."""

    def __init__(self, path: PathLike, append: bool = False) -> None:
        self.path = Path(path)
        self._out: Optional[IO[str]] = open(self.path, "a" if append else "w", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        if self._out is None:
            raise ValueError(f"{self.path}: the log is closed")
        self._out.write(json.dumps(clean(record), allow_nan=False, separators=(",", ":")) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    @property
    def closed(self) -> bool:
        return self._out is None
