"""Checkpoints of a whole population of runs, with orbax-checkpoint.

A checkpoint holds the full vmapped agent state (every parameter and target, optimiser states,
keys, environment states and observations, replay buffers, counters) plus JSON metadata
(config, config hash, library versions, progress counters). Restores go into an abstract
target built by code (``jax.eval_shape`` of the agent's ``init``), never into raw dicts.
Orbax writes each step to a temporary folder and renames it when complete, so a process killed
during a save leaves the previous checkpoint restorable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing or does not match the run that asks for it."""


def config_hash(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
    )


def latest_step(directory: Path) -> int | None:
    """The newest complete checkpoint step in ``directory`` (None if there is none)."""
    if not Path(directory).is_dir():
        return None
    with ocp.CheckpointManager(Path(directory).absolute()) as mngr:
        return mngr.latest_step()


def save(mngr: ocp.CheckpointManager, step: int, state: Any, meta: dict[str, Any]) -> None:
    meta = {**meta, "format_version": FORMAT_VERSION}
    mngr.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
    )


def _placed(abstract_state: Any) -> Any:
    """``abstract_state`` with a sharding on every leaf: its own, else this process's first
    device. Without one orbax would restore onto the devices the checkpoint was written from,
    which fails when a run saved over several devices is read on fewer."""
    import jax

    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def one(x):
        if getattr(x, "sharding", None) is not None:
            return x
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device)

    return jax.tree.map(one, abstract_state)


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restore ``step`` into ``abstract_state`` (a pytree of ``jax.ShapeDtypeStruct``).

    Leaves without a sharding are restored onto this process's first device, whatever devices
    the checkpoint was written from.
    """
    meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {meta.get('format_version')} is not supported "
            f"(this rljax reads format {FORMAT_VERSION})"
        )
    try:
        restored = mngr.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(_placed(abstract_state))),
        )
    except ValueError as e:  # shape or structure mismatch
        raise CheckpointError(f"checkpoint does not match this run's state: {e}") from None
    return restored.state, meta
