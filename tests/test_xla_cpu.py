"""The explicit XLA:CPU set-up (rljax.run.xla_cpu), the CPU host devices, and a side-effect-free
``import rljax``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rljax.run import xla_cpu

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("gymnax", "distrax", "tensorflow_probability", "scipy", "matplotlib", "orbax")


def _configured(environ: dict[str, str], cores: int, devices=None) -> dict[str, str]:
    environ = dict(environ)
    environ.update(xla_cpu.settings(environ, devices, num_cores=cores))
    return environ


def test_one_device_sets_nothing():
    """XLA:CPU keeps its own thread pool (one thread per core) and one host device."""
    assert _configured({}, cores=2) == {}
    assert _configured({}, cores=16) == {}


@pytest.mark.parametrize(
    ("value", "cores", "devices"), [("auto", 2, 2), ("auto", 16, 8), ("auto", 1, 1), ("3", 2, 3)]
)
def test_cpu_devices_split_the_cpu(value, cores, devices):
    for env in (
        _configured({"RLJAX_CPU_DEVICES": value}, cores=cores),  # from the environment
        _configured({}, cores=cores, devices=value),  # or asked for by the call
    ):
        flag = f"{xla_cpu.DEVICE_FLAG}={devices}"
        assert (flag in env.get("XLA_FLAGS", "")) == (devices > 1), env
        assert "PJRT_NPROC" not in env  # the pool keeps XLA's own size


@pytest.mark.parametrize("value", ["", "0", "-2", "two", "1.5"])
def test_a_bad_device_count_counts_as_unset(value):
    assert _configured({"RLJAX_CPU_DEVICES": value}, cores=2) == {"RLJAX_CPU_DEVICES": value}


def test_what_the_user_set_is_kept():
    user = f"{xla_cpu.DEVICE_FLAG}=4 --xla_cpu_parallel_codegen_split_count=3"
    env = _configured({"XLA_FLAGS": user, "RLJAX_CPU_DEVICES": "auto"}, cores=2)
    assert env == {"XLA_FLAGS": user, "RLJAX_CPU_DEVICES": "auto"}
    other = "--xla_cpu_parallel_codegen_split_count=3"
    env = _configured({"XLA_FLAGS": other, "PJRT_NPROC": "3"}, cores=2, devices=2)
    assert env == {"XLA_FLAGS": f"{other} {xla_cpu.DEVICE_FLAG}=2", "PJRT_NPROC": "3"}
    kept = {"RLJAX_KEEP_XLA_FLAGS": "1", "RLJAX_CPU_DEVICES": "auto", "XLA_FLAGS": "-x"}
    assert _configured(kept, cores=2) == kept


def test_configure_writes_only_the_mapping_it_is_given():
    env: dict[str, str] = {}
    before = dict(os.environ)
    assert xla_cpu.configure(2, environ=env) == env
    assert env == {"XLA_FLAGS": f"{xla_cpu.DEVICE_FLAG}=2"}
    assert dict(os.environ) == before


def _fresh_python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PJRT_NPROC")}
    clean.pop("RLJAX_CPU_DEVICES", None)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_import_rljax_changes_nothing_and_loads_only_the_core():
    """No os.environ write, no backend started, none of the heavy dependencies loaded."""
    code = (
        "import os, sys, json; before = dict(os.environ); import rljax; "
        "from jax._src import xla_bridge; "
        f"print(json.dumps([dict(os.environ) == before, xla_bridge.backends_are_initialized(), "
        f"[m for m in {HEAVY!r} if m in sys.modules]]))"
    )
    assert json.loads(_fresh_python(code)) == [True, False, []]


def test_import_rljax_changes_nothing_even_where_import_jax_would():
    """Without JAX_PLATFORMS, jax's own import sets a few variables (TF_CPP_MIN_LOG_LEVEL,
    TPU_SKIP_MDS_QUERY); importing rljax (which imports jax) leaves os.environ as it was."""

    def changed(module: str) -> list[str]:
        code = (
            "import os, json; before = dict(os.environ); import " + module + "; print(json.dumps("
            "sorted(k for k in {*before, *os.environ} if before.get(k) != os.environ.get(k))))"
        )
        ours = ("XLA_FLAGS", "PJRT_NPROC", "JAX_PLATFORMS", "RLJAX_CPU_DEVICES")
        jaxs = ("TF_CPP_MIN_LOG_LEVEL", "TPU_SKIP_MDS_QUERY")
        clean = {k: v for k, v in os.environ.items() if k not in (*ours, *jaxs)}
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env={**clean, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    assert changed("jax") != []  # the test would see jax's writes
    assert changed("rljax") == []


def test_lazy_submodules_are_reachable_from_the_package():
    code = "import rljax; print(rljax.agents.AGENTS is not None, rljax.envs.__name__)"
    assert _fresh_python(code) == "True rljax.envs"


def test_settings_made_after_import_rljax_take_effect():
    """A researcher's own XLA flags and jax_platforms, set after `import rljax`, still count."""
    code = (
        "import os, rljax, jax; "
        f"os.environ['XLA_FLAGS'] = '{xla_cpu.DEVICE_FLAG}=4'; "
        "jax.config.update('jax_platforms', 'cpu'); print(len(jax.devices()))"
    )
    assert _fresh_python(code) == "4"


def test_configure_gives_the_host_devices_asked_for():
    code = (
        "import os; from rljax.run import xla_cpu; xla_cpu.configure({}); import jax; "
        "print(len(jax.devices()), os.environ.get('PJRT_NPROC'))"
    )
    assert _fresh_python(code.format("None")) == "1 None"
    assert _fresh_python(code.format("3")) == "3 None"
    assert _fresh_python(code.format("None"), RLJAX_CPU_DEVICES="2") == "2 None"


def test_configure_after_the_backend_started_says_so():
    code = (
        "import jax; jax.devices(); from rljax.run import xla_cpu\n"
        "try:\n    xla_cpu.configure(2)\nexcept RuntimeError as e:\n    print('refused')\n"
        "print(xla_cpu.configure(2, strict=False) == {}, len(jax.devices()))"
    )
    assert _fresh_python(code) == "True 1"


def _compile_flags() -> str:
    """This process's XLA_FLAGS without a host device count (the test suite's compile settings)."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    return " ".join(f for f in flags if not f.startswith(xla_cpu.DEVICE_FLAG))


def test_train_cli_shards_over_the_cores_by_default(tmp_path):
    """--devices auto: the most of the CPU's host devices (one per core) that divide the seeds."""
    code = (
        "import sys; sys.path.insert(0, 'experiments'); import train; "
        f"print(train.main(['--num-seeds', '6', '--total-steps', '512', '--num-chunks', '1', "
        f"'--eval-episodes', '2', '--quiet', '--out', {str(tmp_path / 'run')!r}]))"
    )
    assert _fresh_python(code, XLA_FLAGS=_compile_flags()) == "0"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    cores = min(xla_cpu.cores(), xla_cpu.MAX_AUTO_DEVICES)
    assert summary["devices"] == max(d for d in range(1, cores + 1) if 6 % d == 0)
    assert summary["backend"] == "cpu"
