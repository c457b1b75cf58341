"""XLA:CPU set-up for a process, applied by an explicit call before JAX starts its backend.

``import rljax`` changes nothing in the process. Scripts that train on the CPU (the ones in
``experiments/`` and ``benchmarks/``) call :func:`configure` first; a library user may too:

    from rljax.run import xla_cpu
    xla_cpu.configure(devices="auto")   # before the first JAX computation
    import jax; jax.devices()           # one CPU device per core (at most 8)

One setting, which does not change what a program computes: ``devices`` > 1 splits the CPU
into that many JAX host devices (``--xla_force_host_platform_device_count``), so that a run can
shard its seeds over the cores.

XLA:CPU's thread pool keeps its own size (one thread per core; ``PJRT_NPROC`` overrides it).
A larger pool once kept runs on a 2-core machine from hanging, but the hang came from batched
LAPACK QRs in orthogonal initialisation, which :func:`rljax.networks.orthogonal` now runs one
matrix at a time. With 4 threads on 2 cores, SAC trained 25-29% slower than with 2.

A device count already in ``XLA_FLAGS`` is kept; ``RLJAX_KEEP_XLA_FLAGS=1`` leaves ``XLA_FLAGS``
alone. The flag is written into ``os.environ`` (so child processes inherit it), which is why
this is a call a script makes, never something importing rljax does.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping

DEVICE_FLAG = "--xla_force_host_platform_device_count"
MAX_AUTO_DEVICES = 8
ENV_DEVICES = "RLJAX_CPU_DEVICES"  # scripts' default device count, overridable by the user


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_devices(value: int | str | None, num_cores: int) -> int:
    """Host devices asked for: None 1, ``auto`` one per core (<= 8), or a positive number.

    A value that is neither ``auto`` nor a positive integer counts as None.
    """
    if value is None or value == "":
        return 1
    if value == "auto":
        return max(1, min(num_cores, MAX_AUTO_DEVICES))
    text = str(value)
    return int(text) if text.isdigit() and int(text) > 0 else 1


def settings(
    environ: Mapping[str, str], devices: int | str | None = None, num_cores: int | None = None
) -> dict[str, str]:
    """The variables :func:`configure` would set, as a pure function of ``environ``.

    ``devices`` None reads ``RLJAX_CPU_DEVICES`` from ``environ`` (unset: one device).
    """
    if environ.get("RLJAX_KEEP_XLA_FLAGS"):
        return {}
    flags = environ.get("XLA_FLAGS", "")
    if re.search(DEVICE_FLAG + r"=\d+", flags):
        return {}
    num_cores = cores() if num_cores is None else num_cores
    n = cpu_devices(environ.get(ENV_DEVICES) if devices is None else devices, num_cores)
    return {"XLA_FLAGS": f"{flags} {DEVICE_FLAG}={n}".strip()} if n > 1 else {}


def backend_started() -> bool:
    """Whether JAX has already started a backend in this process (settings come too late)."""
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def configure(
    devices: int | str | None = None,
    environ: MutableMapping[str, str] | None = None,
    *,
    strict: bool = True,
) -> dict[str, str]:
    """Set up XLA:CPU for this process; call it before the first JAX computation.

    Args:
      devices: host devices to split the CPU into: a number, ``"auto"`` (one per core, at most
        8) or None (``RLJAX_CPU_DEVICES`` from the environment if set, else one). A device
        count already in ``XLA_FLAGS`` wins.
      environ: where to write (default ``os.environ``).
      strict: raise if JAX's backend has already started; with False, do nothing then (for a
        script's ``main`` that may run more than once in one process, as in tests).

    Returns:
      The variables it set.

    Raises:
      RuntimeError: if JAX has already started its backend in this process, so the settings
        could no longer take effect (only checked when writing ``os.environ``).
    """
    target = os.environ if environ is None else environ
    if environ is None and backend_started():
        if not strict:
            return {}
        raise RuntimeError(
            "rljax.run.xla_cpu.configure() must run before JAX starts its backend "
            "(before the first JAX computation or jax.devices())"
        )
    changes = settings(target, devices)
    target.update(changes)
    return changes


def configure_script(default_devices: int | str = "auto") -> dict[str, str]:
    """What the experiment scripts call first: :func:`configure` with ``RLJAX_CPU_DEVICES``
    if the user set it, else ``default_devices``; nothing once JAX's backend has started."""
    return configure(os.environ.get(ENV_DEVICES) or default_devices, strict=False)
