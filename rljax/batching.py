"""Map a per-run function over the run axis: in one ``vmap`` or in blocks, on one or more devices.

``jax.vmap`` over every run is the fastest layout while the batched program fits the device.
On the CPU backend it stops paying past a few dozen runs per device: measured on a 2-core
machine, A2C at 256 runs in one ``vmap`` trained about 10% slower than in blocks of 64 (and
before rljax enlarged XLA:CPU's thread pool, see :mod:`rljax._xla_cpu`, it never finished).
:func:`map_runs` with a ``block`` runs the runs as ``lax.map(fn, xs, batch_size=block)``: a
``lax.scan`` over blocks of ``block`` runs, each block one ``vmap``, so every operation keeps the
size it has at ``block`` runs. With a ``sharding`` of the run axis over several devices, each
device maps ``fn`` over its own runs the same way (one ``shard_map``, no traffic between
devices). Each run computes the same function of its own inputs in every layout; the layouts
change only how XLA vectorises (results agree to float rounding, not bitwise).
"""

from __future__ import annotations

from collections.abc import Callable

import jax

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
