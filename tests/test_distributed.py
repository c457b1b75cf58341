"""Several processes (hosts) training one run: jax.distributed on two local CPU processes."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "experiments" / "train.py")
sys.path.insert(0, str(ROOT / "experiments"))
import train  # noqa: E402

TINY = ["--num-seeds", "2", "--total-steps", "2048", "--num-chunks", "2", "--quiet"]
TINY += ["--compile-cache", "none"]  # no shared cache for processes run at once (conftest)
TINY += ["--eval-episodes", "3"]
TIMEOUT_S = 300


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--num-processes", "0"], "--num-processes must be an integer >= 1"),
        (["--num-processes", "two"], "--num-processes"),
        (["--num-processes", "2", "--process-id", "2"], "--process-id must be in 0..1"),
        (["--num-processes", "2", "--process-id", "-1"], "--process-id must be in 0..1"),
        (["--process-id", "1"], "--process-id must be in 0..0"),
        (["--num-processes", "2"], "needs --coordinator HOST:PORT"),
        (["--num-processes", "2", "--coordinator", "localhost"], "--coordinator must be HOST:PORT"),
        (["--num-processes", "2", "--coordinator", ":1234"], "--coordinator must be HOST:PORT"),
        (["--num-processes", "2", "--coordinator", "h:99999"], "--coordinator must be HOST:PORT"),
        (["--num-processes", "2", "--coordinator", "h:1", "--resume", "x"], "--resume is not"),
        (
            ["--num-processes", "2", "--coordinator", "h:1", "--checkpoint-every", "5"],
            "--checkpoint-every is not supported with --num-processes > 1",
        ),
    ],
)
def test_bad_process_flags_one_line_exit_2_no_output(refused, argv, needle):
    refused(train.main, argv, needle)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    """One CPU device per process (no fake host devices)."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    flags = [f for f in flags if not f.startswith("--xla_force_host_platform_device_count")]
    return {
        # Two processes at once: no shared compilation cache (tests/conftest.py), whose
        # entries are not written atomically.
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("JAX_PERSISTENT_CACHE") and k != "JAX_COMPILATION_CACHE_DIR"
        },
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": " ".join(flags),
    }


def _run_pair(argv: list[str], outs: list[Path], cwd: Path) -> list[tuple[int, str, str]]:
    """Run train.py as processes 0 and 1 of one run; (exit status, stdout, stderr) of each."""
    port = _free_port()
    procs = []
    for i, out in enumerate(outs):
        d = cwd / f"cwd{i}"
        d.mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, TRAIN, *argv, "--out", str(out), "--num-processes", "2"]
                + ["--process-id", str(i), "--coordinator", f"localhost:{port}"],
                env=_env(),
                cwd=d,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=TIMEOUT_S)
            results.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.mark.slow  # about 100 s on 2 CPU cores: a one-process run, then a two-process run
def test_two_processes_equal_one_process(tmp_path):
    single = tmp_path / "single"
    proc = subprocess.run(
        [sys.executable, TRAIN, *TINY, "--out", str(single)],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr
    outs = [tmp_path / "p0", tmp_path / "p1"]
    (rc0, _, err0), (rc1, out1, err1) = _run_pair(TINY, outs, tmp_path)
    assert rc0 == 0, err0
    assert rc1 == 0, err1
    assert "Traceback" not in err0 + err1
    assert "process 1 done" in out1
    # Only process 0 writes: process 1 left its --out and its working directory untouched.
    assert not outs[1].exists()
    assert not any((tmp_path / "cwd1").iterdir())
    assert not any((tmp_path / "cwd0").iterdir())
    written = {p.name for p in outs[0].iterdir()}
    assert {"config.json", "metrics.csv", "summary.json", "curves.png"} <= written
    assert "checkpoints" not in written  # checkpoints are single-process only

    one = json.loads((single / "summary.json").read_text())
    two = json.loads((outs[0] / "summary.json").read_text())
    for key in ("eval_returns", "eval_returns_sampled", "episodes_to_solve", "solved", "iqm"):
        assert one[key] == two[key], key
    config = json.loads((outs[0] / "config.json").read_text())
    assert config["num_processes"] == 2
    assert config["config"] == json.loads((single / "config.json").read_text())["config"]

    # Training metrics: counts exactly, losses to float rounding (the programs differ in batch).
    a, b = _rows(single / "metrics.csv"), _rows(outs[0] / "metrics.csv")
    assert a[0] == b[0] and len(a) == len(b) == 1 + 2 * 2
    col = a[0].index("episodes")
    assert [r[:3] + [r[col]] for r in a[1:]] == [r[:3] + [r[col]] for r in b[1:]]
    x = np.array([[float(v or "nan") for v in r] for r in a[1:]])
    y = np.array([[float(v or "nan") for v in r] for r in b[1:]])
    np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-6, equal_nan=True)


def test_seeds_not_divisible_by_global_devices_rejected_by_every_process(tmp_path):
    outs = [tmp_path / "p0", tmp_path / "p1"]
    argv = ["--num-seeds", "3", "--total-steps", "2048", "--quiet"]
    for rc, _, err in _run_pair(argv, outs, tmp_path):
        assert rc == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, lines
        assert "--num-seeds 3 is not divisible by the 2 devices of the 2 processes" in lines[0]
    assert not outs[0].exists() and not outs[1].exists()
