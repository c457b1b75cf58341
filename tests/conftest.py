"""Shared test fixtures."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import jax
import pytest

from rljax.run import xla_cpu

# The test processes set up XLA:CPU as the scripts do (host devices from RLJAX_CPU_DEVICES).
xla_cpu.configure(strict=False)


def _compile_each_program_once() -> None:
    """A persistent compilation cache for this test process and the scripts it runs.

    Many tests build the same small program anew (a fresh ``make_train`` closure, a
    ``train.py`` run in a subprocess); with the cache XLA compiles it once per test process
    and later builds load the executable, which computes exactly what a fresh compile would.
    Each pytest-xdist worker has its own directory, so no two processes write one entry at
    once, and it is removed when the worker exits. Tests that start several processes at once
    leave ``JAX_COMPILATION_CACHE_DIR`` out of their environment.
    """
    path = tempfile.mkdtemp(prefix="rljax-tests-jax-cache-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path  # the scripts the tests run inherit it
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


_compile_each_program_once()


@pytest.fixture
def refused(tmp_path, capsys):
    """``refused(main, argv, needle)``: ``main(argv + --out DIR)`` exits 2 with one stderr line
    containing ``needle`` and creates no DIR."""

    def check(main, argv, needle):
        out = tmp_path / "run"
        assert main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert needle in err[0]
        assert not out.exists()

    return check
