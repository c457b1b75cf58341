"""The XLA:CPU set-up rljax applies at import (rljax._xla_cpu), and the CPU host devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rljax import _xla_cpu

ROOT = Path(__file__).resolve().parents[1]


def _configured(environ: dict[str, str], cores: int) -> dict[str, str]:
    environ = dict(environ)
    _xla_cpu.configure(environ, num_cores=cores)
    return environ


def test_default_sets_a_larger_pool_and_nothing_else():
    env = _configured({}, cores=2)
    assert env == {"PJRT_NPROC": "4"}  # 2 cores: a pool of 2 threads can wait forever
    assert _configured({}, cores=16)["PJRT_NPROC"] == "16"


@pytest.mark.parametrize(
    ("value", "cores", "devices", "pool"),
    [("auto", 2, 2, "4"), ("auto", 16, 8, "16"), ("auto", 1, 1, "4"), ("3", 2, 3, "6")],
)
def test_cpu_devices_split_the_cpu_and_size_the_pool(value, cores, devices, pool):
    env = _configured({"RLJAX_CPU_DEVICES": value}, cores=cores)
    flag = f"{_xla_cpu.DEVICE_FLAG}={devices}"
    assert (flag in env.get("XLA_FLAGS", "")) == (devices > 1), env
    assert env["PJRT_NPROC"] == pool


@pytest.mark.parametrize("value", ["", "0", "-2", "two", "1.5"])
def test_a_bad_device_count_counts_as_unset(value):
    env = _configured({"RLJAX_CPU_DEVICES": value}, cores=2)
    assert "XLA_FLAGS" not in env and env["PJRT_NPROC"] == "4"


def test_what_the_user_set_is_kept():
    user = f"{_xla_cpu.DEVICE_FLAG}=4 --xla_cpu_parallel_codegen_split_count=3"
    env = _configured({"XLA_FLAGS": user, "RLJAX_CPU_DEVICES": "auto"}, cores=2)
    assert env["XLA_FLAGS"] == user
    assert env["PJRT_NPROC"] == "8"  # two threads per device
    assert _configured({"PJRT_NPROC": "3"}, cores=2)["PJRT_NPROC"] == "3"
    kept = {"RLJAX_KEEP_XLA_FLAGS": "1", "RLJAX_CPU_DEVICES": "auto", "XLA_FLAGS": "-x"}
    assert _configured(kept, cores=2) == kept


def _fresh_python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PJRT_NPROC")}
    clean.pop("RLJAX_CPU_DEVICES", None)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return proc.stdout.strip().splitlines()[-1]


def test_importing_rljax_gives_the_host_devices_asked_for():
    code = "import os, jax, rljax; print(len(jax.devices()), os.environ['PJRT_NPROC'])"
    assert _fresh_python(code) == f"1 {max(4, _xla_cpu.cores())}"
    assert _fresh_python(code, RLJAX_CPU_DEVICES="3") == f"3 {max(6, _xla_cpu.cores())}"


def test_train_cli_shards_over_the_cores_by_default(tmp_path):
    """--devices auto: the most of the CPU's host devices (one per core) that divide the seeds."""
    code = (
        "import sys; sys.path.insert(0, 'experiments'); import train; "
        f"print(train.main(['--num-seeds', '6', '--total-steps', '512', '--num-chunks', '1', "
        f"'--eval-episodes', '2', '--quiet', '--out', {str(tmp_path / 'run')!r}]))"
    )
    assert _fresh_python(code) == "0"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    cores = min(_xla_cpu.cores(), _xla_cpu.MAX_AUTO_DEVICES)
    assert summary["devices"] == max(d for d in range(1, cores + 1) if 6 % d == 0)
    assert summary["backend"] == "cpu"
