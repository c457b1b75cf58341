"""XLA:CPU set-up for a process, applied by an explicit call before JAX starts its backend.

``import rljax`` changes nothing in the process. Scripts that train on the CPU (the ones in
``experiments/`` and ``benchmarks/``) call :func:`configure` first; a library user may too:

    from rljax.run import xla_cpu
    xla_cpu.configure(devices="auto")   # before the first JAX computation
    import jax; jax.devices()           # one CPU device per core (at most 8)

Two settings, neither of which changes what a program computes:

* A larger XLA:CPU thread pool (``PJRT_NPROC``, read by XLA when its CPU client starts). XLA
  sizes the pool to the core count, and on a 2-core machine a program could then wait forever
  for a pool thread: measured with jaxlib 0.10, one ``vmap`` over 256 seeds, any run sharded
  over 2 or 4 host devices, and (intermittently) twin-critic TD3 at >= 8 seeds never finished
  with 2 threads; all of them run with 4. The pool gets ``max(4, cores, 2 x devices)``
  threads.
* ``devices`` > 1 splits the CPU into that many JAX host devices
  (``--xla_force_host_platform_device_count``), so that a run can shard its seeds over the
  cores.

A device count already in ``XLA_FLAGS`` and a ``PJRT_NPROC`` already set are kept;
``RLJAX_KEEP_XLA_FLAGS=1`` leaves both alone. Both variables are written into ``os.environ``
(so child processes inherit them), which is why this is a call a script makes, never something
importing rljax does.
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
    num_cores = cores() if num_cores is None else num_cores
    flags = environ.get("XLA_FLAGS", "")
    out: dict[str, str] = {}
    given = re.search(DEVICE_FLAG + r"=(\d+)", flags)
    if given:
        n = int(given.group(1))
    else:
        n = cpu_devices(environ.get(ENV_DEVICES) if devices is None else devices, num_cores)
        if n > 1:
            out["XLA_FLAGS"] = f"{flags} {DEVICE_FLAG}={n}".strip()
    if "PJRT_NPROC" not in environ:
        out["PJRT_NPROC"] = str(max(4, num_cores, 2 * n))
    return out


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
