"""JAX's persistent compilation cache, as the experiment scripts use it.

A run compiles a handful of programs (initialisation, the training chunk, evaluation, the
GIF's rollout) whose shapes depend on the config and the number of seeds, not on the seed
itself. With JAX's persistent compilation cache on, a later run of the same config (another
``--seed``, a re-run, a resumed run) loads those executables from disk instead of compiling
them again. An executable loaded from the cache computes exactly what a fresh compile of the
same program computes, so results are bit for bit the same with and without it.

``import rljax`` changes nothing; the scripts in ``experiments/`` call :func:`enable` (their
``--compile-cache`` flag) before they compile anything. A library user may call it too::

    from rljax.run import compile_cache
    compile_cache.enable(compile_cache.default_dir())

The benchmarks leave the cache off (:func:`disable`): they report compile time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_DIR = "JAX_COMPILATION_CACHE_DIR"  # JAX's own variable: a directory set there wins
# Programs that compile faster than this are not written (JAX's default is 1 s, which leaves
# out the small programs a run compiles several of).
MIN_COMPILE_SECS = 0.1

_HIT = "/jax/compilation_cache/cache_hits"
_MISS = "/jax/compilation_cache/cache_misses"
_counts = {"hits": 0, "misses": 0}
_listening = False


class CacheDirError(ValueError):
    """The cache directory cannot be created or written."""


def default_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$JAX_COMPILATION_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/rljax/jax`` (or
    ``~/.cache/rljax/jax``)."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_DIR):
        return Path(environ[ENV_DIR])
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rljax" / "jax"


def _listen(event: str, **_: Any) -> None:
    if event == _HIT:
        _counts["hits"] += 1
    elif event == _MISS:
        _counts["misses"] += 1


def enable(directory: str | Path, min_compile_secs: float = MIN_COMPILE_SECS) -> Path:
    """Turn JAX's persistent compilation cache on at ``directory`` (created if missing) for
    this process, and start counting its hits and misses (:func:`counts`).

    Programs that compile in at least ``min_compile_secs`` are written (a lower threshold
    already set in this process is kept).

    Raises:
      CacheDirError: if ``directory`` cannot be created or is not writable.
    """
    global _listening
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheDirError(f"cannot create {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheDirError(f"{path} is not writable")
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    current = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min(current, min_compile_secs))
    compilation_cache.reset_cache()  # JAX settles on a cache at its first compile: look again
    if not _listening:
        jax.monitoring.register_event_listener(_listen)
        _listening = True
    return path


def disable() -> None:
    """Turn the persistent compilation cache off for this process (also one named by
    ``$JAX_COMPILATION_CACHE_DIR``): every program compiles."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()


def counts() -> dict[str, int]:
    """Programs this process has loaded from the cache (hits) and compiled and written to it
    (misses) since the first :func:`enable`."""
    return dict(_counts)


def stats(directory: Path | None, since: Mapping[str, int] | None = None) -> dict[str, Any]:
    """What summary.json records: the directory (None: off) and the hits and misses since
    ``since`` (a :func:`counts` taken at the start of the run)."""
    if directory is None:
        return {"dir": None}
    since = since or {}
    return {"dir": str(directory), **{k: v - since.get(k, 0) for k, v in _counts.items()}}
