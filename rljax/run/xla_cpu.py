"""XLA:CPU set-up applied when ``rljax`` is imported, before JAX starts its backend.

Two settings, neither of which changes what a program computes:

* A larger XLA:CPU thread pool (``PJRT_NPROC``, read by XLA when its CPU client starts). XLA
  sizes the pool to the core count, and on a 2-core machine a program could then wait forever
  for a pool thread: measured with jaxlib 0.10, one ``vmap`` over 256 seeds, any run sharded
  over 2 or 4 host devices, and (intermittently) twin-critic TD3 at >= 8 seeds never finished
  with 2 threads; all of them run with 4. The pool gets ``max(4, cores, 2 x devices)``
  threads. (Turning off XLA:CPU's concurrency-optimised scheduler also dodged some of these
  hangs, but cost PPO 15-20% of its speed; with the larger pool it is not needed.)
* With ``RLJAX_CPU_DEVICES`` set (``auto``: one per core, at most 8; or a number), the CPU is
  split into that many JAX host devices so that a run can shard its seeds over the cores
  (``experiments/train.py`` sets it to ``auto``). A library user who wants this sets the
  variable before importing rljax.

A device count already in ``XLA_FLAGS`` and a ``PJRT_NPROC`` already set are kept;
``RLJAX_KEEP_XLA_FLAGS=1`` leaves both alone. They take effect only if rljax is imported before
JAX starts its backend (before any JAX operation has run).
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping

DEVICE_FLAG = "--xla_force_host_platform_device_count"
MAX_AUTO_DEVICES = 8


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_devices(value: str | None, num_cores: int) -> int:
    """Host devices asked for by ``RLJAX_CPU_DEVICES``: unset 1, ``auto`` one per core (<= 8).

    A value that is neither ``auto`` nor a positive integer counts as unset.
    """
    if not value:
        return 1
    if value == "auto":
        return max(1, min(num_cores, MAX_AUTO_DEVICES))
    return int(value) if value.isdigit() and int(value) > 0 else 1


def configure(environ: MutableMapping[str, str], num_cores: int | None = None) -> None:
    """Write the XLA:CPU settings into ``environ`` (``os.environ`` at import)."""
    if environ.get("RLJAX_KEEP_XLA_FLAGS"):
        return
    num_cores = cores() if num_cores is None else num_cores
    flags = environ.get("XLA_FLAGS", "")
    given = re.search(DEVICE_FLAG + r"=(\d+)", flags)
    if given:
        devices = int(given.group(1))
    else:
        devices = cpu_devices(environ.get("RLJAX_CPU_DEVICES"), num_cores)
        if devices > 1:
            flags = f"{flags} {DEVICE_FLAG}={devices}".strip()
            environ["XLA_FLAGS"] = flags
    environ.setdefault("PJRT_NPROC", str(max(4, num_cores, 2 * devices)))
