"""Optional experiment trackers: TensorBoard (tensorboardX) and Weights & Biases.

Neither is required: each needs the ``track`` extra (``pip install -e ".[track]"``) and is
turned on by a flag of ``experiments/train.py`` (``--tensorboard``, ``--wandb``). W&B runs
offline unless ``WANDB_MODE`` says otherwise, so nothing leaves the machine by default
(``wandb sync DIR/wandb/...`` uploads later). Each chunk logs the across-seed mean of every
metric and the mean return, at the chunk's env step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

TRACK_HINT = 'needs the track extra: pip install -e ".[track]"'


class TrackerUnavailable(RuntimeError):
    """The package a requested tracker needs is not installed."""


class Trackers:
    """Fan-out to the enabled trackers; a no-op when none is enabled."""

    def __init__(self, out: Path, run_info: dict[str, Any], tensorboard: bool, wandb: bool):
        self._writers: list[Any] = []
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise TrackerUnavailable(f"--tensorboard {TRACK_HINT}") from None
            self._writers.append(("tb", SummaryWriter(str(out / "tensorboard"))))
        if wandb:
            try:
                import wandb as wb
            except ImportError:
                raise TrackerUnavailable(f"--wandb {TRACK_HINT}") from None
            os.environ.setdefault("WANDB_MODE", "offline")
            run = wb.init(
                project="rljax",
                name=out.name,
                dir=str(out),
                config=run_info,
                reinit="finish_previous",
            )
            self._writers.append(("wandb", run))

    def log(self, env_steps: int, per_seed: dict[str, np.ndarray]) -> None:
        scalars = {}
        for name, values in per_seed.items():
            finite = values[np.isfinite(values)]
            if finite.size:
                scalars[name] = float(finite.mean())
        for kind, w in self._writers:
            if kind == "tb":
                for name, value in scalars.items():
                    w.add_scalar(name, value, env_steps)
                w.flush()
            else:
                w.log(scalars, step=env_steps)

    def close(self) -> None:
        for kind, w in self._writers:
            w.close() if kind == "tb" else w.finish()
        self._writers = []
