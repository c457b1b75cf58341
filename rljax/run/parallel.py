"""Runs in parallel: the run axis mapped in one ``vmap`` or in blocks, sharded over devices and
processes.

``jax.vmap`` over every run is the fastest layout while the batched program fits the device.
On the CPU backend it stops paying past a few dozen runs per device: measured on a 2-core
machine, A2C at 256 runs in one ``vmap`` trained about 10% slower than in blocks of 64.
:func:`map_runs` with a ``block`` runs the runs as ``lax.map(fn, xs, batch_size=block)``: a
``lax.scan`` over blocks of ``block`` runs, each block one ``vmap``, so every operation keeps the
size it has at ``block`` runs. With a ``sharding`` of the run axis over several devices, each
device maps ``fn`` over its own runs the same way (one ``shard_map``, no traffic between
devices). Each run computes the same function of its own inputs in every layout; the layouts
change only how XLA vectorises (results agree to float rounding, not bitwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax.agents.base import ConfigError

# Runs per block on the CPU backend (the largest vmap that kept full throughput there).
CPU_BLOCK = 64


def default_block(backend: str | None = None) -> int | None:
    """The block size :func:`map_runs` uses by default: ``CPU_BLOCK`` on CPU, else None."""
    return CPU_BLOCK if (backend or jax.default_backend()) == "cpu" else None


def map_runs(
    fn: Callable, block: int | None, sharding: jax.NamedSharding | None = None
) -> Callable:
    """``fn`` mapped over the leading axis of every argument (all positional, all batched).

    Args:
      fn: a function of one run's arguments.
      block: runs per ``vmap`` (on each device); None (or a block at least the number of runs)
        vmaps them all at once. A number of runs not divisible by ``block`` runs its remainder
        as one more, smaller ``vmap``.
      sharding: a sharding of the run axis over a one-axis device mesh
        (``NamedSharding(mesh, P(axis))``), or None for one device. The number of runs must be
        divisible by the mesh size.

    Returns:
      ``mapped(*xs)`` with the runs' outputs stacked on a leading axis, as ``jax.vmap(fn)``.
    """
    if block is not None and (not isinstance(block, int) or block < 1):
        raise ValueError(f"block must be a positive int or None, got {block!r}")

    def mapped(*xs):
        runs = jax.tree.leaves(xs)[0].shape[0]
        if block is None or block >= runs:
            return jax.vmap(fn)(*xs)
        return jax.lax.map(lambda args: fn(*args), xs, batch_size=block)

    if sharding is None:
        return mapped
    # No collectives inside, so the varying-axis type check has nothing to check.
    spec = sharding.spec
    return jax.shard_map(mapped, mesh=sharding.mesh, in_specs=spec, out_specs=spec, check_vma=False)


def available_devices() -> int:
    """Devices a run can shard over: every process's devices in a multi-process run."""
    return len(jax.devices())


def is_primary() -> bool:
    """Whether this process writes results: process 0 (the only one in a one-process run)."""
    return jax.process_index() == 0


def to_host(tree: Any) -> Any:
    """NumPy copies of every run's values on every process (a collective across processes).

    A one-process array is copied from its devices; an array sharded over several processes
    is gathered with ``process_allgather``, so all processes must call this together.
    """
    from jax.experimental import multihost_utils

    def one(x):
        if getattr(x, "is_fully_addressable", True):
            return np.asarray(x)
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)


def put(tree: Any, sharding: jax.NamedSharding | None) -> Any:
    """Place every leaf on ``sharding`` (PRNG key arrays go through their raw key data)."""
    if sharding is None:
        return tree

    def one(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.device_put(jax.random.key_data(x), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(x, sharding)

    return jax.tree.map(one, tree)


def check_devices(devices: int, num_runs: int) -> None:
    """Reject a device count that is unavailable or does not divide the runs."""
    if devices < 1:
        raise ConfigError(f"--devices must be >= 1 or 'all', got {devices}")
    have = available_devices()
    if devices > have:
        raise ConfigError(
            f"--devices {devices} but only {have} {jax.default_backend()} device(s) available"
        )
    if num_runs % devices:
        raise ConfigError(f"--num-seeds {num_runs} runs are not divisible by --devices {devices}")


def auto_devices(num_runs: int) -> int:
    """The most devices (of :func:`available_devices`) that divide ``num_runs`` evenly."""
    return max(d for d in range(1, available_devices() + 1) if num_runs % d == 0)


def parse_devices(value: str, num_runs: int) -> int:
    """``--devices``: a number, ``all`` or ``auto`` (:func:`auto_devices`), as a device count."""
    if value == "all":
        return available_devices()
    if value == "auto":
        return auto_devices(num_runs)
    if not value.isdigit():
        raise ConfigError(f"--devices must be a number, 'all' or 'auto', got {value!r}")
    return int(value)


def run_sharding(devices: int, num_runs: int) -> jax.NamedSharding | None:
    """Sharding of a leading (run) axis across ``devices`` devices (None for one device)."""
    if devices <= 1:
        return None
    check_devices(devices, num_runs)
    mesh = jax.make_mesh((devices,), ("runs",), axis_types=(jax.sharding.AxisType.Auto,))
    return jax.NamedSharding(mesh, jax.P("runs"))


def jit_runs(fn: Callable, sharding: jax.NamedSharding | None, **kw) -> Callable:
    """``jax.jit``; with a run sharding, every input and output leaf is sharded by run."""
    if sharding is None:
        return jax.jit(fn, **kw)
    return jax.jit(fn, in_shardings=sharding, out_shardings=sharding, **kw)
